//! Exports of results into the formats gradebooks import: Gradescope's
//! `results.json` per submission, a CSV gradebook, and JUnit XML.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::{Status, SubmissionResult, write_atomic};

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `gradescope/<submission>/results.json`, Gradescope's autograder format.
    Gradescope,
    /// `gradebook.csv`: a row per submission, a column per test.
    Csv,
    /// `junit.xml`: a test suite per submission.
    Junit,
}

/// Reads every result in an output folder, sorted by submission.
///
/// # Errors
/// When the folder or a result cannot be read.
pub fn load_results(dir: &Path) -> Result<Vec<SubmissionResult>, String> {
    let read = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut results = Vec::new();
    for entry in read.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".json") || name == super::super::batch::BATCH_FILE {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let result = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not an agh result: {e}", path.display()))?;
        results.push(result);
    }
    results.sort_by(|a: &SubmissionResult, b| a.submission.cmp(&b.submission));
    Ok(results)
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
                let folder = dir.join("gradescope").join(&result.submission);
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
                "visibility": t.visibility,
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

fn csv(results: &[SubmissionResult]) -> std::io::Result<Vec<u8>> {
    let tests: BTreeSet<&str> = results
        .iter()
        .flat_map(|r| r.tests.iter().map(|t| t.name.as_str()))
        .collect();
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["submission", "status", "score", "max_score"];
    header.extend(tests.iter().copied());
    writer
        .write_record(&header)
        .map_err(std::io::Error::other)?;
    for result in results {
        let mut row = vec![
            result.submission.clone(),
            result.status.name().to_string(),
            result.score.to_string(),
            result.max_score.to_string(),
        ];
        for name in &tests {
            row.push(
                result
                    .tests
                    .iter()
                    .find(|t| t.name == *name)
                    .map(|t| t.score.to_string())
                    .unwrap_or_default(),
            );
        }
        writer.write_record(&row).map_err(std::io::Error::other)?;
    }
    writer
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))
}

fn junit(results: &[SubmissionResult]) -> String {
    use quick_xml::escape::escape;
    let mut xml =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"agh\">\n");
    for result in results {
        let (tests, failures, errors) = if result.status == Status::Graded {
            (
                result.tests.len(),
                result.tests.iter().filter(|t| t.status != "passed").count(),
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
            if test.status != "passed" {
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
                status: "passed".into(),
                verdict: Verdict::Accepted,
                output: String::new(),
                visibility: "visible".into(),
            },
            TestRecord {
                name: "c,d".into(),
                score: 0.0,
                max_score: 1.0,
                status: "failed".into(),
                verdict: Verdict::TimeLimit,
                output: "took \"too\" long & more".into(),
                visibility: "after-due-date".into(),
            },
        ];
        r
    }

    #[test]
    fn gradescope_keeps_scores_visibility_and_verdict_tags() {
        let g = gradescope(&graded());
        assert_eq!(g["score"], 1.0);
        assert_eq!(g["tests"][1]["visibility"], "after-due-date");
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
        let text = String::from_utf8(
            csv(&[
                graded(),
                SubmissionResult::failed("bob", Status::InfraError, "x".into()),
            ])
            .unwrap(),
        )
        .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "submission,status,score,max_score,a<b,\"c,d\"");
        assert_eq!(lines[1], "alice,graded,1,2,1,0");
        assert_eq!(lines[2], "bob,infra-error,0,0,,");
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
