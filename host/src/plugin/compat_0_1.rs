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
    super::compat::forward_sandbox!();
}

super::compat::forward_reads_and_log!();

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
