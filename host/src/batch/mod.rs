//! A batch run: the submissions of a folder graded by one prepared grader
//! ([`crate::grading`]), many at once, with the run's own state (the stop
//! rule for a broken grader, the interrupt, the reference submission) and
//! where its results go (the output folder and its journal).

pub mod intake;
pub mod journal;
pub mod merge;
pub mod run;

pub use intake::Submission;
pub use journal::{
    BATCH_FILE, OpenMode, OutputDir, OutputError, OutputLock, RESULTS_DIR, result_path,
};

pub use crate::grading::PrepareError as BatchError;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures_util::StreamExt;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::grading::{INFRA_ATTEMPTS, PreparedGrader, RetryPolicy, Snapshot};
use crate::report::{Status, SubmissionResult};
use crate::sandbox;
use crate::transcript::TranscriptDir;

/// The batch stops for a broken grader after this many plugin errors (or
/// Gradescope autograder runs without results) while it has not graded a
/// single submission (in this run or an earlier run of the batch). Once it has graded one, it works, and a failure is about the
/// submission: recorded as plugin-error (never charged, regradable) and the
/// batch goes on, so no run of hostile submissions can stop it for the
/// students after them. Only a grader that fails on everything from the
/// start stops, and quickly.
pub const MAX_CONSECUTIVE_PLUGIN_ERRORS: usize = 5;
/// Submissions whose sandboxes are made ready beyond the grading slots,
/// so a freed slot never waits for a sandbox's creation.
pub const LOOK_AHEAD: usize = 2;

/// A batch run of one prepared grader.
pub struct Batch {
    grader: Arc<PreparedGrader>,
    batch_id: String,
    /// The grading slots; closed when the batch stops or is interrupted,
    /// which ends every submission still waiting for one.
    slots: Semaphore,
    consecutive_plugin_errors: AtomicUsize,
    /// The grader has graded a submission of this batch: it works.
    graded_any: AtomicBool,
    stopped: AtomicBool,
    interrupted: AtomicBool,
    /// Whether the operator's reference submission grades, once asked.
    reference_grades: tokio::sync::OnceCell<bool>,
    /// Where each submission's transcript is recorded, if anywhere.
    transcripts: Option<TranscriptDir>,
}

impl Batch {
    /// Prepares the grader at `plugin_path` under `config`
    /// ([`PreparedGrader::prepare`]) and a batch of it labelled `batch_id`.
    ///
    /// # Errors
    /// [`BatchError`] saying what is missing and what to do.
    pub async fn prepare(
        plugin_path: &Path,
        config: Config,
        batch_id: String,
    ) -> Result<Arc<Self>, BatchError> {
        let grader = PreparedGrader::prepare(plugin_path, config, &mut |_| {}).await?;
        Ok(Self::new(grader, batch_id))
    }

    /// A batch of `grader`, its containers labelled `batch_id`.
    #[must_use]
    pub fn new(grader: Arc<PreparedGrader>, batch_id: String) -> Arc<Self> {
        Self::recording(grader, batch_id, None)
    }

    /// A batch as [`Batch::new`] that records each submission's
    /// transcript in `transcripts`.
    #[must_use]
    pub fn recording(
        grader: Arc<PreparedGrader>,
        batch_id: String,
        transcripts: Option<TranscriptDir>,
    ) -> Arc<Self> {
        Arc::new(Self {
            transcripts,
            grader,
            batch_id,
            slots: Semaphore::new(0),
            consecutive_plugin_errors: AtomicUsize::new(0),
            graded_any: AtomicBool::new(false),
            reference_grades: tokio::sync::OnceCell::new(),
            stopped: AtomicBool::new(false),
            interrupted: AtomicBool::new(false),
        })
    }

    /// Tells the batch an earlier run of it graded a submission, so its
    /// grader is known to work (see [`MAX_CONSECUTIVE_PLUGIN_ERRORS`]).
    pub fn grader_worked_before(&self) {
        self.graded_any.store(true, Ordering::SeqCst);
    }

    /// True once the batch stopped for a grader that failed on everything.
    #[must_use]
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// True once [`Batch::interrupt`] was called.
    #[must_use]
    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// Stops taking new submissions (Ctrl-C, a full disk); those in flight
    /// finish.
    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
        self.slots.close();
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.slots.close();
    }

    /// Removes every container labelled with this batch (leftovers of a
    /// killed run of the same batch, or of an interrupted one).
    ///
    /// # Errors
    /// When Docker cannot list containers.
    pub async fn remove_leftovers(&self) -> Result<usize, sandbox::SandboxError> {
        // Removals under way in the background finish first.
        self.grader.settle().await;
        sandbox::remove_leftovers(
            self.grader.docker(),
            sandbox::Leftovers::Batch(&self.batch_id),
        )
        .await
        .map(|cleaned| cleaned.removed)
    }

    /// Grades `submissions` with up to `jobs` at once, calling `done` with
    /// each result as it finishes. [`LOOK_AHEAD`] more submissions than
    /// `jobs` are in flight: their sandboxes are created and filled while
    /// the others grade, and one starts grading the moment a slot is free;
    /// a graded submission's sandbox is removed in the background (all are
    /// gone when this returns). Submissions not started because the batch
    /// stopped or was interrupted get no result.
    ///
    /// Each submission runs on its own task, so neither a slow one nor `done`
    /// (which may write to a slow disk; on a multi-threaded runtime it runs
    /// where blocking is allowed) holds the others up.
    pub async fn grade_all(
        self: &Arc<Self>,
        submissions: Vec<Submission>,
        jobs: usize,
        mut done: impl FnMut(&SubmissionResult),
    ) {
        let jobs = jobs.max(1);
        self.slots.add_permits(jobs);
        let mut results = futures_util::stream::iter(submissions)
            .map(|submission| {
                let batch = Arc::clone(self);
                let name = submission.name.clone();
                async move {
                    tokio::spawn(async move { batch.grade_one(submission).await })
                        .await
                        .unwrap_or_else(|panic| {
                            Some(SubmissionResult::failed(
                                &name,
                                Status::InfraError,
                                format!(
                                    "agh failed while grading it (a bug; please report it): {panic}"
                                ),
                            ))
                        })
                }
            })
            .buffer_unordered(jobs + LOOK_AHEAD);
        let blocking_allowed = tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread;
        while let Some(result) = results.next().await {
            if let Some(result) = result {
                if blocking_allowed {
                    tokio::task::block_in_place(|| done(&result));
                } else {
                    done(&result);
                }
            }
        }
        self.slots.forget_permits(jobs);
        self.grader.settle().await;
    }

    /// Takes in and grades one submission once a grading slot is free;
    /// `None` when the batch stopped or was interrupted first. An archive
    /// is unpacked here, so only the submissions in flight take staging
    /// space, and its files are removed once it has its result.
    async fn grade_one(&self, submission: Submission) -> Option<SubmissionResult> {
        if self.slots.is_closed() {
            return None;
        }
        if let Some(why) = &submission.refused {
            return Some(SubmissionResult::failed(
                &submission.name,
                Status::InvalidSubmission,
                why.clone(),
            ));
        }
        let result = match submission.snapshot().await {
            Ok(snapshot) => {
                // A resume tries an infra error once more, not INFRA_ATTEMPTS more.
                let attempts = INFRA_ATTEMPTS
                    .saturating_sub(submission.earlier_attempts)
                    .max(1);
                self.grader
                    .grade(
                        &snapshot,
                        &self.batch_id,
                        RetryPolicy::Backoff { attempts },
                        &self.slots,
                        self.transcripts.as_ref(),
                    )
                    .await
            }
            Err(failed) => Some(*failed),
        };
        submission.release().await;
        let result = result?;
        self.count(&result).await;
        Some(result)
    }

    /// Applies the stop rule to a final result.
    async fn count(&self, result: &SubmissionResult) {
        // A Gradescope autograder that wrote no results scores 0, as on
        // Gradescope, but counts here like a grader's failure: when it is so
        // for every submission from the start, the autograder is broken.
        if result.status == Status::PluginError || result.autograder_failed() {
            let n = self
                .consecutive_plugin_errors
                .fetch_add(1, Ordering::SeqCst)
                + 1;
            if n >= MAX_CONSECUTIVE_PLUGIN_ERRORS && !self.graded_any.load(Ordering::SeqCst) {
                if self.reference_grades().await {
                    self.graded_any.store(true, Ordering::SeqCst);
                } else {
                    self.stop();
                }
            }
            return;
        }
        if result.status == Status::Graded {
            self.graded_any.store(true, Ordering::SeqCst);
        }
        self.consecutive_plugin_errors.store(0, Ordering::SeqCst);
    }

    /// Whether the operator's reference submission (`reference` in
    /// `agh.toml`) grades: graded once, the first time the stop rule would
    /// stop the batch. False without one.
    async fn reference_grades(&self) -> bool {
        let Some(reference) = &self.grader.config().reference else {
            return false;
        };
        *self
            .reference_grades
            .get_or_init(|| async {
                let result = self.grade_named("reference", reference).await;
                tracing::warn!(status = ?result.status, error = ?result.error,
                    "plugin errors on every submission so far; graded the reference submission");
                result.status == Status::Graded && !result.autograder_failed()
            })
            .await
    }

    /// Grades one submission folder in a fresh sandbox, named after the folder.
    pub async fn grade_submission(&self, dir: &Path) -> SubmissionResult {
        let name = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        self.grade_named(&name, dir).await
    }

    /// Grades one submission folder in a fresh sandbox, once, outside the
    /// batch's slots.
    pub async fn grade_named(&self, name: &str, dir: &Path) -> SubmissionResult {
        match Snapshot::take(name, dir).await {
            Ok(snapshot) => self.grader.grade_once(&snapshot, &self.batch_id).await,
            Err(failed) => *failed,
        }
    }
}

/// The default number of submissions graded at once: two per core (a
/// submission waits on Docker as much as it computes), but no more than one
/// per GiB of memory.
#[must_use]
pub fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<usize>().ok())
        })
        .map_or(cores, |kib| (kib / (1024 * 1024)).max(1));
    (cores * 2).min(memory_gib).max(1)
}
