//! `agh rescore`: a (possibly changed) grader run against the transcripts
//! of an output folder instead of sandboxes. Each submission's files come
//! back from its transcript (every blob checked against its digest); the
//! grader's sandbox calls are answered in order from the recorded replies
//! while they are the calls recorded; at the first that is not, the
//! submission is graded for real in a sandbox (or, with `--no-sandbox`,
//! listed as needing it). A transcript or blob that is not what its result
//! recorded is refused, never replayed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::port::{Replay, Stopped};
use super::{Entry, Kept, TranscriptDir, TranscriptError, TranscriptRef};
use crate::batch::{OpenMode, OutputDir, OutputError, OutputLock};
use crate::config::Config;
use crate::grading::{PrepareError, PreparedGrader, RetryPolicy, Snapshot};
use crate::report::{Rescored, Status, SubmissionResult};

/// What to rescore.
#[derive(Debug, Clone)]
pub struct RescoreRequest {
    /// The grader.
    pub plugin: PathBuf,
    /// Its configuration.
    pub config: Config,
    /// The output folder whose transcripts are replayed.
    pub from: PathBuf,
    /// The new output folder.
    pub out: PathBuf,
    /// Grade in a sandbox what cannot be replayed (else list it).
    pub sandbox: bool,
}

/// How one submission was rescored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "how", content = "why", rename_all = "kebab-case")]
pub enum How {
    /// Every call the grader made was answered from the transcript.
    Replayed,
    /// Graded in a sandbox: the grader made a call not recorded.
    Graded(String),
    /// Needs a sandbox (`--no-sandbox`): no result written.
    NeedsSandbox(String),
    /// Its transcript or a blob is not what was recorded: no result.
    Refused(String),
    /// Nothing for a grader to decide (the submission was refused before
    /// grading): its result is carried over as it was.
    Carried,
}

/// What a rescore did, per submission.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RescoreReport {
    /// Each submission, by name.
    pub submissions: Vec<(String, How)>,
    /// Sandboxes started (one per submission graded for real, resets aside).
    pub sandboxes: usize,
}

impl RescoreReport {
    /// Whether every submission has its result in the new folder.
    #[must_use]
    pub fn complete(&self) -> bool {
        self.submissions
            .iter()
            .all(|(_, how)| !matches!(how, How::NeedsSandbox(_) | How::Refused(_)))
    }
}

/// Why a rescore could not start.
#[derive(Debug, thiserror::Error)]
pub enum RescoreError {
    /// The grader could not be prepared.
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    /// An output folder could not be used.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The folder to rescore from is not an output folder.
    #[error("{0} is not an output folder of agh grade: {1}")]
    NotOutput(PathBuf, String),
    /// The new folder is the old one.
    #[error("--out must be a new folder, not the one rescored from")]
    SameFolder,
}

/// Rescoring `request`.
///
/// # Errors
/// [`RescoreError`] when it cannot start; a submission that cannot be
/// rescored is in the report instead.
pub async fn rescore(request: RescoreRequest) -> Result<RescoreReport, RescoreError> {
    if request.from.canonicalize().ok() == request.out.canonicalize().ok() {
        return Err(RescoreError::SameFolder);
    }
    let identity: crate::batch::journal::BatchIdentity =
        std::fs::read(request.from.join(crate::batch::BATCH_FILE))
            .map_err(|e| RescoreError::NotOutput(request.from.clone(), e.to_string()))
            .and_then(|bytes| {
                serde_json::from_slice(&bytes)
                    .map_err(|e| RescoreError::NotOutput(request.from.clone(), e.to_string()))
            })?;
    let results = crate::batch::journal::load_results(&request.from)?;
    let grader = PreparedGrader::prepare_offline(&request.plugin, request.config.clone()).await?;
    let lock = OutputLock::acquire(&request.out)?;
    let batch = format!("rescore-{}", std::process::id());
    let mut output = OutputDir::open(lock, &batch, &grader.key().plugin_sha256, OpenMode::New)?;
    let from = TranscriptDir::new(&request.from);
    let to = TranscriptDir::new(&request.out);
    let staging = tempfile::Builder::new()
        .prefix(".rescore-")
        .tempdir_in(&request.out)
        .map_err(|e| RescoreError::NotOutput(request.out.clone(), e.to_string()))?;
    let mut sandboxed: Option<Arc<PreparedGrader>> = None;
    let mut report = RescoreReport::default();
    let slots = tokio::sync::Semaphore::new(1);
    for old in results {
        let name = old.submission.clone();
        let how = match replay_one(&grader, &from, &old, staging.path()).await {
            Ok((mut result, entries)) => {
                result = mark_rescored(result, &old, &request.from, &identity);
                match carry(&from, &to, old.transcript.as_ref(), &entries) {
                    Ok(()) => {
                        result.transcript.clone_from(&old.transcript);
                        record(&mut output, &result);
                        How::Replayed
                    }
                    Err(why) => How::Refused(why),
                }
            }
            Err(Unreplayable::Carry) => {
                record(&mut output, &old);
                How::Carried
            }
            Err(Unreplayable::Refused(why)) => How::Refused(why),
            Err(Unreplayable::Diverged(why, snapshot)) if request.sandbox => {
                let real = match &sandboxed {
                    Some(real) => real.clone(),
                    None => {
                        let real = PreparedGrader::prepare(
                            &request.plugin,
                            request.config.clone(),
                            &mut |_| {},
                        )
                        .await?;
                        sandboxed = Some(real.clone());
                        real
                    }
                };
                report.sandboxes += 1;
                let graded = real
                    .grade(&snapshot, &batch, RetryPolicy::Once, &slots, Some(&to))
                    .await;
                match graded {
                    Some(result) => {
                        record(&mut output, &result);
                        How::Graded(why)
                    }
                    None => How::NeedsSandbox(why),
                }
            }
            Err(Unreplayable::Diverged(why, _)) => How::NeedsSandbox(why),
        };
        report.submissions.push((name, how));
    }
    // Sandboxes of what was graded for real are removed before agh exits.
    if let Some(real) = &sandboxed {
        real.settle().await;
    }
    Ok(report)
}

fn record(output: &mut OutputDir, result: &SubmissionResult) {
    if let Err(err) = output.record(result) {
        tracing::error!(submission = %result.submission, %err, "could not write the result");
    }
}

/// Why a submission could not be replayed.
enum Unreplayable {
    /// Nothing to replay: carry the result over.
    Carry,
    /// Its transcript or a blob is not what was recorded.
    Refused(String),
    /// The grader made a call not recorded; the submission, to grade.
    Diverged(String, Snapshot),
}

impl From<TranscriptError> for Unreplayable {
    fn from(err: TranscriptError) -> Self {
        Unreplayable::Refused(err.to_string())
    }
}

/// Replays `old`'s transcript with `grader`: the new result and the
/// transcript's entries.
async fn replay_one(
    grader: &PreparedGrader,
    from: &TranscriptDir,
    old: &SubmissionResult,
    staging: &Path,
) -> Result<(SubmissionResult, Vec<Entry>), Unreplayable> {
    let Some(reference) = &old.transcript else {
        return Err(if old.status == Status::InvalidSubmission {
            Unreplayable::Carry
        } else {
            Unreplayable::Refused(format!(
                "{} has no transcript (status {}); grade it with agh grade",
                old.submission,
                old.status.name()
            ))
        });
    };
    let entries = from.load(reference)?;
    let Some(Entry::Submission {
        name, files, pins, ..
    }) = entries.first().cloned()
    else {
        return Err(Unreplayable::Refused("no submission entry".into()));
    };
    if name != old.submission {
        return Err(Unreplayable::Refused(format!(
            "the transcript is of {name:?}, not {:?}",
            old.submission
        )));
    }
    let dir = staging.join(&name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| Unreplayable::Refused(e.to_string()))?;
    for file in &files {
        let path = crate::sandbox::check_relative(&file.path)
            .map(|()| dir.join(&file.path))
            .map_err(|e| Unreplayable::Refused(format!("{:?}: {e}", file.path)))?;
        match &file.contents {
            None => std::fs::create_dir_all(&path),
            Some(kept) => {
                if !kept.stored {
                    return Err(Unreplayable::Refused(format!(
                        "{} was past the transcript's cap",
                        file.path
                    )));
                }
                let bytes = from.read_blob(&kept.blob)?;
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| Unreplayable::Refused(e.to_string()))?;
                }
                std::fs::write(&path, bytes).and_then(|()| {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = if file.executable { 0o755 } else { 0o644 };
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                })
            }
        }
        .map_err(|e| Unreplayable::Refused(format!("{}: {e}", path.display())))?;
    }
    let snapshot = Snapshot::take(&name, &dir)
        .await
        .map_err(|failed| Unreplayable::Refused(failed.error.unwrap_or_default()))?;
    let digest = snapshot
        .tree
        .digest()
        .map_err(|e| Unreplayable::Refused(e.to_string()))?;
    let recorded = old
        .provenance
        .as_ref()
        .map(|p| p.submission_sha256.clone())
        .unwrap_or_default();
    if digest != recorded {
        return Err(Unreplayable::Refused(format!(
            "the submission's files in the transcript are not those its result recorded ({digest} != {recorded})"
        )));
    }
    let calls: Vec<Entry> = entries
        .iter()
        .skip(1)
        .filter(|e| !matches!(e, Entry::Cut { .. } | Entry::Log { .. }))
        .cloned()
        .collect();
    let replay = Replay::new(from.clone(), grader.sandbox_spec("rescore", &name), calls);
    let result = grader
        .grade_in(&snapshot, replay.port(), digest, pins)
        .await;
    match replay.stopped() {
        None => Ok((result, entries)),
        Some(Stopped::Diverged(why)) => Err(Unreplayable::Diverged(why, snapshot)),
        Some(Stopped::Refused(why)) => Err(Unreplayable::Refused(why)),
    }
}

/// The rescored result: its provenance says so, and keeps what described
/// the sandbox that gave the replies.
fn mark_rescored(
    mut result: SubmissionResult,
    old: &SubmissionResult,
    from: &Path,
    identity: &crate::batch::journal::BatchIdentity,
) -> SubmissionResult {
    if let (Some(new), Some(was)) = (result.provenance.as_mut(), old.provenance.as_ref()) {
        new.image_id.clone_from(&was.image_id);
        new.runtime = was.runtime;
        new.runtime_verified = was.runtime_verified;
        new.insecure = was.insecure;
        new.rescored = Some(Rescored {
            from: from.display().to_string(),
            batch: identity.id.clone(),
            recorded_by: was.plugin_sha256.clone(),
        });
    }
    result
}

/// Copies the transcript `reference` (whose `entries` were loaded, and so
/// checked) and every blob they use from `from` into `to`, each blob
/// checked against its digest.
///
/// # Errors
/// What could not be copied.
pub fn carry(
    from: &TranscriptDir,
    to: &TranscriptDir,
    reference: Option<&TranscriptRef>,
    entries: &[Entry],
) -> Result<(), String> {
    let Some(reference) = reference else {
        return Ok(());
    };
    let mut blobs = BTreeSet::new();
    for entry in entries {
        for kept in kept_in(entry) {
            if kept.stored {
                blobs.insert(kept.blob.sha256.clone());
            }
        }
        // Stdin is matched by its digest; its bytes are kept for reading.
        for sha256 in stdin_of(entry) {
            if from.root().join(super::BLOBS_DIR).join(sha256).is_file() {
                blobs.insert(sha256.to_string());
            }
        }
    }
    // Copies `relative`; a blob (`sha256` given) only when its bytes are
    // those its name says.
    let copy = |relative: &Path, sha256: Option<&str>| -> Result<(), String> {
        let (source, target) = (from.root().join(relative), to.root().join(relative));
        if target.is_file() {
            return Ok(());
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        // A copy, never a link: a blob with a second link is refused
        // when read (a planted link could point anywhere).
        let bytes = crate::layout::read_regular_file(&source)
            .map_err(|e| format!("copying {}: {e}", source.display()))?;
        if sha256.is_some_and(|sha256| super::sha256(&bytes) != sha256) {
            return Err(format!(
                "{} does not hold the bytes recorded; refusing to carry it",
                source.display()
            ));
        }
        let folder = target.parent().unwrap_or(to.root());
        crate::layout::write_atomic(folder, &target, &bytes)
            .map_err(|e| format!("writing {}: {e}", target.display()))
    };
    for sha256 in blobs {
        copy(&Path::new(super::BLOBS_DIR).join(&sha256), Some(&sha256))?;
    }
    copy(Path::new(&reference.path), None)
}

/// The blobs an entry refers to.
#[must_use]
pub fn kept_in(entry: &Entry) -> Vec<&Kept> {
    fn ran(r: &super::Ran) -> [&Kept; 2] {
        [&r.stdout, &r.stderr]
    }
    match entry {
        Entry::Submission { files, .. } => {
            files.iter().filter_map(|f| f.contents.as_ref()).collect()
        }
        Entry::Run { reply: Ok(r), .. } => ran(r).to_vec(),
        Entry::Converse {
            reply: Ok((j, s)), ..
        } => [ran(j), ran(s)].concat(),
        Entry::WriteFile { contents, .. } => vec![contents],
        Entry::ReadFile {
            reply: Ok((kept, _)),
            ..
        } => vec![kept],
        _ => Vec::new(),
    }
}

/// The digests of the stdin an entry's commands were given.
fn stdin_of(entry: &Entry) -> Vec<&str> {
    match entry {
        Entry::Run { call, .. } => call.stdin_sha256.iter().map(String::as_str).collect(),
        Entry::Converse { judge, student, .. } => judge
            .stdin_sha256
            .iter()
            .chain(&student.stdin_sha256)
            .map(String::as_str)
            .collect(),
        _ => Vec::new(),
    }
}
