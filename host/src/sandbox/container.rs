//! Creating, checking and tearing down sandbox containers.

use std::collections::HashMap;
use std::sync::Mutex;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, HostConfig, HostConfigLogConfig,
    ResourcesUlimits,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, KillContainerOptions, ListContainersOptions,
    RemoveContainerOptions, StartContainerOptions,
};

use super::{
    DOCKER_CALL_TIMEOUT, DOCKER_START_TIMEOUT, LABEL_MANAGED, SandboxError, SandboxSpec,
    docker_call,
};

/// Inspections of a stopped container while waiting for Docker's OOM flag.
const OOM_FLAG_CHECKS: u32 = 5;
/// Pause between those inspections.
const OOM_FLAG_WAIT: std::time::Duration = std::time::Duration::from_millis(300);
/// Status of a container whose init died of SIGKILL.
const SIGKILL_STATUS: i64 = 137;

/// Largest log a sandbox's main process may leave with the daemon; the main
/// process is a sleep that prints nothing, so this only bounds surprises.
const LOG_MAX_SIZE: &str = "1m";

/// A running sandbox container. Call [`Sandbox::teardown`] when done; a
/// sandbox dropped without it is left for [`remove_labelled_containers`].
#[derive(Debug)]
pub struct Sandbox {
    pub(crate) docker: Docker,
    pub(crate) id: String,
    pub(crate) spec: SandboxSpec,
    /// Set once the sandbox has died; the reason is reported to every later call.
    pub(crate) lost: Mutex<Option<String>>,
}

impl Sandbox {
    /// Creates and starts a sandbox for `spec`.
    ///
    /// # Errors
    /// [`SandboxError::Invalid`] for limits that cannot be applied;
    /// infra errors when Docker fails (the image missing, runsc not registered).
    pub async fn create(docker: &Docker, spec: SandboxSpec) -> Result<Self, SandboxError> {
        spec.limits.validate().map_err(SandboxError::Invalid)?;
        let body = container_body(&spec);
        let created = docker_call(
            "create container",
            DOCKER_START_TIMEOUT,
            docker.create_container(None::<CreateContainerOptions>, body),
        )
        .await?;
        let sandbox = Sandbox {
            docker: docker.clone(),
            id: created.id,
            spec,
            lost: Mutex::new(None),
        };
        let started = docker_call(
            "start container",
            DOCKER_START_TIMEOUT,
            docker.start_container(&sandbox.id, None::<StartContainerOptions>),
        )
        .await;
        if let Err(err) = started {
            sandbox.teardown().await;
            return Err(err);
        }
        Ok(sandbox)
    }

    /// The container id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The spec the sandbox was created from.
    #[must_use]
    pub fn spec(&self) -> &SandboxSpec {
        &self.spec
    }

    /// What the daemon reports about the container (runtime, limits, state).
    ///
    /// # Errors
    /// Infra errors when Docker fails.
    pub async fn inspect(&self) -> Result<ContainerInspectResponse, SandboxError> {
        docker_call(
            "inspect container",
            DOCKER_CALL_TIMEOUT,
            self.docker
                .inspect_container(&self.id, None::<InspectContainerOptions>),
        )
        .await
    }

    /// Fails with [`SandboxError::Lost`] once the sandbox has died.
    pub(crate) fn ensure_alive(&self) -> Result<(), SandboxError> {
        match &*self
            .lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some(reason) => Err(SandboxError::Lost {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Checks whether the container still runs; if not, records why and
    /// returns whether the kernel killed it for memory.
    ///
    /// Docker learns of an OOM kill from an event that can arrive after the
    /// container is seen stopped, so a stopped container is inspected a few
    /// times before the answer is final; a container that ends on SIGKILL
    /// (status 137) that agh did not send is the kernel's OOM killer too.
    pub(crate) async fn check_alive(&self) -> Result<Option<bool>, SandboxError> {
        let mut state = Default::default();
        for attempt in 0..OOM_FLAG_CHECKS {
            state = match self.inspect().await {
                Ok(inspect) => inspect.state.unwrap_or_default(),
                Err(SandboxError::Docker {
                    source:
                        bollard::errors::Error::DockerResponseServerError {
                            status_code: 404, ..
                        },
                    ..
                }) => {
                    self.mark_lost("the sandbox container no longer exists".into());
                    return Ok(Some(false));
                }
                Err(err) => return Err(err),
            };
            if state.running == Some(true) {
                return Ok(None);
            }
            if state.oom_killed == Some(true) {
                break;
            }
            if attempt + 1 < OOM_FLAG_CHECKS {
                tokio::time::sleep(OOM_FLAG_WAIT).await;
            }
        }
        let oom = state.oom_killed == Some(true) || state.exit_code == Some(SIGKILL_STATUS);
        let reason = if oom {
            "the sandbox ran out of memory and gVisor stopped it".to_string()
        } else {
            format!(
                "the sandbox stopped (exit code {})",
                state.exit_code.unwrap_or(-1)
            )
        };
        self.mark_lost(reason);
        Ok(Some(oom))
    }

    /// Records that the sandbox can run nothing more, and why.
    pub(crate) fn mark_lost(&self, reason: String) {
        *self
            .lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason);
    }

    /// Kills the container with SIGKILL and removes it, each under a timeout.
    /// Failures are logged, not returned: a stuck container keeps its labels
    /// and [`remove_labelled_containers`] retries it later.
    pub async fn teardown(&self) {
        let kill = docker_call(
            "kill container",
            DOCKER_CALL_TIMEOUT,
            self.docker
                .kill_container(&self.id, None::<KillContainerOptions>),
        )
        .await;
        if let Err(err) = kill {
            tracing::debug!(container = %self.id, %err, "kill before removal");
        }
        if let Err(err) = remove_container(&self.docker, &self.id).await {
            tracing::warn!(container = %self.id, %err, "could not remove sandbox; will retry at next start");
        }
    }
}

async fn remove_container(docker: &Docker, id: &str) -> Result<(), SandboxError> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        link: false,
    };
    docker_call(
        "remove container",
        DOCKER_CALL_TIMEOUT,
        docker.remove_container(id, Some(options)),
    )
    .await
}

/// Force-removes every container agh labelled, or only those of `batch`.
/// Returns how many were removed.
///
/// # Errors
/// Infra errors when listing fails; removals that fail are logged and skipped.
pub async fn remove_labelled_containers(
    docker: &Docker,
    batch: Option<&str>,
) -> Result<usize, SandboxError> {
    let mut label_filters = vec![LABEL_MANAGED.to_string()];
    if let Some(batch) = batch {
        label_filters.push(format!("{}={batch}", super::LABEL_BATCH));
    }
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([("label".to_string(), label_filters)])),
        ..Default::default()
    };
    let containers = docker_call(
        "list containers",
        DOCKER_CALL_TIMEOUT,
        docker.list_containers(Some(options)),
    )
    .await?;
    let mut removed = 0;
    for id in containers.into_iter().filter_map(|c| c.id) {
        match remove_container(docker, &id).await {
            Ok(()) => removed += 1,
            Err(err) => tracing::warn!(container = %id, %err, "could not remove leftover sandbox"),
        }
    }
    Ok(removed)
}

/// The container configuration: every isolation setting in one place.
fn container_body(spec: &SandboxSpec) -> ContainerCreateBody {
    let limits = &spec.limits;
    let tmpfs_size = limits.tmpfs_bytes;
    let tmpfs = HashMap::from([
        (
            "/work".to_string(),
            format!("rw,exec,nosuid,nodev,size={tmpfs_size},mode=0755,uid=1000,gid=1000"),
        ),
        (
            "/assets".to_string(),
            format!("rw,exec,nosuid,nodev,size={tmpfs_size},mode=0755,uid=0,gid=0"),
        ),
        (
            "/grader".to_string(),
            format!("rw,exec,nosuid,nodev,size={tmpfs_size},mode=0700,uid=1001,gid=1001"),
        ),
        (
            "/tmp".to_string(),
            format!("rw,exec,nosuid,nodev,size={tmpfs_size},mode=1777"),
        ),
    ]);
    // Commands get the file-size limit from the exec wrapper; the container
    // bound only has to stop at the size of a writable place, so placing a
    // large asset as root is not cut short.
    let file_size =
        i64::try_from(limits.tmpfs_bytes.max(limits.file_size_bytes)).unwrap_or(i64::MAX);
    let processes = limits.container_nproc();
    let ulimits = vec![
        ResourcesUlimits {
            name: Some("fsize".into()),
            soft: Some(file_size),
            hard: Some(file_size),
        },
        ResourcesUlimits {
            name: Some("nproc".into()),
            soft: Some(processes),
            hard: Some(processes),
        },
        ResourcesUlimits {
            name: Some("core".into()),
            soft: Some(0),
            hard: Some(0),
        },
    ];
    let memory = i64::try_from(limits.memory_bytes).unwrap_or(i64::MAX);
    let host_config = HostConfig {
        runtime: Some(spec.runtime.docker_name().into()),
        network_mode: Some("none".into()),
        readonly_rootfs: Some(true),
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec!["no-new-privileges".into()]),
        memory: Some(memory),
        memory_swap: Some(memory),
        memory_swappiness: None,
        pids_limit: Some(limits.container_pids()),
        nano_cpus: Some(i64::from(limits.millicpus) * 1_000_000),
        shm_size: Some(i64::try_from(tmpfs_size).unwrap_or(i64::MAX)),
        tmpfs: Some(tmpfs),
        ulimits: Some(ulimits),
        // A reaping init, so processes killed at a deadline do not linger as
        // zombies that count against the process limit.
        init: Some(true),
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(HashMap::from([
                ("max-size".to_string(), LOG_MAX_SIZE.to_string()),
                ("max-file".to_string(), "1".to_string()),
            ])),
        }),
        ..Default::default()
    };
    let mut labels: HashMap<String, String> = spec
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(LABEL_MANAGED.into(), env!("CARGO_PKG_VERSION").into());
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        // The main process only keeps the sandbox alive; work runs via exec.
        cmd: Some(vec!["sleep".into(), "infinity".into()]),
        env: Some(vec![
            "PATH=/usr/local/bin:/usr/bin:/bin".into(),
            "LANG=C.UTF-8".into(),
        ]),
        working_dir: Some("/work".into()),
        user: Some("0:0".into()),
        network_disabled: Some(true),
        labels: Some(labels),
        host_config: Some(host_config),
        attach_stdin: Some(false),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        tty: Some(false),
        ..Default::default()
    }
}
