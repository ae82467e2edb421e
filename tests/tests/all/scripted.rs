//! The grader host against a scripted sandbox: a [`SandboxPort`] that
//! answers every command as a clean exit and records what it was asked,
//! with no Docker. The plugin host's own rules (its budget, the checks on
//! what a grader returns, the host-call cap, WASI giving nothing) are
//! decided before any sandbox matters, so they are proved here in
//! milliseconds, beside the same modes graded in real sandboxes in
//! `plugin::each_bad_mode_fails_only_its_own_submission`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agh::assets::AssetCache;
use agh::config::Config;
use agh::grading;
use agh::plugin::{GradeContext, PluginError, Session, SessionParts};
use agh::sandbox::{
    Command, CommandOutcome, FileEntry, HostTree, MAX_SUBMISSION_BYTES, Owner, PortFuture,
    SandboxError, SandboxPort, SandboxSpec, User,
};

use agh_tests::graders;

/// Answers every command with exit 0 and its argv echoed on stdout; keeps
/// a line per call. With `tamper`, every command also appends to that host
/// file: another local user changing a submission while it is graded.
struct Scripted {
    spec: SandboxSpec,
    calls: Arc<Mutex<Vec<String>>>,
    tamper: Option<PathBuf>,
    /// What a command prints, when not its argv.
    stdout: Option<Vec<u8>>,
}

impl Scripted {
    fn new(calls: Arc<Mutex<Vec<String>>>) -> Self {
        Self {
            spec: SandboxSpec::new("scripted"),
            calls,
            tamper: None,
            stdout: None,
        }
    }

    fn note(&self, call: String) {
        self.calls.lock().expect("calls").push(call);
    }

    fn ran(&self, command: &Command) -> CommandOutcome {
        CommandOutcome {
            argv: command.argv.clone(),
            exit_code: Some(0),
            stdout: self
                .stdout
                .clone()
                .unwrap_or_else(|| command.argv[1..].join(" ").into_bytes()),
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
        if let Some(file) = &self.tamper {
            let mut bytes = std::fs::read(file).expect("read the submission");
            bytes.extend_from_slice(b"changed\n");
            std::fs::write(file, bytes).expect("change the submission");
        }
        Box::pin(async move { Ok(self.ran(command)) })
    }

    fn converse<'a>(
        &'a self,
        judge: &'a Command,
        student: &'a Command,
    ) -> PortFuture<'a, (CommandOutcome, CommandOutcome)> {
        self.note(format!("converse {}", judge.argv.join(" ")));
        Box::pin(async move { Ok((self.ran(judge), self.ran(student))) })
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

    fn copy_tree_in<'a>(
        &'a self,
        tree: &'a HostTree,
        dest: &'a str,
        _owner: Owner,
        _read_only: bool,
    ) -> PortFuture<'a, String> {
        self.note(format!("copy a tree into {dest}"));
        Box::pin(async move { tree.digest() })
    }

    fn renew(&self) -> PortFuture<'_, Arc<dyn SandboxPort>> {
        self.note("renew".into());
        let fresh: Arc<dyn SandboxPort> = Arc::new(Scripted {
            tamper: self.tamper.clone(),
            ..Scripted::new(self.calls.clone())
        });
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
    let plan = grading::plan(Path::new(graders::MISBEHAVING), &Config::default())
        .await
        .expect("plan");
    let root = tempfile::tempdir().expect("tempdir");
    let memory = Arc::new(AssetCache::open(&root.path().join("cache"), 1 << 20).expect("cache"));
    let grade = |mode: &'static str| {
        let dir = root.path().join(mode);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("mode.txt"), mode).expect("mode");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let tree = Arc::new(HostTree::walk(&dir, MAX_SUBMISSION_BYTES).expect("walk"));
        let copied = tree.digest().expect("digest");
        let parts = SessionParts {
            assets: Arc::new(Vec::new()),
            memory: memory.clone(),
            command_time: Duration::from_secs(60),
            pins: agh::plugin::Pins::fresh(),
        };
        let session = Session::new(Arc::new(Scripted::new(calls.clone())), tree, copied, parts)
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

/// `sandbox.reset` goes through the port (teardown, renew, the walked
/// submission copied again) and copies exactly what the first sandbox got:
/// when the submission's files changed on the host while it was graded,
/// the grade stops as an infra error (an outside cause, graded again from
/// the start), never graded on files its first sandbox did not hold.
#[tokio::test]
async fn a_reset_copies_the_snapshot_and_refuses_files_changed_since() {
    let plan = grading::plan(Path::new(graders::MISBEHAVING), &Config::default())
        .await
        .expect("plan");
    let root = tempfile::tempdir().expect("tempdir");
    let memory = Arc::new(AssetCache::open(&root.path().join("cache"), 1 << 20).expect("cache"));
    let grade = |name: &str, tampered: bool| {
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("mode.txt"), "reset\n").expect("mode");
        let tree = Arc::new(HostTree::walk(&dir, MAX_SUBMISSION_BYTES).expect("walk"));
        let copied = tree.digest().expect("digest");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let port = Scripted {
            tamper: tampered.then(|| dir.join("mode.txt")),
            ..Scripted::new(calls.clone())
        };
        let parts = SessionParts {
            assets: Arc::new(Vec::new()),
            memory: memory.clone(),
            command_time: Duration::from_secs(60),
            pins: agh::plugin::Pins::fresh(),
        };
        let session = Session::new(Arc::new(port), tree, copied, parts).expect("session");
        let context = GradeContext {
            submission: name.into(),
            settings: Vec::new(),
        };
        let run = plan.grader.grade(session, context, plan.effective.budget);
        async move { (run.await, calls) }
    };
    let (steady, calls) = grade("steady", false).await;
    let calls = calls.lock().expect("calls").clone();
    let reset = calls
        .iter()
        .position(|c| c == "teardown")
        .expect("the reset tore the first sandbox down");
    assert_eq!(
        calls[reset..reset + 3],
        ["teardown", "renew", "copy a tree into /work"],
        "{calls:?}"
    );
    // The scripted sandbox holds no files, so the grader's read after the
    // reset fails: its own failure, not an infra error.
    let steady = steady
        .report
        .expect_err("the scripted sandbox reads nothing");
    assert!(!matches!(steady, PluginError::Infra(_)), "{steady:?}");

    let (tampered, _) = grade("tampered", true).await;
    match tampered.report {
        Err(PluginError::Infra(why)) => assert!(why.contains("changed on the host"), "{why}"),
        other => panic!("expected an infra error, got {other:?}"),
    }
}

/// A session of `dir`'s files in `port`, with no assets.
fn session_in(port: Scripted, dir: &Path, memory: &Arc<AssetCache>) -> Session {
    let tree = Arc::new(HostTree::walk(dir, MAX_SUBMISSION_BYTES).expect("walk"));
    let copied = tree.digest().expect("digest");
    let parts = SessionParts {
        assets: Arc::new(Vec::new()),
        memory: memory.clone(),
        command_time: Duration::from_secs(60),
        pins: agh::plugin::Pins::fresh(),
    };
    Session::new(Arc::new(port), tree, copied, parts).expect("session")
}

/// Grades `session` as submission `submission` with `plan`'s grader.
async fn grade_in(plan: &grading::Plan, session: Session) -> agh::plugin::GradeRun {
    let context = GradeContext {
        submission: "submission".into(),
        settings: Vec::new(),
    };
    plan.grader
        .grade(session, context, plan.effective.budget)
        .await
}

/// A grader built against the frozen contract 0.1.0 is served through the
/// conversion: its command reaches the port and its report comes back
/// scored, right and wrong, with no Docker (beside
/// `plugin::a_grader_built_against_contract_0_1_0_still_grades`). A grader
/// importing what agh does not grant fails only its own call, naming it.
#[tokio::test]
async fn contract_0_1_and_foreign_imports_hold_against_a_scripted_sandbox() {
    let root = tempfile::tempdir().expect("tempdir");
    let memory = Arc::new(AssetCache::open(&root.path().join("cache"), 1 << 20).expect("cache"));
    let dir = root.path().join("submission");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("answer.txt"), "42\n").expect("answer");
    let old = grading::plan(Path::new(graders::CONTRACT_0_1), &Config::default())
        .await
        .expect("plan");
    assert_eq!(old.grader.contract(), "0.1.0");
    let mut scores = Vec::new();
    for printed in ["42\n", "41\n"] {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let port = Scripted {
            stdout: Some(printed.as_bytes().to_vec()),
            ..Scripted::new(calls.clone())
        };
        let run = grade_in(&old, session_in(port, &dir, &memory)).await;
        let report = run.report.expect("the 0.1 grader grades");
        assert_eq!(*calls.lock().expect("calls"), ["run cat /work/answer.txt"]);
        scores.push((report.tests[0].score, report.tests[0].verdict));
    }
    assert_eq!(
        scores,
        [
            (1.0, agh::plugin::WitVerdict::Accepted),
            (0.0, agh::plugin::WitVerdict::Wrong)
        ]
    );

    let foreign = grading::plan(Path::new(graders::FOREIGN_IMPORT), &Config::default())
        .await
        .expect("plan");
    let port = Scripted::new(Arc::new(Mutex::new(Vec::new())));
    let run = grade_in(&foreign, session_in(port, &dir, &memory)).await;
    let error = run
        .report
        .expect_err("the foreign import fails")
        .to_string();
    assert!(
        error.contains("example:net/fetch") && error.contains("--disable http"),
        "{error}"
    );
}
