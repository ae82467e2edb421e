//! `agh doctor`: checks that this machine can grade safely, and says how to
//! fix what it cannot.

use bollard::Docker;
use serde::Serialize;

use crate::sandbox::{self, Command, Runtime, Sandbox, SandboxSpec};

/// The images `scripts/setup` builds; `agh doctor` checks them by default.
pub const DEFAULT_IMAGES: [&str; 2] = ["agh/python-c:1", "agh/busybox:1"];

/// What gVisor's kernel log begins with: proof, from inside, that the
/// sandbox is not a plain runc container.
const GVISOR_BANNER: &str = "Starting gVisor";

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
        checks.push(check_gvisor_inside(&docker, image).await);
    }
    checks
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

/// Starts a real sandbox and reads the kernel log from inside it.
pub async fn check_gvisor_inside(docker: &Docker, image: &str) -> Check {
    let name = format!("sandbox runs under gVisor ({image})");
    let spec = SandboxSpec {
        runtime: Runtime::Runsc,
        ..SandboxSpec::new(image)
    }
    .labelled("doctor", "doctor");
    let sandbox = match Sandbox::create(docker, spec).await {
        Ok(sandbox) => sandbox,
        Err(err) => {
            return Check::fail(
                name,
                err.to_string(),
                "check /etc/docker/daemon.json registers runsc with --network=none; see the dockerd log",
            );
        }
    };
    let outcome = sandbox.run(&Command::new(["dmesg"])).await;
    sandbox.teardown().await;
    match outcome {
        Ok(o) if String::from_utf8_lossy(&o.stdout).contains(GVISOR_BANNER) => {
            Check::pass(name, "kernel log begins \"Starting gVisor\"")
        }
        Ok(o) => Check::fail(
            name,
            format!(
                "kernel log does not mention gVisor: {:?}",
                String::from_utf8_lossy(&o.stdout)
            ),
            "the runtime named runsc is not gVisor; point it at /usr/bin/runsc",
        ),
        Err(err) => Check::fail(name, err.to_string(), "see the dockerd log"),
    }
}
