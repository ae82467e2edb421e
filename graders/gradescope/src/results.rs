//! Gradescope's `results.json`, read as loosely as Gradescope reads it.
//!
//! Every field is optional. Real autograders write `execution_time` as a
//! string, scores as strings, tests without `max_score` (a module that
//! failed to import), `"number": ""`; all of that is accepted. What the
//! file cannot be is something other than a JSON object: then it is
//! "malformed", scored as a missing file is.

use serde_json::{Map, Value};

/// Longest test name kept, in bytes (agh's limit on a test's name).
const MAX_NAME_BYTES: usize = 200;
/// Most tests kept (agh's limit on a report).
pub const MAX_TESTS: usize = 1000;

/// Who may see a test, as Gradescope names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// `visible` (Gradescope's default).
    Visible,
    /// `after_due_date`.
    AfterDueDate,
    /// `after_published`.
    AfterPublished,
    /// `hidden`.
    Hidden,
}

/// One test, mapped.
#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    /// From `number` and `name`, unique within the report.
    pub name: String,
    /// Points earned; may be above `max_score` (extra credit) or negative.
    pub score: f64,
    /// Points possible; 0 when the file gives none.
    pub max_score: f64,
    /// `status` when given, else whether the score reached the maximum.
    pub passed: bool,
    /// The test's `output`.
    pub output: String,
    /// The test's `visibility`, else the file's, else visible.
    pub shown: Shown,
}

/// A whole results.json, mapped.
#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    /// Its tests, in order.
    pub tests: Vec<Test>,
    /// The top-level `score`: the submission's total, in place of the sum.
    pub score: Option<f64>,
    /// The top-level `output`.
    pub output: String,
    /// Whether the autograder's stdout may be shown to the student
    /// (`stdout_visibility: "visible"`); Gradescope hides it by default.
    pub stdout_visible: bool,
    /// Tests left out past [`MAX_TESTS`].
    pub dropped: usize,
}

/// A number, or a string holding one (`"2.5"`); anything else is none.
fn number(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::Number(n) => n.as_f64().filter(|f| f.is_finite()),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// A string, or a number or boolean written as one; anything else is empty.
fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn shown(value: Option<&Value>) -> Option<Shown> {
    match value?.as_str()? {
        "visible" => Some(Shown::Visible),
        "after_due_date" => Some(Shown::AfterDueDate),
        "after_published" => Some(Shown::AfterPublished),
        "hidden" => Some(Shown::Hidden),
        _ => None,
    }
}

fn clip(mut name: String) -> String {
    if name.len() > MAX_NAME_BYTES {
        let mut keep = MAX_NAME_BYTES;
        while !name.is_char_boundary(keep) {
            keep -= 1;
        }
        name.truncate(keep);
    }
    name
}

/// The names Gradescope shows (`"1.2) Adds"` from number and name), made
/// unique with a ` #2` suffix, never empty.
fn names(tests: &[&Map<String, Value>]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    tests
        .iter()
        .enumerate()
        .map(|(i, test)| {
            let number = text(test.get("number")).trim().to_string();
            let name = text(test.get("name")).trim().to_string();
            let base = clip(match (number.is_empty(), name.is_empty()) {
                (false, false) => format!("{number}) {name}"),
                (false, true) => format!("Test {number}"),
                (true, false) => name,
                (true, true) => format!("Test {}", i + 1),
            });
            let mut unique = base.clone();
            let mut n = 2;
            while !seen.insert(unique.clone()) {
                unique = format!("{base} #{n}");
                n += 1;
            }
            unique
        })
        .collect()
}

/// Maps a results.json, or says why it is malformed.
///
/// # Errors
/// A phrase when the bytes are not a JSON object.
pub fn parse(bytes: &[u8]) -> Result<Results, String> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("results.json is not JSON ({e})"))?;
    let Value::Object(top) = value else {
        return Err("results.json is not a JSON object".into());
    };
    let default_shown = shown(top.get("visibility")).unwrap_or(Shown::Visible);
    let listed: Vec<&Map<String, Value>> = match top.get("tests") {
        Some(Value::Array(tests)) => tests.iter().filter_map(Value::as_object).collect(),
        _ => Vec::new(),
    };
    let dropped = listed.len().saturating_sub(MAX_TESTS);
    let listed = &listed[..listed.len().min(MAX_TESTS)];
    let tests = listed
        .iter()
        .zip(names(listed))
        .map(|(test, name)| {
            let max_score = number(test.get("max_score")).unwrap_or(0.0).max(0.0);
            let status = test.get("status").and_then(Value::as_str);
            let score = number(test.get("score")).unwrap_or(match status {
                Some("passed") => max_score,
                _ => 0.0,
            });
            let passed = match status {
                Some("passed") => true,
                Some("failed") => false,
                _ => score >= max_score,
            };
            Test {
                name,
                score,
                max_score,
                passed,
                output: text(test.get("output")),
                shown: shown(test.get("visibility")).unwrap_or(default_shown),
            }
        })
        .collect();
    Ok(Results {
        tests,
        score: number(top.get("score")),
        output: text(top.get("output")),
        stdout_visible: top.get("stdout_visibility").and_then(Value::as_str) == Some("visible"),
        dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loosely_written_files_are_read_as_gradescope_reads_them() {
        let results = parse(
            br#"{"execution_time": "12", "score": "7.5", "visibility": "after_due_date",
                 "tests": [
                   {"number": "", "name": "imports", "output": "ModuleNotFoundError"},
                   {"number": 1.1, "name": "adds", "score": 2, "max_score": 2},
                   {"number": "1.1", "name": "adds", "score": "1", "max_score": "2",
                    "visibility": "visible"},
                   {"score": 3, "max_score": 2, "status": "passed"},
                   {"score": -1, "max_score": 0},
                   "not a test"
                 ]}"#,
        )
        .unwrap();
        assert_eq!(results.score, Some(7.5));
        let names: Vec<&str> = results.tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["imports", "1.1) adds", "1.1) adds #2", "Test 4", "Test 5"]
        );
        let first = &results.tests[0];
        assert_eq!(
            (first.score, first.max_score, first.passed),
            (0.0, 0.0, true)
        );
        assert_eq!(first.shown, Shown::AfterDueDate);
        assert_eq!(results.tests[2].score, 1.0);
        assert!(!results.tests[2].passed);
        assert_eq!(results.tests[2].shown, Shown::Visible);
        assert_eq!(results.tests[3].score, 3.0, "extra credit is kept");
        assert_eq!(results.tests[4].score, -1.0, "a penalty is kept");
        assert!(!results.stdout_visible);
    }

    #[test]
    fn a_status_without_a_score_gives_all_or_nothing() {
        let results = parse(
            br#"{"tests": [{"name": "a", "max_score": 4, "status": "passed"},
                           {"name": "b", "max_score": 4, "status": "failed"}],
                 "stdout_visibility": "visible"}"#,
        )
        .unwrap();
        assert_eq!(results.tests[0].score, 4.0);
        assert_eq!(results.tests[1].score, 0.0);
        assert!(results.stdout_visible);
        assert_eq!(results.score, None);
    }

    #[test]
    fn anything_but_an_object_is_malformed() {
        for bad in [&b""[..], b"[]", b"{\"score\": 1", b"null", b"\xff"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
