//! Grades a C course by input and output.
//!
//! The submission's `main.c` is compiled inside the sandbox, under the same
//! limits as everything else (a compile error is a verdict, not a crash).
//! Each case `NAME.in` of the `cases` asset is fed to the program's stdin and
//! its stdout compared, inside the grader, with `NAME.out`, ignoring
//! whitespace differences. Expected outputs never enter the sandbox.

use agh_grader::{
    Cmd, CommandResult, Error, GradeContext, GradeError, Grader, GraderInfo, Report, Test, Verdict,
};

/// Feedback kept from compiler errors.
const FEEDBACK_BYTES: usize = 2000;

struct CInputOutput;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn clipped(s: &str) -> String {
    s.chars().take(FEEDBACK_BYTES).collect()
}

/// Compiles the submission's `main.c` to `/work/prog` as the student.
fn build() -> Result<CommandResult, Error> {
    Cmd::new([
        "gcc",
        "-O2",
        "-std=c11",
        "-Wall",
        "-o",
        "/work/prog",
        "/work/main.c",
        "-lm",
    ])
    .timeout_ms(30_000)
    .run()
}

impl Grader for CInputOutput {
    fn describe(_settings: Vec<(String, String)>) -> GraderInfo {
        let mut info = agh_grader::info("c-io", "0.1.0", "agh/python-c:1");
        info.limits.wall_time_ms = 3_000;
        info.limits.memory_bytes = 256 * 1024 * 1024;
        // tmpfs is held in memory: room for a full /work and the programs.
        info.limits.tmpfs_bytes = 128 * 1024 * 1024;
        // Read by the grader only; declared with a grader-only target but never placed.
        info.assets
            .push(agh_grader::asset("cases", "course:cases", "/grader/cases"));
        info
    }

    fn grade(_context: GradeContext) -> Result<Report, GradeError> {
        let mut names: Vec<String> = agh_grader::asset_files("cases")?
            .into_iter()
            .filter_map(|f| f.strip_suffix(".in").map(String::from))
            .collect();
        names.sort();
        if names.is_empty() {
            return Err("the cases asset holds no NAME.in files".into());
        }
        let compile = build()?;
        if !compile.succeeded() {
            let why = clipped(&compile.stderr_text());
            let tests = names
                .iter()
                .map(|n| Test::new(n, 1.0).failed(Verdict::CompileError, &why))
                .collect();
            return Ok(Report {
                tests,
                output: "The program does not compile.".into(),
            });
        }
        let mut tests = Vec::new();
        let mut down: Option<String> = None;
        for name in &names {
            if let Some(why) = &down {
                tests.push(Test::new(name, 1.0).not_run(why));
                continue;
            }
            let input = agh_grader::asset_file("cases", &format!("{name}.in"))?;
            let expected = agh_grader::asset_file("cases", &format!("{name}.out"))?;
            let test = Test::new(name, 1.0);
            let (result, lost) = match Cmd::new(["/work/prog"]).stdin(input).run() {
                Ok(run)
                    if run.succeeded()
                        && agh_grader::compare::ignoring_whitespace(
                            &text(&expected),
                            &run.stdout_text(),
                        ) =>
                {
                    (test.passed(""), false)
                }
                Ok(run) if run.succeeded() => (test.failed(Verdict::Wrong, "wrong output"), false),
                Ok(run) => {
                    let why = run.signal.clone().map_or_else(
                        || format!("exit code {:?}", run.exit_code),
                        |s| format!("killed by {s}"),
                    );
                    (test.failed_with(&run, &why), run.sandbox_lost)
                }
                Err(Error::SandboxLost(why)) => (
                    test.failed(Verdict::ResourceLimit, &format!("not run: {why}")),
                    true,
                ),
                Err(other) => return Err(other.into()),
            };
            tests.push(result);
            // A case that brought the sandbox down costs only itself: the
            // program is built again in a fresh sandbox for the next one.
            if lost {
                down = agh_grader::reset_after_loss(&[])?;
                if down.is_none() {
                    build()?;
                }
            }
        }
        Ok(Report {
            tests,
            output: String::new(),
        })
    }
}

agh_grader::export_grader!(CInputOutput);
