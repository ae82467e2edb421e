//! Batches that are killed, interrupted, fed archives, split into shards or
//! starved of disk: every run ends with exactly one result per submission
//! and no labelled container left.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use agh_tests::graders;

use crate::support;

fn course() -> PathBuf {
    support::repo_root().join("examples/c-course")
}

fn expected_scores() -> BTreeMap<String, f64> {
    let text = std::fs::read_to_string(course().join("expected.toml")).expect("expected.toml");
    let parsed: toml::Value = toml::from_str(&text).expect("toml");
    parsed["scores"]
        .as_table()
        .expect("scores")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_float().expect("score")))
        .collect()
}

fn grade(out: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(support::agh_binary());
    command
        .args([
            "grade",
            "--plugin",
            graders::C_IO,
            "-j",
            "2",
            "--submissions",
        ])
        .arg(course().join("submissions"))
        .arg("--config")
        .arg(course().join("agh.toml"))
        .arg("--out")
        .arg(out)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn journal_lines(out: &Path) -> usize {
    std::fs::read_to_string(out.join("journal.jsonl")).map_or(0, |t| t.lines().count())
}

fn wait_for_journal(child: &mut Child, out: &Path, lines: usize) {
    let started = Instant::now();
    while journal_lines(out) < lines {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "agh ended before it was interrupted"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no progress in the journal"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Exactly one result per submission, each with its expected score, and no
/// container of the batch left.
async fn assert_complete(out: &Path) {
    let results: BTreeMap<String, f64> = std::fs::read_dir(out)
        .expect("out")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && n != "batch.json")
        .map(|n| {
            let value: serde_json::Value =
                serde_json::from_slice(&std::fs::read(out.join(&n)).expect("read"))
                    .expect("whole JSON");
            (
                value["submission"].as_str().expect("name").to_string(),
                value["score"].as_f64().expect("score"),
            )
        })
        .collect();
    assert_eq!(results, expected_scores());
    let journal = std::fs::read_to_string(out.join("journal.jsonl")).expect("journal");
    let mut names: Vec<String> = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["submission"].as_str().unwrap_or_default().to_string())
        .collect();
    let total = names.len();
    names.sort();
    names.dedup();
    assert_eq!(
        names.len(),
        total,
        "a submission was journalled twice: {journal}"
    );
    let identity: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("batch.json")).expect("batch.json"))
            .expect("json");
    support::assert_no_leftovers(
        &support::docker().await,
        identity["id"].as_str().expect("id"),
    )
    .await;
}

fn finish(child: Child) -> Output {
    child.wait_with_output().expect("agh")
}

#[tokio::test]
async fn kill_9_mid_batch_then_resume_gives_exactly_one_result_each() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let mut child = grade(&out, &[]).spawn().expect("agh");
    wait_for_journal(&mut child, &out, 2);
    child.kill().expect("kill -9");
    let _ = child.wait();
    assert!(
        journal_lines(&out) < expected_scores().len(),
        "the batch finished before the kill"
    );
    let resumed = finish(grade(&out, &["--resume"]).spawn().expect("agh"));
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert!(
        String::from_utf8_lossy(&resumed.stderr).contains("already graded"),
        "the resume regraded everything"
    );
    assert_complete(&out).await;
}

#[tokio::test]
async fn ctrl_c_stops_taking_work_then_resume_finishes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let mut child = grade(&out, &[]).spawn().expect("agh");
    wait_for_journal(&mut child, &out, 1);
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let interrupted = finish(child);
    assert_eq!(
        interrupted.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&interrupted.stderr)
    );
    assert!(String::from_utf8_lossy(&interrupted.stderr).contains("--resume"));
    let resumed = finish(grade(&out, &["--resume"]).spawn().expect("agh"));
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_complete(&out).await;
}

#[tokio::test]
async fn shards_merge_into_the_whole_and_export() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b, merged) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("merged"),
    );
    for (out, shard) in [(&a, "1/2"), (&b, "2/2")] {
        let output = finish(grade(out, &["--shard", shard]).spawn().expect("agh"));
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let output = Command::new(support::agh_binary())
        .arg("merge")
        .arg("--out")
        .arg(&merged)
        .arg(&a)
        .arg(&b)
        .output()
        .expect("merge");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_complete(&merged).await;
    let output = Command::new(support::agh_binary())
        .args([
            "export",
            "--format",
            "csv",
            "--format",
            "junit",
            "--format",
            "gradescope",
            "--from",
        ])
        .arg(&merged)
        .output()
        .expect("export");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let csv = std::fs::read_to_string(merged.join("gradebook.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 1 + expected_scores().len());
    assert!(
        csv.lines().any(|l| l.starts_with("02-partial,graded,3,5,")),
        "{csv}"
    );
    let gradescope: serde_json::Value = serde_json::from_slice(
        &std::fs::read(merged.join("gradescope/01-correct/results.json")).expect("gs"),
    )
    .expect("json");
    assert_eq!(gradescope["score"], 5.0);
    assert!(
        std::fs::read_to_string(merged.join("junit.xml"))
            .expect("junit")
            .contains("<testsuite name=\"02-partial\" tests=\"5\" failures=\"2\"")
    );
}

#[tokio::test]
async fn archive_submissions_are_unpacked_safely() {
    let dir = tempfile::tempdir().expect("tempdir");
    let subs = dir.path().join("submissions");
    std::fs::create_dir(&subs).expect("mkdir");
    let main_c = std::fs::read(course().join("submissions/01-correct/main.c")).expect("main.c");
    let zip_with = |name: &str, entries: &[(&str, &[u8])]| {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(subs.join(name)).expect("zip"));
        for (entry, bytes) in entries {
            zip.start_file(*entry, zip::write::SimpleFileOptions::default())
                .expect("entry");
            zip.write_all(bytes).expect("write");
        }
        zip.finish().expect("finish");
    };
    zip_with("zipped.zip", &[("main.c", &main_c)]);
    zip_with(
        "slip.zip",
        &[("../../../escaped.c", b"int x;"), ("main.c", &main_c)],
    );
    let bomb = vec![0u8; 300 * 1024 * 1024];
    zip_with("bomb.zip", &[("main.c", &main_c), ("zeros", &bomb)]);
    let tarball = std::fs::File::create(subs.join("tarred.tar.gz")).expect("tgz");
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        tarball,
        flate2::Compression::fast(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_size(main_c.len() as u64);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, "main.c", main_c.as_slice())
        .expect("append");
    builder.into_inner().expect("tar").finish().expect("gz");
    let output = Command::new(support::agh_binary())
        .args([
            "grade",
            "--plugin",
            graders::C_IO,
            "--json",
            "--submissions",
        ])
        .arg(&subs)
        .arg("--config")
        .arg(course().join("agh.toml"))
        .output()
        .expect("agh");
    let results: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).expect("JSON");
    let by_name: BTreeMap<&str, &serde_json::Value> = results
        .iter()
        .map(|r| (r["submission"].as_str().expect("name"), r))
        .collect();
    assert_eq!(by_name.len(), 4, "{results:?}");
    assert_eq!(by_name["zipped"]["score"], 5.0);
    assert_eq!(by_name["tarred"]["score"], 5.0);
    assert_eq!(by_name["slip"]["status"], "invalid-submission");
    assert!(
        by_name["slip"]["error"]
            .as_str()
            .expect("error")
            .contains("leaves the submission folder")
    );
    assert_eq!(by_name["bomb"]["status"], "invalid-submission");
    assert!(
        by_name["bomb"]["error"]
            .as_str()
            .expect("error")
            .contains("archive bomb")
    );
    assert!(!dir.path().join("escaped.c").exists() && !subs.join("escaped.c").exists());
}

#[tokio::test]
async fn a_full_disk_stops_the_batch_and_keeps_what_was_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("small");
    std::fs::create_dir(&out).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=40k", "tmpfs"])
        .arg(&out)
        .status()
        .expect("mount");
    assert!(
        mounted.success(),
        "mounting a small tmpfs needs root (CI runs as root)"
    );
    let output = grade(&out, &[]).output().expect("agh");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let written: Vec<PathBuf> = std::fs::read_dir(&out)
        .expect("out")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    for file in &written {
        let parsed: Result<serde_json::Value, _> =
            serde_json::from_slice(&std::fs::read(file).expect("read"));
        assert!(parsed.is_ok(), "{} is not whole", file.display());
    }
    let journal = std::fs::read_to_string(out.join("journal.jsonl")).unwrap_or_default();
    let lines = journal.lines().count();
    let _ = Command::new("umount").arg(&out).status();
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("No space left") && stderr.contains("stopping the batch"),
        "{stderr}"
    );
    assert!(
        lines < expected_scores().len(),
        "the disk never filled: {lines} journal lines"
    );
    assert!(
        journal
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{journal}"
    );
}
