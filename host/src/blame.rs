//! Whose doing a failure is. Every library error answers `blame()`; what
//! becomes of a submission (its [`crate::report::Status`]), the command
//! line's exit code and, later, an HTTP status are each mapped from it in
//! one place, never from an error's message or variant name.

/// Whose doing a failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Blame {
    /// The student's: what the submission holds, or what its programs did.
    /// Scored (an invalid submission), never retried.
    Student,
    /// The grader's: it failed on its own, or asked for what the rules or
    /// the operator's policy refuse.
    Grader,
    /// The operator's: a configuration, a folder or a command line that
    /// cannot be used as given.
    Operator,
    /// The host's: Docker, the disk, a sandbox lost from outside. Retried,
    /// never scored.
    Host,
}

impl Blame {
    /// The blame when the operator made the request themselves (`agh
    /// sandbox run`): what the rules refuse of a grader is then theirs.
    #[must_use]
    pub fn when_the_operator_asked(self) -> Blame {
        match self {
            Blame::Grader => Blame::Operator,
            other => other,
        }
    }
}
