//! Checks every value a grader returns before the host uses it.

use std::collections::HashSet;
use std::time::Duration;

use super::bindings::types;
use crate::layout::{ExtraPlace, Owner};
use crate::policy::{Budget, Request};
use crate::sandbox::Limits;

/// Most tests one report may hold.
pub const MAX_TESTS: usize = 1000;
/// Longest test name, grader name, version or image reference (a
/// grader's labels; submission names have [`crate::names::MAX_NAME_BYTES`]).
pub const MAX_LABEL_BYTES: usize = 256;
/// Longest feedback of one test, and of the whole report.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;
/// Most assets one grader may declare.
pub const MAX_ASSETS: usize = 64;

/// What `describe` told, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    /// Grader name.
    pub name: String,
    /// Grader version.
    pub version: String,
    /// What it asks for.
    pub request: Request,
}

fn short(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_LABEL_BYTES {
        return Err(format!(
            "{what} must have 1 to {MAX_LABEL_BYTES} bytes, not {}",
            value.len()
        ));
    }
    Ok(())
}

/// Checks `describe`'s answer.
///
/// # Errors
/// What is wrong, for the plugin-error message.
pub fn description(info: types::GraderInfo, api_version: &str) -> Result<Description, String> {
    if info.api_version != api_version {
        return Err(format!(
            "the grader was built for API version {:?}; this agh serves {api_version}. Rebuild it against wit/ of this agh",
            info.api_version
                .chars()
                .take(MAX_LABEL_BYTES)
                .collect::<String>()
        ));
    }
    short("grader name", &info.name)?;
    short("grader version", &info.version)?;
    short("image", &info.image)?;
    if info.assets.len() > MAX_ASSETS {
        return Err(format!(
            "{} assets declared; at most {MAX_ASSETS}",
            info.assets.len()
        ));
    }
    for asset in &info.assets {
        short("asset name", &asset.name)?;
        short("asset source", &asset.source)?;
        short("asset target", &asset.target)?;
    }
    let l = info.limits;
    let limits = Limits {
        wall_time: Duration::from_millis(l.wall_time_ms),
        cpu_time: Duration::from_millis(l.wall_time_ms),
        memory_bytes: l.memory_bytes,
        processes: l.processes,
        output_bytes: l.output_bytes,
        file_size_bytes: l.file_size_bytes,
        tmpfs_bytes: l.tmpfs_bytes,
        ..Limits::default()
    };
    Ok(Description {
        name: info.name,
        version: info.version,
        request: Request {
            image: info.image,
            limits,
            budget: Budget {
                fuel: info.budget.fuel,
                wall_time: Duration::from_millis(info.budget.wall_time_ms),
            },
            assets: info
                .assets
                .into_iter()
                .map(|a| (a.name, a.source, a.target))
                .collect(),
            places: info
                .places
                .into_iter()
                .map(|p| ExtraPlace {
                    path: p.path.chars().take(MAX_LABEL_BYTES).collect(),
                    owner: match p.owner {
                        types::User::Student => Owner::Student,
                        types::User::Grader => Owner::Grader,
                    },
                })
                .collect(),
        },
    })
}

/// Clips `feedback` to [`MAX_OUTPUT_BYTES`] at a character boundary, ending
/// it with a line that says how much was cut. Feedback is often what a
/// student printed, and its size is the student's choice: clipped and
/// recorded, never a reason to refuse the grader's report.
pub fn clip_feedback(feedback: &mut String) {
    if feedback.len() <= MAX_OUTPUT_BYTES {
        return;
    }
    let over = feedback.len() - MAX_OUTPUT_BYTES;
    let note = format!(
        "\n[agh: feedback clipped to {} KiB; {over} more bytes not shown]",
        MAX_OUTPUT_BYTES / 1024
    );
    let mut keep = MAX_OUTPUT_BYTES - note.len();
    while !feedback.is_char_boundary(keep) {
        keep -= 1;
    }
    feedback.truncate(keep);
    feedback.push_str(&note);
}

/// Checks `grade`'s report: counts, lengths, unique names, finite scores
/// and non-negative maxima; unless `extra_credit` (contract 0.3.0 on),
/// 0 <= score <= max. Feedback longer than [`MAX_OUTPUT_BYTES`] is
/// clipped ([`clip_feedback`]), not refused.
///
/// # Errors
/// The first problem found, for the plugin-error message.
pub fn report(report: &mut types::Report, extra_credit: bool) -> Result<(), String> {
    if report.tests.is_empty() {
        return Err("the report has no tests".into());
    }
    if report.tests.len() > MAX_TESTS {
        return Err(format!(
            "the report has {} tests; at most {MAX_TESTS}",
            report.tests.len()
        ));
    }
    clip_feedback(&mut report.output);
    for test in &mut report.tests {
        clip_feedback(&mut test.output);
    }
    let mut names = HashSet::new();
    for test in &report.tests {
        short("test name", &test.name)?;
        let name: String = test.name.chars().take(64).collect();
        if !names.insert(test.name.as_str()) {
            return Err(format!("test name {name:?} appears twice"));
        }
        if !test.max_score.is_finite() || test.max_score < 0.0 {
            return Err(format!(
                "test {name:?}: max score {} is not a finite number >= 0",
                test.max_score
            ));
        }
        if !test.score.is_finite() {
            return Err(format!("test {name:?}: score {} is not finite", test.score));
        }
        if !extra_credit && (test.score < 0.0 || test.score > test.max_score) {
            return Err(format!(
                "test {name:?}: score {} is not within 0..={} (extra credit and penalties \
                 need contract 0.3.0)",
                test.score, test.max_score
            ));
        }
    }
    if let Some(total) = report.score
        && !total.is_finite()
    {
        return Err(format!("the report's total score {total} is not finite"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feedback_past_the_cap_is_clipped_at_a_character_and_says_so() {
        let mut feedback = "é".repeat(MAX_OUTPUT_BYTES);
        clip_feedback(&mut feedback);
        assert!(feedback.len() <= MAX_OUTPUT_BYTES, "{}", feedback.len());
        assert!(
            feedback.ends_with("more bytes not shown]"),
            "{feedback:.80}"
        );
        let mut short = "all fine".to_string();
        clip_feedback(&mut short);
        assert_eq!(short, "all fine");
    }
}
