//! Verdicts: what a command's outcome means for the student.

use serde::{Deserialize, Serialize};

use crate::sandbox::CommandOutcome;
pub use crate::sandbox::Limit;

/// The student-side verdict of one command or test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Ran to completion and the grader accepted the result.
    Accepted,
    /// Ran to completion with a wrong result.
    Wrong,
    /// The build step failed.
    CompileError,
    /// Non-zero exit or death by a signal.
    RuntimeError,
    /// Killed at the wall-clock deadline.
    TimeLimit,
    /// Ran out of memory.
    MemoryLimit,
    /// Wrote more output than the cap.
    OutputLimit,
    /// Hit the process or file-size limit.
    ResourceLimit,
}

impl Verdict {
    /// The name results use (`accepted`, `time-limit`, ...).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Wrong => "wrong",
            Verdict::CompileError => "compile-error",
            Verdict::RuntimeError => "runtime-error",
            Verdict::TimeLimit => "time-limit",
            Verdict::MemoryLimit => "memory-limit",
            Verdict::OutputLimit => "output-limit",
            Verdict::ResourceLimit => "resource-limit",
        }
    }

    /// The verdict a command's outcome implies on its own, before the grader
    /// compares anything: `None` when it exited 0 within every limit and
    /// the grader decides. Facts come only from the agent and the daemon,
    /// never from parsing what the student printed.
    #[must_use]
    pub fn of_outcome(outcome: &CommandOutcome) -> Option<Verdict> {
        match Limit::of(outcome) {
            Some(limit) => Some(limit.verdict()),
            None if outcome.sandbox_lost || outcome.exit_code != Some(0) => {
                Some(Verdict::RuntimeError)
            }
            None => None,
        }
    }
}

// `Limit` itself is a fact of the sandbox's; what it means for the
// student is decided here.
impl Limit {
    /// The verdict a student gets for it.
    #[must_use]
    pub fn verdict(self) -> Verdict {
        match self {
            Limit::Processes | Limit::FileSize | Limit::Storage => Verdict::ResourceLimit,
            Limit::Memory => Verdict::MemoryLimit,
            Limit::CpuTime | Limit::WallTime => Verdict::TimeLimit,
            Limit::Output => Verdict::OutputLimit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome() -> CommandOutcome {
        CommandOutcome {
            exit_code: Some(0),
            ..CommandOutcome::default()
        }
    }

    #[test]
    fn names_match_what_results_serialize() {
        use crate::report::Status;
        let verdicts = [
            Verdict::Accepted,
            Verdict::Wrong,
            Verdict::CompileError,
            Verdict::RuntimeError,
            Verdict::TimeLimit,
            Verdict::MemoryLimit,
            Verdict::OutputLimit,
            Verdict::ResourceLimit,
        ];
        for v in verdicts {
            assert_eq!(serde_json::to_value(v).unwrap(), v.name());
        }
        for s in [
            Status::Graded,
            Status::PluginError,
            Status::InfraError,
            Status::InvalidSubmission,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.name());
        }
    }

    #[test]
    fn the_limit_that_caused_the_others_wins() {
        let bomb = CommandOutcome {
            process_limit_reached: true,
            out_of_memory: true,
            timed_out: true,
            ..outcome()
        };
        assert_eq!(Limit::of(&bomb), Some(Limit::Processes));
        let filled = CommandOutcome {
            storage_full: true,
            timed_out: true,
            exit_code: None,
            ..outcome()
        };
        assert_eq!(Verdict::of_outcome(&filled), Some(Verdict::ResourceLimit));
        let ignored_sigxfsz = CommandOutcome {
            file_size_exceeded: true,
            exit_code: Some(1),
            ..outcome()
        };
        assert_eq!(Limit::of(&ignored_sigxfsz), Some(Limit::FileSize));
        let spun = CommandOutcome {
            cpu_time_exceeded: true,
            timed_out: true,
            ..outcome()
        };
        assert_eq!(Limit::of(&spun), Some(Limit::CpuTime));
        assert_eq!(Verdict::of_outcome(&spun), Some(Verdict::TimeLimit));
        for limit in [Limit::Processes, Limit::CpuTime, Limit::Output] {
            assert_eq!(serde_json::to_value(limit).unwrap(), limit.name());
        }
    }

    #[test]
    fn memory_beats_time_when_both_are_set() {
        let o = CommandOutcome {
            out_of_memory: true,
            timed_out: true,
            sandbox_lost: true,
            ..outcome()
        };
        assert_eq!(Verdict::of_outcome(&o), Some(Verdict::MemoryLimit));
    }

    #[test]
    fn a_clean_exit_leaves_the_verdict_to_the_grader() {
        assert_eq!(Verdict::of_outcome(&outcome()), None);
        let o = CommandOutcome {
            exit_code: Some(139),
            signal: Some("SIGSEGV".into()),
            ..outcome()
        };
        assert_eq!(Verdict::of_outcome(&o), Some(Verdict::RuntimeError));
    }
}
