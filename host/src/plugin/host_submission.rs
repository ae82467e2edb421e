//! `agh:grader/submission`: the pristine host-side copy of the submission,
//! read through cap-std so no path leaves the submission's folder.

use std::io::Read;

use super::bindings::agh::grader::submission::Host;
use super::bindings::types::Error;
use super::state::GraderState;
use crate::sandbox::{MAX_SUBMISSION_BYTES, host_tree_entries};

/// Largest submission file a grader may read whole.
pub const MAX_SUBMISSION_FILE_BYTES: u64 = 16 * 1024 * 1024;

impl Host for GraderState {
    async fn list_files(&mut self) -> wasmtime::Result<Result<Vec<String>, Error>> {
        self.count_call()?;
        let session = self.session()?;
        Ok(
            match host_tree_entries(&session.submission_path, MAX_SUBMISSION_BYTES) {
                Ok(entries) => Ok(entries
                    .into_iter()
                    .filter(|e| e.source.is_some())
                    .map(|e| e.path)
                    .collect()),
                Err(err) => Err(Error::Refused(err.to_string())),
            },
        )
    }

    async fn read_file(&mut self, path: String) -> wasmtime::Result<Result<Vec<u8>, Error>> {
        self.count_call()?;
        let session = self.session()?;
        Ok(read_confined(
            &session.submission_dir,
            &path,
            MAX_SUBMISSION_FILE_BYTES,
        ))
    }
}

/// Reads `path` inside `dir` as a regular file of at most `max` bytes.
/// cap-std refuses absolute paths, `..` and links that lead out of `dir`.
pub(crate) fn read_confined(
    dir: &cap_std::fs::Dir,
    path: &str,
    max: u64,
) -> Result<Vec<u8>, Error> {
    let file = match dir.open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound(path.into()));
        }
        Err(err) => return Err(Error::Refused(format!("{path}: {err}"))),
    };
    let meta = file
        .metadata()
        .map_err(|e| Error::Unavailable(format!("{path}: {e}")))?;
    if !meta.is_file() {
        return Err(Error::Refused(format!("{path} is not a regular file")));
    }
    if meta.len() > max {
        return Err(Error::TooLarge(format!(
            "{path} has {} bytes; at most {max} are read",
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    file.take(max)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Unavailable(format!("{path}: {e}")))?;
    Ok(bytes)
}
