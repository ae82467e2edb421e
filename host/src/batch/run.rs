//! A whole grading run, as `agh grade` does it: the output folder's lock
//! first, then intake, the batch, resume filtering, grading with every
//! result recorded as it finishes, clean-up, the summary read back and
//! the exports. The caller parses, prints and turns the ending into an
//! exit code; everything else is here.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Batch, BatchError, OpenMode, OutputDir, OutputError, OutputLock, Submission, intake};
use crate::config::Config;
use crate::grading::{MemorySink, PreparedGrader, ResultSink};
use crate::report::SubmissionResult;
use crate::report::export::{self, Format};
use crate::sandbox::{HostTree, MAX_SUBMISSION_BYTES};

/// How long in-flight submissions may finish after an interrupt before they
/// are abandoned and their containers removed.
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(60);

/// Where the submissions are.
#[derive(Debug, Clone)]
pub enum Submissions {
    /// One submission: a folder, or a zip or tarball.
    One(PathBuf),
    /// A folder holding one folder, zip or tarball per submission.
    Folder(PathBuf),
}

/// Everything a run needs.
#[derive(Debug)]
pub struct RunRequest {
    /// The grader component.
    pub plugin: PathBuf,
    /// The operator's configuration.
    pub config: Config,
    /// What to grade.
    pub submissions: Submissions,
    /// Only shard K of N (1-based).
    pub shard: Option<(u32, u32)>,
    /// The output folder, if any.
    pub out: Option<PathBuf>,
    /// New batch, resume or regrade (with an output folder).
    pub mode: OpenMode,
    /// Label for the batch's containers; made up when none.
    pub batch_id: Option<String>,
    /// Submissions graded at once.
    pub jobs: usize,
    /// Formats also written into the output folder.
    pub formats: Vec<Format>,
}

/// What a run tells its caller while it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// Grading starts: `todo` of `total` submissions need it.
    Starting {
        /// Submissions found (after sharding).
        total: usize,
        /// Of those, not yet graded in the output folder.
        todo: usize,
    },
    /// The grader is being compiled (its first use), or was.
    Loading(crate::plugin::LoadNotice),
    /// Containers an earlier run of this batch left were removed.
    LeftoversRemoved(usize),
    /// One submission's result, already on disk when there is an output folder.
    Graded(&'a SubmissionResult),
    /// A result could not be written: the batch stops taking work.
    WriteFailed(&'a str),
    /// The interrupt came: in-flight submissions get [`INTERRUPT_GRACE`].
    Interrupted,
    /// Something worth the operator's attention that does not stop the run.
    Warning(String),
}

/// How a run ended once grading had started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Every submission was graded (whatever its status).
    Finished,
    /// Interrupted: run again with resume to continue.
    Interrupted,
    /// The grader failed on its first submissions without grading one.
    GraderBroken,
    /// A result or an export could not be written.
    WriteFailed(String),
}

/// A finished run.
#[derive(Debug)]
pub struct RunReport {
    /// The whole batch's results (earlier runs' too, with an output
    /// folder), sorted by submission.
    pub results: Vec<SubmissionResult>,
    /// How it ended.
    pub ending: Ending,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The submissions named cannot be taken in.
    #[error(transparent)]
    Submissions(#[from] intake::IntakeError),
    /// The output folder cannot be used.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The grader, the policy or the host refused the batch.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// A host resource agh needs is unusable.
    #[error("{0}")]
    Host(String),
}

impl RunError {
    /// Whose doing the failure is.
    #[must_use]
    pub fn blame(&self) -> crate::blame::Blame {
        match self {
            RunError::Submissions(err) => err.blame(),
            RunError::Output(err) => err.blame(),
            RunError::Batch(err) => err.blame(),
            RunError::Host(_) => crate::blame::Blame::Host,
        }
    }
}

/// Where archives are unpacked: a folder of agh's own inside the output
/// folder (whose lock is held), or a fresh private temporary folder. The
/// former is removed explicitly while the lock is still held (a batch that
/// stops early leaves it to the next run, which clears it under its lock);
/// removing it after the lock is released could delete another run's.
enum Staging {
    InOutput(PathBuf),
    Temporary(tempfile::TempDir),
}

impl Staging {
    fn path(&self) -> &Path {
        match self {
            Staging::InOutput(path) => path,
            Staging::Temporary(dir) => dir.path(),
        }
    }
}

/// Grades `request`. `interrupt` is called for a future that completes at
/// an interrupt (Ctrl-C): the first stops taking submissions and lets those
/// in flight finish within [`INTERRUPT_GRACE`], a second abandons them.
///
/// # Errors
/// [`RunError`] when grading could not start; nothing was graded then.
pub async fn run<F: Future<Output = ()>>(
    request: RunRequest,
    mut interrupt: impl FnMut() -> F,
    mut on_event: impl FnMut(Event<'_>) + Send,
) -> Result<RunReport, RunError> {
    // The output folder's lock comes first: a second agh pointed at a
    // folder a running batch holds must touch nothing in it.
    let lock = request
        .out
        .as_deref()
        .map(OutputLock::acquire)
        .transpose()?;
    let staging = match &lock {
        Some(lock) => {
            let path = lock.path().join(".staging");
            let _ = std::fs::remove_dir_all(&path);
            Staging::InOutput(path)
        }
        None => Staging::Temporary(
            tempfile::Builder::new()
                .prefix("agh-staging-")
                .tempdir()
                .map_err(|err| RunError::Host(format!("cannot create a staging folder: {err}")))?,
        ),
    };
    let mut submissions = match &request.submissions {
        Submissions::One(one) => intake::single(one, staging.path()).map(|found| vec![found]),
        Submissions::Folder(many) => intake::discover(many, staging.path()),
    }?;
    if let Some((k, n)) = request.shard {
        submissions = intake::shard(submissions, k, n);
    }
    let new_id = request.batch_id.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("{}-{now}", std::process::id())
    });
    let grader = PreparedGrader::prepare(&request.plugin, request.config, &mut |notice| {
        on_event(Event::Loading(notice));
    })
    .await?;
    let mut output = lock
        .map(|lock| OutputDir::open(lock, &new_id, &grader.key().plugin_sha256, request.mode))
        .transpose()?;
    let batch_id = output.as_ref().map_or(new_id, |o| o.identity().id.clone());
    let transcripts = output
        .as_ref()
        .map(|o| crate::transcript::TranscriptDir::new(o.path()));
    // Under the folder's lock: what a killed run was writing goes.
    if let Some(dir) = &transcripts {
        dir.remove_partials();
    }
    let batch = Batch::recording(grader, batch_id, transcripts);
    if let Ok(removed) = batch.remove_leftovers().await
        && removed > 0
    {
        on_event(Event::LeftoversRemoved(removed));
    }
    let mut memory = MemorySink::default();
    let sink: &mut dyn ResultSink = match output.as_mut() {
        Some(folder) => folder,
        None => &mut memory,
    };
    if sink.graded_any() {
        batch.grader_worked_before();
    }
    let total = submissions.len();
    // A sink that holds nothing yet (no output folder) has nothing to skip,
    // so nothing is hashed before grading.
    let resuming = request.out.is_some();
    let todo = if resuming {
        pending(submissions, &*sink)
    } else {
        submissions
    };
    let todo = in_an_order_no_student_chooses(todo);
    on_event(Event::Starting {
        total,
        todo: todo.len(),
    });

    let mut write_error: Option<String> = None;
    // Told from inside grading and beside it, never at the same moment.
    let events = std::cell::RefCell::new(&mut on_event);
    let tell = |event: Event<'_>| (events.borrow_mut())(event);
    let interrupted = {
        let grading = batch.grade_all(todo, request.jobs, |result| {
            if let Err(err) = sink.record(result) {
                if write_error.is_none() {
                    let message = err.to_string();
                    tell(Event::WriteFailed(&message));
                    write_error = Some(message);
                }
                batch.interrupt();
            }
            tell(Event::Graded(result));
        });
        tokio::pin!(grading);
        tokio::select! {
            () = &mut grading => false,
            () = interrupt() => {
                batch.interrupt();
                tell(Event::Interrupted);
                tokio::select! {
                    () = &mut grading => {}
                    () = tokio::time::sleep(INTERRUPT_GRACE) => {}
                    () = interrupt() => {}
                }
                true
            }
        }
    };
    // Containers a failed teardown left (a daemon restart, an interrupt
    // that abandoned submissions mid-way) go now, not at the next run.
    if let Err(err) = batch.remove_leftovers().await {
        on_event(Event::Warning(format!(
            "could not remove this batch's leftover containers ({err}); `agh sandbox clean` will"
        )));
    }
    if let Staging::InOutput(path) = &staging {
        let _ = std::fs::remove_dir_all(path);
    }
    // The summary is read back from the sink: with an output folder the
    // whole batch, earlier runs included, so nothing was held here.
    let mut results = Vec::new();
    if write_error.is_none() {
        match sink.results() {
            Ok(all) => results = all,
            Err(err) => on_event(Event::Warning(format!(
                "reading the batch's results back: {err}"
            ))),
        }
    }
    if let Some(out) = &request.out
        && write_error.is_none()
    {
        for format in &request.formats {
            if let Err(err) = export::export(&results, *format, out) {
                write_error = Some(format!("exporting {format:?}: {err}"));
            }
        }
    }
    let ending = if interrupted {
        Ending::Interrupted
    } else if batch.stopped() {
        Ending::GraderBroken
    } else if let Some(why) = write_error {
        Ending::WriteFailed(why)
    } else {
        Ending::Finished
    };
    Ok(RunReport { results, ending })
}

/// `submissions` in an order drawn afresh for each run (by a keyed hash of
/// their names). Names sort, so in name order five hostile submissions
/// named `000-...` would be graded first and, were they plugin errors,
/// stop the batch for everyone (see [`super::MAX_CONSECUTIVE_PLUGIN_ERRORS`]);
/// no name can put a submission first now. Results are still reported in
/// name order.
fn in_an_order_no_student_chooses(mut submissions: Vec<Submission>) -> Vec<Submission> {
    let mut key = [0u8; 32];
    if getrandom::fill(&mut key).is_err() {
        // Without the OS's randomness the names still decide nothing alone.
        key = *blake3::hash(format!("{:?}", std::time::SystemTime::now()).as_bytes()).as_bytes();
    }
    submissions.sort_by_cached_key(|s| *blake3::keyed_hash(&key, s.name.as_bytes()).as_bytes());
    submissions
}

/// The submissions not yet graded in `output` (same name, same content).
/// Each is hashed here (an archive unpacked for it and removed again, so
/// staging holds only what is being graded); grading hashes what it copies.
fn pending(submissions: Vec<Submission>, output: &dyn ResultSink) -> Vec<Submission> {
    submissions
        .into_iter()
        .filter_map(|mut submission| {
            if submission.refused.is_some() {
                return Some(submission);
            }
            let unpacked = submission
                .archive
                .as_ref()
                .is_none_or(|archive| intake::unpack_into(archive, &submission.dir).is_ok());
            let digest = unpacked
                .then(|| {
                    HostTree::walk(&submission.dir, MAX_SUBMISSION_BYTES)
                        .and_then(|tree| tree.digest())
                        .ok()
                })
                .flatten();
            if submission.archive.is_some() {
                let _ = std::fs::remove_dir_all(&submission.dir);
            }
            if digest
                .as_deref()
                .is_some_and(|sha| output.is_done(&submission.name, sha))
            {
                return None;
            }
            submission.earlier_attempts = output.infra_attempts(&submission.name);
            Some(submission)
        })
        .collect()
}
