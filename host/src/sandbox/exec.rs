//! Running commands in a sandbox: each is one request to the sandbox's
//! agent, which enforces its limits, kills what it leaves, and reports the
//! facts a verdict is read from.

use std::time::Duration;

use agh_protocol::{ProcessLimits, Reply, Request, RunReport, RunSpec};
use serde::{Deserialize, Serialize};

use super::agent::{Exchange, Printed, Stdin};
use super::container::Loss;
use super::limits::Limit;
use super::limits::{OPEN_FILES, STACK_BYTES};
use super::{AGENT_GRACE, KILL_MARGIN, Sandbox, SandboxError, User};

/// Most arguments one command may have.
pub const MAX_ARGS: usize = 4096;
/// Most bytes of arguments and environment together (well under the kernel's
/// ARG_MAX, so a refused command is refused here with a clear reason).
pub const MAX_ARG_BYTES: usize = 128 * 1024;
/// Most bytes of stdin one command may be given; bigger inputs are files.
pub const MAX_STDIN_BYTES: usize = 16 * 1024 * 1024;

/// A command to run in the sandbox.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Program and arguments; the program is looked up on `PATH`.
    pub argv: Vec<String>,
    /// Bytes fed to stdin, then end of file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stdin: Vec<u8>,
    /// Working directory; `/work` when empty.
    #[serde(default)]
    pub cwd: String,
    /// Extra environment variables.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Which sandbox user runs it.
    #[serde(default)]
    pub user: User,
    /// Time limit; the sandbox's `wall_time` when unset, never above the
    /// sandbox's [`super::Longest`]. It bounds CPU time (with `cpu_time`);
    /// the wall clock stops the command at the sandbox's
    /// [`super::SandboxSpec::wall_multiple`] of it.
    #[serde(default)]
    pub wall_time: Option<Duration>,
    /// Latest the wall clock may stop the command, whatever the multiple:
    /// what is left of a submission's command time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_clock_cap: Option<Duration>,
    /// CPU time of each process; the sandbox's limit when unset, never above it.
    #[serde(default)]
    pub cpu_time: Option<Duration>,
    /// Bytes kept per stream; the sandbox's limit when unset, never above it.
    #[serde(default)]
    pub output_bytes: Option<u64>,
}

impl Command {
    /// A command running `argv` as the student.
    #[must_use]
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<(), SandboxError> {
        let invalid = |msg: String| Err(SandboxError::Refused(msg));
        if self.argv.is_empty() || self.argv[0].is_empty() {
            return invalid("a command needs a program name as its first argument".into());
        }
        if self.argv.len() > MAX_ARGS {
            return invalid(format!(
                "{} arguments is more than the {MAX_ARGS} allowed",
                self.argv.len()
            ));
        }
        let bytes: usize = self.argv.iter().map(String::len).sum::<usize>()
            + self
                .env
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>();
        if bytes > MAX_ARG_BYTES {
            return invalid(format!(
                "arguments and environment take {bytes} bytes, more than {MAX_ARG_BYTES}"
            ));
        }
        if self.argv.iter().any(|a| a.contains('\0')) {
            return invalid("an argument contains a NUL byte".into());
        }
        for (name, value) in &self.env {
            let good_name = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !good_name || value.contains('\0') {
                return invalid(format!(
                    "environment variable {name:?} is not a valid NAME=value"
                ));
            }
        }
        if !self.cwd.is_empty() && (!self.cwd.starts_with('/') || self.cwd.contains('\0')) {
            return invalid(format!(
                "working directory {:?} must be an absolute path",
                self.cwd
            ));
        }
        if self.stdin.len() > MAX_STDIN_BYTES {
            return invalid(format!(
                "stdin of {} bytes is more than {MAX_STDIN_BYTES}",
                self.stdin.len()
            ));
        }
        Ok(())
    }
}

/// What happened to a command. Raw facts; [`crate::report::Verdict`] reads them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommandOutcome {
    /// The argv that ran.
    pub argv: Vec<String>,
    /// The user that ran it.
    pub user: User,
    /// Exit status, when the command ended by itself.
    pub exit_code: Option<i64>,
    /// The signal that ended it (`SIGSEGV`; `SIGKILL` when agh killed it).
    pub signal: Option<String>,
    /// Captured stdout, at most the output cap.
    #[serde(skip)]
    pub stdout: Vec<u8>,
    /// Captured stderr, at most the output cap.
    #[serde(skip)]
    pub stderr: Vec<u8>,
    /// Stdout went past the cap; the command was killed.
    pub stdout_truncated: bool,
    /// Stderr went past the cap; the command was killed.
    pub stderr_truncated: bool,
    /// The deadline passed; the command was killed.
    pub timed_out: bool,
    /// A process used up its CPU time.
    #[serde(default)]
    pub cpu_time_exceeded: bool,
    /// The sandbox ran out of memory.
    pub out_of_memory: bool,
    /// The user met its process limit.
    pub process_limit_reached: bool,
    /// A write stopped at the file-size limit (even when the program
    /// ignored SIGXFSZ).
    #[serde(default)]
    pub file_size_exceeded: bool,
    /// A writable place (`/work`, `/tmp`, `/dev/shm`, `/grader`) was full
    /// when the command failed.
    pub storage_full: bool,
    /// The sandbox died during the command and cannot run more.
    pub sandbox_lost: bool,
    /// The limit that ended the command, by the documented precedence
    /// (see [`Limit`]); none when it ended by itself within every limit.
    #[serde(default)]
    pub limit: Option<Limit>,
    /// Wall time from start to end (or kill).
    #[serde(with = "duration_ms")]
    pub wall_time: Duration,
    /// User and system CPU time of all its processes.
    #[serde(default, with = "duration_ms")]
    pub cpu_time: Duration,
    /// The largest resident memory of any one of its processes.
    #[serde(default)]
    pub peak_memory_bytes: u64,
}

/// A `Duration` as whole milliseconds in JSON.
pub mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `d` as milliseconds.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Reads milliseconds.
    ///
    /// # Errors
    /// The deserializer's.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

impl CommandOutcome {
    /// The facts the agent reported about `command`.
    fn from_report(command: &Command, report: RunReport, stdout: Vec<u8>, stderr: Vec<u8>) -> Self {
        let mut outcome = CommandOutcome {
            argv: command.argv.clone(),
            user: command.user,
            exit_code: report.exit_code.map(i64::from),
            // Only a real death by signal names one: `exit 153` is an exit
            // status a program chose, not SIGXFSZ.
            signal: report.signal.and_then(signal_name),
            stdout,
            stderr,
            stdout_truncated: report.stdout_truncated,
            stderr_truncated: report.stderr_truncated,
            timed_out: report.timed_out,
            cpu_time_exceeded: report.cpu_time_exceeded,
            out_of_memory: false,
            process_limit_reached: report.process_limit_reached,
            file_size_exceeded: report.file_size_exceeded,
            storage_full: report.storage_full,
            sandbox_lost: report.unkillable,
            limit: None,
            wall_time: Duration::from_millis(report.wall_ms),
            cpu_time: Duration::from_millis(report.cpu_ms),
            peak_memory_bytes: report.peak_rss_bytes,
        };
        outcome.limit = Limit::of(&outcome);
        outcome
    }

    /// A command during which its own sandbox died, with what it printed
    /// before.
    fn lost_with_sandbox(command: &Command, lost: &Lost, stdout: Vec<u8>, stderr: Vec<u8>) -> Self {
        let mut outcome = CommandOutcome {
            argv: command.argv.clone(),
            user: command.user,
            out_of_memory: lost.out_of_memory,
            sandbox_lost: true,
            wall_time: lost.after,
            stdout,
            stderr,
            ..CommandOutcome::default()
        };
        outcome.limit = Limit::of(&outcome);
        outcome
    }
}

/// A sandbox that died during a command, by the command's doing.
pub(crate) struct Lost {
    out_of_memory: bool,
    /// How long the command had run.
    after: Duration,
    /// What the command printed before.
    printed: Printed,
}

impl Sandbox {
    /// Runs `command` and reports what happened. A command that overruns its
    /// deadline or output cap is killed; so is everything any command
    /// leaves running after it ends.
    ///
    /// # Errors
    /// [`SandboxError::Refused`] for a malformed command,
    /// [`SandboxError::Lost`] when the sandbox already died,
    /// [`SandboxError::Gone`] and other infra errors when it was stopped
    /// from outside or Docker fails. A student's failure is an outcome,
    /// not an error.
    pub async fn run(&self, command: &Command) -> Result<CommandOutcome, SandboxError> {
        self.ensure_alive()?;
        let spec = self.run_spec(command)?;
        let stdin = if command.stdin.is_empty() {
            Stdin::None
        } else {
            Stdin::Bytes(command.stdin.clone())
        };
        let within = Duration::from_millis(spec.deadline_ms);
        let caps = [spec.output_cap, 0];
        let exchange = match self
            .command_exchange(Request::Run { spec }, stdin, caps, within)
            .await?
        {
            Ok(exchange) => exchange,
            Err(mut lost) => {
                let Printed {
                    stdout: [stdout, _],
                    stderr: [stderr, _],
                } = std::mem::take(&mut lost.printed);
                return Ok(CommandOutcome::lost_with_sandbox(
                    command, &lost, stdout, stderr,
                ));
            }
        };
        match exchange.into_run() {
            Ok((report, stdout, stderr)) => {
                let outcome = CommandOutcome::from_report(command, report, stdout, stderr);
                self.after_command(&outcome);
                Ok(outcome)
            }
            Err(other) => Err(self.unexpected(&other).await),
        }
    }

    /// Runs a judge and the student's program side by side, each as its own
    /// user, connected like an interactive judge: the judge's stdout is the
    /// student program's stdin and the student program's stdout is the
    /// judge's stdin, through pipes inside the sandbox. Each side's stderr
    /// is captured under its cap. Both share one deadline; when the judge
    /// ends, the student program's stdin is closed, and a second later the
    /// program is stopped if it still runs (not a limit of its own). The student's process
    /// cannot reach the judge's (another user, another process), so a
    /// verdict the judge prints on its stderr cannot be forged from the
    /// student's side.
    ///
    /// # Errors
    /// As [`Sandbox::run`]; a command that carries stdin bytes is refused,
    /// since each side's stdin is the other side.
    pub async fn converse(
        &self,
        judge: &Command,
        student: &Command,
    ) -> Result<(CommandOutcome, CommandOutcome), SandboxError> {
        self.ensure_alive()?;
        if !judge.stdin.is_empty() || !student.stdin.is_empty() {
            return Err(SandboxError::Refused(
                "in a conversation each side's stdin is the other side's stdout; give no stdin bytes".into(),
            ));
        }
        let judge_spec = self.run_spec(judge)?;
        let program_spec = self.run_spec(student)?;
        let within = Duration::from_millis(judge_spec.deadline_ms.min(program_spec.deadline_ms));
        let caps = [program_spec.output_cap, judge_spec.output_cap];
        let request = Request::Converse {
            judge: judge_spec,
            program: program_spec,
        };
        let exchange = match self
            .command_exchange(request, Stdin::None, caps, within)
            .await?
        {
            Ok(exchange) => exchange,
            Err(mut lost) => {
                let [program_stderr, judge_stderr] = std::mem::take(&mut lost.printed.stderr);
                return Ok((
                    CommandOutcome::lost_with_sandbox(judge, &lost, Vec::new(), judge_stderr),
                    CommandOutcome::lost_with_sandbox(student, &lost, Vec::new(), program_stderr),
                ));
            }
        };
        let Exchange {
            reply,
            printed:
                Printed {
                    stderr: [program_stderr, judge_stderr],
                    ..
                },
        } = exchange;
        match reply {
            Reply::Conversed {
                judge: judge_report,
                program,
            } => {
                let judge_outcome =
                    CommandOutcome::from_report(judge, judge_report, Vec::new(), judge_stderr);
                let student_outcome =
                    CommandOutcome::from_report(student, program, Vec::new(), program_stderr);
                self.after_command(&judge_outcome);
                self.after_command(&student_outcome);
                Ok((judge_outcome, student_outcome))
            }
            other => Err(self.unexpected(&other).await),
        }
    }

    /// Sends a command's request. `Ok(Err(lost))` when the sandbox died
    /// during it by the command's doing.
    async fn command_exchange(
        &self,
        request: Request,
        stdin: Stdin,
        caps: [u64; 2],
        deadline: Duration,
    ) -> Result<Result<Exchange, Lost>, SandboxError> {
        let within = deadline + KILL_MARGIN + AGENT_GRACE;
        let started = std::time::Instant::now();
        match self.link.exchange(&request, stdin, caps, within).await {
            Ok(exchange) => Ok(Ok(exchange)),
            Err(broken) => match self.account_for(&broken.error, true).await {
                Loss::Command { out_of_memory, .. } => Ok(Err(Lost {
                    out_of_memory,
                    after: started.elapsed(),
                    printed: broken.printed,
                })),
                outside @ Loss::Outside(_) => Err(outside.into_error()),
            },
        }
    }

    /// A command that left processes the agent could not kill ends the
    /// sandbox (the agent exits after saying so).
    fn after_command(&self, outcome: &CommandOutcome) {
        if outcome.sandbox_lost {
            self.mark_lost(Loss::Command {
                reason:
                    "a command left processes that could not be killed, so the sandbox was stopped"
                        .into(),
                out_of_memory: false,
            });
        }
    }

    /// A reply that does not answer the request: the agent is not to be trusted.
    pub(crate) async fn unexpected(&self, reply: &Reply) -> SandboxError {
        let failure = super::agent::LinkError::Broken(format!("unexpected reply {reply:?}"));
        self.account_for(&failure, false).await.into_error()
    }

    /// The agent's form of `command`, within the sandbox's limits.
    fn run_spec(&self, command: &Command) -> Result<RunSpec, SandboxError> {
        command.validate()?;
        let limits = &self.spec.limits;
        let longest_wall = self.spec.longest.wall_time.max(limits.wall_time);
        let longest_cpu = self.spec.longest.cpu_time.max(limits.cpu_time);
        let time = command
            .wall_time
            .map_or(limits.wall_time, |w| w.min(longest_wall));
        // A command given longer than the default may compute for longer.
        let default_cpu = if time > limits.wall_time {
            time.min(longest_cpu).max(limits.cpu_time)
        } else {
            limits.cpu_time
        };
        let cpu = command.cpu_time.map_or(default_cpu, |c| c.min(default_cpu));
        // The time limit is counted in CPU time; the wall clock is the
        // backstop, at the operator's multiple of it, never past the cap.
        let backstop = time.saturating_mul(self.spec.wall_multiple.max(1));
        let deadline = command
            .wall_clock_cap
            .map_or(backstop, |cap| cap.min(backstop));
        let cpu_limits = super::Limits {
            cpu_time: cpu,
            ..limits.clone()
        };
        let output_cap = command
            .output_bytes
            .map_or(limits.output_bytes, |o| o.min(limits.output_bytes));
        let uid = command.user.uid();
        Ok(RunSpec {
            argv: command.argv.clone(),
            env: command_env(command),
            cwd: if command.cwd.is_empty() {
                command.user.default_cwd().into()
            } else {
                command.cwd.clone()
            },
            uid,
            gid: uid,
            limits: ProcessLimits {
                processes: u64::from(limits.processes),
                file_size_bytes: limits.file_size_bytes,
                cpu_seconds: cpu_limits.cpu_seconds(),
                open_files: OPEN_FILES,
                stack_bytes: STACK_BYTES,
            },
            deadline_ms: u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
            output_cap,
            stdin: !command.stdin.is_empty(),
            file_size_probe: Some(limits.file_size_bytes),
            places: self.spec.places.iter().map(|p| p.path.clone()).collect(),
            // A grader-user command may run the student's program as the
            // student (`agh-as-student`), never the other way round.
            student_door: (command.user == User::Grader).then_some(crate::layout::STUDENT_UID),
        })
    }
}

/// The environment of every command: an allowlist, nothing from the host.
fn base_env(user: User) -> Vec<String> {
    let (name, home) = match user {
        User::Student => ("student", "/home/student"),
        User::Grader => ("grader", "/home/grader"),
    };
    vec![
        format!("PATH={}", agh_protocol::PATH),
        "LANG=C.UTF-8".into(),
        format!("HOME={home}"),
        format!("USER={name}"),
        format!("LOGNAME={name}"),
        // Temporary files of the grader user go where the student cannot
        // plant links (gVisor does not protect links in a shared /tmp).
        format!("TMPDIR={}", user.temp_dir()),
    ]
}

fn command_env(command: &Command) -> Vec<String> {
    let mut env = base_env(command.user);
    env.extend(command.env.iter().map(|(k, v)| format!("{k}={v}")));
    env
}

/// The name of signal `n`.
fn signal_name(n: i32) -> Option<String> {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    let n = usize::try_from(n).ok()?;
    match n {
        1..=31 => Some(NAMES[n - 1].to_string()),
        32..=64 => Some(format!("SIGRT{}", n - 32)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_named() {
        assert_eq!(signal_name(11).as_deref(), Some("SIGSEGV"));
        assert_eq!(signal_name(9).as_deref(), Some("SIGKILL"));
        assert_eq!(signal_name(25).as_deref(), Some("SIGXFSZ"));
        assert_eq!(signal_name(0), None);
    }

    #[test]
    fn malformed_commands_are_refused_with_a_reason() {
        let empty = Command::default();
        assert!(
            empty
                .validate()
                .unwrap_err()
                .to_string()
                .contains("program name")
        );
        let bad_env = Command {
            env: vec![("A=B".into(), "x".into())],
            ..Command::new(["true"])
        };
        assert!(
            bad_env
                .validate()
                .unwrap_err()
                .to_string()
                .contains("NAME=value")
        );
        let nul = Command::new(["echo", "a\0b"]);
        assert!(nul.validate().unwrap_err().to_string().contains("NUL"));
        let relative = Command {
            cwd: "work".into(),
            ..Command::new(["true"])
        };
        assert!(
            relative
                .validate()
                .unwrap_err()
                .to_string()
                .contains("absolute")
        );
    }
}
