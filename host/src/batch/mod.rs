//! Grading submissions: preparing a batch (load, describe, policy,
//! preflight, runtime check), grading each submission in its own sandbox,
//! and running many at once.

pub mod intake;
pub mod journal;
pub mod merge;
pub mod run;

pub use intake::Submission;
pub use journal::{
    BATCH_FILE, OpenMode, OutputDir, OutputError, OutputLock, RESULTS_DIR, result_path,
};

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::assets::{self, AssetCache, ResolvedAsset, S3Timeouts};
use crate::config::Config;
use crate::plugin::{self, Description, GradeContext, Grader, PluginError, PluginHost, Session};
use crate::policy::{self, Effective};
use crate::private_dir;
use crate::report::{
    AssetDigest, Provenance, Retry, Status, SubmissionResult, TestRecord, Timings,
};
use crate::sandbox::{
    self, Blame, Docker, Owner, Runtime, Sandbox, SandboxSpec, host_tree_entries, open_regular_file,
};

/// The batch stops for a broken grader after this many plugin errors while
/// it has not graded a single submission (in this run or an earlier run of
/// the batch). Once it has graded one, it works, and a failure is about the
/// submission: recorded as plugin-error (never charged, regradable) and the
/// batch goes on, so no run of hostile submissions can stop it for the
/// students after them. Only a grader that fails on everything from the
/// start stops, and quickly.
pub const MAX_CONSECUTIVE_PLUGIN_ERRORS: usize = 5;
/// Attempts for a submission that hits an infra error.
pub const INFRA_ATTEMPTS: u32 = 3;

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

/// A submission whose sandbox is created and holds its files.
struct Prepared {
    name: String,
    dir: std::path::PathBuf,
    submission_sha256: String,
    sandbox: Arc<Sandbox>,
    /// Time spent creating and filling the sandbox.
    setup: Duration,
}

/// Why a batch could not start.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The grader could not be loaded or described.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The grader asks for what the operator does not grant.
    #[error("the operator's policy refuses this grader:\n  - {}", .0.join("\n  - "))]
    Policy(Vec<String>),
    /// Declared assets are missing or refused.
    #[error("assets the grader declares are not available:\n  - {}", .0.join("\n  - "))]
    Assets(Vec<String>),
    /// Docker, runsc or the image is not usable.
    #[error("{0}")]
    Infra(String),
}

impl BatchError {
    /// True when the host, not the grader or policy, is at fault.
    #[must_use]
    pub fn is_infra(&self) -> bool {
        matches!(
            self,
            BatchError::Infra(_) | BatchError::Plugin(PluginError::Infra(_))
        )
    }
}

/// The id of `image` on the daemon. An image the daemon does not have is
/// the grader's or the operator's mistake (a misspelled tag a `prefix*`
/// grant let through), not an infra failure: the refusal names the closest
/// image the daemon has.
///
/// # Errors
/// [`BatchError::Policy`] for a missing image; [`BatchError::Infra`] when
/// Docker does not answer.
pub async fn image_present(docker: &sandbox::Docker, image: &str) -> Result<String, BatchError> {
    match docker.inspect_image(image).await {
        Ok(found) => return Ok(found.id.unwrap_or_default()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(err) => {
            return Err(BatchError::Infra(format!(
                "image {image}: {err}; run `agh doctor`"
            )));
        }
    }
    let tags: Vec<String> = docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .map_err(|err| BatchError::Infra(format!("listing images: {err}; run `agh doctor`")))?
        .into_iter()
        .flat_map(|summary| summary.repo_tags)
        .filter(|tag| tag != "<none>:<none>")
        .collect();
    let closest = tags
        .iter()
        .map(|tag| (strsim::levenshtein(image, tag), tag))
        .min();
    let hint = match closest {
        Some((_, tag)) => format!("the closest image it has is {tag}"),
        None => "it has no images".to_string(),
    };
    Err(BatchError::Policy(vec![format!(
        "image {image} does not exist on this Docker daemon ({hint}); fix the image the grader asks for, \
         or build agh's sandbox images with `sudo scripts/setup`"
    )]))
}

/// Local asset folders and files the plan names that do not exist: found
/// before anything runs, without `--resolve`.
#[must_use]
pub fn missing_local_assets(effective: &Effective) -> Vec<String> {
    effective
        .assets
        .iter()
        .filter_map(|asset| match &asset.location {
            crate::config::SourceLocation::Local(root) => {
                let path = root.join(&asset.path);
                (!path.exists()).then(|| {
                    format!(
                        "asset {:?}: {} does not exist (source {:?} is {})",
                        asset.name,
                        path.display(),
                        asset.source,
                        root.display()
                    )
                })
            }
            crate::config::SourceLocation::S3(_) => None,
        })
        .collect()
}

/// What a grader declares and what policy allows, before anything runs.
pub struct Plan {
    /// The loaded grader.
    pub grader: Grader,
    /// What it said of itself.
    pub description: Description,
    /// What policy allows.
    pub effective: Effective,
}

/// What `agh plan` shows: the [`Plan`], whether its image is on the
/// daemon, and (when asked) its assets resolved.
pub struct PlanCheck {
    /// The plan.
    pub plan: Plan,
    /// `present`, or why the image was not checked.
    pub image: String,
    /// The assets, resolved, when resolution was asked for.
    pub resolved: Vec<ResolvedAsset>,
}

/// Plans as a batch would, then checks what can be checked without a
/// sandbox: every local asset is there, the image is on the daemon (when
/// the daemon answers), and with `resolve` every asset resolves. Runs no
/// student code and starts no sandbox.
///
/// # Errors
/// [`BatchError`] for a grader that cannot be loaded or is refused, a
/// missing local asset, an image the daemon says is missing, or an asset
/// that does not resolve.
pub async fn check_plan(
    plugin_path: &Path,
    config: &Config,
    resolve: bool,
    notice: &mut dyn FnMut(plugin::LoadNotice),
) -> Result<PlanCheck, BatchError> {
    let plan = plan_noting(plugin_path, config, notice).await?;
    let missing = missing_local_assets(&plan.effective);
    if !missing.is_empty() {
        return Err(BatchError::Assets(missing));
    }
    let image = match sandbox::connect().await {
        Ok(docker) => match image_present(&docker, &plan.effective.image).await {
            Ok(_) => "present".to_string(),
            Err(err @ BatchError::Policy(_)) => return Err(err),
            Err(err) => format!("not checked: {err}"),
        },
        Err(err) => format!("not checked: {err}"),
    };
    let resolved = if resolve {
        let cache = open_asset_cache(config)?;
        assets::resolve_all(&plan.effective.assets, Some(&cache), S3Timeouts::default())
            .await
            .map_err(BatchError::Assets)?
    } else {
        Vec::new()
    };
    Ok(PlanCheck {
        plan,
        image,
        resolved,
    })
}

/// Loads a grader, describes it and intersects it with the policy. Runs no
/// student code and starts no sandbox.
///
/// # Errors
/// [`BatchError`] with every refusal listed.
pub async fn plan(plugin_path: &Path, config: &Config) -> Result<Plan, BatchError> {
    plan_noting(plugin_path, config, &mut |_| {}).await
}

/// [`plan`], telling `notice` when the grader must be compiled first.
///
/// # Errors
/// As [`plan`].
pub async fn plan_noting(
    plugin_path: &Path,
    config: &Config,
    notice: &mut dyn FnMut(plugin::LoadNotice),
) -> Result<Plan, BatchError> {
    let cache_dir =
        private_dir::default_cache_dir().map_err(|e| BatchError::Infra(e.to_string()))?;
    let host = PluginHost::new(Some(cache_dir))?;
    let grader = host.load_noting(plugin_path, notice)?;
    let settings: Vec<(String, String)> = config.settings.clone().into_iter().collect();
    let description = grader
        .describe(&settings, policy::Budget::for_describe(config.grader))
        .await?;
    let mut effective =
        policy::intersect(&description.request, config).map_err(BatchError::Policy)?;
    effective.limits.millicpus = effective.limits.millicpus.min(config.ceilings.millicpus);
    Ok(Plan {
        grader,
        description,
        effective,
    })
}

/// Opens the asset cache in agh's private cache folder.
///
/// # Errors
/// [`BatchError::Infra`] when the folder is not private or cannot be made.
pub fn open_asset_cache(config: &Config) -> Result<AssetCache, BatchError> {
    let cache_root =
        private_dir::default_cache_dir().map_err(|e| BatchError::Infra(e.to_string()))?;
    AssetCache::open(&cache_root, config.asset_cache_bytes)
        .map_err(|e| BatchError::Infra(format!("asset cache {}: {e}", cache_root.display())))
}

/// A batch ready to grade.
pub struct Batch {
    plan: Plan,
    assets: Arc<Vec<ResolvedAsset>>,
    cache: Arc<AssetCache>,
    config: Config,
    docker: Docker,
    image_id: String,
    runtime_verified: bool,
    batch_id: String,
    consecutive_plugin_errors: AtomicUsize,
    /// The grader has graded a submission of this batch: it works.
    graded_any: AtomicBool,
    stopped: AtomicBool,
    interrupted: AtomicBool,
    /// Whether the operator's reference submission grades, once asked.
    reference_grades: tokio::sync::OnceCell<bool>,
}

impl Batch {
    /// Prepares a batch: plan, asset preflight, Docker, the image, and a
    /// check from inside a sandbox that runsc really is gVisor. Fails closed.
    ///
    /// # Errors
    /// [`BatchError`] saying what is missing and what to do.
    pub async fn prepare(
        plugin_path: &Path,
        config: Config,
        batch_id: String,
    ) -> Result<Arc<Self>, BatchError> {
        Self::prepare_noting(plugin_path, config, batch_id, &mut |_| {}).await
    }

    /// [`Batch::prepare`], telling `notice` when the grader must be
    /// compiled first.
    ///
    /// # Errors
    /// As [`Batch::prepare`].
    pub async fn prepare_noting(
        plugin_path: &Path,
        config: Config,
        batch_id: String,
        notice: &mut dyn FnMut(plugin::LoadNotice),
    ) -> Result<Arc<Self>, BatchError> {
        let plan = plan_noting(plugin_path, &config, notice).await?;
        let cache = open_asset_cache(&config)?;
        let assets =
            assets::resolve_all(&plan.effective.assets, Some(&cache), S3Timeouts::default())
                .await
                .map_err(BatchError::Assets)?;
        let docker = sandbox::connect()
            .await
            .map_err(|e| BatchError::Infra(format!("{e}; run `agh doctor`")))?;
        let image_id = image_present(&docker, &plan.effective.image).await?;
        let runtime_verified = match config.runtime {
            Runtime::Runsc => {
                if let Err(not) =
                    sandbox::prove_gvisor(&docker, &plan.effective.image, Runtime::Runsc).await
                {
                    return Err(BatchError::Infra(format!(
                        "refusing to run student code: {} ({}); run `agh doctor`",
                        not.detail, not.fix
                    )));
                }
                true
            }
            Runtime::RuncInsecure => {
                tracing::warn!(
                    "sandboxes run under plain runc: NOT isolated by gVisor; every result says so"
                );
                false
            }
        };
        Ok(Arc::new(Self {
            plan,
            assets: Arc::new(assets),
            cache: Arc::new(cache),
            config,
            docker,
            image_id,
            runtime_verified,
            batch_id,
            consecutive_plugin_errors: AtomicUsize::new(0),
            graded_any: AtomicBool::new(false),
            reference_grades: tokio::sync::OnceCell::new(),
            stopped: AtomicBool::new(false),
            interrupted: AtomicBool::new(false),
        }))
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
    }

    /// Removes every container labelled with this batch (leftovers of a
    /// killed run of the same batch, or of an interrupted one).
    ///
    /// # Errors
    /// When Docker cannot list containers.
    pub async fn remove_leftovers(&self) -> Result<usize, sandbox::SandboxError> {
        sandbox::remove_leftovers(&self.docker, sandbox::Leftovers::Batch(&self.batch_id))
            .await
            .map(|cleaned| cleaned.removed)
    }

    /// Grades `submissions` with up to `jobs` at once, calling `done` with
    /// each result as it finishes. One more submission than `jobs` is in
    /// flight: its sandbox is created and filled while the others grade, and
    /// it starts grading the moment one of them ends. Submissions not started
    /// because the batch stopped or was interrupted get no result.
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
        let grading = Arc::new(tokio::sync::Semaphore::new(jobs));
        let mut results = futures_util::stream::iter(submissions)
            .map(|submission| {
                let batch = Arc::clone(self);
                let grading = Arc::clone(&grading);
                let name = submission.name.clone();
                async move {
                    tokio::spawn(async move { batch.grade_one(submission, &grading).await })
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
            .buffer_unordered(jobs + 1);
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
    }

    /// Prepares and grades one submission once a grading slot is free;
    /// `None` when the batch stopped or was interrupted first.
    async fn grade_one(
        &self,
        submission: Submission,
        grading: &tokio::sync::Semaphore,
    ) -> Option<SubmissionResult> {
        if self.stopped() || self.interrupted() {
            return None;
        }
        if let Some(why) = &submission.refused {
            return Some(SubmissionResult::failed(
                &submission.name,
                Status::InvalidSubmission,
                why.clone(),
            ));
        }
        let prepared = self
            .prepare_submission(&submission.name, &submission.dir, submission.digest.clone())
            .await;
        let slot = grading.acquire().await.ok()?;
        if self.stopped() || self.interrupted() {
            if let Ok(prepared) = prepared {
                prepared.sandbox.teardown().await;
            }
            return None;
        }
        self.grade_with_retries(&submission, prepared, grading, slot)
            .await
    }

    /// Grades a prepared submission in the grading `slot` it holds,
    /// preparing it again for each retry of an infra error. A retry waits
    /// off the slot: it gives the slot back, waits, prepares its fresh
    /// sandbox, and queues for a slot again behind the submissions already
    /// waiting, so the others' results are not held up by its back-off.
    /// `None` when the batch stopped while it waited.
    async fn grade_with_retries(
        &self,
        submission: &Submission,
        first: Result<Prepared, SubmissionResult>,
        grading: &tokio::sync::Semaphore,
        mut slot: tokio::sync::SemaphorePermit<'_>,
    ) -> Option<SubmissionResult> {
        let mut attempt = 1;
        // A resume tries an infra error once more, not INFRA_ATTEMPTS more.
        let attempts = INFRA_ATTEMPTS
            .saturating_sub(submission.earlier_attempts)
            .max(1);
        let mut prepared = first;
        let mut retries = Vec::new();
        loop {
            let mut result = match prepared {
                Ok(ready) => self.grade_prepared(ready).await,
                Err(failed) => failed,
            };
            if !result.status.is_final() && attempt < attempts {
                tracing::warn!(submission = %result.submission, error = ?result.error, attempt, "infra error; retrying");
                retries.push(Retry {
                    attempt,
                    reason: result.error.unwrap_or_default(),
                });
                drop(slot);
                tokio::time::sleep(Duration::from_secs(2u64.pow(attempt))).await;
                prepared = self
                    .prepare_submission(
                        &submission.name,
                        &submission.dir,
                        submission.digest.clone(),
                    )
                    .await;
                slot = grading.acquire().await.ok()?;
                if self.stopped() || self.interrupted() {
                    if let Ok(prepared) = prepared {
                        prepared.sandbox.teardown().await;
                    }
                    return None;
                }
                attempt += 1;
                continue;
            }
            result.retries = std::mem::take(&mut retries);
            match result.status {
                Status::PluginError => {
                    let n = self
                        .consecutive_plugin_errors
                        .fetch_add(1, Ordering::SeqCst)
                        + 1;
                    if n >= MAX_CONSECUTIVE_PLUGIN_ERRORS && !self.graded_any.load(Ordering::SeqCst)
                    {
                        if self.reference_grades().await {
                            self.graded_any.store(true, Ordering::SeqCst);
                        } else {
                            self.stopped.store(true, Ordering::SeqCst);
                        }
                    }
                    return Some(result);
                }
                status => {
                    if status == Status::Graded {
                        self.graded_any.store(true, Ordering::SeqCst);
                    }
                    self.consecutive_plugin_errors.store(0, Ordering::SeqCst);
                    return Some(result);
                }
            }
        }
    }

    /// Whether the operator's reference submission (`reference` in
    /// `agh.toml`) grades: graded once, the first time the stop rule would
    /// stop the batch. False without one.
    async fn reference_grades(&self) -> bool {
        let Some(reference) = &self.config.reference else {
            return false;
        };
        *self
            .reference_grades
            .get_or_init(|| async {
                let result = self.grade_named("reference", reference).await;
                tracing::warn!(status = ?result.status, error = ?result.error,
                    "plugin errors on every submission so far; graded the reference submission");
                result.status == Status::Graded
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

    /// Grades one submission folder in a fresh sandbox.
    pub async fn grade_named(&self, name: &str, dir: &Path) -> SubmissionResult {
        match self.prepare_submission(name, dir, None).await {
            Ok(prepared) => self.grade_prepared(prepared).await,
            Err(failed) => failed,
        }
    }

    /// Creates a submission's sandbox and copies the submission in.
    ///
    /// # Errors
    /// The result to report when that fails (an infra error, or a
    /// submission that cannot be accepted).
    async fn prepare_submission(
        &self,
        name: &str,
        dir: &Path,
        digest: Option<String>,
    ) -> Result<Prepared, SubmissionResult> {
        let name = name.to_string();
        let submission_sha256 = match digest {
            Some(digest) => digest,
            None => {
                let hashed = dir.to_path_buf();
                tokio::task::spawn_blocking(move || submission_digest(&hashed))
                    .await
                    .map_err(|err| {
                        SubmissionResult::failed(&name, Status::InfraError, err.to_string())
                    })?
                    .map_err(|err| {
                        let status = if err.is_infra() {
                            Status::InfraError
                        } else {
                            Status::InvalidSubmission
                        };
                        SubmissionResult::failed(&name, status, err.to_string())
                    })?
            }
        };
        let started = Instant::now();
        let effective = &self.plan.effective;
        let spec = SandboxSpec {
            runtime: self.config.runtime,
            limits: effective.limits.clone(),
            longest: effective.longest.clone(),
            wall_multiple: self.config.wall_multiple,
            ..SandboxSpec::new(&effective.image)
        }
        .labelled(&self.batch_id, &name);
        let sandbox = match Sandbox::create(&self.docker, spec).await {
            Ok(sandbox) => Arc::new(sandbox),
            Err(err) => {
                return Err(SubmissionResult::failed(
                    &name,
                    Status::InfraError,
                    format!("creating the sandbox: {err}"),
                ));
            }
        };
        if let Err(err) = sandbox
            .copy_dir_in(dir, "/work", Owner::Student, false)
            .await
        {
            sandbox.teardown().await;
            let status = match err.blame() {
                Blame::Host => Status::InfraError,
                Blame::Student => Status::InvalidSubmission,
                // agh's own request for /work was refused: never the
                // student's, and a retry will not cure it.
                Blame::Grader => Status::InfraError,
            };
            return Err(SubmissionResult::failed(
                &name,
                status,
                format!("copying the submission in: {err}"),
            ));
        }
        Ok(Prepared {
            name,
            dir: dir.to_path_buf(),
            submission_sha256,
            sandbox,
            setup: started.elapsed(),
        })
    }

    /// Grades a prepared submission and tears its sandbox down.
    async fn grade_prepared(&self, prepared: Prepared) -> SubmissionResult {
        let Prepared {
            name,
            dir,
            submission_sha256,
            sandbox,
            setup,
        } = prepared;
        let dir = dir.as_path();
        let started = Instant::now();
        let effective = &self.plan.effective;
        let sandbox: Arc<dyn sandbox::SandboxPort> = sandbox;
        let session = match Session::new(
            sandbox.clone(),
            dir,
            self.assets.clone(),
            self.cache.clone(),
            self.config.submission_time,
        ) {
            Ok(session) => session,
            Err(err) => {
                sandbox.teardown().await;
                return SubmissionResult::failed(
                    &name,
                    Status::InfraError,
                    format!("opening {}: {err}", dir.display()),
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
        run.sandbox.as_ref().unwrap_or(&sandbox).teardown().await;
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let timings = Timings {
            total_ms: ms(setup + started.elapsed()),
            sandbox_setup_ms: ms(setup),
            grade_ms: ms(run.call_time),
            grader_own_us: u64::try_from(run.call_time.saturating_sub(run.host_time).as_micros())
                .unwrap_or(u64::MAX),
            instantiate_us: u64::try_from(run.instantiate_time.as_micros()).unwrap_or(u64::MAX),
        };
        let provenance = Provenance {
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
        };
        let mut result = match run.report {
            Ok(report) => {
                let tests: Vec<TestRecord> =
                    report.tests.into_iter().map(TestRecord::from).collect();
                SubmissionResult {
                    schema: crate::report::RESULT_SCHEMA,
                    submission: name,
                    status: Status::Graded,
                    error: None,
                    score: tests.iter().map(|t| t.score).sum(),
                    max_score: tests.iter().map(|t| t.max_score).sum(),
                    tests,
                    output: report.output,
                    commands: Vec::new(),
                    log: Vec::new(),
                    provenance: None,
                    timings: Timings::default(),
                    retries: Vec::new(),
                }
            }
            Err(PluginError::Infra(why)) => {
                SubmissionResult::failed(&name, Status::InfraError, why)
            }
            Err(PluginError::Ungradable(why)) => {
                SubmissionResult::failed(&name, Status::InvalidSubmission, why)
            }
            Err(err) => SubmissionResult::failed(&name, Status::PluginError, err.to_string()),
        };
        result.commands = run.commands;
        result.log = run.log;
        result.provenance = Some(provenance);
        result.timings = timings;
        result
    }
}

/// sha256 over a submission's relative paths and file contents, in order.
/// Refuses links and special files, like the copy into the sandbox.
///
/// # Errors
/// Why the submission cannot be accepted.
pub fn submission_digest(dir: &Path) -> Result<String, sandbox::SandboxError> {
    let entries = host_tree_entries(dir, sandbox::MAX_SUBMISSION_BYTES)?;
    let mut hasher = Sha256::new();
    for entry in entries {
        hasher.update(entry.path.as_bytes());
        hasher.update([0]);
        if let Some(sandbox::EntrySource::HostFile(path)) = &entry.source {
            let io = |source| sandbox::SandboxError::Io {
                context: format!("hashing {}", path.display()),
                source,
            };
            let mut file = open_regular_file(path).map_err(io)?;
            std::io::copy(&mut file, &mut hasher).map_err(io)?;
        }
        hasher.update([0]);
    }
    Ok(crate::layout::hex(&hasher.finalize()))
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
