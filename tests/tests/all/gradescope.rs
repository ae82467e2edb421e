//! Gradescope autograders under agh: `agh gradescope build` of a zip, then
//! `agh grade --plugin builtin:gradescope`, under runsc, every score
//! checked against the course's expected file (examples/gradescope-*).
//! The Python course's setup.sh installs gradescope-utils from PyPI.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support;

/// Zips `folder`'s contents (not the folder) as staff upload to
/// Gradescope, with Python's zipfile, which records each file's mode.
fn zip_folder(folder: &Path, zip: &Path) {
    let status = std::process::Command::new("python3")
        .args(["-c", ZIP_FOLDER])
        .arg(folder)
        .arg(zip)
        .status()
        .expect("python3");
    assert!(status.success(), "zipping {}", folder.display());
}

const ZIP_FOLDER: &str = r#"
import os, sys, zipfile
root, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w") as z:
    for folder, _, files in os.walk(root):
        for name in sorted(files):
            path = os.path.join(folder, name)
            z.write(path, os.path.relpath(path, root))
"#;

fn build(zip: &Path, tag: &str) -> Output {
    build_on(zip, tag, None)
}

/// `agh gradescope build` on `base` (agh's default base without one).
fn build_on(zip: &Path, tag: &str, base: Option<&str>) -> Output {
    // Two tests build the C course's image: one build at a time, so the
    // second reuses the first's.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = BUILDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut command = std::process::Command::new(support::agh_binary());
    command.args(["gradescope", "build", "--tag", tag]);
    if let Some(base) = base {
        command.args(["--base", base]);
    }
    command.arg(zip).output().expect("agh gradescope build")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Builds examples/COURSE's autograder (twice: the second reuses the
/// image), grades its submissions and checks them.
async fn grade_gradescope_course(course: &str) -> Vec<serde_json::Value> {
    grade_gradescope_course_on(course, None).await
}

/// [`grade_gradescope_course`] with the image built on `base`.
async fn grade_gradescope_course_on(course: &str, base: Option<&str>) -> Vec<serde_json::Value> {
    let root = support::repo_root().join("examples").join(course);
    let work = tempfile::tempdir().expect("tempdir");
    let zip: PathBuf = work.path().join("autograder.zip");
    zip_folder(&root.join("autograder"), &zip);
    let tag = format!("agh/{course}-example:1");
    let built = build_on(&zip, &tag, base);
    assert!(
        built.status.success(),
        "build failed:\n{}",
        text(&built.stderr)
    );
    assert!(
        text(&built.stdout).contains("places = [\"/autograder\"]"),
        "the build prints the agh.toml to grade with:\n{}",
        text(&built.stdout)
    );
    let again = build_on(&zip, &tag, base);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("already built from this zip"),
        "the same zip reuses its image:\n{}",
        text(&again.stderr)
    );
    let docker = support::docker().await;
    let image = docker.inspect_image(&tag).await.expect("the built image");
    let labels = image.config.and_then(|c| c.labels).unwrap_or_default();
    let zip_sha = {
        use sha2::Digest;
        agh::layout::hex(&sha2::Sha256::digest(std::fs::read(&zip).expect("zip")))
    };
    assert_eq!(labels.get("agh.gradescope.zip-sha256"), Some(&zip_sha));
    // The log traces setup.sh's commands, its last line among them.
    let setup = std::fs::read_to_string(root.join("autograder/setup.sh")).expect("setup.sh");
    let last = setup
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .expect("a command");
    assert!(
        labels
            .get("agh.gradescope.build-log")
            .is_some_and(|log| log.contains(&format!("+ {}", last.trim()))),
        "the build log is a label: {labels:?}"
    );
    let results =
        crate::grade::grade_folder(course, &root, &root.join("agh.toml"), "builtin:gradescope")
            .await;
    for result in &results {
        assert_eq!(
            result["provenance"]["compat"], "gradescope",
            "a Gradescope verdict says so: {result}"
        );
    }
    results
}

fn result_of<'a>(results: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    results
        .iter()
        .find(|r| r["submission"] == name)
        .unwrap_or_else(|| panic!("no result for {name}"))
}

#[tokio::test]
async fn a_c_autograder_zip_grades_as_on_gradescope() {
    let results = grade_gradescope_course("gradescope-c").await;
    let correct = result_of(&results, "01-correct");
    let names: Vec<&str> = correct["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["1) 01-small", "2) 02-three", "3) 03-negative"]);
    assert_eq!(correct["tests"][1]["visibility"], "after-due-date");
    // The forger's background process ran as the student: what was read is
    // what the autograder wrote.
    let forger = result_of(&results, "07-rewrites-results");
    assert_eq!(forger["max_score"], 6.0, "{forger}");
    assert!(
        forger["tests"]
            .as_array()
            .expect("tests")
            .iter()
            .all(|t| t["name"] != "forged"),
        "{forger}"
    );
}

#[tokio::test]
async fn a_python_autograder_using_gradescope_utils_grades_as_on_gradescope() {
    let results = grade_gradescope_course("gradescope-python").await;
    let work = tempfile::tempdir().expect("tempdir");
    let zip = work.path().join("autograder.zip");
    zip_folder(
        &support::repo_root().join("examples/gradescope-python/autograder"),
        &zip,
    );
    let built = build(&zip, "agh/gradescope-python-example:1");
    assert!(
        text(&built.stderr).contains("run in the student's process"),
        "a zip of gradescope_utils tests hears of the native path: {}",
        text(&built.stderr)
    );
    let partial = result_of(&results, "02-partial");
    let hidden_until_due: Vec<&serde_json::Value> = partial["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .filter(|t| t["visibility"] == "after-due-date")
        .collect();
    assert_eq!(hidden_until_due.len(), 1, "{partial}");
    let gone = result_of(&results, "06-exits-before-results");
    let feedback = gone["tests"][0]["output"].as_str().unwrap_or_default();
    assert!(
        feedback.contains("The autograder failed to execute correctly")
            && feedback.contains("exited without writing results"),
        "no results.json: Gradescope's message and agh's reason: {feedback}"
    );
    assert_eq!(gone["max_score"], 7.0, "out of the assignment's points");
    let endless = result_of(&results, "05-endless-loop");
    assert!(
        endless["tests"][0]["output"]
            .as_str()
            .unwrap_or_default()
            .contains("ran out of time"),
        "{endless}"
    );
}

/// A JUnit 4 autograder on agh's Java image (Debian's JDK 17 and JUnit
/// packages): points per test method, JUnit's timeouts, a compile error
/// reported in the output, a JVM ended by the student's System.exit.
#[tokio::test]
async fn a_java_junit_autograder_grades_as_on_gradescope() {
    let results = grade_gradescope_course_on("gradescope-java", Some("agh/java:1")).await;
    let partial = result_of(&results, "02-partial");
    let names: Vec<&str> = partial["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["add", "factorial", "multiply"], "{partial}");
    assert_eq!(partial["tests"][1]["visibility"], "after-due-date");
    let endless = result_of(&results, "05-endless-loop");
    assert!(
        endless["tests"][1]["output"]
            .as_str()
            .unwrap_or_default()
            .contains("timed out"),
        "JUnit's timeout is the test's verdict: {endless}"
    );
    let broken = result_of(&results, "03-compile-error");
    assert!(
        broken.to_string().contains("';' expected"),
        "the compiler's message reaches the student: {broken}"
    );
    let gone = result_of(&results, "06-exits-before-results");
    assert!(
        gone.to_string()
            .contains("The autograder failed to execute correctly"),
        "{gone}"
    );
}

/// `agh check` on a Gradescope autograder: every stock attack scores 0
/// against the C course's autograder, among them the one that reads the
/// expected outputs beside its input (the student's program runs as the
/// student, and `/autograder`, the autograder's own place, is the grader
/// user's alone).
#[test]
fn agh_check_finds_no_stock_attack_that_scores_against_the_c_autograder() {
    let root = support::repo_root().join("examples/gradescope-c");
    let work = tempfile::tempdir().expect("tempdir");
    let zip = work.path().join("autograder.zip");
    zip_folder(&root.join("autograder"), &zip);
    let built = build(&zip, "agh/gradescope-c-example:1");
    assert!(built.status.success(), "{}", text(&built.stderr));
    let _alone = support::courses_alone();
    let checked = std::process::Command::new(support::agh_binary())
        .args([
            "check",
            "--json",
            "--plugin",
            "builtin:gradescope",
            "--config",
        ])
        .arg(root.join("agh.toml"))
        .arg("--samples")
        .arg(&root)
        .arg("--out")
        .arg(work.path().join("check"))
        .output()
        .expect("agh check");
    let report: serde_json::Value = serde_json::from_slice(&checked.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&checked.stderr)));
    let scored: Vec<&serde_json::Value> = report["attacks"]
        .as_array()
        .expect("attacks")
        .iter()
        .filter(|a| a["ok"] != true)
        .collect();
    assert!(scored.is_empty(), "stock attacks that scored: {scored:?}");
    assert!(
        report["attacks"]
            .as_array()
            .expect("attacks")
            .iter()
            .any(|a| a["name"] == "attack-reads-assets"),
        "{report}"
    );
    assert_eq!(checked.status.code(), Some(0), "{report}");
}

#[test]
fn a_failing_setup_names_its_line_and_a_missing_package() {
    let work = tempfile::tempdir().expect("tempdir");
    let source = work.path().join("autograder");
    std::fs::create_dir(&source).expect("mkdir");
    std::fs::write(
        source.join("setup.sh"),
        "echo preparing\napt-get install -y openjdk-11-jdk\n",
    )
    .expect("setup.sh");
    std::fs::write(source.join("run_autograder"), "#!/bin/sh\n").expect("run_autograder");
    let zip = work.path().join("autograder.zip");
    zip_folder(&source, &zip);
    let built = build(&zip, "agh/gradescope-broken-setup:1");
    let stderr = text(&built.stderr);
    assert_eq!(built.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("at: apt-get install -y openjdk-11-jdk"),
        "the failing line: {stderr}"
    );
    assert!(
        stderr.contains("does not exist in Debian bookworm") && stderr.contains("openjdk-17-jdk"),
        "a hint: {stderr}"
    );
}

#[test]
fn a_zip_whose_paths_leave_the_folder_is_refused_before_any_build() {
    let work = tempfile::tempdir().expect("tempdir");
    let zip = work.path().join("escape.zip");
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\n\
             z = zipfile.ZipFile(sys.argv[1], 'w')\n\
             z.writestr('setup.sh', 'true')\n\
             z.writestr('run_autograder', 'true')\n\
             z.writestr('../../escaped', 'x')\n\
             z.close()",
        ])
        .arg(&zip)
        .status()
        .expect("python3");
    assert!(status.success());
    let built = build(&zip, "agh/gradescope-escape:1");
    let stderr = text(&built.stderr);
    assert_eq!(built.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
    assert!(!work.path().parent().unwrap().join("escaped").exists());
}

/// An autograder that writes no results for anyone is broken, not its
/// students: the batch stops, as it does for a broken grader.
#[test]
fn a_batch_stops_when_the_autograder_writes_results_for_nobody() {
    let work = tempfile::tempdir().expect("tempdir");
    let source = work.path().join("autograder");
    std::fs::create_dir(&source).expect("mkdir");
    std::fs::write(source.join("setup.sh"), "true\n").expect("setup.sh");
    std::fs::write(
        source.join("run_autograder"),
        "#!/bin/sh\n# Writes to the wrong place.\necho '{}' > /tmp/results.json\n",
    )
    .expect("run_autograder");
    let zip = work.path().join("autograder.zip");
    zip_folder(&source, &zip);
    let tag = "agh/gradescope-writes-nothing:1";
    let built = build(&zip, tag);
    assert!(built.status.success(), "{}", text(&built.stderr));
    let config = work.path().join("agh.toml");
    std::fs::write(
        &config,
        format!(
            "images = [{tag:?}]\nplaces = [\"/autograder\"]\n[settings]\nimage = {tag:?}\n\
             timeout = \"20\"\n"
        ),
    )
    .expect("agh.toml");
    let submissions = work.path().join("submissions");
    for i in 0..8 {
        let dir = submissions.join(format!("s{i}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("answer.txt"), format!("{i}\n")).expect("file");
    }
    let output = {
        let _alone = support::courses_alone();
        std::process::Command::new(support::agh_binary())
            .args([
                "grade",
                "--plugin",
                "builtin:gradescope",
                "-j",
                "1",
                "--config",
            ])
            .arg(&config)
            .arg("--submissions")
            .arg(&submissions)
            .arg("--out")
            .arg(work.path().join("out"))
            .output()
            .expect("agh grade")
    };
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("the grader looks broken"), "{stderr}");
}
