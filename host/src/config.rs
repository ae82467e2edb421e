//! The operator's configuration (`agh.toml`) and the policy it grants.
//!
//! A grader declares what it wants (image, limits, assets); the operator's
//! config grants images, asset sources and limit ceilings. Only the
//! intersection is allowed: a request above a ceiling is clamped or refused
//! as the config says, never widened, and zero never means unlimited.
//!
//! ```toml
//! runtime = "runsc"                  # or "runc-insecure", loudly recorded
//! images = ["agh/python-c:1", "agh/*"]
//! on_excess = "clamp"                # or "refuse"
//!
//! [ceilings]                          # any of Limits' fields
//! wall_time = "30s"
//! cpu_time = "5s"                     # CPU of each process of a command
//! memory_bytes = 1073741824
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

use crate::doctor::DEFAULT_IMAGES;
use crate::sandbox::{Limits, Owner, Runtime, check_sandbox_path};

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
    /// Upper bounds on what a grader may ask for.
    pub ceilings: Limits,
    /// Clamp or refuse requests above a ceiling.
    pub on_excess: OnExcess,
    /// Asset sources by name.
    pub sources: BTreeMap<String, SourceConfig>,
    /// Course settings passed to the grader.
    pub settings: BTreeMap<String, String>,
    /// Byte cap of the on-disk asset cache (least recently used go first).
    pub asset_cache_bytes: u64,
}

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
            on_excess: OnExcess::Clamp,
            sources: BTreeMap::new(),
            settings: BTreeMap::new(),
            asset_cache_bytes: crate::assets::cache::DEFAULT_DISK_BYTES,
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
        let base = path.parent().unwrap_or(Path::new("."));
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

/// What a grader asked for, in host terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Image reference.
    pub image: String,
    /// Limits asked for.
    pub limits: Limits,
    /// Assets: name, `SOURCE:PATH`, target.
    pub assets: Vec<(String, String, String)>,
}

/// An asset the policy allows, resolved to its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantedAsset {
    /// The name the grader uses.
    pub name: String,
    /// The source name.
    pub source: String,
    /// Path inside the source.
    pub path: String,
    /// Where the source is.
    pub location: SourceLocation,
    /// Target inside the sandbox.
    pub target: String,
    /// Who will own it in the sandbox.
    pub owner: Owner,
}

/// What the policy allows: the intersection of request and grant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Effective {
    /// The image.
    pub image: String,
    /// Effective limits.
    pub limits: Limits,
    /// Granted assets.
    pub assets: Vec<GrantedAsset>,
    /// Requests lowered to a ceiling, one sentence each.
    pub clamped: Vec<String>,
}

/// Intersects a grader's request with the operator's grant.
///
/// # Errors
/// Every refusal at once, one sentence each saying what was asked and what
/// is allowed.
pub fn intersect(request: &Request, config: &Config) -> Result<Effective, Vec<String>> {
    let mut refusals = Vec::new();
    let mut clamped = Vec::new();
    if !config.grants_image(&request.image) {
        refusals.push(format!(
            "image {:?} is not granted; the config allows {}",
            request.image,
            config.images.join(", ")
        ));
    }
    if let Err(why) = request.limits.validate() {
        refusals.push(format!("the grader asks for {why}"));
    }
    let limits = clamp_limits(
        &request.limits,
        &config.ceilings,
        config.on_excess,
        &mut clamped,
        &mut refusals,
    );
    let mut assets = Vec::new();
    for (name, spec, target) in &request.assets {
        match grant_asset(name, spec, target, config) {
            Ok(asset) => assets.push(asset),
            Err(why) => refusals.push(why),
        }
    }
    let mut names: Vec<&str> = assets.iter().map(|a| a.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        refusals.push("two assets share a name".into());
    }
    if refusals.is_empty() {
        Ok(Effective {
            image: request.image.clone(),
            limits,
            assets,
            clamped,
        })
    } else {
        Err(refusals)
    }
}

fn clamp_limits(
    asked: &Limits,
    ceiling: &Limits,
    on_excess: OnExcess,
    clamped: &mut Vec<String>,
    refusals: &mut Vec<String>,
) -> Limits {
    let mut out = asked.clone();
    let mut check = |what: &str, asked: u64, max: u64, show: &dyn Fn(u64) -> String| -> u64 {
        if asked <= max {
            return asked;
        }
        let sentence = format!(
            "{what} of {} is above the ceiling of {}",
            show(asked),
            show(max)
        );
        match on_excess {
            OnExcess::Clamp => clamped.push(format!("{sentence}; lowered to {}", show(max))),
            OnExcess::Refuse => refusals.push(sentence),
        }
        max
    };
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let duration = |ms: u64| humantime::format_duration(Duration::from_millis(ms)).to_string();
    let size = |bytes: u64| bytesize::ByteSize(bytes).to_string();
    let count = |n: u64| n.to_string();
    let cores = |m: u64| format!("{:.2} cores", m as f64 / 1000.0);
    out.wall_time = Duration::from_millis(check(
        "a wall time",
        ms(asked.wall_time),
        ms(ceiling.wall_time),
        &duration,
    ));
    // Graders cannot ask for CPU time (their commands get as much as their
    // wall time); the operator's ceiling bounds it without a word.
    out.cpu_time = asked.cpu_time.min(ceiling.cpu_time);
    out.memory_bytes = check("memory", asked.memory_bytes, ceiling.memory_bytes, &size);
    out.processes = u32::try_from(check(
        "a process limit",
        asked.processes.into(),
        ceiling.processes.into(),
        &count,
    ))
    .unwrap_or(u32::MAX);
    out.millicpus = u32::try_from(check(
        "a CPU share",
        asked.millicpus.into(),
        ceiling.millicpus.into(),
        &cores,
    ))
    .unwrap_or(u32::MAX);
    out.output_bytes = check(
        "an output cap",
        asked.output_bytes,
        ceiling.output_bytes,
        &size,
    );
    out.file_size_bytes = check(
        "a file size limit",
        asked.file_size_bytes,
        ceiling.file_size_bytes,
        &size,
    );
    out.tmpfs_bytes = check(
        "writable places",
        asked.tmpfs_bytes,
        ceiling.tmpfs_bytes,
        &size,
    );
    out
}

fn grant_asset(
    name: &str,
    spec: &str,
    target: &str,
    config: &Config,
) -> Result<GrantedAsset, String> {
    let Some((source, path)) = spec.split_once(':') else {
        return Err(format!(
            "asset {name:?}: source {spec:?} is not SOURCE:PATH"
        ));
    };
    let Some(granted) = config.sources.get(source) else {
        let known: Vec<&str> = config.sources.keys().map(String::as_str).collect();
        return Err(format!(
            "asset {name:?}: source {source:?} is not granted; the config grants {}",
            if known.is_empty() {
                "no sources".to_string()
            } else {
                known.join(", ")
            }
        ));
    };
    let clean = !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !clean {
        return Err(format!(
            "asset {name:?}: path {path:?} must be relative, without '..'"
        ));
    }
    let owner = if target.starts_with("/grader") {
        Owner::Grader
    } else {
        Owner::Root
    };
    check_sandbox_path(target, owner).map_err(|e| format!("asset {name:?}: {e}"))?;
    let location = match (&granted.local, &granted.s3) {
        (Some(local), _) => SourceLocation::Local(local.clone()),
        (None, Some(s3)) => SourceLocation::S3(s3.clone()),
        (None, None) => return Err(format!("asset {name:?}: source {source:?} names no place")),
    };
    Ok(GrantedAsset {
        name: name.into(),
        source: source.into(),
        path: path.into(),
        location,
        target: target.into(),
        owner,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(images: &[&str], sources: &[&str]) -> Config {
        Config {
            images: images.iter().map(|s| s.to_string()).collect(),
            sources: sources
                .iter()
                .map(|s| {
                    (
                        s.to_string(),
                        SourceConfig {
                            local: Some(PathBuf::from("/srv/course")),
                            s3: None,
                        },
                    )
                })
                .collect(),
            ..Config::default()
        }
    }

    fn request(image: &str, assets: &[(&str, &str, &str)]) -> Request {
        Request {
            image: image.into(),
            limits: Limits::default(),
            assets: assets
                .iter()
                .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
                .collect(),
        }
    }

    #[test]
    fn no_grant_refuses_everything_with_reasons() {
        let config = config_with(&[], &[]);
        let refusals = intersect(
            &request("agh/python-c:1", &[("t", "course:tests", "/assets/t")]),
            &config,
        )
        .unwrap_err();
        assert_eq!(refusals.len(), 2, "{refusals:?}");
        assert!(refusals[0].contains("image \"agh/python-c:1\" is not granted"));
        assert!(refusals[1].contains("grants no sources"));
    }

    #[test]
    fn exact_grant_allows_exactly_that() {
        let config = config_with(&["agh/python-c:1"], &["course"]);
        let ok = intersect(
            &request("agh/python-c:1", &[("t", "course:tests", "/assets/t")]),
            &config,
        )
        .unwrap();
        assert_eq!(ok.assets[0].owner, Owner::Root);
        assert!(intersect(&request("agh/python-c:2", &[]), &config).is_err());
        let other = intersect(
            &request("agh/python-c:1", &[("t", "other:x", "/assets/t")]),
            &config,
        )
        .unwrap_err();
        assert!(
            other[0].contains("source \"other\" is not granted; the config grants course"),
            "{other:?}"
        );
    }

    #[test]
    fn wildcard_grant_allows_a_prefix_only() {
        let config = config_with(&["agh/*"], &[]);
        assert!(intersect(&request("agh/anything:3", &[]), &config).is_ok());
        assert!(intersect(&request("evil/agh:1", &[]), &config).is_err());
    }

    #[test]
    fn requests_above_ceilings_are_clamped_or_refused_never_widened() {
        let mut config = config_with(&["agh/*"], &[]);
        let mut req = request("agh/x:1", &[]);
        req.limits.memory_bytes = config.ceilings.memory_bytes * 4;
        let ok = intersect(&req, &config).unwrap();
        assert_eq!(ok.limits.memory_bytes, config.ceilings.memory_bytes);
        assert_eq!(
            ok.clamped,
            ["memory of 8.0 GiB is above the ceiling of 2.0 GiB; lowered to 2.0 GiB"],
            "in words, with human sizes"
        );
        config.on_excess = OnExcess::Refuse;
        let refused = intersect(&req, &config).unwrap_err();
        assert!(refused[0].contains("above the ceiling"), "{refused:?}");
    }

    #[test]
    fn zero_limits_and_bad_asset_paths_are_refused() {
        let config = config_with(&["agh/*"], &["course"]);
        let mut req = request(
            "agh/x:1",
            &[
                ("a", "course:../etc", "/assets/a"),
                ("b", "course:ok", "/etc/b"),
            ],
        );
        req.limits.processes = 0;
        let refusals = intersect(&req, &config).unwrap_err();
        assert!(
            refusals.iter().any(|r| r.contains("a process limit of 0")),
            "{refusals:?}"
        );
        assert!(
            refusals.iter().any(|r| r.contains("without '..'")),
            "{refusals:?}"
        );
        assert!(
            refusals.iter().any(|r| r.contains("outside the places")),
            "{refusals:?}"
        );
    }
}
