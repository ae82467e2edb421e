//! The grader host against a scripted sandbox: a [`SandboxPort`] that
//! answers every command as a clean exit and records what it was asked,
//! with no Docker. The plugin host's own rules (its budget, the checks on
//! what a grader returns, the host-call cap, WASI giving nothing) are
//! decided before any sandbox matters, so they are proved here in
//! milliseconds, beside the same modes graded in real sandboxes in
//! `plugin::each_bad_mode_fails_only_its_own_submission`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agh::assets::AssetCache;
use agh::batch;
use agh::config::Config;
use agh::plugin::{GradeContext, Session};
use agh::sandbox::{
    Command, CommandOutcome, FileEntry, Owner, PortFuture, SandboxError, SandboxPort, SandboxSpec,
    User,
};

use agh_tests::graders;

/// Answers every command with exit 0 and its argv echoed on stdout; keeps
/// a line per call.
struct Scripted {
    spec: SandboxSpec,
    calls: Arc<Mutex<Vec<String>>>,
}

impl Scripted {
    fn new(calls: Arc<Mutex<Vec<String>>>) -> Self {
        Self {
            spec: SandboxSpec::new("scripted"),
            calls,
        }
    }

    fn note(&self, call: String) {
        self.calls.lock().expect("calls").push(call);
    }

    fn ran(command: &Command) -> CommandOutcome {
        CommandOutcome {
            argv: command.argv.clone(),
            exit_code: Some(0),
            stdout: command.argv[1..].join(" ").into_bytes(),
            ..CommandOutcome::default()
        }
    }
}

impl SandboxPort for Scripted {
    fn spec(&self) -> &SandboxSpec {
        &self.spec
    }

    fn run<'a>(&'a self, command: &'a Command) -> PortFuture<'a, CommandOutcome> {
        self.note(format!("run {}", command.argv.join(" ")));
        Box::pin(async move { Ok(Self::ran(command)) })
    }

    fn converse<'a>(
        &'a self,
        judge: &'a Command,
        student: &'a Command,
    ) -> PortFuture<'a, (CommandOutcome, CommandOutcome)> {
        self.note(format!("converse {}", judge.argv.join(" ")));
        Box::pin(async move { Ok((Self::ran(judge), Self::ran(student))) })
    }

    fn write_file<'a>(
        &'a self,
        path: &'a str,
        _bytes: Vec<u8>,
        _owner: Owner,
        _read_only: bool,
    ) -> PortFuture<'a, ()> {
        self.note(format!("write {path}"));
        Box::pin(async { Ok(()) })
    }

    fn read_file<'a>(
        &'a self,
        path: &'a str,
        _max_bytes: u64,
        _user: User,
    ) -> PortFuture<'a, (Vec<u8>, bool)> {
        self.note(format!("read {path}"));
        Box::pin(async move { Err(SandboxError::NotFound(format!("{path} does not exist"))) })
    }

    fn copy_in<'a>(
        &'a self,
        dest: &'a str,
        _entries: Vec<FileEntry>,
        _owner: Owner,
        _read_only: bool,
    ) -> PortFuture<'a, ()> {
        self.note(format!("copy into {dest}"));
        Box::pin(async { Ok(()) })
    }

    fn copy_dir_in<'a>(
        &'a self,
        _host_dir: &'a Path,
        dest: &'a str,
        _owner: Owner,
        _read_only: bool,
    ) -> PortFuture<'a, ()> {
        self.note(format!("copy a folder into {dest}"));
        Box::pin(async { Ok(()) })
    }

    fn renew(&self) -> PortFuture<'_, Arc<dyn SandboxPort>> {
        self.note("renew".into());
        let fresh: Arc<dyn SandboxPort> = Arc::new(Scripted::new(self.calls.clone()));
        Box::pin(async move { Ok(fresh) })
    }

    fn teardown(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        self.note("teardown".into());
        Box::pin(async {})
    }
}

/// The one mode of `plugin::GRADE_MODES` that only a real sandbox refuses
/// (a write through `..`); every other fails the grader whatever its
/// sandbox does.
const SANDBOX_DECIDED: &str = "bad-path";

/// Each bad mode is the grader's failure, and a good submission after it
/// grades; the scripted sandbox saw exactly the commands the good mode ran.
#[tokio::test]
async fn the_grader_host_rules_hold_against_a_scripted_sandbox() {
    let started = Instant::now();
    let plan = batch::plan(Path::new(graders::MISBEHAVING), &Config::default())
        .await
        .expect("plan");
    let root = tempfile::tempdir().expect("tempdir");
    let memory = Arc::new(AssetCache::open(&root.path().join("cache"), 1 << 20).expect("cache"));
    let grade = |mode: &'static str| {
        let dir = root.path().join(mode);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("mode.txt"), mode).expect("mode");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let session = Session::new(
            Arc::new(Scripted::new(calls.clone())),
            &dir,
            Arc::new(Vec::new()),
            memory.clone(),
            Duration::from_secs(60),
        )
        .expect("session");
        let context = GradeContext {
            submission: mode.into(),
            settings: Vec::new(),
        };
        let run = plan.grader.grade(session, context, plan.effective.budget);
        async move { (run.await, calls) }
    };
    let mut problems = Vec::new();
    let host_decided = crate::plugin::GRADE_MODES
        .iter()
        .filter(|(mode, _)| *mode != SANDBOX_DECIDED);
    for &(mode, reason) in host_decided.clone() {
        let (run, _) = grade(mode).await;
        match run.report {
            Err(err) if err.to_string().contains(reason) => {}
            other => problems.push(format!(
                "{mode}: expected a failure with {reason:?}, got {other:?}"
            )),
        }
    }
    let (good, calls) = grade("ok").await;
    let report = good.report.expect("the ok mode grades");
    assert_eq!(report.tests.len(), 1);
    assert_eq!(report.tests[0].score, 1.0, "{report:?}");
    assert_eq!(report.tests[0].output, "fine", "the scripted echo");
    assert_eq!(*calls.lock().expect("calls"), ["run echo fine"]);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    eprintln!(
        "{} grader calls against the scripted sandbox in {:.2?}",
        host_decided.count() + 1,
        started.elapsed()
    );
}
