//! Service mode: `agh serve`. An HTTP API ([`api`]) an LMS calls to
//! register courses and upload submissions, a store ([`store`]: SQLite in
//! the data folder, blobs beside it in [`blobs`]) that holds the queue and
//! every result, and grading slots ([`worker`]) in the same process, each a
//! loop around [`crate::grading::PreparedGrader::grade`] on a grader
//! prepared once per course version ([`courses`]).
//!
//! Every submission ends with exactly one result: a worker takes it under a
//! lease and a fence, and only the holder of the current fence can record
//! it; a worker that stops (killed, crashed, its machine gone) loses its
//! lease and the submission is taken again, at most
//! [`store::MAX_SERVICE_ATTEMPTS`] attempts in all.

pub mod api;
pub mod blobs;
pub mod courses;
mod metrics;
pub mod openapi;
mod page;
pub mod probe;
pub mod store;
pub mod webhooks;
pub mod worker;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

use blobs::Blobs;
use courses::Graders;
use store::{Backend, Grant, Store, StoreError};

use crate::doctor::{self, Check};
use crate::private_dir::{self, PrivateError};

/// How often the sandbox is proved again while the service runs.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(300);

/// The largest queue, in all, before uploads get 503.
pub const DEFAULT_MAX_QUEUED: i64 = 10_000;

/// The largest queue of one course before its uploads get 429.
pub const DEFAULT_MAX_QUEUED_PER_COURSE: i64 = 2_000;

/// Why the service cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data folder cannot be trusted or made.
    #[error(transparent)]
    Private(#[from] PrivateError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}; choose another with --listen")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The server failed.
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
    /// An option is wrong.
    #[error("{0}")]
    Usage(String),
}

impl ServeError {
    /// Whose doing it is.
    #[must_use]
    pub fn blame(&self) -> crate::blame::Blame {
        match self {
            Self::Private(_) | Self::Listen { .. } | Self::Usage(_) => {
                crate::blame::Blame::Operator
            }
            Self::Store(_) | Self::Serve(_) => crate::blame::Blame::Host,
        }
    }
}

/// What the last health check found: green only when every check passed,
/// the sandbox proved from inside to be gVisor among them.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Health {
    /// Every check passed.
    pub ok: bool,
    /// The checks, as `agh doctor` prints them.
    pub checks: Vec<Check>,
    /// When they ran, in Unix milliseconds (0: not yet).
    pub checked_ms: i64,
}

/// Limits on what the API takes in.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Submissions waiting or running, in all.
    pub max_queued: i64,
    /// Submissions waiting or running, per course.
    pub max_queued_per_course: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_queued: DEFAULT_MAX_QUEUED,
            max_queued_per_course: DEFAULT_MAX_QUEUED_PER_COURSE,
        }
    }
}

/// The running service's shared parts.
pub struct Service {
    store: Store,
    blobs: Blobs,
    graders: Arc<Graders>,
    health: RwLock<Health>,
    /// [`Health::ok`], for the grading slots to read before each claim.
    healthy: Arc<AtomicBool>,
    limits: Limits,
    /// Where callbacks may go.
    callbacks: Arc<webhooks::CallbackAllow>,
    /// True when this process grades (its health needs the sandbox).
    grades_here: bool,
}

/// What a process of the service does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeRole {
    /// The API and grading slots, in one process (`agh serve`).
    All,
    /// The API alone (`agh serve --role api`): stateless, any number of
    /// replicas on one store.
    Api,
    /// Grading slots alone (`agh worker`), one per grading node: health and
    /// metrics on HTTP, no API.
    Worker,
}

/// How to run `agh serve` or `agh worker`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The data folder: with SQLite the store itself, with PostgreSQL this
    /// node's copies of blobs and its work folder.
    pub data: PathBuf,
    /// The store's URL (`postgres://…`); `None` for SQLite in `data`.
    pub store: Option<String>,
    /// What this process does.
    pub role: ServeRole,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Grading slots in this process (none for [`ServeRole::Api`]).
    pub jobs: usize,
    /// Intake limits.
    pub limits: Limits,
    /// Images the health check proves.
    pub images: Vec<String>,
    /// URL prefixes result callbacks may go to.
    pub callback_allow: Vec<String>,
}

/// Opens the store: `url` (PostgreSQL), or SQLite in `data`; and the
/// blobs, in `data` (made private to the user running agh).
///
/// # Errors
/// When the folder cannot be trusted or the store opened.
pub async fn open_store(data: &Path, url: Option<&str>) -> Result<(Store, Blobs), ServeError> {
    open_data(data, url)
        .await
        .map(|(store, blobs, _)| (store, blobs))
}

/// [`open_store`], and the data folder as opened.
async fn open_data(data: &Path, url: Option<&str>) -> Result<(Store, Blobs, PathBuf), ServeError> {
    let data = private_dir::open_dir(data)?;
    let store = match url {
        Some(url) => Store::connect(url).await?,
        None => Store::open(&data).await?,
    };
    let shared = (store.backend() == Backend::Postgres).then(|| store.clone());
    let blobs = Blobs::open(&data, shared)?;
    Ok((store, blobs, data))
}

/// The sha256 a token is stored and looked up by.
#[must_use]
pub fn token_sha256(token: &str) -> String {
    crate::layout::hex(&Sha256::digest(token.as_bytes()))
}

/// A new random id: `PREFIX_` and 32 hex digits.
#[must_use]
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    // The OS's randomness; without it no id can be trusted not to repeat.
    getrandom::fill(&mut bytes).expect("the operating system gives random bytes");
    format!("{prefix}_{}", crate::layout::hex(&bytes))
}

/// Makes a token with `grant`, stores its hash, and returns the token: the
/// only time it is seen.
///
/// # Errors
/// A store error.
pub async fn create_token(store: &Store, grant: &Grant, label: &str) -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system gives random bytes");
    let token = format!("agh_{}", crate::layout::hex(&bytes));
    store.add_token(&token_sha256(&token), grant, label).await?;
    Ok(token)
}

/// Runs the service until SIGTERM or Ctrl-C, then drains: it stops taking
/// requests and work, and waits for the submissions being graded.
/// `listening` is told the address once the socket is bound.
///
/// # Errors
/// [`ServeError`] when it cannot start.
pub async fn serve(
    options: ServeOptions,
    listening: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let callbacks =
        Arc::new(webhooks::CallbackAllow::new(&options.callback_allow).map_err(ServeError::Usage)?);
    let (store, blobs, data) = open_data(&options.data, options.store.as_deref()).await?;
    let graders = Arc::new(Graders::new(&data, blobs.clone()));
    let jobs = match options.role {
        ServeRole::Api => 0,
        ServeRole::All | ServeRole::Worker => options.jobs.max(1),
    };
    let service = Arc::new(Service {
        store: store.clone(),
        blobs: blobs.clone(),
        graders: graders.clone(),
        health: RwLock::default(),
        healthy: Arc::default(),
        limits: options.limits,
        callbacks: callbacks.clone(),
        grades_here: jobs > 0,
    });
    let stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: options.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(ServeError::Serve)?;
    listening(addr);

    tokio::spawn(keep_health(
        service.clone(),
        options.images.clone(),
        stop.clone(),
    ));
    let store_for_callbacks = store.clone();
    let worker = (jobs > 0).then(|| {
        let worker = Arc::new(worker::Worker {
            store,
            blobs,
            graders,
            work: data.join("work"),
            slots: jobs,
            owner: crate::sandbox::this_owner().to_string(),
            healthy: service.healthy.clone(),
        });
        tokio::spawn(report_worker(
            service.clone(),
            worker.owner.clone(),
            jobs,
            stop.clone(),
        ));
        tokio::spawn(worker.run(stop.clone()))
    });
    if options.role != ServeRole::Worker {
        tokio::spawn(webhooks::deliver(
            store_for_callbacks,
            callbacks,
            stop.clone(),
        ));
    }
    tokio::spawn(shutdown_on_signal(stop.clone()));
    let router = match options.role {
        ServeRole::Worker => api::health_router(service),
        ServeRole::All | ServeRole::Api => api::router(service),
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(stop.clone().cancelled_owned())
        .await
        .map_err(ServeError::Serve)?;
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// How often a grading process tells the store it runs (the staff pages
/// show one not seen for [`WORKER_GONE`] as gone).
pub const WORKER_REPORT: Duration = Duration::from_secs(10);

/// How long a grading process may go unseen before the staff pages list
/// it as gone.
pub const WORKER_GONE: Duration = Duration::from_secs(60);

/// Tells the store, now and every [`WORKER_REPORT`], that this process
/// grades with `slots` slots, and whether its sandbox is proved safe.
async fn report_worker(
    service: Arc<Service>,
    owner: String,
    slots: usize,
    stop: CancellationToken,
) {
    let started = store::now_ms();
    let slots = i64::try_from(slots).unwrap_or(i64::MAX);
    loop {
        let healthy = service.healthy.load(Ordering::SeqCst);
        if let Err(err) = service
            .store
            .worker_seen(&owner, slots, healthy, started)
            .await
        {
            tracing::warn!(error = %err, "cannot report this worker to the store");
        }
        tokio::select! {
            () = tokio::time::sleep(WORKER_REPORT) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Proves the sandbox now and every [`HEALTH_INTERVAL`].
async fn keep_health(service: Arc<Service>, images: Vec<String>, stop: CancellationToken) {
    loop {
        let mut checks = vec![if service.store.ping().await {
            Check::pass("store", "answers")
        } else {
            Check::fail(
                "store",
                "does not answer",
                "check --store and the database server",
            )
        }];
        // Only a process that grades must prove its sandbox.
        if service.grades_here {
            checks.extend(doctor::run_checks(&images).await);
        }
        let ok = checks.iter().all(|c| c.ok);
        if !ok {
            for check in checks.iter().filter(|c| !c.ok) {
                tracing::error!(check = %check.name, detail = %check.detail, "health check failed: not grading");
            }
        }
        service.healthy.store(ok, Ordering::SeqCst);
        *service.health.write().await = Health {
            ok,
            checks,
            checked_ms: store::now_ms(),
        };
        let wait = if ok {
            HEALTH_INTERVAL
        } else {
            Duration::from_secs(10)
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Cancels `stop` at SIGTERM or SIGINT.
async fn shutdown_on_signal(stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for signals; stop agh serve with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stopping: finishing the submissions being graded");
    stop.cancel();
}
