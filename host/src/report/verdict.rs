//! Verdicts: what a command's outcome means for the student.

use serde::{Deserialize, Serialize};

use crate::sandbox::CommandOutcome;

/// The student-side verdict of one command or test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// compares anything: `None` when it exited 0 and the grader decides.
    /// Facts come only from the daemon and the host, never from parsing
    /// what the student printed.
    #[must_use]
    pub fn of_outcome(outcome: &CommandOutcome) -> Option<Verdict> {
        if outcome.out_of_memory {
            Some(Verdict::MemoryLimit)
        } else if outcome.process_limit_reached
            || (outcome.sandbox_lost && !outcome.timed_out && outcome.exit_code.is_none())
        {
            // A sandbox that stops mid-command without running out of memory
            // hit one of its host-side limits (pids).
            Some(Verdict::ResourceLimit)
        } else if outcome.timed_out {
            Some(Verdict::TimeLimit)
        } else if outcome.stdout_truncated || outcome.stderr_truncated {
            Some(Verdict::OutputLimit)
        } else if outcome.storage_full || outcome.signal.as_deref() == Some("SIGXFSZ") {
            Some(Verdict::ResourceLimit)
        } else if outcome.sandbox_lost || outcome.exit_code != Some(0) {
            Some(Verdict::RuntimeError)
        } else {
            None
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
