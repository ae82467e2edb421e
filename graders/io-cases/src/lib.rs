//! agh's no-code grader: input/output cases described by a `cases.toml`
//! among the course's files (see [`cases`] for the format).
//!
//! The course files are the asset `cases` (source `course:cases` unless the
//! setting `cases` names another). The grader reads `cases.toml`, the
//! inputs and the expected outputs itself: expected outputs never enter the
//! sandbox. Inputs reach the program on stdin, and files a case names are
//! written into `/work` before it runs. An optional build step runs once;
//! a case that brings the sandbox down costs only itself (a fresh sandbox,
//! built again, runs the next).
//!
//! Settings (in `agh.toml`'s `[settings]`): `image` (default
//! `agh/python-c:1`), `cases` (`SOURCE:PATH` of the course files),
//! `wall_time_ms`, `memory_mb`, `processes`.

pub mod cases;

use agh_grader::{
    Cmd, CommandResult, Error, GradeContext, GradeError, Grader, GraderInfo, Report, Test,
    TestResult, Verdict, Visibility, compare,
};

use cases::{Case, Cases, Compare, Shown, Source, Step};

/// Bytes of a failed build's complaint kept as feedback.
const FEEDBACK_BYTES: usize = 2000;
/// The asset holding `cases.toml` and the case files.
const ASSET: &str = "cases";

struct IoCases;

fn number(settings: &[(String, String)], key: &str) -> Option<u64> {
    agh_grader::setting(settings, key).and_then(|v| v.trim().parse().ok())
}

fn tail(text: &str) -> String {
    let skip = text.chars().count().saturating_sub(FEEDBACK_BYTES);
    text.chars()
        .skip(skip)
        .collect::<String>()
        .trim()
        .to_string()
}

fn read(source: &Source) -> Result<Vec<u8>, GradeError> {
    match source {
        Source::Inline(text) => Ok(text.clone().into_bytes()),
        Source::File(path) => Ok(agh_grader::asset_file(ASSET, path)?),
    }
}

/// Places `files` (target in `/work` -> course file) read-only.
fn place(files: &std::collections::BTreeMap<String, String>) -> Result<(), GradeError> {
    for (target, from) in files {
        let bytes = agh_grader::asset_file(ASSET, from)?;
        agh_grader::write_file(&format!("/work/{target}"), &bytes, true)?;
    }
    Ok(())
}

fn command(step: &Step, args: &[String]) -> Cmd {
    let mut cmd = Cmd::new(step.argv.iter().cloned()).args(args.iter().cloned());
    if let Some(ms) = step.timeout_ms {
        cmd = cmd.timeout_ms(ms);
    }
    if let Some(bytes) = step.output_bytes {
        cmd = cmd.output_bytes(bytes);
    }
    cmd
}

/// Runs the build step, if any; `Some(feedback)` when it failed.
fn build(cases: &Cases) -> Result<Option<(Verdict, String)>, GradeError> {
    let Some(step) = &cases.build else {
        return Ok(None);
    };
    place(&step.files)?;
    let run = command(step, &[]).run()?;
    Ok((!run.succeeded()).then(|| {
        let verdict = match run.verdict {
            Some(Verdict::TimeLimit | Verdict::MemoryLimit | Verdict::ResourceLimit) => {
                run.verdict.unwrap_or(Verdict::CompileError)
            }
            _ => Verdict::CompileError,
        };
        (
            verdict,
            tail(&format!("{}{}", run.stdout_text(), run.stderr_text())),
        )
    }))
}

fn visibility(shown: Shown) -> Visibility {
    match shown {
        Shown::Visible => Visibility::Visible,
        Shown::AfterDueDate => Visibility::AfterDueDate,
        Shown::AfterPublished => Visibility::AfterPublished,
        Shown::Hidden => Visibility::Hidden,
    }
}

fn matches(case: &Case, expected: &str, got: &str) -> bool {
    match case.compare {
        Compare::Exact => compare::exact(expected, got),
        Compare::Whitespace => compare::ignoring_whitespace(expected, got),
        Compare::Numeric => compare::numeric(expected, got, case.tolerance),
        Compare::Lines => agh_grader::lines::same(expected, got),
        Compare::UnorderedLines => agh_grader::lines::same_unordered(expected, got),
    }
}

/// Runs one case; the result and whether it brought the sandbox down.
fn run_case(cases: &Cases, case: &Case) -> Result<(TestResult, bool), GradeError> {
    let test = Test::new(&case.name, case.points).visibility(visibility(case.visibility));
    // Placed before every case: the student's program may have removed them.
    place(&cases.run.files)?;
    place(&case.files)?;
    let mut cmd = command(&cases.run, &case.args);
    if let Some(ms) = case.timeout_ms {
        cmd = cmd.timeout_ms(ms);
    }
    if let Some(bytes) = case.output_bytes {
        cmd = cmd.output_bytes(bytes);
    }
    if let Some(stdin) = &case.stdin {
        cmd = cmd.stdin(read(stdin)?);
    }
    let run: CommandResult = match cmd.run() {
        Ok(run) => run,
        Err(Error::SandboxLost(why)) => {
            return Ok((
                test.failed(Verdict::ResourceLimit, &format!("not run: {why}")),
                true,
            ));
        }
        Err(other) => return Err(other.into()),
    };
    let lost = run.sandbox_lost;
    if !run.succeeded() {
        let why = match (&run.signal, run.exit_code) {
            (Some(signal), _) => format!("killed by {signal}"),
            (None, Some(code)) => format!("exit code {code}"),
            (None, None) => "did not finish".into(),
        };
        return Ok((test.failed_with(&run, &why), lost));
    }
    let expected = String::from_utf8_lossy(&read(&case.expected)?).into_owned();
    let got = run.stdout_text();
    if matches(case, &expected, &got) {
        return Ok((test.passed(""), lost));
    }
    // The SDK's one rule: only a visible case's feedback names its
    // expected output, the course's secret otherwise.
    Ok((test.wrong_output(&expected, &got), lost))
}

impl Grader for IoCases {
    fn describe(settings: Vec<(String, String)>) -> GraderInfo {
        let image = agh_grader::setting(&settings, "image").unwrap_or("agh/python-c:1");
        let mut info = agh_grader::info("io-cases", env!("CARGO_PKG_VERSION"), image);
        if let Some(ms) = number(&settings, "wall_time_ms") {
            info.limits.wall_time_ms = ms;
        }
        if let Some(mb) = number(&settings, "memory_mb") {
            info.limits.memory_bytes = mb.saturating_mul(1024 * 1024);
            // The writable places are held in memory: what the sandbox
            // itself leaves of it (the host refuses less than 64 MiB more
            // than a full /work), and some room at the least.
            const SANDBOX_OWN: u64 = 64 * 1024 * 1024;
            let room = info.limits.memory_bytes.saturating_sub(SANDBOX_OWN);
            info.limits.tmpfs_bytes = info.limits.tmpfs_bytes.min(room.max(16 * 1024 * 1024));
        }
        if let Some(n) = number(&settings, "processes") {
            info.limits.processes = u32::try_from(n).unwrap_or(u32::MAX);
        }
        let source = agh_grader::setting(&settings, "cases").unwrap_or("course:cases");
        // Read by the grader only; declared with a grader-only target.
        info.assets
            .push(agh_grader::asset(ASSET, source, "/grader/cases"));
        info
    }

    fn grade(_context: GradeContext) -> Result<Report, GradeError> {
        let files = agh_grader::asset_files(ASSET)?;
        let text = agh_grader::asset_file(ASSET, "cases.toml").map_err(|e| {
            GradeError::Grader(format!(
                "the course files hold no cases.toml ({}); see the no-code grader's format in the README",
                agh_grader::describe_error(e)
            ))
        })?;
        let cases = cases::parse(&String::from_utf8_lossy(&text), &files)?;
        if let Some((verdict, why)) = build(&cases)? {
            let tests = cases
                .cases
                .iter()
                .map(|c| {
                    Test::new(&c.name, c.points)
                        .visibility(visibility(c.visibility))
                        .failed(verdict, &why)
                })
                .collect();
            return Ok(Report {
                tests,
                output: "The build failed.".into(),
            });
        }
        let mut tests = Vec::with_capacity(cases.cases.len());
        let mut down: Option<String> = None;
        for case in &cases.cases {
            if let Some(why) = &down {
                let test =
                    Test::new(&case.name, case.points).visibility(visibility(case.visibility));
                tests.push(test.not_run(why));
                continue;
            }
            let (result, lost) = run_case(&cases, case)?;
            tests.push(result);
            if lost {
                down = agh_grader::reset_after_loss(&[])?;
                if down.is_none() {
                    build(&cases)?;
                }
            }
        }
        Ok(Report {
            tests,
            output: String::new(),
        })
    }
}

agh_grader::export_grader!(IoCases);
