//! `agh:grader/submission`: the pristine host-side copy of the submission:
//! listed from the walk its sandbox was filled from, read through cap-std
//! so no path leaves the submission's folder.

use std::io::Read;

use super::bindings::current::agh::grader::submission::Host;
use super::bindings::types::Error;
use super::state::{GraderState, InfraFailure};

/// Largest submission file a grader may read whole.
pub const MAX_SUBMISSION_FILE_BYTES: u64 = 16 * 1024 * 1024;

impl Host for GraderState {
    async fn list_files(&mut self) -> wasmtime::Result<Result<Vec<String>, Error>> {
        self.count_call()?;
        let session = self.session()?;
        Ok(Ok(session.submission.files().map(String::from).collect()))
    }

    async fn read_file(&mut self, path: String) -> wasmtime::Result<Result<Vec<u8>, Error>> {
        self.count_call()?;
        let session = self.session()?;
        read_confined(&session.submission_dir, &path, MAX_SUBMISSION_FILE_BYTES)
    }
}

/// Reads `path` inside `dir` as a regular file of at most `max` bytes.
/// cap-std refuses absolute paths, `..` and links that lead out of `dir`:
/// those are the grader's bad requests. Any other failure to read the
/// host's own copy is the host's, and ends the call as an infra error.
pub(crate) fn read_confined(
    dir: &cap_std::fs::Dir,
    path: &str,
    max: u64,
) -> wasmtime::Result<Result<Vec<u8>, Error>> {
    use std::io::ErrorKind;
    let host_failure =
        |err: std::io::Error| wasmtime::Error::new(InfraFailure(format!("reading {path}: {err}")));
    let file = match dir.open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == ErrorKind::NotFound => {
            return Ok(Err(Error::NotFound(path.into())));
        }
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::PermissionDenied | ErrorKind::InvalidInput | ErrorKind::NotADirectory
            ) =>
        {
            return Ok(Err(Error::Refused(format!("{path}: {err}"))));
        }
        Err(err) => return Err(host_failure(err)),
    };
    let meta = file.metadata().map_err(host_failure)?;
    if !meta.is_file() {
        return Ok(Err(Error::Refused(format!("{path} is not a regular file"))));
    }
    if meta.len() > max {
        return Ok(Err(Error::TooLarge(format!(
            "{path} has {} bytes; at most {max} are read",
            meta.len()
        ))));
    }
    let mut bytes = Vec::new();
    file.take(max)
        .read_to_end(&mut bytes)
        .map_err(host_failure)?;
    Ok(Ok(bytes))
}
