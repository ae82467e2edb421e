//! Running commands in a sandbox: deadlines, output caps, and the kill that
//! leaves no process of the command's user behind.

use std::pin::Pin;
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::query_parameters::WaitContainerOptions;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWriteExt};

use super::{DOCKER_CALL_TIMEOUT, KILL_GRACE, Sandbox, SandboxError, User, docker_call};

/// Most arguments one command may have.
pub const MAX_ARGS: usize = 4096;
/// Most bytes of arguments and environment together (well under the kernel's
/// ARG_MAX, so a refused command is refused here with a clear reason).
pub const MAX_ARG_BYTES: usize = 128 * 1024;
/// Most bytes of stdin one command may be given; bigger inputs are files.
pub const MAX_STDIN_BYTES: usize = 16 * 1024 * 1024;

/// Sets the process limit given as `$1` (`ulimit -u` in busybox and bash,
/// `-p` in dash; refusing to run when neither works) and the file-size limit
/// given as `$2` in POSIX 512-byte blocks, runs the rest of the argv as
/// given, then kills every process left to its user, and exits with the
/// command's status. The limits are set here, for the command alone, so the
/// container-wide ones can leave room for agh's own work (placing a large
/// asset, killing a command whose user is at its process limit). The argv arrives as positional parameters, never as
/// shell text, so nothing in it is interpreted. `kill -1` signals every
/// process the caller may signal except itself.
const RUN_WRAPPER: &str = "n=$1; f=$2; shift 2; { ulimit -u \"$n\" 2>/dev/null || ulimit -p \"$n\"; } || exit 125; \
                           ulimit -f \"$f\" || exit 125; \
                           \"$@\"; status=$?; kill -9 -1 2>/dev/null; exit $status";

/// Run as the user of a command that overran or failed: counts the
/// processes in the sandbox, then kills every process of the calling user,
/// again and again (a fork bomb forks while it is being killed) until
/// `kill -1` finds none of them left or 3 s have passed, then reports how
/// full the writable places are (`df -P`), so a failure caused by a full
/// tmpfs is told apart from an ordinary one. The wait is for the user's own
/// processes only: in a conversation the other side's user may still have
/// processes, which this kill does not reach and need not wait for.
const KILL_AND_SURVEY: &str = "set -- /proc/[0-9]*; n=$#; i=0; \
     while kill -9 -1 2>/dev/null && [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done; \
     echo \"$n\"; df -P /work /tmp /dev/shm /grader 2>/dev/null; exit 0";

/// Processes in a sandbox that belong to no command: the init, its sleep, and
/// the killing shell itself.
const BASELINE_PROCESSES: usize = 3;

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
    /// Deadline; the sandbox's wall-time limit when unset, never above it.
    #[serde(default)]
    pub wall_time: Option<Duration>,
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
        let invalid = |msg: String| Err(SandboxError::Invalid(msg));
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
    /// The signal that ended it (`SIGSEGV`), read from a status of 128 + n.
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
    /// The sandbox ran out of memory.
    pub out_of_memory: bool,
    /// The user had as many processes as the limit allows when it was killed.
    pub process_limit_reached: bool,
    /// A writable place (`/work`, `/tmp`, `/dev/shm`, `/grader`) was full
    /// when the command failed.
    pub storage_full: bool,
    /// The sandbox died during the command and cannot run more.
    pub sandbox_lost: bool,
    /// Wall time from start to end (or kill).
    #[serde(with = "duration_ms")]
    pub wall_time: Duration,
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// What [`KILL_AND_SURVEY`] saw.
#[derive(Debug, PartialEq)]
struct Survey {
    /// Processes that were not the sandbox's own plumbing.
    processes: usize,
    /// Some writable place had (almost) no room left.
    storage_full: bool,
}

impl Survey {
    fn parse(text: &str) -> Self {
        let mut lines = text.lines();
        let processes = lines
            .next()
            .and_then(|l| l.trim().parse::<usize>().ok())
            .map_or(0, |n| n.saturating_sub(BASELINE_PROCESSES));
        // df -P: Filesystem 1024-blocks Used Available Capacity Mounted-on
        let storage_full = lines.skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
            matches!((number(1), number(3)), (Some(total), Some(free)) if total > 0 && free * 200 < total)
        });
        Survey {
            processes,
            storage_full,
        }
    }
}

/// Where an exec's stdin comes from.
pub(crate) enum Stdin {
    None,
    /// Attached and fed by the other side of a conversation.
    Peer,
    Bytes(Vec<u8>),
    Stream(Pin<Box<dyn AsyncRead + Send>>),
}

/// One exec as the sandbox layer runs it, without the student wrapper.
pub(crate) struct ExecRequest {
    pub argv: Vec<String>,
    pub user: &'static str,
    pub env: Vec<String>,
    pub cwd: String,
    pub stdin: Stdin,
    pub output_cap: u64,
    pub deadline: Duration,
}

impl ExecRequest {
    /// Docker's options for this exec.
    fn options(&self) -> CreateExecOptions<String> {
        CreateExecOptions {
            attach_stdin: Some(!matches!(self.stdin, Stdin::None)),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            env: Some(self.env.clone()),
            cmd: Some(self.argv.clone()),
            privileged: Some(false),
            user: Some(self.user.to_string()),
            working_dir: Some(self.cwd.clone()),
            detach_keys: None,
        }
    }
}

/// Why an exec's output stream stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ExecEnd {
    Finished,
    Deadline,
    OutputLimit,
    SandboxStopped,
    /// Docker's stream failed mid-way (one side of a conversation).
    StreamBroken,
    /// Stopped from outside before it ended by itself.
    #[default]
    Stopped,
}

pub(crate) struct RawExec {
    pub end: ExecEnd,
    pub exec_id: String,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub started: Instant,
}

/// Appends `chunk` to `buf` up to `cap`; returns true when bytes were dropped.
fn keep_up_to(buf: &mut Vec<u8>, chunk: &[u8], cap: u64) -> bool {
    let room = usize::try_from(cap)
        .unwrap_or(usize::MAX)
        .saturating_sub(buf.len());
    buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
    chunk.len() > room
}

impl Sandbox {
    /// Runs `command` and reports what happened. A command that overruns its
    /// deadline or output cap is killed together with every process of its
    /// user; so is anything a command leaves running after it exits.
    ///
    /// # Errors
    /// [`SandboxError::Invalid`] for a malformed command,
    /// [`SandboxError::Lost`] when the sandbox already died, infra errors
    /// when Docker fails. A student's failure is an outcome, not an error.
    pub async fn run(&self, command: &Command) -> Result<CommandOutcome, SandboxError> {
        self.ensure_alive()?;
        let request = self.command_request(command)?;
        let raw = self.exec(request).await?;
        self.settle(command, raw).await
    }

    /// Runs a judge and the student's program side by side, each as its own
    /// user, connected like an interactive judge: the judge's stdout is the
    /// student program's stdin and the student program's stdout is the
    /// judge's stdin. Each side's stderr is captured under its cap. Both
    /// share one deadline; when the judge ends, the student program's stdin
    /// is closed. The student's process cannot reach the judge's (another
    /// user, another process), so a verdict the judge prints on its stderr
    /// cannot be forged from the student's side.
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
            return Err(SandboxError::Invalid(
                "in a conversation each side's stdin is the other side's stdout; give no stdin bytes".into(),
            ));
        }
        let mut judge_request = self.command_request(judge)?;
        let mut student_request = self.command_request(student)?;
        judge_request.stdin = Stdin::Peer;
        student_request.stdin = Stdin::Peer;
        let (judge_raw, student_raw) = self.exec_pair(judge_request, student_request).await?;
        let mut judge_outcome = self.settle(judge, judge_raw).await?;
        let mut student_outcome = self.settle(student, student_raw).await?;
        // Memory is the sandbox's, shared by both sides: whichever side
        // noticed the out-of-memory end, it ended both.
        let out_of_memory = judge_outcome.out_of_memory || student_outcome.out_of_memory;
        judge_outcome.out_of_memory = out_of_memory;
        student_outcome.out_of_memory = out_of_memory;
        Ok((judge_outcome, student_outcome))
    }

    /// The exec that runs `command` inside the wrapper that sets its limits
    /// and kills what it leaves behind.
    fn command_request(&self, command: &Command) -> Result<ExecRequest, SandboxError> {
        command.validate()?;
        let limits = &self.spec.limits;
        let deadline = command
            .wall_time
            .map_or(limits.wall_time, |w| w.min(limits.wall_time));
        let output_cap = command
            .output_bytes
            .map_or(limits.output_bytes, |o| o.min(limits.output_bytes));
        let mut argv = vec![
            "/bin/sh".into(),
            "-c".into(),
            RUN_WRAPPER.into(),
            "agh-run".into(),
            limits.processes.to_string(),
            limits.file_size_blocks().to_string(),
        ];
        argv.extend(command.argv.iter().cloned());
        Ok(ExecRequest {
            argv,
            user: command.user.docker_user(),
            env: command_env(command),
            cwd: if command.cwd.is_empty() {
                command.user.default_cwd().into()
            } else {
                command.cwd.clone()
            },
            stdin: if command.stdin.is_empty() {
                Stdin::None
            } else {
                Stdin::Bytes(command.stdin.clone())
            },
            output_cap,
            deadline,
        })
    }

    /// Turns a finished exec of `command` into its outcome: exit status,
    /// the kill of whatever its user left, and whether the sandbox survived.
    async fn settle(
        &self,
        command: &Command,
        raw: RawExec,
    ) -> Result<CommandOutcome, SandboxError> {
        let limits = &self.spec.limits;
        let mut outcome = CommandOutcome {
            argv: command.argv.clone(),
            user: command.user,
            stdout_truncated: raw.stdout_truncated,
            stderr_truncated: raw.stderr_truncated,
            timed_out: raw.end == ExecEnd::Deadline,
            ..CommandOutcome::default()
        };
        if raw.end == ExecEnd::Finished {
            outcome.exit_code = self.exec_exit_code(&raw.exec_id).await?;
        }
        // After an overrun or a failure, kill what is left of the user (the
        // wrapper itself may have been killed by the student, leaving its
        // children) and look at why it failed. A clean exit skips this: the
        // wrapper has already killed everything.
        if raw.end != ExecEnd::SandboxStopped
            && outcome.exit_code != Some(0)
            && let Some(survey) = self.kill_and_survey(command.user).await?
        {
            let limit = usize::try_from(limits.processes).unwrap_or(usize::MAX);
            outcome.process_limit_reached =
                raw.end != ExecEnd::Finished && survey.processes + 1 >= limit;
            outcome.storage_full = survey.storage_full;
        }
        outcome.wall_time = raw.started.elapsed();
        outcome.signal = outcome.exit_code.and_then(signal_of_status);
        if self.ensure_alive().is_err() {
            outcome.sandbox_lost = true;
        } else if (raw.end != ExecEnd::Finished || outcome.exit_code.is_none_or(|c| c > 128))
            && let Some(oom) = self.check_alive().await?
        {
            outcome.sandbox_lost = true;
            outcome.out_of_memory = oom;
        }
        outcome.stdout = raw.stdout;
        outcome.stderr = raw.stderr;
        Ok(outcome)
    }

    /// Kills every process of `user` and surveys the sandbox; `None` when
    /// the sandbox is gone.
    async fn kill_and_survey(&self, user: User) -> Result<Option<Survey>, SandboxError> {
        let request = ExecRequest {
            argv: vec!["/bin/sh".into(), "-c".into(), KILL_AND_SURVEY.into()],
            user: user.docker_user(),
            env: base_env(user),
            cwd: "/".into(),
            stdin: Stdin::None,
            output_cap: 4096,
            deadline: KILL_GRACE,
        };
        let raw = match self.exec(request).await {
            Ok(raw) => raw,
            Err(SandboxError::Lost { .. }) => return Ok(None),
            // The command just ended its own sandbox (a fork bomb meeting
            // the pids bound): Docker refuses the killer with 409 "not
            // running". That is the command's outcome, not a Docker failure.
            Err(err @ SandboxError::Docker { .. }) => {
                return match self.check_alive().await? {
                    Some(_) => Ok(None),
                    None => Err(err),
                };
            }
            Err(err) => return Err(err),
        };
        if raw.end != ExecEnd::Finished {
            // The killer itself could not run: the only safe state left is no
            // sandbox at all.
            tracing::warn!(container = %self.id, "killing a command's processes failed; stopping the sandbox");
            self.teardown().await;
            self.mark_lost(
                "a command's processes could not be killed, so the sandbox was stopped".into(),
            );
            return Ok(None);
        }
        Ok(Some(Survey::parse(&String::from_utf8_lossy(&raw.stdout))))
    }

    pub(crate) async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, SandboxError> {
        let inspect = docker_call(
            "inspect exec",
            DOCKER_CALL_TIMEOUT,
            self.docker.inspect_exec(exec_id),
        )
        .await?;
        Ok(inspect.exit_code)
    }

    /// Creates and starts an exec, attached to its output and stdin.
    async fn start_exec(
        &self,
        options: CreateExecOptions<String>,
    ) -> Result<StartedExec, SandboxError> {
        let exec_id = docker_call(
            "create exec",
            DOCKER_CALL_TIMEOUT,
            self.docker.create_exec(&self.id, options),
        )
        .await?
        .id;
        let started = Instant::now();
        let StartExecResults::Attached { output, input } = docker_call(
            "start exec",
            DOCKER_CALL_TIMEOUT,
            self.docker.start_exec(&exec_id, None),
        )
        .await?
        else {
            return Err(SandboxError::Invalid(
                "docker started the exec detached".into(),
            ));
        };
        Ok(StartedExec {
            exec_id,
            started,
            output,
            input,
        })
    }

    /// A stream that yields when the sandbox stops running.
    fn stopped(
        &self,
    ) -> impl futures_util::Stream<
        Item = Result<bollard::models::ContainerWaitResponse, bollard::errors::Error>,
    > + Send
    + Unpin
    + '_ {
        self.docker.wait_container(
            &self.id,
            Some(WaitContainerOptions {
                condition: "not-running".into(),
            }),
        )
    }

    /// Starts an exec and collects its output until it ends, overruns, or
    /// the sandbox stops.
    pub(crate) async fn exec(&self, mut request: ExecRequest) -> Result<RawExec, SandboxError> {
        let StartedExec {
            exec_id,
            started,
            mut output,
            mut input,
        } = self.start_exec(request.options()).await?;
        let stdin = std::mem::replace(&mut request.stdin, Stdin::None);
        let feeder = tokio::spawn(async move {
            let copied = match stdin {
                Stdin::None | Stdin::Peer => return Ok(0),
                Stdin::Bytes(bytes) => input.write_all(&bytes).await.map(|()| bytes.len() as u64),
                Stdin::Stream(mut reader) => tokio::io::copy(&mut reader, &mut input).await,
            };
            // End of file for the command, whatever happened above.
            let _ = input.shutdown().await;
            copied
        });

        let mut stopped = self.stopped();
        let deadline = tokio::time::sleep(request.deadline);
        tokio::pin!(deadline);
        let mut raw = RawExec {
            end: ExecEnd::Finished,
            exec_id,
            stdout: Vec::new(),
            stderr: Vec::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            started,
        };
        let cap = request.output_cap;
        raw.end = loop {
            tokio::select! {
                biased;
                () = &mut deadline => break ExecEnd::Deadline,
                _ = stopped.next() => break ExecEnd::SandboxStopped,
                chunk = output.next() => match chunk {
                    None => break ExecEnd::Finished,
                    Some(Ok(LogOutput::StdOut { message })) => {
                        if keep_up_to(&mut raw.stdout, &message, cap) {
                            raw.stdout_truncated = true;
                            break ExecEnd::OutputLimit;
                        }
                    }
                    Some(Ok(LogOutput::StdErr { message })) => {
                        if keep_up_to(&mut raw.stderr, &message, cap) {
                            raw.stderr_truncated = true;
                            break ExecEnd::OutputLimit;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(source)) => {
                        feeder.abort();
                        if self.check_alive().await?.is_some() {
                            break ExecEnd::SandboxStopped;
                        }
                        return Err(SandboxError::Docker { operation: "read exec output", source });
                    }
                },
            }
        };
        feeder.abort();
        Ok(raw)
    }

    /// Runs two execs whose stdouts feed each other's stdin (see
    /// [`Sandbox::converse`]), until both end, one overruns its stderr cap,
    /// the shorter deadline passes, or the sandbox stops.
    async fn exec_pair(
        &self,
        judge: ExecRequest,
        student: ExecRequest,
    ) -> Result<(RawExec, RawExec), SandboxError> {
        let judge_exec = self.start_exec(judge.options()).await?;
        let student_exec = self.start_exec(student.options()).await?;
        let (stop_judge, judge_stop) = tokio::sync::oneshot::channel();
        let (stop_student, student_stop) = tokio::sync::oneshot::channel();
        let mut judge_pump = tokio::spawn(pump(
            judge_exec.output,
            student_exec.input,
            judge.output_cap,
            judge_stop,
        ));
        let mut student_pump = tokio::spawn(pump(
            student_exec.output,
            judge_exec.input,
            student.output_cap,
            student_stop,
        ));
        let mut stopped = self.stopped();
        let deadline = tokio::time::sleep(judge.deadline.min(student.deadline));
        tokio::pin!(deadline);
        let mut judge_end = None;
        let mut student_end = None;
        let end = loop {
            tokio::select! {
                biased;
                () = &mut deadline => break ExecEnd::Deadline,
                _ = stopped.next() => break ExecEnd::SandboxStopped,
                pumped = &mut judge_pump, if judge_end.is_none() => {
                    let pumped = pumped.unwrap_or_default();
                    let end = pumped.end;
                    judge_end = Some(pumped);
                    if end != ExecEnd::Finished { break end; }
                }
                pumped = &mut student_pump, if student_end.is_none() => {
                    let pumped = pumped.unwrap_or_default();
                    let end = pumped.end;
                    student_end = Some(pumped);
                    if end != ExecEnd::Finished { break end; }
                }
            }
            if judge_end.is_some() && student_end.is_some() {
                break ExecEnd::Finished;
            }
        };
        // A side still running when the pair ended shares the pair's end.
        let _ = stop_judge.send(());
        let _ = stop_student.send(());
        let mut judge_done = match judge_end {
            Some(done) => done,
            None => judge_pump.await.unwrap_or_default().ended_by(end),
        };
        let mut student_done = match student_end {
            Some(done) => done,
            None => student_pump.await.unwrap_or_default().ended_by(end),
        };
        let broken = judge_done.broken.take().or(student_done.broken.take());
        if let Some(source) = broken
            && self.check_alive().await?.is_none()
        {
            return Err(SandboxError::Docker {
                operation: "read conversation output",
                source,
            });
        }
        let raw = |exec_id, started, done: Pumped| RawExec {
            end: match done.end {
                ExecEnd::StreamBroken => ExecEnd::SandboxStopped,
                other => other,
            },
            exec_id,
            stdout: Vec::new(),
            stderr: done.stderr,
            stdout_truncated: false,
            stderr_truncated: done.stderr_truncated,
            started,
        };
        Ok((
            raw(judge_exec.exec_id, judge_exec.started, judge_done),
            raw(student_exec.exec_id, student_exec.started, student_done),
        ))
    }
}

/// An exec that has started, with its output stream and stdin.
struct StartedExec {
    exec_id: String,
    started: Instant,
    output: OutputStream,
    input: InputSink,
}

type OutputStream =
    Pin<Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;
type InputSink = Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

/// What one side of a conversation left when its pump stopped.
#[derive(Default)]
struct Pumped {
    end: ExecEnd,
    stderr: Vec<u8>,
    stderr_truncated: bool,
    /// Docker's error when the stream broke.
    broken: Option<bollard::errors::Error>,
}

impl Pumped {
    /// A pump stopped from outside ended the way the pair did.
    fn ended_by(mut self, end: ExecEnd) -> Self {
        if self.end == ExecEnd::Stopped {
            self.end = end;
        }
        self
    }
}

/// Forwards one side's stdout to the other side's stdin and keeps its
/// stderr up to `cap`, until its output ends (then the other side's stdin
/// is closed), its stderr overruns, or `stop` fires.
async fn pump(
    mut output: OutputStream,
    peer: InputSink,
    cap: u64,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Pumped {
    let mut pumped = Pumped {
        end: ExecEnd::Stopped,
        ..Pumped::default()
    };
    let mut peer = Some(peer);
    loop {
        let chunk = tokio::select! {
            biased;
            _ = &mut stop => return pumped,
            chunk = output.next() => chunk,
        };
        match chunk {
            None => break,
            Some(Ok(LogOutput::StdOut { message })) => {
                if let Some(input) = peer.as_mut() {
                    let wrote = tokio::select! {
                        biased;
                        _ = &mut stop => return pumped,
                        wrote = input.write_all(&message) => wrote,
                    };
                    // The other side stopped reading: drop what it would get.
                    if wrote.is_err() {
                        peer = None;
                    }
                }
            }
            Some(Ok(LogOutput::StdErr { message })) => {
                if keep_up_to(&mut pumped.stderr, &message, cap) {
                    pumped.stderr_truncated = true;
                    pumped.end = ExecEnd::OutputLimit;
                    return pumped;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(source)) => {
                pumped.end = ExecEnd::StreamBroken;
                pumped.broken = Some(source);
                return pumped;
            }
        }
    }
    if let Some(mut input) = peer {
        let _ = input.shutdown().await;
    }
    pumped.end = ExecEnd::Finished;
    pumped
}

/// The environment of every exec: an allowlist, nothing from the host.
fn base_env(user: User) -> Vec<String> {
    let (name, home) = match user {
        User::Student => ("student", "/home/student"),
        User::Grader => ("grader", "/home/grader"),
    };
    vec![
        "PATH=/usr/local/bin:/usr/bin:/bin".into(),
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

/// Reads a shell-style status of 128 + n as death by signal n.
fn signal_of_status(status: i64) -> Option<String> {
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
    let n = usize::try_from(status.checked_sub(128)?).ok()?;
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
    fn statuses_above_128_name_their_signal() {
        assert_eq!(signal_of_status(139).as_deref(), Some("SIGSEGV"));
        assert_eq!(signal_of_status(137).as_deref(), Some("SIGKILL"));
        assert_eq!(signal_of_status(1), None);
        assert_eq!(signal_of_status(128), None);
    }

    #[test]
    fn survey_reads_process_count_and_full_places() {
        let text = "40\nFilesystem 1024-blocks Used Available Capacity Mounted on\n\
                    none 8192 0 8192 0% /work\nnone 16384 16384 0 100% /tmp\n";
        assert_eq!(
            Survey::parse(text),
            Survey {
                processes: 37,
                storage_full: true
            }
        );
        let roomy = "3\nFilesystem 1024-blocks Used Available Capacity Mounted on\nnone 8192 10 8182 1% /work\n";
        assert_eq!(
            Survey::parse(roomy),
            Survey {
                processes: 0,
                storage_full: false
            }
        );
    }

    #[test]
    fn capture_stops_at_the_cap() {
        let mut buf = Vec::new();
        assert!(!keep_up_to(&mut buf, b"abc", 5));
        assert!(keep_up_to(&mut buf, b"defg", 5));
        assert_eq!(buf, b"abcde");
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
