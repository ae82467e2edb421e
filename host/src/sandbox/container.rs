//! Creating, checking and tearing down sandbox containers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, HostConfig, HostConfigLogConfig, Mount,
    MountTypeEnum, ResourcesUlimits,
};
use bollard::query_parameters::{
    CreateContainerOptions, EventsOptions, InspectContainerOptions, KillContainerOptions,
    ListContainersOptions, RemoveContainerOptions, StartContainerOptions,
};
use futures_util::StreamExt;

use super::agent::{AGENT_IN_SANDBOX, Link, LinkError, agent_file};
use super::{
    DOCKER_CALL_TIMEOUT, DOCKER_START_TIMEOUT, LABEL_MANAGED, LABEL_OWNER, SandboxError,
    SandboxSpec, docker_call,
};
use crate::layout::Place;

/// How long, after the agent's stream ends, agh waits for Docker's account
/// of why (the events that say who stopped the container).
const DEATH_NOTICE: Duration = Duration::from_secs(3);
/// Pause between looks at the container while waiting for that account.
const DEATH_POLL: Duration = Duration::from_millis(100);
/// How long past a sandbox's death during a command agh waits for the
/// daemon's out-of-memory event, which can follow the death.
const OOM_NOTICE: Duration = Duration::from_millis(500);

/// Capabilities the agent keeps: to become the sandbox users and to kill
/// whatever they leave. Commands run as those users have none.
const AGENT_CAPABILITIES: [&str; 3] = ["SETUID", "SETGID", "KILL"];

/// A running sandbox container. Call [`Sandbox::teardown`] when done; a
/// sandbox dropped without it is left for [`remove_leftovers`].
#[derive(Debug)]
pub struct Sandbox {
    pub(crate) docker: Docker,
    pub(crate) id: String,
    pub(crate) spec: SandboxSpec,
    pub(crate) link: Link,
    /// What Docker said happened to the container.
    events: Arc<Events>,
    /// Set once the sandbox has died; the reason is reported to every later call.
    lost: Mutex<Option<Loss>>,
}

/// Why a sandbox can run nothing more, and whose doing it was.
#[derive(Debug, Clone)]
pub(crate) enum Loss {
    /// Something a command did (ran out of memory, left processes that
    /// would not die, crashed the sandbox's kernel).
    Command { reason: String, out_of_memory: bool },
    /// Killed or removed from outside, Docker gone, or agh's own agent
    /// failing: never the student's doing.
    Outside(String),
}

impl Loss {
    pub(crate) fn into_error(self) -> SandboxError {
        match self {
            Loss::Command { reason, .. } => SandboxError::Lost { reason },
            Loss::Outside(reason) => SandboxError::Gone { reason },
        }
    }
}

/// Container events seen since creation.
#[derive(Debug, Default)]
struct Events {
    actions: Mutex<Vec<String>>,
    /// The event stream itself broke (the daemon went away).
    broken: AtomicBool,
}

impl Events {
    fn saw(&self, action: &str) -> bool {
        self.actions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .any(|a| a == action || a.starts_with(&format!("{action}:")))
    }
}

impl Sandbox {
    /// Creates and starts a sandbox for `spec`, with the agent as its init,
    /// and waits for the agent's greeting.
    ///
    /// # Errors
    /// [`SandboxError::Refused`] for limits that cannot be applied;
    /// infra errors when Docker fails (the image missing, runsc not
    /// registered) or the agent does not greet.
    pub async fn create(docker: &Docker, spec: SandboxSpec) -> Result<Self, SandboxError> {
        spec.limits.validate().map_err(SandboxError::Refused)?;
        let agent = agent_file()?;
        let body = container_body(&spec, &agent.display().to_string());
        let created = docker_call(
            "create container",
            DOCKER_START_TIMEOUT,
            docker.create_container(None::<CreateContainerOptions>, body),
        )
        .await?;
        let events = Arc::new(Events::default());
        watch_events(docker, &created.id, events.clone());
        let link = match Link::attach(docker, &created.id).await {
            Ok(link) => link,
            Err(err) => {
                let _ = remove_container(docker, &created.id).await;
                return Err(err);
            }
        };
        let sandbox = Sandbox {
            docker: docker.clone(),
            id: created.id,
            spec,
            link,
            events,
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
        if let Err(err) = sandbox.link.hello(DOCKER_START_TIMEOUT).await {
            sandbox.teardown().await;
            return Err(SandboxError::Gone {
                reason: format!("the sandbox agent did not start: {err}"),
            });
        }
        Ok(sandbox)
    }

    /// A new sandbox from the same spec, with nothing in it: what a grader
    /// gets when it asks for a fresh start. This one is left as it is.
    ///
    /// # Errors
    /// As [`Sandbox::create`].
    pub async fn renew(&self) -> Result<Self, SandboxError> {
        Self::create(&self.docker, self.spec.clone()).await
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

    /// Fails with [`SandboxError::Lost`] (the student's doing) or
    /// [`SandboxError::Gone`] (not theirs) once the sandbox has died.
    pub(crate) fn ensure_alive(&self) -> Result<(), SandboxError> {
        match self.loss() {
            Some(loss) => Err(loss.into_error()),
            None => Ok(()),
        }
    }

    pub(crate) fn loss(&self) -> Option<Loss> {
        self.lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Records that the sandbox can run nothing more, and why (the first
    /// account stands).
    pub(crate) fn mark_lost(&self, loss: Loss) {
        self.lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert(loss);
    }

    /// Decides, from Docker's facts, why the agent's stream failed:
    /// `during_command` says whether a student's or grader's command was
    /// running, the only time the sandbox's death can be the command's.
    /// Never reads an error message: a kill or removal event that agh did
    /// not cause, a broken event stream (the daemon went away), or a
    /// container still running means someone else ended it; a container
    /// that died by itself while a command ran is that command's doing.
    pub(crate) async fn account_for(&self, failure: &LinkError, during_command: bool) -> Loss {
        let loss = match failure {
            LinkError::Broken(why) => Loss::Outside(format!("the sandbox agent failed: {why}")),
            LinkError::Silent(after) => Loss::Outside(format!(
                "the sandbox agent did not answer within {}s",
                after.as_secs()
            )),
            LinkError::Ended(_) => self.death_of_container(during_command).await,
        };
        if matches!(failure, LinkError::Broken(_) | LinkError::Silent(_)) {
            self.teardown().await;
        }
        self.mark_lost(loss.clone());
        loss
    }

    async fn death_of_container(&self, during_command: bool) -> Loss {
        let outside =
            |what: &str| Loss::Outside(format!("the sandbox {what}; not the submission's doing"));
        let mut state = None;
        for _ in 0..(DEATH_NOTICE.as_millis() / DEATH_POLL.as_millis()) {
            match self.inspect().await {
                Ok(inspect) => {
                    let s = inspect.state.unwrap_or_default();
                    if s.running != Some(true)
                        && (self.events.saw("die") || self.events.broken.load(Ordering::SeqCst))
                    {
                        state = Some(s);
                        break;
                    }
                    state = Some(s);
                }
                Err(SandboxError::Docker {
                    source:
                        bollard::errors::Error::DockerResponseServerError {
                            status_code: 404, ..
                        },
                    ..
                }) => return outside("container was removed from outside agh"),
                Err(_) => {
                    return outside("could not be inspected: the Docker daemon did not answer");
                }
            }
            tokio::time::sleep(DEATH_POLL).await;
        }
        let state = state.unwrap_or_default();
        if self.events.saw("kill") || self.events.saw("destroy") {
            return outside("was killed from outside agh (docker kill or docker rm)");
        }
        if self.events.broken.load(Ordering::SeqCst) {
            return outside("stopped while the Docker daemon went away");
        }
        if state.running == Some(true) {
            return outside("stream from Docker broke while the container still ran");
        }
        let mut out_of_memory = state.oom_killed == Some(true) || self.events.saw("oom");
        // The daemon may tell of the out-of-memory kill just after the death.
        let mut waited = Duration::ZERO;
        while !out_of_memory && waited < OOM_NOTICE {
            tokio::time::sleep(DEATH_POLL).await;
            waited += DEATH_POLL;
            out_of_memory = self.events.saw("oom");
        }
        // agh's own file work is bounded (a write is at most a few MiB); the
        // sandbox's places are tmpfs, held in its memory. Running out during
        // a copy means what the submission holds, or what its programs left
        // behind, filled it: the student's, like a command's.
        if !during_command && out_of_memory {
            return Loss::Command {
                reason: "the sandbox ran out of memory while agh copied files in: what the \
                         submission holds, or what its programs left in the sandbox, fills it"
                    .into(),
                out_of_memory,
            };
        }
        if !during_command {
            return outside(&format!(
                "stopped between commands (exit code {})",
                state.exit_code.unwrap_or(-1)
            ));
        }
        Loss::Command {
            reason: if out_of_memory {
                "the sandbox ran out of memory and gVisor stopped it".into()
            } else {
                format!(
                    "the command brought the sandbox down (exit code {})",
                    state.exit_code.unwrap_or(-1)
                )
            },
            out_of_memory,
        }
    }

    /// Kills the container with SIGKILL and removes it, each under a timeout.
    /// Failures are logged, not returned: a stuck container keeps its labels
    /// and [`remove_leftovers`] retries it later.
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

/// Which labelled containers a clean-up may remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftovers<'a> {
    /// Those of one batch: leftovers of a killed or interrupted run of it
    /// (the output folder's lock says no other agh grades it now).
    Batch(&'a str),
    /// Those whose agh is provably gone: started on this host by a process
    /// that no longer runs. Another agh's sandboxes in flight are kept.
    Orphaned,
    /// Those of one batch that this agh process made: what a grading it
    /// stopped before its end left (another process's are kept).
    Mine(&'a str),
    /// Every container agh labelled, whoever runs it.
    All,
}

/// What a clean-up did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cleaned {
    /// Containers removed.
    pub removed: usize,
    /// Labelled containers left alone: their agh still runs, or runs on
    /// another host, or is unknown (made by an agh before owners were
    /// recorded).
    pub kept: usize,
}

/// Force-removes the labelled containers `scope` allows.
///
/// # Errors
/// Infra errors when listing fails; removals that fail are logged and skipped.
pub async fn remove_leftovers(
    docker: &Docker,
    scope: Leftovers<'_>,
) -> Result<Cleaned, SandboxError> {
    let mut label_filters = vec![LABEL_MANAGED.to_string()];
    if let Leftovers::Batch(batch) | Leftovers::Mine(batch) = scope {
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
    let mut cleaned = Cleaned::default();
    for container in containers {
        let Some(id) = container.id else { continue };
        let owner = container
            .labels
            .as_ref()
            .and_then(|labels| labels.get(LABEL_OWNER));
        let keep = match scope {
            Leftovers::Orphaned => !owner.is_some_and(|o| owner_is_gone(o)),
            Leftovers::Mine(_) => owner.is_none_or(|o| o != this_owner()),
            Leftovers::Batch(_) | Leftovers::All => false,
        };
        if keep {
            cleaned.kept += 1;
            continue;
        }
        match remove_container(docker, &id).await {
            Ok(()) => cleaned.removed += 1,
            Err(err) => tracing::warn!(container = %id, %err, "could not remove leftover sandbox"),
        }
    }
    Ok(cleaned)
}

/// This agh process, as its sandboxes' [`LABEL_OWNER`] records it:
/// `HOST/PID/START` (START, the process's start time in clock ticks since
/// boot, tells a reused pid apart).
pub(crate) fn this_owner() -> &'static str {
    static OWNER: OnceLock<String> = OnceLock::new();
    OWNER.get_or_init(|| {
        let pid = std::process::id();
        format!(
            "{}/{pid}/{}",
            host_name(),
            process_start(pid).unwrap_or_default()
        )
    })
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// A process's start time from `/proc/PID/stat` (field 22, counted after
/// the command name, which may hold spaces and parentheses).
fn process_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19).map(String::from)
}

/// True only when `owner` names a process of this host that no longer
/// runs: another host's, or an unreadable label, is never provably gone.
pub(crate) fn owner_is_gone(owner: &str) -> bool {
    let mut parts = owner.split('/');
    let (Some(host), Some(pid), Some(start), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    host == host_name() && process_start(pid).as_deref() != Some(start)
}

/// Follows Docker's events for one container into `events`.
fn watch_events(docker: &Docker, id: &str, events: Arc<Events>) {
    let options = EventsOptions {
        since: None,
        until: None,
        filters: Some(HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("container".to_string(), vec![id.to_string()]),
        ])),
    };
    let mut stream = docker.events(Some(options));
    tokio::spawn(async move {
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => {
                    let action = event.action.unwrap_or_default();
                    let done = action == "destroy";
                    events
                        .actions
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(action);
                    if done {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        events.broken.store(true, Ordering::SeqCst);
    });
}

/// The container configuration: every isolation setting in one place.
fn container_body(spec: &SandboxSpec, agent: &str) -> ContainerCreateBody {
    let limits = &spec.limits;
    let tmpfs_size = limits.tmpfs_bytes;
    let mount = |(path, uid, mode): (String, u32, &str)| {
        (
            path,
            format!("rw,exec,nosuid,nodev,size={tmpfs_size},mode={mode},uid={uid},gid={uid}"),
        )
    };
    let standard = Place::ALL.into_iter().map(|place| {
        let (uid, mode) = place.owner_and_mode();
        (place.path().to_string(), uid, mode)
    });
    let own = spec
        .places
        .iter()
        .map(|place| (place.path.clone(), place.owner.uid(), place.mode()));
    let tmpfs: HashMap<String, String> = standard.chain(own).map(mount).collect();
    // Commands get their own limits from the agent; the container's only
    // bound the agent's own file work, up to the size of a writable place.
    let file_size =
        i64::try_from(limits.tmpfs_bytes.max(limits.file_size_bytes)).unwrap_or(i64::MAX);
    let ulimits = vec![
        ResourcesUlimits {
            name: Some("fsize".into()),
            soft: Some(file_size),
            hard: Some(file_size),
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
        cap_add: Some(AGENT_CAPABILITIES.map(String::from).to_vec()),
        security_opt: Some(vec![
            "no-new-privileges".into(),
            format!("seccomp={}", super::seccomp::profile()),
        ]),
        memory: Some(memory),
        memory_swap: Some(memory),
        memory_swappiness: None,
        pids_limit: Some(limits.container_pids()),
        nano_cpus: Some(i64::from(limits.millicpus) * 1_000_000),
        shm_size: Some(i64::try_from(tmpfs_size).unwrap_or(i64::MAX)),
        tmpfs: Some(tmpfs),
        ulimits: Some(ulimits),
        // The agent is init and reaps; Docker's own init would stand
        // between it and the commands it watches.
        init: Some(false),
        mounts: Some(vec![Mount {
            target: Some(AGENT_IN_SANDBOX.into()),
            source: Some(agent.into()),
            typ: Some(MountTypeEnum::BIND),
            read_only: Some(true),
            ..Default::default()
        }]),
        // Everything on the agent's stdout is protocol, read over the
        // attached stream; nothing is worth logging to disk.
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".into()),
            config: None,
        }),
        ..Default::default()
    };
    let mut labels: HashMap<String, String> = spec
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(LABEL_MANAGED.into(), env!("CARGO_PKG_VERSION").into());
    labels.insert(LABEL_OWNER.into(), this_owner().into());
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: Some(vec![AGENT_IN_SANDBOX.into()]),
        cmd: Some(Vec::new()),
        env: Some(vec![
            format!("PATH={}", agh_protocol::PATH),
            "LANG=C.UTF-8".into(),
        ]),
        working_dir: Some("/".into()),
        user: Some("0:0".into()),
        network_disabled: Some(true),
        labels: Some(labels),
        host_config: Some(host_config),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(true),
        stdin_once: Some(false),
        tty: Some(false),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dead_process_of_this_host_is_a_gone_owner() {
        assert!(!owner_is_gone(this_owner()), "this process runs");
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        let alive = format!(
            "{}/{pid}/{}",
            host_name(),
            process_start(pid).expect("start")
        );
        child.wait().expect("wait");
        assert!(owner_is_gone(&alive), "an ended process is gone");
        assert!(!owner_is_gone(&format!("another-host/{pid}/1")));
        assert!(!owner_is_gone("not an owner"));
        assert!(!owner_is_gone(""));
    }
}
