//! Exports of results into the formats gradebooks import: Gradescope's
//! `results.json` per submission, a CSV gradebook, and JUnit XML.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::{Status, SubmissionResult, TestStatus};
use crate::layout::write_atomic;

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `gradescope/<submission>/results.json`, Gradescope's autograder format.
    Gradescope,
    /// `gradebook.csv`: a row per submission, a column per test.
    Csv,
    /// `junit.xml`: a test suite per submission.
    Junit,
}

/// Writes `format` for `results` into `dir`; returns the paths written.
///
/// # Errors
/// The I/O error.
pub fn export(
    results: &[SubmissionResult],
    format: Format,
    dir: &Path,
) -> std::io::Result<Vec<PathBuf>> {
    match format {
        Format::Gradescope => {
            let mut written = Vec::new();
            for result in results {
                let folder = crate::names::child(&dir.join("gradescope"), &result.submission)
                    .map_err(std::io::Error::other)?;
                let file = folder.join("results.json");
                let bytes = serde_json::to_vec_pretty(&gradescope(result))
                    .map_err(std::io::Error::other)?;
                write_atomic(&folder, &file, &bytes)?;
                written.push(file);
            }
            Ok(written)
        }
        Format::Csv => {
            let file = dir.join("gradebook.csv");
            write_atomic(dir, &file, &csv(results)?)?;
            Ok(vec![file])
        }
        Format::Junit => {
            let file = dir.join("junit.xml");
            write_atomic(dir, &file, junit(results).as_bytes())?;
            Ok(vec![file])
        }
    }
}

/// Gradescope's results.json. A submission that was not graded gets score
/// 0 and the reason in `output`, visible to staff only, so nobody mistakes
/// it for a grade.
#[must_use]
pub fn gradescope(result: &SubmissionResult) -> serde_json::Value {
    let tests: Vec<serde_json::Value> = result
        .tests
        .iter()
        .map(|t| {
            json!({
                "score": t.score,
                "max_score": t.max_score,
                "status": t.status,
                "name": t.name,
                "output": t.output,
                "visibility": t.visibility.gradescope_name(),
                "tags": [t.verdict.name()],
            })
        })
        .collect();
    let output = match &result.error {
        Some(error) => format!("Not graded ({}): {error}", result.status.name()),
        None => result.output.clone(),
    };
    json!({
        "score": result.score,
        "execution_time": result.timings.total_ms as f64 / 1000.0,
        "output": output,
        "visibility": if result.status == Status::Graded { "visible" } else { "hidden" },
        "stdout_visibility": "hidden",
        "tests": tests,
    })
}

/// A text cell a spreadsheet will not run: a cell starting with `=`, `+`,
/// `-`, `@`, a tab or a carriage return is a formula to Excel and its
/// kin, so it gets a leading `'` (the cell still reads the same).
fn csv_text(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// Text for an XML attribute or element: characters XML 1.0 cannot hold
/// (NUL, most control bytes) become U+FFFD, then markup is escaped, so one
/// student's output cannot make the whole file ill-formed.
fn xml_text(text: &str) -> String {
    let allowed = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
    let clean: String = text
        .chars()
        .map(|c| if allowed(c) { c } else { '\u{FFFD}' })
        .collect();
    quick_xml::escape::escape(clean.as_str()).into_owned()
}

/// The CSV gradebook of `results`: a row per submission, a column per test.
///
/// # Errors
/// When the CSV writer fails.
pub fn csv(results: &[SubmissionResult]) -> std::io::Result<Vec<u8>> {
    let tests: BTreeSet<&str> = results
        .iter()
        .flat_map(|r| r.tests.iter().map(|t| t.name.as_str()))
        .collect();
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = ["submission", "status", "score", "max_score"]
        .map(String::from)
        .to_vec();
    header.extend(tests.iter().map(|name| csv_text(name)));
    writer
        .write_record(&header)
        .map_err(std::io::Error::other)?;
    for result in results {
        let mut row = vec![
            csv_text(&result.submission),
            result.status.name().to_string(),
            result.score.to_string(),
            result.max_score.to_string(),
        ];
        let graded = result.status == Status::Graded;
        for name in &tests {
            // A graded submission without a test (a build that failed
            // before the tests were listed) scored 0 on it; a submission
            // not graded has no score to give.
            let score = result.tests.iter().find(|t| t.name == *name);
            row.push(match score {
                Some(test) => test.score.to_string(),
                None if graded => "0".to_string(),
                None => String::new(),
            });
        }
        writer.write_record(&row).map_err(std::io::Error::other)?;
    }
    writer
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// The JUnit XML of `results`: a test suite per submission.
#[must_use]
pub fn junit(results: &[SubmissionResult]) -> String {
    let escape = xml_text;
    let mut xml =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"agh\">\n");
    for result in results {
        let (tests, failures, errors) = if result.status == Status::Graded {
            (
                result.tests.len(),
                result
                    .tests
                    .iter()
                    .filter(|t| t.status != TestStatus::Passed)
                    .count(),
                0,
            )
        } else {
            (1, 0, 1)
        };
        xml.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">\n",
            escape(result.submission.as_str()),
            result.timings.total_ms as f64 / 1000.0
        ));
        if let Some(error) = &result.error {
            xml.push_str(&format!(
                "    <testcase name=\"grading\"><error type=\"{}\" message=\"{}\"/></testcase>\n",
                result.status.name(),
                escape(error.as_str())
            ));
        }
        for test in &result.tests {
            xml.push_str(&format!(
                "    <testcase name=\"{}\">",
                escape(test.name.as_str())
            ));
            if test.status != TestStatus::Passed {
                xml.push_str(&format!(
                    "<failure type=\"{}\" message=\"score {} of {}\">{}</failure>",
                    test.verdict.name(),
                    test.score,
                    test.max_score,
                    escape(test.output.as_str())
                ));
            }
            xml.push_str("</testcase>\n");
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::TestVisibility;
    use crate::report::{TestRecord, Verdict};

    fn graded() -> SubmissionResult {
        let mut r = SubmissionResult::failed("alice", Status::Graded, String::new());
        r.error = None;
        r.score = 1.0;
        r.max_score = 2.0;
        r.tests = vec![
            TestRecord {
                name: "a<b".into(),
                score: 1.0,
                max_score: 1.0,
                status: TestStatus::Passed,
                verdict: Verdict::Accepted,
                output: String::new(),
                visibility: TestVisibility::Visible,
            },
            TestRecord {
                name: "c,d".into(),
                score: 0.0,
                max_score: 1.0,
                status: TestStatus::Failed,
                verdict: Verdict::TimeLimit,
                output: "took \"too\" long & more".into(),
                visibility: TestVisibility::AfterDueDate,
            },
        ];
        r
    }

    #[test]
    fn gradescope_keeps_scores_visibility_and_verdict_tags() {
        let g = gradescope(&graded());
        assert_eq!(g["score"], 1.0);
        // Gradescope spells it with underscores; agh's own JSON with dashes.
        assert_eq!(g["tests"][1]["visibility"], "after_due_date");
        assert_eq!(g["tests"][1]["tags"][0], "time-limit");
        let broken = gradescope(&SubmissionResult::failed(
            "bob",
            Status::PluginError,
            "trap".into(),
        ));
        assert_eq!(
            (broken["score"].as_f64(), broken["visibility"].as_str()),
            (Some(0.0), Some("hidden"))
        );
        assert!(broken["output"].as_str().unwrap().contains("plugin-error"));
    }

    #[test]
    fn csv_quotes_and_aligns_test_columns() {
        let mut fewer = graded();
        fewer.submission = "carol".into();
        fewer.tests.truncate(1);
        let text = String::from_utf8(
            csv(&[
                graded(),
                SubmissionResult::failed("bob", Status::InfraError, "x".into()),
                fewer,
            ])
            .unwrap(),
        )
        .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "submission,status,score,max_score,a<b,\"c,d\"");
        assert_eq!(lines[1], "alice,graded,1,2,1,0");
        assert_eq!(lines[2], "bob,infra-error,0,0,,");
        assert_eq!(
            lines[3], "carol,graded,1,2,1,0",
            "a graded submission without a test scored 0 on it, not blank"
        );
    }

    #[test]
    fn spreadsheet_formulas_in_names_are_not_run() {
        let mut evil = graded();
        evil.submission = "=HYPERLINK(\"http://x\")".into();
        evil.tests[0].name = "@SUM(A1)".into();
        let text = String::from_utf8(csv(&[evil]).unwrap()).unwrap();
        let mut reader = ::csv::Reader::from_reader(text.as_bytes());
        let header = reader.headers().unwrap().clone();
        assert!(
            header
                .iter()
                .all(|cell| !cell.starts_with(['=', '+', '-', '@'])),
            "{text}"
        );
        for row in reader.records() {
            assert!(
                row.unwrap()
                    .iter()
                    .all(|cell| !cell.starts_with(['=', '+', '-', '@'])),
                "{text}"
            );
        }
        assert_eq!(csv_text("-1"), "'-1");
        assert_eq!(csv_text("alice"), "alice");
    }

    #[test]
    fn control_bytes_in_output_keep_junit_well_formed() {
        let mut noisy = graded();
        noisy.tests[1].output = "nul\0 escape\u{1b}[31m bell\u{7}".into();
        let xml = junit(&[noisy]);
        let mut reader = quick_xml::Reader::from_str(&xml);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(err) => panic!("junit.xml is ill-formed: {err}\n{xml}"),
            }
        }
        assert!(!xml.contains('\0') && !xml.contains('\u{1b}'), "{xml}");
    }

    #[test]
    fn junit_escapes_and_counts() {
        let xml = junit(&[graded()]);
        assert!(
            xml.contains("tests=\"2\" failures=\"1\" errors=\"0\""),
            "{xml}"
        );
        assert!(xml.contains("name=\"a&lt;b\""), "{xml}");
        assert!(
            xml.contains("took &quot;too&quot; long &amp; more"),
            "{xml}"
        );
    }
}
