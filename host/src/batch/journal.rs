//! The output folder of a batch: an exclusive lock, the batch's identity,
//! and an append-only journal of finished submissions, so a batch killed at
//! any point resumes with exactly one result per submission.
//!
//! ```text
//! OUT/.lock                  held (flock) while a batch writes here; taken
//!                            before anything else in OUT is read or written
//! OUT/batch.json             { "id": ..., "plugin_sha256": ... }: the container label
//! OUT/journal.jsonl          one line per finished submission, fsync'd (and
//!                            per infra error, with its attempts so far)
//! OUT/results/<name>.json    one result per submission, written atomically
//! ```
//!
//! Results live in a folder of their own, so no submission name can collide
//! with agh's own files; every name is checked by [`crate::names`] before
//! it becomes a file name.
//!
//! A result is written before its journal line. Killed between the two, the
//! submission is graded again on resume and its result file replaced
//! atomically: still exactly one. A torn last journal line (a kill during
//! the append) is ignored.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::grading::{ResultSink, SinkError};
use crate::layout::write_atomic;
pub use crate::report::{RESULTS_DIR, result_path};
use crate::report::{Status, SubmissionResult};

/// Name of the journal file.
pub const JOURNAL_FILE: &str = "journal.jsonl";
/// Name of the batch identity file.
pub const BATCH_FILE: &str = "batch.json";
const LOCK_FILE: &str = ".lock";

/// What to do with an output folder that already holds a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Refuse it: nothing is overwritten without being asked.
    New,
    /// Continue it: keep its identity and finished submissions.
    Resume,
    /// Grade everything again: start its journal afresh.
    Regrade,
}

/// The version of an output folder's own files (`batch.json` and the
/// journal's lines) this agh writes. A folder of this version or an
/// earlier one (none: from before versions) is read; a later one is
/// refused, untouched.
pub const OUTPUT_SCHEMA: u32 = 1;

/// The identity of the batch an output folder belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchIdentity {
    /// The version of the folder's files ([`OUTPUT_SCHEMA`] when written here).
    #[serde(default)]
    pub schema: u32,
    /// Label of the batch's containers.
    pub id: String,
    /// The grader that grades it.
    pub plugin_sha256: String,
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Submission name.
    pub submission: String,
    /// sha256 of its files.
    pub sha256: String,
    /// How it ended.
    pub status: Status,
    /// Its score.
    pub score: f64,
    /// For an infra error: how many attempts ended in one, all runs of the
    /// batch together.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub infra_attempts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Why an output folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Another agh holds the folder.
    #[error(
        "{0} is in use by another agh (its .lock is held); wait for it or choose another --out"
    )]
    Locked(PathBuf),
    /// The folder holds a batch and neither --resume nor --regrade was given.
    #[error(
        "{0} holds an earlier batch; pass --resume to continue it, or --regrade to grade everything again"
    )]
    Exists(PathBuf),
    /// The folder was written by a newer agh.
    #[error(
        "{path} was written by a newer agh (output schema {schema}; this agh reads up to {OUTPUT_SCHEMA}); \
         use that agh, or another --out"
    )]
    Newer {
        /// The folder.
        path: PathBuf,
        /// The version it holds.
        schema: u32,
    },
    /// The folder's batch was graded by another grader.
    #[error("{path} was graded by another grader (sha256 {was}); use another --out, or --regrade")]
    OtherGrader {
        /// The folder.
        path: PathBuf,
        /// The grader recorded there.
        was: String,
    },
    /// A result names a submission that cannot be a file name.
    #[error("a result for {name:?} cannot be written: the name {why}")]
    BadName {
        /// The name, as it came.
        name: String,
        /// The rule it breaks.
        why: crate::names::NameError,
    },
    /// A results folder or one of its results cannot be read.
    #[error("cannot read {}: {source}", .path.display())]
    Unreadable {
        /// The folder or file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file in the results folder is not an agh result.
    #[error("{} is not an agh result: {source}", .path.display())]
    NotAResult {
        /// The file.
        path: PathBuf,
        /// What the JSON reader found.
        source: serde_json::Error,
    },
    /// A result was written by a newer agh, in a schema this one cannot read.
    #[error(
        "{} was written by a newer agh (result schema {schema}; this agh reads up to {}): \
         read it with that agh, or grade again with --regrade",
        .path.display(),
        crate::report::RESULT_SCHEMA
    )]
    NewerResult {
        /// The file.
        path: PathBuf,
        /// The schema it has.
        schema: u32,
    },
    /// A result names a submission that cannot be a file name.
    #[error("{}: the submission name {why}", .path.display())]
    UnfileableResult {
        /// The file.
        path: PathBuf,
        /// The rule its name breaks.
        why: crate::names::NameError,
    },
    /// A result is filed under another name than its submission's
    /// (planted or copied by hand).
    #[error("{} holds the result of {holds:?}; a result must be filed under its own name", .path.display())]
    Misfiled {
        /// The file.
        path: PathBuf,
        /// The submission the result names.
        holds: String,
    },
    /// The submission, with this content, already has a final result here.
    #[error("{0:?} already has a final result in this folder; it is not recorded twice")]
    AlreadyFinal(String),
    /// The folder, or one above it, is not private to the user running agh.
    #[error(transparent)]
    NotPrivate(#[from] crate::private_dir::PrivateError),
    /// Reading or writing failed (a full disk among others).
    #[error("{context}: {source}")]
    Io {
        /// What agh was doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl OutputError {
    /// Whose doing the failure is: the host's when writing failed (a full
    /// disk among others), else the operator's, for the folder they named.
    #[must_use]
    pub fn blame(&self) -> crate::blame::Blame {
        use crate::blame::Blame;
        match self {
            OutputError::Io { .. } | OutputError::AlreadyFinal(_) => Blame::Host,
            OutputError::Locked(_)
            | OutputError::Exists(_)
            | OutputError::Newer { .. }
            | OutputError::OtherGrader { .. }
            | OutputError::BadName { .. }
            | OutputError::Unreadable { .. }
            | OutputError::NotAResult { .. }
            | OutputError::NewerResult { .. }
            | OutputError::UnfileableResult { .. }
            | OutputError::Misfiled { .. }
            | OutputError::NotPrivate(_) => Blame::Operator,
        }
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> OutputError {
    let context = context.into();
    move |source| OutputError::Io { context, source }
}

/// An output folder's lock, held by this process; nothing else in the
/// folder has been read or written yet.
pub struct OutputLock {
    path: PathBuf,
    lock: File,
}

impl OutputLock {
    /// Creates `path` if needed (private: 0700) and takes its lock,
    /// touching nothing else. The folder must be the user's own, with no
    /// other user able to write in it or in any folder above it: it holds
    /// students' code, every score, and files agh (often root) writes, so
    /// links another user planted there would redirect those writes.
    ///
    /// # Errors
    /// [`OutputError::NotPrivate`] for a folder another user owns or can
    /// write; [`OutputError::Locked`] when another agh holds it; I/O errors.
    pub fn acquire(path: &Path) -> Result<Self, OutputError> {
        crate::private_dir::open_dir_for(path, crate::private_dir::Purpose::Output)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path.join(LOCK_FILE))
            .map_err(io("opening the lock file"))?;
        if lock.try_lock().is_err() {
            return Err(OutputError::Locked(path.into()));
        }
        Ok(Self {
            path: path.into(),
            lock,
        })
    }

    /// The folder.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// An output folder held by this process.
pub struct OutputDir {
    path: PathBuf,
    _lock: File,
    journal: File,
    identity: BatchIdentity,
    done: HashMap<String, JournalEntry>,
}

impl OutputDir {
    /// The folder.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens a locked folder for a batch (see [`OpenMode`]).
    ///
    /// # Errors
    /// [`OutputError`] saying what to do.
    pub fn open(
        lock: OutputLock,
        new_id: &str,
        plugin_sha256: &str,
        mode: OpenMode,
    ) -> Result<Self, OutputError> {
        let OutputLock { path, lock } = lock;
        let path = path.as_path();
        let identity_file = path.join(BATCH_FILE);
        let earlier: Option<BatchIdentity> = std::fs::read(&identity_file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let journal_path = path.join(JOURNAL_FILE);
        let identity = match earlier {
            Some(earlier) if earlier.schema > OUTPUT_SCHEMA => {
                return Err(OutputError::Newer {
                    path: path.into(),
                    schema: earlier.schema,
                });
            }
            Some(_) if mode == OpenMode::Regrade => BatchIdentity {
                schema: OUTPUT_SCHEMA,
                id: new_id.into(),
                plugin_sha256: plugin_sha256.into(),
            },
            Some(earlier) if mode == OpenMode::Resume => {
                if earlier.plugin_sha256 != plugin_sha256 {
                    return Err(OutputError::OtherGrader {
                        path: path.into(),
                        was: earlier.plugin_sha256,
                    });
                }
                BatchIdentity {
                    schema: OUTPUT_SCHEMA,
                    ..earlier
                }
            }
            Some(_) => return Err(OutputError::Exists(path.into())),
            None => BatchIdentity {
                schema: OUTPUT_SCHEMA,
                id: new_id.into(),
                plugin_sha256: plugin_sha256.into(),
            },
        };
        let results = path.join(RESULTS_DIR);
        std::fs::create_dir_all(&results).map_err(io(format!("creating {}", results.display())))?;
        let done = if mode == OpenMode::Resume {
            read_journal(&journal_path)?
        } else {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&journal_path)
                .map_err(io("starting the journal"))?;
            HashMap::new()
        };
        let bytes = serde_json::to_vec_pretty(&identity)
            .map_err(|e| io("batch.json")(std::io::Error::other(e)))?;
        write_atomic(path, &identity_file, &bytes)
            .map_err(io(format!("writing {}", identity_file.display())))?;
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&journal_path)
            .map_err(io("opening the journal"))?;
        Ok(Self {
            path: path.into(),
            _lock: lock,
            journal,
            identity,
            done,
        })
    }

    /// The batch's identity (its container label).
    #[must_use]
    pub fn identity(&self) -> &BatchIdentity {
        &self.identity
    }

    /// True when `name` with these contents already has a final result
    /// (an infra error is not final: a resume tries it again).
    #[must_use]
    pub fn is_done(&self, name: &str, sha256: &str) -> bool {
        self.done
            .get(name)
            .is_some_and(|e| e.sha256 == sha256 && e.status.is_final())
            && result_path(&self.path, name).is_ok_and(|file| file.is_file())
    }

    /// How many attempts at `name` ended in infra errors in earlier runs of
    /// the batch. Counted by name: an infra error has an outside cause, not
    /// the submission's content (and one before intake has no digest).
    #[must_use]
    pub fn infra_attempts(&self, name: &str) -> u32 {
        self.done
            .get(name)
            .filter(|e| !e.status.is_final())
            .map_or(0, |e| e.infra_attempts)
    }

    /// True when the journal holds a submission the grader graded.
    #[must_use]
    pub fn graded_any(&self) -> bool {
        self.done.values().any(|e| e.status == Status::Graded)
    }

    /// How many submissions the journal already holds a final result for.
    #[must_use]
    pub fn done_count(&self) -> usize {
        self.done.values().filter(|e| e.status.is_final()).count()
    }

    /// Writes `result` atomically, then appends its journal line and
    /// fsyncs. An infra error's line counts its attempts (this run's and
    /// earlier runs'), so a resume tries it again without paying them twice.
    ///
    /// # Errors
    /// [`OutputError::Io`] (a full disk among others); what was written
    /// before stays whole.
    pub fn record(&mut self, result: &SubmissionResult) -> Result<(), OutputError> {
        let sha256 = result
            .provenance
            .as_ref()
            .map(|p| p.submission_sha256.clone())
            .unwrap_or_default();
        if self
            .done
            .get(&result.submission)
            .is_some_and(|e| e.sha256 == sha256 && e.status.is_final())
        {
            return Err(OutputError::AlreadyFinal(result.submission.clone()));
        }
        let file =
            result_path(&self.path, &result.submission).map_err(|why| OutputError::BadName {
                name: result.submission.clone(),
                why,
            })?;
        let bytes = serde_json::to_vec_pretty(result)
            .map_err(|e| io("encoding a result")(std::io::Error::other(e)))?;
        write_atomic(&self.path.join(RESULTS_DIR), &file, &bytes)
            .map_err(io(format!("writing {}", file.display())))?;
        let infra_attempts = if !result.status.is_final() {
            let this_run = u32::try_from(result.retries.len() + 1).unwrap_or(u32::MAX);
            self.infra_attempts(&result.submission)
                .saturating_add(this_run)
        } else {
            0
        };
        let entry = JournalEntry {
            submission: result.submission.clone(),
            sha256,
            status: result.status,
            score: result.score,
            infra_attempts,
        };
        let mut line = serde_json::to_vec(&entry)
            .map_err(|e| io("encoding the journal")(std::io::Error::other(e)))?;
        line.push(b'\n');
        self.journal
            .write_all(&line)
            .map_err(io("appending to the journal"))?;
        self.journal
            .sync_data()
            .map_err(io("syncing the journal"))?;
        self.done.insert(entry.submission.clone(), entry);
        Ok(())
    }
}

/// Reads the journal; a torn or unreadable line is skipped (its submission
/// is graded again).
fn read_journal(path: &Path) -> Result<HashMap<String, JournalEntry>, OutputError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(err) => return Err(io("reading the journal")(err)),
    };
    let mut done = HashMap::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(io("reading the journal"))?;
        match serde_json::from_str::<JournalEntry>(&line) {
            Ok(entry) => {
                done.insert(entry.submission.clone(), entry);
            }
            Err(err) => tracing::warn!(%err, "skipping a torn journal line"),
        }
    }
    Ok(done)
}

/// Reads every result in output folder `dir`, sorted by submission: the
/// current result schema and the ones before it; a later one is refused
/// rather than misread.
///
/// # Errors
/// When the folder or a result cannot be read, or a result is not one,
/// is newer, or is filed under another name.
pub fn load_results(dir: &Path) -> Result<Vec<SubmissionResult>, OutputError> {
    let folder = dir.join(RESULTS_DIR);
    let unreadable = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OutputError::Unreadable { path, source }
    };
    let read = std::fs::read_dir(&folder).map_err(unreadable(&folder))?;
    let mut results = Vec::new();
    for entry in read.filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let mut file = crate::layout::open_regular_file(&path).map_err(unreadable(&path))?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).map_err(unreadable(&path))?;
        let result: SubmissionResult = match serde_json::from_slice(&bytes) {
            Ok(result) => result,
            Err(source) => return Err(OutputError::NotAResult { path, source }),
        };
        if result.schema > crate::report::RESULT_SCHEMA {
            return Err(OutputError::NewerResult {
                path,
                schema: result.schema,
            });
        }
        let filed = match result_path(dir, &result.submission) {
            Ok(filed) => filed,
            Err(why) => return Err(OutputError::UnfileableResult { path, why }),
        };
        if filed != path {
            return Err(OutputError::Misfiled {
                path,
                holds: result.submission,
            });
        }
        results.push(result);
    }
    results.sort_by(|a: &SubmissionResult, b| a.submission.cmp(&b.submission));
    Ok(results)
}

impl ResultSink for OutputDir {
    fn record(&mut self, result: &SubmissionResult) -> Result<(), SinkError> {
        OutputDir::record(self, result).map_err(SinkError::from)
    }

    fn is_done(&self, name: &str, sha256: &str) -> bool {
        OutputDir::is_done(self, name, sha256)
    }

    fn infra_attempts(&self, name: &str) -> u32 {
        OutputDir::infra_attempts(self, name)
    }

    fn graded_any(&self) -> bool {
        OutputDir::graded_any(self)
    }

    fn results(&self) -> Result<Vec<SubmissionResult>, SinkError> {
        load_results(&self.path).map_err(SinkError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Results carry their schema; a reader takes this one and those
    /// before it (none: results from before schemas), and refuses a later
    /// one rather than misread it.
    #[test]
    fn results_are_read_by_their_schema() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join(crate::report::RESULTS_DIR);
        std::fs::create_dir(&results).unwrap();
        let mut graded = SubmissionResult::failed("alice", Status::Graded, String::new());
        graded.score = 1.0;
        let mut written = serde_json::to_value(graded).unwrap();
        assert_eq!(written["schema"], crate::report::RESULT_SCHEMA);
        written.as_object_mut().unwrap().remove("schema");
        std::fs::write(results.join("alice.json"), written.to_string()).unwrap();
        let read = load_results(dir.path()).unwrap();
        assert_eq!((read.len(), read[0].schema, read[0].score), (1, 0, 1.0));
        written["schema"] = (crate::report::RESULT_SCHEMA + 1).into();
        std::fs::write(results.join("alice.json"), written.to_string()).unwrap();
        let err = load_results(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("written by a newer agh (result schema 2"),
            "{err}"
        );
    }

    fn open_dir(
        path: &Path,
        id: &str,
        sha: &str,
        mode: OpenMode,
    ) -> Result<OutputDir, OutputError> {
        OutputDir::open(OutputLock::acquire(path)?, id, sha, mode)
    }

    #[test]
    fn results_cannot_leave_their_folder_or_replace_agh_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = open_dir(dir.path(), "a", "sha", OpenMode::New).unwrap();
        for name in ["..", ".", "", "../batch", "a/b"] {
            assert!(
                matches!(
                    out.record(&result(name, Status::Graded)),
                    Err(OutputError::BadName { .. })
                ),
                "{name:?}"
            );
        }
        out.record(&result("batch", Status::Graded)).unwrap();
        out.record(&result("journal", Status::Graded)).unwrap();
        let identity: BatchIdentity =
            serde_json::from_slice(&std::fs::read(dir.path().join(BATCH_FILE)).unwrap()).unwrap();
        assert_eq!(
            identity.id, "a",
            "a submission named batch leaves batch.json alone"
        );
        assert!(dir.path().join("results/batch.json").is_file());
        assert_eq!(
            read_journal(&dir.path().join(JOURNAL_FILE)).unwrap().len(),
            2
        );
    }

    fn result(name: &str, status: Status) -> SubmissionResult {
        let mut r = SubmissionResult::failed(name, status, String::new());
        r.error = None;
        r
    }

    #[test]
    fn a_folder_with_a_batch_needs_resume_or_regrade() {
        let dir = tempfile::tempdir().unwrap();
        drop(open_dir(dir.path(), "a", "sha", OpenMode::New).unwrap());
        assert!(matches!(
            open_dir(dir.path(), "b", "sha", OpenMode::New),
            Err(OutputError::Exists(_))
        ));
        let resumed = open_dir(dir.path(), "b", "sha", OpenMode::Resume).unwrap();
        assert_eq!(
            resumed.identity().id,
            "a",
            "resume keeps the batch's container label"
        );
        drop(resumed);
        assert!(matches!(
            open_dir(dir.path(), "c", "other", OpenMode::Resume),
            Err(OutputError::OtherGrader { .. })
        ));
    }

    #[test]
    fn resume_on_a_fresh_folder_starts_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = open_dir(&dir.path().join("new"), "a", "sha", OpenMode::Resume).unwrap();
        out.record(&result("first", Status::Graded)).unwrap();
        assert!(out.is_done("first", ""));
    }

    #[test]
    fn the_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let _held = open_dir(dir.path(), "a", "sha", OpenMode::New).unwrap();
        assert!(matches!(
            open_dir(dir.path(), "a", "sha", OpenMode::Resume),
            Err(OutputError::Locked(_))
        ));
    }

    #[test]
    fn resume_skips_finished_and_retries_infra_errors_and_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut out = open_dir(dir.path(), "a", "sha", OpenMode::New).unwrap();
            out.record(&result("done", Status::Graded)).unwrap();
            out.record(&result("flaky", Status::InfraError)).unwrap();
        }
        let mut journal = OpenOptions::new()
            .append(true)
            .open(dir.path().join(JOURNAL_FILE))
            .unwrap();
        journal
            .write_all(b"{\"submission\":\"torn\",\"sha")
            .unwrap();
        let out = open_dir(dir.path(), "b", "sha", OpenMode::Resume).unwrap();
        assert!(out.is_done("done", ""));
        assert!(!out.is_done("flaky", ""), "infra errors are retried");
        assert!(!out.is_done("torn", ""));
        assert!(
            !out.is_done("done", "changed"),
            "a changed submission is graded again"
        );
        assert_eq!(out.done_count(), 1);
    }

    /// `batch.json` carries the folder's schema: an unversioned folder is
    /// resumed (and marked as this version), a later one refused untouched.
    #[test]
    fn output_folders_are_read_by_their_schema() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut out = open_dir(dir.path(), "a", "sha", OpenMode::New).unwrap();
            out.record(&result("done", Status::Graded)).unwrap();
            assert_eq!(out.identity().schema, OUTPUT_SCHEMA);
        }
        let file = dir.path().join(BATCH_FILE);
        let mut identity: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        identity.as_object_mut().unwrap().remove("schema");
        std::fs::write(&file, identity.to_string()).unwrap();
        {
            let out = open_dir(dir.path(), "b", "sha", OpenMode::Resume).unwrap();
            assert!(out.is_done("done", ""));
            assert_eq!(out.identity().schema, OUTPUT_SCHEMA);
        }
        identity["schema"] = (OUTPUT_SCHEMA + 1).into();
        std::fs::write(&file, identity.to_string()).unwrap();
        let journal = std::fs::read(dir.path().join(JOURNAL_FILE)).unwrap();
        for mode in [OpenMode::Resume, OpenMode::Regrade] {
            let err = open_dir(dir.path(), "c", "sha", mode).err().unwrap();
            assert!(err.to_string().contains("written by a newer agh"), "{err}");
        }
        assert_eq!(
            std::fs::read(dir.path().join(JOURNAL_FILE)).unwrap(),
            journal
        );
    }

    /// An infra error's attempts are journalled and add up across runs, so
    /// `--resume` gives it one more try rather than a full set again; a
    /// later result replaces it.
    #[test]
    fn a_resume_does_not_pay_earlier_infra_attempts_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut flaky = result("flaky", Status::InfraError);
        flaky.retries = vec![
            crate::report::Retry {
                attempt: 1,
                reason: "daemon".into(),
            },
            crate::report::Retry {
                attempt: 2,
                reason: "daemon".into(),
            },
        ];
        {
            let mut out = open_dir(dir.path(), "a", "sha", OpenMode::New).unwrap();
            out.record(&flaky).unwrap();
            assert_eq!(out.infra_attempts("flaky"), 3);
        }
        {
            let mut out = open_dir(dir.path(), "a", "sha", OpenMode::Resume).unwrap();
            assert_eq!(out.infra_attempts("flaky"), 3);
            assert!(!out.is_done("flaky", ""));
            out.record(&result("flaky", Status::InfraError)).unwrap();
            assert_eq!(out.infra_attempts("flaky"), 4);
        }
        {
            let mut out = open_dir(dir.path(), "a", "sha", OpenMode::Resume).unwrap();
            assert_eq!(out.infra_attempts("flaky"), 4);
            out.record(&result("flaky", Status::Graded)).unwrap();
            assert_eq!(out.infra_attempts("flaky"), 0);
            assert!(out.is_done("flaky", ""));
        }
        let again = open_dir(dir.path(), "a", "sha", OpenMode::Resume).unwrap();
        assert!(again.is_done("flaky", ""));
        assert_eq!(again.done_count(), 1);
    }
}
