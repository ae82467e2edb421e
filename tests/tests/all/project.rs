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
    }
    let again = agh(&["new", "grader", "--lang", "rust", "rust"], root.path());
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("is not empty"),
        "{}",
        text(&again.stderr)
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
    for file in ["wire.py", "judge.py", "student.py"] {
        let source = std::fs::read_to_string(root.join("python-unittest/harness").join(file))
            .expect("harness file");
        let encoded = serde_json::to_string(&source).expect("json");
        assert!(
            generated.contains(&encoded),
            "harness.js is stale for {file}; run scripts/gen-js-harness"
        );
    }
}
