//! Course versions made ready to grade: each registered version is
//! prepared once per process (loaded, described, its policy and assets
//! checked, its image and runtime proved) and shared by every submission
//! it grades.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::blobs::{BlobKind, Blobs};
use super::store::CourseVersion;
use crate::config::Config;
use crate::grading::{PrepareError, PreparedGrader};

/// Why a course's grader or config was refused at registration.
#[derive(Debug, thiserror::Error)]
pub enum CourseError {
    /// The config is not valid for the service.
    #[error("agh.toml: {0}")]
    Config(String),
    /// The grader could not be prepared.
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    /// The server's own disk failed.
    #[error("{0}")]
    Io(String),
}

impl CourseError {
    /// Whose doing it is.
    #[must_use]
    pub fn blame(&self) -> crate::blame::Blame {
        match self {
            Self::Config(_) => crate::blame::Blame::Operator,
            Self::Prepare(err) => err.blame(),
            Self::Io(_) => crate::blame::Blame::Host,
        }
    }
}

/// The sha256 of a config's text.
#[must_use]
pub fn config_sha256(text: &str) -> String {
    crate::layout::hex(&Sha256::digest(text.as_bytes()))
}

/// Refuses what a config names relative to its own file: a registered
/// course's config has no folder of its own, so its local sources and
/// reference must name folders on the server by absolute path.
///
/// # Errors
/// What is relative, and what to do.
pub fn check_service_config(text: &str) -> Result<(), CourseError> {
    let value: toml::Table =
        toml::from_str(text).map_err(|e| CourseError::Config(e.to_string()))?;
    let mut relative = Vec::new();
    if let Some(reference) = value.get("reference").and_then(toml::Value::as_str)
        && Path::new(reference).is_relative()
    {
        relative.push(format!("reference = {reference:?}"));
    }
    if let Some(sources) = value.get("sources").and_then(toml::Value::as_table) {
        for (name, source) in sources {
            if let Some(local) = source.get("local").and_then(toml::Value::as_str)
                && Path::new(local).is_relative()
            {
                relative.push(format!("sources.{name}.local = {local:?}"));
            }
        }
    }
    if relative.is_empty() {
        Ok(())
    } else {
        Err(CourseError::Config(format!(
            "{} relative; a course registered with the service names folders on the server by \
             absolute path (`agh course add` makes them absolute for you)",
            relative.join(", ")
        )))
    }
}

/// Loads a config's text as the service keeps it: written to `file`,
/// then read and checked as `agh grade` reads one.
///
/// # Errors
/// What is wrong with it.
pub fn load_config(text: &str, file: &Path) -> Result<Config, CourseError> {
    check_service_config(text)?;
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| CourseError::Io(format!("{}: {e}", dir.display())))?;
    crate::layout::write_atomic(dir, file, text.as_bytes())
        .map_err(|e| CourseError::Io(format!("{}: {e}", file.display())))?;
    Config::load(file).map_err(|e| CourseError::Config(e.to_string()))
}

/// A grader that passed registration's checks.
pub struct Checked {
    /// The component's sha256.
    pub plugin_sha256: String,
    /// Its name and version, as it describes itself.
    pub grader: String,
    /// Prepared to grade, where this process grades.
    pub prepared: Option<Arc<PreparedGrader>>,
}

fn described(plan: &crate::grading::Plan) -> String {
    format!("{} {}", plan.description.name, plan.description.version)
}

/// Prepared graders, one per course version, made on first use.
pub struct Graders {
    data: PathBuf,
    blobs: Blobs,
    prepared: tokio::sync::Mutex<HashMap<(String, i64), Arc<PreparedGrader>>>,
}

impl Graders {
    /// Graders for the store in `data`.
    #[must_use]
    pub fn new(data: &Path, blobs: Blobs) -> Self {
        Self {
            data: data.to_path_buf(),
            blobs,
            prepared: tokio::sync::Mutex::default(),
        }
    }

    /// The component of `plugin` (`builtin:NAME` or a blob's sha256).
    ///
    /// # Errors
    /// When the blob cannot be had.
    async fn plugin_path(&self, plugin: &str) -> Result<PathBuf, CourseError> {
        if plugin.starts_with("builtin:") {
            Ok(PathBuf::from(plugin))
        } else {
            self.blobs
                .fetch(plugin, BlobKind::Wasm)
                .await
                .map_err(|e| CourseError::Io(e.to_string()))
        }
    }

    /// Checks `plugin` under the config `text`, as a registration does
    /// before it records anything: where this process grades, prepared in
    /// full (its image and runtime proved too); on an API alone, loaded,
    /// described, its policy intersected, its assets resolved and its image
    /// looked for (when a Docker daemon answers), with no sandbox started.
    ///
    /// # Errors
    /// Why the grader or config is refused.
    pub async fn check(
        &self,
        course: &str,
        plugin: &str,
        text: &str,
        prepare: bool,
    ) -> Result<Checked, CourseError> {
        let file = self
            .data
            .join("courses")
            .join(course)
            .join(format!("pending-{}", config_sha256(text)))
            .join("agh.toml");
        let config = load_config(text, &file)?;
        let path = self.plugin_path(plugin).await?;
        if prepare {
            let grader = PreparedGrader::prepare(&path, config, &mut |_| {}).await?;
            return Ok(Checked {
                plugin_sha256: grader.key().plugin_sha256.clone(),
                grader: described(grader.plan()),
                prepared: Some(grader),
            });
        }
        let checked = crate::grading::check_plan(&path, &config, true, &mut |_| {}).await?;
        Ok(Checked {
            plugin_sha256: checked.plan.grader.sha256().to_string(),
            grader: described(&checked.plan),
            prepared: None,
        })
    }

    /// Waits until every prepared grader's sandboxes of graded
    /// submissions are removed.
    pub async fn settle(&self) {
        let prepared: Vec<_> = self.prepared.lock().await.values().cloned().collect();
        for grader in prepared {
            grader.settle().await;
        }
    }

    /// Keeps `grader` as the prepared form of `version`.
    pub async fn keep(&self, version: &CourseVersion, grader: Arc<PreparedGrader>) {
        self.prepared
            .lock()
            .await
            .insert((version.course.clone(), version.version), grader);
    }

    /// The prepared grader of `version`, prepared now when this process
    /// has not yet.
    ///
    /// # Errors
    /// Why it cannot be prepared (now).
    pub async fn get(&self, version: &CourseVersion) -> Result<Arc<PreparedGrader>, CourseError> {
        let key = (version.course.clone(), version.version);
        let mut prepared = self.prepared.lock().await;
        if let Some(grader) = prepared.get(&key) {
            return Ok(grader.clone());
        }
        let file = self
            .data
            .join("courses")
            .join(&version.course)
            .join(version.version.to_string())
            .join("agh.toml");
        let config = load_config(&version.config_toml, &file)?;
        let grader = PreparedGrader::prepare(
            &self.plugin_path(&version.plugin).await?,
            config,
            &mut |_| {},
        )
        .await?;
        prepared.insert(key, grader.clone());
        Ok(grader)
    }
}
