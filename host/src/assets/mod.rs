//! Course assets: resolving what a grader declared, from a local folder or
//! S3-compatible storage, into verified files on the host that can be
//! streamed into sandboxes.
//!
//! Every declared asset is resolved once, before a batch starts (preflight).
//! S3 objects are fetched into the [`cache::AssetCache`], revalidated by
//! ETag, and served from the cache with a warning when S3 cannot be reached.
//! An asset that is missing or refused stops the batch before any sandbox
//! starts; one that is unavailable only because storage is down (and not
//! cached) lets the batch go on, and each submission that places it becomes
//! an infra error.

pub mod cache;
mod s3;
pub use s3::http_client as s3_http_client;

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::SourceLocation;
use crate::policy::GrantedAsset;
use crate::sandbox::{EntrySource, FileEntry, Owner, host_tree_entries, open_regular_file};

/// Most bytes a local asset folder may hold (apparent sizes): far above any
/// course's data, but a bound, so a sparse file in a shared folder is
/// refused instead of read for hours.
pub const MAX_LOCAL_ASSET_BYTES: u64 = 16 * 1024 * 1024 * 1024;
pub use cache::AssetCache;
pub use s3::S3Timeouts;

/// Most files one asset may hold.
pub const MAX_ASSET_FILES: usize = 10_000;

/// Why an asset cannot be used.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AssetError {
    /// It does not exist at its source.
    #[error("{0}")]
    NotFound(String),
    /// It leads outside its grant, or has an unsafe name.
    #[error("{0}")]
    Refused(String),
    /// Its source cannot be reached and no copy is cached.
    #[error("{0}")]
    Unavailable(String),
}

/// A declared asset that cannot be granted before grading, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssetProblem {
    /// A local asset's file or folder is not there.
    #[error("asset {name:?}: {} does not exist (source {source_name:?} is {})", .path.display(), .root.display())]
    Missing {
        /// The asset's name.
        name: String,
        /// Its source's name.
        source_name: String,
        /// The source's folder.
        root: PathBuf,
        /// Where the asset was looked for.
        path: PathBuf,
    },
    /// It resolved to no files.
    #[error("{asset}: holds no files")]
    Empty {
        /// The asset, as `asset "NAME" (SOURCE:PATH)`.
        asset: String,
    },
    /// It holds more files than an asset may.
    #[error("{asset}: {files} files; at most {MAX_ASSET_FILES}")]
    TooManyFiles {
        /// The asset, as `asset "NAME" (SOURCE:PATH)`.
        asset: String,
        /// How many it holds.
        files: usize,
    },
    /// It is not found at its source, or leads outside its grant.
    #[error("{asset}: {cause}")]
    Unusable {
        /// The asset, as `asset "NAME" (SOURCE:PATH)`.
        asset: String,
        /// Why.
        cause: AssetError,
    },
}

/// One file of a resolved asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedFile {
    /// Path inside the asset (`/`-separated); the file name for a single file.
    pub path: String,
    /// Where its bytes are on the host.
    #[serde(skip)]
    pub host_path: PathBuf,
    /// sha256 of the contents.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// An asset ready to place and read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedAsset {
    /// The grant behind it.
    pub grant: GrantedAsset,
    /// Its files; empty when unavailable.
    pub files: Vec<ResolvedFile>,
    /// True when the asset is one file rather than a folder.
    pub single_file: bool,
    /// Set when storage was down and nothing was cached.
    pub unavailable: Option<String>,
    /// Served from the cache because the source was unreachable.
    pub stale: bool,
}

impl ResolvedAsset {
    /// sha256 over the files' paths and digests: the asset's identity in
    /// provenance.
    #[must_use]
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for file in &self.files {
            hasher.update(file.path.as_bytes());
            hasher.update([0]);
            hasher.update(file.sha256.as_bytes());
        }
        crate::layout::hex(&hasher.finalize())
    }

    /// The files as entries to copy into the sandbox, with the folder to
    /// copy them into.
    #[must_use]
    pub fn placement(&self) -> (String, Vec<FileEntry>) {
        let source = |f: &ResolvedFile| Some(EntrySource::HostFile(f.host_path.clone()));
        if self.single_file {
            let (dir, name) = self
                .grant
                .target
                .rsplit_once('/')
                .unwrap_or(("", &self.grant.target));
            let entries = self.files.iter().map(|f| FileEntry {
                path: name.into(),
                source: source(f),
                executable: false,
            });
            return (dir.to_string(), entries.collect());
        }
        let entries = self.files.iter().map(|f| FileEntry {
            path: f.path.clone(),
            source: source(f),
            executable: false,
        });
        (self.grant.target.clone(), entries.collect())
    }

    /// Who owns the placed files.
    #[must_use]
    pub fn owner(&self) -> Owner {
        self.grant.owner
    }
}

/// Checks a path inside an asset: relative, no `..`, no empty parts.
fn safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..")
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = open_regular_file(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(crate::layout::hex(&hasher.finalize()))
}

/// Resolves a local asset: the real path must stay inside the source folder,
/// and the tree holds only regular files and folders.
fn resolve_local(
    root: &Path,
    grant: &GrantedAsset,
) -> Result<(Vec<ResolvedFile>, bool), AssetError> {
    let root = root
        .canonicalize()
        .map_err(|e| AssetError::Unavailable(format!("source folder {}: {e}", root.display())))?;
    let location = root.join(&grant.path);
    let real = match location.canonicalize() {
        Ok(real) => real,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(AssetError::NotFound(format!(
                "{} does not exist",
                location.display()
            )));
        }
        Err(err) => {
            return Err(AssetError::Unavailable(format!(
                "{}: {err}",
                location.display()
            )));
        }
    };
    if !real.starts_with(&root) || real != location {
        return Err(AssetError::Refused(format!(
            "{} is, or passes through, a link",
            location.display()
        )));
    }
    let describe = |path: &str, host: PathBuf| -> Result<ResolvedFile, AssetError> {
        let size = std::fs::symlink_metadata(&host)
            .map_err(|e| AssetError::Unavailable(e.to_string()))?
            .len();
        let sha256 = sha256_file(&host)
            .map_err(|e| AssetError::Refused(format!("{}: {e}", host.display())))?;
        Ok(ResolvedFile {
            path: path.into(),
            host_path: host,
            sha256,
            size,
        })
    };
    if real.is_file() {
        let name = grant.path.rsplit('/').next().unwrap_or(&grant.path);
        return Ok((vec![describe(name, real)?], true));
    }
    let entries = host_tree_entries(&real, MAX_LOCAL_ASSET_BYTES)
        .map_err(|e| AssetError::Refused(e.to_string()))?;
    let mut files = Vec::new();
    for entry in entries {
        if let Some(EntrySource::HostFile(host)) = entry.source {
            files.push(describe(&entry.path, host)?);
        }
    }
    Ok((files, false))
}

/// Resolves every granted asset. Missing or refused assets are returned as
/// errors, one sentence each; unavailable ones come back marked so.
///
/// # Errors
/// Every missing or refused asset.
pub async fn resolve_all(
    grants: &[GrantedAsset],
    cache: Option<&AssetCache>,
    timeouts: S3Timeouts,
) -> Result<Vec<ResolvedAsset>, Vec<AssetProblem>> {
    let mut resolved = Vec::new();
    let mut problems = Vec::new();
    for grant in grants {
        let outcome = match &grant.location {
            SourceLocation::Local(root) => {
                resolve_local(root, grant).map(|(files, single)| (files, single, false))
            }
            SourceLocation::S3(config) => match cache {
                Some(cache) => s3::resolve(config, &grant.path, cache, timeouts).await,
                None => Err(AssetError::Unavailable(
                    "S3 assets need a cache folder (set AGH_CACHE_DIR)".into(),
                )),
            },
        };
        let name = format!("asset {:?} ({}:{})", grant.name, grant.source, grant.path);
        match outcome {
            Ok((files, single_file, stale)) if files.len() <= MAX_ASSET_FILES => {
                if files.is_empty() {
                    problems.push(AssetProblem::Empty { asset: name });
                    continue;
                }
                if stale {
                    tracing::warn!("{name}: storage unreachable; serving the cached copy");
                }
                resolved.push(ResolvedAsset {
                    grant: grant.clone(),
                    files,
                    single_file,
                    unavailable: None,
                    stale,
                });
            }
            Ok((files, _, _)) => problems.push(AssetProblem::TooManyFiles {
                asset: name,
                files: files.len(),
            }),
            Err(AssetError::Unavailable(why)) => {
                tracing::warn!("{name}: {why}; submissions that place it will be infra errors");
                resolved.push(ResolvedAsset {
                    grant: grant.clone(),
                    files: Vec::new(),
                    single_file: false,
                    unavailable: Some(why),
                    stale: false,
                });
            }
            Err(cause) => problems.push(AssetProblem::Unusable { asset: name, cause }),
        }
    }
    if problems.is_empty() {
        Ok(resolved)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceLocation;

    fn grant(root: &Path, path: &str, target: &str) -> GrantedAsset {
        GrantedAsset {
            name: "a".into(),
            source: "course".into(),
            path: path.into(),
            location: SourceLocation::Local(root.to_path_buf()),
            target: target.into(),
            owner: Owner::Root,
        }
    }

    #[tokio::test]
    async fn local_assets_resolve_with_digests_and_refuse_links_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tests/sub")).unwrap();
        std::fs::write(dir.path().join("tests/sub/t.py"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("escape")).unwrap();
        let ok = resolve_all(
            &[grant(dir.path(), "tests", "/assets/tests")],
            None,
            S3Timeouts::default(),
        )
        .await
        .unwrap();
        assert_eq!(ok[0].files[0].path, "sub/t.py");
        assert_eq!(
            ok[0].files[0].sha256,
            "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
        );
        let (dest, entries) = ok[0].placement();
        assert_eq!(
            (dest.as_str(), entries[0].path.as_str()),
            ("/assets/tests", "sub/t.py")
        );
        let refused = resolve_all(
            &[grant(dir.path(), "escape/passwd", "/assets/p")],
            None,
            S3Timeouts::default(),
        )
        .await;
        assert!(refused.unwrap_err()[0].to_string().contains("link"));
        let missing = resolve_all(
            &[grant(dir.path(), "nope", "/assets/n")],
            None,
            S3Timeouts::default(),
        )
        .await;
        assert!(
            missing.unwrap_err()[0]
                .to_string()
                .contains("does not exist")
        );
    }

    #[test]
    fn relative_paths_are_checked() {
        assert!(safe_relative("a/b.txt"));
        for bad in ["", "/a", "a/../b", "a//b", "./a", ".."] {
            assert!(!safe_relative(bad), "{bad}");
        }
    }
}
