//! The proof that a runtime is gVisor as agh needs it, taken before any
//! student code runs: a real sandbox is started and the process behind it
//! is looked at from the host. Nothing inside the image is asked, so an
//! image (which a grader chooses) cannot fake it.

use std::sync::Mutex;

use super::{DOCKER_CALL_TIMEOUT, Docker, Runtime, Sandbox, SandboxSpec, docker_call};

/// What this process has proved gVisor for: an image (by id) under a
/// runtime, on a daemon whose identity and registration of that runtime
/// were as recorded. A daemon restarted with another registration, another
/// daemon, or a rebuilt image makes a new key, so it is proved again.
static PROVED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn proved() -> std::sync::MutexGuard<'static, Vec<String>> {
    PROVED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a proof of `image_id` under `runtime` holds for: the daemon's id
/// and how it registers the runtime now.
async fn proof_key(docker: &Docker, image_id: &str, runtime: Runtime) -> Result<String, NotGvisor> {
    let info = docker_call("info", DOCKER_CALL_TIMEOUT, docker.info())
        .await
        .map_err(|err| NotGvisor {
            detail: err.to_string(),
            fix: "start Docker (`sudo scripts/setup`) and check `agh doctor`",
        })?;
    let registered = info
        .runtimes
        .as_ref()
        .and_then(|runtimes| runtimes.get(runtime.docker_name()))
        .map(|entry| serde_json::to_string(entry).unwrap_or_default());
    Ok(format!(
        "{image_id}\0{}\0{}\0{}",
        runtime.docker_name(),
        info.id.unwrap_or_default(),
        registered.unwrap_or_default()
    ))
}

/// [`prove_gvisor`], once per process for each image, runtime and daemon
/// registration: later calls with the same ones ask the daemon only how it
/// registers the runtime (one `info` call), not for a sandbox.
///
/// # Errors
/// As [`prove_gvisor`], or when the daemon does not answer.
pub async fn prove_gvisor_once(
    docker: &Docker,
    image: &str,
    image_id: &str,
    runtime: Runtime,
) -> Result<(), NotGvisor> {
    let key = proof_key(docker, image_id, runtime).await?;
    if proved().contains(&key) {
        return Ok(());
    }
    prove_gvisor(docker, image, runtime).await?;
    proved().push(key);
    Ok(())
}

/// Forgets every proof: the next [`prove_gvisor_once`] starts a sandbox
/// again. Called when the daemon failed under a grade, so a daemon that
/// came back (perhaps configured otherwise) is proved before it is trusted.
pub fn forget_proofs() {
    proved().clear();
}

/// The name gVisor's sandbox process gives itself.
const GVISOR_PROCESS: &str = "runsc-sandbox";

/// Why a runtime is not gVisor as agh needs it, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotGvisor {
    /// What was found.
    pub detail: String,
    /// What the operator should do.
    pub fix: &'static str,
}

/// Starts a sandbox of `image` under `runtime` and checks that the process
/// behind it is gVisor's sandbox (the runsc binary as `runsc-sandbox`),
/// run with `--oci-seccomp`. `Ok` says what was seen.
///
/// # Errors
/// [`NotGvisor`] saying what was found instead and what to do.
pub async fn prove_gvisor(
    docker: &Docker,
    image: &str,
    runtime: Runtime,
) -> Result<String, NotGvisor> {
    let spec = SandboxSpec {
        runtime,
        ..SandboxSpec::new(image)
    }
    .labelled("doctor", "doctor");
    let sandbox = Sandbox::create(docker, spec).await.map_err(|err| NotGvisor {
        detail: err.to_string(),
        fix: "check /etc/docker/daemon.json registers runsc with --network=none; see the dockerd log",
    })?;
    let pid = sandbox
        .inspect()
        .await
        .ok()
        .and_then(|inspect| inspect.state?.pid)
        .filter(|&pid| pid > 0);
    let seen = pid.map(sandbox_process);
    sandbox.teardown().await;
    match seen {
        Some(Ok(seen)) if seen.is_gvisor() && !seen.seccomp => Err(NotGvisor {
            detail: "gVisor runs without --oci-seccomp, so students could create user namespaces and escape the process limit".into(),
            fix: "run `sudo scripts/setup`, which registers runsc with --network=none --oci-seccomp",
        }),
        Some(Ok(seen)) if seen.is_gvisor() => Ok(format!(
            "the container's process is {GVISOR_PROCESS} ({}), with --oci-seccomp",
            seen.exe.display()
        )),
        Some(Ok(SandboxProcess { exe, argv0, .. })) => Err(NotGvisor {
            detail: format!(
                "the container's process is {argv0:?} ({}), not gVisor's {GVISOR_PROCESS}",
                exe.display()
            ),
            fix: "the runtime named runsc is not gVisor; point it at /usr/bin/runsc",
        }),
        Some(Err(err)) => Err(NotGvisor {
            detail: format!("cannot see the container's process from here: {err}"),
            fix: "run agh on the machine that runs dockerd, as root (it reads /proc of the sandbox process)",
        }),
        None => Err(NotGvisor {
            detail: "docker reported no process for the sandbox".into(),
            fix: "see the dockerd log",
        }),
    }
}

/// What the host shows of the process behind a sandbox.
struct SandboxProcess {
    exe: std::path::PathBuf,
    argv0: String,
    /// gVisor applies the container's seccomp profile inside the sandbox.
    seccomp: bool,
}

impl SandboxProcess {
    fn is_gvisor(&self) -> bool {
        self.argv0 == GVISOR_PROCESS && self.exe.file_name().is_some_and(|f| f == "runsc")
    }
}

/// Reads host process `pid`'s executable and arguments.
fn sandbox_process(pid: i64) -> std::io::Result<SandboxProcess> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))?;
    let mut args = cmdline.split(|&b| b == 0).map(String::from_utf8_lossy);
    let argv0 = args.next().unwrap_or_default().into_owned();
    let seccomp = args.any(|a| a == "--oci-seccomp" || a == "--oci-seccomp=true");
    Ok(SandboxProcess {
        exe,
        argv0,
        seccomp,
    })
}
