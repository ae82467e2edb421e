//! `agh serve` as an LMS uses it: a real server process on loopback with
//! its SQLite store, real Docker and runsc behind it, tokens made by
//! `agh token`, a course registered by `agh course add`, submissions
//! uploaded over HTTP; and the server killed mid-grade and restarted.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support;

/// A running `agh serve` and its address.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// Starts `agh ARGS --data DATA [--store STORE] --listen 127.0.0.1:0`
    /// and waits until `/readyz` says it is ready.
    async fn spawn(args: &[&str], data: &Path, store: Option<&str>) -> Self {
        let mut command = Command::new(support::agh_binary());
        command
            .args(args)
            .arg("--data")
            .arg(data)
            .env("AGH_LOG", "warn");
        if let Some(store) = store {
            command.args(["--store", store]);
        }
        let mut child = command
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("agh serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        })
        .await
        .expect("join")
        .expect("agh serve prints its address");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        let server = Self { child, url };
        let started = Instant::now();
        loop {
            let ready = reqwest::get(format!("{}/readyz", server.url)).await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return server;
            }
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "agh serve was not ready in 3 minutes: is Docker with runsc running?"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: nothing is cleaned up, nothing recorded. Returns the pid
    /// it had.
    fn kill(mut self) -> u32 {
        let pid = self.child.id();
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
        pid
    }

    /// SIGTERM, and the exit status once drained.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("pid");
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        self.child.wait().expect("wait")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `agh token create`'s token.
fn token(data: &Path, role: &str, course: Option<&str>, label: &str) -> String {
    token_in(data, None, role, course, label)
}

/// `agh token create`'s token, in the store `store` when given.
fn token_in(
    data: &Path,
    store: Option<&str>,
    role: &str,
    course: Option<&str>,
    label: &str,
) -> String {
    let mut command = Command::new(support::agh_binary());
    command
        .args(["token", "create", "--data"])
        .arg(data)
        .args(["--role", role, "--label", label]);
    if let Some(store) = store {
        command.args(["--store", store]);
    }
    if let Some(course) = course {
        command.args(["--course", course]);
    }
    let output = command.output().expect("agh token");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// A tar of the folder `dir`.
fn tar_of(dir: &Path) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.append_dir_all(".", dir).expect("tar");
    builder.into_inner().expect("tar")
}

fn c_submission(name: &str) -> std::path::PathBuf {
    support::repo_root()
        .join("examples/c-course/submissions")
        .join(name)
}

/// Registers the no-code C course as `io` with `agh course add`.
fn add_io_course(server: &Server, admin: &str) -> std::process::Output {
    let root = support::repo_root();
    Command::new(support::agh_binary())
        .args(["course", "add", "--url", &server.url, "--token", admin])
        .args(["--plugin", "builtin:io-cases", "--config"])
        .arg(root.join("examples/io-course/agh.toml"))
        .arg("io")
        .output()
        .expect("agh course add")
}

async fn upload(
    server: &Server,
    token: &str,
    student: &str,
    body: Vec<u8>,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(server.url(&format!("/v1/courses/io/submissions?student={student}")))
        .bearer_auth(token)
        .header("content-type", "application/x-tar")
        .body(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.expect("upload")
}

/// Uploads the example C course's submission `name` for `student`.
async fn submit(
    server: &Server,
    token: &str,
    student: &str,
    name: &str,
    key: Option<&str>,
) -> (u16, Value) {
    json(upload(server, token, student, tar_of(&c_submission(name)), key).await).await
}

async fn json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Waits for `id`'s result with `?wait=`, up to three minutes.
async fn result(server: &Server, token: &str, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = json(
            reqwest::Client::new()
                .get(server.url(&format!("/v1/submissions/{id}/result?wait=20s")))
                .bearer_auth(token)
                .send()
                .await
                .expect("result"),
        )
        .await;
        if status == 200 {
            return body;
        }
        assert_eq!(status, 202, "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "no result in 3 minutes: {body}"
        );
    }
}

async fn state(server: &Server, token: &str, id: &str) -> Value {
    let (status, body) = json(
        reqwest::Client::new()
            .get(server.url(&format!("/v1/submissions/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("state"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A course registered once is checked when registered, graded per upload
/// exactly once, and guarded by its tokens; retries of an upload under one
/// Idempotency-Key are one submission, and a different upload under the
/// same key is refused.
#[tokio::test]
async fn the_service_grades_each_upload_once_for_the_tokens_allowed() {
    let data = tempfile::tempdir().expect("tempdir");
    let admin = token(data.path(), "admin", None, "ops");
    let lms = token(data.path(), "submit", Some("io"), "lms");
    let staff = token(data.path(), "staff", Some("io"), "staff");
    let other = token(data.path(), "submit", Some("other"), "other-lms");
    let receiver = Receiver::start().await;
    let allow = format!("{}/hook/", receiver.url);
    let server = Server::spawn(
        &["serve", "-j", "2", "--callback-allow", &allow],
        data.path(),
        None,
    )
    .await;

    // Uploads to a course that does not exist yet.
    let early = upload(
        &server,
        &admin,
        "alice",
        tar_of(&c_submission("01-correct")),
        None,
    )
    .await;
    assert_eq!(early.status().as_u16(), 404);

    // The submit token may not register courses; the admin's may.
    let refused = add_io_course(&server, &lms);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("403"),
        "{refused:?}"
    );
    let added = add_io_course(&server, &admin);
    assert!(added.status.success(), "{added:?}");
    let said = String::from_utf8_lossy(&added.stdout);
    assert!(said.contains("course io version 1"), "{said}");
    let secret = said
        .split_whitespace()
        .find(|w| w.starts_with("whsec_"))
        .unwrap_or_else(|| panic!("no signing secret in {said}"))
        .to_string();
    let again = add_io_course(&server, &admin);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already registered"),
        "{again:?}"
    );

    // A config the grader's policy check refuses is refused at registration.
    let bad_config = data.path().join("bad.toml");
    std::fs::write(&bad_config, "images = [\"agh/nothing-like-it:9\"]\n").expect("write");
    let bad = Command::new(support::agh_binary())
        .args(["course", "add", "--url", &server.url, "--token", &admin])
        .args(["--plugin", "builtin:io-cases", "--config"])
        .arg(&bad_config)
        .arg("io")
        .output()
        .expect("agh course add");
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("422"),
        "{bad:?}"
    );

    // No token, a bad token, another course's token.
    let anonymous = reqwest::Client::new()
        .post(server.url("/v1/courses/io/submissions?student=alice"))
        .header("content-type", "application/x-tar")
        .body(tar_of(&c_submission("01-correct")))
        .send()
        .await
        .expect("upload");
    assert_eq!(anonymous.status().as_u16(), 401);
    let forged = upload(&server, "agh_0000", "alice", Vec::new(), None).await;
    assert_eq!(forged.status().as_u16(), 401);
    let elsewhere = upload(
        &server,
        &other,
        "alice",
        tar_of(&c_submission("01-correct")),
        None,
    )
    .await;
    assert_eq!(elsewhere.status().as_u16(), 403);

    // Not an archive; a student name that cannot be a file name.
    let (status, body) = json(
        reqwest::Client::new()
            .post(server.url("/v1/courses/io/submissions?student=alice"))
            .bearer_auth(&lms)
            .header("content-type", "text/plain")
            .body("hello")
            .send()
            .await
            .expect("upload"),
    )
    .await;
    assert_eq!(status, 415, "{body}");
    let (status, body) = submit(&server, &lms, "..", "01-correct", None).await;
    assert_eq!(status, 400, "{body}");

    // Past the upload cap.
    let huge = upload(&server, &lms, "alice", vec![0; 65 * 1024 * 1024], None).await;
    assert_eq!(huge.status().as_u16(), 413);

    // An upload, retried under its key: one submission.
    let correct = tar_of(&c_submission("01-correct"));
    let (status, first) =
        json(upload(&server, &lms, "alice", correct.clone(), Some("k1")).await).await;
    assert_eq!(status, 202, "{first}");
    let id = first["id"].as_str().expect("id").to_string();
    let (status, retried) = json(upload(&server, &lms, "alice", correct, Some("k1")).await).await;
    assert_eq!(
        (status, retried["id"].as_str()),
        (202, Some(id.as_str())),
        "{retried}"
    );
    let (status, reused) = submit(&server, &lms, "alice", "03-wrong", Some("k1")).await;
    assert_eq!(status, 422, "{reused}");

    // A callback URL off the operator's allow-list is refused; bob's is on it.
    let hooked = |url: String| {
        reqwest::Client::new()
            .post(server.url(&format!(
                "/v1/courses/io/submissions?student=bob&callback_url={url}"
            )))
            .bearer_auth(&lms)
            .header("content-type", "application/x-tar")
            .body(tar_of(&c_submission("03-wrong")))
            .send()
    };
    let (status, body) = json(
        hooked(format!("{}/elsewhere", receiver.url))
            .await
            .expect("upload"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, wrong) = json(
        hooked(format!("{}/hook/bob", receiver.url))
            .await
            .expect("upload"),
    )
    .await;
    assert_eq!(status, 202, "{wrong}");
    let wrong_id = wrong["id"].as_str().expect("id").to_string();

    let graded = result(&server, &lms, &id).await;
    assert_eq!(graded["status"], "graded", "{graded}");
    assert_eq!(graded["score"], 7.0, "{graded}");
    assert_eq!(graded["submission"], "alice", "{graded}");
    assert_eq!(graded["provenance"]["runtime_verified"], true, "{graded}");
    let bob = result(&server, &lms, &wrong_id).await;
    assert_eq!(
        (bob["status"].as_str(), bob["score"].as_f64()),
        (Some("graded"), Some(2.0)),
        "{bob}"
    );
    // The callback: refused once by the receiver, sent again, signed.
    let calls = receiver.calls(2).await;
    assert_eq!(calls[0].id, calls[1].id, "one message, tried twice");
    let call = &calls[1];
    assert_eq!(call.path, "/hook/bob");
    let sent: Value = serde_json::from_slice(&call.body).expect("json");
    assert_eq!(
        sent["data"]["id"].as_str(),
        Some(wrong_id.as_str()),
        "{sent}"
    );
    assert_eq!(sent["data"]["score"], 2.0, "{sent}");
    assert_eq!(
        call.signature,
        expected_signature(&secret, call),
        "signed with the course's secret"
    );
    let alice = state(&server, &lms, &id).await;
    assert_eq!(
        (alice["state"].as_str(), alice["attempts"].as_i64()),
        (Some("done"), Some(1)),
        "{alice}"
    );

    // Another course's token sees no such submission.
    let (status, _) = json(
        reqwest::Client::new()
            .get(server.url(&format!("/v1/submissions/{id}/result")))
            .bearer_auth(&other)
            .send()
            .await
            .expect("result"),
    )
    .await;
    assert_eq!(status, 404);

    // A result is final: nothing to cancel.
    let (status, body) = json(
        reqwest::Client::new()
            .delete(server.url(&format!("/v1/submissions/{id}")))
            .bearer_auth(&lms)
            .send()
            .await
            .expect("cancel"),
    )
    .await;
    assert_eq!(status, 409, "{body}");

    // Staff regrade and export; the LMS's token may do neither.
    let regrade = |token: &str| {
        reqwest::Client::new()
            .post(server.url(&format!("/v1/submissions/{wrong_id}/regrade")))
            .bearer_auth(token.to_string())
            .send()
    };
    assert_eq!(regrade(&lms).await.expect("regrade").status().as_u16(), 404);
    let (status, again) = json(regrade(&staff).await.expect("regrade")).await;
    assert_eq!(
        (status, again["priority"].as_i64()),
        (202, Some(1)),
        "{again}"
    );
    let regraded = result(&server, &staff, again["id"].as_str().expect("id")).await;
    assert_eq!(regraded["score"], 2.0, "{regraded}");
    let csv = reqwest::Client::new()
        .get(server.url("/v1/courses/io/export?format=csv"))
        .bearer_auth(&staff)
        .send()
        .await
        .expect("export");
    assert_eq!(csv.status().as_u16(), 200);
    let csv = csv.text().await.expect("csv");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "a header and one row per student: {csv}");
    assert!(
        rows[1].starts_with("alice,") && rows[2].starts_with("bob,"),
        "{csv}"
    );

    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("agh_results{status=\"graded\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("agh_queue_depth 0"), "{metrics}");
    assert!(metrics.contains("agh_sandbox_healthy 1"), "{metrics}");
    let health: Value = reqwest::get(server.url("/health/"))
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["ok"], true, "{health}");
    assert!(
        health["checks"].as_array().is_some_and(|c| c
            .iter()
            .any(|c| c["name"].as_str().is_some_and(|n| n.contains("gVisor")))),
        "{health}"
    );

    // The OpenAPI document served is the one in the repository.
    let served: Value = reqwest::get(server.url("/v1/openapi.json"))
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    let kept: Value = serde_json::from_str(
        &std::fs::read_to_string(support::repo_root().join("docs/openapi.json")).expect("file"),
    )
    .expect("json");
    assert_eq!(served, kept);

    // The status page, as a browser renders it.
    let dom = support::chromium_dom(&server.url("/"));
    assert!(dom.contains("Sandboxes proved safe: grading."), "{dom}");
    assert!(dom.contains("<td id=\"queued\">0</td>"), "{dom}");
    assert!(dom.contains("<td>graded</td><td>3</td>"), "{dom}");

    // The staff pages, through their forms in a browser without scripts:
    // a submit token and an unknown one are refused; the course's staff
    // see the course, the grading process, the uploads, each student's
    // latest result and one submission's tests; signing out ends it.
    let seen = support::browse("staff-pages.mjs", &[&server.url, &staff, &lms]);
    assert_eq!(seen["unsigned_url"], "/staff/login", "{seen}");
    assert!(
        seen["submit_refused"]
            .as_str()
            .is_some_and(|t| t.contains("a submit token")),
        "{seen}"
    );
    assert!(
        seen["unknown_refused"]
            .as_str()
            .is_some_and(|t| t.contains("unknown or revoked")),
        "{seen}"
    );
    assert_eq!(seen["signed_in_url"], "/staff", "{seen}");
    assert_eq!(
        seen["cookie"],
        serde_json::json!({"httpOnly": true, "sameSite": "Strict", "path": "/staff"}),
        "{seen}"
    );
    assert_eq!(seen["courses"][0][0], "io", "{seen}");
    assert_eq!(seen["courses"].as_array().map(Vec::len), Some(1), "{seen}");
    let worker = &seen["workers"][0];
    assert_eq!(
        (worker[0].as_str(), worker[1].as_str(), worker[3].as_str()),
        (Some("worker 1"), Some("proved safe"), Some("2")),
        "{seen}"
    );
    let recent = seen["recent"].as_array().expect("recent");
    assert_eq!(recent.len(), 3, "{seen}");
    assert!(
        recent.iter().all(|r| r[1] == "io" && r[3] == "graded"),
        "{seen}"
    );
    assert_eq!(seen["course_url"], "/staff/courses/io", "{seen}");
    let students: Vec<&str> = seen["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r[0].as_str())
        .collect();
    assert_eq!(students, ["alice", "bob"], "{seen}");
    assert_eq!(seen["results"][0][1], id.as_str(), "{seen}");
    assert_eq!(seen["submission"]["state"], "graded", "{seen}");
    assert!(
        seen["submission"]["score"]
            .as_str()
            .is_some_and(|s| s.starts_with("7 / ")),
        "{seen}"
    );
    assert!(
        seen["submission"]["tests"]
            .as_array()
            .is_some_and(|t| !t.is_empty() && t.iter().any(|t| t[1] == "accepted")),
        "{seen}"
    );
    assert_eq!(seen["signed_out_url"], "/", "{seen}");
    assert_eq!(seen["after_sign_out_url"], "/staff/login", "{seen}");
    // The pages never take a bearer token in place of the sign-in.
    let page = reqwest::Client::new()
        .get(server.url(&format!("/staff/submissions/{id}")))
        .bearer_auth(&staff)
        .send()
        .await
        .expect("page");
    assert_eq!(page.url().path(), "/staff/login");

    // The operator's probe suite against this live service (last: it
    // uploads as the student agh-probe).
    let probe = Command::new(support::agh_binary())
        .args([
            "probe",
            "--url",
            &server.url,
            "--token",
            &lms,
            "--course",
            "io",
            "--json",
        ])
        .output()
        .expect("agh probe");
    assert!(probe.status.success(), "{probe:?}");
    let findings: Value = serde_json::from_slice(&probe.stdout).expect("json");
    let names: Vec<&str> = findings
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    for expected in [
        "support_health_proves_gvisor",
        "deny_forged_token",
        "deny_oversized_upload",
        "deny_archive_escaping_its_folder",
        "deny_archive_with_a_link",
        "allow_upload_gets_its_result",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} not probed: {findings}"
        );
    }

    // The sandbox itself, probed through the API with agh's probe grader:
    // every probe held (the exit status), and each one was run.
    let probe = Command::new(support::agh_binary())
        .args([
            "probe",
            "--url",
            &server.url,
            "--token",
            &admin,
            "--sandbox",
            "--json",
        ])
        .output()
        .expect("agh probe --sandbox");
    let findings: Value = serde_json::from_slice(&probe.stdout).expect("json");
    assert!(probe.status.success(), "{findings:#}\n{probe:?}");
    let names: Vec<&str> = findings
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    for expected in [
        "support_sandbox_probe_graded",
        "deny_host_environment",
        "deny_read_other_submission",
        "deny_read_hidden_tests",
        "deny_network",
        "deny_dns",
        "deny_write_outside_workspace",
        "deny_fork_bomb",
        "deny_memory_bomb",
        "deny_output_flood",
        "deny_ignored_sigterm",
        "allow_workspace_write",
        "allow_program_runs",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} not probed: {findings:#}"
        );
    }

    let status = server.terminate();
    assert!(
        status.success(),
        "agh serve drains and exits 0 on SIGTERM: {status:?}"
    );
}

/// A server killed (SIGKILL) while it grades leaves the submission to the
/// next one: restarted, it takes the submission back at once (its old
/// process is provably gone), removes the dead one's sandbox, and records
/// exactly one result, naming the lost attempt.
#[tokio::test]
async fn a_server_killed_mid_grade_records_exactly_one_result_after_restart() {
    let data = tempfile::tempdir().expect("tempdir");
    let admin = token(data.path(), "admin", None, "ops");
    let one_per_course = ["serve", "-j", "1", "--max-queued-per-course", "1"];
    let server = Server::spawn(&one_per_course, data.path(), None).await;
    let added = add_io_course(&server, &admin);
    assert!(added.status.success(), "{added:?}");
    // Every case runs to its time limit: about twenty seconds in all.
    let (status, body) = submit(&server, &admin, "carol", "06-endless-loop", None).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id").to_string();
    let started = Instant::now();
    while state(&server, &admin, &id).await["state"] != "running" {
        assert!(started.elapsed() < Duration::from_secs(60), "never taken");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The course's queue is full: come back later.
    let full = upload(
        &server,
        &admin,
        "dave",
        tar_of(&c_submission("01-correct")),
        None,
    )
    .await;
    assert_eq!(full.status().as_u16(), 429);
    assert!(full.headers().contains_key("retry-after"), "{full:?}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let killed = server.kill();

    let docker = support::docker().await;
    let server = Server::spawn(
        &["serve", "-j", "1", "--max-queued", "1"],
        data.path(),
        None,
    )
    .await;
    // The whole queue is full (carol's submission is being graded again).
    let full = upload(
        &server,
        &admin,
        "dave",
        tar_of(&c_submission("01-correct")),
        None,
    )
    .await;
    assert_eq!(full.status().as_u16(), 503);
    assert!(full.headers().contains_key("retry-after"), "{full:?}");
    let graded = result(&server, &admin, &id).await;
    assert_eq!(graded["status"], "graded", "{graded}");
    assert_eq!(graded["score"], 0.0, "{graded}");
    let row = state(&server, &admin, &id).await;
    assert_eq!(row["attempts"], 2, "{row}");
    let retries = graded["retries"].as_array().expect("retries");
    assert_eq!(retries.len(), 1, "{graded}");
    assert!(
        retries[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("worker stopped")),
        "{graded}"
    );
    // The killed server's sandbox was removed when the new one started
    // (other tests' servers may have theirs running meanwhile).
    let left = sandboxes_of(&docker, killed, None).await;
    assert!(left.is_empty(), "sandboxes left: {left:?}");
    server.terminate();
}

/// The service's sandboxes (labelled `agh.batch=service/ID`) of the agh
/// process `pid`; with `submission`, only those grading it.
async fn sandboxes_of(
    docker: &bollard::Docker,
    pid: u32,
    submission: Option<&str>,
) -> Vec<bollard::models::ContainerSummary> {
    let options = bollard::query_parameters::ListContainersOptions {
        all: true,
        filters: Some(std::collections::HashMap::from([(
            "label".to_string(),
            vec!["agh.batch".to_string()],
        )])),
        ..Default::default()
    };
    let batch = |c: &bollard::models::ContainerSummary| {
        c.labels
            .as_ref()
            .and_then(|l| l.get("agh.batch"))
            .cloned()
            .unwrap_or_default()
    };
    let service = format!("{}/", agh::service::worker::SERVICE_LABEL);
    docker
        .list_containers(Some(options))
        .await
        .expect("list")
        .into_iter()
        .filter(|c| {
            let batch = batch(c);
            batch.starts_with(&service)
                && submission.is_none_or(|id| batch == format!("{service}{id}"))
        })
        .filter(|c| {
            c.labels
                .as_ref()
                .and_then(|l| l.get("agh.owner"))
                .is_some_and(|owner| owner.split('/').nth(1) == Some(&pid.to_string()))
        })
        .collect()
}

/// Cancelling a submission while it grades stops its grading: within a
/// heartbeat its sandbox is gone and its slot grades the next upload,
/// while its own grading (every case to its time limit, about twenty
/// seconds) would still be running; it never gets a result.
#[tokio::test]
async fn cancelling_a_running_submission_stops_its_grading_and_frees_its_slot() {
    let data = tempfile::tempdir().expect("tempdir");
    let admin = token(data.path(), "admin", None, "ops");
    let server = Server::spawn(&["serve", "-j", "1"], data.path(), None).await;
    let added = add_io_course(&server, &admin);
    assert!(added.status.success(), "{added:?}");
    let docker = support::docker().await;
    let (status, body) = submit(&server, &admin, "carol", "06-endless-loop", None).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id").to_string();
    let started = Instant::now();
    while sandboxes_of(&docker, server.pid(), Some(&id))
        .await
        .is_empty()
    {
        assert!(started.elapsed() < Duration::from_secs(60), "never graded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cancelled = reqwest::Client::new()
        .delete(server.url(&format!("/v1/submissions/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("cancel");
    assert_eq!(cancelled.status().as_u16(), 200);
    let (status, next) = submit(&server, &admin, "dave", "01-correct", None).await;
    assert_eq!(status, 202, "{next}");
    let next = next["id"].as_str().expect("id").to_string();
    let cancelled_at = Instant::now();
    while !sandboxes_of(&docker, server.pid(), Some(&id))
        .await
        .is_empty()
    {
        // A heartbeat is a third of the lease (10 s); the grading it stops
        // would run about twenty seconds.
        assert!(
            cancelled_at.elapsed() < agh::service::store::LEASE / 3 + Duration::from_secs(5),
            "the cancelled submission's sandbox is still there"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let graded = result(&server, &admin, &next).await;
    assert_eq!(graded["status"], "graded", "{graded}");
    assert_eq!(graded["score"], graded["max_score"], "{graded}");
    let row = state(&server, &admin, &id).await;
    assert_eq!(row["state"], "cancelled", "{row}");
    let none = reqwest::Client::new()
        .get(server.url(&format!("/v1/submissions/{id}/result")))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("result");
    assert_ne!(none.status().as_u16(), 200);
    server.terminate();
}

/// The same binary on PostgreSQL: a stateless API and two workers (each
/// with its own data folder, as on two grading nodes) share one store; each
/// upload is graded by one of them exactly once, and the API restarted
/// loses nothing.
#[tokio::test]
async fn an_api_and_two_workers_share_postgres_and_grade_each_upload_once() {
    let postgres = support::Postgres::start();
    let store = Some(postgres.url.as_str());
    let nodes = tempfile::tempdir().expect("tempdir");
    let (api_data, one, two) = (
        nodes.path().join("api"),
        nodes.path().join("one"),
        nodes.path().join("two"),
    );
    let admin = token_in(&api_data, store, "admin", None, "ops");
    let api = Server::spawn(&["serve", "--role", "api"], &api_data, store).await;
    let added = add_io_course(&api, &admin);
    assert!(added.status.success(), "{added:?}");
    let workers = [
        Server::spawn(&["worker", "-j", "1"], &one, store).await,
        Server::spawn(&["worker", "-j", "1"], &two, store).await,
    ];
    let expected = [
        ("01-correct", 7.0),
        ("02-partial", 5.0),
        ("03-wrong", 2.0),
        ("10-wrong-when-empty", 5.0),
    ];
    let mut ids = Vec::new();
    for (name, score) in expected {
        let (status, body) = submit(&api, &admin, name, name, None).await;
        assert_eq!(status, 202, "{body}");
        ids.push((body["id"].as_str().expect("id").to_string(), name, score));
    }
    // The API restarted: the queue and results are in the store, not in it.
    let _ = api.kill();
    let api = Server::spawn(&["serve", "--role", "api"], &api_data, store).await;
    for (id, name, score) in &ids {
        let graded = result(&api, &admin, id).await;
        assert_eq!(
            (
                graded["status"].as_str(),
                graded["score"].as_f64(),
                graded["submission"].as_str()
            ),
            (Some("graded"), Some(*score), Some(*name)),
            "{graded}"
        );
        let row = state(&api, &admin, id).await;
        assert_eq!(row["attempts"], 1, "graded once: {row}");
    }
    let metrics = reqwest::get(api.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("agh_results{status=\"graded\"} 4"),
        "{metrics}"
    );

    // A worker SIGKILLed mid-grade: the other one, on the same host, sees
    // its process gone, removes its sandbox, takes the submission back and
    // records exactly one result naming the lost attempt.
    let (status, body) = submit(&api, &admin, "carol", "06-endless-loop", None).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id").to_string();
    let docker = support::docker().await;
    let started = Instant::now();
    // The holder is the worker with a sandbox for this submission: one
    // still being removed for an earlier submission is not a hold.
    let holder = loop {
        let mut holding = Vec::new();
        for (i, worker) in workers.iter().enumerate() {
            if !sandboxes_of(&docker, worker.pid(), Some(&id))
                .await
                .is_empty()
            {
                holding.push(i);
            }
        }
        if let [i] = holding[..]
            && state(&api, &admin, &id).await["state"] == "running"
        {
            break i;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "never taken");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let [first, second] = workers;
    let (killed, survivor) = if holder == 0 {
        (first.kill(), second)
    } else {
        (second.kill(), first)
    };
    let graded = result(&api, &admin, &id).await;
    assert_eq!(
        (graded["status"].as_str(), graded["score"].as_f64()),
        (Some("graded"), Some(0.0)),
        "{graded}"
    );
    let row = state(&api, &admin, &id).await;
    assert_eq!(row["attempts"], 2, "{row}");
    let retries = graded["retries"].as_array().expect("retries");
    assert_eq!(retries.len(), 1, "{graded}");
    assert!(
        retries[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("worker stopped")),
        "{graded}"
    );
    let left = sandboxes_of(&docker, killed, None).await;
    assert!(
        left.is_empty(),
        "the killed worker's sandboxes left: {left:?}"
    );
    assert!(survivor.terminate().success());
    assert!(api.terminate().success());
}

/// Many workers ask for the one queued submission at the same instant, on
/// each store: exactly one gets it, under one fence, and the rest get
/// nothing (SQLite's write lock; PostgreSQL's `FOR UPDATE SKIP LOCKED` and
/// the state re-checked in the same statement).
#[tokio::test]
async fn workers_racing_for_one_submission_get_it_once() {
    let postgres = support::Postgres::start();
    for store in [None, Some(postgres.url.as_str())] {
        let nodes = tempfile::tempdir().expect("tempdir");
        let data = nodes.path().join("api");
        let admin = token_in(&data, store, "admin", None, "ops");
        // An API alone: no worker of its own takes the submission.
        let api = Server::spawn(&["serve", "--role", "api"], &data, store).await;
        let added = add_io_course(&api, &admin);
        assert!(added.status.success(), "{added:?}");
        let (status, body) = submit(&api, &admin, "erin", "01-correct", None).await;
        assert_eq!(status, 202, "{body}");
        let url = store.map_or_else(
            || format!("sqlite://{}", data.join("agh.sqlite").display()),
            str::to_string,
        );
        let mut racers = Vec::new();
        for i in 0..16 {
            let store = agh::service::store::Store::connect(&url)
                .await
                .expect("store");
            racers.push(tokio::spawn(async move {
                store.claim(&format!("racer-{i}")).await.expect("claim")
            }));
        }
        let mut won = Vec::new();
        for racer in racers {
            if let Some(claim) = racer.await.expect("racer") {
                won.push(claim);
            }
        }
        assert_eq!(
            won.len(),
            1,
            "{url}: {} claims of one submission",
            won.len()
        );
        assert_eq!(won[0].attempts, 1);
        let row = state(&api, &admin, body["id"].as_str().expect("id")).await;
        assert_eq!(row["state"], "running", "{row}");
        assert_eq!(row["attempts"], 1, "{row}");
        drop(api);
    }
}

/// One callback as the receiver got it.
#[derive(Debug, Clone)]
struct Call {
    path: String,
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

/// A callback receiver on loopback that refuses its first call (500) and
/// accepts the rest, keeping each.
struct Receiver {
    url: String,
    calls: std::sync::Arc<std::sync::Mutex<Vec<Call>>>,
}

impl Receiver {
    async fn start() -> Self {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = calls.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let mut reader = tokio::io::BufReader::new(stream);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).await.is_err() {
                    continue;
                }
                let mut headers = std::collections::HashMap::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.trim_end().split_once(':') {
                        headers.insert(name.to_ascii_lowercase(), value.trim().to_string());
                    }
                }
                let length = headers
                    .get("content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).await.is_err() {
                    continue;
                }
                let header = |name: &str| headers.get(name).cloned().unwrap_or_default();
                let call = Call {
                    path: request_line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_string(),
                    id: header("webhook-id"),
                    timestamp: header("webhook-timestamp"),
                    signature: header("webhook-signature"),
                    body,
                };
                let first = {
                    let mut calls = kept.lock().expect("lock");
                    calls.push(call);
                    calls.len() == 1
                };
                let status = if first {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                let _ = reader
                    .get_mut()
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        Self { url, calls }
    }

    /// Waits (up to a minute) for `n` calls and returns them.
    async fn calls(&self, n: usize) -> Vec<Call> {
        let started = Instant::now();
        loop {
            let calls = self.calls.lock().expect("lock").clone();
            if calls.len() >= n {
                return calls;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "only {} callbacks: {calls:?}",
                calls.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The Standard Webhooks signature of `call` under `secret`, computed
/// here from the specification, not by agh.
fn expected_signature(secret: &str, call: &Call) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine
        .decode(secret.trim_start_matches("whsec_"))
        .expect("base64 secret");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{}.{}.", call.id, call.timestamp).as_bytes());
    mac.update(&call.body);
    format!("v1,{}", engine.encode(mac.finalize().into_bytes()))
}
