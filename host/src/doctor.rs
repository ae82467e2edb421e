//! `agh doctor`: checks that this machine can grade safely, and says how to
//! fix what it cannot.

use bollard::Docker;
use serde::Serialize;

use crate::sandbox::{self, Runtime, Sandbox, SandboxSpec};

/// The images `scripts/setup` builds; `agh doctor` checks them by default.
pub use crate::sandbox::DEFAULT_IMAGES;

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
    /// A check that passed, with what was seen.
    #[must_use]
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    /// A check that failed: what was seen, and what to do.
    #[must_use]
    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
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

/// `agh doctor`'s form of [`sandbox::prove_gvisor`].
pub async fn check_gvisor(docker: &Docker, image: &str, runtime: Runtime) -> Check {
    let name = format!("sandbox runs under gVisor ({image})");
    match sandbox::prove_gvisor(docker, image, runtime).await {
        Ok(seen) => Check::pass(name, seen),
        Err(not) => Check::fail(name, not.detail, not.fix),
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
