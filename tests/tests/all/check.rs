//! `agh check`, the grader gate, end to end under runsc: it fails a
//! deliberately weak grader (its tests run in the student's process, so
//! a submission that patches unittest gets full marks) and passes the
//! example graders on their own samples, every stock attack included,
//! whose gradings then rescore from their transcripts with no sandbox.

use std::path::Path;
use std::process::Output;

use agh_tests::graders;
use serde_json::Value;

use crate::support;

fn check(plugin: &str, course: &Path, out: &Path) -> (Output, Value) {
    let _alone = support::courses_alone();
    let output = std::process::Command::new(support::agh_binary())
        .args(["check", "--json", "--plugin", plugin, "--config"])
        .arg(course.join("agh.toml"))
        .arg("--samples")
        .arg(course)
        .arg("--out")
        .arg(out)
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
    let out = tempfile::tempdir().expect("tempdir");
    let (output, report) = check("builtin:io-cases", &course, &out.path().join("check"));
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

#[tokio::test]
async fn the_example_graders_pass_the_gate() {
    let root = support::repo_root().join("examples");
    for (plugin, course, language) in [
        (graders::C_IO, "c-course", "c"),
        (graders::PYTHON_UNITTEST, "python-course", "python"),
    ] {
        let out = tempfile::tempdir().expect("tempdir");
        let kept = out.path().join("check");
        let (output, report) = check(plugin, &root.join(course), &kept);
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
        // The example course rescored from its transcripts with the
        // unchanged grader: every submission replayed, nothing changed,
        // and Docker created no container meanwhile.
        let since = support::unix_now();
        let (rescored, pid) = support::output_and_pid(
            std::process::Command::new(support::agh_binary())
                .args([
                    "rescore",
                    "--no-sandbox",
                    "--json",
                    "--plugin",
                    plugin,
                    "--config",
                ])
                .arg(root.join(course).join("agh.toml"))
                .arg("--from")
                .arg(kept.join("samples-1"))
                .arg("--out")
                .arg(kept.join("rescored")),
        );
        assert!(rescored.status.success(), "{course}: {rescored:?}");
        let replayed: Value = serde_json::from_slice(&rescored.stdout).expect("json");
        let hows: Vec<&str> = replayed["submissions"]
            .as_array()
            .expect("submissions")
            .iter()
            .filter_map(|s| s[1]["how"].as_str())
            .collect();
        assert!(
            !hows.is_empty() && hows.iter().all(|h| *h == "replayed"),
            "{course}: {replayed}"
        );
        let diff = std::process::Command::new(support::agh_binary())
            .arg("diff")
            .arg(kept.join("samples-1"))
            .arg(kept.join("rescored"))
            .output()
            .expect("agh diff");
        assert_eq!(diff.status.code(), Some(0), "{course}: {diff:?}");
        assert_eq!(
            support::containers_created_since(&support::docker().await, since, pid).await,
            0,
            "{course}"
        );
    }
}

/// A Java course (tests/cases/java-io, graded by the no-code grader): agh
/// check makes Java's stock attacks, each class replaced by one of its
/// name whose loading attacks (exits at once saying OK, spins, starts
/// threads, takes memory, floods, forges a results file, looks for the
/// expected outputs), and none scores more than expected.toml allows (case
/// 01's output printed blind passes case 01 alone).
#[test]
fn java_stock_attacks_score_nothing_on_a_java_course() {
    let course = support::repo_root().join("tests/cases/java-io");
    let out = tempfile::tempdir().expect("tempdir");
    let (output, report) = check("builtin:io-cases", &course, &out.path().join("check"));
    assert!(output.status.success(), "{report}");
    assert_eq!(report["language"], "java", "{report}");
    assert!(failed(&report, "samples").is_empty(), "{report}");
    assert!(failed(&report, "attacks").is_empty(), "{report}");
    let names = attack_names(&report);
    for attack in [
        "attack-exits-early",
        "attack-thread-bomb",
        "attack-fake-score",
        "attack-reads-assets",
        "attack-prints-visible-output",
    ] {
        assert!(names.iter().any(|a| a == attack), "no {attack}: {report}");
    }
}
