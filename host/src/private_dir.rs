//! Folders that only the user running agh can write, for caches whose
//! contents agh trusts: compiled grader code (native code agh runs) and
//! course assets. A cache that someone else could write is a way to run
//! code as agh (which holds the Docker socket) or to change a course's
//! hidden tests, so such a folder is refused, never used.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a cache folder or file cannot be trusted.
#[derive(Debug, thiserror::Error)]
pub enum PrivateError {
    /// It exists but is not private to the user running agh.
    #[error("{path} cannot be trusted: it {why}; {fix}")]
    NotPrivate {
        /// The folder or file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
        /// What the operator can do.
        fix: &'static str,
    },
    /// No place for a cache could be found.
    #[error(
        "agh has no private place for its cache: set AGH_CACHE_DIR (or HOME or XDG_CACHE_HOME) to a folder of the user that runs agh"
    )]
    NoCacheDir,
    /// Reading or creating it failed.
    #[error("{path}: {source}")]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

const FIX_OWNER: &str =
    "remove it, or choose another folder with AGH_CACHE_DIR; agh recreates it empty";
const FIX_OUTPUT: &str = "choose another output folder with --out (agh creates it, private to you), \
     or remove this one if it is not yours";
const FIX_ANCESTOR: &str = "keep agh's folders below folders only you (or root) can change: \
     another user who can rename what is in a folder can swap what agh reads there";

/// What a private folder is for: it decides what an error tells to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A cache of compiled graders, assets or the sandbox agent.
    Cache,
    /// An output folder: results, the journal, students' staged code.
    Output,
}

impl Purpose {
    fn fix(self) -> &'static str {
        match self {
            Purpose::Cache => FIX_OWNER,
            Purpose::Output => FIX_OUTPUT,
        }
    }
}

/// Checks every folder above `path`, as written and as resolved: each
/// belongs to root or the user running agh, and no one else may write in
/// it unless it is sticky (as `/tmp` is, where only an entry's owner can
/// rename or remove it). A folder above a cache or output that another
/// user controls lets them swap everything below it mid-run.
///
/// # Errors
/// [`PrivateError::NotPrivate`] naming the folder.
pub fn check_ancestors(path: &Path) -> Result<(), PrivateError> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_err(io(path))?.join(path)
    };
    let mut seen: Vec<PathBuf> = absolute
        .ancestors()
        .skip(1)
        .map(Path::to_path_buf)
        .collect();
    if let Some(resolved) = absolute
        .parent()
        .and_then(|p| std::fs::canonicalize(p).ok())
    {
        seen.extend(resolved.ancestors().map(Path::to_path_buf));
    }
    for folder in seen {
        let meta = match std::fs::symlink_metadata(&folder) {
            Ok(meta) => meta,
            // Not made yet (the caller creates it), or a `..` resolved
            // above: the resolved list covers what exists.
            Err(_) => continue,
        };
        let not_private = |why: String| PrivateError::NotPrivate {
            path: folder.clone(),
            why,
            fix: FIX_ANCESTOR,
        };
        if meta.uid() != 0 && meta.uid() != euid() {
            return Err(not_private(format!(
                "holds an agh folder but belongs to uid {}, not to root or uid {} that runs agh",
                meta.uid(),
                euid()
            )));
        }
        let sticky = meta.mode() & 0o1000 != 0;
        if !meta.file_type().is_symlink() && meta.mode() & 0o022 != 0 && !sticky {
            return Err(not_private(format!(
                "holds an agh folder and may be written by other users (mode {:o})",
                meta.mode() & 0o777
            )));
        }
    }
    Ok(())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PrivateError + '_ {
    move |source| PrivateError::Io {
        path: path.into(),
        source,
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid()
    }
}

/// Whether agh runs as root.
#[must_use]
pub fn running_as_root() -> bool {
    euid() == 0
}

/// Checks the metadata of something agh is about to trust: owned by the
/// user running agh, writable by nobody else.
fn check_owner(path: &Path, meta: &std::fs::Metadata) -> Result<(), PrivateError> {
    check_owner_for(path, meta, Purpose::Cache)
}

fn check_owner_for(
    path: &Path,
    meta: &std::fs::Metadata,
    purpose: Purpose,
) -> Result<(), PrivateError> {
    let not_private = |why: String| PrivateError::NotPrivate {
        path: path.into(),
        why,
        fix: purpose.fix(),
    };
    if meta.uid() != euid() {
        return Err(not_private(format!(
            "belongs to uid {}, not to uid {} that runs agh",
            meta.uid(),
            euid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(not_private(format!(
            "may be written by other users (mode {:o})",
            meta.mode() & 0o777
        )));
    }
    Ok(())
}

/// Creates `path` (0700) or opens it, refusing a link, a non-folder, a
/// folder owned by someone else or writable by others, and a folder below
/// one another user controls ([`check_ancestors`]). A private folder that
/// others may only read is made 0700.
///
/// # Errors
/// [`PrivateError`] saying what is wrong and what to do.
pub fn open_dir(path: &Path) -> Result<PathBuf, PrivateError> {
    open_dir_for(path, Purpose::Cache)
}

/// [`open_dir`] for `purpose`, whose errors say what to do for it.
///
/// # Errors
/// As [`open_dir`].
pub fn open_dir_for(path: &Path, purpose: Purpose) -> Result<PathBuf, PrivateError> {
    check_ancestors(path)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io(path))?;
    let meta = std::fs::symlink_metadata(path).map_err(io(path))?;
    if !meta.file_type().is_dir() {
        return Err(PrivateError::NotPrivate {
            path: path.into(),
            why: "is a symbolic link or not a folder".into(),
            fix: purpose.fix(),
        });
    }
    check_owner_for(path, &meta, purpose)?;
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(io(path))?;
    }
    Ok(path.into())
}

/// Checks, without creating or changing anything, that `path` is a folder
/// [`open_dir_for`] would accept as it is: the user's own, writable by no
/// one else, below folders no one else controls. For folders agh only
/// reads (the results `agh export` publishes).
///
/// # Errors
/// [`PrivateError`] saying what is wrong and what to do.
pub fn check_dir_for(path: &Path, purpose: Purpose) -> Result<(), PrivateError> {
    check_ancestors(path)?;
    let meta = std::fs::symlink_metadata(path).map_err(io(path))?;
    if !meta.file_type().is_dir() {
        return Err(PrivateError::NotPrivate {
            path: path.into(),
            why: "is a symbolic link or not a folder".into(),
            fix: purpose.fix(),
        });
    }
    check_owner_for(path, &meta, purpose)
}

/// Opens a file inside a private folder for reading: no link followed, a
/// regular file with one link, owned by the user running agh and writable
/// by nobody else, all checked on the opened file.
///
/// # Errors
/// [`PrivateError`] saying what is wrong.
pub fn open_file(path: &Path) -> Result<File, PrivateError> {
    let file = crate::layout::open_regular_file(path).map_err(|err| {
        if err.kind() == std::io::ErrorKind::InvalidInput || err.raw_os_error() == Some(libc::ELOOP)
        {
            PrivateError::NotPrivate {
                path: path.into(),
                why: format!("is not a plain file of its own ({err})"),
                fix: FIX_OWNER,
            }
        } else {
            PrivateError::Io {
                path: path.into(),
                source: err,
            }
        }
    })?;
    let meta = file.metadata().map_err(io(path))?;
    check_owner(path, &meta)?;
    Ok(file)
}

/// The cache folder to use: `$AGH_CACHE_DIR`, else `$XDG_CACHE_HOME/agh`,
/// else `~/.cache/agh`, created private. There is no shared fallback.
///
/// # Errors
/// [`PrivateError::NoCacheDir`] when none is set; otherwise as [`open_dir`].
pub fn default_cache_dir() -> Result<PathBuf, PrivateError> {
    let path = if let Some(dir) = std::env::var_os("AGH_CACHE_DIR") {
        PathBuf::from(dir)
    } else if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        PathBuf::from(dir).join("agh")
    } else if let Some(home) = std::env::var_os("HOME") {
        PathBuf::from(home).join(".cache/agh")
    } else {
        return Err(PrivateError::NoCacheDir);
    };
    if !path.is_absolute() {
        return Err(PrivateError::NoCacheDir);
    }
    open_dir(&path)
}

/// A secret kept in a private folder that signs what agh writes there, so
/// a file replaced, corrupted or copied in from elsewhere is refused.
pub struct SigningKey([u8; 32]);

/// Bytes of a signature.
pub const SIGNATURE_BYTES: usize = 32;

impl SigningKey {
    /// Reads the key at `dir/key`, creating it (0600, from the OS's random
    /// source) the first time.
    ///
    /// # Errors
    /// [`PrivateError`] when the key is not private or cannot be made.
    pub fn open(dir: &Path) -> Result<Self, PrivateError> {
        let path = dir.join("key");
        let mut key = [0u8; 32];
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(mut file) => {
                getrandom::fill(&mut key).map_err(|e| PrivateError::Io {
                    path: path.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?;
                file.write_all(&key).map_err(io(&path))?;
                file.sync_all().map_err(io(&path))?;
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                let mut file = open_file(&path)?;
                let meta = file.metadata().map_err(io(&path))?;
                if meta.mode() & 0o077 != 0 || meta.len() != 32 {
                    return Err(PrivateError::NotPrivate {
                        path,
                        why: "is readable by others or not a 32-byte key".into(),
                        fix: FIX_OWNER,
                    });
                }
                file.read_exact(&mut key).map_err(io(&path))?;
            }
            Err(err) => return Err(io(&path)(err)),
        }
        Ok(Self(key))
    }

    /// The signature of `data` for what it stands for (`bound_to`: the
    /// component's sha256 and the engine, say), so a signed file copied
    /// over another's name does not verify: BLAKE3 in its keyed mode, a
    /// MAC fast enough to check a 40 MB compiled grader in milliseconds.
    /// Each part is length-prefixed, so no two lists of parts sign alike.
    #[must_use]
    pub fn sign(&self, bound_to: &[&[u8]], data: &[u8]) -> [u8; SIGNATURE_BYTES] {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
        for part in bound_to {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        hasher.update(data);
        *hasher.finalize().as_bytes()
    }

    /// True when `signature` is this key's signature of `data` for
    /// `bound_to` (compared in constant time).
    #[must_use]
    pub fn verify(&self, bound_to: &[&[u8]], data: &[u8], signature: &[u8]) -> bool {
        <[u8; SIGNATURE_BYTES]>::try_from(signature).is_ok_and(|given| {
            blake3::Hash::from(self.sign(bound_to, data)) == blake3::Hash::from(given)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_others_can_write_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = open_dir(&shared).unwrap_err().to_string();
        assert!(err.contains("may be written by other users"), "{err}");
        let readable = dir.path().join("readable");
        std::fs::create_dir(&readable).unwrap();
        std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o755)).unwrap();
        open_dir(&readable).unwrap();
        let mode = std::fs::metadata(&readable).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700, "a private folder is tightened");
        let fresh = open_dir(&dir.path().join("a/b")).unwrap();
        assert_eq!(std::fs::metadata(fresh).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn links_and_foreign_owners_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("link")).unwrap();
        assert!(open_dir(&dir.path().join("link")).is_err());
        let foreign = dir.path().join("foreign");
        std::fs::create_dir(&foreign).unwrap();
        std::os::unix::fs::chown(&foreign, Some(euid() + 1), None).unwrap();
        let err = open_dir(&foreign).unwrap_err().to_string();
        assert!(err.contains("belongs to uid"), "{err}");
    }

    #[test]
    fn a_folder_below_one_others_can_change_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = open_dir(&shared.join("mine/cache"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("may be written by other users"), "{err}");
        // A sticky folder anyone may write (like /tmp) is fine above.
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        open_dir(&shared.join("mine/cache")).unwrap();
        let foreign = dir.path().join("foreign");
        std::fs::create_dir(&foreign).unwrap();
        std::os::unix::fs::chown(&foreign, Some(euid() + 1), None).unwrap();
        let err = open_dir_for(&foreign.join("out"), Purpose::Output)
            .unwrap_err()
            .to_string();
        assert!(err.contains("belongs to uid"), "{err}");
    }

    #[test]
    fn signatures_catch_any_change() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::open(dir.path()).unwrap();
        let again = SigningKey::open(dir.path()).unwrap();
        let signature = key.sign(&[b"grader-a"], b"compiled code");
        assert!(again.verify(&[b"grader-a"], b"compiled code", &signature));
        assert!(!again.verify(&[b"grader-a"], b"compiled codf", &signature));
        assert!(
            !again.verify(&[b"grader-b"], b"compiled code", &signature),
            "an entry signed for one grader stood in for another"
        );
        let other = tempfile::tempdir().unwrap();
        assert!(!SigningKey::open(other.path()).unwrap().verify(
            &[b"grader-a"],
            b"compiled code",
            &signature
        ));
    }
}
