//! The service benchmark's load generator (`scripts/bench-service`): C
//! clients, each uploading its next submission of `SUBS`, polling its state
//! every second until it is done and reading its result, then the next,
//! until every submission is graded. Prints one JSON line: wall time, upload, status
//! and upload-to-result latencies, and what came back.
//!
//! Usage: agh-load URL TOKEN COURSE SUBS CLIENTS

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a client asks for its submission's state, as an LMS would.
const POLL_MS: u64 = 1_000;

#[derive(Default)]
struct Figures {
    upload_ms: Vec<f64>,
    status_ms: Vec<f64>,
    result_ms: Vec<f64>,
    ids: Vec<String>,
    statuses: BTreeMap<String, usize>,
}

struct Load {
    http: reqwest::Client,
    url: String,
    token: String,
    course: String,
    bodies: Vec<(String, Vec<u8>)>,
    next: AtomicUsize,
    figures: Mutex<Figures>,
}

fn tar_of(dir: &std::path::Path) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_dir_all(".", dir)
        .expect("a submission folder to tar");
    tar.into_inner().expect("tar")
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

impl Load {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// One client: submissions until there are none left.
    async fn client(self: Arc<Self>) {
        loop {
            let i = self.next.fetch_add(1, Ordering::SeqCst);
            let Some((student, body)) = self.bodies.get(i) else {
                return;
            };
            let started = Instant::now();
            let response = self
                .http
                .post(format!(
                    "{}/v1/courses/{}/submissions?student={student}",
                    self.url, self.course
                ))
                .bearer_auth(&self.token)
                .header("content-type", "application/x-tar")
                .body(body.clone())
                .send()
                .await
                .expect("upload");
            let upload_ms = millis(started);
            assert_eq!(
                response.status(),
                202,
                "upload of {student}: {:?}",
                response.text().await
            );
            let sub: serde_json::Value = response.json().await.expect("upload answer");
            let id = sub["id"].as_str().expect("an id").to_string();
            let mut status_ms = Vec::new();
            loop {
                let asked = Instant::now();
                let state: serde_json::Value = self
                    .get(&format!("/v1/submissions/{id}"))
                    .await
                    .json()
                    .await
                    .expect("state");
                status_ms.push(millis(asked));
                if state["state"] == "done" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
            }
            let response = self.get(&format!("/v1/submissions/{id}/result")).await;
            assert_eq!(response.status(), 200, "result of {id}");
            let result: serde_json::Value = response.json().await.expect("result");
            let result_ms = millis(started);
            let status = result["status"].as_str().unwrap_or("?").to_string();
            let mut figures = self.figures.lock().expect("figures");
            figures.upload_ms.push(upload_ms);
            figures.status_ms.extend(status_ms);
            figures.result_ms.push(result_ms);
            figures.ids.push(id);
            *figures.statuses.entry(status).or_default() += 1;
        }
    }
}

fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return 0.0;
    }
    // Nearest rank: the smallest value with at least q of them at or below it.
    let rank = (q * values.len() as f64).ceil().max(1.0) as usize;
    values[rank.min(values.len()) - 1]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, token, course, subs, clients] = args.as_slice() else {
        eprintln!("usage: agh-load URL TOKEN COURSE SUBS CLIENTS");
        std::process::exit(2);
    };
    let clients: usize = clients.parse().expect("CLIENTS is a number");
    let mut names: Vec<PathBuf> = std::fs::read_dir(subs)
        .expect("SUBS is a folder")
        .map(|e| e.expect("an entry").path())
        .collect();
    names.sort();
    let bodies = names
        .iter()
        .map(|dir| {
            let name = dir
                .file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            (name, tar_of(dir))
        })
        .collect();
    let load = Arc::new(Load {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(clients)
            .build()
            .expect("an HTTP client"),
        url: url.clone(),
        token: token.clone(),
        course: course.clone(),
        bodies,
        next: AtomicUsize::new(0),
        figures: Mutex::default(),
    });
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(load.clone().client()))
        .collect();
    for task in tasks {
        task.await.expect("a client");
    }
    let wall_ms = millis(started);
    let mut figures = std::mem::take(&mut *load.figures.lock().expect("figures"));
    let unique: HashSet<&String> = figures.ids.iter().collect();
    let report = serde_json::json!({
        "submissions": load.bodies.len(),
        "results": figures.ids.len(),
        "distinct_ids": unique.len(),
        "statuses": figures.statuses,
        "wall_ms": wall_ms,
        "upload_p50_ms": quantile(&mut figures.upload_ms, 0.50),
        "upload_p99_ms": quantile(&mut figures.upload_ms, 0.99),
        "status_p50_ms": quantile(&mut figures.status_ms, 0.50),
        "status_p99_ms": quantile(&mut figures.status_ms, 0.99),
        "result_p50_ms": quantile(&mut figures.result_ms, 0.50),
        "result_p95_ms": quantile(&mut figures.result_ms, 0.95),
    });
    println!("{report}");
}
