//! Conversions between the contract's types (`wit/`) and agh's own, in one
//! place: what a grader asks for becomes a sandbox [`Command`]; facts and
//! verdicts go back as the contract names them; a grader's test results
//! become the result JSON's records.

use std::time::Duration;

use super::bindings::types;
use crate::report::{Limit, TestRecord, TestStatus, TestVisibility, Verdict};
use crate::sandbox::{Command, User};

impl From<Verdict> for types::Verdict {
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Accepted => Self::Accepted,
            Verdict::Wrong => Self::Wrong,
            Verdict::CompileError => Self::CompileError,
            Verdict::RuntimeError => Self::RuntimeError,
            Verdict::TimeLimit => Self::TimeLimit,
            Verdict::MemoryLimit => Self::MemoryLimit,
            Verdict::OutputLimit => Self::OutputLimit,
            Verdict::ResourceLimit => Self::ResourceLimit,
        }
    }
}

impl From<types::Verdict> for Verdict {
    fn from(verdict: types::Verdict) -> Self {
        match verdict {
            types::Verdict::Accepted => Self::Accepted,
            types::Verdict::Wrong => Self::Wrong,
            types::Verdict::CompileError => Self::CompileError,
            types::Verdict::RuntimeError => Self::RuntimeError,
            types::Verdict::TimeLimit => Self::TimeLimit,
            types::Verdict::MemoryLimit => Self::MemoryLimit,
            types::Verdict::OutputLimit => Self::OutputLimit,
            types::Verdict::ResourceLimit => Self::ResourceLimit,
        }
    }
}

impl From<Limit> for types::Limit {
    fn from(limit: Limit) -> Self {
        match limit {
            Limit::Processes => Self::Processes,
            Limit::Memory => Self::Memory,
            Limit::FileSize => Self::FileSize,
            Limit::Storage => Self::Storage,
            Limit::CpuTime => Self::CpuTime,
            Limit::WallTime => Self::WallTime,
            Limit::Output => Self::Output,
        }
    }
}

impl From<types::Visibility> for TestVisibility {
    fn from(visibility: types::Visibility) -> Self {
        match visibility {
            types::Visibility::Visible => Self::Visible,
            types::Visibility::AfterDueDate => Self::AfterDueDate,
            types::Visibility::AfterPublished => Self::AfterPublished,
            types::Visibility::Hidden => Self::Hidden,
        }
    }
}

/// What the grader asked to run; the host fits it to the sandbox's limits.
impl From<types::Command> for Command {
    fn from(cmd: types::Command) -> Self {
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
            wall_clock_cap: None,
            cpu_time: None,
            output_bytes: cmd.output_bytes,
        }
    }
}

/// A test as the result JSON records it: passed only with full marks and
/// the verdict `accepted`.
impl From<types::TestResult> for TestRecord {
    fn from(test: types::TestResult) -> Self {
        let verdict = Verdict::from(test.verdict);
        #[allow(clippy::float_cmp)]
        let passed = test.score == test.max_score && verdict == Verdict::Accepted;
        TestRecord {
            status: if passed {
                TestStatus::Passed
            } else {
                TestStatus::Failed
            },
            visibility: test.visibility.into(),
            name: test.name,
            score: test.score,
            max_score: test.max_score,
            verdict,
            output: test.output,
        }
    }
}
