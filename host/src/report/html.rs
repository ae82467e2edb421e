//! `agh report OUT --html FILE`: one page for staff, self-contained (no
//! server, no scripts, no external assets): the score distribution as a
//! chart, each test's pass rate, the table of submissions, and for each
//! submission its tests, feedback and transcript, collapsed.
//!
//! Every byte a student or grader controls (names, feedback, what the
//! programs printed) goes through [`escape`] before it is part of the
//! page; element ids are agh's own (`s-N`), never a submission's name.

use std::fmt::Write as _;
use std::path::Path;

use super::{Status, SubmissionResult, TestStatus};
use crate::transcript::{TranscriptDir, show};

/// Bins of the score chart: tenths of the maximum.
const BINS: usize = 10;

/// Text for HTML, any byte of it.
pub(crate) fn escape(text: &str) -> String {
    quick_xml::escape::escape(show::printable(text.as_bytes()).as_str()).into_owned()
}

fn fraction(result: &SubmissionResult) -> f64 {
    if result.max_score > 0.0 {
        (result.score / result.max_score).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// The chart's bin for `result`: full marks in the last.
fn bin(result: &SubmissionResult) -> usize {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bin = (fraction(result) * BINS as f64).floor() as usize;
    bin.min(BINS - 1)
}

/// The page for the results of `out` (read with their transcripts).
#[must_use]
pub fn render(out: &Path, results: &[SubmissionResult]) -> String {
    let mut page = String::new();
    let graded: Vec<&SubmissionResult> = results
        .iter()
        .filter(|r| r.status == Status::Graded)
        .collect();
    let mut scores: Vec<f64> = graded.iter().map(|r| r.score).collect();
    scores.sort_by(f64::total_cmp);
    #[allow(clippy::cast_precision_loss)]
    let mean = if scores.is_empty() {
        0.0
    } else {
        scores.iter().sum::<f64>() / scores.len() as f64
    };
    let median = scores.get(scores.len() / 2).copied().unwrap_or(0.0);
    let top = results.iter().map(|r| r.max_score).fold(0.0, f64::max);
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>agh report: {title}</title><style>{STYLE}</style></head><body>\
         <h1>agh report: {title}</h1>\
         <p id=\"summary\"><span id=\"count\">{count}</span> submissions, \
         <span id=\"graded\">{graded}</span> graded; mean {mean:.2}, median {median} of {top}</p>",
        title = escape(&out.display().to_string()),
        count = results.len(),
        graded = graded.len(),
    );
    chart(&mut page, &graded);
    pass_rates(&mut page, results);
    table(&mut page, results);
    let dir = TranscriptDir::new(out);
    page.push_str("<h2>Submissions</h2>");
    for (index, result) in results.iter().enumerate() {
        submission(&mut page, &dir, index, result);
    }
    page.push_str("</body></html>\n");
    page
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:80em}\
table{border-collapse:collapse}td,th{padding:.2em .8em;text-align:left;border-bottom:1px solid #ddd}\
pre{background:#f6f6f6;padding:.5em;overflow-x:auto;white-space:pre-wrap}\
.passed{color:#060}.failed{color:#a00}summary{cursor:pointer}\
section{margin:.5em 0}svg text{font-size:11px}";

/// The score distribution: one bar per tenth of the maximum.
fn chart(page: &mut String, graded: &[&SubmissionResult]) {
    let mut counts = [0usize; BINS];
    for result in graded {
        counts[bin(result)] += 1;
    }
    let most = counts.iter().copied().max().unwrap_or(0).max(1);
    let (width, height, bar) = (50 * BINS + 20, 160, 44);
    let _ = write!(
        page,
        "<h2>Scores</h2><svg id=\"histogram\" role=\"img\" width=\"{width}\" height=\"{}\" \
         viewBox=\"0 0 {width} {}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title>How many graded submissions scored each tenth of the maximum</title>",
        height + 30,
        height + 30
    );
    for (i, count) in counts.iter().enumerate() {
        let h = count * (height - 20) / most;
        let x = 10 + 50 * i;
        let _ = write!(
            page,
            "<g class=\"bin\" data-bin=\"{i}\" data-count=\"{count}\">\
             <rect x=\"{x}\" y=\"{}\" width=\"{bar}\" height=\"{h}\" fill=\"#47a\"></rect>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{count}</text>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}–{}%</text></g>",
            height - h,
            x + bar / 2,
            height - h - 4,
            x + bar / 2,
            height + 16,
            i * 100 / BINS,
            (i + 1) * 100 / BINS
        );
    }
    page.push_str("</svg>");
}

/// Each test's pass rate over the submissions that have it.
fn pass_rates(page: &mut String, results: &[SubmissionResult]) {
    let mut tests: Vec<(String, usize, usize)> = Vec::new();
    for result in results {
        for test in &result.tests {
            let row = match tests.iter().position(|(name, _, _)| *name == test.name) {
                Some(row) => row,
                None => {
                    tests.push((test.name.clone(), 0, 0));
                    tests.len() - 1
                }
            };
            tests[row].2 += 1;
            if test.status == TestStatus::Passed {
                tests[row].1 += 1;
            }
        }
    }
    page.push_str(
        "<h2>Tests</h2><table id=\"pass-rates\"><tr><th>test</th><th>passed</th><th>of</th><th>rate</th></tr>",
    );
    for (name, passed, of) in tests {
        #[allow(clippy::cast_precision_loss)]
        let rate = 100.0 * passed as f64 / of.max(1) as f64;
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"passed-count\">{passed}</td><td>{of}</td><td>{rate:.0}%</td></tr>",
            escape(&name)
        );
    }
    page.push_str("</table>");
}

fn table(page: &mut String, results: &[SubmissionResult]) {
    page.push_str(
        "<h2>Results</h2><table id=\"submissions\"><tr><th>submission</th><th>status</th>\
         <th>score</th><th>of</th></tr>",
    );
    for (index, result) in results.iter().enumerate() {
        let _ = write!(
            page,
            "<tr><td><a href=\"#s-{index}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&result.submission),
            result.status.name(),
            result.score,
            result.max_score
        );
    }
    page.push_str("</table>");
}

fn submission(page: &mut String, dir: &TranscriptDir, index: usize, result: &SubmissionResult) {
    let _ = write!(
        page,
        "<section id=\"s-{index}\"><details><summary>{} — {}, {} of {}</summary>",
        escape(&result.submission),
        result.status.name(),
        result.score,
        result.max_score
    );
    details(page, result);
    if let Some(reference) = &result.transcript {
        let text = match dir.load(reference) {
            Ok(entries) => show::render(dir, result, &entries, false),
            Err(err) => format!("the transcript cannot be read: {err}"),
        };
        let _ = write!(
            page,
            "<details class=\"transcript\"><summary>transcript ({} entries)</summary><pre>{}</pre></details>",
            reference.entries,
            escape(&text)
        );
    }
    page.push_str("</details></section>");
}

/// A result's error, its tests (verdict, score, who may see it, feedback)
/// and the grader's own output, as staff read them.
pub(crate) fn details(page: &mut String, result: &SubmissionResult) {
    if let Some(error) = &result.error {
        let _ = write!(page, "<p class=\"failed\">{}</p>", escape(error));
    }
    page.push_str(
        "<table class=\"tests\"><tr><th>test</th><th>verdict</th><th>score</th><th>shown to</th>\
         <th>feedback</th></tr>",
    );
    for test in &result.tests {
        let class = match test.status {
            TestStatus::Passed => "passed",
            TestStatus::Failed => "failed",
        };
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"{class}\">{}</td><td>{} / {}</td><td>{}</td><td><pre>{}</pre></td></tr>",
            escape(&test.name),
            test.verdict.name(),
            test.score,
            test.max_score,
            test.visibility.gradescope_name(),
            escape(&test.output)
        );
    }
    page.push_str("</table>");
    if !result.output.is_empty() {
        let _ = write!(page, "<pre>{}</pre>", escape(&result.output));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_student_byte_is_text() {
        let mut result = SubmissionResult::failed(
            "<script>alert(1)</script>",
            Status::Graded,
            "<img src=x onerror=alert(2)>\u{0}".into(),
        );
        result.error = Some("\"quoted\" & <b>".into());
        let page = render(Path::new("/out"), &[result]);
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("<b>"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        assert!(!page.contains('\u{0}'));
    }
}
