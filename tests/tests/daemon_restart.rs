//! The Docker daemon restarted mid-batch: the submissions it hit become
//! infra errors and are retried, none is scored from a half-finished run,
//! and `--resume` ends with exactly one correct result per submission.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agh_tests::graders;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo")
        .to_path_buf()
}

fn agh() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("agh")
}

fn grade(out: &Path, resume: bool) -> Command {
    let course = repo().join("examples/c-course");
    let mut command = Command::new(agh());
    command
        .args([
            "grade",
            "--plugin",
            graders::C_IO,
            "-j",
            "2",
            "--submissions",
        ])
        .arg(course.join("submissions"))
        .arg("--config")
        .arg(course.join("agh.toml"))
        .arg("--out")
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if resume {
        command.arg("--resume");
    }
    command
}

fn docker_answers() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_daemon_restart_mid_batch_loses_and_misgrades_nothing() {
    assert!(
        docker_answers(),
        "Docker must be running: run `sudo scripts/setup`"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let child = grade(&out, false).spawn().expect("agh");
    let started = Instant::now();
    while std::fs::read_to_string(out.join("journal.jsonl")).map_or(0, |t| t.lines().count()) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no progress before the restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Stop dockerd as an operator's restart would, then bring it back with
    // the setup script (which starts it when nothing answers).
    let stopped = Command::new("pkill")
        .args(["-TERM", "-x", "dockerd"])
        .status()
        .expect("pkill");
    assert!(stopped.success(), "no dockerd to restart");
    let down = Instant::now();
    while Command::new("pgrep")
        .args(["-x", "dockerd"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(
            down.elapsed() < Duration::from_secs(60),
            "dockerd did not stop"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let setup = Command::new(repo().join("scripts/setup"))
        .stdout(Stdio::null())
        .status()
        .expect("setup");
    assert!(
        setup.success() && docker_answers(),
        "dockerd did not come back"
    );
    let first = child.wait_with_output().expect("agh");
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.contains("infra error; retrying") || !first.status.success(),
        "the restart hit nothing in flight:\n{stderr}"
    );

    let mut attempts = 0;
    loop {
        let resumed = grade(&out, true).output().expect("agh --resume");
        if resumed.status.success() {
            break;
        }
        attempts += 1;
        assert!(
            attempts < 3,
            "resume kept failing: {}",
            String::from_utf8_lossy(&resumed.stderr)
        );
    }
    let text =
        std::fs::read_to_string(repo().join("examples/c-course/expected.toml")).expect("expected");
    let expected: toml::Value = toml::from_str(&text).expect("toml");
    let expected: BTreeMap<String, f64> = expected["scores"]
        .as_table()
        .expect("scores")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_float().expect("f")))
        .collect();
    let mut got = BTreeMap::new();
    for name in expected.keys() {
        let result: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join("results").join(format!("{name}.json"))).expect("result"),
        )
        .expect("json");
        assert_eq!(result["status"], "graded", "{name}: {result}");
        got.insert(name.clone(), result["score"].as_f64().expect("score"));
    }
    assert_eq!(
        got, expected,
        "a submission was scored from a half-finished run"
    );
    let identity: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("batch.json")).expect("id")).expect("json");
    let label = format!("label=agh.batch={}", identity["id"].as_str().expect("id"));
    let left = Command::new("docker")
        .args(["ps", "-aq", "--filter", &label])
        .output()
        .expect("docker ps");
    assert!(
        left.stdout.is_empty(),
        "containers left: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}
