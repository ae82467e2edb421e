//! `agh probe`: a suite run against a live deployment over HTTP, as its
//! operator or a reviewer would run it. `support_*` probes check what
//! must be there (health with the gVisor proof, metrics, the API's
//! document); `deny_*` probes check that the service refuses what it must
//! (no token, a forged token, a non-archive, an oversized upload, a
//! hostile student id, a callback off the allow-list, a reused
//! idempotency key, archives that escape their folder or carry links);
//! `allow_*` probes are the contrast: a plain upload is taken, retried
//! under its key is the same submission, and gets its one result.
//!
//! Probes that upload need `--course` and a token that may submit to it;
//! they upload as the student `agh-probe`.
//!
//! With `--sandbox` (and a token of an admin or of the course
//! [`SANDBOX_COURSE`]'s staff) the sandbox itself is probed: that course is
//! registered with agh's own probe grader (`builtin:sandbox-probe`), two
//! submissions go through the public API as a student's would, and each
//! of the second's tests is a finding: host environment leakage, reading
//! another submission (a token in the first one's archive, on the
//! service's disk) or the grader's hidden files, network, DNS, writing
//! outside the workspace, a fork bomb, a memory bomb, an output flood, a
//! program that ignores SIGTERM, and the contrast (a program runs and may
//! write its workspace).

use std::time::{Duration, Instant};

use serde_json::Value;

/// The student id probe uploads are made for.
pub const PROBE_STUDENT: &str = "agh-probe";

/// The course `--sandbox` registers for its probe grader.
pub const SANDBOX_COURSE: &str = "agh-probe-sandbox";

/// That course's policy: gVisor, and the probe grader's small image.
const SANDBOX_POLICY: &str = "runtime = \"runsc\"\nimages = [\"agh/busybox:1\"]\n";

/// One probe's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    /// `deny_*`, `allow_*` or `support_*`.
    pub name: String,
    /// Whether the service did what it must.
    pub ok: bool,
    /// What was seen.
    pub detail: String,
}

/// What to probe.
#[derive(Debug, Clone)]
pub struct Target {
    /// The service's base URL.
    pub url: String,
    /// A bearer token.
    pub token: String,
    /// A course the token may submit to, for the probes that upload.
    pub course: Option<String>,
    /// Whether to probe the sandbox too, through [`SANDBOX_COURSE`].
    pub sandbox: bool,
}

struct Probe<'a> {
    target: &'a Target,
    client: reqwest::Client,
    findings: Vec<Finding>,
}

/// Runs every probe the target allows.
pub async fn run(target: &Target) -> Vec<Finding> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(150))
        .build()
        .unwrap_or_default();
    let mut probe = Probe {
        target,
        client,
        findings: Vec::new(),
    };
    probe.support().await;
    probe.deny_without_course().await;
    if let Some(course) = &target.course {
        probe.with_course(course).await;
    }
    if target.sandbox {
        probe.sandbox().await;
    }
    probe.findings
}

/// A tar holding `entries` (path, bytes) and, when `link` is set, a
/// symbolic link of that name to `/etc/passwd`.
fn tar_of(entries: &[(&str, &[u8])], link: Option<&str>) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        // A raw name: `append_data` would refuse `..`, which is the point.
        let name = header.as_old_mut().name.as_mut();
        let raw = path.as_bytes();
        name[..raw.len()].copy_from_slice(raw);
        header.set_cksum();
        let _ = builder.append(&header, *bytes);
    }
    if let Some(link) = link {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        let _ = builder.append_link(&mut header, link, "/etc/passwd");
    }
    builder.into_inner().unwrap_or_default()
}

impl Probe<'_> {
    fn record(&mut self, name: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.findings.push(Finding {
            name: name.into(),
            ok,
            detail: detail.into(),
        });
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.target.url.trim_end_matches('/'))
    }

    async fn get(&self, path: &str) -> Result<(u16, String), String> {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(&self.target.token)
            .send()
            .await
            .map_err(|e| format!("cannot reach {}: {e}", self.url(path)))?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.unwrap_or_default()))
    }

    /// Uploads `body` as `content_type` to `course`, with the probe's
    /// token unless `token` says otherwise.
    async fn upload(
        &self,
        course: &str,
        query: &str,
        body: Vec<u8>,
        content_type: &str,
        token: Option<&str>,
        key: Option<&str>,
    ) -> Result<(u16, Value), String> {
        let mut request = self
            .client
            .post(self.url(&format!("/v1/courses/{course}/submissions?{query}")))
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = token.or(Some(&self.target.token)).filter(|t| !t.is_empty()) {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or_default()))
    }

    /// Records whether `got` is `expected`.
    fn expect(&mut self, name: &str, got: Result<(u16, Value), String>, expected: u16) {
        match got {
            Ok((status, _)) if status == expected => {
                self.record(name, true, format!("{status} as expected"));
            }
            Ok((status, body)) => self.record(
                name,
                false,
                format!("answered {status}, not {expected}: {body}"),
            ),
            Err(why) => self.record(name, false, why),
        }
    }

    async fn support(&mut self) {
        let live = self.get("/livez").await;
        self.record(
            "support_livez",
            matches!(live, Ok((200, _))),
            format!("{live:?}"),
        );
        match self.get("/health/").await {
            Ok((status, body)) => {
                let health: Value = serde_json::from_str(&body).unwrap_or_default();
                let proved = health["checks"].as_array().is_some_and(|checks| {
                    checks.iter().any(|c| {
                        c["ok"] == true && c["name"].as_str().is_some_and(|n| n.contains("gVisor"))
                    })
                });
                let ok = status == 200 && health["ok"] == true && proved;
                let detail = if ok {
                    "healthy, the sandbox proved to be gVisor".to_string()
                } else if status == 200 && !proved {
                    "healthy, but this process proves no sandbox (an API alone?): probe a worker's /health/ too".to_string()
                } else {
                    format!("{status}: {body}")
                };
                self.record("support_health_proves_gvisor", ok, detail);
            }
            Err(why) => self.record("support_health_proves_gvisor", false, why),
        }
        let metrics = self.get("/metrics").await;
        let ok = matches!(&metrics, Ok((200, text)) if text.contains("agh_queue_depth"));
        self.record(
            "support_metrics",
            ok,
            if ok {
                "queue metrics exported".into()
            } else {
                format!("{metrics:?}")
            },
        );
        let document = self.get("/v1/openapi.json").await;
        let ok = matches!(&document, Ok((200, text)) if serde_json::from_str::<Value>(text).is_ok_and(|d| d["openapi"] == "3.1.0"));
        self.record(
            "support_openapi",
            ok,
            if ok {
                "OpenAPI 3.1 document served".into()
            } else {
                format!("{document:?}")
            },
        );
    }

    async fn deny_without_course(&mut self) {
        let course = self
            .target
            .course
            .clone()
            .unwrap_or_else(|| "agh-probe".into());
        let body = tar_of(&[("hello.txt", b"hello\n")], None);
        let query = format!("student={PROBE_STUDENT}");
        let got = self
            .upload(
                &course,
                &query,
                body.clone(),
                "application/x-tar",
                Some(""),
                None,
            )
            .await;
        self.expect("deny_upload_without_token", got, 401);
        let forged = format!("agh_{}", "0".repeat(64));
        let got = self
            .upload(
                &course,
                &query,
                body,
                "application/x-tar",
                Some(&forged),
                None,
            )
            .await;
        self.expect("deny_forged_token", got, 401);
    }

    async fn with_course(&mut self, course: &str) {
        let query = format!("student={PROBE_STUDENT}");
        let plain = tar_of(&[("hello.txt", b"hello\n")], None);
        let got = self
            .upload(course, &query, b"hello".to_vec(), "text/plain", None, None)
            .await;
        self.expect("deny_non_archive", got, 415);
        let got = self
            .upload(
                course,
                "student=..",
                plain.clone(),
                "application/x-tar",
                None,
                None,
            )
            .await;
        self.expect("deny_hostile_student_id", got, 400);
        let got = self
            .upload(
                course,
                &format!("{query}&callback_url=http://192.0.2.1/agh"),
                plain.clone(),
                "application/x-tar",
                None,
                None,
            )
            .await;
        self.expect("deny_callback_off_the_allow_list", got, 400);
        let got = self
            .upload(
                course,
                &query,
                vec![0; super::api::MAX_UPLOAD_BYTES + 1],
                "application/x-tar",
                None,
                None,
            )
            .await;
        self.expect("deny_oversized_upload", got, 413);

        let key = super::new_id("probe");
        let first = self
            .upload(
                course,
                &query,
                plain.clone(),
                "application/x-tar",
                None,
                Some(&key),
            )
            .await;
        let again = self
            .upload(course, &query, plain, "application/x-tar", None, Some(&key))
            .await;
        let id = match (&first, &again) {
            (Ok((202, a)), Ok((202, b))) if a["id"] == b["id"] && a["id"].is_string() => {
                self.record("allow_upload_retried_under_its_key", true, "one submission");
                a["id"].as_str().map(str::to_string)
            }
            _ => {
                self.record(
                    "allow_upload_retried_under_its_key",
                    false,
                    format!("{first:?} then {again:?}"),
                );
                None
            }
        };
        let other = tar_of(&[("other.txt", b"other\n")], None);
        let got = self
            .upload(course, &query, other, "application/x-tar", None, Some(&key))
            .await;
        self.expect("deny_idempotency_key_reused_for_another_upload", got, 422);
        if let Some(id) = id {
            let result = self.result(&id).await;
            let ok = result.as_ref().is_ok_and(|r| r["status"] != "infra-error");
            self.record(
                "allow_upload_gets_its_result",
                ok,
                match result {
                    Ok(r) => format!("{} {}/{}", r["status"], r["score"], r["max_score"]),
                    Err(why) => why,
                },
            );
        }
        for (name, archive) in [
            (
                "deny_archive_escaping_its_folder",
                tar_of(&[("../escaped.txt", b"x")], None),
            ),
            ("deny_archive_with_a_link", tar_of(&[], Some("passwd"))),
        ] {
            let uploaded = self
                .upload(course, &query, archive, "application/x-tar", None, None)
                .await;
            let Ok((202, body)) = &uploaded else {
                self.record(name, false, format!("{uploaded:?}"));
                continue;
            };
            let result = match body["id"].as_str() {
                Some(id) => self.result(id).await,
                None => Err("no id".into()),
            };
            let ok = result
                .as_ref()
                .is_ok_and(|r| r["status"] == "invalid-submission");
            self.record(
                name,
                ok,
                match result {
                    Ok(r) => format!(
                        "{}: {}",
                        r["status"],
                        r["error"].as_str().unwrap_or_default()
                    ),
                    Err(why) => why,
                },
            );
        }
    }

    /// Registers [`SANDBOX_COURSE`] with the probe grader, uploads a
    /// submission carrying a random token, then one that looks for it, and
    /// records each test of the second as a finding.
    async fn sandbox(&mut self) {
        let form = reqwest::multipart::Form::new()
            .text("name", SANDBOX_COURSE)
            .text("builtin", "sandbox-probe")
            .text("config", SANDBOX_POLICY);
        let registered = self
            .client
            .post(self.url("/v1/courses"))
            .bearer_auth(&self.target.token)
            .multipart(form)
            .send()
            .await;
        match registered {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                let status = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                let hint = if status == 403 {
                    format!(" (--sandbox needs an admin token, or staff of {SANDBOX_COURSE})")
                } else {
                    String::new()
                };
                return self.record(
                    "support_sandbox_probe_course",
                    false,
                    format!("registering {SANDBOX_COURSE}: {status} {body}{hint}"),
                );
            }
            Err(e) => return self.record("support_sandbox_probe_course", false, e.to_string()),
        }
        let token = super::new_id("agh-probe-token");
        let (half, rest) = token.split_at(token.len() / 2);
        let first = tar_of(&[("token.txt", token.as_bytes())], None);
        let halves = format!("{half}\n{rest}\n");
        let second = tar_of(&[("other.txt", halves.as_bytes())], None);
        let mut last = None;
        for archive in [first, second] {
            let query = format!("student={PROBE_STUDENT}");
            let graded = match self
                .upload(
                    SANDBOX_COURSE,
                    &query,
                    archive,
                    "application/x-tar",
                    None,
                    None,
                )
                .await
            {
                Ok((202, body)) => match body["id"].as_str() {
                    Some(id) => self.result(id).await,
                    None => Err(format!("no id in {body}")),
                },
                other => Err(format!("the upload: {other:?}")),
            };
            match graded {
                Ok(result) if result["status"] == "graded" => last = Some(result),
                Ok(result) => {
                    return self.record(
                        "support_sandbox_probe_graded",
                        false,
                        format!("{}: {}", result["status"], result["error"]),
                    );
                }
                Err(why) => return self.record("support_sandbox_probe_graded", false, why),
            }
        }
        let tests = last
            .as_ref()
            .and_then(|r| r["tests"].as_array())
            .cloned()
            .unwrap_or_default();
        self.record(
            "support_sandbox_probe_graded",
            !tests.is_empty(),
            format!("{} sandbox probes graded", tests.len()),
        );
        for test in tests {
            let name = test["name"].as_str().unwrap_or("unnamed").to_string();
            let held = test["score"].as_f64() == test["max_score"].as_f64()
                && test["max_score"].as_f64().is_some_and(|m| m > 0.0);
            let detail = test["output"]
                .as_str()
                .unwrap_or_default()
                .trim()
                .to_string();
            self.record(name, held, detail);
        }
    }

    /// The result of `id`, waiting up to two minutes.
    async fn result(&self, id: &str) -> Result<Value, String> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(120) {
            let (status, body) = self
                .get(&format!("/v1/submissions/{id}/result?wait=20s"))
                .await?;
            match status {
                200 => return serde_json::from_str(&body).map_err(|e| e.to_string()),
                202 => {}
                other => return Err(format!("{other}: {body}")),
            }
        }
        Err(format!("no result for {id} in two minutes"))
    }
}
