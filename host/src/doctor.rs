//! `agh doctor`: checks that this machine can grade safely, and says how to
//! fix what it cannot.

use bollard::Docker;
use serde::Serialize;

use crate::sandbox::{self, Runtime, Sandbox, SandboxSpec};

/// The images `scripts/setup` builds; `agh doctor` checks them by default.
pub use crate::sandbox::DEFAULT_IMAGES;

/// What gVisor's kernel log begins with: proof, from inside, that the
/// sandbox is not a plain runc container.
/// The name gVisor gives the host process that runs a sandbox.
const GVISOR_PROCESS: &str = "runsc-sandbox";

/// One check and its outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was seen.
    pub detail: String,
    /// What to do when it failed.
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Runs every check against the local daemon and `images`. Never fails:
/// each problem is a failed [`Check`] with its fix.
pub async fn run_checks(images: &[String]) -> Vec<Check> {
    let mut checks = Vec::new();
    let docker = match sandbox::connect().await {
        Ok(docker) => {
            checks.push(Check::pass("docker daemon", "answers"));
            docker
        }
        Err(err) => {
            checks.push(Check::fail(
                "docker daemon",
                err.to_string(),
                "run `sudo scripts/setup`, or start dockerd and check DOCKER_HOST",
            ));
            return checks;
        }
    };
    checks.push(check_runsc_registered(&docker).await);
    let mut present = Vec::new();
    for image in images {
        match docker.inspect_image(image).await {
            Ok(found) => {
                checks.push(Check::pass(
                    format!("image {image}"),
                    found.id.unwrap_or_default(),
                ));
                present.push(image.clone());
            }
            Err(err) => checks.push(Check::fail(
                format!("image {image}"),
                err.to_string(),
                "run `sudo scripts/setup` to build the sandbox images from Debian's packages",
            )),
        }
    }
    if checks.iter().all(|c| c.ok)
        && let Some(image) = present.first()
    {
        checks.push(check_gvisor(&docker, image, Runtime::Runsc).await);
        checks.push(check_threads(&docker, image, Runtime::Runsc).await);
    }
    checks
}

/// Starts a real sandbox of `image` and asks the agent, run as the student,
/// whether a thread can start and whether a user namespace can be made:
/// the two things agh's seccomp profile decides (see `sandbox::seccomp`).
/// The probe is agh's own binary, so the image cannot answer for it.
pub async fn check_threads(docker: &Docker, image: &str, runtime: Runtime) -> Check {
    let name = format!("threads start, user namespaces refused ({image})");
    const FIX: &str = "run `sudo scripts/setup` to register runsc with --oci-seccomp; \
                       a runsc that implements clone3 needs a newer agh";
    let sandbox = match doctor_sandbox(docker, image, runtime).await {
        Ok(sandbox) => sandbox,
        Err(err) => return Check::fail(name, err.to_string(), FIX),
    };
    let outcome = sandbox
        .run(&sandbox::Command::new([
            sandbox::AGENT_IN_SANDBOX,
            "threads",
        ]))
        .await;
    sandbox.teardown().await;
    match outcome {
        Ok(outcome) => {
            let seen = String::from_utf8_lossy(&outcome.stdout).trim().to_string();
            if outcome.exit_code == Some(0) {
                Check::pass(name, seen)
            } else {
                Check::fail(name, format!("{seen} ({outcome:?})"), FIX)
            }
        }
        Err(err) => Check::fail(name, err.to_string(), FIX),
    }
}

async fn check_runsc_registered(docker: &Docker) -> Check {
    const FIX: &str = "register runsc in /etc/docker/daemon.json under \"runtimes\" with runtimeArgs \
                       [\"--network=none\"] and send dockerd SIGHUP (scripts/setup does this)";
    match docker.info().await {
        Ok(info) => {
            let runtimes = info.runtimes.unwrap_or_default();
            match runtimes.get("runsc") {
                Some(rt) => Check::pass(
                    "runtime runsc registered",
                    rt.path.clone().unwrap_or_default(),
                ),
                None => Check::fail(
                    "runtime runsc registered",
                    format!(
                        "dockerd knows only: {}",
                        runtimes.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                    FIX,
                ),
            }
        }
        Err(err) => Check::fail("runtime runsc registered", err.to_string(), FIX),
    }
}

/// Starts a real sandbox of `image` under `runtime` and checks, from the
/// host, that the process behind it is gVisor's sandbox: the container's
/// process runs the runsc binary as `runsc-sandbox`. Nothing inside the
/// image is asked, so an image (which a grader chooses) cannot fake it.
pub async fn check_gvisor(docker: &Docker, image: &str, runtime: Runtime) -> Check {
    let name = format!("sandbox runs under gVisor ({image})");
    let sandbox = match doctor_sandbox(docker, image, runtime).await {
        Ok(sandbox) => sandbox,
        Err(err) => {
            return Check::fail(
                name,
                err.to_string(),
                "check /etc/docker/daemon.json registers runsc with --network=none; see the dockerd log",
            );
        }
    };
    let pid = sandbox
        .inspect()
        .await
        .ok()
        .and_then(|inspect| inspect.state?.pid)
        .filter(|&pid| pid > 0);
    let seen = pid.map(sandbox_process);
    sandbox.teardown().await;
    match seen {
        Some(Ok(seen)) if seen.is_gvisor() && !seen.seccomp => Check::fail(
            name,
            "gVisor runs without --oci-seccomp, so students could create user namespaces and escape the process limit",
            "run `sudo scripts/setup`, which registers runsc with --network=none --oci-seccomp",
        ),
        Some(Ok(seen)) if seen.is_gvisor() => Check::pass(
            name,
            format!(
                "the container's process is {GVISOR_PROCESS} ({}), with --oci-seccomp",
                seen.exe.display()
            ),
        ),
        Some(Ok(SandboxProcess { exe, argv0, .. })) => Check::fail(
            name,
            format!(
                "the container's process is {argv0:?} ({}), not gVisor's {GVISOR_PROCESS}",
                exe.display()
            ),
            "the runtime named runsc is not gVisor; point it at /usr/bin/runsc",
        ),
        Some(Err(err)) => Check::fail(
            name,
            format!("cannot see the container's process from here: {err}"),
            "run agh on the machine that runs dockerd, as root (it reads /proc of the sandbox process)",
        ),
        None => Check::fail(
            name,
            "docker reported no process for the sandbox",
            "see the dockerd log",
        ),
    }
}

/// A sandbox of `image` under `runtime`, labelled as the doctor's.
async fn doctor_sandbox(
    docker: &Docker,
    image: &str,
    runtime: Runtime,
) -> Result<Sandbox, sandbox::SandboxError> {
    let spec = SandboxSpec {
        runtime,
        ..SandboxSpec::new(image)
    }
    .labelled("doctor", "doctor");
    Sandbox::create(docker, spec).await
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
