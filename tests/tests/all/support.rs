//! Helpers shared by the end-to-end tests.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use agh::sandbox::{self, Limits, Sandbox, SandboxSpec};

/// Held by the tests that grade whole courses against their expected
/// scores, and by the tests that grade agh check's stock attacks: fork and
/// memory bombs beside a course on two cores can push a correct program
/// past its time limit, so the two never run at once.
pub fn courses_alone() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The image with Python 3 and a C toolchain that scripts/setup builds.
pub const IMAGE: &str = "agh/python-c:1";

/// Connects to Docker, or fails the test with what to do.
pub async fn docker() -> agh::sandbox::Docker {
    match sandbox::connect().await {
        Ok(docker) => docker,
        Err(err) => {
            panic!("these tests need Docker with runsc: {err}\nrun `sudo scripts/setup` first")
        }
    }
}

/// A batch label unique to this test process and call.
pub fn batch_id(test: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "test-{}-{test}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a sandbox labelled with `batch`, failing the test loudly.
pub async fn sandbox(docker: &agh::sandbox::Docker, spec: SandboxSpec, batch: &str) -> Sandbox {
    let spec = spec.labelled(batch, "case");
    Sandbox::create(docker, spec)
        .await
        .unwrap_or_else(|err| panic!("creating a sandbox failed: {err}"))
}

/// Asserts no container labelled with `batch` is left (removing any found,
/// so one failure does not leak into the next run).
pub async fn assert_no_leftovers(docker: &agh::sandbox::Docker, batch: &str) {
    let left = sandbox::remove_leftovers(docker, sandbox::Leftovers::Batch(batch))
        .await
        .expect("listing containers")
        .removed;
    assert_eq!(
        left, 0,
        "{left} container(s) of batch {batch} outlived their teardown"
    );
}

/// The `agh` binary built beside this test binary (`cargo build` first).
pub fn agh_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let agh = dir.join("agh");
    let modified = |path: &std::path::Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let built = modified(&agh).unwrap_or_else(|| {
        panic!(
            "{} is missing: run `cargo build -p agh` first",
            agh.display()
        )
    });
    // `cargo test` rebuilds the library but not the binary: refuse a binary
    // older than any of the host's sources (or of the agent it embeds).
    let mut pending = vec![
        repo_root().join("host"),
        repo_root().join("agent"),
        repo_root().join("protocol"),
    ];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)
            .expect("host sources")
            .filter_map(Result::ok)
        {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if modified(&path).is_some_and(|source| source > built) {
                panic!(
                    "{} is older than {}: run `cargo build -p agh` (scripts/test does)",
                    agh.display(),
                    path.display()
                );
            }
        }
    }
    agh
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// A sandbox of [`IMAGE`] in a batch of its own, for one test.
pub struct Fixture {
    /// The daemon.
    pub docker: agh::sandbox::Docker,
    /// The batch label of the sandbox.
    pub batch: String,
    /// The sandbox.
    pub sandbox: Sandbox,
}

impl Fixture {
    /// Creates the sandbox with `limits`, failing the test loudly.
    pub async fn new(test: &str, limits: Limits) -> Self {
        Self::with_spec(
            test,
            SandboxSpec {
                limits,
                ..SandboxSpec::new(IMAGE)
            },
        )
        .await
    }

    /// Creates the sandbox of `spec`, failing the test loudly.
    pub async fn with_spec(test: &str, spec: SandboxSpec) -> Self {
        let docker = docker().await;
        let batch = batch_id(test);
        let sandbox = sandbox(&docker, spec, &batch).await;
        Self {
            docker,
            batch,
            sandbox,
        }
    }

    /// Tears the sandbox down and asserts nothing of its batch is left.
    pub async fn finish(self) {
        self.sandbox.teardown().await;
        assert_no_leftovers(&self.docker, &self.batch).await;
    }
}

/// A PostgreSQL server of Debian's package, made for one test in a
/// temporary folder and listening on loopback only; stopped when dropped.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its URL, for `--store`.
    pub url: String,
}

impl Postgres {
    /// Initialises and starts a server, or fails the test with what to do.
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions
                    .flatten()
                    .map(|v| v.path().join("bin"))
                    .filter(|bin| bin.join("initdb").is_file())
                    .max()
            })
            .unwrap_or_else(|| {
                panic!("these tests need PostgreSQL's server (Debian's postgresql); run `sudo scripts/setup`")
            });
        let dir = tempfile::Builder::new()
            .prefix("agh-pg-")
            .tempdir()
            .expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // PostgreSQL refuses to run as root: as root, run it as `postgres`.
        let root = crate::support::running_as_root();
        if root {
            let status = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success());
        }
        let run = |program: &str, args: &[&str]| {
            let mut command = if root {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(bin.join(program));
                c
            } else {
                std::process::Command::new(bin.join(program))
            };
            let output = command.args(args).output().expect(program);
            assert!(output.status.success(), "{program} failed: {output:?}");
        };
        let data = dir.path().join("data");
        let data = data.to_str().expect("utf-8 path");
        let socket = dir.path().to_str().expect("utf-8 path");
        run(
            "initdb",
            &[
                "-D",
                data,
                "-U",
                "agh",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let options = format!("-c listen_addresses=127.0.0.1 -p {port} -k {socket} -c fsync=off");
        let log = dir.path().join("log");
        run(
            "pg_ctl",
            &[
                "-D",
                data,
                "-l",
                log.to_str().expect("utf-8"),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
        run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "agh",
                "agh",
            ],
        );
        Self {
            url: format!("postgres://agh@127.0.0.1:{port}/agh"),
            bin,
            dir,
        }
    }

    /// The server's data folder.
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let stop = |c: &mut std::process::Command| {
            let _ = c
                .args(["-D"])
                .arg(self.data())
                .args(["-m", "immediate", "stop"])
                .output();
        };
        if running_as_root() {
            stop(
                std::process::Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(self.bin.join("pg_ctl")),
            );
        } else {
            stop(&mut std::process::Command::new(self.bin.join("pg_ctl")));
        }
    }
}

/// True when the tests run as root (as CI does).
pub fn running_as_root() -> bool {
    agh::private_dir::running_as_root()
}

/// The DOM of `url` after Debian's Chromium, headless, loaded it.
pub fn chromium_dom(url: &str) -> String {
    let profile = tempfile::tempdir().expect("tempdir");
    let output = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", url])
        .output()
        .unwrap_or_else(|err| {
            panic!("this test needs Debian's chromium: {err}; run `sudo scripts/setup`")
        });
    assert!(output.status.success(), "chromium failed: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What `tests/browser/SCRIPT` saw, driving Debian's Chromium through
/// playwright-core (both installed by `scripts/setup`): its JSON.
pub fn browse(script: &str, args: &[&str]) -> serde_json::Value {
    let output = std::process::Command::new("node")
        .arg(repo_root().join("tests/browser").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("this test needs Node.js: {err}; run `sudo scripts/setup`"));
    assert!(
        output.status.success(),
        "{script} failed (playwright-core and chromium come from `sudo scripts/setup`): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("{script} printed no JSON ({err}): {output:?}"))
}

/// Containers the agh process `pid` created since `since` (a Unix time),
/// told by their owner label, so other tests' sandboxes do not count.
pub async fn containers_created_since(
    docker: &agh::sandbox::Docker,
    since: i64,
    pid: u32,
) -> usize {
    let until = unix_now() + 1;
    let options = bollard::query_parameters::EventsOptionsBuilder::new()
        .since(&since.to_string())
        .until(&until.to_string())
        .filters(&std::collections::HashMap::from([
            ("type", vec!["container"]),
            ("event", vec!["create"]),
            ("label", vec![agh::sandbox::LABEL_MANAGED]),
        ]))
        .build();
    let owner = format!("/{pid}/");
    futures_util::StreamExt::collect::<Vec<_>>(docker.events(Some(options)))
        .await
        .into_iter()
        .filter_map(Result::ok)
        .filter(|event| {
            event
                .actor
                .as_ref()
                .and_then(|actor| actor.attributes.as_ref())
                .and_then(|labels| labels.get(agh::sandbox::LABEL_OWNER))
                .is_some_and(|o| o.contains(&owner))
        })
        .count()
}

/// Runs `command` to its end; its output and its pid.
pub fn output_and_pid(command: &mut std::process::Command) -> (std::process::Output, u32) {
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    (child.wait_with_output().expect("wait"), pid)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}
