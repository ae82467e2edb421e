//! Graders in every language, as a new user makes them: `agh new`, then
//! `agh build` with the language's own toolchain, then `agh grade`; and the
//! example graders in Python and JavaScript built from source and graded to
//! their courses' exact scores. In CI a missing toolchain fails these tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support;

fn agh(args: &[&str], dir: &Path) -> Output {
    Command::new(support::agh_binary())
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running agh")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `agh build DIR --out OUT`, which must succeed.
pub fn build_grader(dir: &Path, out: &Path) -> PathBuf {
    let built = Command::new(support::agh_binary())
        .arg("build")
        .arg(dir)
        .arg("--out")
        .arg(out)
        .output()
        .expect("agh build");
    assert!(
        built.status.success(),
        "agh build {} failed:\n{}{}",
        dir.display(),
        text(&built.stdout),
        text(&built.stderr)
    );
    out.to_path_buf()
}

/// Scores by submission from `agh grade --json`.
fn scores(output: &Output) -> Vec<(String, f64)> {
    let results: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&output.stdout), text(&output.stderr)));
    results
        .iter()
        .map(|r| {
            (
                r["submission"].as_str().unwrap_or_default().to_string(),
                r["score"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect()
}

#[test]
fn a_new_grader_in_every_language_builds_and_grades_its_samples() {
    let root = tempfile::tempdir().expect("tempdir");
    for lang in ["rust", "python", "javascript"] {
        let made = agh(&["new", "grader", "--lang", lang, lang], root.path());
        assert!(made.status.success(), "{lang}: {}", text(&made.stderr));
        let project = root.path().join(lang);
        for file in [
            "wit/grader.wit",
            "agh.toml",
            "README.md",
            "submissions/passing/solution.py",
        ] {
            assert!(project.join(file).is_file(), "{lang}: no {file}");
        }
        let built = agh(&["build"], &project);
        assert!(
            built.status.success(),
            "{lang}: agh build failed:\n{}{}",
            text(&built.stdout),
            text(&built.stderr)
        );
        assert!(
            text(&built.stdout).contains("contract agh:grader@0.2.0"),
            "{}",
            text(&built.stdout)
        );
        let graded = agh(
            &[
                "grade",
                "--plugin",
                "grader.wasm",
                "--config",
                "agh.toml",
                "--submissions",
                "submissions",
                "--json",
            ],
            &project,
        );
        assert_eq!(
            scores(&graded),
            [("failing".to_string(), 0.0), ("passing".to_string(), 3.0)],
            "{lang}: {}",
            text(&graded.stderr)
        );
        // A fresh project passes the grader gate as it is made.
        let alone = support::courses_alone();
        let checked = agh(
            &[
                "check",
                "--plugin",
                "grader.wasm",
                "--config",
                "agh.toml",
                "--samples",
                ".",
            ],
            &project,
        );
        drop(alone);
        assert!(
            checked.status.success() && text(&checked.stdout).contains("PASSED"),
            "{lang}: agh check failed:\n{}{}",
            text(&checked.stdout),
            text(&checked.stderr)
        );
    }
    let again = agh(&["new", "grader", "--lang", "rust", "rust"], root.path());
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("is not empty"),
        "{}",
        text(&again.stderr)
    );
}

/// `agh new grader --lang python --tests`: a unittest course with no
/// grader code, graded by `builtin:python-tests` as made (a failing test's
/// own message only for a visible test), and passing `agh check` as made.
#[test]
fn a_new_unittest_course_grades_and_passes_the_gate_as_made() {
    let root = tempfile::tempdir().expect("tempdir");
    let refused = agh(
        &["new", "grader", "--lang", "rust", "--tests", "r"],
        root.path(),
    );
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        text(&refused.stderr).contains("--lang python"),
        "{refused:?}"
    );
    let made = agh(
        &["new", "grader", "--lang", "python", "--tests", "course"],
        root.path(),
    );
    assert!(made.status.success(), "{}", text(&made.stderr));
    let course = root.path().join("course");
    assert!(course.join("course/tests/test_stats.py").is_file());
    let alone = support::courses_alone();
    let graded = agh(
        &[
            "grade",
            "--plugin",
            "builtin:python-tests",
            "--config",
            "agh.toml",
            "--submissions",
            "submissions",
            "--json",
        ],
        &course,
    );
    assert_eq!(
        scores(&graded),
        [("failing".to_string(), 2.0), ("passing".to_string(), 4.0)],
        "{}",
        text(&graded.stderr)
    );
    let results: serde_json::Value = serde_json::from_slice(&graded.stdout).expect("json");
    let failing = results
        .as_array()
        .and_then(|r| r.iter().find(|r| r["submission"] == "failing"))
        .expect("failing");
    let output_of = |name: &str| {
        failing["tests"]
            .as_array()
            .and_then(|t| {
                t.iter()
                    .find(|t| t["name"].as_str().is_some_and(|n| n.ends_with(name)))
            })
            .map(|t| t["output"].as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|| panic!("no {name} in {failing}"))
    };
    assert_eq!(output_of("test_spread"), "3 != 8");
    assert!(
        output_of("test_hidden_cases").starts_with("the test failed"),
        "{failing}"
    );
    let checked = agh(
        &[
            "check",
            "--plugin",
            "builtin:python-tests",
            "--config",
            "agh.toml",
            "--samples",
            ".",
        ],
        &course,
    );
    drop(alone);
    assert!(
        checked.status.success() && text(&checked.stdout).contains("PASSED"),
        "agh check failed:\n{}{}",
        text(&checked.stdout),
        text(&checked.stderr)
    );
}

/// Without its toolchain, `agh build` says exactly what is missing and how
/// to install it.
#[test]
fn a_missing_toolchain_is_named_with_how_to_install_it() {
    let root = tempfile::tempdir().expect("tempdir");
    for (lang, phrase) in [
        (
            "python",
            "componentize-py is not installed: `python3 -m venv",
        ),
        (
            "javascript",
            "componentize-js is not installed: `npm install -g @bytecodealliance/componentize-js@0.23.0`",
        ),
    ] {
        let made = agh(&["new", "grader", "--lang", lang, lang], root.path());
        assert!(made.status.success(), "{}", text(&made.stderr));
        let built = Command::new(support::agh_binary())
            .current_dir(root.path().join(lang))
            .env("PATH", "/nonexistent")
            .env_remove("AGH_COMPONENTIZE_PY")
            .env_remove("AGH_COMPONENTIZE_JS")
            .arg("build")
            .output()
            .expect("agh build");
        assert!(!built.status.success());
        assert!(
            text(&built.stderr).contains(phrase),
            "{lang}: {}",
            text(&built.stderr)
        );
    }
    let empty = agh(&["build"], root.path());
    assert!(
        text(&empty.stderr).contains("holds no grader project"),
        "{}",
        text(&empty.stderr)
    );
}

/// The JavaScript Python-course grader runs the very harness of the Rust
/// one: `harness.js` is what scripts/gen-js-harness makes of it.
#[test]
fn the_javascript_harness_is_the_python_graders_own() {
    let root = support::repo_root().join("graders");
    let generated =
        std::fs::read_to_string(root.join("python-unittest-js/harness.js")).expect("harness.js");
    let harness = root.join("python-unittest/harness");
    let mut files = Vec::new();
    let mut folders = vec![harness.clone()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("harness folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() && !path.ends_with("__pycache__") {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "py") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 3, "harness files: {files:?}");
    for path in files {
        let file = path
            .strip_prefix(&harness)
            .expect("in the harness")
            .display();
        let source = std::fs::read_to_string(&path).expect("harness file");
        let encoded = serde_json::to_string(&source).expect("json");
        let placed = serde_json::to_string(&format!("/assets/agh-harness/{file}")).expect("json");
        assert!(
            generated.contains(&format!("{placed}: {encoded}")),
            "harness.js is stale for {file}; run scripts/gen-js-harness"
        );
    }
}

/// A fake toolchain that records who ran it, with which environment.
fn recording_tool(dir: &Path, name: &str, record: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let tool = dir.join(name);
    std::fs::write(
        &tool,
        format!(
            "#!/bin/sh\n{{ id -u; env; }} > {}\nexit 1\n",
            record.display()
        ),
    )
    .expect("write the tool");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    tool
}

/// `agh build` never runs a tool the project ships: a JavaScript project's
/// own `node_modules/.bin/componentize-js` (which agh preferred, and ran as
/// the operator with the operator's environment and Docker socket) is
/// left alone, and with no componentize-js elsewhere the build says so.
#[test]
fn agh_build_never_runs_a_tool_from_the_project() {
    let root = tempfile::tempdir().expect("tempdir");
    let made = agh(
        &["new", "grader", "--lang", "javascript", "js"],
        root.path(),
    );
    assert!(made.status.success(), "{}", text(&made.stderr));
    let project = root.path().join("js");
    let bin = project.join("node_modules/.bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let record = root.path().join("ran");
    recording_tool(&bin, "componentize-js", &record);
    let built = Command::new(support::agh_binary())
        .current_dir(&project)
        .arg("build")
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env_remove("AGH_COMPONENTIZE_JS")
        .output()
        .expect("agh build");
    assert!(!built.status.success(), "{}", text(&built.stdout));
    assert!(
        text(&built.stderr).contains("componentize-js is not installed"),
        "{}",
        text(&built.stderr)
    );
    assert!(!record.exists(), "the project's own tool ran");
}

/// A build runs with a cleared environment (no canary, no `DOCKER_HOST`),
/// and, when agh runs as root, as the user who owns the project, never as
/// root.
#[test]
fn agh_build_runs_the_toolchain_without_the_operators_environment_or_root() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let made = agh(&["new", "grader", "--lang", "python", "py"], root.path());
    assert!(made.status.success(), "{}", text(&made.stderr));
    let project = root.path().join("py");
    let record = project.join("ran");
    let tools = root.path().join("tools");
    std::fs::create_dir(&tools).expect("mkdir");
    std::fs::set_permissions(&tools, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let tool = recording_tool(&tools, "componentize-py", &record);
    let owner = 4242;
    let status = Command::new("chown")
        .args(["-R", &format!("{owner}:{owner}")])
        .arg(&project)
        .status()
        .expect("chown");
    assert!(status.success());
    let built = Command::new(support::agh_binary())
        .current_dir(&project)
        .arg("build")
        .env("AGH_COMPONENTIZE_PY", &tool)
        .env("AGH_TEST_CANARY", "the operator's secret")
        .env("DOCKER_HOST", "unix:///var/run/docker.sock")
        .output()
        .expect("agh build");
    assert!(!built.status.success(), "the fake tool fails the build");
    let seen = std::fs::read_to_string(&record).expect("the tool ran and recorded");
    assert!(
        !seen.contains("AGH_TEST_CANARY") && !seen.contains("DOCKER_HOST"),
        "{seen}"
    );
    // The tests run as root (chown above needs it): the build must not.
    let uid = seen.lines().next().unwrap_or_default();
    assert_eq!(
        uid,
        owner.to_string(),
        "the build ran as {uid}, not the project's owner"
    );
}
