//! Where results go: "exactly one final result per submission" as a
//! trait. The output folder of a batch (`batch::OutputDir`, with its
//! journal) is one sink, results kept in memory another, a service's
//! store the next. Whether a result is final is its status's to say
//! ([`Status::is_final`]): an infra error is recorded and tried again.

use crate::report::{Status, SubmissionResult};

/// Why a sink could not take or give back a result; the sink's own error
/// inside, for its caller to look at.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// A store of results, one final result per submission.
pub trait ResultSink: Send {
    /// Records `result`, replacing what the sink held for its submission,
    /// unless that was a final result of the same content.
    ///
    /// # Errors
    /// That second final result, or a failure to store it; what was stored
    /// before stays whole.
    fn record(&mut self, result: &SubmissionResult) -> Result<(), SinkError>;

    /// True when `name` with content `sha256` already has a final result.
    fn is_done(&self, name: &str, sha256: &str) -> bool;

    /// How many earlier attempts at `name` ended in infra errors.
    fn infra_attempts(&self, name: &str) -> u32;

    /// True when the sink holds a submission its grader graded.
    fn graded_any(&self) -> bool;

    /// Every result it holds, sorted by submission.
    ///
    /// # Errors
    /// When they cannot be read back.
    fn results(&self) -> Result<Vec<SubmissionResult>, SinkError>;
}

/// Results held in memory, for a run with no output folder.
#[derive(Debug, Default)]
pub struct MemorySink {
    results: std::collections::BTreeMap<String, SubmissionResult>,
    infra_attempts: std::collections::HashMap<String, u32>,
}

impl ResultSink for MemorySink {
    fn record(&mut self, result: &SubmissionResult) -> Result<(), SinkError> {
        if self.is_done(&result.submission, sha256_of(result)) {
            return Err(format!("{:?} already has a final result", result.submission).into());
        }
        if !result.status.is_final() {
            let attempts = u32::try_from(result.retries.len() + 1).unwrap_or(u32::MAX);
            *self
                .infra_attempts
                .entry(result.submission.clone())
                .or_default() += attempts;
        }
        self.results
            .insert(result.submission.clone(), result.clone());
        Ok(())
    }

    fn is_done(&self, name: &str, sha256: &str) -> bool {
        self.results
            .get(name)
            .is_some_and(|held| held.status.is_final() && sha256_of(held) == sha256)
    }

    fn infra_attempts(&self, name: &str) -> u32 {
        self.infra_attempts.get(name).copied().unwrap_or(0)
    }

    fn graded_any(&self) -> bool {
        self.results.values().any(|r| r.status == Status::Graded)
    }

    fn results(&self) -> Result<Vec<SubmissionResult>, SinkError> {
        Ok(self.results.values().cloned().collect())
    }
}

/// The digest of what was graded; empty for a result before any copy.
fn sha256_of(result: &SubmissionResult) -> &str {
    result
        .provenance
        .as_ref()
        .map_or("", |p| p.submission_sha256.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A final result stays the only one; an infra error gives way to the
    /// next attempt and counts its attempts.
    #[test]
    fn memory_keeps_one_final_result_per_submission() {
        let mut sink = MemorySink::default();
        let infra = SubmissionResult::failed("alice", Status::InfraError, "docker".into());
        sink.record(&infra).expect("an infra error is recorded");
        assert_eq!(sink.infra_attempts("alice"), 1);
        let graded = SubmissionResult::failed("alice", Status::Graded, String::new());
        sink.record(&graded).expect("the final result replaces it");
        assert!(sink.graded_any());
        let again = sink.record(&graded).expect_err("a second final result");
        assert!(
            again.to_string().contains("already has a final result"),
            "{again}"
        );
        let held = sink.results().expect("results");
        assert_eq!((held.len(), held[0].status), (1, Status::Graded));
    }
}
