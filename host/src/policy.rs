//! Policy: what a grader may have, the intersection of what it asks for
//! and what the operator's [`Config`] grants. A request above a ceiling is
//! clamped or refused as the config says, never widened, and zero never
//! means unlimited.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

pub use crate::config::Budget;
use crate::config::{Config, OnExcess, SourceLocation};
use crate::layout::{ExtraPlace, MAX_EXTRA_PLACES, check_extra_place};
use crate::sandbox::{Limits, Longest, Owner, check_sandbox_path};

/// What a grader asked for, in host terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Image reference.
    pub image: String,
    /// Limits asked for.
    pub limits: Limits,
    /// What it asks to spend itself per call.
    pub budget: Budget,
    /// Assets: name, `SOURCE:PATH`, target.
    pub assets: Vec<(String, String, String)>,
    /// Writable places of its own (contract 0.3.0).
    pub places: Vec<ExtraPlace>,
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
    /// How long one command may ask to run: the operator's ceilings.
    pub longest: Longest,
    /// What the grader may spend itself per call.
    pub budget: Budget,
    /// Granted assets.
    pub assets: Vec<GrantedAsset>,
    /// Granted places of the grader's own.
    pub places: Vec<ExtraPlace>,
    /// Requests lowered to a ceiling, one sentence each.
    pub clamped: Vec<String>,
}

/// Why the operator's policy refuses part of what a grader asks for: what
/// was asked, and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The image is not among those the config grants.
    #[error("image {image:?} is not granted; the config allows {}", .granted.join(", "))]
    ImageNotGranted {
        /// The image asked for.
        image: String,
        /// What the config grants.
        granted: Vec<String>,
    },
    /// The image is granted but the daemon does not have it.
    #[error(
        "image {image} does not exist on this Docker daemon ({hint}); fix the image the grader \
         asks for, or build agh's sandbox images with `sudo scripts/setup`"
    )]
    ImageMissing {
        /// The image asked for.
        image: String,
        /// The closest image the daemon has, in words.
        hint: String,
    },
    /// A limit or budget that cannot work (zero, or no room for `/work`).
    #[error("the grader asks for {0}")]
    Unusable(String),
    /// A value above the operator's ceiling, with `on_excess = "refuse"`.
    #[error("{what} of {asked} is above the ceiling of {ceiling}")]
    AboveCeiling {
        /// What was asked for.
        what: String,
        /// How much, in its unit.
        asked: String,
        /// The ceiling, in the same unit.
        ceiling: String,
    },
    /// An asset declaration the config cannot grant.
    #[error("asset {name:?}: {why}")]
    Asset {
        /// The asset's name.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// Two assets of one name.
    #[error("two assets share a name")]
    SharedAssetName,
    /// A place of the grader's own the config does not grant, or one that
    /// cannot be.
    #[error("place {path:?}: {why}")]
    Place {
        /// The place asked for.
        path: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Intersects a grader's request with the operator's grant.
///
/// # Errors
/// Every refusal at once, one sentence each saying what was asked and what
/// is allowed.
pub fn intersect(request: &Request, config: &Config) -> Result<Effective, Vec<Refusal>> {
    let mut refusals = Vec::new();
    let mut clamped = Vec::new();
    if !config.grants_image(&request.image) {
        refusals.push(Refusal::ImageNotGranted {
            image: request.image.clone(),
            granted: config.images.clone(),
        });
    }
    if let Err(why) = request.limits.validate() {
        refusals.push(Refusal::Unusable(why.to_string()));
    }
    if let Err(why) = request.budget.validate() {
        refusals.push(Refusal::Unusable(why.to_string()));
    }
    let budget = clamp_budget(
        request.budget,
        config.grader,
        config.on_excess,
        &mut clamped,
        &mut refusals,
    );
    let limits = clamp_limits(
        &request.limits,
        &config.ceilings,
        config.on_excess,
        &mut clamped,
        &mut refusals,
    );
    // Checked on what the sandbox would get, after every clamp.
    if let Some(why) = limits.room_for_work() {
        refusals.push(Refusal::Unusable(why.to_string()));
    }
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
        refusals.push(Refusal::SharedAssetName);
    }
    refusals.extend(refused_places(&request.places, config));
    if refusals.is_empty() {
        Ok(Effective {
            image: request.image.clone(),
            longest: Longest {
                wall_time: config.ceilings.wall_time.max(limits.wall_time),
                cpu_time: config.ceilings.cpu_time.max(limits.cpu_time),
            },
            budget,
            limits,
            assets,
            places: request.places.clone(),
            clamped,
        })
    } else {
        Err(refusals)
    }
}

/// Why the places a grader declares cannot be granted: a bad shape, one
/// the config does not list, root as owner, a repeat, too many.
fn refused_places(places: &[ExtraPlace], config: &Config) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    let refuse = |path: &str, why: String| Refusal::Place {
        path: path.to_string(),
        why,
    };
    if places.len() > MAX_EXTRA_PLACES {
        refusals.push(refuse(
            &places[MAX_EXTRA_PLACES].path,
            format!(
                "the grader declares {} places; at most {MAX_EXTRA_PLACES}",
                places.len()
            ),
        ));
    }
    for (i, place) in places.iter().enumerate() {
        if let Err(why) = check_extra_place(&place.path) {
            refusals.push(refuse(&place.path, why));
        } else if !config.places.contains(&place.path) {
            refusals.push(refuse(
                &place.path,
                format!(
                    "not granted; add `places = [{:?}]` to the course's agh.toml to allow it{}",
                    place.path,
                    if config.places.is_empty() {
                        String::new()
                    } else {
                        format!(" (it grants {})", config.places.join(", "))
                    }
                ),
            ));
        }
        if place.owner == Owner::Root {
            refusals.push(refuse(
                &place.path,
                "a place is the student's or the grader user's, never root's".into(),
            ));
        }
        if places[..i].iter().any(|p| p.path == place.path) {
            refusals.push(refuse(&place.path, "declared twice".into()));
        }
    }
    refusals
}

/// Bounds one asked-for value by its ceiling, noting a clamp or a refusal
/// in words ("memory of 8.0 GiB is above the ceiling of 2.0 GiB").
struct Ceiling<'a> {
    on_excess: OnExcess,
    clamped: &'a mut Vec<String>,
    refusals: &'a mut Vec<Refusal>,
}

impl Ceiling<'_> {
    fn check(&mut self, what: &str, asked: u64, max: u64, show: &dyn Fn(u64) -> String) -> u64 {
        if asked <= max {
            return asked;
        }
        let refusal = Refusal::AboveCeiling {
            what: what.to_string(),
            asked: show(asked),
            ceiling: show(max),
        };
        match self.on_excess {
            OnExcess::Clamp => self
                .clamped
                .push(format!("{refusal}; lowered to {}", show(max))),
            OnExcess::Refuse => self.refusals.push(refusal),
        }
        max
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn duration(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

fn clamp_budget(
    asked: Budget,
    ceiling: Budget,
    on_excess: OnExcess,
    clamped: &mut Vec<String>,
    refusals: &mut Vec<Refusal>,
) -> Budget {
    let mut bound = Ceiling {
        on_excess,
        clamped,
        refusals,
    };
    let fuel = |f: u64| format!("{:.1} billion", f as f64 / 1e9);
    Budget {
        fuel: bound.check("grader fuel", asked.fuel, ceiling.fuel, &fuel),
        wall_time: Duration::from_millis(bound.check(
            "a grader wall time",
            ms(asked.wall_time),
            ms(ceiling.wall_time),
            &duration,
        )),
    }
}

fn clamp_limits(
    asked: &Limits,
    ceiling: &Limits,
    on_excess: OnExcess,
    clamped: &mut Vec<String>,
    refusals: &mut Vec<Refusal>,
) -> Limits {
    let mut out = asked.clone();
    let mut bound = Ceiling {
        on_excess,
        clamped,
        refusals,
    };
    let mut check = |what: &str, asked: u64, max: u64, show: &dyn Fn(u64) -> String| {
        bound.check(what, asked, max, show)
    };
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
) -> Result<GrantedAsset, Refusal> {
    let refuse = |why: String| Refusal::Asset {
        name: name.to_string(),
        why,
    };
    let Some((source, path)) = spec.split_once(':') else {
        return Err(refuse(format!("source {spec:?} is not SOURCE:PATH")));
    };
    let Some(granted) = config.sources.get(source) else {
        let known: Vec<&str> = config.sources.keys().map(String::as_str).collect();
        return Err(refuse(format!(
            "source {source:?} is not granted; the config grants {}",
            if known.is_empty() {
                "no sources".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    let clean = !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !clean {
        return Err(refuse(format!(
            "path {path:?} must be relative, without '..'"
        )));
    }
    // Assets are root's under /assets, or the grader user's under /grader.
    let owner = match Owner::of_path(target) {
        Some(Owner::Grader) => Owner::Grader,
        _ => Owner::Root,
    };
    check_sandbox_path(target, owner).map_err(|e| refuse(e.to_string()))?;
    let location = match (&granted.local, &granted.s3) {
        (Some(local), _) => SourceLocation::Local(local.clone()),
        (None, Some(s3)) => SourceLocation::S3(s3.clone()),
        (None, None) => return Err(refuse(format!("source {source:?} names no place"))),
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
    use std::path::PathBuf;

    use super::*;
    use crate::config::SourceConfig;
    use crate::sandbox::MIB;

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
            budget: Budget::CONTRACT_0_1,
            assets: assets
                .iter()
                .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
                .collect(),
            places: Vec::new(),
        }
    }

    #[test]
    fn a_graders_own_place_needs_the_configs_grant() {
        let mut config = config_with(&["agh/python-c:1"], &[]);
        let mut asked = request("agh/python-c:1", &[]);
        asked.places = vec![ExtraPlace {
            path: "/autograder".into(),
            owner: Owner::Grader,
        }];
        let refusals = intersect(&asked, &config).unwrap_err();
        assert!(
            refusals[0]
                .to_string()
                .contains("places = [\"/autograder\"]"),
            "{refusals:?}"
        );
        config.places = vec!["/autograder".into()];
        assert_eq!(intersect(&asked, &config).unwrap().places, asked.places);
        asked.places.push(ExtraPlace {
            path: "/etc".into(),
            owner: Owner::Root,
        });
        let refusals = intersect(&asked, &config).unwrap_err();
        assert_eq!(refusals.len(), 2, "{refusals:?}");
        assert!(
            refusals[0].to_string().contains("system folder"),
            "{refusals:?}"
        );
        assert!(
            refusals[1].to_string().contains("never root"),
            "{refusals:?}"
        );
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
        assert!(
            refusals[0]
                .to_string()
                .contains("image \"agh/python-c:1\" is not granted")
        );
        assert!(refusals[1].to_string().contains("grants no sources"));
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
            other[0]
                .to_string()
                .contains("source \"other\" is not granted; the config grants course"),
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
        assert!(
            refused[0].to_string().contains("above the ceiling"),
            "{refused:?}"
        );
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
            refusals
                .iter()
                .any(|r| r.to_string().contains("a process limit of 0")),
            "{refusals:?}"
        );
        assert!(
            refusals
                .iter()
                .any(|r| r.to_string().contains("without '..'")),
            "{refusals:?}"
        );
        assert!(
            refusals
                .iter()
                .any(|r| r.to_string().contains("outside the places")),
            "{refusals:?}"
        );
    }

    #[test]
    fn a_grader_budget_above_the_ceiling_is_clamped() {
        let config = config_with(&["agh/*"], &[]);
        let mut req = request("agh/x:1", &[]);
        req.budget.wall_time = Duration::from_secs(3600);
        let ok = intersect(&req, &config).unwrap();
        assert_eq!(ok.budget.wall_time, config.grader.wall_time);
        assert_eq!(
            ok.clamped,
            ["a grader wall time of 1h is above the ceiling of 10m; lowered to 10m"]
        );
        req.budget.fuel = 0;
        let refused = intersect(&req, &config).unwrap_err();
        assert!(refused[0].to_string().contains("fuel of 0"), "{refused:?}");
    }

    /// The writable places are held in the sandbox's memory: a plan whose
    /// memory cannot hold a full `/work` is refused before any sandbox
    /// starts (a submission within every cap filled such a sandbox during
    /// agh's own copy), with what to ask for.
    #[test]
    fn a_plan_whose_memory_cannot_hold_a_full_work_is_refused() {
        let config = config_with(&["agh/*"], &[]);
        let mut req = request("agh/x:1", &[]);
        req.limits.memory_bytes = 256 * MIB;
        req.limits.tmpfs_bytes = 256 * MIB;
        let refused: Vec<String> = intersect(&req, &config)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            refused,
            [
                "the grader asks for memory of 256.0 MiB with writable places of 256.0 MiB: a full \
              /work is held in memory and needs 320.0 MiB with the sandbox's own 64.0 MiB; ask \
              for at least 320.0 MiB of memory or writable places of at most 192.0 MiB"
            ]
        );
        req.limits.tmpfs_bytes = 192 * MIB;
        intersect(&req, &config).unwrap();
    }
}
