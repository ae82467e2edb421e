//! agh's sandbox probe (`builtin:sandbox-probe`), the grader `agh probe
//! --sandbox` registers on a live service: each test is one attempt at
//! what a hostile submission would try, run in the submission's sandbox as
//! the student, and passes only when the sandbox held. Tests named
//! `deny_*` must be refused by the sandbox; `allow_*` are the contrast
//! (what a student's program must still be able to do).
//!
//! The submission may hold `other.txt`: the two halves of a token that
//! another submission uploaded earlier (its archive is on the service's
//! disk). `deny_read_other_submission` looks for the joined token
//! everywhere it can read; the halves are joined only in the shell, so
//! the token is in no file of this submission.
//!
//! The image is `agh/busybox:1` unless the setting `image` names another
//! with a busybox or POSIX shell and its tools.

use agh_grader::{
    Cmd, CommandResult, GradeContext, GradeError, Grader, GraderInfo, Report, Test, TestResult,
    Verdict,
};

struct SandboxProbe;

/// Variables a command may see: the agent's own, none from the host.
const ALLOWED_ENV: [&str; 12] = [
    "PATH", "HOME", "PWD", "OLDPWD", "SHLVL", "TMPDIR", "LANG", "LC_ALL", "TERM", "USER",
    "LOGNAME", "_",
];

/// Where nothing may reach: a public address, Docker's bridge gateway (the
/// host), the cloud metadata service.
const ADDRESSES: [&str; 3] = ["1.1.1.1", "172.17.0.1", "169.254.169.254"];

/// What each probe does; the report's tests come in this order.
const PROBES: [&str; 12] = [
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
];

fn sh(script: &str) -> Cmd {
    Cmd::new(["sh", "-c", script])
}

/// A test: passed when `held`, with `detail` either way.
fn verdict(name: &str, held: bool, detail: &str) -> TestResult {
    let test = Test::new(name, 1.0);
    if held {
        test.passed(detail)
    } else {
        test.failed(Verdict::Wrong, detail)
    }
}

/// Runs `cmd`; a sandbox the probe brought down is replaced, and that
/// counts as held (the host survived and grading went on).
fn run(cmd: &Cmd) -> Result<CommandResult, GradeError> {
    let run = cmd.run()?;
    if run.sandbox_lost {
        agh_grader::reset_after_loss(&[])?;
    }
    Ok(run)
}

fn flags(run: &CommandResult) -> String {
    format!(
        "exit {:?}, signal {:?}, limit {:?}, {} ms",
        run.exit_code, run.signal, run.limit, run.wall_time_ms
    )
}

fn host_environment() -> Result<TestResult, GradeError> {
    let run = run(&sh("env"))?;
    let unknown: Vec<String> = run
        .stdout_text()
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name.to_string()))
        .filter(|name| !ALLOWED_ENV.contains(&name.as_str()))
        .collect();
    Ok(verdict(
        PROBES[0],
        run.exit_code == Some(0) && unknown.is_empty(),
        &if unknown.is_empty() {
            "the environment holds only the sandbox's own variables".to_string()
        } else {
            format!("variables from outside the sandbox: {}", unknown.join(", "))
        },
    ))
}

/// `grep` for the shell variable `$n` in every file it may read, the
/// kernel's own trees aside.
const SEARCH: &str = "for d in /*; do case $d in /proc|/sys|/dev) ;; \
                      *) grep -rlsF \"$n\" \"$d\" 2>/dev/null ;; esac; done | head -5";

fn other_submission() -> Result<TestResult, GradeError> {
    let halves = match agh_grader::submission_file("other.txt") {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => {
            return Ok(verdict(
                PROBES[1],
                true,
                "no other.txt: no earlier submission's token to look for",
            ));
        }
    };
    let script = format!(
        "n=\"$(sed -n 1p /work/other.txt)$(sed -n 2p /work/other.txt)\"; [ ${{#n}} -ge 16 ] || exit 3; {SEARCH}"
    );
    let run = run(&sh(&script).timeout_ms(20_000))?;
    let found = run.stdout_text();
    let sane = halves.lines().count() >= 2 && run.exit_code == Some(0);
    Ok(verdict(
        PROBES[1],
        sane && found.trim().is_empty(),
        &if !sane {
            format!("the search did not run ({})", flags(&run))
        } else if found.trim().is_empty() {
            "the other submission's token is in no file the sandbox can read".to_string()
        } else {
            format!("the other submission's token was found in {}", found.trim())
        },
    ))
}

fn hidden_tests(context: &GradeContext) -> Result<TestResult, GradeError> {
    // A token only this run knows, placed where graders keep hidden tests.
    let token = format!("agh-hidden-{}-7f3a9c1e5b2d4680", context.submission);
    agh_grader::write_file("/grader/expected.txt", token.as_bytes(), true)?;
    let script = "cat /grader/expected.txt; ls -la /grader; \
                  find / -name 'expected*' 2>/dev/null | grep -v '^/proc' | while read f; do cat \"$f\"; done";
    let run = run(&sh(script).timeout_ms(20_000))?;
    let seen = run.stdout_text().contains(&token) || run.stderr_text().contains(&token);
    Ok(verdict(
        PROBES[2],
        !seen,
        if seen {
            "the student read a file only the grader user may read"
        } else {
            "the grader's files in /grader are out of the student's reach"
        },
    ))
}

fn network() -> Result<TestResult, GradeError> {
    let mut reached = Vec::new();
    for address in ADDRESSES {
        let run = run(&sh(&format!(
            "wget -q -T 3 -O - http://{address}/ >/dev/null 2>&1"
        )))?;
        if run.exit_code == Some(0) {
            reached.push(address);
        }
    }
    let run = run(&sh("cat /proc/net/dev | tail -n +3 | cut -d: -f1"))?;
    let interfaces: Vec<String> = run
        .stdout_text()
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty() && l != "lo")
        .collect();
    Ok(verdict(
        PROBES[3],
        reached.is_empty() && interfaces.is_empty(),
        &format!(
            "reached {:?}; network interfaces besides lo: {:?}",
            reached, interfaces
        ),
    ))
}

fn dns() -> Result<TestResult, GradeError> {
    let run = run(&sh(
        "nslookup example.com 2>&1 || wget -q -T 3 -O - http://example.com/ 2>&1",
    ))?;
    let resolved = run.exit_code == Some(0);
    Ok(verdict(
        PROBES[4],
        !resolved,
        &if resolved {
            format!("a name was resolved: {}", run.stdout_text().trim())
        } else {
            "no name resolves".to_string()
        },
    ))
}

fn write_outside() -> Result<TestResult, GradeError> {
    let script = "for d in / /etc /bin /usr /grader /assets /root; do \
                  touch \"$d/agh-probe-write\" 2>/dev/null && echo \"$d\"; done; true";
    let run = run(&sh(script))?;
    let written = run.stdout_text();
    Ok(verdict(
        PROBES[5],
        run.exit_code == Some(0) && written.trim().is_empty(),
        &if written.trim().is_empty() {
            "only the workspace and /tmp are writable".to_string()
        } else {
            format!(
                "wrote outside the workspace in: {}",
                written.split_whitespace().collect::<Vec<_>>().join(", ")
            )
        },
    ))
}

/// After a bomb, the sandbox (or its replacement) must still run a command.
fn still_runs() -> Result<bool, GradeError> {
    let run = run(&sh("echo alive"))?;
    Ok(run.stdout_text().trim() == "alive")
}

fn fork_bomb() -> Result<TestResult, GradeError> {
    let bomb = run(&sh("b() { b | b & }; b; sleep 3").timeout_ms(6_000))?;
    let alive = still_runs()?;
    Ok(verdict(
        PROBES[6],
        alive,
        &format!(
            "the bomb: {}; a command after it ran: {alive}",
            flags(&bomb)
        ),
    ))
}

fn memory_bomb() -> Result<TestResult, GradeError> {
    let bomb =
        run(&sh("awk 'BEGIN { s = \"xxxxxxxxxxxxxxxx\"; while (1) s = s s }'").timeout_ms(20_000))?;
    let stopped = bomb.out_of_memory || bomb.signal.is_some() || bomb.exit_code != Some(0);
    let alive = still_runs()?;
    Ok(verdict(
        PROBES[7],
        stopped && alive,
        &format!(
            "the bomb: {}; a command after it ran: {alive}",
            flags(&bomb)
        ),
    ))
}

fn output_flood() -> Result<TestResult, GradeError> {
    const CAP: u64 = 64 * 1024;
    let flood = run(&sh("yes agh-probe-flood")
        .output_bytes(CAP)
        .timeout_ms(10_000))?;
    let kept = flood.stdout.len() as u64;
    Ok(verdict(
        PROBES[8],
        flood.stdout_truncated && kept <= CAP,
        &format!(
            "kept {kept} bytes of a cap of {CAP}, truncated: {}; {}",
            flood.stdout_truncated,
            flags(&flood)
        ),
    ))
}

fn ignored_sigterm() -> Result<TestResult, GradeError> {
    // The time limit counts CPU time; the wall clock stops a sleeper at the
    // operator's multiple of it (3 by default), so allow up to 4 of them.
    const LIMIT_MS: u64 = 2_000;
    let stubborn = run(&sh("trap '' TERM; while :; do sleep 1; done").timeout_ms(LIMIT_MS))?;
    Ok(verdict(
        PROBES[9],
        stubborn.timed_out && stubborn.wall_time_ms < 4 * LIMIT_MS + 5_000,
        &format!("time limit {LIMIT_MS} ms: {}", flags(&stubborn)),
    ))
}

fn workspace_write() -> Result<TestResult, GradeError> {
    let run = run(&sh(
        "echo kept > /work/agh-probe && cat /work/agh-probe && echo t > /tmp/agh-probe && cat /tmp/agh-probe",
    ))?;
    Ok(verdict(
        PROBES[10],
        run.stdout_text().split_whitespace().collect::<Vec<_>>() == ["kept", "t"],
        &format!("writing /work and /tmp: {}", flags(&run)),
    ))
}

fn program_runs() -> Result<TestResult, GradeError> {
    let run = run(&sh("ls /work >/dev/null && echo ran"))?;
    Ok(verdict(
        PROBES[11],
        run.stdout_text().trim() == "ran",
        &format!("a plain command: {}", flags(&run)),
    ))
}

impl Grader for SandboxProbe {
    fn describe(settings: Vec<(String, String)>) -> GraderInfo {
        let image = agh_grader::setting(&settings, "image").unwrap_or("agh/busybox:1");
        let mut info = agh_grader::info("sandbox-probe", "0.1.0", image);
        info.limits.wall_time_ms = 30_000;
        info.limits.memory_bytes = 256 * 1024 * 1024;
        info.limits.processes = 32;
        info.limits.tmpfs_bytes = 64 * 1024 * 1024;
        info
    }

    fn grade(context: GradeContext) -> Result<Report, GradeError> {
        let tests = vec![
            host_environment()?,
            other_submission()?,
            hidden_tests(&context)?,
            network()?,
            dns()?,
            write_outside()?,
            fork_bomb()?,
            memory_bomb()?,
            output_flood()?,
            ignored_sigterm()?,
            workspace_write()?,
            program_runs()?,
        ];
        Ok(Report {
            tests,
            output: String::new(),
        })
    }
}

agh_grader::export_grader!(SandboxProbe);
