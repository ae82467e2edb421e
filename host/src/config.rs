//! The operator's configuration (`agh.toml`): what it grants graders
//! (images, asset sources, ceilings on limits and on the grader's own
//! budget), read and checked. [`crate::policy`] intersects a grader's
//! request with it.
//!
//! ```toml
//! runtime = "runsc"                  # or "runc-insecure", loudly recorded
//! images = ["agh/python-c:1", "agh/*"]
//! on_excess = "clamp"                # or "refuse"
//! submission_time = "30m"            # all of one submission's commands together
//! wall_multiple = 3                  # wall clock stops a command at 3x its time limit
//! reference = "submissions/01-correct" # graded before stopping for a broken grader
//!
//! [ceilings]                          # any of Limits' fields
//! wall_time = "30s"
//! cpu_time = "5s"                     # CPU of each process of a command
//! memory_bytes = 1073741824
//!
//! [grader]                            # what a grader itself may spend per call
//! fuel = 200000000000                 # about one wasm instruction each
//! wall_time = "10m"                   # any sleep included; its commands not
//!
//! [sources.course]                    # a grader names it as "course:PATH"
//! local = "assets"                    # relative to this file
//!
//! [settings]                          # passed to the grader
//! term = "2026-fall"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sandbox::{DEFAULT_IMAGES, Limits, Runtime};

/// What a grader itself may spend on one call of `describe` or `grade`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Budget {
    /// Fuel: about one WebAssembly instruction each. Time spent waiting on
    /// the sandbox costs none.
    pub fuel: u64,
    /// Wall time of the whole call: its commands and any time asleep too.
    #[serde(with = "crate::sandbox::limits::humantime_serde_compat")]
    pub wall_time: Duration,
}

impl Budget {
    /// What a grader built against contract 0.1.0, which cannot declare a
    /// budget, gets: the fuel 0.1.0 promised, and five minutes.
    pub const CONTRACT_0_1: Budget = Budget {
        fuel: 2_000_000_000,
        wall_time: Duration::from_secs(300),
    };
    /// The operator's ceiling unless the config says otherwise: room for an
    /// interpreted grader to compare several megabytes of output, and ten
    /// minutes per submission.
    pub const CEILING: Budget = Budget {
        fuel: 200_000_000_000,
        wall_time: Duration::from_secs(600),
    };

    /// What `describe` may spend: it runs before the grader has declared a
    /// budget, and describing costs little.
    #[must_use]
    pub fn for_describe(ceiling: Budget) -> Budget {
        Budget {
            fuel: ceiling.fuel.min(10_000_000_000),
            wall_time: ceiling.wall_time.min(Duration::from_secs(60)),
        }
    }

    /// Checks that both bounds are positive.
    ///
    /// # Errors
    /// A phrase naming the zero bound, to follow "the grader asks for".
    pub fn validate(&self) -> Result<(), String> {
        if self.fuel == 0 {
            return Err("fuel of 0; 0 never means unlimited, give a positive value".into());
        }
        if self.wall_time.is_zero() {
            return Err(
                "a grader wall time of 0; 0 never means unlimited, give a positive value".into(),
            );
        }
        Ok(())
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self::CEILING
    }
}

/// What to do when a grader asks for more than a ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnExcess {
    /// Lower the request to the ceiling and note it.
    #[default]
    Clamp,
    /// Refuse the grader before any sandbox starts.
    Refuse,
}

/// Where a named asset source's files live: exactly one of `local` and `s3`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A local folder, relative to the config file.
    pub local: Option<PathBuf>,
    /// A bucket and prefix in S3-compatible storage.
    pub s3: Option<S3Config>,
}

/// An S3 grant. Endpoint, region and credentials come from the standard
/// AWS environment and config files (`AWS_ENDPOINT_URL`, `AWS_REGION`,
/// `AWS_ACCESS_KEY_ID`, profiles); only objects below `prefix` are reachable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// Key prefix the grant is confined to, such as `cs101/`.
    #[serde(default)]
    pub prefix: String,
    /// Path-style addressing (`endpoint/bucket/key`), which most
    /// self-hosted S3-compatible servers need.
    #[serde(default)]
    pub path_style: bool,
}

/// A granted source, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceLocation {
    /// A local folder.
    Local(PathBuf),
    /// A bucket and prefix.
    S3(S3Config),
}

/// The operator's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// OCI runtime for sandboxes.
    pub runtime: Runtime,
    /// Images graders may use: exact references, or a prefix ending in `*`.
    pub images: Vec<String>,
    /// Upper bounds on what a grader may ask for its sandboxes.
    pub ceilings: Limits,
    /// Upper bounds on what a grader may spend itself per call.
    pub grader: Budget,
    /// Clamp or refuse requests above a ceiling.
    pub on_excess: OnExcess,
    /// Asset sources by name.
    pub sources: BTreeMap<String, SourceConfig>,
    /// Writable places graders may declare besides the standard four
    /// (contract 0.3.0), such as `/autograder` for `builtin:gradescope`.
    pub places: Vec<String>,
    /// Course settings passed to the grader.
    pub settings: BTreeMap<String, String>,
    /// Byte cap of the on-disk asset cache (least recently used go first).
    pub asset_cache_bytes: u64,
    /// Most time all the commands of one submission may take together.
    /// Their time is the student's, never the grader's budget; past this,
    /// the commands still asked for end as time-limit without running, and
    /// the grader scores them like any other.
    #[serde(with = "crate::sandbox::limits::humantime_serde_compat")]
    pub submission_time: Duration,
    /// A submission known to be gradable (the course's reference solution
    /// or a sample), relative to this file. Before a batch stops for a
    /// broken grader (plugin errors on its first submissions and nothing
    /// graded), agh grades it: when it grades, the grader works, the
    /// failures were the submissions', and the batch goes on.
    pub reference: Option<PathBuf>,
    /// A command's time limit is counted in CPU time, so a busy host does
    /// not change a verdict; the wall clock stops a command (one that
    /// waits, or starves) at this multiple of its limit.
    pub wall_multiple: u32,
}

/// Default byte cap of the disk cache.
pub const DEFAULT_ASSET_CACHE_BYTES: u64 = 20 * 1024 * 1024 * 1024;

/// [`Config::wall_multiple`] unless the config says otherwise.
pub const DEFAULT_WALL_MULTIPLE: u32 = 3;
/// The largest [`Config::wall_multiple`]: past it a waiting program holds
/// a grading slot for no reason a course has.
pub const MAX_WALL_MULTIPLE: u32 = 10;

/// [`Config::submission_time`] unless the config says otherwise: a course
/// of 32 cases at a 30 s deadline each, with room to spare.
pub const DEFAULT_SUBMISSION_TIME: Duration = Duration::from_secs(30 * 60);

impl Default for Config {
    fn default() -> Self {
        Self {
            runtime: Runtime::Runsc,
            images: DEFAULT_IMAGES.map(String::from).to_vec(),
            ceilings: Limits {
                wall_time: Duration::from_secs(60),
                cpu_time: Duration::from_secs(60),
                memory_bytes: 2 * 1024 * crate::sandbox::MIB,
                processes: 256,
                millicpus: 2000,
                output_bytes: 16 * crate::sandbox::MIB,
                file_size_bytes: 1024 * crate::sandbox::MIB,
                tmpfs_bytes: 1024 * crate::sandbox::MIB,
            },
            grader: Budget::CEILING,
            on_excess: OnExcess::Clamp,
            sources: BTreeMap::new(),
            places: Vec::new(),
            settings: BTreeMap::new(),
            asset_cache_bytes: DEFAULT_ASSET_CACHE_BYTES,
            submission_time: DEFAULT_SUBMISSION_TIME,
            reference: None,
            wall_multiple: DEFAULT_WALL_MULTIPLE,
        }
    }
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("config {path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its place in the file.
        message: String,
    },
}

impl Config {
    /// Reads and checks a config file; relative source paths are resolved
    /// against the file's folder.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and what is wrong in it.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.into(),
            message,
        };
        let mut config: Config = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        config
            .ceilings
            .validate()
            .map_err(|m| invalid(format!("[ceilings] {m}")))?;
        config
            .grader
            .validate()
            .map_err(|m| invalid(format!("[grader] {m}")))?;
        if config.submission_time.is_zero() {
            return Err(invalid(
                "submission_time must be more than 0 (0 never means unlimited)".into(),
            ));
        }
        if !(1..=MAX_WALL_MULTIPLE).contains(&config.wall_multiple) {
            return Err(invalid(format!(
                "wall_multiple = {} is outside 1 to {MAX_WALL_MULTIPLE}; it is how many times a \
                 command's time limit the wall clock waits (3 unless you have a reason)",
                config.wall_multiple
            )));
        }
        if config.places.len() > crate::layout::MAX_EXTRA_PLACES {
            return Err(invalid(format!(
                "places grants {} places; at most {}",
                config.places.len(),
                crate::layout::MAX_EXTRA_PLACES
            )));
        }
        for place in &config.places {
            crate::layout::check_extra_place(place).map_err(|m| invalid(format!("places: {m}")))?;
        }
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(reference) = &mut config.reference {
            if reference.is_relative() {
                *reference = base.join(&*reference);
            }
            if !reference.is_dir() {
                return Err(invalid(format!(
                    "reference {} is not a folder; name a submission folder the grader grades",
                    reference.display()
                )));
            }
        }
        for (name, source) in &mut config.sources {
            match (&mut source.local, &source.s3) {
                (Some(local), None) => {
                    if local.is_relative() {
                        *local = base.join(&*local);
                    }
                    if !local.is_dir() {
                        return Err(invalid(format!(
                            "source {name:?}: {} is not a folder",
                            local.display()
                        )));
                    }
                }
                (None, Some(s3)) => {
                    if s3.bucket.is_empty()
                        || s3.prefix.starts_with('/')
                        || s3.prefix.split('/').any(|p| p == "..")
                    {
                        return Err(invalid(format!(
                            "source {name:?}: give a bucket and a relative prefix"
                        )));
                    }
                }
                _ => {
                    return Err(invalid(format!(
                        "source {name:?}: give exactly one of `local` and `s3`"
                    )));
                }
            }
        }
        Ok(config)
    }

    /// True when `image` is granted exactly or by a `prefix*` entry.
    #[must_use]
    pub fn grants_image(&self, image: &str) -> bool {
        self.images
            .iter()
            .any(|grant| match grant.strip_suffix('*') {
                Some(prefix) => image.starts_with(prefix),
                None => grant == image,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agh.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path)
    }

    #[test]
    fn the_wall_multiple_is_three_unless_set_and_within_its_bounds() {
        assert_eq!(load("").unwrap().wall_multiple, DEFAULT_WALL_MULTIPLE);
        assert_eq!(load("wall_multiple = 5").unwrap().wall_multiple, 5);
        for bad in ["wall_multiple = 0", "wall_multiple = 11"] {
            let err = load(bad).unwrap_err().to_string();
            assert!(err.contains("is outside 1 to 10"), "{bad}: {err}");
        }
    }
}
