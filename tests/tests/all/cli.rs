//! What the CLI prints, as snapshots (paths, hashes and timings filtered).

use std::process::Command;

use agh_tests::graders;

use crate::support;

fn run(args: &[&str]) -> String {
    let root = support::repo_root();
    let output = Command::new(support::agh_binary())
        .current_dir(&root)
        .args(args)
        .output()
        .expect("agh");
    format!(
        "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"[0-9a-f]{64}", "[sha256]");
    settings.add_filter(
        r"loaded   in [0-9.]+ ms \((compiled cache|compiled now)\)",
        "loaded   in [time]",
    );
    settings.add_filter(r"[0-9]+\.[0-9]s\n", "[secs]\n");
    // Whether this run compiled the grader depends on the tests before it.
    settings.add_filter(
        r"agh: compiling the grader \(its first use; later runs load it from the cache\)\.\.\.\nagh: compiled the grader in \[secs\]\n",
        "",
    );
    settings.add_filter(
        &regex_escape(&support::repo_root().display().to_string()),
        "[repo]",
    );
    settings
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

#[test]
fn plan_shows_what_is_asked_and_allowed() {
    let printed = run(&[
        "plan",
        "--plugin",
        graders::C_IO,
        "--config",
        "examples/c-course/agh.toml",
    ]);
    settings().bind(|| insta::assert_snapshot!(printed));
}

#[test]
fn a_refused_grader_says_what_was_asked_and_what_is_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("agh.toml");
    std::fs::write(&config, "images = [\"agh/busybox:1\"]\non_excess = \"refuse\"\n[ceilings]\nmemory_bytes = 134217728\n")
        .expect("config");
    let printed = run(&[
        "plan",
        "--plugin",
        graders::C_IO,
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    settings().bind(|| insta::assert_snapshot!(printed));
}

#[test]
fn grade_prints_a_table_per_submission() {
    let printed = run(&[
        "grade",
        "--plugin",
        graders::C_IO,
        "--config",
        "examples/c-course/agh.toml",
        "--submission",
        "examples/c-course/submissions/02-partial",
    ]);
    settings().bind(|| insta::assert_snapshot!(printed));
}

/// A misspelled image that a `prefix*` grant lets through is refused by
/// `agh plan` as the grader's mistake, naming the closest image the daemon
/// has, before any submission is graded; so is a local asset that does not
/// exist, without `--resolve`.
#[test]
fn plan_refuses_a_missing_image_or_asset_before_grading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("agh.toml");
    let plan_with = |toml: &str| {
        std::fs::write(&config, toml).expect("config");
        run(&[
            "plan",
            "--plugin",
            graders::MISBEHAVING,
            "--config",
            config.to_str().expect("utf-8"),
        ])
    };
    let printed = plan_with("images = [\"agh/*\"]\n[settings]\nmode = \"misspelled-image\"\n");
    assert!(printed.starts_with("exit: Some(3)"), "{printed}");
    assert!(
        printed.contains("image agh/busybx:1 does not exist")
            && printed.contains("the closest image it has is agh/busybox:1"),
        "{printed}"
    );
    std::fs::create_dir(dir.path().join("assets")).expect("assets");
    let printed = plan_with(
        "images = [\"agh/busybox:1\"]\n[sources.course]\nlocal = \"assets\"\n\
         [settings]\nasset = \"course:nowhere=/assets/x\"\n",
    );
    assert!(printed.contains("nowhere does not exist"), "{printed}");
}

/// The first use of a grader says that it compiles and how long it took;
/// a cached load says nothing.
#[test]
fn the_first_load_of_a_grader_says_it_is_compiling() {
    let cache = tempfile::tempdir().expect("tempdir");
    let plan = || {
        Command::new(support::agh_binary())
            .env("AGH_CACHE_DIR", cache.path())
            .args(["plan", "--plugin", agh_tests::graders::C_IO, "--config"])
            .arg(support::repo_root().join("examples/c-course/agh.toml"))
            .output()
            .expect("agh plan")
    };
    let first = plan();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert!(
        stderr.contains("compiling the grader") && stderr.contains("compiled the grader in"),
        "{stderr}"
    );
    let second = plan();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!stderr.contains("compiling"), "{stderr}");
}
