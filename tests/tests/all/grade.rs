//! `agh grade` end to end: the example courses through the CLI under runsc,
//! every score checked against the course's expected file.

use std::collections::BTreeMap;

use agh_tests::graders;
use serde::Deserialize;

use crate::support;

#[derive(Debug, Deserialize)]
struct Expected {
    scores: BTreeMap<String, f64>,
    verdicts: BTreeMap<String, String>,
}

/// Grades the course in `examples/COURSE` and checks every score.
async fn grade_course(course: &str, plugin: &str) -> Vec<serde_json::Value> {
    let root = support::repo_root().join("examples").join(course);
    grade_folder(course, &root, &root.join("agh.toml"), plugin).await
}

/// Grades `root/submissions` under `config` and checks every score and
/// verdict against `root/expected.toml`; returns the results.
async fn grade_folder(
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
    let output = std::process::Command::new(support::agh_binary())
        .args(["grade", "--plugin", plugin, "--json", "--batch-id", &batch])
        .arg("--config")
        .arg(config)
        .arg("--submissions")
        .arg(root.join("submissions"))
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("running agh grade");
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
        assert_eq!(provenance["wit_version"], "0.1.0");
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

#[tokio::test]
async fn c_course_gets_its_expected_scores() {
    grade_course("c-course", graders::C_IO).await;
}
