//! A grader's plan: loaded, described and intersected with the operator's
//! policy, and checked (its image, its assets) as far as can be without a
//! sandbox.

use std::path::Path;

use crate::assets::{self, AssetCache, AssetProblem, ResolvedAsset, S3Timeouts};
use crate::config::Config;
use crate::plugin::{self, Description, Grader, PluginError, PluginHost};
use crate::policy::{self, Effective};
use crate::private_dir;
use crate::sandbox;

/// Why a grader could not be prepared to grade.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The grader could not be loaded or described.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The grader asks for what the operator does not grant.
    #[error("the operator's policy refuses this grader:\n  - {}", sentences(.0))]
    Policy(Vec<policy::Refusal>),
    /// Declared assets are missing or refused.
    #[error("assets the grader declares are not available:\n  - {}", sentences(.0))]
    Assets(Vec<AssetProblem>),
    /// Docker, runsc or the image is not usable.
    #[error("{0}")]
    Infra(String),
}

/// Refusals as the list an operator reads.
fn sentences(refusals: &[impl ToString]) -> String {
    refusals
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  - ")
}

impl PrepareError {
    /// Whose doing the failure is: the grader's for what it is or asks
    /// (the policy and asset refusals included: the grader declared them),
    /// the host's for Docker, runsc or the disk.
    #[must_use]
    pub fn blame(&self) -> crate::blame::Blame {
        match self {
            PrepareError::Plugin(err) => err.blame(),
            PrepareError::Policy(_) | PrepareError::Assets(_) => crate::blame::Blame::Grader,
            PrepareError::Infra(_) => crate::blame::Blame::Host,
        }
    }

    /// True when the host, not the grader or policy, is at fault.
    #[must_use]
    pub fn is_infra(&self) -> bool {
        self.blame() == crate::blame::Blame::Host
    }
}

/// The id of `image` on the daemon. An image the daemon does not have is
/// the grader's or the operator's mistake (a misspelled tag a `prefix*`
/// grant let through), not an infra failure: the refusal names the closest
/// image the daemon has.
///
/// # Errors
/// [`PrepareError::Policy`] for a missing image; [`PrepareError::Infra`] when
/// Docker does not answer.
pub async fn image_present(docker: &sandbox::Docker, image: &str) -> Result<String, PrepareError> {
    match docker.inspect_image(image).await {
        Ok(found) => return Ok(found.id.unwrap_or_default()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(err) => {
            return Err(PrepareError::Infra(format!(
                "image {image}: {err}; run `agh doctor`"
            )));
        }
    }
    let tags: Vec<String> = docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .map_err(|err| PrepareError::Infra(format!("listing images: {err}; run `agh doctor`")))?
        .into_iter()
        .flat_map(|summary| summary.repo_tags)
        .filter(|tag| tag != "<none>:<none>")
        .collect();
    let closest = tags
        .iter()
        .map(|tag| (strsim::levenshtein(image, tag), tag))
        .min();
    let hint = match closest {
        Some((_, tag)) => format!("the closest image it has is {tag}"),
        None => "it has no images".to_string(),
    };
    Err(PrepareError::Policy(vec![policy::Refusal::ImageMissing {
        image: image.to_string(),
        hint,
    }]))
}

/// Local asset folders and files the plan names that do not exist: found
/// before anything runs, without `--resolve`.
#[must_use]
pub fn missing_local_assets(effective: &Effective) -> Vec<AssetProblem> {
    effective
        .assets
        .iter()
        .filter_map(|asset| match &asset.location {
            crate::config::SourceLocation::Local(root) => {
                let path = root.join(&asset.path);
                (!path.exists()).then(|| AssetProblem::Missing {
                    name: asset.name.clone(),
                    source_name: asset.source.clone(),
                    root: root.clone(),
                    path,
                })
            }
            crate::config::SourceLocation::S3(_) => None,
        })
        .collect()
}

/// What a grader declares and what policy allows, before anything runs.
pub struct Plan {
    /// The loaded grader.
    pub grader: Grader,
    /// What it said of itself.
    pub description: Description,
    /// What policy allows.
    pub effective: Effective,
}

/// What `agh plan` shows: the [`Plan`], whether its image is on the
/// daemon, and (when asked) its assets resolved.
pub struct PlanCheck {
    /// The plan.
    pub plan: Plan,
    /// `present`, or why the image was not checked.
    pub image: String,
    /// The assets, resolved, when resolution was asked for.
    pub resolved: Vec<ResolvedAsset>,
}

/// Plans as a batch would, then checks what can be checked without a
/// sandbox: every local asset is there, the image is on the daemon (when
/// the daemon answers), and with `resolve` every asset resolves. Runs no
/// student code and starts no sandbox.
///
/// # Errors
/// [`PrepareError`] for a grader that cannot be loaded or is refused, a
/// missing local asset, an image the daemon says is missing, or an asset
/// that does not resolve.
pub async fn check_plan(
    plugin_path: &Path,
    config: &Config,
    resolve: bool,
    notice: &mut (dyn FnMut(plugin::LoadNotice) + Send),
) -> Result<PlanCheck, PrepareError> {
    let plan = plan_noting(plugin_path, config, notice).await?;
    let missing = missing_local_assets(&plan.effective);
    if !missing.is_empty() {
        return Err(PrepareError::Assets(missing));
    }
    let image = match sandbox::connect().await {
        Ok(docker) => match image_present(&docker, &plan.effective.image).await {
            Ok(_) => "present".to_string(),
            Err(err @ PrepareError::Policy(_)) => return Err(err),
            Err(err) => format!("not checked: {err}"),
        },
        Err(err) => format!("not checked: {err}"),
    };
    let resolved = if resolve {
        let cache = open_asset_cache(config)?;
        assets::resolve_all(&plan.effective.assets, Some(&cache), S3Timeouts::default())
            .await
            .map_err(PrepareError::Assets)?
    } else {
        Vec::new()
    };
    Ok(PlanCheck {
        plan,
        image,
        resolved,
    })
}

/// Loads a grader, describes it and intersects it with the policy. Runs no
/// student code and starts no sandbox.
///
/// # Errors
/// [`PrepareError`] with every refusal listed.
pub async fn plan(plugin_path: &Path, config: &Config) -> Result<Plan, PrepareError> {
    plan_noting(plugin_path, config, &mut |_| {}).await
}

/// [`plan`], telling `notice` when the grader must be compiled first.
///
/// # Errors
/// As [`plan`].
pub async fn plan_noting(
    plugin_path: &Path,
    config: &Config,
    notice: &mut (dyn FnMut(plugin::LoadNotice) + Send),
) -> Result<Plan, PrepareError> {
    let cache_dir =
        private_dir::default_cache_dir().map_err(|e| PrepareError::Infra(e.to_string()))?;
    let host = PluginHost::new(Some(cache_dir))?;
    let grader = host.load_noting(plugin_path, notice)?;
    let settings: Vec<(String, String)> = config.settings.clone().into_iter().collect();
    let description = grader
        .describe(&settings, policy::Budget::for_describe(config.grader))
        .await?;
    let mut effective =
        policy::intersect(&description.request, config).map_err(PrepareError::Policy)?;
    effective.limits.millicpus = effective.limits.millicpus.min(config.ceilings.millicpus);
    Ok(Plan {
        grader,
        description,
        effective,
    })
}

/// Opens the asset cache in agh's private cache folder.
///
/// # Errors
/// [`PrepareError::Infra`] when the folder is not private or cannot be made.
pub fn open_asset_cache(config: &Config) -> Result<AssetCache, PrepareError> {
    let cache_root =
        private_dir::default_cache_dir().map_err(|e| PrepareError::Infra(e.to_string()))?;
    AssetCache::open(&cache_root, config.asset_cache_bytes)
        .map_err(|e| PrepareError::Infra(format!("asset cache {}: {e}", cache_root.display())))
}
