//! `agh grade` end to end: the example courses through the CLI under runsc,
//! every score checked against the course's expected file.

use std::collections::BTreeMap;

use agh::plugin;
use agh_tests::graders;
use serde::Deserialize;

use crate::support;

#[derive(Debug, Deserialize)]
struct Expected {
    /// Where the submissions are, relative to the course; `submissions`
    /// when not given (a course graded two ways shares one set).
    submissions: Option<String>,
    scores: BTreeMap<String, f64>,
    verdicts: BTreeMap<String, String>,
}

/// Grades the course in `examples/COURSE` and checks every score.
async fn grade_course(course: &str, plugin: &str) -> Vec<serde_json::Value> {
    let root = support::repo_root().join("examples").join(course);
    grade_folder(course, &root, &root.join("agh.toml"), plugin).await
}

/// `agh grade --json` of `submissions` with `plugin` under `config`.
fn agh_grade(
    plugin: &str,
    config: &std::path::Path,
    submissions: &std::path::Path,
    out: &std::path::Path,
    batch: &str,
) -> std::process::Output {
    std::process::Command::new(support::agh_binary())
        .args(["grade", "--plugin", plugin, "--json", "--batch-id", batch])
        .arg("--config")
        .arg(config)
        .arg("--submissions")
        .arg(submissions)
        .arg("--out")
        .arg(out)
        .output()
        .expect("running agh grade")
}

/// Every result is valid under `docs/result.schema.json`, the schema
/// readers of agh's results are given.
fn assert_results_follow_the_schema(results: &[serde_json::Value]) {
    let path = support::repo_root().join(agh::report::RESULT_SCHEMA_FILE);
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("the schema file"))
            .expect("the schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let mut forged = results.first().cloned().expect("a result");
    forged["score"] = "full marks".into();
    assert!(
        !validator.is_valid(&forged),
        "the schema takes a score that is text"
    );
    for result in results {
        let errors: Vec<String> = validator
            .iter_errors(result)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{} does not follow {}: {errors:?}",
            result["submission"],
            path.display()
        );
    }
}

/// Grades the submissions `root/expected.toml` names (`root/submissions`
/// by default) under `config` and checks every score and verdict against
/// it; returns the results.
pub(crate) async fn grade_folder(
    course: &str,
    root: &std::path::Path,
    config: &std::path::Path,
    plugin: &str,
) -> Vec<serde_json::Value> {
    let expected: Expected = toml::from_str(
        &std::fs::read_to_string(root.join("expected.toml")).expect("expected.toml"),
    )
    .expect("parse");
    let out = tempfile::tempdir().expect("tempdir");
    let batch = support::batch_id(course);
    let submissions = root.join(expected.submissions.as_deref().unwrap_or("submissions"));
    let output = {
        let _alone = support::courses_alone();
        agh_grade(plugin, config, &submissions, out.path(), &batch)
    };
    assert!(
        output.status.success(),
        "agh grade failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("results JSON");
    assert_eq!(
        results.len(),
        expected.scores.len(),
        "one result per submission"
    );
    assert_results_follow_the_schema(&results);
    let mut problems = Vec::new();
    for result in &results {
        let name = result["submission"].as_str().expect("name");
        let score = result["score"].as_f64().expect("score");
        let want = expected
            .scores
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in expected.toml"));
        if (score - want).abs() > 1e-9 || result["status"] != "graded" {
            problems.push(format!(
                "{name}: expected {want}, got {score} ({})",
                result["status"]
            ));
        }
        if let Some(verdict) = expected.verdicts.get(name) {
            let verdicts: Vec<&str> = result["tests"]
                .as_array()
                .expect("tests")
                .iter()
                .filter_map(|t| t["verdict"].as_str())
                .collect();
            if !verdicts.contains(&verdict.as_str()) {
                problems.push(format!(
                    "{name}: expected a {verdict} verdict, got {verdicts:?}"
                ));
            }
        }
        let provenance = &result["provenance"];
        assert_eq!(provenance["runtime"], "runsc", "{name}");
        assert_eq!(provenance["runtime_verified"], true, "{name}");
        assert_eq!(provenance["insecure"], false, "{name}");
        // The SDKs build against 0.2.0, served beside the current contract;
        // agh's own Gradescope grader speaks the current one.
        let contract = if plugin == "builtin:gradescope" {
            plugin::WIT_VERSION
        } else {
            "0.2.0"
        };
        assert_eq!(provenance["wit_version"], contract, "{name}");
        let written = out.path().join("results").join(format!("{name}.json"));
        let on_disk: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&written).expect("result file"))
                .expect("result file JSON");
        assert_eq!(
            &on_disk,
            result,
            "{} differs from what was printed",
            written.display()
        );
    }
    assert!(problems.is_empty(), "{course}:\n{}", problems.join("\n"));
    support::assert_no_leftovers(&support::docker().await, &batch).await;
    results
}

#[tokio::test]
async fn python_course_gets_its_expected_scores() {
    grade_course("python-course", graders::PYTHON_UNITTEST).await;
}

/// Each submission in tests/cases/python-forgery tries one way of forging a
/// verdict from inside its own process (the runner's nonce, stack frames,
/// the garbage collector, output writers, a patched `unittest`, an exit
/// hook, a shadowing test module, objects equal to anything, the judge's
/// streams, printing the hidden tests): each scores 0, the honest one 6.
#[tokio::test]
async fn python_grader_verdicts_cannot_be_forged_by_the_student() {
    let cases = support::repo_root().join("tests/cases/python-forgery");
    let course = support::repo_root().join("examples/python-course/agh.toml");
    let results = grade_folder("python-forgery", &cases, &course, graders::PYTHON_UNITTEST).await;
    // No feedback hands the hidden tests back.
    let hidden = std::fs::read_to_string(
        support::repo_root().join("examples/python-course/assets/tests/test_solution.py"),
    )
    .expect("hidden tests");
    let hidden_lines: Vec<&str> = hidden
        .lines()
        .map(str::trim)
        .filter(|l| l.len() > 20)
        .collect();
    for result in &results {
        for test in result["tests"].as_array().expect("tests") {
            let output = test["output"].as_str().unwrap_or_default();
            for line in &hidden_lines {
                assert!(
                    !output.contains(line),
                    "{}: feedback of {} carries hidden test source {line:?}:\n{output}",
                    result["submission"],
                    test["name"]
                );
            }
        }
    }
}

/// A Gradescope unittest suite marked with gradescope_utils' decorators
/// (tests/cases/python-gradescope-utils), graded natively by
/// `builtin:python-tests`, each test out of the student's reach: weights,
/// partial credit that keeps its points when the test fails, a visibility,
/// a hidden test's own failure message in place of its expected values, a
/// one-second `@timeout`, no points for an unweighted test; a submission
/// that patches `unittest` and the decorators in its own process gets 0.
#[tokio::test]
async fn builtin_python_tests_grades_a_gradescope_utils_suite_natively() {
    let cases = support::repo_root().join("tests/cases/python-gradescope-utils");
    let results = grade_folder(
        "python-gradescope-utils",
        &cases,
        &cases.join("agh.toml"),
        "builtin:python-tests",
    )
    .await;
    let partial = results
        .iter()
        .find(|r| r["submission"] == "02-partial")
        .expect("02-partial");
    let test = |name: &str| {
        partial["tests"]
            .as_array()
            .expect("tests")
            .iter()
            .find(|t| t["name"].as_str().is_some_and(|n| n.ends_with(name)))
            .unwrap_or_else(|| panic!("no test {name} in {partial}"))
            .clone()
    };
    let hidden = test("test_hidden_mul");
    assert_eq!(hidden["visibility"], "after-due-date", "{hidden}");
    assert_eq!(hidden["max_score"], 3.0, "{hidden}");
    let shown = hidden["output"].as_str().unwrap_or_default();
    assert!(
        shown.starts_with("The hidden product test failed.") && !shown.contains("42"),
        "{hidden}"
    );
    let squares = test("test_squares");
    assert_eq!(
        (squares["score"].as_f64(), squares["max_score"].as_f64()),
        (Some(2.0), Some(4.0)),
        "{squares}"
    );
    assert_eq!(test("test_fast")["verdict"], "time-limit");
    assert_eq!(test("test_unweighted")["max_score"], 0.0);
}

/// Output and exceptions that broke the Python grader before, each scored
/// as the student's (tests/cases/python-hostile-output): an exception
/// message with a lone surrogate (the judge's verdict line was undecodable,
/// "gave no verdict"), the student's own ModuleNotFoundError raised during
/// the tests' `from solution import ...` (reported as the judge's failure),
/// and stderr far past the feedback cap.
#[tokio::test]
async fn python_grader_scores_what_breaks_text_handling() {
    let cases = support::repo_root().join("tests/cases/python-hostile-output");
    let results = grade_folder(
        "python-hostile-output",
        &cases,
        &cases.join("agh.toml"),
        graders::PYTHON_UNITTEST,
    )
    .await;
    for result in &results {
        assert_eq!(result["status"], "graded", "{result}");
    }
}

/// Submissions that leave the sandbox in states a grader must survive:
/// hundreds of long file names (once past one command's argument limit),
/// folders nested past a path's usual length, `/work` made unreadable,
/// `/tmp` filled, a folder where a module should be. Each is graded, with
/// the student's verdicts, never a plugin error that would count against
/// the grader; the honest solution behind each hostile part still scores
/// what it earns.
#[tokio::test]
async fn python_grader_grades_whatever_state_the_student_leaves() {
    let root = tempfile::tempdir().expect("tempdir");
    let submissions = root.path().join("submissions");
    let honest = std::fs::read_to_string(
        support::repo_root().join("tests/cases/python-forgery/submissions/00-honest/solution.py"),
    )
    .expect("honest solution");
    let make = |name: &str, solution: &str| {
        let dir = submissions.join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("solution.py"), solution).expect("write");
        dir
    };
    make("00-honest", &honest);
    let many = make("01-many-long-names", &honest);
    for i in 0..700 {
        std::fs::write(many.join(format!("{i:03}{}.py", "x".repeat(200))), "").expect("write");
    }
    let deep = make("02-deep-folders", &honest);
    let mut folder = deep.clone();
    for i in 0..60 {
        folder = folder.join(format!("{i:02}{}", "d".repeat(48)));
    }
    std::fs::create_dir_all(&folder).expect("mkdir deep");
    std::fs::write(folder.join("deep.py"), "x = 1\n").expect("write deep");
    make(
        "03-locks-work",
        &format!("import os\nos.chmod('/work', 0)\n{honest}"),
    );
    make(
        "04-fills-tmp",
        &format!(
            "try:\n    with open('/tmp/fill', 'wb') as f:\n        while True:\n            f.write(b'x' * (1 << 20))\nexcept OSError:\n    pass\n{honest}"
        ),
    );
    let folder_module = submissions.join("05-module-is-a-folder/solution.py");
    std::fs::create_dir_all(&folder_module).expect("mkdir");
    std::fs::write(folder_module.join("inner.py"), &honest).expect("write");
    let empty = submissions.join("06-no-module");
    std::fs::create_dir_all(&empty).expect("mkdir");
    std::fs::write(empty.join("notes.txt"), "I ran out of time").expect("write");
    // The tests share a server of the student's that forks each one's
    // process: a test's code that kills the server costs only that test,
    // and what a test leaves running is gone before the next one starts.
    make(
        "07-kills-its-server",
        &honest.replace(
            "def mean(xs):\n",
            "def mean(xs):\n    import os, signal\n    os.kill(os.getppid(), signal.SIGKILL)\n    raise RuntimeError('no server now')\n",
        ),
    );
    make(
        "08-leaves-spinners",
        &format!(
            "import os\nif os.fork() == 0:\n    os.setsid()\n    while True:\n        pass\n{honest}"
        ),
    );
    std::fs::write(
        root.path().join("expected.toml"),
        EXPECTED_UNDER_STUDENT_STATE,
    )
    .expect("expected.toml");
    let course = support::repo_root().join("examples/python-course/agh.toml");
    grade_folder(
        "python-state",
        root.path(),
        &course,
        graders::PYTHON_UNITTEST,
    )
    .await;
}

/// What each state of `python_grader_grades_whatever_state_the_student_leaves`
/// earns: locking `/work` on import passes the first test (the import
/// happens inside it) and fails the rest, its own doing; a full `/tmp`
/// stops nothing the grader needs; killing the tests' server fails only
/// the test that did it.
const EXPECTED_UNDER_STUDENT_STATE: &str = r#"
[scores]
"00-honest" = 6.0
"01-many-long-names" = 6.0
"02-deep-folders" = 6.0
"03-locks-work" = 1.0
"04-fills-tmp" = 6.0
"05-module-is-a-folder" = 0.0
"06-no-module" = 0.0
"07-kills-its-server" = 5.0
"08-leaves-spinners" = 6.0

[verdicts]
"03-locks-work" = "runtime-error"
"06-no-module" = "runtime-error"
"07-kills-its-server" = "runtime-error"
"#;

#[tokio::test]
async fn c_course_gets_its_expected_scores() {
    grade_course("c-course", graders::C_IO).await;
}

/// The C course graded by its Python and JavaScript graders, each built
/// from source with `agh build`, to the same scores as the Rust one.
#[tokio::test]
async fn c_course_gets_its_expected_scores_from_python_and_javascript_graders() {
    let out = tempfile::tempdir().expect("tempdir");
    let graders = support::repo_root().join("graders");
    for (dir, wasm) in [
        ("c-io-python", "c-io-python.wasm"),
        ("c-io-js", "c-io-js.wasm"),
    ] {
        let built = crate::project::build_grader(&graders.join(dir), &out.path().join(wasm));
        grade_course("c-course", built.to_str().expect("utf-8 path")).await;
    }
}

/// The Python course graded by its JavaScript grader, built from source.
#[tokio::test]
async fn python_course_gets_its_expected_scores_from_a_javascript_grader() {
    let out = tempfile::tempdir().expect("tempdir");
    let graders = support::repo_root().join("graders");
    let built = crate::project::build_grader(
        &graders.join("python-unittest-js"),
        &out.path().join("python-unittest-js.wasm"),
    );
    grade_course("python-course", built.to_str().expect("utf-8 path")).await;
}

/// The course graded by agh's no-code grader alone: a `cases.toml` beside
/// the `.in`/`.out` files, no grader code.
#[tokio::test]
async fn io_course_graded_without_code_gets_its_expected_scores() {
    let results = grade_course("io-course", "builtin:io-cases").await;
    // A visible case says where the output went wrong and what was
    // expected; the hidden case says where, never what was expected.
    let test_of = |submission: &str, name: &str| {
        results
            .iter()
            .find(|r| r["submission"] == submission)
            .and_then(|r| r["tests"].as_array())
            .and_then(|tests| tests.iter().find(|t| t["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{submission} has no test {name}"))
    };
    assert_eq!(
        test_of("02-partial", "03")["output"],
        "wrong output: line 1: expected \"-11 -1\", got \"-11 0\""
    );
    let hidden = test_of("10-wrong-when-empty", "empty-list");
    assert_eq!(hidden["visibility"], "hidden");
    assert_eq!(
        hidden["output"],
        "wrong output: line 1: got \"nothing\", which is not what was expected"
    );
}

/// A mistake in `cases.toml` is the grader's failure, named by line: no
/// student is charged for it.
#[test]
fn a_broken_cases_toml_is_a_plugin_error_naming_the_line() {
    let root = tempfile::tempdir().expect("tempdir");
    let cases = root.path().join("assets/cases");
    std::fs::create_dir_all(&cases).expect("mkdir");
    std::fs::write(
        cases.join("cases.toml"),
        "[run]\nargv = [\"/bin/cat\"]\n\n[[case]]\nname = \"echo\"\nstdin = \"x\"\n",
    )
    .expect("cases.toml");
    let config = root.path().join("agh.toml");
    std::fs::write(
        &config,
        "images = [\"agh/*\"]\n\n[sources.course]\nlocal = \"assets\"\n\n[settings]\nimage = \"agh/busybox:1\"\n",
    )
    .expect("agh.toml");
    let submission = root.path().join("alice");
    std::fs::create_dir_all(&submission).expect("mkdir");
    std::fs::write(submission.join("answer.txt"), "x").expect("write");
    let output = std::process::Command::new(support::agh_binary())
        .args([
            "grade",
            "--plugin",
            "builtin:io-cases",
            "--json",
            "--config",
        ])
        .arg(&config)
        .arg("--submission")
        .arg(&submission)
        .output()
        .expect("agh grade");
    let results: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("results JSON");
    assert_eq!(results[0]["status"], "plugin-error");
    let error = results[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(
            "cases.toml line 5: case \"echo\": give exactly one of expected and expected_file"
        ),
        "{error}"
    );
}

/// The no-code grader places `[run] files` before each case (they were
/// parsed, checked and never placed), and a program that brings the
/// sandbox down on every one of more cases than the host resets for is
/// scored: the cases past the last reset fail as not run, with the
/// sandbox's verdict, never a plugin error.
#[tokio::test]
async fn no_code_grader_places_run_files_and_outlasts_the_reset_cap() {
    let root = tempfile::tempdir().expect("tempdir");
    // The no-code grader reads the source "course", folder `cases`.
    let course = root.path().join("course/cases");
    std::fs::create_dir_all(&course).expect("mkdir");
    std::fs::write(course.join("data.txt"), "hello from the course\n").expect("data");
    let cases = 36;
    let mut toml = String::from(
        "[run]\nargv = [\"python3\", \"/work/main.py\"]\nfiles = { \"data.txt\" = \"data.txt\" }\n",
    );
    for i in 0..cases {
        toml.push_str(&format!(
            "\n[[case]]\nname = \"case-{i:02}\"\nexpected = \"hello from the course\"\n"
        ));
    }
    std::fs::write(course.join("cases.toml"), toml).expect("cases.toml");
    let submissions = root.path().join("submissions");
    for (name, main_py) in [
        (
            "00-reads-the-course-file",
            "print(open('/work/data.txt').read())\n",
        ),
        (
            "01-brings-the-sandbox-down-every-time",
            "blocks = []\nwhile True:\n    blocks.append(bytearray(16 << 20))\n",
        ),
    ] {
        std::fs::create_dir_all(submissions.join(name)).expect("mkdir");
        std::fs::write(submissions.join(name).join("main.py"), main_py).expect("write");
    }
    let config = root.path().join("agh.toml");
    std::fs::write(
        &config,
        "runtime = \"runsc\"\nimages = [\"agh/python-c:1\"]\n\n[sources.course]\nlocal = \"course\"\n\n\
         [settings]\nmemory_mb = \"128\"\nwall_time_ms = \"10000\"\n",
    )
    .expect("agh.toml");
    std::fs::write(
        root.path().join("expected.toml"),
        format!(
            "[scores]\n\"00-reads-the-course-file\" = {cases}.0\n\"01-brings-the-sandbox-down-every-time\" = 0.0\n\n[verdicts]\n"
        ),
    )
    .expect("expected.toml");
    let results = grade_folder("io-resets", root.path(), &config, "builtin:io-cases").await;
    let hog = results
        .iter()
        .find(|r| r["submission"] == "01-brings-the-sandbox-down-every-time")
        .expect("the hog's result");
    assert_eq!(hog["status"], "graded", "{hog}");
    let tests = hog["tests"].as_array().expect("tests");
    assert_eq!(tests.len(), cases, "{hog}");
    let not_run = tests
        .iter()
        .filter(|t| {
            t["output"]
                .as_str()
                .unwrap_or_default()
                .contains("not reset again")
        })
        .count();
    assert!(
        not_run >= 1,
        "no case was failed as not run past the cap: {hog}"
    );
    for test in tests {
        assert_ne!(test["verdict"], "accepted", "{test}");
    }
}

/// A submission bigger than its sandbox can hold is the student's: an
/// invalid submission, scored 0, never an infra error retried three times.
/// (Its places are tmpfs, held in memory: under a sandbox of 96 MiB whose
/// `/work` could take 256 MiB, these 200 MiB of zeros filled the memory
/// during agh's own copy, an infra error x3. The plan now keeps `/work`
/// within what memory holds, and the copy meets a full `/work` instead.)
#[tokio::test]
async fn a_submission_bigger_than_its_sandbox_is_the_students() {
    let root = tempfile::tempdir().expect("tempdir");
    // The no-code grader reads the source "course", folder `cases`.
    let course = root.path().join("course/cases");
    std::fs::create_dir_all(&course).expect("mkdir");
    std::fs::write(
        course.join("cases.toml"),
        "[run]\nargv = [\"true\"]\n\n[[case]]\nname = \"runs\"\nexpected = \"\"\n",
    )
    .expect("cases.toml");
    let submission = root.path().join("submissions/00-zeros");
    std::fs::create_dir_all(&submission).expect("mkdir");
    let zeros = std::fs::File::create(submission.join("zeros.bin")).expect("create");
    zeros.set_len(200 * 1024 * 1024).expect("200 MiB of zeros");
    let config = root.path().join("agh.toml");
    std::fs::write(
        &config,
        "runtime = \"runsc\"\nimages = [\"agh/python-c:1\"]\n\n[sources.course]\nlocal = \"course\"\n\n\
         [settings]\nmemory_mb = \"96\"\n",
    )
    .expect("agh.toml");
    let out = tempfile::tempdir().expect("tempdir");
    let batch = support::batch_id("memory-copy");
    let submissions = root.path().join("submissions");
    let output = agh_grade(
        "builtin:io-cases",
        &config,
        &submissions,
        out.path(),
        &batch,
    );
    assert!(
        output.status.success(),
        "an invalid submission is not a failure of agh:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("results JSON");
    support::assert_no_leftovers(&support::docker().await, &batch).await;
    assert_eq!(results[0]["status"], "invalid-submission", "{}", results[0]);
    let error = results[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("zeros.bin: No space left on device"),
        "{error}"
    );
}

/// A case that brings the sandbox down costs only that case: the C grader
/// asks for a fresh sandbox, builds again, and the later cases run. A
/// folder where the program is built is the student's compile error.
#[tokio::test]
async fn c_grader_recovers_from_a_case_that_brings_the_sandbox_down() {
    let root = tempfile::tempdir().expect("tempdir");
    let course = support::repo_root().join("examples/c-course");
    let correct = std::fs::read_to_string(course.join("submissions/01-correct/main.c"))
        .expect("correct solution");
    let submissions = root.path().join("submissions");
    for (name, main_c) in [
        ("00-correct", correct.clone()),
        (
            "01-hog-on-one-case",
            correct.replace(
                "if (scanf(\"%ld\", &n) != 1) return 1;",
                "if (scanf(\"%ld\", &n) != 1) return 1;\n    if (n == 3) for (;;) { char *p = malloc(16 << 20); if (p) memset(p, 1, 16 << 20); }",
            )
            .replace("#include <stdio.h>", "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>"),
        ),
        ("02-folder-in-the-way", correct.clone()),
    ] {
        std::fs::create_dir_all(submissions.join(name)).expect("mkdir");
        std::fs::write(submissions.join(name).join("main.c"), main_c).expect("write");
    }
    std::fs::create_dir_all(submissions.join("02-folder-in-the-way/prog")).expect("mkdir");
    std::fs::write(
        submissions.join("02-folder-in-the-way/prog/keep"),
        "a folder where the build goes",
    )
    .expect("write");
    std::fs::write(
        root.path().join("expected.toml"),
        r#"
[scores]
"00-correct" = 5.0
"01-hog-on-one-case" = 4.0
"02-folder-in-the-way" = 0.0

[verdicts]
"01-hog-on-one-case" = "memory-limit"
"02-folder-in-the-way" = "compile-error"
"#,
    )
    .expect("expected.toml");
    grade_folder(
        "c-state",
        root.path(),
        &course.join("agh.toml"),
        graders::C_IO,
    )
    .await;
}
