//! Contract `agh:grader@0.1.0`, frozen and still served: each call is
//! converted to the current contract, handled there, and its answer
//! converted back, so both versions share one implementation and one set
//! of checks.

use super::bindings::current::agh::grader as now;
use super::bindings::current::types as new;
use super::bindings::v0_1::agh::grader::{assets, log, sandbox, submission};
use super::bindings::v0_1::types as old;
use super::state::GraderState;
use crate::policy::Budget;

impl old::Host for GraderState {}

fn user(user: old::User) -> new::User {
    match user {
        old::User::Student => new::User::Student,
        old::User::Grader => new::User::Grader,
    }
}

fn command(cmd: old::Command) -> new::Command {
    new::Command {
        argv: cmd.argv,
        stdin: cmd.stdin,
        cwd: cmd.cwd,
        env: cmd.env,
        user: user(cmd.user),
        wall_time_ms: cmd.wall_time_ms,
        output_bytes: cmd.output_bytes,
    }
}

fn verdict_back(verdict: new::Verdict) -> old::Verdict {
    match verdict {
        new::Verdict::Accepted => old::Verdict::Accepted,
        new::Verdict::Wrong => old::Verdict::Wrong,
        new::Verdict::CompileError => old::Verdict::CompileError,
        new::Verdict::RuntimeError => old::Verdict::RuntimeError,
        new::Verdict::TimeLimit => old::Verdict::TimeLimit,
        new::Verdict::MemoryLimit => old::Verdict::MemoryLimit,
        new::Verdict::OutputLimit => old::Verdict::OutputLimit,
        new::Verdict::ResourceLimit => old::Verdict::ResourceLimit,
    }
}

fn verdict(verdict: old::Verdict) -> new::Verdict {
    match verdict {
        old::Verdict::Accepted => new::Verdict::Accepted,
        old::Verdict::Wrong => new::Verdict::Wrong,
        old::Verdict::CompileError => new::Verdict::CompileError,
        old::Verdict::RuntimeError => new::Verdict::RuntimeError,
        old::Verdict::TimeLimit => new::Verdict::TimeLimit,
        old::Verdict::MemoryLimit => new::Verdict::MemoryLimit,
        old::Verdict::OutputLimit => new::Verdict::OutputLimit,
        old::Verdict::ResourceLimit => new::Verdict::ResourceLimit,
    }
}

fn result_back(result: new::CommandResult) -> old::CommandResult {
    old::CommandResult {
        exit_code: result.exit_code,
        signal: result.signal,
        stdout: result.stdout,
        stderr: result.stderr,
        stdout_truncated: result.stdout_truncated,
        stderr_truncated: result.stderr_truncated,
        timed_out: result.timed_out,
        out_of_memory: result.out_of_memory,
        verdict: result.verdict.map(verdict_back),
        wall_time_ms: result.wall_time_ms,
    }
}

/// 0.1.0 has no `submission-state`: such errors reach an old grader as
/// `refused`, as they did.
fn error_back(error: new::Error) -> old::Error {
    match error {
        new::Error::Refused(m) | new::Error::SubmissionState(m) => old::Error::Refused(m),
        new::Error::NotFound(m) => old::Error::NotFound(m),
        new::Error::SandboxLost(m) => old::Error::SandboxLost(m),
        new::Error::TooLarge(m) => old::Error::TooLarge(m),
    }
}

fn back<T, U>(
    answer: wasmtime::Result<Result<T, new::Error>>,
    convert: impl FnOnce(T) -> U,
) -> wasmtime::Result<Result<U, old::Error>> {
    answer.map(|inner| inner.map(convert).map_err(error_back))
}

impl sandbox::Host for GraderState {
    async fn run(
        &mut self,
        cmd: old::Command,
    ) -> wasmtime::Result<Result<old::CommandResult, old::Error>> {
        back(
            now::sandbox::Host::run(self, command(cmd)).await,
            result_back,
        )
    }

    async fn converse(
        &mut self,
        judge: old::Command,
        student: old::Command,
    ) -> wasmtime::Result<Result<old::Conversation, old::Error>> {
        back(
            now::sandbox::Host::converse(self, command(judge), command(student)).await,
            |c| old::Conversation {
                judge: result_back(c.judge),
                student: result_back(c.student),
            },
        )
    }

    async fn write_file(
        &mut self,
        path: String,
        contents: Vec<u8>,
        read_only: bool,
    ) -> wasmtime::Result<Result<(), old::Error>> {
        back(
            now::sandbox::Host::write_file(self, path, contents, read_only).await,
            |()| (),
        )
    }

    async fn read_file(
        &mut self,
        path: String,
        max_bytes: u64,
    ) -> wasmtime::Result<Result<Vec<u8>, old::Error>> {
        back(
            now::sandbox::Host::read_file(self, path, max_bytes).await,
            |b| b,
        )
    }

    async fn place_asset(&mut self, name: String) -> wasmtime::Result<Result<(), old::Error>> {
        back(now::sandbox::Host::place_asset(self, name).await, |()| ())
    }
}

impl submission::Host for GraderState {
    async fn list_files(&mut self) -> wasmtime::Result<Result<Vec<String>, old::Error>> {
        back(now::submission::Host::list_files(self).await, |f| f)
    }

    async fn read_file(&mut self, path: String) -> wasmtime::Result<Result<Vec<u8>, old::Error>> {
        back(now::submission::Host::read_file(self, path).await, |b| b)
    }
}

impl assets::Host for GraderState {
    async fn list_files(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Vec<String>, old::Error>> {
        back(now::assets::Host::list_files(self, name).await, |f| f)
    }

    async fn read(
        &mut self,
        name: String,
        path: String,
    ) -> wasmtime::Result<Result<Vec<u8>, old::Error>> {
        back(now::assets::Host::read(self, name, path).await, |b| b)
    }
}

impl log::Host for GraderState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Debug => now::log::Level::Debug,
            log::Level::Info => now::log::Level::Info,
            log::Level::Warn => now::log::Level::Warn,
        };
        now::log::Host::log(self, level, message).await
    }
}

/// An old grader's description in current terms; it cannot declare a
/// budget, so it gets [`Budget::CONTRACT_0_1`].
pub(crate) fn info(info: old::GraderInfo) -> new::GraderInfo {
    let budget = Budget::CONTRACT_0_1;
    new::GraderInfo {
        name: info.name,
        version: info.version,
        api_version: info.api_version,
        image: info.image,
        limits: new::Limits {
            wall_time_ms: info.limits.wall_time_ms,
            memory_bytes: info.limits.memory_bytes,
            processes: info.limits.processes,
            output_bytes: info.limits.output_bytes,
            file_size_bytes: info.limits.file_size_bytes,
            tmpfs_bytes: info.limits.tmpfs_bytes,
        },
        budget: new::Budget {
            fuel: budget.fuel,
            wall_time_ms: u64::try_from(budget.wall_time.as_millis()).unwrap_or(u64::MAX),
        },
        assets: info
            .assets
            .into_iter()
            .map(|a| new::Asset {
                name: a.name,
                source: a.source,
                target: a.target,
            })
            .collect(),
        places: Vec::new(),
    }
}

/// The context in old terms.
pub(crate) fn context(context: &new::GradeContext) -> old::GradeContext {
    old::GradeContext {
        submission: context.submission.clone(),
        settings: context.settings.clone(),
    }
}

/// An old grader's answer in current terms: its `err` was always the
/// grader's failure.
pub(crate) fn graded(answer: Result<old::Report, String>) -> Result<new::Report, new::GradeError> {
    let report = answer.map_err(new::GradeError::Grader)?;
    Ok(new::Report {
        tests: report
            .tests
            .into_iter()
            .map(|t| new::TestResult {
                name: t.name,
                score: t.score,
                max_score: t.max_score,
                verdict: verdict(t.verdict),
                output: t.output,
                visibility: match t.visibility {
                    old::Visibility::Visible => new::Visibility::Visible,
                    old::Visibility::AfterDueDate => new::Visibility::AfterDueDate,
                    old::Visibility::AfterPublished => new::Visibility::AfterPublished,
                    old::Visibility::Hidden => new::Visibility::Hidden,
                },
            })
            .collect(),
        output: report.output,
        score: None,
    })
}
