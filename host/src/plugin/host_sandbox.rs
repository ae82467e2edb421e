//! `agh:grader/sandbox`: commands, files and assets in the submission's
//! sandbox, each checked against policy before the host acts.

use std::time::{Duration, Instant};

use super::bindings::agh::grader::sandbox::Host;
use super::bindings::types::{self, Error};
use super::state::{GraderState, InfraFailure};
use crate::report::Verdict;
use crate::sandbox::{Command, CommandOutcome, MAX_READ_BYTES, Owner, SandboxError, User};

/// Largest file a grader may write into the sandbox in one call.
pub const MAX_WRITE_BYTES: usize = 16 * 1024 * 1024;

/// Maps a sandbox failure: the grader's own mistakes and a lost sandbox are
/// errors it can handle; Docker and host failures stop it as infra errors.
fn handle<T>(err: SandboxError) -> wasmtime::Result<Result<T, Error>> {
    match err {
        SandboxError::Invalid(m) => Ok(Err(Error::Refused(m))),
        SandboxError::NotFound(m) => Ok(Err(Error::NotFound(m))),
        SandboxError::Lost { reason } => Ok(Err(Error::SandboxLost(reason))),
        infra => Err(wasmtime::Error::new(InfraFailure(infra.to_string()))),
    }
}

fn owner_of(path: &str) -> Option<Owner> {
    let place = path.split('/').nth(1)?;
    match place {
        "work" | "tmp" => Some(Owner::Student),
        "grader" => Some(Owner::Grader),
        "assets" => Some(Owner::Root),
        _ => None,
    }
}

pub(crate) fn verdict_to_wit(verdict: Verdict) -> types::Verdict {
    match verdict {
        Verdict::Accepted => types::Verdict::Accepted,
        Verdict::Wrong => types::Verdict::Wrong,
        Verdict::CompileError => types::Verdict::CompileError,
        Verdict::RuntimeError => types::Verdict::RuntimeError,
        Verdict::TimeLimit => types::Verdict::TimeLimit,
        Verdict::MemoryLimit => types::Verdict::MemoryLimit,
        Verdict::OutputLimit => types::Verdict::OutputLimit,
        Verdict::ResourceLimit => types::Verdict::ResourceLimit,
    }
}

fn command_from_wit(cmd: types::Command) -> Command {
    Command {
        argv: cmd.argv,
        stdin: cmd.stdin,
        cwd: cmd.cwd.unwrap_or_default(),
        env: cmd.env,
        user: match cmd.user {
            types::User::Student => User::Student,
            types::User::Grader => User::Grader,
        },
        wall_time: cmd.wall_time_ms.map(Duration::from_millis),
        cpu_time: None,
        output_bytes: cmd.output_bytes,
    }
}

/// The grader's view of `outcome`. Its output moves to the grader: the
/// record kept for the result holds none, so what students print never
/// piles up in agh's memory over a batch.
fn hand_over(outcome: &mut CommandOutcome) -> types::CommandResult {
    let verdict = Verdict::of_outcome(outcome).map(verdict_to_wit);
    types::CommandResult {
        exit_code: outcome.exit_code,
        signal: outcome.signal.clone(),
        stdout: std::mem::take(&mut outcome.stdout),
        stderr: std::mem::take(&mut outcome.stderr),
        stdout_truncated: outcome.stdout_truncated,
        stderr_truncated: outcome.stderr_truncated,
        timed_out: outcome.timed_out,
        out_of_memory: outcome.out_of_memory,
        verdict,
        wall_time_ms: u64::try_from(outcome.wall_time.as_millis()).unwrap_or(u64::MAX),
    }
}

impl GraderState {
    fn add_host_time(&mut self, started: Instant) {
        self.host_time += started.elapsed();
    }
}

impl Host for GraderState {
    async fn run(
        &mut self,
        cmd: types::Command,
    ) -> wasmtime::Result<Result<types::CommandResult, Error>> {
        self.count_call()?;
        let command = command_from_wit(cmd);
        let sandbox = self.session()?.sandbox.clone();
        let started = Instant::now();
        let ran = sandbox.run(&command).await;
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
        let judge = command_from_wit(judge);
        let student = command_from_wit(student);
        let sandbox = self.session()?.sandbox.clone();
        let started = Instant::now();
        let ran = sandbox.converse(&judge, &student).await;
        self.add_host_time(started);
        match ran {
            Ok((mut judge, mut student)) => {
                let conversation = types::Conversation {
                    judge: hand_over(&mut judge),
                    student: hand_over(&mut student),
                };
                let commands = &mut self.session()?.commands;
                commands.push(judge);
                commands.push(student);
                Ok(Ok(conversation))
            }
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
        let Some(owner) = owner_of(&path) else {
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
}
