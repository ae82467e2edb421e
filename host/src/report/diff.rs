//! `agh diff OUT1 OUT2`: what a regrade or a rescore changed, per
//! submission and per test, for staff to review before publishing it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::SubmissionResult;

/// One test whose score or verdict changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestChange {
    /// The test's name.
    pub test: String,
    /// Its score and verdict before (none: the test is new).
    pub before: Option<(f64, String)>,
    /// After (none: the test is gone).
    pub after: Option<(f64, String)>,
}

/// One submission whose result changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The submission.
    pub submission: String,
    /// Status and score before (none: not in the first folder).
    pub before: Option<(String, f64)>,
    /// After (none: not in the second).
    pub after: Option<(String, f64)>,
    /// Its tests that changed.
    pub tests: Vec<TestChange>,
}

impl Change {
    /// Points gained (negative: lost).
    #[must_use]
    pub fn delta(&self) -> f64 {
        self.after.as_ref().map_or(0.0, |a| a.1) - self.before.as_ref().map_or(0.0, |b| b.1)
    }
}

/// The differences between two folders' results.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Diff {
    /// Submissions compared.
    pub submissions: usize,
    /// Those that changed.
    pub changed: Vec<Change>,
    /// Total score before and after.
    pub total_before: f64,
    /// Total after.
    pub total_after: f64,
    /// Who gained points.
    pub gained: Vec<String>,
    /// Who lost points.
    pub lost: Vec<String>,
}

fn status_and_score(r: &SubmissionResult) -> (String, f64) {
    (r.status.name().to_string(), r.score)
}

fn tests_of(r: &SubmissionResult) -> BTreeMap<&str, (f64, String)> {
    r.tests
        .iter()
        .map(|t| (t.name.as_str(), (t.score, t.verdict.name().to_string())))
        .collect()
}

/// Compares `before` with `after`, submission by submission.
#[must_use]
pub fn diff(before: &[SubmissionResult], after: &[SubmissionResult]) -> Diff {
    let index = |results: &[SubmissionResult]| -> BTreeMap<String, SubmissionResult> {
        results
            .iter()
            .map(|r| (r.submission.clone(), r.clone()))
            .collect()
    };
    let (before, after) = (index(before), index(after));
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut out = Diff {
        submissions: names.len(),
        ..Diff::default()
    };
    for name in names {
        let (b, a) = (before.get(name), after.get(name));
        out.total_before += b.map_or(0.0, |r| r.score);
        out.total_after += a.map_or(0.0, |r| r.score);
        let empty = BTreeMap::new();
        let (bt, at) = (
            b.map_or_else(|| empty.clone(), tests_of),
            a.map_or_else(|| empty.clone(), tests_of),
        );
        let tests: Vec<TestChange> = bt
            .keys()
            .chain(at.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|t| bt.get(*t) != at.get(*t))
            .map(|t| TestChange {
                test: (*t).to_string(),
                before: bt.get(*t).cloned(),
                after: at.get(*t).cloned(),
            })
            .collect();
        let (bs, as_) = (b.map(status_and_score), a.map(status_and_score));
        if bs == as_ && tests.is_empty() {
            continue;
        }
        let change = Change {
            submission: name.clone(),
            before: bs,
            after: as_,
            tests,
        };
        let delta = change.delta();
        if delta > 0.0 {
            out.gained.push(name.clone());
        } else if delta < 0.0 {
            out.lost.push(name.clone());
        }
        out.changed.push(change);
    }
    out
}

/// The text `agh diff` prints.
#[must_use]
pub fn render(diff: &Diff) -> String {
    use std::fmt::Write as _;
    let show = |s: &Option<(String, f64)>| {
        s.as_ref().map_or_else(
            || "absent".to_string(),
            |(status, score)| format!("{score} ({status})"),
        )
    };
    let text = |s: &str| crate::transcript::show::printable(s.as_bytes());
    let mut page = String::new();
    for change in &diff.changed {
        let _ = writeln!(
            page,
            "{}: {} -> {} ({:+})",
            text(&change.submission),
            show(&change.before),
            show(&change.after),
            change.delta()
        );
        for test in &change.tests {
            let side = |s: &Option<(f64, String)>| {
                s.as_ref().map_or_else(
                    || "absent".into(),
                    |(score, verdict)| format!("{score} {verdict}"),
                )
            };
            let _ = writeln!(
                page,
                "    {}: {} -> {}",
                text(&test.test),
                side(&test.before),
                side(&test.after)
            );
        }
    }
    let _ = writeln!(
        page,
        "{} of {} submissions changed; total {} -> {}; {} gained, {} lost",
        diff.changed.len(),
        diff.submissions,
        diff.total_before,
        diff.total_after,
        diff.gained.len(),
        diff.lost.len()
    );
    if !diff.gained.is_empty() {
        let _ = writeln!(
            page,
            "gained: {}",
            diff.gained
                .iter()
                .map(|n| text(n))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !diff.lost.is_empty() {
        let _ = writeln!(
            page,
            "lost: {}",
            diff.lost
                .iter()
                .map(|n| text(n))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Status, TestRecord, TestStatus, TestVisibility, Verdict};

    fn result(name: &str, tests: &[(&str, f64, Verdict)]) -> SubmissionResult {
        let mut r = SubmissionResult::failed(name, Status::Graded, String::new());
        r.error = None;
        r.tests = tests
            .iter()
            .map(|(t, score, verdict)| TestRecord {
                name: (*t).into(),
                score: *score,
                max_score: 1.0,
                status: if *score >= 1.0 {
                    TestStatus::Passed
                } else {
                    TestStatus::Failed
                },
                verdict: *verdict,
                output: String::new(),
                visibility: TestVisibility::Visible,
            })
            .collect();
        r.score = r.tests.iter().map(|t| t.score).sum();
        r.max_score = r.tests.len() as f64;
        r
    }

    #[test]
    fn a_diff_names_who_gained_who_lost_and_which_tests_changed() {
        let before = [
            result(
                "a",
                &[("t1", 0.0, Verdict::Wrong), ("t2", 1.0, Verdict::Accepted)],
            ),
            result("b", &[("t1", 1.0, Verdict::Accepted)]),
            result("c", &[("t1", 1.0, Verdict::Accepted)]),
        ];
        let after = [
            result(
                "a",
                &[
                    ("t1", 1.0, Verdict::Accepted),
                    ("t2", 1.0, Verdict::Accepted),
                ],
            ),
            result("b", &[("t1", 0.0, Verdict::TimeLimit)]),
            result("c", &[("t1", 1.0, Verdict::Accepted)]),
        ];
        let d = diff(&before, &after);
        assert_eq!(d.submissions, 3);
        assert_eq!(d.gained, ["a"]);
        assert_eq!(d.lost, ["b"]);
        assert_eq!(d.changed.len(), 2);
        assert_eq!(d.changed[0].tests.len(), 1, "only t1 of a changed");
        assert_eq!(d.changed[0].tests[0].test, "t1");
        assert_eq!((d.total_before, d.total_after), (3.0, 3.0));
        assert!(diff(&before, &before).changed.is_empty());
        let text = render(&d);
        assert!(text.contains("2 of 3 submissions changed"), "{text}");
        assert!(text.contains("b: 1 (graded) -> 0 (graded) (-1)"), "{text}");
    }
}
