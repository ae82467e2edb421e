//! Uploaded bytes (grader components, submission archives), named by their
//! sha256 and kind. With SQLite they are kept beside the database in
//! `DATA/blobs`; with PostgreSQL in the database itself, so every node sees
//! an upload once its row commits, and `DATA/blobs` is each node's copy of
//! those it used. Files are written atomically: a blob is whole or absent,
//! and one upload stored twice is stored once.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::store::{Store, StoreError};
use crate::private_dir::{self, PrivateError};

/// Why a blob could not be stored or found.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The local folder failed.
    #[error("the blob folder failed: {0}")]
    Io(#[from] std::io::Error),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such blob anywhere.
    #[error("blob {0} is neither on this node nor in the store")]
    Missing(String),
}

/// What a blob holds, which names its file (the archive reader goes by
/// the name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    /// A grader component.
    Wasm,
    /// A zip archive.
    Zip,
    /// A tar archive.
    Tar,
    /// A gzip-compressed tar archive.
    TarGz,
}

impl BlobKind {
    /// Its name in the store and in file names.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Wasm => "wasm",
            Self::Zip => "zip",
            Self::Tar => "tar",
            Self::TarGz => "tar.gz",
        }
    }

    /// The archive kind named `name`.
    #[must_use]
    pub fn archive(name: &str) -> Option<Self> {
        match name {
            "zip" => Some(Self::Zip),
            "tar" => Some(Self::Tar),
            "tar.gz" | "tgz" => Some(Self::TarGz),
            _ => None,
        }
    }

    /// The archive kind a `Content-Type` names.
    #[must_use]
    pub fn of_content_type(content_type: &str) -> Option<Self> {
        match content_type.split(';').next().unwrap_or("").trim() {
            "application/zip" | "application/x-zip-compressed" => Some(Self::Zip),
            "application/x-tar" | "application/tar" => Some(Self::Tar),
            "application/gzip" | "application/x-gzip" | "application/x-gtar" => Some(Self::TarGz),
            _ => None,
        }
    }

    /// The archive kind a file name's ending names.
    #[must_use]
    pub fn of_file_name(name: &str) -> Option<Self> {
        let name = name.to_ascii_lowercase();
        if name.ends_with(".zip") {
            Some(Self::Zip)
        } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Some(Self::TarGz)
        } else if name.ends_with(".tar") {
            Some(Self::Tar)
        } else {
            None
        }
    }
}

/// The blobs.
#[derive(Debug, Clone)]
pub struct Blobs {
    dir: PathBuf,
    shared: Option<Store>,
}

impl Blobs {
    /// Opens `DATA/blobs`, which must be private to the user running agh
    /// (it holds components agh compiles to native code); `shared` is the
    /// database that holds every blob, when blobs live there.
    ///
    /// # Errors
    /// When the folder is not private or cannot be made.
    pub fn open(data: &Path, shared: Option<Store>) -> Result<Self, PrivateError> {
        let dir = private_dir::open_dir(&data.join("blobs"))?;
        Ok(Self { dir, shared })
    }

    /// Stores `bytes`; returns their sha256.
    ///
    /// # Errors
    /// The I/O or database error.
    pub async fn put(&self, bytes: Bytes, kind: BlobKind) -> Result<String, BlobError> {
        let sha256 = {
            let bytes = bytes.clone();
            blocking(move || Ok(crate::layout::hex(&Sha256::digest(&bytes)))).await?
        };
        if let Some(store) = &self.shared {
            store.put_blob(&sha256, kind.name(), &bytes).await?;
        }
        self.keep(&sha256, kind, bytes).await?;
        Ok(sha256)
    }

    /// The local file of the blob `sha256` (agh's own hex) of `kind`,
    /// copied from the database first when this node has not got it.
    ///
    /// # Errors
    /// When it is nowhere, or cannot be copied.
    pub async fn fetch(&self, sha256: &str, kind: BlobKind) -> Result<PathBuf, BlobError> {
        let path = self.path(sha256, kind);
        if path.is_file() {
            return Ok(path);
        }
        let Some(store) = &self.shared else {
            return Err(BlobError::Missing(sha256.into()));
        };
        let bytes = store
            .blob(sha256, kind.name())
            .await?
            .ok_or_else(|| BlobError::Missing(sha256.into()))?;
        if crate::layout::hex(&Sha256::digest(&bytes)) != sha256 {
            return Err(BlobError::Store(StoreError::Corrupt(format!(
                "blob {sha256}"
            ))));
        }
        self.keep(sha256, kind, bytes.into()).await?;
        Ok(path)
    }

    /// Writes the local copy, off the async threads: a file written and
    /// synced there would stall every request on this node meanwhile.
    async fn keep(&self, sha256: &str, kind: BlobKind, bytes: Bytes) -> std::io::Result<()> {
        let (dir, path) = (self.dir.clone(), self.path(sha256, kind));
        blocking(move || {
            if !path.is_file() {
                crate::layout::write_atomic(&dir, &path, &bytes)?;
            }
            Ok(())
        })
        .await
    }

    fn path(&self, sha256: &str, kind: BlobKind) -> PathBuf {
        debug_assert!(sha256.bytes().all(|b| b.is_ascii_hexdigit()));
        self.dir.join(format!("{sha256}.{}", kind.name()))
    }
}

/// Runs `work` on the blocking threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|panic| Err(std::io::Error::other(panic.to_string())))
}
