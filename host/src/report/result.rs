//! The result of grading one submission, as written to `<out>/<name>.json`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Verdict;
use std::time::Duration;

use crate::sandbox::{CommandOutcome, Limit, Limits, Runtime, User, duration_ms};

/// How grading a submission ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The grader produced a valid report; scores count.
    Graded,
    /// The grader misbehaved; nothing is scored.
    PluginError,
    /// Docker, storage or the host failed; retry; nothing is scored.
    InfraError,
    /// The submission itself cannot be accepted (a link or special file,
    /// too many files); nothing is scored.
    InvalidSubmission,
}

impl Status {
    /// What becomes of a submission whose grading failed, by whose doing
    /// the failure was: the one map from blame to status. The student's is
    /// scored as invalid; the grader's is a plugin error (never charged);
    /// an outside cause (the host, the operator's setup) is an infra error,
    /// tried again.
    #[must_use]
    pub fn of_failure(blame: crate::blame::Blame) -> Self {
        use crate::blame::Blame;
        match blame {
            Blame::Student => Status::InvalidSubmission,
            Blame::Grader => Status::PluginError,
            Blame::Operator | Blame::Host => Status::InfraError,
        }
    }

    /// Whether a result of this status is the submission's final one: an
    /// infra error is not (it had an outside cause, and is tried again).
    #[must_use]
    pub fn is_final(self) -> bool {
        self != Status::InfraError
    }

    /// The name results use (`graded`, `plugin-error`, ...).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Status::Graded => "graded",
            Status::PluginError => "plugin-error",
            Status::InfraError => "infra-error",
            Status::InvalidSubmission => "invalid-submission",
        }
    }
}

/// One test in a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TestRecord {
    /// Test name.
    pub name: String,
    /// Points earned.
    pub score: f64,
    /// Points possible.
    pub max_score: f64,
    /// `passed` when full marks, else `failed`.
    pub status: TestStatus,
    /// What the grader concluded.
    pub verdict: Verdict,
    /// Feedback.
    pub output: String,
    /// Who may see it, and when.
    pub visibility: TestVisibility,
}

/// Whether a test earned its full marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TestStatus {
    /// Full marks, accepted.
    Passed,
    /// Anything less.
    Failed,
}

/// Who may see a test's feedback, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TestVisibility {
    /// The student, at once.
    Visible,
    /// The student, after the due date.
    AfterDueDate,
    /// The student, once grades are published.
    AfterPublished,
    /// Staff only.
    Hidden,
}

impl TestVisibility {
    /// The name Gradescope's results.json uses.
    #[must_use]
    pub fn gradescope_name(self) -> &'static str {
        match self {
            TestVisibility::Visible => "visible",
            TestVisibility::AfterDueDate => "after_due_date",
            TestVisibility::AfterPublished => "after_published",
            TestVisibility::Hidden => "hidden",
        }
    }
}

/// Where a result came from: enough to reproduce it or distrust it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Provenance {
    /// agh's version.
    pub agh_version: String,
    /// sha256 of the grader component.
    pub plugin_sha256: String,
    /// The contract version.
    pub wit_version: String,
    /// Grader name and version as it described itself.
    pub grader: String,
    /// Image reference.
    pub image: String,
    /// Image id the daemon reported.
    pub image_id: String,
    /// OCI runtime.
    pub runtime: Runtime,
    /// The sandbox was checked from inside to be gVisor this batch.
    pub runtime_verified: bool,
    /// True when the operator chose plain runc: not safe for student code.
    pub insecure: bool,
    /// Limits in force.
    pub limits: Limits,
    /// Requests the policy lowered.
    pub clamped: Vec<String>,
    /// sha256 of the submission's files (paths and contents).
    pub submission_sha256: String,
    /// The assets the grader could place, with their digests.
    pub assets: Vec<AssetDigest>,
    /// Set when the result was rescored from a transcript, not graded in
    /// a sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescored: Option<Rescored>,
    /// `gradescope` when a Gradescope autograder computed the verdict
    /// (`builtin:gradescope`): inside the sandbox, beside the student's
    /// code, with Gradescope's trust rather than a native grader's
    /// guarantee that the student cannot reach the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compat: Option<String>,
}

/// Where a rescored result's replies came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Rescored {
    /// The output folder whose transcripts were replayed.
    pub from: String,
    /// That folder's batch.
    pub batch: String,
    /// The grader that recorded them (its sha256).
    pub recorded_by: String,
}

/// An asset's identity in a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AssetDigest {
    /// The name the grader uses.
    pub name: String,
    /// sha256 over the asset's file paths and contents' digests.
    pub sha256: String,
    /// Served from the cache while its storage was unreachable.
    pub stale: bool,
    /// Its storage was down and nothing was cached.
    pub unavailable: bool,
}

/// Timings in milliseconds (instantiation in microseconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Timings {
    /// Everything, sandbox creation to teardown.
    pub total_ms: u64,
    /// Creating, starting and filling the sandbox.
    pub sandbox_setup_ms: u64,
    /// The grader's `grade` call, host calls included.
    pub grade_ms: u64,
    /// The part of the grade call spent in the grader's own code, in µs.
    pub grader_own_us: u64,
    /// Store creation to the first call.
    pub instantiate_us: u64,
    /// Fuel the grader burned (about one unit per wasm instruction).
    #[serde(default)]
    pub grader_fuel: u64,
}

/// Name of the folder of an output folder that holds one result per
/// submission, as `NAME.json`.
pub const RESULTS_DIR: &str = "results";

/// Where the result of submission `name` lives in the output folder `out`.
///
/// # Errors
/// When `name` cannot be a file name.
pub fn result_path(
    out: &std::path::Path,
    name: &str,
) -> Result<std::path::PathBuf, crate::names::NameError> {
    crate::names::check_name(name)?;
    Ok(out.join(RESULTS_DIR).join(format!("{name}.json")))
}

/// The version of the result JSON this agh writes. A reader takes this
/// one and every one before it (results written before versions began
/// have none, read as 0); a later one is refused, not misread.
pub const RESULT_SCHEMA: u32 = 1;

/// Where the JSON Schema of a result is kept, from the repository's root.
pub const RESULT_SCHEMA_FILE: &str = "docs/result.schema.json";

/// The JSON Schema of a result as this agh writes it, derived from the
/// types themselves; [`RESULT_SCHEMA_FILE`] holds it for readers.
#[must_use]
pub fn result_json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(SubmissionResult)).unwrap_or_default()
}

/// The result of one submission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubmissionResult {
    /// The version of this JSON ([`RESULT_SCHEMA`] when written here).
    #[serde(default)]
    pub schema: u32,
    /// Submission name (its folder name).
    pub submission: String,
    /// How grading ended.
    pub status: Status,
    /// Why, when not graded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Sum of test scores, or the total the grader set in their place
    /// (contract 0.3.0; 0 unless graded).
    pub score: f64,
    /// Sum of test maximums (0 unless graded).
    pub max_score: f64,
    /// Tests (empty unless graded).
    pub tests: Vec<TestRecord>,
    /// Overall feedback from the grader.
    pub output: String,
    /// Every command run.
    pub commands: Vec<CommandRecord>,
    /// The grader's log.
    pub log: Vec<String>,
    /// Where it came from.
    pub provenance: Option<Provenance>,
    /// How long it took.
    pub timings: Timings,
    /// Infra failures that made agh grade it again, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retries: Vec<Retry>,
    /// Every call the grader made into the sandbox and its reply, when
    /// the batch recorded it: staff's, never shown to students.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<crate::transcript::TranscriptRef>,
}

/// A command as a result keeps it: its own type, so a change inside the
/// sandbox layer cannot rename a field of a file users keep. What it
/// printed is not kept (the grader judged it; feedback carries what
/// students see).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommandRecord {
    /// The argv that ran.
    pub argv: Vec<String>,
    /// The user that ran it.
    pub user: User,
    /// Exit status, when the command ended by itself.
    pub exit_code: Option<i64>,
    /// The signal that ended it.
    pub signal: Option<String>,
    /// Stdout went past the cap; the command was killed.
    pub stdout_truncated: bool,
    /// Stderr went past the cap; the command was killed.
    pub stderr_truncated: bool,
    /// The deadline passed; the command was killed.
    pub timed_out: bool,
    /// A process used up its CPU time.
    #[serde(default)]
    pub cpu_time_exceeded: bool,
    /// The sandbox ran out of memory.
    pub out_of_memory: bool,
    /// The user met its process limit.
    pub process_limit_reached: bool,
    /// A write stopped at the file-size limit.
    #[serde(default)]
    pub file_size_exceeded: bool,
    /// A writable place was full when the command failed.
    pub storage_full: bool,
    /// The sandbox died during the command.
    pub sandbox_lost: bool,
    /// The limit that ended the command, by the documented precedence.
    #[serde(default)]
    pub limit: Option<Limit>,
    /// Wall time from start to end (or kill), in milliseconds.
    #[serde(with = "duration_ms")]
    #[schemars(with = "u64")]
    pub wall_time: Duration,
    /// CPU time of all its processes, in milliseconds.
    #[serde(default, with = "duration_ms")]
    #[schemars(with = "u64")]
    pub cpu_time: Duration,
    /// The largest resident memory of any one of its processes.
    #[serde(default)]
    pub peak_memory_bytes: u64,
}

impl From<&CommandOutcome> for CommandRecord {
    fn from(outcome: &CommandOutcome) -> Self {
        Self {
            argv: outcome.argv.clone(),
            user: outcome.user,
            exit_code: outcome.exit_code,
            signal: outcome.signal.clone(),
            stdout_truncated: outcome.stdout_truncated,
            stderr_truncated: outcome.stderr_truncated,
            timed_out: outcome.timed_out,
            cpu_time_exceeded: outcome.cpu_time_exceeded,
            out_of_memory: outcome.out_of_memory,
            process_limit_reached: outcome.process_limit_reached,
            file_size_exceeded: outcome.file_size_exceeded,
            storage_full: outcome.storage_full,
            sandbox_lost: outcome.sandbox_lost,
            limit: outcome.limit,
            wall_time: outcome.wall_time,
            cpu_time: outcome.cpu_time,
            peak_memory_bytes: outcome.peak_memory_bytes,
        }
    }
}

/// One infra failure before the attempt that produced a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Retry {
    /// The attempt that failed, from 1.
    pub attempt: u32,
    /// Why it failed.
    pub reason: String,
}

/// What `builtin:gradescope` reports, word for word, when an autograder
/// left no usable results.json: Gradescope's own message.
pub const GRADESCOPE_FAILED: &str = "The autograder failed to execute correctly. Please ensure \
                                     that your submission is valid. Contact your course staff \
                                     for help in debugging this issue.";

impl SubmissionResult {
    /// Whether a Gradescope autograder ran and left no usable results.json:
    /// scored 0, as Gradescope scores it, but for the batch's stop rule a
    /// sign that the autograder, not the student, may be broken.
    #[must_use]
    pub fn autograder_failed(&self) -> bool {
        self.status == Status::Graded
            && self
                .provenance
                .as_ref()
                .is_some_and(|p| p.compat.as_deref() == Some("gradescope"))
            && self.output == GRADESCOPE_FAILED
    }

    /// A result that scores nothing.
    #[must_use]
    pub fn failed(submission: &str, status: Status, error: String) -> Self {
        Self {
            schema: RESULT_SCHEMA,
            submission: submission.into(),
            status,
            error: Some(error),
            score: 0.0,
            max_score: 0.0,
            tests: Vec::new(),
            output: String::new(),
            commands: Vec::new(),
            log: Vec::new(),
            provenance: None,
            timings: Timings::default(),
            retries: Vec::new(),
            transcript: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema file in the repository is the one the types give: a
    /// renamed or retyped field changes it, in the same change.
    /// `AGH_WRITE_SCHEMA=1 cargo test -p agh result_schema` writes it.
    #[test]
    fn the_result_schema_file_matches_the_types() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(RESULT_SCHEMA_FILE);
        let derived = serde_json::to_string_pretty(&result_json_schema()).expect("schema") + "\n";
        if std::env::var_os("AGH_WRITE_SCHEMA").is_some() {
            std::fs::write(&path, &derived).expect("write the schema");
        }
        let kept = std::fs::read_to_string(&path).expect("the schema file");
        assert!(
            kept == derived,
            "{} differs from the result types; run `AGH_WRITE_SCHEMA=1 cargo test -p agh result_schema` \
             and bump RESULT_SCHEMA if a field changed meaning",
            path.display()
        );
    }
}
