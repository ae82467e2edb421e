//! `agh check`, the grader gate, end to end under runsc: it fails a
//! deliberately weak grader (its tests run in the student's process, so
//! a submission that patches unittest gets full marks) and passes the
//! example graders on their own samples, every stock attack included.

use std::path::Path;
use std::process::Output;

use agh_tests::graders;
use serde_json::Value;

use crate::support;

fn check(plugin: &str, course: &Path) -> (Output, Value) {
    let output = std::process::Command::new(support::agh_binary())
        .args(["check", "--json", "--plugin", plugin, "--config"])
        .arg(course.join("agh.toml"))
        .arg("--samples")
        .arg(course)
        .output()
        .expect("agh check");
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    (output, report)
}

/// The findings of `report[key]` that failed, by name.
fn failed(report: &Value, key: &str) -> Vec<String> {
    report[key]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["ok"] == false)
        .map(|f| f["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn attack_names(report: &Value) -> Vec<String> {
    report["attacks"]
        .as_array()
        .expect("attacks")
        .iter()
        .map(|f| f["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_grader_that_tests_in_the_students_process_fails_the_gate() {
    let course = support::repo_root().join("tests/fixtures/weak-course");
    let (output, report) = check("builtin:io-cases", &course);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert_eq!(report["language"], "python", "{report}");
    assert!(failed(&report, "samples").is_empty(), "{report}");
    assert_eq!(
        failed(&report, "attacks"),
        ["attack-patches-unittest"],
        "{report}"
    );
    assert!(attack_names(&report).len() >= 10, "{report}");
}

#[test]
fn the_example_graders_pass_the_gate() {
    let root = support::repo_root().join("examples");
    for (plugin, course, language) in [
        (graders::C_IO, "c-course", "c"),
        (graders::PYTHON_UNITTEST, "python-course", "python"),
    ] {
        let (output, report) = check(plugin, &root.join(course));
        assert!(output.status.success(), "{course}: {report}");
        assert_eq!(report["language"], language, "{report}");
        assert!(failed(&report, "samples").is_empty(), "{report}");
        assert!(failed(&report, "attacks").is_empty(), "{report}");
        assert_eq!(report["unstable"], serde_json::json!([]), "{report}");
        for attack in [
            "attack-fork-bomb",
            "attack-fake-score",
            "attack-reads-assets",
        ] {
            assert!(
                attack_names(&report).iter().any(|a| a == attack),
                "{course}: no {attack}: {report}"
            );
        }
    }
}
