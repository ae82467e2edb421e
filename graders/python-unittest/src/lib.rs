//! Grades a Python course with hidden `unittest` files.
//!
//! The course's tests (`test_*.py`) are an asset placed read-only under
//! `/assets/tests`. Each test method is one result, run in its own command
//! so one crash or endless loop costs only that test. A test passes only
//! when the runner prints a line with a random nonce the grader fed it on
//! stdin before any student code was imported: a submission that prints a
//! forged result, a score or fake JSON, or exits early with status 0, gains
//! nothing.
//!
//! A test method may carry its weight as a comment: `def test_x(self):  # points: 2`.

use agh_grader::{
    describe_error, Cmd, CommandResult, Error, GradeContext, Grader, GraderInfo, Report, Test, TestResult, Verdict,
};

/// The runner script, placed read-only beside the tests.
const RUNNER: &str = include_str!("agh_runner.py");
const RUNNER_PATH: &str = "/assets/agh_runner.py";
/// Feedback kept from a failing test's stderr.
const FEEDBACK_BYTES: usize = 2000;

struct PythonUnittest;

/// A test method found in a test file.
struct TestCase {
    id: String,
    points: f64,
}

/// Finds `class X(...TestCase...)` and its `def test_*` methods.
fn discover(module: &str, source: &str) -> Vec<TestCase> {
    let mut class = None;
    let mut cases = Vec::new();
    for line in source.lines() {
        if let Some(rest) = line.strip_prefix("class ") {
            class = rest.contains("TestCase").then(|| rest.split(['(', ':']).next().unwrap_or("").trim().to_string());
        } else if let (Some(class), Some(rest)) = (&class, line.trim_start().strip_prefix("def test")) {
            let name = format!("test{}", rest.split('(').next().unwrap_or(""));
            let points = line
                .split("# points:")
                .nth(1)
                .and_then(|p| p.trim().parse::<f64>().ok())
                .unwrap_or(1.0);
            cases.push(TestCase { id: format!("{module}.{class}.{name}"), points });
        }
    }
    cases
}

fn tail(text: &str) -> String {
    let start = text.len().saturating_sub(FEEDBACK_BYTES);
    let start = (start..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
    text[start..].trim().to_string()
}

fn nonce() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn judge(case: &TestCase, run: &CommandResult, nonce: &str) -> TestResult {
    let test = Test::new(&case.id, case.points);
    let stdout = run.stdout_text();
    let verdict_line = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    if run.succeeded() && verdict_line == format!("{nonce} PASS") {
        test.passed("")
    } else {
        test.failed_with(run, &tail(&run.stderr_text()))
    }
}

impl Grader for PythonUnittest {
    fn describe(_settings: Vec<(String, String)>) -> GraderInfo {
        let mut info = agh_grader::info("python-unittest", "0.1.0", "agh/python-c:1");
        info.limits.wall_time_ms = 3_000;
        info.limits.memory_bytes = 256 * 1024 * 1024;
        info.assets.push(agh_grader::asset("tests", "course:tests", "/assets/tests"));
        info
    }

    fn grade(_context: GradeContext) -> Result<Report, String> {
        let mut cases = Vec::new();
        for file in agh_grader::asset_files("tests").map_err(describe_error)? {
            if let Some(module) = file.strip_prefix("test_").and_then(|m| m.strip_suffix(".py")) {
                let source = agh_grader::asset_file("tests", &file).map_err(describe_error)?;
                cases.extend(discover(&format!("test_{module}"), &String::from_utf8_lossy(&source)));
            }
        }
        if cases.is_empty() {
            return Err("the tests asset holds no test_*.py with TestCase methods".into());
        }
        agh_grader::place_asset("tests").map_err(describe_error)?;
        agh_grader::write_file(RUNNER_PATH, RUNNER.as_bytes(), true).map_err(describe_error)?;

        // A syntax error is a compile error for every test, not a crash each.
        let sources: Vec<String> = agh_grader::submission_files()
            .map_err(describe_error)?
            .into_iter()
            .filter(|f| f.ends_with(".py"))
            .map(|f| format!("/work/{f}"))
            .collect();
        if !sources.is_empty() {
            let compile = Cmd::new(["python3", "-m", "py_compile"].into_iter().map(String::from).chain(sources))
                .run()
                .map_err(describe_error)?;
            if !compile.succeeded() {
                let why = tail(&compile.stderr_text());
                let tests = cases.iter().map(|c| Test::new(&c.id, c.points).failed(Verdict::CompileError, &why)).collect();
                return Ok(Report { tests, output: "The submission does not compile.".into() });
            }
        }

        let nonce = nonce()?;
        let mut tests = Vec::new();
        for case in &cases {
            let run = Cmd::new(["python3", "-I", RUNNER_PATH, &case.id]).stdin(format!("{nonce}\n")).run();
            tests.push(match run {
                Ok(run) => judge(case, &run, &nonce),
                Err(Error::SandboxLost(why)) => {
                    Test::new(&case.id, case.points).failed(Verdict::ResourceLimit, &format!("not run: {why}"))
                }
                Err(other) => return Err(describe_error(other)),
            });
        }
        Ok(Report { tests, output: String::new() })
    }
}

agh_grader::export_grader!(PythonUnittest);
