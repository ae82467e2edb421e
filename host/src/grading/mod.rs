//! Grading one submission: a grader prepared once ([`PreparedGrader`]:
//! loaded, described, its policy intersected, its assets resolved, its
//! image and runtime checked) and the one call that grades a
//! [`Snapshot`] of a submission into its [`SubmissionResult`]. A batch run
//! (`batch`) and, later, a service worker are loops around [`PreparedGrader::grade`];
//! what a run decides (when to stop, which submissions, where results go)
//! is theirs, never the grader's.

mod plan;
mod sink;

pub use plan::{
    Plan, PlanCheck, PrepareError, check_plan, image_present, missing_local_assets,
    open_asset_cache, plan, plan_noting,
};
pub use sink::{MemorySink, ResultSink, SinkError};

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::assets::{self, AssetCache, ResolvedAsset, S3Timeouts};
use crate::config::Config;
use crate::plugin::{self, GradeContext, Pins, PluginError, Session, SessionParts};
use crate::policy;
use crate::report::{
    AssetDigest, CommandRecord, Provenance, Retry, Status, SubmissionResult, TestRecord, Timings,
};
use crate::sandbox::{
    self, Blame, Docker, HostTree, Owner, Runtime, SUBMISSION_DEST, Sandbox, SandboxError,
    SandboxPort, SandboxSpec,
};
use crate::transcript::port::RecordingPort;
use crate::transcript::{Entry, TranscriptDir};

/// Attempts the batch makes at a submission that hits an infra error.
pub const INFRA_ATTEMPTS: u32 = 3;

/// What a grader is known by: the component's bytes and the operator's
/// configuration it was prepared under. Two preparations with one key
/// grade alike, so a service keeps one per key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GraderKey {
    /// The component's sha256.
    pub plugin_sha256: String,
    /// The sha256 of the configuration, as JSON.
    pub config_sha256: String,
}

impl GraderKey {
    /// The key of `plan`'s grader under `config`.
    fn of(plan: &Plan, config: &Config) -> Self {
        Self {
            plugin_sha256: plan.grader.sha256().to_string(),
            config_sha256: crate::layout::hex(&Sha256::digest(
                serde_json::to_vec(config).unwrap_or_default(),
            )),
        }
    }
}

/// What to do when an attempt ends in an infra error (an outside cause).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryPolicy {
    /// Report it at once: the caller retries (a service requeues the job).
    Once,
    /// Up to `attempts` attempts in all, waiting 2, 4, ... seconds between
    /// them without holding a grading slot.
    Backoff {
        /// Attempts in all, the first included.
        attempts: u32,
    },
}

/// The most one attempt at a submission holds a grading slot, each part
/// bounded on its own: its sandbox's start, the copy of its files, the
/// grader's own time, its programs' time (resets included) and the
/// teardown. Only an infra error (an outside cause, never what a
/// submission does) is tried again, off the slot, at most
/// [`INFRA_ATTEMPTS`] times, so no submission can hold a slot longer, nor
/// delay the others' results by more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotBound {
    /// Creating and starting the sandbox.
    pub start: Duration,
    /// Copying the submission in.
    pub copy: Duration,
    /// The grader's own wall budget.
    pub grader: Duration,
    /// All the submission's commands together (`submission_time`).
    pub commands: Duration,
    /// Removing the sandbox.
    pub teardown: Duration,
}

impl SlotBound {
    /// The bound under `config` for a grader whose budget is `budget`.
    #[must_use]
    pub fn new(config: &Config, budget: &policy::Budget) -> Self {
        Self {
            start: sandbox::DOCKER_START_TIMEOUT,
            copy: sandbox::COPY_TIMEOUT,
            grader: budget.wall_time,
            commands: config.submission_time,
            teardown: sandbox::DOCKER_CALL_TIMEOUT,
        }
    }

    /// All the parts together.
    #[must_use]
    pub fn total(&self) -> Duration {
        self.start + self.copy + self.grader + self.commands + self.teardown
    }
}

/// A submission as it is graded: its name and its files, walked once.
/// Every attempt copies these entries (no more, no fewer) into its sandbox,
/// the grader lists them, a reset copies them again; the digest recorded
/// is of the bytes that went in.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The name results are recorded under.
    pub name: String,
    /// Its files.
    pub tree: Arc<HostTree>,
}

impl Snapshot {
    /// Walks `dir` (off the async threads), with the checks and bound of
    /// the copy into a sandbox.
    ///
    /// # Errors
    /// The result to record when the folder cannot be taken: an invalid
    /// submission for what it holds (a link, a special file, too many
    /// bytes), an infra error when the host cannot read it.
    pub async fn take(name: &str, dir: &Path) -> Result<Self, Box<SubmissionResult>> {
        let walked = dir.to_path_buf();
        let tree = tokio::task::spawn_blocking(move || {
            HostTree::walk(&walked, sandbox::MAX_SUBMISSION_BYTES)
        })
        .await
        .map_err(|err| failed(name, Status::InfraError, err.to_string()))?
        .map_err(|err| failed(name, Status::of_failure(err.blame()), err.to_string()))?;
        Ok(Self {
            name: name.to_string(),
            tree: Arc::new(tree),
        })
    }
}

fn failed(name: &str, status: Status, why: String) -> Box<SubmissionResult> {
    Box::new(SubmissionResult::failed(name, status, why))
}

/// A submission whose sandbox is created and holds its files.
struct Filled {
    sandbox: Arc<dyn SandboxPort>,
    submission_sha256: String,
    /// Time spent creating and filling the sandbox.
    setup: Duration,
    /// The grader's seed and clocks.
    pins: Pins,
}

/// A grader ready to grade: immutable, shared (`Arc`) by every submission
/// it grades, and by every run that grades with the same [`GraderKey`].
pub struct PreparedGrader {
    plan: Plan,
    assets: Arc<Vec<ResolvedAsset>>,
    cache: Arc<AssetCache>,
    config: Config,
    docker: Docker,
    image_id: String,
    runtime_verified: bool,
    key: GraderKey,
    /// Sandboxes of graded submissions being removed off the submission's
    /// path ([`PreparedGrader::settle`] waits for them).
    teardowns: TaskTracker,
}

/// When a graded submission's sandbox is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Teardown {
    /// Before the result is returned.
    Now,
    /// In the background: the result (and the slot) are free at once.
    Background,
}

impl PreparedGrader {
    /// Prepares the grader at `plugin_path` under `config`: plan, asset
    /// preflight, Docker, the image, and (once per process for each image
    /// and daemon) a check from inside a sandbox that runsc really is
    /// gVisor. Fails closed.
    ///
    /// # Errors
    /// [`PrepareError`] saying what is missing and what to do.
    pub async fn prepare(
        plugin_path: &Path,
        config: Config,
        notice: &mut (dyn FnMut(plugin::LoadNotice) + Send),
    ) -> Result<Arc<Self>, PrepareError> {
        let plan = plan_noting(plugin_path, &config, notice).await?;
        let cache = open_asset_cache(&config)?;
        let assets =
            assets::resolve_all(&plan.effective.assets, Some(&cache), S3Timeouts::default())
                .await
                .map_err(PrepareError::Assets)?;
        let docker = sandbox::connect()
            .await
            .map_err(|e| PrepareError::Infra(format!("{e}; run `agh doctor`")))?;
        let image_id = image_present(&docker, &plan.effective.image).await?;
        let runtime_verified = match config.runtime {
            Runtime::Runsc => {
                prove_runtime(&docker, &plan.effective.image, &image_id)
                    .await
                    .map_err(PrepareError::Infra)?;
                true
            }
            Runtime::RuncInsecure => {
                tracing::warn!(
                    "sandboxes run under plain runc: NOT isolated by gVisor; every result says so"
                );
                false
            }
        };
        let key = GraderKey::of(&plan, &config);
        Ok(Arc::new(Self {
            plan,
            assets: Arc::new(assets),
            cache: Arc::new(cache),
            config,
            docker,
            image_id,
            runtime_verified,
            key,
            teardowns: TaskTracker::new(),
        }))
    }

    /// Prepares the grader for replays alone ([`PreparedGrader::grade_in`]):
    /// plan and assets as [`PreparedGrader::prepare`], but no Docker, no
    /// image and no sandbox; grading it in a sandbox fails.
    ///
    /// # Errors
    /// [`PrepareError`] saying what is missing and what to do.
    pub async fn prepare_offline(
        plugin_path: &Path,
        config: Config,
    ) -> Result<Arc<Self>, PrepareError> {
        let plan = plan_noting(plugin_path, &config, &mut |_| {}).await?;
        let cache = open_asset_cache(&config)?;
        let assets =
            assets::resolve_all(&plan.effective.assets, Some(&cache), S3Timeouts::default())
                .await
                .map_err(PrepareError::Assets)?;
        // A client that has not talked to any daemon; it never does here.
        let docker =
            Docker::connect_with_unix_defaults().map_err(|e| PrepareError::Infra(e.to_string()))?;
        let key = GraderKey::of(&plan, &config);
        Ok(Arc::new(Self {
            plan,
            assets: Arc::new(assets),
            cache: Arc::new(cache),
            config,
            docker,
            image_id: String::new(),
            runtime_verified: false,
            key,
            teardowns: TaskTracker::new(),
        }))
    }

    /// The spec of a sandbox for submission `name`, labelled `label`.
    #[must_use]
    pub fn sandbox_spec(&self, label: &str, name: &str) -> SandboxSpec {
        let effective = &self.plan.effective;
        SandboxSpec {
            runtime: self.config.runtime,
            limits: effective.limits.clone(),
            longest: effective.longest.clone(),
            wall_multiple: self.config.wall_multiple,
            places: effective.places.clone(),
            ..SandboxSpec::new(&effective.image)
        }
        .labelled(label, name)
    }

    /// What the grader is known by.
    #[must_use]
    pub fn key(&self) -> &GraderKey {
        &self.key
    }

    /// The grader's plan.
    #[must_use]
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The configuration it was prepared under.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The Docker daemon it grades on.
    #[must_use]
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Grades `snapshot` once a slot of `slots` is free, its containers
    /// labelled with `label`: the sandbox is created and filled before the
    /// slot is taken, graded in it, and torn down. An infra error is tried
    /// again as `retry` says, each wait off the slot (it gives the slot
    /// back, waits, fills a fresh sandbox and queues again). `None` when
    /// `slots` is closed before a slot is taken: the caller stopped.
    pub async fn grade(
        &self,
        snapshot: &Snapshot,
        label: &str,
        retry: RetryPolicy,
        slots: &Semaphore,
        transcripts: Option<&TranscriptDir>,
    ) -> Option<SubmissionResult> {
        let attempts = match retry {
            RetryPolicy::Once => 1,
            RetryPolicy::Backoff { attempts } => attempts.max(1),
        };
        let mut retries = Vec::new();
        let mut attempt = 1;
        loop {
            if slots.is_closed() {
                return None;
            }
            let filled = self.fill(snapshot, label).await;
            let Ok(slot) = slots.acquire().await else {
                if let Ok(filled) = filled {
                    filled.sandbox.teardown().await;
                }
                return None;
            };
            let mut result = match filled {
                Ok(filled) => {
                    self.attempt(snapshot, filled, transcripts, Teardown::Background)
                        .await
                }
                Err(failed) => *failed,
            };
            drop(slot);
            if result.status.is_final() || attempt >= attempts {
                result.retries = retries;
                return Some(result);
            }
            tracing::warn!(submission = %result.submission, error = ?result.error, attempt, "infra error; retrying");
            retries.push(Retry {
                attempt,
                reason: result.error.unwrap_or_default(),
            });
            tokio::time::sleep(Duration::from_secs(2u64.pow(attempt))).await;
            attempt += 1;
        }
    }

    /// Grades `snapshot` once, now, in a fresh sandbox, outside any slot.
    pub async fn grade_once(&self, snapshot: &Snapshot, label: &str) -> SubmissionResult {
        match self.fill(snapshot, label).await {
            Ok(filled) => self.attempt(snapshot, filled, None, Teardown::Now).await,
            Err(failed) => *failed,
        }
    }

    /// Waits until the sandboxes of every submission graded so far are
    /// removed (their removal runs off the submissions' path).
    pub async fn settle(&self) {
        self.teardowns.close();
        self.teardowns.wait().await;
        self.teardowns.reopen();
    }

    /// Grades `snapshot` in `port` (a replay of its transcript), whose
    /// copy of the submission has digest `submission_sha256`, with the
    /// recorded `pins`. No sandbox is made.
    pub async fn grade_in(
        &self,
        snapshot: &Snapshot,
        port: Arc<dyn SandboxPort>,
        submission_sha256: String,
        pins: Pins,
    ) -> SubmissionResult {
        let filled = Filled {
            sandbox: port,
            submission_sha256,
            setup: Duration::ZERO,
            pins,
        };
        self.attempt(snapshot, filled, None, Teardown::Now).await
    }

    /// Creates the submission's sandbox and copies its files in.
    ///
    /// # Errors
    /// The result to report when that fails (an infra error, or a
    /// submission that cannot be accepted).
    async fn fill(
        &self,
        snapshot: &Snapshot,
        label: &str,
    ) -> Result<Filled, Box<SubmissionResult>> {
        let name = snapshot.name.as_str();
        let started = Instant::now();
        let effective = &self.plan.effective;
        if self.config.runtime == Runtime::Runsc {
            prove_runtime(&self.docker, &effective.image, &self.image_id)
                .await
                .map_err(|why| failed(name, Status::InfraError, why))?;
        }
        let spec = self.sandbox_spec(label, name);
        let sandbox: Arc<dyn SandboxPort> = match Sandbox::create(&self.docker, spec).await {
            Ok(sandbox) => Arc::new(sandbox),
            Err(err) => {
                daemon_failed(&err);
                return Err(failed(
                    name,
                    Status::InfraError,
                    format!("creating the sandbox: {err}"),
                ));
            }
        };
        match sandbox
            .copy_tree_in(&snapshot.tree, SUBMISSION_DEST, Owner::Student, false)
            .await
        {
            Ok(submission_sha256) => Ok(Filled {
                sandbox,
                submission_sha256,
                setup: started.elapsed(),
                pins: Pins::fresh(),
            }),
            Err(err) => {
                sandbox.teardown().await;
                let status = match err.blame() {
                    // agh's own request for /work was refused: never the
                    // student's nor the grader's.
                    Blame::Grader => Status::InfraError,
                    blame => Status::of_failure(blame),
                };
                Err(failed(
                    name,
                    status,
                    format!("copying the submission in: {err}"),
                ))
            }
        }
    }

    /// Grades a filled sandbox and tears it down (`teardown` says when);
    /// with `transcripts`, every call it makes is recorded there.
    async fn attempt(
        &self,
        snapshot: &Snapshot,
        filled: Filled,
        transcripts: Option<&TranscriptDir>,
        teardown: Teardown,
    ) -> SubmissionResult {
        let Filled {
            sandbox,
            submission_sha256,
            setup,
            pins,
        } = filled;
        let name = snapshot.name.clone();
        let started = Instant::now();
        let effective = &self.plan.effective;
        let recorder = match transcripts.map(|dir| start_transcript(dir, snapshot, &pins)) {
            Some(Ok(recorder)) => Some(recorder),
            Some(Err(why)) => {
                sandbox.teardown().await;
                return SubmissionResult::failed(&name, Status::InfraError, why);
            }
            None => None,
        };
        let sandbox: Arc<dyn SandboxPort> = match &recorder {
            Some(recorder) => Arc::new(RecordingPort::new(sandbox, recorder.clone())),
            None => sandbox,
        };
        let parts = SessionParts {
            assets: self.assets.clone(),
            memory: self.cache.clone(),
            command_time: self.config.submission_time,
            pins,
        };
        let session = match Session::new(
            sandbox.clone(),
            snapshot.tree.clone(),
            submission_sha256.clone(),
            parts,
        ) {
            Ok(session) => session,
            Err(err) => {
                sandbox.teardown().await;
                return SubmissionResult::failed(
                    &name,
                    Status::InfraError,
                    format!("opening {}: {err}", snapshot.tree.root().display()),
                );
            }
        };
        let context = GradeContext {
            submission: name.clone(),
            settings: self.config.settings.clone().into_iter().collect(),
        };
        let run = self
            .plan
            .grader
            .grade(session, context, effective.budget)
            .await;
        // After a `sandbox.reset` the grader holds a fresh sandbox; the
        // first one is already gone.
        let finished = run.sandbox.clone().unwrap_or_else(|| sandbox.clone());
        match teardown {
            Teardown::Now => finished.teardown().await,
            Teardown::Background => {
                self.teardowns
                    .spawn(async move { finished.teardown().await });
            }
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let timings = Timings {
            total_ms: ms(setup + started.elapsed()),
            sandbox_setup_ms: ms(setup),
            grade_ms: ms(run.call_time),
            grader_own_us: u64::try_from(run.call_time.saturating_sub(run.host_time).as_micros())
                .unwrap_or(u64::MAX),
            instantiate_us: u64::try_from(run.instantiate_time.as_micros()).unwrap_or(u64::MAX),
            grader_fuel: run.fuel,
        };
        let provenance = self.provenance(submission_sha256);
        let mut result = match run.report {
            Ok(report) => {
                let tests: Vec<TestRecord> =
                    report.tests.into_iter().map(TestRecord::from).collect();
                SubmissionResult {
                    schema: crate::report::RESULT_SCHEMA,
                    submission: name,
                    status: Status::Graded,
                    error: None,
                    // A total the grader set (contract 0.3.0) stands in
                    // for the sum, as Gradescope's top-level score does.
                    score: report
                        .score
                        .unwrap_or_else(|| tests.iter().map(|t| t.score).sum()),
                    max_score: tests.iter().map(|t| t.max_score).sum(),
                    tests,
                    output: report.output,
                    commands: Vec::new(),
                    log: Vec::new(),
                    provenance: None,
                    timings: Timings::default(),
                    retries: Vec::new(),
                    transcript: None,
                }
            }
            Err(err) => {
                let status = Status::of_failure(err.blame());
                let why = match err {
                    PluginError::Infra(why) | PluginError::Ungradable(why) => why,
                    err => err.to_string(),
                };
                SubmissionResult::failed(&name, status, why)
            }
        };
        result.commands = run.commands.iter().map(CommandRecord::from).collect();
        result.log = run.log;
        result.provenance = Some(provenance);
        result.timings = timings;
        if let Some(recorder) = recorder {
            if !result.log.is_empty() {
                recorder.record(&Entry::Log {
                    lines: result.log.clone(),
                });
            }
            match recorder.finish() {
                Ok(transcript) => result.transcript = Some(transcript),
                Err(why) => {
                    return SubmissionResult::failed(
                        &result.submission,
                        Status::InfraError,
                        format!("the transcript could not be written: {why}"),
                    );
                }
            }
        }
        result
    }

    /// Where a result of this grader came from.
    fn provenance(&self, submission_sha256: String) -> Provenance {
        let effective = &self.plan.effective;
        Provenance {
            agh_version: crate::VERSION.into(),
            plugin_sha256: self.plan.grader.sha256().into(),
            wit_version: self.plan.grader.contract().into(),
            grader: format!(
                "{} {}",
                self.plan.description.name, self.plan.description.version
            ),
            image: effective.image.clone(),
            image_id: self.image_id.clone(),
            runtime: self.config.runtime,
            runtime_verified: self.runtime_verified,
            insecure: self.config.runtime == Runtime::RuncInsecure,
            limits: effective.limits.clone(),
            clamped: effective.clamped.clone(),
            assets: self
                .assets
                .iter()
                .map(|a| AssetDigest {
                    name: a.grant.name.clone(),
                    sha256: a.digest(),
                    stale: a.stale,
                    unavailable: a.unavailable.is_some(),
                })
                .collect(),
            submission_sha256,
            rescored: None,
            compat: crate::plugin::compat_of(self.plan.grader.sha256()).map(String::from),
        }
    }
}

/// Starts `snapshot`'s transcript in `dir`, its files and `pins` first.
fn start_transcript(
    dir: &TranscriptDir,
    snapshot: &Snapshot,
    pins: &Pins,
) -> Result<Arc<crate::transcript::Recorder>, String> {
    let recorder = dir
        .start(&snapshot.name)
        .map_err(|e| format!("starting the transcript in {}: {e}", dir.root().display()))?;
    crate::transcript::port::record_submission(&recorder, &snapshot.name, &snapshot.tree, pins)
        .map_err(|e| format!("recording the submission's files: {e}"))?;
    Ok(Arc::new(recorder))
}

/// Proves (once per process for this image and daemon) that runsc is
/// gVisor; says why not, and what to do.
async fn prove_runtime(docker: &Docker, image: &str, image_id: &str) -> Result<(), String> {
    sandbox::prove_gvisor_once(docker, image, image_id, Runtime::Runsc)
        .await
        .map_err(|not| {
            format!(
                "refusing to run student code: {} ({}); run `agh doctor`",
                not.detail, not.fix
            )
        })
}

/// A sandbox could not be created: when the daemon itself failed (it may
/// be restarting, perhaps configured otherwise), the runtime is proved
/// again before the next sandbox.
fn daemon_failed(err: &SandboxError) {
    if matches!(
        err,
        SandboxError::Docker { .. } | SandboxError::Timeout { .. } | SandboxError::Gone { .. }
    ) {
        sandbox::forget_proofs();
    }
}
