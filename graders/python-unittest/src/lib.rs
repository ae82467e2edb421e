//! Grades a Python course with hidden `unittest` files, keeping the
//! student's code out of the process that decides the verdict.
//!
//! The course's tests (`test_*.py`) are an asset placed under
//! `/grader/tests`, which the student cannot read. Each test method is one
//! result. The tests run in one conversation between two processes that
//! start once for the batch:
//!
//! - the judge (`harness/judge.py`) runs as the grader user and runs each
//!   test with `unittest`, importing the tests afresh each time;
//! - the student's server (`harness/student.py`) runs as the student user
//!   and forks a fresh process for each test, which imports the student's
//!   modules; the judge's `import solution` gives a stand-in whose every
//!   attribute, call and item is a request to that process, answered with
//!   plain data only. The server stops a test's process at the test's
//!   deadline and kills whatever it left before the next test, so a crash
//!   or an endless loop costs only that test.
//!
//! When the conversation ends early (the sandbox lost, the server killed
//! by the student's code, the batch past the operator's time ceiling), the
//! test that was running is charged if it was the cause and the rest run
//! in a new conversation.
//!
//! Assertions, comparisons and the verdict happen in the judge, which the
//! student's code cannot reach: no nonce to steal, no frames, objects or
//! `unittest` to patch, no output stream to replace, and no test module to
//! shadow (the judge never searches `/work`). The verdict is one line on
//! the judge's own stderr. Feedback carries the assertion's message and the
//! student's own stderr, never a traceback of the hidden tests.
//!
//! A test method may carry its weight as a comment: `def test_x(self):  # points: 2`.

use std::collections::BTreeSet;

use agh_grader::{
    Cmd, CommandResult, Conversation, Error, GradeContext, GradeError, Grader, GraderInfo, Report,
    Test, TestResult, Verdict, Visibility,
};
use serde::Deserialize;

/// Places a harness file at its path under `/assets/agh-harness`.
macro_rules! harness {
    ($($file:literal),* $(,)?) => {
        [$((
            concat!("/assets/agh-harness/", $file),
            include_str!(concat!("../harness/", $file)),
        )),*]
    };
}

/// The harness, placed read-only (root-owned) under `/assets`: the judge,
/// the student's server, their wire, and the stand-ins for the packages
/// Gradescope's unittest suites import.
const HARNESS: [(&str, &str); 8] = harness!(
    "wire.py",
    "judge.py",
    "student.py",
    "timeout_decorator.py",
    "gradescope_utils/__init__.py",
    "gradescope_utils/autograder_utils/__init__.py",
    "gradescope_utils/autograder_utils/decorators.py",
    "gradescope_utils/autograder_utils/files.py",
);
const JUDGE: &str = "/assets/agh-harness/judge.py";
const STUDENT: &str = "/assets/agh-harness/student.py";
/// Where the hidden tests go: the grader user's place, unreadable to the student.
const TESTS_TARGET: &str = "/grader/tests";
/// Feedback kept from the student's stderr.
const FEEDBACK_BYTES: usize = 2000;
/// The prefix of the judge's verdict line.
const VERDICT_PREFIX: &str = "agh-judge ";
/// What starts the line before each test's output on the student's
/// server's stderr.
const TEST_HEADER: &str = "agh: --- ";
/// A test's deadline, enforced by the student's server.
const TEST_TIMEOUT_MS: u64 = 3_000;
/// The time a batch is given on top of its tests' deadlines.
const BATCH_SLACK_MS: u64 = 5_000;

struct PythonUnittest;

/// A test method found in a test file.
#[derive(Debug)]
struct TestCase {
    id: String,
    points: f64,
    visibility: Visibility,
    /// A deadline of its own (`@timeout(seconds)`), in milliseconds.
    timeout_ms: Option<u64>,
}

/// The marks of gradescope_utils' decorators (and `timeout_decorator`'s)
/// above a `def test_*`, as far as a listing without running any code can
/// read them: one-line decorators with literal arguments. The judge reports
/// the marks it finds at run time, which win.
#[derive(Debug, Default)]
struct Marks {
    points: Option<f64>,
    visibility: Option<Visibility>,
    timeout_ms: Option<u64>,
}

impl Marks {
    fn read(&mut self, decorator: &str) {
        let (name, rest) = decorator.split_once('(').unwrap_or((decorator, ""));
        let name = name.trim().rsplit('.').next().unwrap_or("");
        let argument = rest
            .rsplit_once(')')
            .map_or(rest, |(inside, _)| inside)
            .split(',')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches(['"', '\'']);
        match name {
            "weight" | "partial_credit" => self.points = argument.parse().ok(),
            "visibility" => self.visibility = visibility_named(argument),
            "timeout" => {
                self.timeout_ms = argument
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .map(|s| (s * 1000.0).min(600_000.0) as u64);
            }
            _ => {}
        }
    }
}

impl TestCase {
    fn test(&self) -> Test {
        Test::new(&self.id, self.points).visibility(self.visibility)
    }
}

/// Gradescope's names for who sees a test.
fn visibility_named(name: &str) -> Option<Visibility> {
    match name {
        "visible" => Some(Visibility::Visible),
        "hidden" => Some(Visibility::Hidden),
        "after_due_date" => Some(Visibility::AfterDueDate),
        "after_published" => Some(Visibility::AfterPublished),
        _ => None,
    }
}

/// Finds `class X(...TestCase...)` and its `def test_*` methods, with the
/// points of a `# points: N` comment or a `@weight(N)` decorator; a test
/// with neither is worth `default_points`.
fn discover(module: &str, source: &str, default_points: f64) -> Vec<TestCase> {
    let mut class = None;
    let mut cases = Vec::new();
    let mut marks = Marks::default();
    for line in source.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = line.strip_prefix("class ") {
            marks = Marks::default();
            class = rest.contains("TestCase").then(|| {
                rest.split(['(', ':'])
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            });
        } else if let Some(decorator) = trimmed.strip_prefix('@') {
            marks.read(decorator);
        } else if let (Some(class), Some(rest)) = (&class, trimmed.strip_prefix("def test")) {
            let name = format!("test{}", rest.split('(').next().unwrap_or(""));
            let commented = line
                .split("# points:")
                .nth(1)
                .and_then(|p| p.trim().parse::<f64>().ok());
            let marks = std::mem::take(&mut marks);
            cases.push(TestCase {
                id: format!("{module}.{class}.{name}"),
                points: commented.or(marks.points).unwrap_or(default_points),
                visibility: marks.visibility.unwrap_or(Visibility::Visible),
                timeout_ms: marks.timeout_ms,
            });
        } else if trimmed.starts_with("def ") {
            marks = Marks::default();
        }
    }
    cases
}

/// Top-level module names a test file imports (`import a, b.c`, `from a import x`).
fn imported_modules(source: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in source.lines().map(str::trim_start) {
        let listed = if let Some(rest) = line.strip_prefix("import ") {
            rest.split('#').next().unwrap_or("")
        } else if let Some(rest) = line.strip_prefix("from ") {
            rest.split_whitespace().next().unwrap_or("")
        } else {
            continue;
        };
        for item in listed.split(',') {
            let module = item.split_whitespace().next().unwrap_or("");
            let top = module.split('.').next().unwrap_or("");
            if !top.is_empty() && top.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                names.insert(top.to_string());
            }
        }
    }
    names
}

/// The top-level module a submission file provides: `x.py` gives `x`,
/// `pkg/...py` gives `pkg`.
fn provided_module(path: &str) -> Option<&str> {
    let top = path.split('/').next()?;
    let name = if path.contains('/') {
        top
    } else {
        top.strip_suffix(".py")?
    };
    (path.ends_with(".py") && !name.is_empty()).then_some(name)
}

fn tail(text: &str) -> String {
    let start = text.len().saturating_sub(FEEDBACK_BYTES);
    let start = (start..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].trim().to_string()
}

/// The judge's verdict line.
#[derive(Debug, Default, Deserialize)]
struct JudgeVerdict {
    test: String,
    outcome: String,
    #[serde(default)]
    message: String,
    /// The failure came from the student's code (an exception it raised,
    /// or its process ending or breaking the conversation).
    #[serde(default)]
    student_raised: bool,
    /// The judge itself failed outside the test: the course's tests are broken.
    #[serde(default)]
    judge_failed: bool,
    /// The limit that stopped the student's process: `time` or `output`.
    #[serde(default)]
    limit: Option<String>,
    /// The end of what the student's process printed during the test.
    #[serde(default)]
    output: String,
    /// The marks gradescope_utils' decorators left, read by the judge.
    #[serde(default)]
    weight: Option<f64>,
    #[serde(default)]
    visibility: Option<String>,
    /// The points a `@partial_credit` test gave itself.
    #[serde(default)]
    score: Option<f64>,
    /// The message is staff's own (`@hide_errors`), not the test's.
    #[serde(default)]
    staff_message: bool,
}

/// The verdicts the judge gave, in order.
fn judge_verdicts(judge: &CommandResult) -> Vec<JudgeVerdict> {
    judge
        .stderr_text()
        .lines()
        .filter_map(|l| l.strip_prefix(VERDICT_PREFIX))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A limit either side ran into, which explains a failure better than the test's own message.
fn limit_of(run: &CommandResult) -> Option<Verdict> {
    run.verdict.filter(|v| {
        matches!(
            v,
            Verdict::TimeLimit
                | Verdict::MemoryLimit
                | Verdict::OutputLimit
                | Verdict::ResourceLimit
        )
    })
}

fn feedback(message: &str, output: &str) -> String {
    let output = tail(output);
    match (message.is_empty(), output.is_empty()) {
        (_, true) => message.to_string(),
        (true, false) => format!("Your program's output:\n{output}"),
        (false, false) => format!("{message}\n\nYour program's output:\n{output}"),
    }
}

/// What a failed test says to the student, by the SDKs' one rule on
/// feedback: an expected value reaches a visible test's feedback only. A
/// test's own failure message (`3 != 42` from `assertEqual`, a skip's
/// reason) often holds its expected values, so a test of any other
/// visibility says only that it failed; what the student's code raised,
/// the limit it met and staff's own `@hide_errors` words are shown as they
/// are.
fn message_for(v: &JudgeVerdict, visibility: Visibility) -> &str {
    let tests_own = !(v.student_raised || v.limit.is_some() || v.staff_message);
    if tests_own && !v.message.is_empty() && !matches!(visibility, Visibility::Visible) {
        TESTS_OWN_HIDDEN
    } else {
        &v.message
    }
}

/// In place of a failure message that is the test's own, for a test that
/// is not visible.
const TESTS_OWN_HIDDEN: &str =
    "the test failed (its own message is shown only for tests visible at once)";

/// A test's result from the judge's verdict: Gradescope's scoring, where
/// a test that set its own score (`@partial_credit`) keeps it, passed or
/// not, and passes only with all its points.
fn judged(case: &TestCase, v: &JudgeVerdict) -> Result<TestResult, String> {
    if v.judge_failed {
        return Err(format!("the judge failed on {}: {}", case.id, v.message));
    }
    let points = v
        .weight
        .filter(|w| w.is_finite() && *w >= 0.0)
        .unwrap_or(case.points);
    let visibility = v
        .visibility
        .as_deref()
        .and_then(visibility_named)
        .unwrap_or(case.visibility);
    let test = Test::new(&case.id, points).visibility(visibility);
    let passed = v.outcome == "passed";
    // What a failure is: the limit that stopped the student's process, the
    // student's own exception, or a wrong answer (a passed test that set
    // itself less than its points too).
    let failure = match v.limit.as_deref() {
        Some("time") if !passed => Verdict::TimeLimit,
        Some("output") if !passed => Verdict::OutputLimit,
        _ if v.student_raised && !passed => Verdict::RuntimeError,
        _ => Verdict::Wrong,
    };
    let output = feedback(message_for(v, visibility), &v.output);
    Ok(match v.score.filter(|s| s.is_finite()) {
        Some(score) => {
            let score = score.clamp(0.0, points);
            let full = passed && score >= points;
            test.scored(
                score,
                if full { Verdict::Accepted } else { failure },
                &output,
            )
        }
        None if passed => test.passed(""),
        None => test.failed(failure, &output),
    })
}

/// What the last test's process printed, from the student's server's
/// stderr, where each test's output follows a line naming it.
fn last_test_output(stderr: &str) -> &str {
    match stderr.rfind(TEST_HEADER) {
        Some(at) => stderr[at..].split_once('\n').map_or("", |(_, rest)| rest),
        None => stderr,
    }
}

/// The test that was running when a conversation ended without its
/// verdict, charged with what ended it; `Err` when nothing the student did
/// explains the judge's silence.
fn cut_short(case: &TestCase, conversation: &Conversation) -> Result<TestResult, String> {
    let (judge, student) = (&conversation.judge, &conversation.student);
    let test = case.test();
    let stderr = student.stderr_text();
    let output = last_test_output(&stderr);
    match limit_of(student).or_else(|| limit_of(judge)) {
        Some(verdict) => Ok(test.failed(verdict, &feedback("", output))),
        None if student.sandbox_lost || judge.sandbox_lost => Ok(test.failed(
            Verdict::ResourceLimit,
            &feedback("the sandbox was lost", output),
        )),
        None => Err(format!(
            "the judge of {} gave no verdict (exit {:?}): {}",
            case.id,
            judge.exit_code,
            tail(&judge.stderr_text())
        )),
    }
}

/// Places the harness, read-only, where the student cannot change it.
fn write_harness() -> Result<(), Error> {
    for (path, source) in HARNESS {
        agh_grader::write_file(path, source.as_bytes(), true)?;
    }
    Ok(())
}

impl Grader for PythonUnittest {
    fn describe(_settings: Vec<(String, String)>) -> GraderInfo {
        let mut info = agh_grader::info("python-unittest", "0.2.0", "agh/python-c:1");
        info.limits.wall_time_ms = 3_000;
        info.limits.memory_bytes = 256 * 1024 * 1024;
        // tmpfs is held in memory: room for a full /work and the programs.
        info.limits.tmpfs_bytes = 128 * 1024 * 1024;
        info.assets
            .push(agh_grader::asset("tests", "course:tests", TESTS_TARGET));
        info
    }

    fn grade(_context: GradeContext) -> Result<Report, GradeError> {
        let mut cases = Vec::new();
        let mut imported = BTreeSet::new();
        for file in agh_grader::asset_files("tests")? {
            if let Some(module) = file
                .strip_prefix("test_")
                .and_then(|m| m.strip_suffix(".py"))
            {
                let source = agh_grader::asset_file("tests", &file)?;
                let source = String::from_utf8_lossy(&source);
                // A Gradescope suite's test without a weight is worth nothing.
                let imported_here = imported_modules(&source);
                let default_points = if imported_here.contains("gradescope_utils") {
                    0.0
                } else {
                    1.0
                };
                cases.extend(discover(&format!("test_{module}"), &source, default_points));
                imported.extend(imported_here);
            }
        }
        if cases.is_empty() {
            return Err("the tests asset holds no test_*.py with TestCase methods".into());
        }
        agh_grader::place_asset("tests")?;
        write_harness()?;
        // Only modules the tests import and the submission provides are
        // served from the student's process.
        let files = agh_grader::submission_files()?;
        let provided: BTreeSet<&str> = files.iter().filter_map(|f| provided_module(f)).collect();
        let modules: Vec<String> = imported
            .into_iter()
            .filter(|m| provided.contains(m.as_str()))
            .collect();

        // A syntax error is a compile error for every test, not a crash each.
        let check = Cmd::new(["python3", "-I", "-B", STUDENT, "--check"]).run()?;
        if !check.succeeded() {
            let verdict = limit_of(&check).unwrap_or(Verdict::CompileError);
            let why = tail(&check.stderr_text());
            let tests = cases
                .iter()
                .map(|c| c.test().failed(verdict, &why))
                .collect();
            return Ok(Report {
                tests,
                output: "The submission does not compile.".into(),
            });
        }

        let mut tests = Vec::new();
        let mut down: Option<String> = None;
        while tests.len() < cases.len() {
            let batch = &cases[tests.len()..];
            if let Some(why) = &down {
                tests.extend(
                    batch
                        .iter()
                        .map(|c| Test::new(&c.id, c.points).not_run(why)),
                );
                break;
            }
            let timeout = BATCH_SLACK_MS
                + batch
                    .iter()
                    .map(|c| c.timeout_ms.unwrap_or(TEST_TIMEOUT_MS) + 2_000)
                    .sum::<u64>();
            let judge_cmd = Cmd::new(["python3", "-I", "-B", JUDGE, &TEST_TIMEOUT_MS.to_string()])
                .args(batch.iter().map(|c| match c.timeout_ms {
                    Some(ms) => format!("{}={ms}", c.id),
                    None => c.id.clone(),
                }))
                .args(["--"])
                .args(modules.iter().map(String::as_str))
                .as_grader()
                .timeout_ms(timeout);
            let student_cmd = Cmd::new(["python3", "-I", "-B", STUDENT]).timeout_ms(timeout);
            let lost = match judge_cmd.converse(&student_cmd) {
                Ok(conversation) => {
                    let lost = conversation.judge.sandbox_lost || conversation.student.sandbox_lost;
                    let verdicts = judge_verdicts(&conversation.judge);
                    let mut given = verdicts.iter();
                    for (i, case) in batch.iter().enumerate() {
                        match given.next() {
                            Some(v) if v.test == case.id => tests.push(judged(case, v)?),
                            _ => {
                                // Running when the conversation ended: charged
                                // if it ended the conversation or ran alone in
                                // it; otherwise it runs again in the next one.
                                if lost || i == 0 {
                                    tests.push(cut_short(case, &conversation)?);
                                }
                                break;
                            }
                        }
                    }
                    lost
                }
                Err(Error::SandboxLost(why)) => {
                    let case = &batch[0];
                    tests.push(
                        case.test()
                            .failed(Verdict::ResourceLimit, &format!("not run: {why}")),
                    );
                    true
                }
                Err(other) => return Err(other.into()),
            };
            // A test that brought the sandbox down costs only itself: the
            // next ones run in a fresh sandbox.
            if lost {
                down = agh_grader::reset_after_loss(&["tests"])?;
                if down.is_none() {
                    write_harness()?;
                }
            }
        }
        Ok(Report {
            tests,
            output: String::new(),
        })
    }
}

agh_grader::export_grader!(PythonUnittest);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_read_from_test_sources() {
        let source = "import unittest\nimport solution, helpers.sub as h\nfrom geometry.shapes import Circle\n  import lazy  # later\n";
        let got: Vec<String> = imported_modules(source).into_iter().collect();
        assert_eq!(got, ["geometry", "helpers", "lazy", "solution", "unittest"]);
    }

    #[test]
    fn gradescope_decorators_give_points_visibility_and_deadlines() {
        let source = "from gradescope_utils.autograder_utils.decorators import weight\n\
            class TestA(unittest.TestCase):\n\
            \x20   @weight(2.5)\n\
            \x20   @visibility('after_due_date')\n\
            \x20   @timeout_decorator.timeout(1.5)\n\
            \x20   def test_one(self):\n\
            \x20       pass\n\
            \x20   def helper(self):\n\
            \x20       pass\n\
            \x20   @partial_credit(4)\n\
            \x20   def test_two(self, set_score=None):\n\
            \x20       pass\n\
            \x20   def test_three(self):  # points: 3\n\
            \x20       pass\n\
            \x20   @number(\"1.4\")\n\
            \x20   def test_four(self):\n\
            \x20       pass\n";
        let cases = discover("test_a", source, 0.0);
        let got: Vec<_> = cases
            .iter()
            .map(|c| (c.id.as_str(), c.points, c.visibility, c.timeout_ms))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "test_a.TestA.test_one",
                    2.5,
                    Visibility::AfterDueDate,
                    Some(1500)
                ),
                ("test_a.TestA.test_two", 4.0, Visibility::Visible, None),
                ("test_a.TestA.test_three", 3.0, Visibility::Visible, None),
                ("test_a.TestA.test_four", 0.0, Visibility::Visible, None),
            ]
        );
    }

    /// A test's own failure message (its expected values) reaches the
    /// student only for a visible test; the student's own exception, a
    /// limit and staff's `@hide_errors` words whatever the visibility.
    #[test]
    fn a_tests_own_message_is_shown_to_visible_tests_only() {
        let case = |visibility| TestCase {
            id: "tests.T.test_mul".into(),
            points: 1.0,
            visibility,
            timeout_ms: None,
        };
        let verdict = |extra: &str| -> JudgeVerdict {
            let line = format!(
                r#"{{"test": "tests.T.test_mul", "outcome": "failed", "message": "6 != 42"{extra}}}"#
            );
            serde_json::from_str(&line).expect("a verdict")
        };
        let output = |visibility, extra: &str| {
            judged(&case(visibility), &verdict(extra))
                .expect("judged")
                .output
        };
        assert_eq!(output(Visibility::Visible, ""), "6 != 42");
        for visibility in [
            Visibility::AfterDueDate,
            Visibility::AfterPublished,
            Visibility::Hidden,
        ] {
            assert_eq!(output(visibility, ""), TESTS_OWN_HIDDEN);
            assert_eq!(output(visibility, r#", "student_raised": true"#), "6 != 42");
            assert_eq!(output(visibility, r#", "staff_message": true"#), "6 != 42");
            assert_eq!(output(visibility, r#", "limit": "time""#), "6 != 42");
        }
        // The judge's run-time marks decide the visibility over the listing's.
        assert_eq!(
            output(Visibility::Visible, r#", "visibility": "hidden""#),
            TESTS_OWN_HIDDEN
        );
    }

    #[test]
    fn a_cut_short_test_shows_only_its_own_output() {
        let stderr = "agh: --- t.A.test_a ---\nfrom a\nagh: --- t.A.test_b ---\nfrom b\n";
        assert_eq!(last_test_output(stderr), "from b\n");
        assert_eq!(last_test_output("no header"), "no header");
    }

    #[test]
    fn submission_files_provide_top_level_modules() {
        assert_eq!(provided_module("solution.py"), Some("solution"));
        assert_eq!(provided_module("pkg/__init__.py"), Some("pkg"));
        assert_eq!(provided_module("notes.txt"), None);
    }
}
