//! Docker sandboxes under gVisor: the only place agh executes student code.
//!
//! A [`Sandbox`] is one container per submission, created from a
//! [`SandboxSpec`] with no network, a read-only root, size-limited tmpfs
//! places to write, every capability dropped but the three its agent needs,
//! and `no-new-privileges`. The container's init is agh's agent (`agent/`,
//! embedded in agh and mounted read-only), and agh talks to it over the
//! container's attached stdio for the sandbox's whole life: commands, files
//! in and files out are requests on that one stream, not `docker exec`s.
//! The agent runs each command as an unprivileged user under its limits,
//! enforces its deadline and output caps, and when it ends, for whatever
//! reason, kills every process left in the sandbox, so nothing a student
//! starts outlives the command.
//!
//! Writable places inside every sandbox:
//!
//! | path      | owner   | mode | for                                      |
//! |-----------|---------|------|------------------------------------------|
//! | `/work`   | student | 0755 | the submission and what it builds        |
//! | `/assets` | root    | 0755 | course files students may read, not edit |
//! | `/grader` | grader  | 0700 | files only the grader user may read      |
//! | `/tmp`    | all     | 1777 | scratch                                  |
//!
//! A grader may declare places of its own besides these (contract 0.3.0,
//! [`SandboxSpec::places`], granted by the operator's `places`), such as
//! `/autograder` for `builtin:gradescope`: each its own tmpfs, mode 0755,
//! owned by the student or the grader user. A grader-user command may run
//! a program as the student through the agent's student door
//! (`agh-as-student`, see `agent/src/door.rs`).
//!
//! Under gVisor an out-of-memory kill ends the whole sandbox, not one
//! process. A sandbox that dies while a command runs, by itself, is that
//! command's doing: it reports `sandbox_lost` (and `out_of_memory` when
//! Docker says so), and every later operation fails with
//! [`SandboxError::Lost`], which a grader sees as an error it can handle.
//! A sandbox killed or removed from outside, or lost with the daemon, is
//! [`SandboxError::Gone`]: an infra error, retried, never scored. The
//! sandbox is never silently recreated: files built by earlier commands
//! would be missing and the remaining results would not mean what the
//! grader thinks.

mod agent;
mod container;
mod exec;
mod files;
pub mod images;
pub mod limits;
mod port;
mod proof;
mod seccomp;

use std::collections::BTreeMap;
use std::time::Duration;

pub use bollard::Docker;
use serde::{Deserialize, Serialize};

use crate::layout::Place;

pub use crate::layout::{ExtraPlace, Owner, check_sandbox_path, open_regular_file};
pub use agent::AGENT_IN_SANDBOX;
pub use container::{Cleaned, Leftovers, Sandbox, remove_leftovers};
pub(crate) use container::{owner_is_gone, this_owner};
pub use exec::{Command, CommandOutcome, duration_ms};
pub use files::{
    COPY_TIMEOUT, EntrySource, FileEntry, HostTree, MAX_READ_BYTES, MAX_SUBMISSION_BYTES,
    TreeDigest, check_relative, host_tree_entries,
};
pub use limits::{Limit, Limits, MIB};
pub use port::{PortFuture, SUBMISSION_DEST, SandboxPort};
pub use proof::{NotGvisor, forget_proofs, prove_gvisor, prove_gvisor_once};

/// The images `scripts/setup` builds from Debian's packages, granted when
/// a config names none.
pub const DEFAULT_IMAGES: [&str; 2] = ["agh/python-c:1", "agh/busybox:1"];

/// Label on every container agh creates; the value is the agh version.
pub const LABEL_MANAGED: &str = "agh.managed";
/// Label naming the batch a container belongs to.
pub const LABEL_BATCH: &str = "agh.batch";
/// Label naming the agh process that made a container (`HOST/PID/START`),
/// so a clean-up can tell another running agh's sandboxes from leftovers.
pub const LABEL_OWNER: &str = "agh.owner";
/// Label naming the submission a container grades.
pub const LABEL_SUBMISSION: &str = "agh.submission";

/// How long one ordinary Docker API call may take before it is an infra error.
pub const DOCKER_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long creating and starting a container may take (runsc boots a kernel).
pub const DOCKER_START_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest the agent takes, past a command's end or deadline, to kill
/// everything the command left (even a fork bomb) and report.
pub const KILL_MARGIN: Duration = Duration::from_millis(agh_protocol::KILL_MARGIN_MS);
/// Time on top of a command's deadline and [`KILL_MARGIN`] that agh waits
/// for the agent's answer before it calls the agent stuck.
pub const AGENT_GRACE: Duration = Duration::from_secs(10);

/// The OCI runtime containers run under.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    /// gVisor: a user-space kernel between the student and the host.
    #[default]
    Runsc,
    /// Plain runc: namespaces and cgroups only. Only on an explicit insecure
    /// opt-in, and recorded as such in every result.
    RuncInsecure,
}

impl Runtime {
    /// The runtime name Docker knows.
    #[must_use]
    pub fn docker_name(self) -> &'static str {
        match self {
            Runtime::Runsc => "runsc",
            Runtime::RuncInsecure => "runc",
        }
    }
}

/// Which user inside the sandbox runs a command.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum User {
    /// The unprivileged owner of `/work` (uid 1000).
    #[default]
    Student,
    /// A second unprivileged user (uid 1001) that owns `/grader`.
    Grader,
}

impl User {
    /// The user's uid, which is also its gid.
    #[must_use]
    pub fn uid(self) -> u32 {
        match self {
            User::Student => crate::layout::STUDENT_UID,
            User::Grader => crate::layout::GRADER_UID,
        }
    }

    /// Where the user's commands start when they name no folder: a place
    /// only that user can write, so a grader-user command never starts in,
    /// imports from, or writes through what the student left in `/work`.
    #[must_use]
    pub fn default_cwd(self) -> &'static str {
        match self {
            User::Student => Place::Work.path(),
            User::Grader => Place::Grader.path(),
        }
    }

    /// The user's `TMPDIR`: the shared `/tmp` for the student, the private
    /// `/grader` for the grader user (gVisor does not enforce protected
    /// symlinks, so a link the student plants in `/tmp` would redirect the
    /// grader's writes).
    #[must_use]
    pub fn temp_dir(self) -> &'static str {
        match self {
            User::Student => Place::Tmp.path(),
            User::Grader => Place::Grader.path(),
        }
    }
}

/// Everything needed to create a sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Image reference, for example `agh/python-c:1`.
    pub image: String,
    /// OCI runtime.
    pub runtime: Runtime,
    /// Limits for the sandbox and the defaults for its commands.
    pub limits: Limits,
    /// How long one command may ask to run, past the default in `limits`:
    /// the operator's ceilings.
    #[serde(default)]
    pub longest: Longest,
    /// Time verdicts come from CPU time: a command's time limit bounds the
    /// CPU its processes use, and the wall clock stops it only at this
    /// multiple of the limit (a backstop for programs that wait), so a
    /// busy host does not turn a correct program into a time-limit.
    #[serde(default = "one")]
    pub wall_multiple: u32,
    /// Writable places of the grader's own, each a tmpfs like the
    /// standard four.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub places: Vec<ExtraPlace>,
    /// Extra labels; agh adds [`LABEL_MANAGED`] itself.
    pub labels: BTreeMap<String, String>,
}

fn one() -> u32 {
    1
}

/// The longest wall and CPU time a command may ask for. A command that asks
/// for no more than the sandbox's default gets the default CPU time; one
/// that asks for longer gets CPU time to match, up to `cpu_time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Longest {
    /// Longest deadline of one command.
    pub wall_time: Duration,
    /// Most CPU time of each process of one command.
    pub cpu_time: Duration,
}

impl SandboxSpec {
    /// A spec for `image` under runsc with default limits, whose commands
    /// may not ask for more than those.
    #[must_use]
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            runtime: Runtime::Runsc,
            limits: Limits::default(),
            longest: Longest::default(),
            wall_multiple: 1,
            places: Vec::new(),
            labels: BTreeMap::new(),
        }
    }

    /// Labels the sandbox with its batch and submission.
    #[must_use]
    pub fn labelled(mut self, batch: &str, submission: &str) -> Self {
        self.labels.insert(LABEL_BATCH.into(), batch.into());
        self.labels
            .insert(LABEL_SUBMISSION.into(), submission.into());
        self
    }
}

pub use crate::blame::Blame;

/// Failures of the sandbox layer, one variant per cause; [`SandboxError::blame`]
/// says whose doing each is.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The Docker daemon answered with an error.
    #[error("docker {operation} failed: {source}")]
    Docker {
        /// What agh was doing.
        operation: &'static str,
        /// The daemon's error.
        #[source]
        source: bollard::errors::Error,
    },
    /// The Docker daemon did not answer in time.
    #[error("docker {operation} did not answer within {}s; is dockerd overloaded or stuck?", timeout.as_secs())]
    Timeout {
        /// What agh was doing.
        operation: &'static str,
        /// The bound that ran out.
        timeout: Duration,
    },
    /// A command brought the sandbox down (out of memory, processes that
    /// would not die); it cannot run more.
    #[error("the sandbox is gone: {reason}")]
    Lost {
        /// Why, as far as the daemon says.
        reason: String,
    },
    /// The sandbox was stopped by something other than the submission:
    /// killed or removed from outside, the daemon gone, the agent stuck.
    #[error("the sandbox was lost: {reason}")]
    Gone {
        /// What Docker's facts say happened.
        reason: String,
    },
    /// The request breaks the rules (a path outside the places, a
    /// malformed command, limits that cannot apply); refused before
    /// anything ran.
    #[error("{0}")]
    Refused(String),
    /// A host folder to copy in holds what agh never copies (links,
    /// special files, too much).
    #[error("{0}")]
    Uncopyable(String),
    /// What the student left in the sandbox stops the request: a folder
    /// where a file goes, a missing permission, a full place, a link.
    #[error("{0}")]
    SubmissionState(String),
    /// A file asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A host-side file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What agh was doing.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl From<crate::layout::PathRefused> for SandboxError {
    fn from(refused: crate::layout::PathRefused) -> Self {
        SandboxError::Refused(refused.to_string())
    }
}

impl SandboxError {
    /// Whose doing the failure is. Folders copied in whole are
    /// submissions (course files are checked before the batch), so what
    /// they hold is the student's.
    #[must_use]
    pub fn blame(&self) -> Blame {
        match self {
            SandboxError::Docker { .. }
            | SandboxError::Timeout { .. }
            | SandboxError::Io { .. }
            | SandboxError::Gone { .. } => Blame::Host,
            SandboxError::Lost { .. }
            | SandboxError::Uncopyable(_)
            | SandboxError::SubmissionState(_) => Blame::Student,
            SandboxError::Refused(_) | SandboxError::NotFound(_) => Blame::Grader,
        }
    }

    /// True for failures of Docker or the host that a retry may cure.
    #[must_use]
    pub fn is_infra(&self) -> bool {
        self.blame() == Blame::Host
    }
}

/// Runs one Docker call under `timeout`, mapping both failure kinds.
pub(crate) async fn docker_call<T>(
    operation: &'static str,
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, SandboxError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(SandboxError::Docker { operation, source }),
        Err(_) => Err(SandboxError::Timeout { operation, timeout }),
    }
}

/// Connects to the local Docker daemon (`DOCKER_HOST` or the default socket)
/// and checks that it answers.
///
/// # Errors
/// [`SandboxError::Docker`] or [`SandboxError::Timeout`] when no daemon answers.
pub async fn connect() -> Result<Docker, SandboxError> {
    let docker = Docker::connect_with_local_defaults().map_err(|source| SandboxError::Docker {
        operation: "connect",
        source,
    })?;
    docker_call("ping", DOCKER_CALL_TIMEOUT, docker.ping()).await?;
    Ok(docker)
}
