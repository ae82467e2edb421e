//! Transcripts end to end, through the CLI under runsc: `agh grade`
//! records every call, `agh show` reads one back, `agh rescore` replays
//! them with an unchanged grader (no sandbox started: asked of Docker), a
//! grader whose expected output changed (scores move only where expected)
//! and one that adds to a command (those are graded for real), refuses a
//! tampered blob, and `agh diff` says what changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use agh_tests::graders;

use crate::support;

/// The C course's submissions this test grades: one of each outcome it
/// replays (a correct, a partial, a wrong, a failed build).
const SUBMISSIONS: [&str; 4] = ["01-correct", "02-partial", "03-wrong", "04-compile-error"];

fn agh(args: &[&str], paths: &[&Path]) -> Output {
    let mut command = Command::new(support::agh_binary());
    command.args(args).args(paths);
    command.output().expect("agh runs")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn scores(out: &Path) -> HashMap<String, f64> {
    agh::batch::journal::load_results(out)
        .expect("results")
        .into_iter()
        .map(|r| (r.submission, r.score))
        .collect()
}

struct Course {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Course {
    /// The io course over a copy of the C course's cases, and a copy of
    /// some of its submissions.
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let examples = support::repo_root().join("examples");
        copy_dir(&examples.join("c-course/assets"), &root.join("assets"));
        for name in SUBMISSIONS {
            copy_dir(
                &examples.join("c-course/submissions").join(name),
                &root.join("submissions").join(name),
            );
        }
        let config = std::fs::read_to_string(examples.join("io-course/agh.toml")).expect("config");
        let config = config.replace(
            "local = \"../c-course/assets\"",
            &format!("local = {:?}", root.join("assets").display().to_string()),
        );
        std::fs::write(root.join("agh.toml"), config).expect("config");
        Self { _dir: dir, root }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    fn rescore(&self, from: &str, out: &str, sandbox: bool) -> Output {
        self.rescore_with_pid(from, out, sandbox).0
    }

    /// [`Course::rescore`], with the rescore's pid.
    fn rescore_with_pid(&self, from: &str, out: &str, sandbox: bool) -> (Output, u32) {
        let mut args = vec!["rescore", "--plugin", "builtin:io-cases", "--json"];
        if !sandbox {
            args.push("--no-sandbox");
        }
        let mut command = Command::new(support::agh_binary());
        command
            .args(args)
            .arg("--config")
            .arg(self.path("agh.toml"))
            .arg("--from")
            .arg(self.path(from))
            .arg("--out")
            .arg(self.path(out));
        support::output_and_pid(&mut command)
    }
}

fn hows(output: &Output) -> Vec<String> {
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("{e}: {output:?}");
    });
    report["submissions"]
        .as_array()
        .expect("submissions")
        .iter()
        .map(|s| s[1]["how"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn rescoring_replays_transcripts_without_sandboxes_and_grades_only_what_changed() {
    let course = Course::new();
    let docker = support::docker().await;
    let graded = agh(
        &[
            "grade",
            "--plugin",
            "builtin:io-cases",
            "--json",
            "--config",
        ],
        &[
            &course.path("agh.toml"),
            Path::new("--submissions"),
            &course.path("submissions"),
            Path::new("--out"),
            &course.path("out1"),
        ],
    );
    assert!(graded.status.success(), "{graded:?}");
    let before = scores(&course.path("out1"));
    assert_eq!(before.len(), SUBMISSIONS.len(), "{before:?}");
    assert_eq!(before["02-partial"], 5.0, "{before:?}");

    // What the partial program printed for case 03 is on staff's page.
    let shown = agh(&["show"], &[&course.path("out1"), Path::new("02-partial")]);
    assert!(shown.status.success(), "{shown:?}");
    let page = String::from_utf8_lossy(&shown.stdout);
    assert!(page.contains("$ gcc -O2"), "{page}");
    assert!(page.contains("| -11 0"), "{page}");
    assert!(page.contains("03: wrong output"), "{page}");

    // The unchanged grader: every submission replayed, the same scores,
    // and Docker created no container meanwhile.
    let since = support::unix_now();
    let (same, pid) = course.rescore_with_pid("out1", "out2", false);
    assert!(same.status.success(), "{same:?}");
    assert_eq!(hows(&same), ["replayed"; 4]);
    assert_eq!(scores(&course.path("out2")), before);
    assert_eq!(
        support::containers_created_since(&docker, since, pid).await,
        0
    );
    let diff = agh(&["diff"], &[&course.path("out1"), &course.path("out2")]);
    assert_eq!(diff.status.code(), Some(0), "{diff:?}");
    let rescored: Value = serde_json::from_slice(
        &std::fs::read(course.path("out2/results/02-partial.json")).expect("result"),
    )
    .expect("json");
    assert!(
        rescored["provenance"]["rescored"]["from"]
            .as_str()
            .is_some_and(|f| f.ends_with("out1")),
        "{rescored}"
    );
    // The new folder carries the transcripts: it can be shown and
    // rescored in turn.
    let shown = agh(&["show"], &[&course.path("out2"), Path::new("02-partial")]);
    assert!(shown.status.success(), "{shown:?}");

    // Case 03's expected output was wrong: the grader reads the course's
    // files on the host, so the same replies give the new scores; only
    // the submissions that printed either answer move.
    let expected = course.path("assets/cases/03.out");
    let right = std::fs::read(&expected).expect("03.out");
    std::fs::write(&expected, "-11 0\n").expect("write");
    let looser = course.rescore("out1", "out3", false);
    assert!(looser.status.success(), "{looser:?}");
    assert_eq!(hows(&looser), ["replayed"; 4]);
    let diff = agh(
        &["diff", "--json"],
        &[&course.path("out1"), &course.path("out3")],
    );
    assert_eq!(diff.status.code(), Some(1), "{diff:?}");
    let changes: Value = serde_json::from_slice(&diff.stdout).expect("json");
    assert_eq!(
        changes["gained"],
        serde_json::json!(["02-partial"]),
        "{changes}"
    );
    assert_eq!(
        changes["lost"],
        serde_json::json!(["01-correct"]),
        "{changes}"
    );
    std::fs::write(&expected, right).expect("write");

    // A grader that builds differently makes a call never recorded: with
    // --no-sandbox each is listed, with sandboxes each is graded again.
    let cases = course.path("assets/cases/cases.toml");
    let text = std::fs::read_to_string(&cases).expect("cases");
    std::fs::write(&cases, text.replace("\"-O2\"", "\"-O1\"")).expect("write");
    let listed = course.rescore("out1", "out4", false);
    assert_eq!(listed.status.code(), Some(2), "{listed:?}");
    assert_eq!(hows(&listed), ["needs-sandbox"; 4]);
    let since = support::unix_now();
    let (regraded, pid) = course.rescore_with_pid("out1", "out5", true);
    assert!(regraded.status.success(), "{regraded:?}");
    assert_eq!(hows(&regraded), ["graded"; 4]);
    assert_eq!(scores(&course.path("out5")), before);
    assert!(support::containers_created_since(&docker, since, pid).await >= SUBMISSIONS.len());
    std::fs::write(&cases, text).expect("write");

    // A blob altered after grading is refused, never replayed.
    let result: Value = serde_json::from_slice(
        &std::fs::read(course.path("out1/results/02-partial.json")).expect("result"),
    )
    .expect("json");
    let transcript = result["transcript"]["path"].as_str().expect("transcript");
    let lines = std::fs::read_to_string(course.path("out1").join(transcript)).expect("lines");
    let source = lines
        .lines()
        .find_map(|l| {
            let entry: Value = serde_json::from_str(l).ok()?;
            entry["files"][0]["contents"]["sha256"]
                .as_str()
                .map(str::to_string)
        })
        .expect("the submission's file");
    std::fs::write(
        course.path("out1/blobs").join(&source),
        "int main() { return 0; }\n",
    )
    .expect("tamper");
    let tampered = course.rescore("out1", "out6", false);
    assert_eq!(tampered.status.code(), Some(2), "{tampered:?}");
    let report: Value = serde_json::from_slice(&tampered.stdout).expect("json");
    let partial = report["submissions"]
        .as_array()
        .expect("submissions")
        .iter()
        .find(|s| s[0] == "02-partial")
        .expect("02-partial");
    assert_eq!(partial[1]["how"], "refused", "{report}");
    assert!(
        partial[1]["why"]
            .as_str()
            .is_some_and(|w| w.contains("does not hold the bytes recorded")),
        "{report}"
    );
}

/// The test outputs of each result in `out`, by submission.
fn outputs(out: &Path) -> HashMap<String, String> {
    agh::batch::journal::load_results(out)
        .expect("results")
        .into_iter()
        .map(|r| {
            let text = r.tests.iter().map(|t| t.output.as_str()).collect();
            (r.submission, text)
        })
        .collect()
}

/// A grader that puts random bytes, both clocks and a NaN's bits in its
/// feedback: each grading draws its own seed (two gradings, and two
/// submissions, differ), the wall clock starts when grading did, NaNs are
/// canonical, and a replay writes every byte of the report again.
#[tokio::test]
async fn a_replay_pins_the_graders_randomness_and_clocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["a", "b"] {
        let submission = dir.path().join("submissions").join(name);
        std::fs::create_dir_all(&submission).expect("mkdir");
        std::fs::write(submission.join("mode.txt"), "varying\n").expect("mode");
    }
    let plugin = Path::new(graders::MISBEHAVING);
    let grade = |out: &str| {
        let graded = agh(
            &["grade", "--json", "--plugin"],
            &[
                plugin,
                Path::new("--submissions"),
                &dir.path().join("submissions"),
                Path::new("--out"),
                &dir.path().join(out),
            ],
        );
        assert!(graded.status.success(), "{graded:?}");
        outputs(&dir.path().join(out))
    };
    let first = grade("out1");
    let again = grade("out1b");
    assert_ne!(first["a"], first["b"], "{first:?}");
    assert_ne!(first["a"], again["a"], "{first:?} {again:?}");
    let wall: u128 = first["a"]
        .split_whitespace()
        .skip_while(|w| *w != "wall")
        .nth(1)
        .and_then(|w| w.parse().ok())
        .expect("the wall clock");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("now")
        .as_nanos();
    assert!(now - wall < 600_000_000_000, "{wall} vs {now}");
    assert!(first["a"].ends_with("nan 7ff8000000000000"), "{first:?}");
    let shown = agh(&["show"], &[&dir.path().join("out1"), Path::new("a")]);
    let page = String::from_utf8_lossy(&shown.stdout);
    assert!(page.contains("the grader logged 1 line(s)"), "{page}");
    assert!(page.contains("varying: ran echo"), "{page}");

    let rescored = agh(
        &["rescore", "--json", "--no-sandbox", "--plugin"],
        &[
            plugin,
            Path::new("--from"),
            &dir.path().join("out1"),
            Path::new("--out"),
            &dir.path().join("out2"),
        ],
    );
    assert!(rescored.status.success(), "{rescored:?}");
    assert_eq!(hows(&rescored), ["replayed"; 2]);
    assert_eq!(outputs(&dir.path().join("out2")), first);
}

/// `agh report --html`: the page renders in Debian's Chromium, headless,
/// with the counts of the output folder, and what a student's program
/// printed (a script, an image with a handler) is text on it, never markup.
#[test]
fn the_html_report_renders_and_shows_every_student_byte_as_text() {
    let course = Course::new();
    let hostile = course.path("submissions/05-markup");
    std::fs::create_dir_all(&hostile).expect("mkdir");
    std::fs::write(
        hostile.join("main.c"),
        "#include <stdio.h>\nint main(void) { puts(\"<script>document.title='pwned'</script>\
         <img src=x onerror=\\\"document.title='pwned'\\\">\"); return 0; }\n",
    )
    .expect("write");
    let graded = agh(
        &["grade", "--plugin", "builtin:io-cases", "--config"],
        &[
            &course.path("agh.toml"),
            Path::new("--submissions"),
            &course.path("submissions"),
            Path::new("--out"),
            &course.path("out"),
        ],
    );
    assert!(graded.status.success(), "{graded:?}");
    let page = course.path("report.html");
    let reported = agh(
        &["report"],
        &[&course.path("out"), Path::new("--html"), &page],
    );
    assert!(reported.status.success(), "{reported:?}");
    let dom = support::chromium_dom(&format!("file://{}", page.display()));
    assert!(dom.contains("<title>agh report: "), "{dom}");
    assert!(!dom.contains("pwned</title>"), "{dom}");
    assert!(dom.contains("<span id=\"count\">5</span>"), "{dom}");
    assert!(dom.contains("<span id=\"graded\">5</span>"), "{dom}");
    let counted: usize = dom
        .split("data-count=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next()?.parse::<usize>().ok())
        .sum();
    assert_eq!(counted, 5, "{dom}");
    assert!(
        dom.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"),
        "{dom}"
    );
    assert!(!dom.contains("<img"), "{dom}");
    assert!(!dom.contains("<script"), "{dom}");
    for name in SUBMISSIONS {
        assert!(dom.contains(name), "{name}: {dom}");
    }
}
