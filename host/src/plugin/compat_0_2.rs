//! Contract `agh:grader@0.2.0`, frozen and still served, like 0.1.0: each
//! call is converted to the current contract, handled there, and its answer
//! converted back. 0.2.0 differs from 0.3.0 only in what a grader says of
//! itself (no places of its own) and of its scores (no total, no extra
//! credit), so the conversions below are one-to-one.

use super::bindings::current::agh::grader as now;
use super::bindings::current::types as new;
use super::bindings::v0_2::agh::grader::{assets, log, sandbox, submission};
use super::bindings::v0_2::types as old;
use super::state::GraderState;

impl old::Host for GraderState {}

fn command(cmd: old::Command) -> new::Command {
    new::Command {
        argv: cmd.argv,
        stdin: cmd.stdin,
        cwd: cmd.cwd,
        env: cmd.env,
        user: match cmd.user {
            old::User::Student => new::User::Student,
            old::User::Grader => new::User::Grader,
        },
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

fn limit_back(limit: new::Limit) -> old::Limit {
    match limit {
        new::Limit::Processes => old::Limit::Processes,
        new::Limit::Memory => old::Limit::Memory,
        new::Limit::FileSize => old::Limit::FileSize,
        new::Limit::Storage => old::Limit::Storage,
        new::Limit::CpuTime => old::Limit::CpuTime,
        new::Limit::WallTime => old::Limit::WallTime,
        new::Limit::Output => old::Limit::Output,
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
        cpu_time_exceeded: result.cpu_time_exceeded,
        out_of_memory: result.out_of_memory,
        process_limit_reached: result.process_limit_reached,
        file_size_exceeded: result.file_size_exceeded,
        storage_full: result.storage_full,
        sandbox_lost: result.sandbox_lost,
        limit: result.limit.map(limit_back),
        verdict: result.verdict.map(verdict_back),
        wall_time_ms: result.wall_time_ms,
        cpu_time_ms: result.cpu_time_ms,
        peak_memory_bytes: result.peak_memory_bytes,
    }
}

fn error_back(error: new::Error) -> old::Error {
    match error {
        new::Error::Refused(m) => old::Error::Refused(m),
        new::Error::NotFound(m) => old::Error::NotFound(m),
        new::Error::SubmissionState(m) => old::Error::SubmissionState(m),
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
    super::compat::forward_sandbox!();

    async fn reset(&mut self, assets: Vec<String>) -> wasmtime::Result<Result<(), old::Error>> {
        back(now::sandbox::Host::reset(self, assets).await, |()| ())
    }
}

super::compat::forward_reads_and_log!();

/// An 0.2.0 grader's description in current terms: no places of its own.
pub(crate) fn info(info: old::GraderInfo) -> new::GraderInfo {
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
            fuel: info.budget.fuel,
            wall_time_ms: info.budget.wall_time_ms,
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

/// The context in 0.2.0 terms (the same record).
pub(crate) fn context(context: &new::GradeContext) -> old::GradeContext {
    old::GradeContext {
        submission: context.submission.clone(),
        settings: context.settings.clone(),
    }
}

/// An 0.2.0 grader's answer in current terms: no total of its own.
pub(crate) fn graded(
    answer: Result<old::Report, old::GradeError>,
) -> Result<new::Report, new::GradeError> {
    let report = answer.map_err(|e| match e {
        old::GradeError::Submission(m) => new::GradeError::Submission(m),
        old::GradeError::Grader(m) => new::GradeError::Grader(m),
    })?;
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
