//! Assets from a real S3-compatible server (ministack, installed by
//! scripts/setup): first fetch, revalidation after an upstream change, an
//! outage served from the cache, a cold cache during an outage, a 500 MB
//! asset streamed into a runsc sandbox, and path attacks.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use agh_tests::graders;
use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};

use crate::support;

/// A ministack server on a free loopback port, stopped on drop.
struct Ministack {
    child: Option<Child>,
    port: u16,
}

impl Ministack {
    fn start(log_dir: &Path) -> Self {
        let binary = std::env::var_os("AGH_MINISTACK").map_or_else(
            || PathBuf::from("/opt/agh/ministack-venv/bin/ministack"),
            PathBuf::from,
        );
        assert!(
            binary.exists(),
            "{} is missing: run `sudo scripts/setup`",
            binary.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("addr")
            .port();
        let log = std::fs::File::create(log_dir.join("ministack.log")).expect("log file");
        let child = Command::new(binary)
            .env("GATEWAY_PORT", port.to_string())
            .env("BIND_HOST", "127.0.0.1")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starting ministack");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "ministack did not listen on {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Self {
            child: Some(child),
            port,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .http_client(agh::assets::s3_http_client())
            .endpoint_url(self.endpoint())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

impl Drop for Ministack {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn put(client: &aws_sdk_s3::Client, key: &str, body: ByteStream) {
    client
        .put_object()
        .bucket("course")
        .key(key)
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

/// Runs agh with the standard AWS environment pointing at `endpoint`.
fn agh(endpoint: &str, cache: &Path, args: &[&str]) -> Output {
    Command::new(support::agh_binary())
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AGH_CACHE_DIR", cache)
        .args(args)
        .output()
        .expect("running agh")
}

fn json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "agh failed ({:?}):\n{}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
            .chars()
            .take(3000)
            .collect::<String>()
    );
    serde_json::from_slice(&output.stdout).expect("agh printed JSON")
}

fn write_config(dir: &Path, prefix: &str, extra: &str) -> String {
    let path = dir.join("agh.toml");
    let text = format!(
        "images = [\"agh/*\"]\n{extra}\n[sources.course]\ns3 = {{ bucket = \"course\", prefix = \"{prefix}\", path_style = true }}\n"
    );
    std::fs::write(&path, text).expect("config");
    path.to_str().expect("utf-8").to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_course_from_s3_revalidates_and_survives_an_outage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Ministack::start(dir.path());
    let client = server.client().await;
    client
        .create_bucket()
        .bucket("course")
        .send()
        .await
        .expect("bucket");
    let root = support::repo_root().join("examples/python-course");
    let tests = std::fs::read(root.join("assets/tests/test_solution.py")).expect("tests");
    put(
        &client,
        "python/tests/test_solution.py",
        ByteStream::from(tests.clone()),
    )
    .await;
    let config = write_config(dir.path(), "python/", "");
    let cache = dir.path().join("cache");
    let endpoint = server.endpoint();
    let plugin = graders::PYTHON_UNITTEST;
    let submissions = root.join("submissions");
    let submissions = submissions.to_str().expect("utf-8");

    // First fetch: the whole course grades as it does from the local folder.
    let results = json(&agh(
        &endpoint,
        &cache,
        &[
            "grade",
            "--plugin",
            plugin,
            "--config",
            &config,
            "--submissions",
            submissions,
            "--json",
        ],
    ));
    let expected: toml::Value =
        toml::from_str(&std::fs::read_to_string(root.join("expected.toml")).expect("expected"))
            .expect("toml");
    for result in results.as_array().expect("array") {
        let name = result["submission"].as_str().expect("name");
        assert_eq!(
            result["score"].as_f64(),
            expected["scores"][name].as_float(),
            "{name}: {result}"
        );
        assert_eq!(result["provenance"]["assets"][0]["stale"], false);
    }
    let resolve = [
        "plan",
        "--plugin",
        plugin,
        "--config",
        &config,
        "--resolve",
        "--json",
    ];
    let first = json(&agh(&endpoint, &cache, &resolve));
    let first_digest = first["resolved_assets"][0]["sha256"].clone();
    assert_eq!(
        first["resolved_assets"][0]["files"][0]["sha256"],
        hex(&Sha256::digest(&tests))
    );

    // Changed upstream: the new ETag is seen and the new bytes fetched.
    let mut revised = tests.clone();
    revised.extend_from_slice(b"\n# revised upstream\n");
    put(
        &client,
        "python/tests/test_solution.py",
        ByteStream::from(revised.clone()),
    )
    .await;
    let second = json(&agh(&endpoint, &cache, &resolve));
    assert_ne!(
        second["resolved_assets"][0]["sha256"], first_digest,
        "the upstream change was not fetched"
    );
    assert_eq!(
        second["resolved_assets"][0]["files"][0]["sha256"],
        hex(&Sha256::digest(&revised))
    );

    // Storage down: the cached copy serves, marked stale, and grading goes on.
    server.stop();
    let stale = json(&agh(&endpoint, &cache, &resolve));
    assert_eq!(stale["resolved_assets"][0]["stale"], true);
    assert_eq!(
        stale["resolved_assets"][0]["sha256"],
        second["resolved_assets"][0]["sha256"]
    );
    let correct = root.join("submissions/01-correct");
    let one = [
        "grade",
        "--plugin",
        plugin,
        "--config",
        &config,
        "--json",
        "--submission",
        correct.to_str().expect("utf-8"),
    ];
    let graded = json(&agh(&endpoint, &cache, &one));
    assert_eq!(graded[0]["score"], 6.0);
    assert_eq!(graded[0]["provenance"]["assets"][0]["stale"], true);

    // Storage down and nothing cached: an infra error, never a score.
    let cold = agh(&endpoint, &dir.path().join("cold-cache"), &one);
    assert_eq!(
        cold.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&cold.stderr)
    );
    let results: serde_json::Value = serde_json::from_slice(&cold.stdout).expect("JSON");
    assert_eq!(results[0]["status"], "infra-error", "{results}");
    assert!(
        results[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("unavailable"),
        "{results}"
    );
    assert_eq!(results[0]["score"], 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_asset_streams_into_runsc_read_only_and_paths_are_refused() {
    let megabytes: usize = std::env::var("AGH_TEST_BIG_ASSET_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Ministack::start(dir.path());
    let client = server.client().await;
    client
        .create_bucket()
        .bucket("course")
        .send()
        .await
        .expect("bucket");
    let big = dir.path().join("big.bin");
    let mut hasher = Sha256::new();
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&big).expect("big file"));
        let block: Vec<u8> = (0..1024 * 1024)
            .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        for i in 0..megabytes {
            let mut chunk = block.clone();
            chunk[..8].copy_from_slice(&(i as u64).to_le_bytes());
            hasher.update(&chunk);
            file.write_all(&chunk).expect("write");
        }
    }
    let digest = hex(&hasher.finalize());
    put(
        &client,
        "data/big.bin",
        ByteStream::from_path(&big).await.expect("stream"),
    )
    .await;
    put(
        &client,
        "data/secret.txt",
        ByteStream::from_static(b"only the grader may read this\n"),
    )
    .await;
    put(
        &client,
        "data/folder/ok.txt",
        ByteStream::from_static(b"ok\n"),
    )
    .await;
    put(
        &client,
        "data/folder/../../escape.txt",
        ByteStream::from_static(b"zip-slip\n"),
    )
    .await;

    let submission = dir.path().join("submissions/probe");
    std::fs::create_dir_all(&submission).expect("mkdir");
    std::fs::write(submission.join("mode.txt"), "probe-asset").expect("mode");
    let cache = dir.path().join("cache");
    let endpoint = server.endpoint();
    let submission = submission.to_str().expect("utf-8");
    let probe = |asset: &str, script: &str| {
        std::fs::write(Path::new(submission).join("probe.sh"), script).expect("probe");
        let config = write_config(
            dir.path(),
            "",
            &format!("[settings]\nasset = \"{asset}\"\n"),
        );
        let output = agh(
            &endpoint,
            &cache,
            &[
                "grade",
                "--plugin",
                graders::MISBEHAVING,
                "--config",
                &config,
                "--json",
                "--submission",
                submission,
            ],
        );
        let results = json(&output);
        assert_eq!(results[0]["status"], "graded", "{results}");
        results[0]["tests"][0]["output"]
            .as_str()
            .expect("output")
            .to_string()
    };

    // 500 MB from S3, placed root-owned and read-only: the student reads the
    // exact bytes and can neither change nor delete them.
    let placed = probe(
        "course:data/big.bin=/assets/big.bin",
        "T=/assets/big.bin\n\
         sha256sum $T | cut -d' ' -f1\n\
         (echo x >> $T) 2>/dev/null && echo writable || echo not-writable\n\
         rm -f $T 2>/dev/null; [ -e $T ] && echo kept || echo deleted\n\
         id -u\n",
    );
    assert_eq!(
        placed.lines().collect::<Vec<_>>(),
        [digest.as_str(), "not-writable", "kept", "1000"],
        "{placed}"
    );
    // A grader-only asset is unreadable to the student.
    let hidden = probe(
        "course:data/secret.txt=/grader/secret.txt",
        "cat /grader/secret.txt 2>/dev/null || echo denied\n",
    );
    assert_eq!(hidden.trim(), "denied", "{hidden}");

    // Path attacks, refused before any sandbox starts, each with its reason.
    for (asset, reason) in [
        ("course:../outside=/assets/x", "without '..'"),
        ("course:data/big.bin=/etc/big.bin", "outside the places"),
        (
            "elsewhere:data/big.bin=/assets/x",
            "\"elsewhere\" is not granted",
        ),
        ("course:data/folder=/assets/folder", "not a safe path"),
    ] {
        let config = write_config(
            dir.path(),
            "",
            &format!("[settings]\nasset = \"{asset}\"\n"),
        );
        let output = agh(
            &endpoint,
            &cache,
            &[
                "plan",
                "--plugin",
                graders::MISBEHAVING,
                "--config",
                &config,
                "--resolve",
            ],
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{asset}: {stderr}");
        assert!(
            stderr.contains(reason),
            "{asset}: expected {reason:?} in {stderr}"
        );
    }
}
