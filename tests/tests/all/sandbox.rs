//! The sandbox against real runsc: every execution case of ADVERSARIAL.md,
//! and the mechanisms behind the verdicts.

use std::time::Duration;

use agh::report::Verdict;
use agh::sandbox::{
    Command, EntrySource, FileEntry, Limits, MIB, Owner, Runtime, SandboxError, SandboxSpec, User,
};
use futures_util::StreamExt;
use serde::Deserialize;
use sha2::Digest;

use crate::support::{self, Fixture, IMAGE};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    argv: Vec<String>,
    expect: String,
    wall_time: Option<String>,
    cpu_time: Option<String>,
    memory: Option<String>,
    processes: Option<u32>,
    tmpfs: Option<String>,
    file_size: Option<String>,
    output: Option<String>,
    signal: Option<String>,
    limit: Option<String>,
    exit_code: Option<i64>,
    stdout_bytes: Option<usize>,
    max_wall_seconds: Option<u64>,
    #[serde(default)]
    stdout: Vec<String>,
    #[serde(default)]
    stdout_lacks: Vec<String>,
    then: Option<Vec<String>>,
}

fn bytes(text: &str) -> u64 {
    text.parse::<bytesize::ByteSize>()
        .unwrap_or_else(|e| panic!("size {text:?}: {e}"))
        .as_u64()
}

impl Case {
    fn limits(&self) -> Limits {
        let mut limits = Limits::default();
        if let Some(w) = &self.wall_time {
            limits.wall_time = humantime::parse_duration(w).expect("wall_time");
        }
        if let Some(c) = &self.cpu_time {
            limits.cpu_time = humantime::parse_duration(c).expect("cpu_time");
        }
        if let Some(m) = &self.memory {
            limits.memory_bytes = bytes(m);
        }
        if let Some(p) = self.processes {
            limits.processes = p;
        }
        if let Some(t) = &self.tmpfs {
            limits.tmpfs_bytes = bytes(t);
        }
        if let Some(f) = &self.file_size {
            limits.file_size_bytes = bytes(f);
        }
        if let Some(o) = &self.output {
            limits.output_bytes = bytes(o);
        }
        limits
    }

    /// Runs the case in its own sandbox; returns the problems found.
    async fn check(&self, docker: &agh::sandbox::Docker, batch: &str) -> Vec<String> {
        let spec = SandboxSpec {
            limits: self.limits(),
            ..SandboxSpec::new(IMAGE)
        };
        let sandbox = support::sandbox(docker, spec, batch).await;
        let mut problems = Vec::new();
        if let Err(err) = sandbox
            .write_file(
                "/grader/expected",
                b"hidden answer\n".to_vec(),
                Owner::Grader,
                true,
            )
            .await
        {
            problems.push(format!("placing /grader/expected: {err}"));
        }
        let outcome = match sandbox.run(&Command::new(self.argv.clone())).await {
            Ok(outcome) => outcome,
            Err(err) => {
                sandbox.teardown().await;
                return vec![format!("run failed: {err}")];
            }
        };
        let verdict = Verdict::of_outcome(&outcome);
        let got = verdict.map_or("ok".to_string(), |v| {
            serde_json::to_value(v)
                .expect("verdict")
                .as_str()
                .expect("str")
                .to_string()
        });
        let stdout = String::from_utf8_lossy(&outcome.stdout);
        let mut expect = |ok: bool, what: String| {
            if !ok {
                problems.push(what);
            }
        };
        expect(
            got == self.expect,
            format!("verdict: expected {}, got {got}", self.expect),
        );
        if let Some(signal) = &self.signal {
            expect(
                outcome.signal.as_ref() == Some(signal),
                format!("signal: expected {signal}, got {:?}", outcome.signal),
            );
        }
        if let Some(limit) = &self.limit {
            let got = outcome.limit.map(|l| l.name());
            expect(
                got == Some(limit.as_str()),
                format!("limit: expected {limit}, got {got:?}"),
            );
        }
        if let Some(code) = self.exit_code {
            expect(
                outcome.exit_code == Some(code),
                format!("exit code: expected {code}, got {:?}", outcome.exit_code),
            );
        }
        if let Some(n) = self.stdout_bytes {
            expect(
                outcome.stdout.len() == n && outcome.stdout_truncated,
                format!(
                    "stdout: expected exactly {n} bytes, truncated; got {} bytes, truncated {}",
                    outcome.stdout.len(),
                    outcome.stdout_truncated
                ),
            );
        }
        if let Some(max) = self.max_wall_seconds {
            expect(
                outcome.wall_time < Duration::from_secs(max),
                format!("wall time {:?} over {max}s", outcome.wall_time),
            );
        }
        for text in &self.stdout {
            expect(
                stdout.contains(text.as_str()),
                format!("stdout lacks {text:?}; stdout was {stdout:?}"),
            );
        }
        for text in &self.stdout_lacks {
            expect(
                !stdout.contains(text.as_str()),
                format!("stdout holds {text:?}; stdout was {stdout:?}"),
            );
        }
        if let Some(then) = &self.then {
            match sandbox.run(&Command::new(then.clone())).await {
                Ok(next) => expect(
                    next.exit_code == Some(0),
                    format!("follow-up {then:?} failed: {next:?}"),
                ),
                Err(err) => expect(false, format!("follow-up {then:?} could not run: {err}")),
            }
        }
        sandbox.teardown().await;
        problems
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_commands_reach_their_verdicts() {
    let path = support::repo_root().join("tests/cases/sandbox.toml");
    let text = std::fs::read_to_string(&path).expect("reading the case file");
    let cases: CaseFile = toml::from_str(&text).expect("parsing the case file");
    assert!(
        cases.case.len() >= 20,
        "the case file lost cases: {}",
        cases.case.len()
    );
    let docker = support::docker().await;
    let batch = support::batch_id("adversarial");
    let results: Vec<(String, Vec<String>)> = futures_util::stream::iter(&cases.case)
        .map(|case| {
            let docker = docker.clone();
            let batch = batch.clone();
            async move { (case.name.clone(), case.check(&docker, &batch).await) }
        })
        .buffer_unordered(3)
        .collect()
        .await;
    let failures: Vec<String> = results
        .into_iter()
        .filter(|(_, problems)| !problems.is_empty())
        .map(|(name, problems)| format!("{name}:\n    {}", problems.join("\n    ")))
        .collect();
    support::assert_no_leftovers(&docker, &batch).await;
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn container_runs_under_runsc_with_no_network_and_the_limits_asked() {
    let limits = Limits {
        memory_bytes: 200 * MIB,
        processes: 40,
        millicpus: 500,
        file_size_bytes: 3 * MIB,
        tmpfs_bytes: 20 * MIB,
        ..Limits::default()
    };
    let fixture = Fixture::new("mechanism", limits).await;
    let sandbox = &fixture.sandbox;
    let inspect = sandbox.inspect().await.expect("inspect");
    let host = inspect.host_config.expect("host config");
    assert_eq!(host.runtime.as_deref(), Some("runsc"));
    assert_eq!(host.network_mode.as_deref(), Some("none"));
    assert_eq!(host.readonly_rootfs, Some(true));
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
    assert_eq!(
        host.cap_add,
        Some(vec!["SETUID".into(), "SETGID".into(), "KILL".into()]),
        "the agent keeps only what it uses"
    );
    // agh's own seccomp profile: user namespaces refused, clone3 left to
    // gVisor (which answers ENOSYS, so glibc starts threads with clone).
    let security = host.security_opt.clone().unwrap_or_default();
    assert_eq!(security.len(), 2, "{security:?}");
    assert_eq!(security[0], "no-new-privileges");
    let profile = security[1]
        .strip_prefix("seccomp=")
        .expect("a seccomp profile");
    assert!(
        profile.contains("\"unshare\"")
            && profile.contains("268435456")
            && !profile.contains("clone3"),
        "{profile}"
    );
    assert_eq!(host.memory, Some(200 * 1024 * 1024));
    assert_eq!(
        host.memory_swap,
        Some(200 * 1024 * 1024),
        "swap must equal memory: no swap"
    );
    assert_eq!(host.pids_limit, Some(40 * 256 + 512));
    assert_eq!(host.nano_cpus, Some(500_000_000));
    let tmpfs = host.tmpfs.expect("tmpfs");
    for place in ["/work", "/assets", "/grader", "/tmp"] {
        assert!(
            tmpfs
                .get(place)
                .is_some_and(|o| o.contains("size=20971520")),
            "{place}: {tmpfs:?}"
        );
    }
    let ulimits = host.ulimits.expect("ulimits");
    let fsize = ulimits
        .iter()
        .find(|u| u.name.as_deref() == Some("fsize"))
        .expect("fsize ulimit");
    assert_eq!(
        fsize.hard,
        Some(20 * 1024 * 1024),
        "the container bound is the tmpfs size"
    );
    let blocks = sandbox
        .run(&Command::new(["sh", "-c", "ulimit -f"]))
        .await
        .expect("ulimit -f");
    assert_eq!(
        String::from_utf8_lossy(&blocks.stdout).trim(),
        (3 * 1024 * 1024 / 512).to_string(),
        "the command's own bound"
    );
    assert!(
        ulimits.iter().all(|u| u.name.as_deref() != Some("nproc")),
        "the process limit is the command's, set by the agent: {ulimits:?}"
    );
    let limit = sandbox
        .run(&Command::new(["sh", "-c", "ulimit -p"]))
        .await
        .expect("ulimit");
    assert_eq!(String::from_utf8_lossy(&limit.stdout).trim(), "40");
    let log = host.log_config.expect("log config");
    assert_eq!(
        log.typ.as_deref(),
        Some("none"),
        "the agent's stream is protocol, never logged"
    );

    // From inside: no capability, no new privileges, Docker's seccomp
    // filter, for both users; the kernel's log is not theirs to read.
    for user in [User::Student, User::Grader] {
        let status = sandbox
            .run(&Command {
                user,
                ..Command::new([
                    "grep",
                    "-E",
                    "^(CapPrm|CapEff|Seccomp):",
                    "/proc/self/status",
                ])
            })
            .await
            .expect("status");
        assert_eq!(
            String::from_utf8_lossy(&status.stdout),
            "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nSeccomp:\t2\n",
            "{user:?}"
        );
    }
    let dmesg = sandbox.run(&Command::new(["dmesg"])).await.expect("dmesg");
    assert_ne!(dmesg.exit_code, Some(0), "{dmesg:?}");
    let id = sandbox.run(&Command::new(["id", "-u"])).await.expect("id");
    assert_eq!(String::from_utf8_lossy(&id.stdout).trim(), "1000");
    let grader = sandbox
        .run(&Command {
            user: User::Grader,
            ..Command::new(["id", "-u"])
        })
        .await
        .expect("id");
    assert_eq!(String::from_utf8_lossy(&grader.stdout).trim(), "1001");
    fixture.finish().await;
}

#[tokio::test]
async fn nothing_a_command_starts_outlives_it() {
    let limits = Limits {
        wall_time: Duration::from_secs(2),
        ..Limits::default()
    };
    let fixture = Fixture::new("survivors", limits).await;
    let sandbox = &fixture.sandbox;
    // A daemon that outlives a command which exits at once.
    let detached = Command::new([
        "sh",
        "-c",
        "(sleep 3; echo late > /work/after-exit) >/dev/null 2>&1 & exit 0",
    ]);
    let outcome = sandbox.run(&detached).await.expect("run");
    assert_eq!(outcome.exit_code, Some(0));
    // A child of a command killed at its deadline.
    let overrun = Command::new([
        "sh",
        "-c",
        "(sleep 3; echo late > /work/after-deadline) & sleep 600",
    ]);
    let outcome = sandbox.run(&overrun).await.expect("run");
    assert!(outcome.timed_out, "{outcome:?}");
    // A command that kills itself, leaving its child behind with its
    // output detached, so the command ends at once.
    let orphan = Command::new([
        "sh",
        "-c",
        "(sleep 3; echo late > /work/after-orphan) >/dev/null 2>&1 & kill -9 $$",
    ]);
    let outcome = sandbox.run(&orphan).await.expect("run");
    assert_eq!(outcome.signal.as_deref(), Some("SIGKILL"), "{outcome:?}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    for file in [
        "/work/after-exit",
        "/work/after-deadline",
        "/work/after-orphan",
    ] {
        let read = sandbox.read_file(file, 100, User::Grader).await;
        assert!(
            matches!(read, Err(SandboxError::NotFound(_))),
            "{file}: {read:?}"
        );
    }
    fixture.finish().await;
}

/// A conversation ends soon after its judge does: a program that stopped
/// itself cannot hold it to its deadline (once a minute of wall clock), and
/// being stopped then is no time limit of its own.
#[tokio::test]
async fn a_conversation_ends_soon_after_its_judge() {
    let limits = Limits {
        wall_time: Duration::from_secs(20),
        ..Limits::default()
    };
    let fixture = Fixture::new("after-judge", limits).await;
    let sandbox = &fixture.sandbox;
    let judge = Command {
        user: User::Grader,
        ..Command::new(["sh", "-c", "echo verdict >&2"])
    };
    let program = Command::new(["sh", "-c", "kill -STOP $$"]);
    let started = std::time::Instant::now();
    let (judged, ran) = sandbox.converse(&judge, &program).await.expect("converse");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "the conversation took {took:?}"
    );
    assert_eq!(judged.stderr, b"verdict\n", "{judged:?}");
    assert!(!ran.timed_out, "{ran:?}");
    fixture.finish().await;
}

#[tokio::test]
async fn read_back_refuses_links_and_fifos_and_caps_size() {
    let fixture = Fixture::new("readback", Limits::default()).await;
    let sandbox = &fixture.sandbox;
    sandbox
        .write_file("/grader/secret", b"s3cret".to_vec(), Owner::Grader, true)
        .await
        .expect("write");
    let plant = Command::new([
        "sh",
        "-c",
        "ln -s /grader/secret /work/out && mkfifo /work/fifo && mkdir /work/d && ln -s /grader /work/d/up \
         && head -c 5000 /dev/zero > /work/big",
    ]);
    assert_eq!(sandbox.run(&plant).await.expect("plant").exit_code, Some(0));
    let link = sandbox.read_file("/work/out", 100, User::Grader).await;
    assert!(
        matches!(link, Err(SandboxError::SubmissionState(ref m)) if m.contains("symbolic link")),
        "{link:?}"
    );
    let through = sandbox
        .read_file("/work/d/up/secret", 100, User::Grader)
        .await;
    assert!(
        matches!(through, Err(SandboxError::SubmissionState(ref m)) if m.contains("symbolic link")),
        "{through:?}"
    );
    let started = std::time::Instant::now();
    let fifo = sandbox.read_file("/work/fifo", 100, User::Grader).await;
    assert!(
        matches!(fifo, Err(SandboxError::SubmissionState(ref m)) if m.contains("not a regular file")),
        "{fifo:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "reading a FIFO blocked"
    );
    let (bytes, truncated) = sandbox
        .read_file("/work/big", 1000, User::Grader)
        .await
        .expect("read");
    assert_eq!((bytes.len(), truncated), (1000, true));
    let (bytes, truncated) = sandbox
        .read_file("/grader/secret", 1000, User::Grader)
        .await
        .expect("read");
    assert_eq!((bytes.as_slice(), truncated), (b"s3cret".as_slice(), false));
    let denied = sandbox
        .read_file("/grader/secret", 1000, User::Student)
        .await;
    assert!(
        denied.is_err(),
        "the student read a grader-only file: {denied:?}"
    );
    fixture.finish().await;
}

#[tokio::test]
async fn placed_files_keep_owner_mode_and_bytes() {
    let fixture = Fixture::new("placement", Limits::default()).await;
    let sandbox = &fixture.sandbox;
    let host = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(host.path().join("sub")).expect("mkdir");
    std::fs::write(host.path().join("sub/test_a.py"), "assert True\n").expect("write");
    let big: Vec<u8> = (0..(20 * 1024 * 1024))
        .map(|i: u32| (i % 251) as u8)
        .collect();
    std::fs::write(host.path().join("big.bin"), &big).expect("write");
    sandbox
        .copy_dir_in(host.path(), "/assets/course", Owner::Root, true)
        .await
        .expect("copy assets");
    sandbox
        .copy_dir_in(host.path(), "/work", Owner::Student, false)
        .await
        .expect("copy submission");
    let entry = FileEntry {
        path: "answer.txt".into(),
        source: Some(EntrySource::Bytes(b"42\n".to_vec())),
        executable: false,
    };
    sandbox
        .copy_in("/grader/keys", vec![entry], Owner::Grader, true)
        .await
        .expect("copy grader file");

    let probe = Command::new([
        "python3",
        "-c",
        r#"
import hashlib, os
def check(what, f):
    try:
        f(); print(what, "allowed")
    except OSError:
        print(what, "refused")
print("big", hashlib.sha256(open("/assets/course/big.bin", "rb").read()).hexdigest())
st = os.stat("/assets/course/sub/test_a.py"); print("asset owner", st.st_uid, oct(st.st_mode & 0o777))
st = os.stat("/work/sub/test_a.py"); print("work owner", st.st_uid, oct(st.st_mode & 0o777))
check("edit asset", lambda: open("/assets/course/sub/test_a.py", "a").write("x"))
check("delete asset", lambda: os.unlink("/assets/course/sub/test_a.py"))
check("read grader key", lambda: open("/grader/keys/answer.txt").read())
check("edit own file", lambda: open("/work/sub/test_a.py", "a").write("x"))
"#,
    ]);
    let outcome = sandbox.run(&probe).await.expect("probe");
    let out = String::from_utf8_lossy(&outcome.stdout).to_string();
    let digest: String = sha2::Sha256::digest(&big)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for line in [
        format!("big {digest}"),
        "asset owner 0 0o444".into(),
        "work owner 1000 0o644".into(),
        "edit asset refused".into(),
        "delete asset refused".into(),
        "read grader key refused".into(),
        "edit own file allowed".into(),
    ] {
        assert!(
            out.contains(&line),
            "missing {line:?} in:\n{out}\nstderr: {}",
            String::from_utf8_lossy(&outcome.stderr)
        );
    }
    let refused = sandbox
        .copy_dir_in(host.path(), "/assets/../etc", Owner::Root, true)
        .await;
    assert!(
        matches!(refused, Err(SandboxError::Refused(ref m)) if m.contains("'..'")),
        "{refused:?}"
    );
    let refused = sandbox
        .copy_dir_in(host.path(), "/grader/x", Owner::Student, true)
        .await;
    assert!(
        matches!(refused, Err(SandboxError::Refused(ref m)) if m.contains("outside")),
        "{refused:?}"
    );
    fixture.finish().await;
}

#[tokio::test]
async fn stdin_reaches_the_command_and_ends() {
    let fixture = Fixture::new("stdin", Limits::default()).await;
    let sandbox = &fixture.sandbox;
    let input: Vec<u8> = (0..3_000_000u32)
        .map(|i| b"abc\n"[(i % 4) as usize])
        .collect();
    let command = Command {
        stdin: input.clone(),
        ..Command::new(["wc", "-c"])
    };
    let outcome = sandbox.run(&command).await.expect("run");
    assert_eq!(
        String::from_utf8_lossy(&outcome.stdout).trim(),
        input.len().to_string()
    );
    let echo = Command {
        stdin: b"hello\n".to_vec(),
        ..Command::new(["cat"])
    };
    assert_eq!(sandbox.run(&echo).await.expect("run").stdout, b"hello\n");
    fixture.finish().await;
}

#[tokio::test]
async fn out_of_memory_loses_the_sandbox_and_later_calls_say_so() {
    let limits = Limits {
        memory_bytes: 128 * MIB,
        wall_time: Duration::from_secs(30),
        ..Limits::default()
    };
    let fixture = Fixture::new("oom", limits).await;
    let sandbox = &fixture.sandbox;
    let bomb = Command::new([
        "python3",
        "-c",
        "b = []\nwhile True: b.append(bytearray(1 << 20))",
    ]);
    let outcome = sandbox.run(&bomb).await.expect("run");
    assert!(
        outcome.out_of_memory && outcome.sandbox_lost && !outcome.timed_out,
        "{outcome:?}"
    );
    assert_eq!(Verdict::of_outcome(&outcome), Some(Verdict::MemoryLimit));
    let next = sandbox.run(&Command::new(["true"])).await;
    assert!(
        matches!(next, Err(SandboxError::Lost { ref reason }) if reason.contains("memory")),
        "{next:?}"
    );
    fixture.finish().await;
}

#[tokio::test]
async fn host_environment_never_reaches_the_sandbox() {
    let output = std::process::Command::new(support::agh_binary())
        .env("AGH_TEST_CANARY", "canary-7f3a")
        .args(["sandbox", "run", "--image", IMAGE, "--", "env"])
        .output()
        .expect("running agh");
    assert!(
        output.status.success(),
        "agh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let env = printed["stdout"].as_str().expect("stdout");
    assert!(env.contains("USER=student"), "{env}");
    assert!(
        !env.contains("canary-7f3a") && !env.contains("AGH_TEST_CANARY"),
        "host env leaked: {env}"
    );
    assert_eq!(printed["runtime"], "runsc");
}

/// A command starts clean of the agent that started it: no signal
/// blocked or ignored (the agent blocks SIGCHLD and ignores SIGPIPE), no
/// supplementary group, its own session, the agent's descriptors closed,
/// its limits set; and a program that is missing or may not run is told
/// apart (127, 126) like a shell tells them.
#[tokio::test]
async fn a_command_starts_clean_of_the_agent() {
    let run = |argv: &[&str]| -> serde_json::Value {
        let output = std::process::Command::new(support::agh_binary())
            .args(["sandbox", "run", "--image", IMAGE, "--"])
            .args(argv)
            .output()
            .expect("running agh");
        serde_json::from_slice(&output.stdout).unwrap_or_else(|err| panic!("{err}: {output:?}"))
    };
    // What a C program sees of its own start (gVisor's /proc has no
    // signal lines).
    let program = r#"
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>
int main(void) {
    sigset_t blocked;
    struct sigaction pipe_action;
    struct rlimit core;
    sigprocmask(SIG_BLOCK, NULL, &blocked);
    sigaction(SIGPIPE, NULL, &pipe_action);
    getrlimit(RLIMIT_CORE, &core);
    int open_fds = 0;
    for (int fd = 3; fd < 1024; fd++) open_fds += fcntl(fd, F_GETFD) != -1;
    printf("chld-blocked=%d pipe-ignored=%d groups=%d session-leader=%d core=%lu fds-above-2=%d\n",
           sigismember(&blocked, SIGCHLD), pipe_action.sa_handler == SIG_IGN,
           getgroups(0, NULL), getsid(0) == getpid() || getsid(0) == getppid(), (unsigned long)core.rlim_cur, open_fds);
    return 0;
}
"#;
    let script = format!(
        "cat > /work/start.c <<'EOF'\n{program}\nEOF\ngcc -o /work/start /work/start.c && /work/start"
    );
    let printed = run(&["sh", "-c", &script]);
    assert_eq!(
        printed["stdout"].as_str().map(str::trim),
        Some("chld-blocked=0 pipe-ignored=0 groups=0 session-leader=1 core=0 fds-above-2=0"),
        "{printed}"
    );
    let missing = run(&["/no/such/program"]);
    assert_eq!(missing["outcome"]["exit_code"], 127, "{missing}");
    let denied = run(&["/etc/passwd"]);
    assert_eq!(denied["outcome"]["exit_code"], 126, "{denied}");
    assert!(
        denied["stderr"]
            .as_str()
            .is_some_and(|e| e.contains("/etc/passwd")),
        "{denied}"
    );
}

/// An image whose `dmesg` prints gVisor's banner, run under plain runc,
/// does not pass the gVisor check (the check asks the host which process
/// runs the sandbox, not the image), while the real runsc does.
#[tokio::test]
async fn an_image_cannot_fake_the_gvisor_check() {
    let docker = support::docker().await;
    let fake = "agh-test/fake-gvisor:1";
    let container = format!("agh-test-fake-gvisor-{}", std::process::id());
    let script = "rm -f /bin/dmesg && printf '#!/bin/sh\\necho Starting gVisor...\\n' > /bin/dmesg && chmod 755 /bin/dmesg";
    let built = std::process::Command::new("docker")
        .args([
            "run",
            "--name",
            &container,
            "--network",
            "none",
            "agh/busybox:1",
            "sh",
            "-c",
            script,
        ])
        .status()
        .expect("docker run");
    assert!(built.success(), "preparing the fake image");
    let committed = std::process::Command::new("docker")
        .args(["commit", &container, fake])
        .status()
        .expect("docker commit");
    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", &container])
        .status();
    assert!(committed.success(), "committing the fake image");

    let faked = agh::doctor::check_gvisor(&docker, fake, Runtime::RuncInsecure).await;
    assert!(!faked.ok, "a faked banner under runc passed: {faked:?}");
    assert!(faked.detail.contains("not gVisor"), "{faked:?}");
    let real = agh::doctor::check_gvisor(&docker, fake, Runtime::Runsc).await;
    assert!(real.ok, "runsc itself failed the check: {real:?}");
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", fake])
        .status();
}

/// `agh doctor` checks from inside a real sandbox, with agh's own probe,
/// that a thread can start and that no user namespace can be made. On the
/// stack scripts/setup installs, Docker's default seccomp profile under
/// gVisor answered clone3 with EPERM and no thread could start.
#[tokio::test]
async fn doctor_sees_threads_start_and_user_namespaces_refused() {
    let docker = support::docker().await;
    let check = agh::doctor::check_threads(&docker, IMAGE, Runtime::Runsc).await;
    assert!(check.ok, "{check:?}");
    assert!(
        check.detail.contains("user namespaces are refused"),
        "{check:?}"
    );
}

/// A grader-user command that names no folder starts in /grader with TMPDIR
/// there: a student's `json/` package in /work is never imported by
/// `python3 -m json.tool`, and nothing is written through /tmp.
#[tokio::test]
async fn grader_commands_never_start_in_or_search_student_folders() {
    let fixture = Fixture::new("grader-defaults", Limits::default()).await;
    let sandbox = &fixture.sandbox;
    let plant = "mkdir -p /work/json && \
                 printf 'open(\"/work/pwned\", \"w\").write(\"x\")\\n' > /work/json/__init__.py && \
                 cp /work/json/__init__.py /work/json/tool.py";
    let planted = sandbox
        .run(&Command::new(["sh", "-c", plant]))
        .await
        .expect("plant");
    assert_eq!(planted.exit_code, Some(0), "{planted:?}");
    let as_grader = |argv: &[&str]| Command {
        user: User::Grader,
        stdin: b"{\"a\": 1}".to_vec(),
        ..Command::new(argv.iter().copied())
    };
    let tool = sandbox
        .run(&as_grader(&["python3", "-m", "json.tool"]))
        .await
        .expect("json.tool");
    assert_eq!(tool.exit_code, Some(0), "{tool:?}");
    assert!(
        String::from_utf8_lossy(&tool.stdout).contains("\"a\": 1"),
        "{tool:?}"
    );
    let where_ = sandbox
        .run(&Command {
            stdin: Vec::new(),
            ..as_grader(&["sh", "-c", "pwd; echo $TMPDIR"])
        })
        .await
        .expect("pwd");
    assert_eq!(
        String::from_utf8_lossy(&where_.stdout),
        "/grader\n/grader\n"
    );
    let pwned = sandbox
        .run(&Command::new(["test", "-e", "/work/pwned"]))
        .await
        .expect("test");
    assert_eq!(
        pwned.exit_code,
        Some(1),
        "the student's json package ran as the grader"
    );
    fixture.finish().await;
}

/// Inside a user namespace RLIMIT_NPROC is not enforced, so a fork bomb
/// run under `unshare -Ur` would escape the process limit. Commands are
/// children of the agent, the container's init, so gVisor applies Docker's
/// seccomp profile to them and the namespace is refused before the bomb
/// starts; nothing is left behind and the sandbox stays usable.
#[tokio::test]
async fn a_student_cannot_make_a_user_namespace() {
    let limits = Limits {
        processes: 32,
        wall_time: Duration::from_secs(5),
        ..Limits::default()
    };
    let fixture = Fixture::new("userns-bomb", limits).await;
    let outcome = fixture
        .sandbox
        .run(&Command::new([
            "unshare",
            "-Ur",
            "sh",
            "-c",
            "f(){ f & f & }; f; sleep 10",
        ]))
        .await
        .expect("run");
    assert!(
        outcome.exit_code.is_some_and(|c| c != 0) && !outcome.timed_out,
        "unshare was allowed: {outcome:?}"
    );
    assert_eq!(Verdict::of_outcome(&outcome), Some(Verdict::RuntimeError));
    let next = fixture
        .sandbox
        .run(&Command::new(["true"]))
        .await
        .expect("true");
    assert_eq!(next.exit_code, Some(0), "{next:?}");
    fixture.finish().await;
}

/// A shell fork bomb, whose processes exit as fast as new ones fail to
/// start, ends as resource-limit on every run, within its deadline and the
/// kill margin, and leaves the sandbox as it found it: after three bombs a
/// command may still use nearly all the sandbox's memory.
#[tokio::test]
async fn a_fork_bomb_ends_the_same_way_every_time_and_leaves_nothing_behind() {
    let limits = Limits {
        processes: 16,
        wall_time: Duration::from_secs(3),
        memory_bytes: 256 * MIB,
        // Half a core: the bomb must not starve the tests beside it.
        millicpus: 500,
        ..Limits::default()
    };
    let fixture = Fixture::new("bombs", limits).await;
    // The shell execs its sleep (no fork it could be refused), so it is
    // there to be killed at the deadline however the bomb goes.
    let bomb = Command::new(["sh", "-c", "f(){ f & f & }; f; exec sleep 10"]);
    for round in 1..=3 {
        let started = std::time::Instant::now();
        let outcome = fixture.sandbox.run(&bomb).await.expect("bomb");
        let took = started.elapsed();
        assert_eq!(
            Verdict::of_outcome(&outcome),
            Some(Verdict::ResourceLimit),
            "round {round}: {outcome:?}"
        );
        assert_eq!(outcome.limit.map(|l| l.name()), Some("processes"));
        assert_eq!(outcome.signal.as_deref(), Some("SIGKILL"), "{outcome:?}");
        // The margin is the agent's; the rest is the stream's round trip.
        let bound = Duration::from_secs(3) + agh::sandbox::KILL_MARGIN + Duration::from_millis(500);
        assert!(took < bound, "round {round} took {took:?}, over {bound:?}");
        assert!(!outcome.sandbox_lost, "{outcome:?}");
    }
    let roomy = fixture
        .sandbox
        .run(&Command::new([
            "python3",
            "-c",
            "x = bytearray(160 << 20); print(len(x) >> 20)",
        ]))
        .await
        .expect("allocate");
    assert_eq!(
        (
            roomy.exit_code,
            String::from_utf8_lossy(&roomy.stdout).trim()
        ),
        (Some(0), "160"),
        "memory was held over from the bombs: {roomy:?}"
    );
    assert!(
        roomy.peak_memory_bytes >= 160 * MIB,
        "peak memory not reported: {roomy:?}"
    );
    fixture.finish().await;
}

/// CPU time and peak memory are measured for every command, across all
/// its processes, and go into the result JSON.
#[tokio::test]
async fn every_command_reports_its_cpu_time_and_peak_memory() {
    let fixture = Fixture::new("usage", Limits::default()).await;
    let outcome = fixture
        .sandbox
        .run(&Command::new([
            "sh",
            "-c",
            "python3 -c 'x = bytearray(64 << 20); sum(range(3 * 10**6))'; sleep 0.3",
        ]))
        .await
        .expect("run");
    assert_eq!(outcome.exit_code, Some(0), "{outcome:?}");
    assert!(outcome.cpu_time >= Duration::from_millis(50), "{outcome:?}");
    assert!(
        outcome.cpu_time < outcome.wall_time,
        "a sleep uses no CPU: {outcome:?}"
    );
    assert!(outcome.peak_memory_bytes >= 64 * MIB, "{outcome:?}");
    let json = serde_json::to_value(&outcome).expect("json");
    assert!(
        json["cpu_time"].as_u64().is_some_and(|ms| ms >= 50),
        "{json}"
    );
    assert!(
        json["peak_memory_bytes"]
            .as_u64()
            .is_some_and(|b| b >= 64 * MIB),
        "{json}"
    );
    fixture.finish().await;
}

/// Time verdicts come from CPU time, so a busy host does not change them:
/// a program starved to a fifth of a core (as on a loaded host) takes far
/// longer than its time limit by the clock and still passes, within the
/// wall backstop; one that computes past its limit is `cpu-time` however
/// slowly the clock ran; one that waits is stopped by the backstop at
/// `wall_multiple` times the limit.
#[tokio::test]
async fn time_verdicts_count_cpu_time_so_a_starved_program_still_passes() {
    let limits = Limits {
        wall_time: Duration::from_secs(1),
        cpu_time: Duration::from_secs(1),
        millicpus: 200,
        ..Limits::default()
    };
    let fixture = Fixture::with_spec(
        "cpu-verdicts",
        SandboxSpec {
            limits,
            wall_multiple: 8,
            ..SandboxSpec::new(IMAGE)
        },
    )
    .await;
    let sandbox = &fixture.sandbox;
    let run = |argv: &'static [&'static str]| async move {
        sandbox.run(&Command::new(argv.iter().copied())).await
    };
    // Busy for a second and a half by the clock, whatever the host's speed:
    // throttled to a fifth of a core, that is well under a second of CPU.
    let starved = run(&[
        "python3",
        "-c",
        "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 1.5: pass",
    ])
    .await
    .expect("run");
    assert_eq!(starved.exit_code, Some(0), "{starved:?}");
    assert!(
        starved.wall_time > Duration::from_secs(1) && starved.cpu_time < Duration::from_secs(1),
        "starved past its limit by the clock, within it in CPU: {starved:?}"
    );
    assert_eq!(agh::report::Limit::of(&starved), None, "{starved:?}");
    let computes = run(&["python3", "-c", "while True: pass"])
        .await
        .expect("run");
    assert_eq!(
        agh::report::Limit::of(&computes).map(agh::report::Limit::name),
        Some("cpu-time"),
        "{computes:?}"
    );
    assert!(computes.wall_time < Duration::from_secs(8), "{computes:?}");
    let waits = run(&["sleep", "60"]).await.expect("run");
    assert_eq!(
        agh::report::Limit::of(&waits).map(agh::report::Limit::name),
        Some("wall-time"),
        "{waits:?}"
    );
    assert!(
        waits.wall_time >= Duration::from_secs(8) && waits.wall_time < Duration::from_secs(12),
        "stopped at 8 x 1 s: {waits:?}"
    );
    fixture.finish().await;
}

/// Who is to blame is read from Docker's facts: a sandbox killed or
/// removed from outside while a command runs is an infra error (retried,
/// never scored), not a verdict on the command.
#[tokio::test]
async fn a_sandbox_stopped_from_outside_is_never_the_students_doing() {
    for (how, kill) in [("kill", true), ("rm -f", false)] {
        let fixture = Fixture::new("outside", Limits::default()).await;
        let id = fixture.sandbox.id().to_string();
        let docker = fixture.docker.clone();
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            if kill {
                docker
                    .kill_container(&id, None::<bollard::query_parameters::KillContainerOptions>)
                    .await
            } else {
                docker
                    .remove_container(
                        &id,
                        Some(bollard::query_parameters::RemoveContainerOptions {
                            force: true,
                            ..Default::default()
                        }),
                    )
                    .await
            }
        });
        let ran = fixture.sandbox.run(&Command::new(["sleep", "5"])).await;
        stopper.await.expect("join").expect("stopping from outside");
        match &ran {
            Err(err @ SandboxError::Gone { reason }) => {
                assert!(err.is_infra(), "{how}: {err}");
                assert!(reason.contains("outside"), "{how}: {reason}");
            }
            other => panic!("{how}: the command was charged with it: {other:?}"),
        }
        let next = fixture.sandbox.run(&Command::new(["true"])).await;
        assert!(
            matches!(next, Err(SandboxError::Gone { .. })),
            "{how}: later calls must say the sandbox is gone: {next:?}"
        );
        fixture.finish().await;
    }
}

/// `agh sandbox clean` removes what a gone agh left and never a running
/// agh's sandbox (here, this test process's); `--all` is the explicit way
/// to remove those too (not run here: it would end the other tests').
#[tokio::test]
async fn clean_removes_only_what_a_gone_agh_left() {
    let fixture = Fixture::new("clean", Limits::default()).await;
    let mut ended = std::process::Command::new("true").spawn().expect("spawn");
    let dead_pid = ended.id();
    ended.wait().expect("wait");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let labels = std::collections::HashMap::from([
        (agh::sandbox::LABEL_MANAGED.to_string(), "test".to_string()),
        (agh::sandbox::LABEL_BATCH.to_string(), fixture.batch.clone()),
        (
            agh::sandbox::LABEL_OWNER.to_string(),
            format!("{}/{dead_pid}/1", host.trim()),
        ),
    ]);
    let leftover = fixture
        .docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            bollard::models::ContainerCreateBody {
                image: Some("agh/busybox:1".into()),
                cmd: Some(vec!["true".into()]),
                labels: Some(labels),
                ..Default::default()
            },
        )
        .await
        .expect("create a leftover")
        .id;
    let output = std::process::Command::new(support::agh_binary())
        .args(["sandbox", "clean"])
        .output()
        .expect("agh sandbox clean");
    assert!(output.status.success(), "{output:?}");
    let exists = |id: String| {
        let docker = fixture.docker.clone();
        async move {
            docker
                .inspect_container(
                    &id,
                    None::<bollard::query_parameters::InspectContainerOptions>,
                )
                .await
                .is_ok()
        }
    };
    assert!(!exists(leftover).await, "the gone agh's sandbox was kept");
    assert!(
        exists(fixture.sandbox.id().to_string()).await,
        "a running agh's sandbox was removed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let next = fixture
        .sandbox
        .run(&Command::new(["true"]))
        .await
        .expect("run");
    assert_eq!(next.exit_code, Some(0));
    fixture.finish().await;
}
