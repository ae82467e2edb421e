//! `agh check`: the gate a grader passes before students meet it.
//!
//! The author's samples (a folder with `submissions/` and `expected.toml`,
//! the layout of the example courses) are graded, then agh's stock corpus
//! of hostile submissions for the course's language ([`corpus`]), each
//! made from the best sample so it has the files the grader expects. All
//! of it is graded twice, in real sandboxes. The check fails when a sample
//! does not score what its author expects, when an attack scores more
//! than the author allows (nothing, unless `[attacks]` says otherwise) or
//! is not scored at all (an attack that ends as `infra-error` or
//! `plugin-error` is a student choosing not to be scored), or when the two
//! gradings of a submission disagree.

pub mod corpus;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::batch::journal::OpenMode;
use crate::batch::run::{Event, RunError, RunReport, RunRequest, Submissions};
use crate::config::Config;
use crate::report::{Status, SubmissionResult};
use corpus::Language;

/// The samples' expectations file, beside their `submissions/` folder.
pub const EXPECTATIONS_FILE: &str = "expected.toml";

/// The prefix of the stock attacks' names.
pub const ATTACK_PREFIX: &str = "attack-";

/// What a sample should score.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum Expected {
    /// Exactly this.
    Exactly(f64),
    /// Within bounds, either optional.
    Between {
        /// At least this.
        min: Option<f64>,
        /// At most this.
        max: Option<f64>,
    },
}

impl Expected {
    fn admits(self, score: f64) -> bool {
        match self {
            Expected::Exactly(want) => (score - want).abs() < 1e-9,
            Expected::Between { min, max } => {
                min.is_none_or(|m| score >= m - 1e-9) && max.is_none_or(|m| score <= m + 1e-9)
            }
        }
    }

    /// The most this sample is expected to score: the best sample is the
    /// one the attacks are made from.
    fn top(self) -> f64 {
        match self {
            Expected::Exactly(want) => want,
            Expected::Between { min, max } => max.or(min).unwrap_or(0.0),
        }
    }

    fn describe(self) -> String {
        match self {
            Expected::Exactly(want) => format!("expected {want}"),
            Expected::Between { min, max } => match (min, max) {
                (Some(min), Some(max)) => format!("expected {min} to {max}"),
                (Some(min), None) => format!("expected at least {min}"),
                (None, Some(max)) => format!("expected at most {max}"),
                (None, None) => "any score".into(),
            },
        }
    }
}

/// `expected.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// The samples' folder, relative to the file (`submissions` unless given).
    #[serde(default)]
    pub submissions: Option<String>,
    /// Each sample's score.
    pub scores: BTreeMap<String, Expected>,
    /// A verdict one of a sample's tests must have.
    #[serde(default)]
    pub verdicts: BTreeMap<String, String>,
    /// The most a stock attack may score (each unnamed: nothing).
    #[serde(default)]
    pub attacks: BTreeMap<String, f64>,
}

/// Why a check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The samples or their expectations are not usable.
    #[error("{0}")]
    Samples(String),
    /// A grading run could not start.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The output folder could not be prepared.
    #[error("{0}")]
    Output(String),
}

impl CheckError {
    /// Whose doing the failure is.
    #[must_use]
    pub fn blame(&self) -> crate::blame::Blame {
        match self {
            CheckError::Samples(_) => crate::blame::Blame::Operator,
            CheckError::Run(err) => err.blame(),
            CheckError::Output(_) => crate::blame::Blame::Host,
        }
    }
}

/// What to check.
#[derive(Debug)]
pub struct CheckRequest {
    /// The grader.
    pub plugin: PathBuf,
    /// The operator's configuration.
    pub config: Config,
    /// The folder holding `expected.toml` and the samples.
    pub samples: PathBuf,
    /// A new folder that keeps every grading (`samples-1`, `samples-2`,
    /// `attacks-1`, `attacks-2`, and `attacks/`, the corpus as graded).
    pub out: PathBuf,
    /// Submissions graded at once.
    pub jobs: usize,
}

/// One graded submission against what it should score.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Its name.
    pub name: String,
    /// What it is: the expectation of a sample, what an attack does.
    pub what: String,
    /// Its status in the first grading.
    pub status: String,
    /// Its score then.
    pub score: f64,
    /// Out of.
    pub max_score: f64,
    /// Whether it met what it should.
    pub ok: bool,
    /// Why not.
    pub why: Option<String>,
}

/// A submission whose two gradings disagreed.
#[derive(Debug, Clone, Serialize)]
pub struct Unstable {
    /// Its name.
    pub name: String,
    /// How.
    pub how: String,
}

/// The grader's cost on one submission.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    /// The submission.
    pub name: String,
    /// Time in the grader's own code, in milliseconds.
    pub grader_ms: f64,
    /// Fuel burned.
    pub fuel: u64,
}

/// What `agh check` found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The grader, as it describes itself.
    pub grader: String,
    /// The course's language, told by the best sample.
    pub language: Language,
    /// The sample the attacks were made from.
    pub base: String,
    /// Each sample.
    pub samples: Vec<Finding>,
    /// Each stock attack.
    pub attacks: Vec<Finding>,
    /// Submissions graded differently the second time.
    pub unstable: Vec<Unstable>,
    /// The grader's cost per submission (the first grading).
    pub cost: Vec<Cost>,
    /// Where every grading is kept (`agh show OUT/samples-1 NAME`).
    pub out: PathBuf,
}

impl CheckReport {
    /// Whether the grader passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.samples.iter().chain(&self.attacks).all(|f| f.ok) && self.unstable.is_empty()
    }

    /// Every failure, one line each.
    #[must_use]
    pub fn failures(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .samples
            .iter()
            .chain(&self.attacks)
            .filter(|f| !f.ok)
            .map(|f| format!("{}: {}", f.name, f.why.clone().unwrap_or_default()))
            .collect();
        lines.extend(
            self.unstable
                .iter()
                .map(|u| format!("{}: graded differently twice: {}", u.name, u.how)),
        );
        lines
    }
}

/// Loads `DIR/expected.toml`.
///
/// # Errors
/// [`CheckError::Samples`] saying what is wrong and what to do.
pub fn load_expectations(dir: &Path) -> Result<Expectations, CheckError> {
    let path = dir.join(EXPECTATIONS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        CheckError::Samples(format!(
            "{}: {e}; --samples names a folder holding {EXPECTATIONS_FILE} (each sample's score \
             under [scores]) and the samples in submissions/",
            path.display()
        ))
    })?;
    let expectations: Expectations = toml::from_str(&text)
        .map_err(|e| CheckError::Samples(format!("{}: {e}", path.display())))?;
    if expectations.scores.is_empty() {
        return Err(CheckError::Samples(format!(
            "{}: [scores] names no sample; give each sample's expected score, as \"NAME\" = 5.0 or \
             \"NAME\" = {{ min = 2.0, max = 4.0 }}",
            path.display()
        )));
    }
    Ok(expectations)
}

/// Runs the check.
///
/// # Errors
/// [`CheckError`] when the samples cannot be used or a grading cannot start.
pub async fn check(
    request: CheckRequest,
    mut on_progress: impl FnMut(&str) + Send,
) -> Result<CheckReport, CheckError> {
    let expectations = load_expectations(&request.samples)?;
    let samples_dir = request
        .samples
        .join(expectations.submissions.as_deref().unwrap_or("submissions"));
    prepare_out(&request.out)?;

    on_progress("grading the samples (1 of 2)");
    let first = grade(&request, &samples_dir, "samples-1").await?;
    on_progress("grading the samples (2 of 2)");
    let second = grade(&request, &samples_dir, "samples-2").await?;
    let mut samples = judge_samples(&expectations, &first.results);

    // The first (by name) of the samples expected to score most.
    let (base, best) = expectations
        .scores
        .iter()
        .fold(
            None::<(&String, Expected)>,
            |best, (name, want)| match best {
                Some((_, top)) if top.top() >= want.top() => best,
                _ => Some((name, *want)),
            },
        )
        .map(|(name, want)| (name.clone(), want))
        .ok_or_else(|| CheckError::Samples("no samples".into()))?;
    let base_dir = samples_dir.join(&base);
    if !base_dir.is_dir() {
        return Err(CheckError::Samples(format!(
            "{}: the best sample ({}) must be a folder: agh check makes its attacks from its files",
            base_dir.display(),
            best.describe()
        )));
    }
    let (language, files) = corpus::read_base(&base_dir).map_err(CheckError::Samples)?;
    let shown = first_shown(&request.out.join("samples-1"), &first.results, &base);
    let attacks = corpus::attacks(language, &files, &shown);
    let attacks_dir = request.out.join("attacks");
    write_attacks(&attacks_dir, &attacks)?;

    on_progress(&format!(
        "grading {} stock attacks for {} made from {base} (1 of 2)",
        attacks.len(),
        language.name()
    ));
    let attacked = grade(&request, &attacks_dir, "attacks-1").await?;
    on_progress("grading the stock attacks (2 of 2)");
    let attacked_again = grade(&request, &attacks_dir, "attacks-2").await?;
    let attack_findings = judge_attacks(&expectations, &attacks, &attacked.results);

    let mut unstable = compare(&first.results, &second.results);
    unstable.extend(compare(&attacked.results, &attacked_again.results));
    let cost = first
        .results
        .iter()
        .chain(&attacked.results)
        .map(|r| Cost {
            name: r.submission.clone(),
            #[allow(clippy::cast_precision_loss)]
            grader_ms: r.timings.grader_own_us as f64 / 1000.0,
            fuel: r.timings.grader_fuel,
        })
        .collect();
    let grader = first
        .results
        .iter()
        .find_map(|r| r.provenance.as_ref().map(|p| p.grader.clone()))
        .unwrap_or_default();
    samples.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(CheckReport {
        grader,
        language,
        base,
        samples,
        attacks: attack_findings,
        unstable,
        cost,
        out: request.out.clone(),
    })
}

/// Makes `out`, which must be new or empty: a check never mixes its
/// gradings with another's.
fn prepare_out(out: &Path) -> Result<(), CheckError> {
    if out.exists()
        && std::fs::read_dir(out)
            .map_err(|e| CheckError::Output(format!("{}: {e}", out.display())))?
            .next()
            .is_some()
    {
        return Err(CheckError::Samples(format!(
            "{} is not empty; give agh check a new folder for its gradings",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| CheckError::Output(format!("{}: {e}", out.display())))
}

async fn grade(request: &CheckRequest, folder: &Path, out: &str) -> Result<RunReport, CheckError> {
    let run = RunRequest {
        plugin: request.plugin.clone(),
        config: request.config.clone(),
        submissions: Submissions::Folder(folder.to_path_buf()),
        shard: None,
        out: Some(request.out.join(out)),
        mode: OpenMode::New,
        batch_id: None,
        jobs: request.jobs,
        formats: Vec::new(),
    };
    let report = crate::batch::run::run(run, std::future::pending, |_: Event<'_>| {}).await?;
    Ok(report)
}

fn judge_samples(expectations: &Expectations, results: &[SubmissionResult]) -> Vec<Finding> {
    let mut findings: Vec<Finding> = results
        .iter()
        .map(|result| {
            let Some(want) = expectations.scores.get(&result.submission) else {
                return finding(
                    result,
                    "no expectation".into(),
                    Some(format!(
                        "{EXPECTATIONS_FILE} gives no score for it; add \"{}\" = SCORE under [scores]",
                        result.submission
                    )),
                );
            };
            let mut why = None;
            if result.status != Status::Graded {
                why = Some(format!(
                    "ended as {}: {}",
                    result.status.name(),
                    result.error.clone().unwrap_or_default()
                ));
            } else if !want.admits(result.score) {
                why = Some(format!("scored {}, {}", result.score, want.describe()));
            } else if let Some(verdict) = expectations.verdicts.get(&result.submission) {
                let verdicts: Vec<&str> = result.tests.iter().map(|t| t.verdict.name()).collect();
                if !verdicts.contains(&verdict.as_str()) {
                    why = Some(format!(
                        "no test has the verdict {verdict}; its verdicts: {}",
                        verdicts.join(", ")
                    ));
                }
            }
            finding(result, want.describe(), why)
        })
        .collect();
    for name in expectations.scores.keys() {
        if !results.iter().any(|r| &r.submission == name) {
            findings.push(Finding {
                name: name.clone(),
                what: "a sample".into(),
                status: "missing".into(),
                score: 0.0,
                max_score: 0.0,
                ok: false,
                why: Some(format!(
                    "{EXPECTATIONS_FILE} names it but there is no such sample"
                )),
            });
        }
    }
    findings
}

fn judge_attacks(
    expectations: &Expectations,
    attacks: &[corpus::Attack],
    results: &[SubmissionResult],
) -> Vec<Finding> {
    attacks
        .iter()
        .map(|attack| {
            let name = format!("{ATTACK_PREFIX}{}", attack.name);
            let allowed = expectations.attacks.get(attack.name).copied().unwrap_or(0.0);
            let Some(result) = results.iter().find(|r| r.submission == name) else {
                return Finding {
                    name,
                    what: attack.what.into(),
                    status: "missing".into(),
                    score: 0.0,
                    max_score: 0.0,
                    ok: false,
                    why: Some("no result".into()),
                };
            };
            let why = if !matches!(result.status, Status::Graded | Status::InvalidSubmission) {
                Some(format!(
                    "was not scored: it ended as {} ({}); a student could choose this instead of a score",
                    result.status.name(),
                    result.error.clone().unwrap_or_default()
                ))
            } else if result.score > allowed + 1e-9 {
                Some(format!(
                    "scored {} of {}, more than the {allowed} allowed; if that is intended, say \
                     {} = {} under [attacks] in {EXPECTATIONS_FILE}",
                    result.score, result.max_score, attack.name, result.score
                ))
            } else {
                None
            };
            finding(result, attack.what.into(), why)
        })
        .collect()
}

fn finding(result: &SubmissionResult, what: String, why: Option<String>) -> Finding {
    Finding {
        name: result.submission.clone(),
        what,
        status: result.status.name().into(),
        score: result.score,
        max_score: result.max_score,
        ok: why.is_none(),
        why,
    }
}

/// Submissions whose status, score or tests' scores differ between `a`
/// and `b`.
fn compare(a: &[SubmissionResult], b: &[SubmissionResult]) -> Vec<Unstable> {
    let mut unstable = Vec::new();
    for first in a {
        let Some(second) = b.iter().find(|r| r.submission == first.submission) else {
            continue;
        };
        let tests = |r: &SubmissionResult| -> Vec<(String, u64)> {
            r.tests
                .iter()
                .map(|t| (t.name.clone(), t.score.to_bits()))
                .collect()
        };
        let how = if first.status != second.status {
            Some(format!(
                "{} then {}",
                first.status.name(),
                second.status.name()
            ))
        } else if first.score.to_bits() != second.score.to_bits() || tests(first) != tests(second) {
            Some(format!("scored {} then {}", first.score, second.score))
        } else {
            None
        };
        if let Some(how) = how {
            unstable.push(Unstable {
                name: first.submission.clone(),
                how,
            });
        }
    }
    unstable
}

/// What the best sample's program printed first: the stdout of its first
/// command run as the student that exited 0 and printed something, read
/// from its transcript. Empty when there is none.
fn first_shown(out: &Path, results: &[SubmissionResult], base: &str) -> Vec<u8> {
    let dir = crate::transcript::TranscriptDir::new(out);
    let Some(reference) = results
        .iter()
        .find(|r| r.submission == base)
        .and_then(|r| r.transcript.clone())
    else {
        return Vec::new();
    };
    let Ok(entries) = dir.load(&reference) else {
        return Vec::new();
    };
    entries
        .iter()
        .find_map(|entry| match entry {
            crate::transcript::Entry::Run {
                call,
                reply: Ok(ran),
            } if call.user == crate::sandbox::User::Student
                && ran.outcome.exit_code == Some(0)
                && ran.stdout.stored
                && ran.stdout.blob.bytes > 0 =>
            {
                dir.read_blob(&ran.stdout.blob).ok()
            }
            _ => None,
        })
        .unwrap_or_default()
}

/// Writes each attack as a folder `attack-NAME` below `dir`.
fn write_attacks(dir: &Path, attacks: &[corpus::Attack]) -> Result<(), CheckError> {
    let fail =
        |path: &Path, e: std::io::Error| CheckError::Output(format!("{}: {e}", path.display()));
    for attack in attacks {
        let root = dir.join(format!("{ATTACK_PREFIX}{}", attack.name));
        std::fs::create_dir_all(&root).map_err(|e| fail(&root, e))?;
        for (path, bytes) in &attack.files {
            crate::sandbox::check_relative(path)
                .map_err(|e| CheckError::Samples(format!("{path:?}: {e}")))?;
            let target = root.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| fail(parent, e))?;
            }
            std::fs::write(&target, bytes).map_err(|e| fail(&target, e))?;
        }
    }
    Ok(())
}
