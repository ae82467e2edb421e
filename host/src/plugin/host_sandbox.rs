//! `agh:grader/sandbox`: commands, files and assets in the submission's
//! sandbox, each checked against policy before the host acts.

use std::time::{Duration, Instant};

use super::bindings::current::agh::grader::sandbox::Host;
use super::bindings::types::{self, Error};
use super::state::{GraderState, InfraFailure};
use crate::report::{Limit, Verdict};
use crate::sandbox::{Command, CommandOutcome, MAX_READ_BYTES, Owner, SandboxError, User};

/// Largest file a grader may write into the sandbox in one call.
pub const MAX_WRITE_BYTES: usize = 16 * 1024 * 1024;

/// Most `sandbox.reset` calls one `grade` may make: each boots a new gVisor
/// sandbox, so this bounds what one grader can cost.
pub const MAX_RESETS: u32 = 32;

/// Maps a sandbox failure by its cause: the grader's mistakes, the
/// student's state and a sandbox the student brought down are errors it can
/// handle; Docker and host failures stop it as infra errors.
fn handle<T>(err: SandboxError) -> wasmtime::Result<Result<T, Error>> {
    match err {
        SandboxError::Refused(m) => Ok(Err(Error::Refused(m))),
        SandboxError::NotFound(m) => Ok(Err(Error::NotFound(m))),
        SandboxError::Lost { reason } => Ok(Err(Error::SandboxLost(reason))),
        SandboxError::SubmissionState(m) | SandboxError::Uncopyable(m) => {
            Ok(Err(Error::SubmissionState(m)))
        }
        infra @ (SandboxError::Docker { .. }
        | SandboxError::Timeout { .. }
        | SandboxError::Gone { .. }
        | SandboxError::Io { .. }) => Err(wasmtime::Error::new(InfraFailure(infra.to_string()))),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The grader's view of `outcome`. Its output moves to the grader: the
/// record kept for the result holds none, so what students print never
/// piles up in agh's memory over a batch.
fn hand_over(outcome: &mut CommandOutcome) -> types::CommandResult {
    types::CommandResult {
        exit_code: outcome.exit_code,
        signal: outcome.signal.clone(),
        stdout: std::mem::take(&mut outcome.stdout),
        stderr: std::mem::take(&mut outcome.stderr),
        stdout_truncated: outcome.stdout_truncated,
        stderr_truncated: outcome.stderr_truncated,
        timed_out: outcome.timed_out,
        cpu_time_exceeded: outcome.cpu_time_exceeded,
        out_of_memory: outcome.out_of_memory,
        process_limit_reached: outcome.process_limit_reached,
        file_size_exceeded: outcome.file_size_exceeded,
        storage_full: outcome.storage_full,
        sandbox_lost: outcome.sandbox_lost,
        limit: outcome.limit.map(types::Limit::from),
        verdict: Verdict::of_outcome(outcome).map(types::Verdict::from),
        wall_time_ms: millis(outcome.wall_time),
        cpu_time_ms: millis(outcome.cpu_time),
        peak_memory_bytes: outcome.peak_memory_bytes,
    }
}

impl GraderState {
    fn add_host_time(&mut self, started: Instant) {
        self.host_time += started.elapsed();
    }

    /// Fits `command` into what is left of the submission's command time:
    /// its deadline is cut to what is left, or `None` when nothing is.
    fn within_submission_time(
        &mut self,
        mut command: Command,
    ) -> wasmtime::Result<Option<Command>> {
        let spent = self.student_clock.spent();
        let session = self.session()?;
        let Some(left) = session
            .command_time
            .checked_sub(spent)
            .filter(|left| !left.is_zero())
        else {
            return Ok(None);
        };
        command.wall_clock_cap = Some(left);
        Ok(Some(command))
    }

    /// Keeps both sides' records for the result and hands their outputs to
    /// the grader.
    fn record_conversation(
        &mut self,
        (mut judge, mut student): (CommandOutcome, CommandOutcome),
    ) -> wasmtime::Result<types::Conversation> {
        let conversation = types::Conversation {
            judge: hand_over(&mut judge),
            student: hand_over(&mut student),
        };
        let commands = &mut self.session()?.commands;
        commands.push(judge);
        commands.push(student);
        Ok(conversation)
    }
}

/// What a command gets once the submission's command time is used up: it
/// does not run, and it ends as time-limit at once, for the grader to
/// score like any other.
fn out_of_submission_time(command: &Command) -> CommandOutcome {
    let mut outcome = CommandOutcome {
        argv: command.argv.clone(),
        user: command.user,
        timed_out: true,
        stderr: b"agh: not run: the submission's commands used up the time the operator allows one submission\n".to_vec(),
        ..CommandOutcome::default()
    };
    outcome.limit = Limit::of(&outcome);
    outcome
}

impl Host for GraderState {
    async fn run(
        &mut self,
        cmd: types::Command,
    ) -> wasmtime::Result<Result<types::CommandResult, Error>> {
        self.count_call()?;
        let asked = Command::from(cmd);
        let Some(command) = self.within_submission_time(asked.clone())? else {
            let mut outcome = out_of_submission_time(&asked);
            let result = hand_over(&mut outcome);
            self.session()?.commands.push(outcome);
            return Ok(Ok(result));
        };
        let sandbox = self.session()?.sandbox.clone();
        let started = Instant::now();
        self.student_clock.start();
        let ran = sandbox.run(&command).await;
        self.student_clock.stop();
        self.add_host_time(started);
        match ran {
            Ok(mut outcome) => {
                let result = hand_over(&mut outcome);
                self.session()?.commands.push(outcome);
                Ok(Ok(result))
            }
            Err(err) => handle(err),
        }
    }

    async fn converse(
        &mut self,
        judge: types::Command,
        student: types::Command,
    ) -> wasmtime::Result<Result<types::Conversation, Error>> {
        self.count_call()?;
        let (judge, student) = (Command::from(judge), Command::from(student));
        // Both sides share one deadline: the student's is cut to what is
        // left of the submission's command time, and the judge's with it.
        let Some(student) = self.within_submission_time(student.clone())? else {
            let ended = (
                out_of_submission_time(&judge),
                out_of_submission_time(&student),
            );
            return self.record_conversation(ended).map(Ok);
        };
        let sandbox = self.session()?.sandbox.clone();
        let started = Instant::now();
        self.student_clock.start();
        let ran = sandbox.converse(&judge, &student).await;
        self.student_clock.stop();
        self.add_host_time(started);
        match ran {
            Ok(ended) => self.record_conversation(ended).map(Ok),
            Err(err) => handle(err),
        }
    }

    async fn write_file(
        &mut self,
        path: String,
        contents: Vec<u8>,
        read_only: bool,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.count_call()?;
        let Some(owner) = Owner::of_path(&path) else {
            return Ok(Err(Error::Refused(format!(
                "{path:?}: files may be written below /work, /tmp, /grader or /assets"
            ))));
        };
        if contents.len() > MAX_WRITE_BYTES {
            return Ok(Err(Error::TooLarge(format!(
                "{} bytes; at most {MAX_WRITE_BYTES} per write",
                contents.len()
            ))));
        }
        let sandbox = self.session()?.sandbox.clone();
        let started = Instant::now();
        let written = sandbox.write_file(&path, contents, owner, read_only).await;
        self.add_host_time(started);
        written.map_or_else(handle, |()| Ok(Ok(())))
    }

    async fn read_file(
        &mut self,
        path: String,
        max_bytes: u64,
    ) -> wasmtime::Result<Result<Vec<u8>, Error>> {
        self.count_call()?;
        let sandbox = self.session()?.sandbox.clone();
        let started = Instant::now();
        let read = sandbox
            .read_file(&path, max_bytes.min(MAX_READ_BYTES), User::Grader)
            .await;
        self.add_host_time(started);
        read.map_or_else(handle, |(bytes, _truncated)| Ok(Ok(bytes)))
    }

    async fn place_asset(&mut self, name: String) -> wasmtime::Result<Result<(), Error>> {
        self.count_call()?;
        let asset = match self.resolved_asset(&name)? {
            Ok(asset) => asset,
            Err(err) => return Ok(Err(err)),
        };
        let (dest, entries) = asset.placement();
        let sandbox = self.session()?.sandbox.clone();
        let started = Instant::now();
        let placed = sandbox.copy_in(&dest, entries, asset.owner(), true).await;
        self.add_host_time(started);
        placed.map_or_else(handle, |()| Ok(Ok(())))
    }

    async fn reset(&mut self, assets: Vec<String>) -> wasmtime::Result<Result<(), Error>> {
        self.count_call()?;
        let mut placements = Vec::with_capacity(assets.len());
        for name in &assets {
            match self.resolved_asset(name)? {
                Ok(asset) => placements.push(asset),
                Err(err) => return Ok(Err(err)),
            }
        }
        let session = self.session()?;
        // Resets are asked for after a command brought the sandbox down, so
        // running out of them is the submission's doing: the sandbox stays
        // lost and the grader fails what is left with its verdict.
        if session.resets >= MAX_RESETS {
            return Ok(Err(Error::SandboxLost(format!(
                "the submission's programs brought the sandbox down more than {MAX_RESETS} times; \
                 it is not reset again"
            ))));
        }
        session.resets += 1;
        let old = session.sandbox.clone();
        let submission = session.submission.clone();
        let first_copy = session.submission_sha256.clone();
        let started = Instant::now();
        // A reset rebuilds the submission's sandbox (after a program brought
        // it down, or so a test does not see what earlier ones left): its
        // time goes with the commands', not with the grader's own work.
        self.student_clock.start();
        let reset = old.reset(&submission).await;
        let (fresh, copied) = match reset {
            Ok(reset) => reset,
            Err(err) => {
                self.student_clock.stop();
                self.add_host_time(started);
                return handle(err);
            }
        };
        // From here on the fresh sandbox is the session's, so the batch
        // tears it down whatever happens next.
        self.session()?.sandbox = fresh.clone();
        if copied != first_copy {
            self.student_clock.stop();
            self.add_host_time(started);
            return Err(wasmtime::Error::new(InfraFailure(
                "the submission's files changed on the host while it was graded; \
                 it is graded again from the start"
                    .into(),
            )));
        }
        let mut done = Ok(());
        for asset in placements {
            let (dest, entries) = asset.placement();
            done = fresh.copy_in(&dest, entries, asset.owner(), true).await;
            if done.is_err() {
                break;
            }
        }
        self.student_clock.stop();
        self.add_host_time(started);
        done.map_or_else(handle, |()| Ok(Ok(())))
    }
}
