//! Joining the output folders of shards of one batch (`agh merge`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::journal::{
    BATCH_FILE, BatchIdentity, OpenMode, OutputDir, OutputError, OutputLock, load_results,
};
use crate::report::{Status, SubmissionResult};
use crate::transcript::TranscriptDir;
use crate::transcript::rescore::carry;

/// Why folders could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// An input is not an output folder of `agh grade`.
    #[error("{} is not an agh output folder (no {BATCH_FILE})", .0.display())]
    NotAnOutputFolder(PathBuf),
    /// An input was graded by another grader than the others.
    #[error("{} was graded by another grader; merge only shards of one batch", .0.display())]
    OtherGrader(PathBuf),
    /// A submission was graded in two inputs with different scores.
    #[error("{0} was graded in two inputs with different scores; refusing to pick one")]
    Conflict(String),
    /// An input's results could not be read.
    #[error(transparent)]
    Unreadable(OutputError),
    /// A result's transcript is missing, altered, or could not be copied.
    #[error("{0}")]
    Transcript(String),
    /// The merged folder could not be written.
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl MergeError {
    /// Whose doing the failure is: the operator's for the folders named,
    /// the host's when the merged folder cannot be written.
    #[must_use]
    pub fn blame(&self) -> crate::blame::Blame {
        match self {
            MergeError::Output(err) => err.blame(),
            MergeError::NotAnOutputFolder(_)
            | MergeError::OtherGrader(_)
            | MergeError::Conflict(_)
            | MergeError::Unreadable(_)
            | MergeError::Transcript(_) => crate::blame::Blame::Operator,
        }
    }
}

/// Merges the results in `inputs` into the new output folder `out`, with a
/// journal, so it can be exported or resumed like any other. Where a
/// submission appears twice, a graded result wins over an ungraded one.
/// Each result's transcript and its blobs are copied along, checked
/// against their digests first. Returns how many submissions the merged folder holds.
///
/// # Errors
/// [`MergeError`] naming the input or submission at fault.
pub fn merge_folders(inputs: &[PathBuf], out: &Path) -> Result<usize, MergeError> {
    let lock = OutputLock::acquire(out)?;
    let mut merged: BTreeMap<String, (SubmissionResult, &Path)> = BTreeMap::new();
    let mut plugin: Option<String> = None;
    for dir in inputs {
        let identity: BatchIdentity = std::fs::read(dir.join(BATCH_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| MergeError::NotAnOutputFolder(dir.clone()))?;
        if plugin
            .as_ref()
            .is_some_and(|p| *p != identity.plugin_sha256)
        {
            return Err(MergeError::OtherGrader(dir.clone()));
        }
        plugin = Some(identity.plugin_sha256);
        for result in load_results(dir).map_err(MergeError::Unreadable)? {
            if let Some((earlier, _)) = merged.get(&result.submission) {
                let both_graded =
                    earlier.status == Status::Graded && result.status == Status::Graded;
                #[allow(clippy::float_cmp)] // the same submission graded twice must score the same
                if both_graded && earlier.score != result.score {
                    return Err(MergeError::Conflict(result.submission));
                }
                if earlier.status == Status::Graded && result.status != Status::Graded {
                    continue;
                }
            }
            merged.insert(result.submission.clone(), (result, dir.as_path()));
        }
    }
    let id = format!("merged-{}", std::process::id());
    let mut output = OutputDir::open(
        lock,
        &id,
        plugin.as_deref().unwrap_or_default(),
        OpenMode::New,
    )?;
    let to = TranscriptDir::new(out);
    for (result, dir) in merged.values() {
        // The transcript first: a result never names one not yet there.
        if let Some(reference) = &result.transcript {
            let from = TranscriptDir::new(dir);
            let entries = from.load(reference).map_err(|e| {
                MergeError::Transcript(format!(
                    "{}: the transcript of {}: {e}",
                    dir.display(),
                    result.submission
                ))
            })?;
            carry(&from, &to, Some(reference), &entries).map_err(|e| {
                MergeError::Transcript(format!("the transcript of {}: {e}", result.submission))
            })?;
        }
        output.record(result)?;
    }
    Ok(merged.len())
}
