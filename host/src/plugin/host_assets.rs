//! `agh:grader/assets`: course files the grader reads itself, from the
//! sources the operator granted, confined with cap-std.

use super::bindings::agh::grader::assets::Host;
use super::bindings::types::Error;
use super::host_submission::read_confined;
use super::state::GraderState;
use crate::sandbox::host_tree_entries;

/// Largest asset file a grader may read whole (expected outputs, not datasets).
pub const MAX_ASSET_READ_BYTES: u64 = 16 * 1024 * 1024;

impl Host for GraderState {
    async fn list_files(&mut self, name: String) -> wasmtime::Result<Result<Vec<String>, Error>> {
        self.count_call()?;
        let asset = match self.granted_asset(&name) {
            Ok(asset) => asset,
            Err(err) => return Ok(Err(err)),
        };
        let root = asset.root.join(&asset.path);
        Ok(match host_tree_entries(&root) {
            Ok(entries) => Ok(entries.into_iter().filter(|e| e.source.is_some()).map(|e| e.path).collect()),
            Err(err) => Err(Error::Unavailable(err.to_string())),
        })
    }

    async fn read(&mut self, name: String, path: String) -> wasmtime::Result<Result<Vec<u8>, Error>> {
        self.count_call()?;
        let asset = match self.granted_asset(&name) {
            Ok(asset) => asset,
            Err(err) => return Ok(Err(err)),
        };
        let dir = match cap_std::fs::Dir::open_ambient_dir(asset.root.join(&asset.path), cap_std::ambient_authority()) {
            Ok(dir) => dir,
            Err(err) => return Ok(Err(Error::Unavailable(format!("asset {name}: {err}")))),
        };
        Ok(read_confined(&dir, &path, MAX_ASSET_READ_BYTES))
    }
}
