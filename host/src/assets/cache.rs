//! The asset cache: content-addressed files on disk, an index from source
//! keys to contents, least-recently-used eviction under a byte cap, and a
//! small in-memory layer for the files graders read themselves.
//!
//! Layout under the cache folder (`assets-v1/`, versioned so a layout change
//! never reads old files wrongly):
//!
//! ```text
//! objects/<sha256>   contents, written to a temporary file, fsync'd, renamed
//! index.json         key -> { etag, sha256, size, last_used }, written atomically
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::layout::write_atomic;

/// Folder name of this cache layout.
pub const CACHE_LAYOUT: &str = "assets-v1";
pub use crate::config::DEFAULT_ASSET_CACHE_BYTES as DEFAULT_DISK_BYTES;
/// Byte cap of the in-memory layer: expected outputs and small fixtures.
pub const MEMORY_BYTES: usize = 64 * 1024 * 1024;
/// Largest file kept in the in-memory layer.
pub const MEMORY_FILE_BYTES: usize = 1024 * 1024;

/// What the index knows of one cached object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The source's version tag (S3 ETag).
    pub etag: String,
    /// sha256 of the contents, the file's name under `objects/`.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Seconds since the epoch of the last use.
    pub last_used: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    entries: BTreeMap<String, CacheEntry>,
}

#[derive(Default)]
struct MemoryLayer {
    files: HashMap<String, Arc<Vec<u8>>>,
    order: VecDeque<String>,
    bytes: usize,
}

/// The cache. Safe to share between a batch's tasks.
pub struct AssetCache {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
    memory: Mutex<MemoryLayer>,
    /// Objects whose contents were hashed and matched their name since
    /// this cache was opened.
    verified: Mutex<std::collections::HashSet<String>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// True for a lower-case hex sha256: the only names objects have. The index
/// names each entry's object; any other name could point anywhere once
/// joined to a path.
fn is_digest(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AssetCache {
    /// Opens (creating) the cache under `root`, capped at `max_bytes`. An
    /// unreadable index is set aside, not trusted.
    ///
    /// # Errors
    /// When the folder cannot be created, or is not private to the user
    /// running agh (see [`crate::private_dir`]).
    pub fn open(root: &Path, max_bytes: u64) -> std::io::Result<Self> {
        let private =
            |path: &Path| crate::private_dir::open_dir(path).map_err(std::io::Error::other);
        let dir = private(root)?.join(CACHE_LAYOUT);
        private(&dir.join("objects"))?;
        let index = match std::fs::read(dir.join("index.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|err| {
                tracing::warn!(%err, "asset cache index unreadable; starting empty");
                Index::default()
            }),
            Err(_) => Index::default(),
        };
        Ok(Self {
            dir,
            max_bytes,
            index: Mutex::new(index),
            memory: Mutex::new(MemoryLayer::default()),
            verified: Mutex::default(),
        })
    }

    /// Where the contents with `sha256` live.
    #[must_use]
    pub fn object_path(&self, sha256: &str) -> PathBuf {
        self.dir.join("objects").join(sha256)
    }

    /// The entry for `key` when its contents are on disk and still hash to
    /// their name; marks it used. An object that was changed, linked, or
    /// handed to another owner is dropped (and fetched again by the caller).
    #[must_use]
    pub fn lookup(&self, key: &str) -> Option<CacheEntry> {
        let entry = lock(&self.index).entries.get(key)?.clone();
        if !self.verify(&entry) {
            let mut index = lock(&self.index);
            index.entries.retain(|_, e| e.sha256 != entry.sha256);
            if is_digest(&entry.sha256) {
                let _ = std::fs::remove_file(self.object_path(&entry.sha256));
            }
            return None;
        }
        let mut index = lock(&self.index);
        let entry = index.entries.get_mut(key)?;
        entry.last_used = now();
        Some(entry.clone())
    }

    /// True when the object of `entry` is a private file whose contents
    /// hash to its name; hashed once per object while the cache is open.
    fn verify(&self, entry: &CacheEntry) -> bool {
        if lock(&self.verified).contains(&entry.sha256) {
            return true;
        }
        if !is_digest(&entry.sha256) {
            tracing::warn!(name = %entry.sha256, "the asset cache index names an object that is not a sha256");
            return false;
        }
        let path = self.object_path(&entry.sha256);
        let hashed = crate::private_dir::open_file(&path)
            .map_err(|e| e.to_string())
            .and_then(|mut file| {
                let mut hasher = Sha256::new();
                let size = std::io::copy(&mut file, &mut hasher).map_err(|e| e.to_string())?;
                Ok((crate::layout::hex(&hasher.finalize()), size))
            });
        match hashed {
            Ok((sha256, size)) if sha256 == entry.sha256 && size == entry.size => {
                lock(&self.verified).insert(sha256);
                true
            }
            Ok((sha256, _)) => {
                tracing::warn!(object = %path.display(), found = %sha256, "a cached asset was changed; fetching it again");
                false
            }
            Err(why) => {
                if path.exists() || path.is_symlink() {
                    tracing::warn!(object = %path.display(), %why, "refusing a cached asset; fetching it again");
                }
                false
            }
        }
    }

    /// Every cached key starting with `prefix`, for serving a listing when
    /// the source is unreachable.
    #[must_use]
    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<(String, CacheEntry)> {
        let index = lock(&self.index);
        index
            .entries
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, e)| self.verify(e))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }

    /// Streams `chunks` into the cache as the contents of `key` at `etag`:
    /// hashed while written, never whole in memory, renamed into place only
    /// when complete. Evicts least-recently-used objects past the cap.
    ///
    /// # Errors
    /// An I/O error, or the stream's own error as `std::io::Error`.
    pub async fn store<S, E>(
        &self,
        key: &str,
        etag: &str,
        mut chunks: S,
    ) -> std::io::Result<CacheEntry>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        use futures_util::StreamExt;
        let objects = self.dir.join("objects");
        let temp = tempfile::NamedTempFile::new_in(&objects)?;
        let (std_file, temp_path) = temp.into_parts();
        let mut file = tokio::fs::File::from_std(std_file);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk
                .map_err(|e| std::io::Error::other(format!("download of {key} broke: {e}")))?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).await?;
        }
        file.sync_all().await?;
        drop(file);
        let sha256: String = crate::layout::hex(&hasher.finalize());
        lock(&self.verified).insert(sha256.clone());
        temp_path
            .persist(self.object_path(&sha256))
            .map_err(|e| e.error)?;
        let entry = CacheEntry {
            etag: etag.into(),
            sha256,
            size,
            last_used: now(),
        };
        lock(&self.index).entries.insert(key.into(), entry.clone());
        self.evict();
        self.save_index()?;
        Ok(entry)
    }

    /// Removes least-recently-used objects until the cache fits its cap.
    fn evict(&self) {
        let mut index = lock(&self.index);
        let mut sizes: HashMap<String, u64> = HashMap::new();
        for entry in index.entries.values() {
            sizes.insert(entry.sha256.clone(), entry.size);
        }
        let mut total: u64 = sizes.values().sum();
        while total > self.max_bytes {
            let Some((key, entry)) = index
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, e)| (k.clone(), e.clone()))
            else {
                break;
            };
            index.entries.remove(&key);
            if !index.entries.values().any(|e| e.sha256 == entry.sha256) {
                let _ = std::fs::remove_file(self.object_path(&entry.sha256));
                total = total.saturating_sub(entry.size);
            }
        }
    }

    /// Writes the index atomically.
    ///
    /// # Errors
    /// The I/O error.
    pub fn save_index(&self) -> std::io::Result<()> {
        let bytes =
            serde_json::to_vec_pretty(&*lock(&self.index)).map_err(std::io::Error::other)?;
        write_atomic(&self.dir, &self.dir.join("index.json"), &bytes)
    }

    /// Reads a cached or local file whole, through the in-memory layer when
    /// it is small. `id` names the contents (a sha256, or a path and size).
    ///
    /// # Errors
    /// The I/O error.
    pub fn read_small(&self, id: &str, path: &Path) -> std::io::Result<Arc<Vec<u8>>> {
        if let Some(bytes) = lock(&self.memory).files.get(id) {
            return Ok(bytes.clone());
        }
        let mut file = crate::sandbox::open_regular_file(path)?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes)?;
        let bytes = Arc::new(bytes);
        if bytes.len() <= MEMORY_FILE_BYTES {
            let mut memory = lock(&self.memory);
            while memory.bytes + bytes.len() > MEMORY_BYTES {
                let Some(old) = memory.order.pop_front() else {
                    break;
                };
                if let Some(gone) = memory.files.remove(&old) {
                    memory.bytes -= gone.len();
                }
            }
            memory.bytes += bytes.len();
            memory.order.push_back(id.to_string());
            memory.files.insert(id.to_string(), bytes.clone());
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(
        parts: &[&'static [u8]],
    ) -> impl futures_util::Stream<Item = Result<bytes::Bytes, String>> + Unpin {
        futures_util::stream::iter(
            parts
                .iter()
                .map(|p| Ok(bytes::Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn stores_by_content_and_finds_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let cache = AssetCache::open(dir.path(), 1 << 20).unwrap();
        let entry = cache
            .store("s3://b/k", "e1", chunks(&[b"hello ", b"world"]))
            .await
            .unwrap();
        assert_eq!(
            entry.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(
            std::fs::read(cache.object_path(&entry.sha256)).unwrap(),
            b"hello world"
        );
        assert_eq!(cache.lookup("s3://b/k").unwrap().etag, "e1");
        let reopened = AssetCache::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            reopened.lookup("s3://b/k").unwrap().sha256,
            entry.sha256,
            "the index survives a restart"
        );
    }

    #[tokio::test]
    async fn tampered_foreign_or_linked_objects_are_refused_and_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = AssetCache::open(dir.path(), 1 << 20).unwrap();
        let tests = cache
            .store("tests", "e", chunks(&[b"hidden tests"]))
            .await
            .unwrap();
        let data = cache
            .store("data", "e", chunks(&[b"a data set"]))
            .await
            .unwrap();
        let owned = cache
            .store("owned", "e", chunks(&[b"owned by another"]))
            .await
            .unwrap();
        cache.save_index().unwrap();
        drop(cache);
        std::fs::write(
            dir.path()
                .join(CACHE_LAYOUT)
                .join("objects")
                .join(&tests.sha256),
            b"forged tests!",
        )
        .unwrap();
        let object = |sha: &str| dir.path().join(CACHE_LAYOUT).join("objects").join(sha);
        std::fs::rename(object(&data.sha256), dir.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), object(&data.sha256)).unwrap();
        std::os::unix::fs::chown(object(&owned.sha256), Some(4242), None).unwrap();
        let cache = AssetCache::open(dir.path(), 1 << 20).unwrap();
        for key in ["tests", "data", "owned"] {
            assert!(
                cache.lookup(key).is_none(),
                "{key} was served from a bad object"
            );
        }
        assert!(
            !object(&tests.sha256).exists(),
            "the forged object was dropped"
        );
    }

    #[test]
    fn an_index_naming_a_path_instead_of_a_digest_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        drop(AssetCache::open(dir.path(), 1 << 20).unwrap());
        let index = r#"{"entries":{"tests":{"etag":"e","sha256":"../../../../etc/hostname","size":1,"last_used":0}}}"#;
        std::fs::write(dir.path().join(CACHE_LAYOUT).join("index.json"), index).unwrap();
        let cache = AssetCache::open(dir.path(), 1 << 20).unwrap();
        assert!(cache.lookup("tests").is_none());
        assert!(
            Path::new("/etc/hostname").exists(),
            "nothing outside the cache was removed"
        );
    }

    #[tokio::test]
    async fn a_broken_download_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let cache = AssetCache::open(dir.path(), 1 << 20).unwrap();
        let broken = futures_util::stream::iter(vec![
            Ok(bytes::Bytes::from_static(b"part")),
            Err("reset".to_string()),
        ]);
        let err = cache.store("s3://b/k", "e1", broken).await.unwrap_err();
        assert!(err.to_string().contains("broke"), "{err}");
        assert!(cache.lookup("s3://b/k").is_none());
        assert_eq!(
            std::fs::read_dir(dir.path().join("assets-v1/objects"))
                .unwrap()
                .count(),
            0
        );
    }

    #[tokio::test]
    async fn least_recently_used_objects_are_evicted_past_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let cache = AssetCache::open(dir.path(), 10).unwrap();
        cache.store("a", "1", chunks(&[b"aaaaaa"])).await.unwrap();
        {
            let mut index = lock(&cache.index);
            index.entries.get_mut("a").unwrap().last_used = 1; // long ago
        }
        cache.store("b", "1", chunks(&[b"bbbbbb"])).await.unwrap();
        assert!(
            cache.lookup("a").is_none(),
            "the older object stayed past the cap"
        );
        assert!(cache.lookup("b").is_some());
    }

    #[test]
    fn memory_layer_stays_under_its_cap() {
        let dir = tempfile::tempdir().unwrap();
        let cache = AssetCache::open(dir.path(), 1 << 20).unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(cache.read_small("f", &file).unwrap().as_slice(), b"12345");
        std::fs::write(&file, b"changed").unwrap();
        assert_eq!(
            cache.read_small("f", &file).unwrap().as_slice(),
            b"12345",
            "served from memory"
        );
        // Files of the largest size kept, twice the cap's worth in all: the
        // layer never holds more than its cap, and the oldest go first.
        let big = vec![7u8; MEMORY_FILE_BYTES];
        let path = dir.path().join("big");
        std::fs::write(&path, &big).unwrap();
        let count = 2 * MEMORY_BYTES / MEMORY_FILE_BYTES;
        for i in 0..count {
            cache.read_small(&format!("big-{i}"), &path).unwrap();
            let held = lock(&cache.memory).bytes;
            assert!(held <= MEMORY_BYTES, "{held} bytes held after {i} files");
        }
        let memory = lock(&cache.memory);
        assert!(!memory.files.contains_key("f"), "the oldest entry was kept");
        assert!(!memory.files.contains_key("big-0"));
        assert!(memory.files.contains_key(&format!("big-{}", count - 1)));
        assert_eq!(
            memory.bytes,
            memory.files.values().map(|b| b.len()).sum::<usize>(),
            "the count matches what is held"
        );
    }
}
