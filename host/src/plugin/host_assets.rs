//! `agh:grader/assets`: course files the grader reads itself, from the
//! sources the operator granted, confined with cap-std.

use super::bindings::current::agh::grader::assets::Host;
use super::bindings::types::Error;
use super::state::{GraderState, InfraFailure};

/// Largest asset file a grader may read whole (expected outputs, not datasets).
pub const MAX_ASSET_READ_BYTES: u64 = 16 * 1024 * 1024;

impl Host for GraderState {
    async fn list_files(&mut self, name: String) -> wasmtime::Result<Result<Vec<String>, Error>> {
        self.count_call()?;
        let asset = match self.resolved_asset(&name)? {
            Ok(asset) => asset,
            Err(err) => return Ok(Err(err)),
        };
        Ok(Ok(asset.files.iter().map(|f| f.path.clone()).collect()))
    }

    async fn read(
        &mut self,
        name: String,
        path: String,
    ) -> wasmtime::Result<Result<Vec<u8>, Error>> {
        self.count_call()?;
        let asset = match self.resolved_asset(&name)? {
            Ok(asset) => asset,
            Err(err) => return Ok(Err(err)),
        };
        // Only files resolved (and hashed) at preflight can be read: a path
        // the grader makes up never reaches the file system.
        let Some(file) = asset.files.iter().find(|f| f.path == path) else {
            return Ok(Err(Error::NotFound(format!(
                "{path} is not a file of asset {name:?}"
            ))));
        };
        if file.size > MAX_ASSET_READ_BYTES {
            return Ok(Err(Error::TooLarge(format!(
                "{path} has {} bytes; at most {MAX_ASSET_READ_BYTES}",
                file.size
            ))));
        }
        let cache = self.session()?.memory.clone();
        // The file was resolved and hashed before the batch; failing to
        // read it now is the host's, never the grader's or the student's.
        match cache.read_small(&file.sha256, &file.host_path) {
            Ok(bytes) => Ok(Ok(bytes.to_vec())),
            Err(err) => Err(wasmtime::Error::new(InfraFailure(format!(
                "reading {path} of asset {name:?}: {err}"
            )))),
        }
    }
}
