//! A grader that misbehaves on purpose, for agh's tests. The mode comes from
//! the course setting `mode` (for `describe`) or from the submission's file
//! `mode.txt` (for `grade`), so one batch can mix bad and good submissions.
//! Every mode but `ok` must end as plugin-error for that submission only.

use agh_grader::{
    Cmd, GradeContext, GradeError, Grader, GraderInfo, Limit, Report, Test, TestResult, Verdict,
    Visibility,
};

struct Misbehaving;

fn test(name: &str, score: f64, max: f64) -> TestResult {
    Test::new(name, max).scored(score, Verdict::Accepted, "")
}

#[allow(unconditional_recursion, clippy::only_used_in_recursion)] // it exists to overflow the stack
fn recurse(depth: u64) -> u64 {
    std::hint::black_box(recurse(depth + 1)) + 1
}

impl Grader for Misbehaving {
    fn describe(settings: Vec<(String, String)>) -> GraderInfo {
        let mut info = agh_grader::info("misbehaving", "0.1.0", "agh/busybox:1");
        // Its endless loops end after a second or so, not the default's ten.
        info.budget.fuel = 2_000_000_000;
        match agh_grader::setting(&settings, "mode") {
            Some("wrong-api-version") => info.api_version = "9.0.0".into(),
            Some("above-ceilings") => {
                info.limits.memory_bytes = 64 * 1024 * 1024 * 1024;
                info.limits.wall_time_ms = 3_600_000;
            }
            Some("zero-limits") => info.limits.processes = 0,
            Some("ungranted-image") => info.image = "docker.io/library/ubuntu:latest".into(),
            Some("misspelled-image") => info.image = "agh/busybx:1".into(),
            Some("ungranted-asset") => info.assets.push(agh_grader::asset(
                "secrets",
                "elsewhere:keys",
                "/grader/keys",
            )),
            Some("describe-loop") => loop {
                std::hint::black_box(0);
            },
            _ => {}
        }
        // Numbers for the tests of deadlines and the grader's budget.
        if let Some(ms) =
            agh_grader::setting(&settings, "wall_time_ms").and_then(|v| v.parse().ok())
        {
            info.limits.wall_time_ms = ms;
        }
        if let Some(ms) =
            agh_grader::setting(&settings, "grader_wall_ms").and_then(|v| v.parse().ok())
        {
            info.budget.wall_time_ms = ms;
        }
        // `asset = SOURCE:PATH=TARGET` declares one extra asset, for placement tests.
        if let Some((source, target)) =
            agh_grader::setting(&settings, "asset").and_then(|a| a.split_once('='))
        {
            info.assets.push(agh_grader::asset("extra", source, target));
            info.limits.memory_bytes = 1536 * 1024 * 1024;
            info.limits.tmpfs_bytes = 768 * 1024 * 1024;
            info.limits.wall_time_ms = 60_000;
        }
        info
    }

    fn grade(_context: GradeContext) -> Result<Report, GradeError> {
        let mode = agh_grader::submission_file("mode.txt")?;
        let mode = String::from_utf8_lossy(&mode).trim().to_string();
        let tests = match mode.as_str() {
            "ok" => {
                let run = Cmd::new(["echo", "fine"]).run()?;
                vec![Test::new("echo", 1.0).passed(&run.stdout_text())]
            }
            // Puts what a grader could vary into its feedback: random bytes,
            // both clocks and a NaN's bits. Pinned by the host, so a replay
            // of this grader writes the same report.
            "varying" => {
                use std::hash::{BuildHasher, Hasher};
                let started = std::time::Instant::now();
                let run = Cmd::new(["echo", "fine"]).run()?;
                agh_grader::log_info("varying: ran echo");
                let random = std::collections::hash_map::RandomState::new()
                    .build_hasher()
                    .finish();
                let wall = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                let zero = std::hint::black_box(0.0f64);
                let nan = (zero / std::hint::black_box(0.0f64)).to_bits();
                vec![Test::new("varying", 1.0).passed(&format!(
                    "{} random {random:x} wall {wall} elapsed {:?} nan {nan:x}",
                    run.stdout_text().trim(),
                    started.elapsed()
                ))]
            }
            // Places the extra asset, then runs the submission's probe.sh as
            // the student; its stdout is the test's output.
            "probe-asset" => {
                agh_grader::place_asset("extra")?;
                let run = Cmd::new(["sh", "/work/probe.sh"]).run()?;
                vec![Test::new("probe", 1.0).passed(&run.stdout_text())]
            }
            // Three trivial commands: the unit of work of the batch benchmark.
            "three-commands" => {
                let mut tests = Vec::new();
                for i in 0..3 {
                    let run = Cmd::new(["true"]).run()?;
                    let test = Test::new(&format!("command {i}"), 1.0);
                    tests.push(if run.succeeded() {
                        test.passed("")
                    } else {
                        test.failed_with(&run, "failed")
                    });
                }
                tests
            }
            // `count.txt` commands of `true`: per-command overhead, for
            // scripts/bench-agent.
            "commands" => {
                let count = agh_grader::submission_file("count.txt")?;
                let count: usize = String::from_utf8_lossy(&count)
                    .trim()
                    .parse()
                    .map_err(|e| format!("count.txt: {e}"))?;
                let mut passed = 0;
                for _ in 0..count {
                    let run = Cmd::new(["true"]).run()?;
                    passed += usize::from(run.succeeded());
                }
                vec![test("commands", passed as f64, count as f64)]
            }
            // Ten commands that each print past the output cap: what a
            // batch holds in memory per submission, for scripts/bench-memory.
            "overflow" => floods("/dev/zero")?,
            // The same with random bytes, none alike: what a transcript
            // stores at most, for scripts/bench-rescore.
            "overflow-random" => floods("/dev/urandom")?,
            // A command that brings the sandbox down, then a fresh sandbox:
            // the pristine submission is back, what was built is gone.
            "reset" => {
                Cmd::new(["sh", "-c", "echo built > /work/built"]).run()?;
                let bomb = Cmd::new(["sh", "-c", "x=a; while :; do x=$x$x; done"]).run()?;
                let lost = agh_grader::read_file("/work/mode.txt", 64);
                agh_grader::reset_sandbox(&[])?;
                let mode = agh_grader::read_file("/work/mode.txt", 64)?;
                let built = agh_grader::read_file("/work/built", 64);
                vec![
                    Test::new("bomb lost the sandbox", 1.0).scored(
                        f64::from(u8::from(bomb.sandbox_lost && lost.is_err())),
                        Verdict::Accepted,
                        &format!("{:?} {:?}", bomb.limit, lost.err()),
                    ),
                    test(
                        "fresh sandbox",
                        f64::from(u8::from(mode == b"reset\n")),
                        1.0,
                    ),
                    test("built file gone", f64::from(u8::from(built.is_err())), 1.0),
                ]
            }
            // A command given longer than the sandbox's default time
            // limit, and one that is not: it waits past the wall clock's
            // backstop (3 x the limit unless the operator says otherwise).
            "long-command" => {
                let long = Cmd::new(["sleep", "2"]).timeout_ms(4_000).run()?;
                let short = Cmd::new(["sleep", "5"]).run()?;
                vec![
                    test("long deadline", f64::from(u8::from(long.succeeded())), 1.0),
                    test(
                        "default deadline",
                        f64::from(u8::from(short.timed_out)),
                        1.0,
                    ),
                ]
            }
            // Every fact the host reports, for the contract's test.
            "facts" => {
                let big =
                    Cmd::new(["sh", "-c", "head -c 100000000 /dev/zero > /work/big"]).run()?;
                let busy = Cmd::new([
                    "sh",
                    "-c",
                    "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done",
                ])
                .run()?;
                vec![
                    test(
                        "file size",
                        f64::from(u8::from(
                            big.file_size_exceeded && big.limit == Some(Limit::FileSize),
                        )),
                        1.0,
                    ),
                    test("cpu time", f64::from(u8::from(busy.cpu_time_ms > 0)), 1.0),
                    test(
                        "peak memory",
                        f64::from(u8::from(busy.peak_memory_bytes > 0)),
                        1.0,
                    ),
                ]
            }
            // What the student left stops the grader's write: `?` makes it
            // the student's (the submission has a folder named `blocked`).
            "student-state" => {
                agh_grader::write_file("/work/blocked", b"x", false)?;
                vec![test("unreachable", 1.0, 1.0)]
            }
            "ungradable" => {
                return Err(GradeError::Submission("nothing here can be graded".into()));
            }
            // Sleeps in WASI, costing no fuel: the grader's wall time ends it.
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(600));
                vec![test("woke", 1.0, 1.0)]
            }
            "loop" => loop {
                std::hint::black_box(0);
            },
            "allocate" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "recurse" => vec![test("deep", recurse(0) as f64, 1.0)],
            "panic" => panic!("the grader panicked on purpose"),
            "unreachable" => std::process::abort(),
            "nan-score" => vec![test("nan", f64::NAN, 1.0)],
            "negative-score" => vec![test("negative", -1.0, 1.0)],
            "above-max" => vec![test("greedy", 11.0, 10.0)],
            "infinite-max" => vec![test("infinite", 1.0, f64::INFINITY)],
            "million-tests" => (0..1_000_000)
                .map(|i| test(&format!("t{i}"), 0.0, 1.0))
                .collect(),
            "huge-output" => vec![Test::new("huge", 1.0).passed(&"x".repeat(16 * 1024 * 1024))],
            "duplicate-names" => vec![test("same", 1.0, 1.0), test("same", 1.0, 1.0)],
            "bad-path" => {
                agh_grader::write_file("/work/../etc/passwd", b"x", false)?;
                vec![test("unreachable", 1.0, 1.0)]
            }
            "host-path" => {
                agh_grader::submission_file("../../../../etc/passwd")?;
                vec![test("unreachable", 1.0, 1.0)]
            }
            "undeclared-asset" => {
                agh_grader::place_asset("not-declared")?;
                vec![test("unreachable", 1.0, 1.0)]
            }
            "call-flood" => loop {
                let _ = agh_grader::submission_files();
            },
            "log-flood" => loop {
                agh_grader::log_info(&"spam ".repeat(100));
            },
            "wasi-escape" => {
                let read = std::fs::read_to_string("/etc/passwd");
                let env: Vec<_> = std::env::vars().collect();
                if read.is_ok() || !env.is_empty() {
                    return Err(format!(
                        "WASI gave the grader the host: file {}, env {env:?}",
                        read.is_ok()
                    )
                    .into());
                }
                return Err("no host access through WASI, as expected".into());
            }
            other => return Err(format!("unknown mode {other:?}").into()),
        };
        Ok(Report {
            tests,
            output: String::new(),
        })
        .map(|mut r| {
            for t in &mut r.tests {
                t.visibility = Visibility::Visible;
            }
            r
        })
    }
}

agh_grader::export_grader!(Misbehaving);

/// Ten commands that each print 4 MB of `source`, past the output cap.
fn floods(source: &str) -> Result<Vec<TestResult>, GradeError> {
    let mut tests = Vec::new();
    for i in 0..10 {
        let run = Cmd::new(["head", "-c", "4000000", source]).run()?;
        let test = Test::new(&format!("flood {i}"), 1.0);
        tests.push(test.failed_with(&run, "printed past the cap"));
    }
    Ok(tests)
}
