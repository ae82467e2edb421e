//! Cranelift's incremental compilation cache, kept in agh's private cache
//! folder: a rebuilt grader whose functions are mostly unchanged (a Python
//! or JavaScript grader is an interpreter of tens of thousands of functions
//! plus a few kilobytes of the course's code) compiles only what changed.
//!
//! The entries are machine code, so they are trusted exactly as the compiled
//! components beside them are: one pack file in the private folder, signed
//! as a whole with the folder's key, read and verified before a compilation
//! and rewritten after it. A pack that does not verify is ignored (the
//! compilation starts cold), never used.
//!
//! The engine is the process's one engine, configured once; every
//! compilation takes [`COMPILING`] in turn, so the pack installed in the
//! store is the one of the folder the compiling host caches into (or none,
//! for a host without a cache folder).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};

use wasmtime::CacheStore;

use crate::private_dir::{self, SIGNATURE_BYTES, SigningKey};

/// Folder of the pack; bump on a format change.
const DIR: &str = "incremental-v1";
/// What the pack's signature is bound to, so no other signed file of the
/// folder passes for a pack.
const BOUND_TO: &[u8] = b"agh incremental compilation pack v1";
/// Largest pack kept: entries this compilation used come first, then the
/// others (another grader's interpreter, say) while they fit.
const MAX_PACK_BYTES: usize = 512 * 1024 * 1024;

/// The store the engine is configured with.
pub(super) fn store() -> Arc<dyn CacheStore> {
    STORE.clone()
}

static STORE: LazyLock<Arc<Store>> = LazyLock::new(|| Arc::new(Store::default()));
/// Held for the length of a compilation that uses the cache.
static COMPILING: Mutex<()> = Mutex::new(());

/// The engine's view: the pack of the compilation under way, if any.
#[derive(Debug, Default)]
struct Store {
    current: Mutex<Option<Pack>>,
}

/// The entries of one cache folder while a compilation runs.
#[derive(Debug, Default)]
struct Pack {
    entries: HashMap<Vec<u8>, Vec<u8>>,
    used: HashSet<Vec<u8>>,
    fresh: Vec<(Vec<u8>, Vec<u8>)>,
}

/// How much of a compilation came from the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reuse {
    /// Functions whose machine code was reused.
    pub reused: usize,
    /// Functions compiled now.
    pub compiled: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CacheStore for Store {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let mut current = lock(&self.current);
        let pack = current.as_mut()?;
        let value = pack.entries.get(key)?.clone();
        pack.used.insert(key.to_vec());
        Some(Cow::Owned(value))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let mut current = lock(&self.current);
        let Some(pack) = current.as_mut() else {
            return false;
        };
        pack.fresh.push((key.to_vec(), value));
        true
    }
}

/// A compilation under way, with the cache of a folder installed or with
/// none: made by [`begin`], ended by [`Compilation::finish`].
pub(super) struct Compilation<'a> {
    _turn: MutexGuard<'static, ()>,
    cache: Option<(&'a Path, &'a SigningKey)>,
}

/// Takes the engine's turn for the compilation about to run and installs
/// the pack of `cache` (a folder and its key; the pack verified with it),
/// or no pack: a compilation without a cache folder neither reads nor
/// fills another's.
pub(super) fn begin<'a>(cache: Option<(&'a Path, &'a SigningKey)>) -> Compilation<'a> {
    let turn = lock(&COMPILING);
    *lock(&STORE.current) = cache.map(|(cache_dir, key)| {
        let entries = read_pack(cache_dir, key).unwrap_or_else(|err| {
            tracing::warn!(%err, "ignoring the incremental compilation cache; compiling cold");
            HashMap::new()
        });
        Pack {
            entries,
            ..Pack::default()
        }
    });
    Compilation { _turn: turn, cache }
}

impl Compilation<'_> {
    /// Whether the pack holds entries of earlier compilations.
    pub(super) fn warm(&self) -> bool {
        lock(&STORE.current)
            .as_ref()
            .is_some_and(|pack| !pack.entries.is_empty())
    }

    /// Removes the pack from the store and writes what this compilation
    /// used and added (and older entries while they fit) back to the folder.
    pub(super) fn finish(self) -> Reuse {
        let (Some(pack), Some((cache_dir, key))) = (lock(&STORE.current).take(), self.cache) else {
            return Reuse::default();
        };
        let reuse = Reuse {
            reused: pack.used.len(),
            compiled: pack.fresh.len(),
        };
        let mut kept: Vec<(Vec<u8>, Vec<u8>)> = pack.fresh;
        let (used, unused): (Vec<_>, Vec<_>) = pack
            .entries
            .into_iter()
            .partition(|(key, _)| pack.used.contains(key));
        kept.extend(used);
        kept.extend(unused);
        if let Err(err) = write_pack(cache_dir, key, kept) {
            tracing::warn!(%err, "could not save the incremental compilation cache");
        }
        reuse
    }
}

impl Drop for Compilation<'_> {
    fn drop(&mut self) {
        // A compilation that failed leaves nothing installed.
        lock(&STORE.current).take();
    }
}

/// Why a pack could not be read.
#[derive(Debug, thiserror::Error)]
enum PackError {
    #[error(transparent)]
    Private(#[from] private_dir::PrivateError),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0} is not a pack this key signed (replaced or corrupted)")]
    BadSignature(String),
    #[error("{0} is signed but malformed")]
    Malformed(String),
}

fn pack_file(cache_dir: &Path) -> Result<std::path::PathBuf, PackError> {
    Ok(private_dir::open_dir(&cache_dir.join(DIR))?.join("pack"))
}

fn read_pack(cache_dir: &Path, key: &SigningKey) -> Result<HashMap<Vec<u8>, Vec<u8>>, PackError> {
    let file = pack_file(cache_dir)?;
    let shown = file.display().to_string();
    let mut opened = match private_dir::open_file(&file) {
        Ok(opened) => opened,
        Err(private_dir::PrivateError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return Ok(HashMap::new());
        }
        Err(err) => return Err(err.into()),
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut opened, &mut bytes)
        .map_err(|e| PackError::Io(shown.clone(), e))?;
    if bytes.len() < SIGNATURE_BYTES
        || !key.verify(
            &[BOUND_TO],
            &bytes[SIGNATURE_BYTES..],
            &bytes[..SIGNATURE_BYTES],
        )
    {
        return Err(PackError::BadSignature(shown));
    }
    decode(&bytes[SIGNATURE_BYTES..]).ok_or(PackError::Malformed(shown))
}

fn write_pack(
    cache_dir: &Path,
    key: &SigningKey,
    entries: Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<(), PackError> {
    let file = pack_file(cache_dir)?;
    let mut body = Vec::new();
    for (k, v) in entries {
        if body.len() + k.len() + v.len() + 16 > MAX_PACK_BYTES {
            break;
        }
        for part in [&k, &v] {
            body.extend_from_slice(&(part.len() as u64).to_le_bytes());
            body.extend_from_slice(part);
        }
    }
    let mut signed = key.sign(&[BOUND_TO], &body).to_vec();
    signed.extend_from_slice(&body);
    let dir = file.parent().unwrap_or(cache_dir);
    crate::layout::write_atomic(dir, &file, &signed)
        .map_err(|e| PackError::Io(file.display().to_string(), e))
}

/// The entries of a pack's body: length-prefixed key and value pairs.
fn decode(mut body: &[u8]) -> Option<HashMap<Vec<u8>, Vec<u8>>> {
    let mut take = || -> Option<Vec<u8>> {
        let (len, rest) = body.split_first_chunk::<8>()?;
        let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
        if rest.len() < len {
            return None;
        }
        let (part, rest) = rest.split_at(len);
        body = rest;
        Some(part.to_vec())
    };
    let mut entries = HashMap::new();
    while let Some(k) = take() {
        entries.insert(k, take()?);
    }
    body.is_empty().then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_round_trips_and_a_tampered_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = private_dir::open_dir(dir.path()).unwrap();
        let key = SigningKey::open(&cache).unwrap();
        let entries = vec![
            (b"f1".to_vec(), b"code one".to_vec()),
            (b"f2".to_vec(), vec![0u8; 300]),
        ];
        write_pack(&cache, &key, entries.clone()).unwrap();
        let read = read_pack(&cache, &key).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[&b"f1".to_vec()], b"code one");

        // One flipped byte of machine code: the whole pack is refused.
        let file = pack_file(&cache).unwrap();
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        assert!(matches!(
            read_pack(&cache, &key),
            Err(PackError::BadSignature(_))
        ));
        // Another folder's key does not verify this folder's pack either.
        write_pack(&cache, &key, entries).unwrap();
        let other = tempfile::tempdir().unwrap();
        let other_key = SigningKey::open(&private_dir::open_dir(other.path()).unwrap()).unwrap();
        assert!(read_pack(&cache, &other_key).is_err());
    }

    #[test]
    fn a_truncated_body_is_malformed() {
        let mut body = Vec::new();
        for part in [b"k".as_slice(), b"value"] {
            body.extend_from_slice(&(part.len() as u64).to_le_bytes());
            body.extend_from_slice(part);
        }
        assert_eq!(decode(&body).unwrap().len(), 1);
        assert!(decode(&body[..body.len() - 1]).is_none());
        assert!(decode(&body[..12]).is_none());
    }
}
