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
    grade_from(&course().join("submissions"), out, extra)
}

/// `agh grade` of the C course's grader over `submissions` into `out`.
fn grade_from(submissions: &Path, out: &Path, extra: &[&str]) -> Command {
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
        .arg(submissions)
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
    let results: BTreeMap<String, f64> = std::fs::read_dir(out.join("results"))
        .expect("out/results")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .map(|path| {
            let value: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("whole JSON");
            (
                value["submission"].as_str().expect("name").to_string(),
                value["score"].as_f64().expect("score"),
            )
        })
        .collect();
    assert_eq!(results, expected_scores());
    // Each result's transcript is whole (its digest and every entry
    // checked), every blob it names is there, and nothing half-written is.
    let transcripts = agh::transcript::TranscriptDir::new(out);
    for result in agh::batch::journal::load_results(out).expect("results") {
        let reference = result.transcript.as_ref().expect("a transcript");
        let entries = transcripts.load(reference).expect("a whole transcript");
        for kept in entries.iter().flat_map(agh::transcript::rescore::kept_in) {
            transcripts.read_blob(&kept.blob).expect("its blob");
        }
    }
    let partial = std::fs::read_dir(out.join("transcripts"))
        .expect("transcripts")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(partial, 0, "a half-written transcript was left");
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
    // The resumed run's summary covers the whole batch, not only what it graded.
    let table = String::from_utf8_lossy(&resumed.stdout);
    for name in expected_scores().keys() {
        assert!(
            table.lines().any(|line| line.starts_with(name.as_str())),
            "{name} missing from the summary:\n{table}"
        );
    }
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
    // Each shard's transcripts came along, blobs and all.
    for result in agh::batch::journal::load_results(&merged).expect("results") {
        assert!(result.transcript.is_some(), "{}", result.submission);
    }
    let shown = Command::new(support::agh_binary())
        .arg("show")
        .arg(&merged)
        .arg("01-correct")
        .output()
        .expect("show");
    let page = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success() && page.contains("$ gcc") && page.contains("| "),
        "{page}"
    );
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
        .args(["-t", "tmpfs", "-o", "size=40k,mode=0700", "tmpfs"])
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
        .chain(std::fs::read_dir(out.join("results")).into_iter().flatten())
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

/// Writes a zip holding `main.c` into `dir` under the file name `name`.
fn zip_main_c(dir: &Path, name: &std::ffi::OsStr, main_c: &[u8]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(dir.join(name)).expect("zip"));
    zip.start_file("main.c", zip::write::SimpleFileOptions::default())
        .expect("entry");
    zip.write_all(main_c).expect("write");
    zip.finish().expect("finish");
}

fn results_by_name(out: &Path) -> BTreeMap<String, serde_json::Value> {
    std::fs::read_dir(out.join("results"))
        .expect("out/results")
        .filter_map(Result::ok)
        .map(|e| {
            let value: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.path()).expect("read")).expect("JSON");
            (
                value["submission"].as_str().expect("name").to_string(),
                value,
            )
        })
        .collect()
}

/// `...zip` (stem `..`), `..zip` (`.`), `.zip` (empty), a name with a
/// terminal escape, and `batch.zip`: none removes, writes or plants
/// anything outside its own staging folder and result file, and the output
/// folder's own files and the operator's files beside them survive.
#[tokio::test]
async fn submission_names_cannot_reach_outside_the_output_folder() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let subs = dir.path().join("submissions");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&subs).expect("mkdir");
    std::fs::create_dir_all(&out).expect("mkdir");
    std::fs::write(out.join("operator-notes.txt"), "keep me").expect("write");
    std::fs::write(dir.path().join("beside-out.txt"), "keep me too").expect("write");
    let main_c = std::fs::read(course().join("submissions/01-correct/main.c")).expect("main.c");
    for name in [
        &b"...zip"[..],
        b"..zip",
        b".zip",
        b"batch.zip",
        b"journal.zip",
        b"evil\x1b]0;pwned\x07.zip",
        b"alice.zip",
    ] {
        zip_main_c(&subs, std::ffi::OsStr::from_bytes(name), &main_c);
    }
    let output = grade_from(&subs, &out, &[]).output().expect("agh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains('\u{1b}') && !stderr.contains('\u{1b}'),
        "a name's escape sequence reached the terminal:\n{stdout:?}\n{stderr:?}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("operator-notes.txt")).expect("notes"),
        "keep me"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("beside-out.txt")).expect("beside"),
        "keep me too"
    );
    let identity: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("batch.json")).expect("batch.json"))
            .expect("batch.json is still the batch's identity");
    assert!(identity["plugin_sha256"].is_string(), "{identity}");
    let results = results_by_name(&out);
    assert_eq!(results.len(), 7, "{:?}", results.keys());
    for graded in ["alice", "batch", "journal"] {
        assert_eq!(results[graded]["score"], 5.0, "{graded}");
    }
    let refused: Vec<&serde_json::Value> = results
        .values()
        .filter(|r| r["status"] == "invalid-submission")
        .collect();
    assert_eq!(refused.len(), 4, "{results:?}");
    for result in refused {
        assert!(
            result["submission"]
                .as_str()
                .expect("name")
                .starts_with("unnamed-")
        );
        assert!(
            result["error"]
                .as_str()
                .expect("error")
                .contains("rename it"),
            "{result}"
        );
    }
    // Every graded name is journalled once, and nothing left the folder.
    assert_eq!(journal_lines(&out), 7);
    let stray: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !["submissions", "out", "beside-out.txt"].contains(&n.as_str()))
        .collect();
    assert!(
        stray.is_empty(),
        "written beside the output folder: {stray:?}"
    );
}

/// `alice/` and `alice.zip` would both be graded as `alice`: refused before
/// anything is graded, naming both.
#[tokio::test]
async fn two_submissions_with_one_name_are_refused_before_grading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let subs = dir.path().join("submissions");
    let out = dir.path().join("out");
    std::fs::create_dir_all(subs.join("alice")).expect("mkdir");
    let main_c = std::fs::read(course().join("submissions/01-correct/main.c")).expect("main.c");
    std::fs::write(subs.join("alice/main.c"), &main_c).expect("write");
    zip_main_c(&subs, std::ffi::OsStr::new("alice.zip"), &main_c);
    let output = grade_from(&subs, &out, &[]).output().expect("agh");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("alice.zip") && stderr.contains("submissions/alice and"),
        "{stderr}"
    );
    assert!(!out.join("results").exists() && !out.join("journal.jsonl").exists());
}

/// A second agh on an output folder a running batch holds is refused before
/// it touches anything: the running batch's students keep their scores
/// although the second one's submissions of the same names are all wrong.
#[tokio::test]
async fn a_second_batch_on_a_held_output_folder_touches_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let right = dir.path().join("right");
    let wrong = dir.path().join("wrong");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&right).expect("mkdir");
    std::fs::create_dir_all(&wrong).expect("mkdir");
    let main_c = std::fs::read(course().join("submissions/01-correct/main.c")).expect("main.c");
    let bad_c = std::fs::read(course().join("submissions/03-wrong/main.c")).expect("main.c");
    let count = 8;
    for i in 0..count {
        let name = format!("s{i:02}.zip");
        zip_main_c(&right, std::ffi::OsStr::new(&name), &main_c);
        zip_main_c(&wrong, std::ffi::OsStr::new(&name), &bad_c);
    }
    let run = |subs: &Path| {
        let mut command = Command::new(support::agh_binary());
        command
            .args([
                "grade",
                "--plugin",
                graders::C_IO,
                "-j",
                "1",
                "--submissions",
            ])
            .arg(subs)
            .arg("--config")
            .arg(course().join("agh.toml"))
            .arg("--out")
            .arg(&out)
            .args(["--resume"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };
    let mut first = run(&right).spawn().expect("agh");
    wait_for_journal(&mut first, &out, 1);
    let second = run(&wrong).output().expect("agh");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    let first = finish(first);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let results = results_by_name(&out);
    assert_eq!(results.len(), count);
    for (name, result) in &results {
        assert_eq!(
            result["score"], 5.0,
            "{name} was graded from the second batch's files"
        );
    }
}

/// A sandbox killed from outside in the middle of grading (an operator's
/// `docker kill`, a host OOM kill of runsc) is never scored: the submission
/// is graded again in a fresh sandbox, gets its true score, and its result
/// records the retry and why.
#[tokio::test]
async fn a_sandbox_killed_from_outside_is_graded_again_and_the_retry_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let subs = dir.path().join("submissions");
    let name = format!("victim-{}", std::process::id());
    std::fs::create_dir_all(subs.join(&name)).expect("mkdir");
    // The correct solution, slowed down so the kill lands mid-grading.
    let correct =
        std::fs::read_to_string(course().join("submissions/01-correct/main.c")).expect("main.c");
    let slow = correct
        .replace(
            "#include <stdio.h>",
            "#include <stdio.h>\n#include <unistd.h>",
        )
        .replace("int main(void) {", "int main(void) {\n    usleep(600000);");
    std::fs::write(subs.join(&name).join("main.c"), slow).expect("write");
    let out = dir.path().join("out");
    let child = grade_from(&subs, &out, &[]).spawn().expect("agh");
    let docker = support::docker().await;
    let options = bollard::query_parameters::ListContainersOptions {
        filters: Some(std::collections::HashMap::from([(
            "label".to_string(),
            vec![format!("agh.submission={name}")],
        )])),
        ..Default::default()
    };
    let started = Instant::now();
    let victim = loop {
        let found = docker
            .list_containers(Some(options.clone()))
            .await
            .expect("list");
        if let Some(id) = found.into_iter().find_map(|c| c.id) {
            break id;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no sandbox appeared"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Into the grading: each of the five runs takes 0.6 s.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    docker
        .kill_container(
            &victim,
            None::<bollard::query_parameters::KillContainerOptions>,
        )
        .await
        .expect("docker kill");
    let output = finish(child);
    assert!(output.status.success(), "{output:?}");
    let result = &results_by_name(&out)[&name];
    assert_eq!(result["status"], "graded", "{result}");
    assert_eq!(
        result["score"].as_f64(),
        expected_scores().get("01-correct").copied(),
        "{result}"
    );
    let retries = result["retries"].as_array().expect("retries recorded");
    assert_eq!(retries.len(), 1, "{result}");
    assert_eq!(retries[0]["attempt"], 1);
    assert!(
        retries[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("outside")),
        "{result}"
    );
}

/// An output folder another local user made first (say under /tmp), with a
/// link planted where the journal goes, is refused before anything in it
/// is opened: agh, often root, truncated the file the link named. One
/// below a folder others may write (not sticky) is refused too. A folder
/// agh makes itself is private: 0700, its lock and journal 0600.
#[test]
fn an_output_folder_another_user_controls_is_refused_untouched() {
    use agh::batch::{OpenMode, OutputDir, OutputLock};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let root = tempfile::tempdir().expect("tempdir");
    let precious = root.path().join("precious");
    std::fs::write(&precious, "root's file\n").expect("write");
    let planted = root.path().join("planted-out");
    std::fs::create_dir(&planted).expect("mkdir");
    std::os::unix::fs::symlink(&precious, planted.join("journal.jsonl")).expect("link");
    std::os::unix::fs::chown(&planted, Some(4242), Some(4242)).expect("chown");
    let err = OutputLock::acquire(&planted)
        .err()
        .expect("a foreign folder was taken");
    let text = err.to_string();
    assert!(
        text.contains("belongs to uid 4242") && text.contains("--out"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(&precious).expect("read"),
        "root's file\n"
    );

    let open = root.path().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let err = OutputLock::acquire(&open.join("out"))
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("may be written by other users"),
        "{err}"
    );

    let fresh = root.path().join("fresh");
    let lock = OutputLock::acquire(&fresh).expect("a fresh output folder");
    let _dir = OutputDir::open(lock, "id", "sha", OpenMode::New).expect("open");
    assert_eq!(
        std::fs::metadata(&fresh).expect("meta").mode() & 0o777,
        0o700
    );
    for file in [".lock", "journal.jsonl"] {
        let mode = std::fs::metadata(fresh.join(file)).expect(file).mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} is {mode:o}");
    }
}
