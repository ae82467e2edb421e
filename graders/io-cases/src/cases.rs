//! `cases.toml`: what the no-code grader runs and how it judges, read and
//! checked before anything runs. Every error names the line it is about.
//!
//! ```toml
//! discover = true                  # every NAME.in with a NAME.out is a case
//!                                  # (top-level keys come before any [table])
//!
//! [build]                          # optional: run once, as the student
//! argv = ["gcc", "-O2", "-o", "/work/prog", "/work/main.c", "-lm"]
//! timeout_ms = 30000
//!
//! [run]                            # each case runs this, plus its args
//! argv = ["/work/prog"]
//! timeout_ms = 2000
//!
//! [defaults]                       # for every case that does not say
//! points = 1
//! compare = "whitespace"           # exact | whitespace | numeric | lines | unordered-lines
//! tolerance = 1e-6                 # for numeric: absolute or relative
//! visibility = "visible"           # visible | after-due-date | after-published | hidden
//!
//! [[case]]
//! name = "empty"
//! stdin = "0\n"                    # or stdin_file = "empty.in"
//! expected = "0 0\n"               # or expected_file = "empty.out"
//! args = []
//! files = { "data.txt" = "data/empty.txt" }   # into /work, from the course files
//! points = 2
//! visibility = "hidden"
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// How a case's output is compared with what was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compare {
    /// Byte for byte.
    Exact,
    /// Equal after splitting on any whitespace.
    Whitespace,
    /// Token by token, numbers within the tolerance.
    Numeric,
    /// Line by line, trailing whitespace and blank last lines ignored.
    Lines,
    /// The same lines in any order.
    UnorderedLines,
}

/// Who may see a case's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shown {
    /// At once.
    Visible,
    /// After the due date.
    AfterDueDate,
    /// Once grades are published.
    AfterPublished,
    /// Never; its feedback never shows what was expected.
    Hidden,
}

/// A command of the build or the run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Deadline in milliseconds (the sandbox's when none).
    pub timeout_ms: Option<u64>,
    /// Bytes kept of each output stream (the sandbox's when none).
    pub output_bytes: Option<u64>,
    /// Course files placed in `/work` first: target path -> path among
    /// the course files.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

/// What every case gets unless it says otherwise.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Points of a case.
    pub points: f64,
    /// Comparison.
    pub compare: Compare,
    /// Tolerance of the numeric comparison.
    pub tolerance: f64,
    /// Who sees the result.
    pub visibility: Shown,
    /// Deadline of one case, in milliseconds.
    pub timeout_ms: Option<u64>,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            points: 1.0,
            compare: Compare::Whitespace,
            tolerance: 1e-6,
            visibility: Shown::Visible,
            timeout_ms: None,
        }
    }
}

/// One case as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseEntry {
    name: Spanned<String>,
    stdin: Option<String>,
    stdin_file: Option<String>,
    expected: Option<String>,
    expected_file: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    files: BTreeMap<String, String>,
    points: Option<f64>,
    compare: Option<Compare>,
    tolerance: Option<f64>,
    visibility: Option<Shown>,
    timeout_ms: Option<u64>,
    output_bytes: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesFile {
    build: Option<Step>,
    run: Step,
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    discover: bool,
    #[serde(default, rename = "case")]
    cases: Vec<CaseEntry>,
}

/// Where a case's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Written in `cases.toml`.
    Inline(String),
    /// A file among the course files.
    File(String),
}

/// One case, with every default applied.
#[derive(Debug, Clone)]
pub struct Case {
    /// Its name, unique.
    pub name: String,
    /// Its stdin, if any.
    pub stdin: Option<Source>,
    /// What it must print.
    pub expected: Source,
    /// Arguments after the run's argv.
    pub args: Vec<String>,
    /// Course files placed in `/work` before it runs.
    pub files: BTreeMap<String, String>,
    /// Points.
    pub points: f64,
    /// Comparison.
    pub compare: Compare,
    /// Numeric tolerance.
    pub tolerance: f64,
    /// Who sees the result.
    pub visibility: Shown,
    /// Deadline in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Bytes kept per output stream.
    pub output_bytes: Option<u64>,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Cases {
    /// The build step.
    pub build: Option<Step>,
    /// The run step.
    pub run: Step,
    /// The cases, in order: those written, then those discovered.
    pub cases: Vec<Case>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// A place among the course files or in `/work`: relative, no `..`.
fn relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..")
}

/// Reads `text` (the contents of `cases.toml`); `files` are the course
/// files beside it, for `discover` and to check the files cases name.
///
/// # Errors
/// What is wrong, starting with `cases.toml line N:` where it can say.
pub fn parse(text: &str, files: &[String]) -> Result<Cases, String> {
    let file: CasesFile =
        toml::from_str(text).map_err(|e| format!("cases.toml: {}", e.to_string().trim()))?;
    if file.run.argv.is_empty() {
        return Err("cases.toml: [run] argv is empty; give the program to run".into());
    }
    if file.build.as_ref().is_some_and(|b| b.argv.is_empty()) {
        return Err(
            "cases.toml: [build] argv is empty; give the build command or drop [build]".into(),
        );
    }
    let d = &file.defaults;
    if !(d.points.is_finite() && d.points >= 0.0) {
        return Err(format!(
            "cases.toml: [defaults] points {} is not a number >= 0",
            d.points
        ));
    }
    let known = |path: &str| files.iter().any(|f| f == path);
    for (section, step) in [("build", file.build.as_ref()), ("run", Some(&file.run))] {
        for (target, from) in step.map(|s| &s.files).into_iter().flatten() {
            if !relative(target) || !known(from) {
                return Err(format!(
                    "cases.toml: [{section}] files: {target:?} = {from:?} needs a relative target and a course file (have: {})",
                    files.join(", ")
                ));
            }
        }
    }
    let mut cases = Vec::new();
    for entry in file.cases {
        let line = line_of(text, entry.name.span().start);
        let name = entry.name.into_inner();
        let at = |what: String| format!("cases.toml line {line}: case {name:?}: {what}");
        let expected = match (entry.expected, entry.expected_file) {
            (Some(text), None) => Source::Inline(text),
            (None, Some(path)) if known(&path) => Source::File(path),
            (None, Some(path)) => {
                return Err(at(format!(
                    "expected_file {path:?} is not among the course files"
                )));
            }
            _ => return Err(at("give exactly one of expected and expected_file".into())),
        };
        let stdin = match (entry.stdin, entry.stdin_file) {
            (Some(text), None) => Some(Source::Inline(text)),
            (None, Some(path)) if known(&path) => Some(Source::File(path)),
            (None, Some(path)) => {
                return Err(at(format!(
                    "stdin_file {path:?} is not among the course files"
                )));
            }
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(at("give at most one of stdin and stdin_file".into()));
            }
        };
        for (target, from) in &entry.files {
            if !relative(target) || !known(from) {
                return Err(at(format!(
                    "files: {target:?} = {from:?} needs a relative target and a course file"
                )));
            }
        }
        let points = entry.points.unwrap_or(d.points);
        if !(points.is_finite() && points >= 0.0) {
            return Err(at(format!("points {points} is not a number >= 0")));
        }
        if name.is_empty() || cases.iter().any(|c: &Case| c.name == name) {
            return Err(at("names must be present and unique".into()));
        }
        cases.push(Case {
            name,
            stdin,
            expected,
            args: entry.args,
            files: entry.files,
            points,
            compare: entry.compare.unwrap_or(d.compare),
            tolerance: entry.tolerance.unwrap_or(d.tolerance),
            visibility: entry.visibility.unwrap_or(d.visibility),
            timeout_ms: entry.timeout_ms.or(d.timeout_ms),
            output_bytes: entry.output_bytes,
        });
    }
    if file.discover {
        let mut found: Vec<&str> = files
            .iter()
            .filter_map(|f| f.strip_suffix(".in"))
            .filter(|stem| known(&format!("{stem}.out")))
            .filter(|stem| !cases.iter().any(|c| c.name == *stem))
            .collect();
        found.sort_unstable();
        for stem in found {
            cases.push(Case {
                name: stem.to_string(),
                stdin: Some(Source::File(format!("{stem}.in"))),
                expected: Source::File(format!("{stem}.out")),
                args: Vec::new(),
                files: BTreeMap::new(),
                points: d.points,
                compare: d.compare,
                tolerance: d.tolerance,
                visibility: d.visibility,
                timeout_ms: d.timeout_ms,
                output_bytes: None,
            });
        }
    }
    if cases.is_empty() {
        return Err(
            "cases.toml: no cases: add [[case]] entries, or discover = true beside NAME.in/NAME.out files"
                .into(),
        );
    }
    Ok(Cases {
        build: file.build,
        run: file.run,
        cases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<String> {
        [
            "01.in",
            "01.out",
            "02.in",
            "02.out",
            "lonely.in",
            "data.txt",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn cases_are_written_and_discovered_with_defaults() {
        let text = "discover = true\n\n[run]\nargv = [\"/work/prog\"]\n\n[defaults]\npoints = 2\n\n[[case]]\nname = \"zero\"\nstdin = \"0\\n\"\nexpected = \"0 0\\n\"\nvisibility = \"hidden\"\ncompare = \"numeric\"\n";
        let cases = parse(text, &files()).unwrap();
        let names: Vec<&str> = cases.cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["zero", "01", "02"], "lonely.in has no .out");
        assert_eq!(cases.cases[0].visibility, Shown::Hidden);
        assert_eq!(cases.cases[0].compare, Compare::Numeric);
        assert_eq!(cases.cases[1].points, 2.0);
        assert_eq!(cases.cases[1].expected, Source::File("01.out".into()));
    }

    #[test]
    fn errors_name_the_line() {
        let text = "[run]\nargv = [\"p\"]\n\n[[case]]\nname = \"a\"\nstdin = \"x\"\n\n[[case]]\nname = \"b\"\nexpected = \"y\"\nexpected_file = \"01.out\"\n";
        let err = parse(text, &files()).unwrap_err();
        assert!(err.starts_with("cases.toml line 5: case \"a\""), "{err}");
        let err = parse("[run]\nargv = [\"p\"]\ncompare = 3\n", &files()).unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        let err = parse("[run]\nargv = [\"p\"]\n[[case]]\nname = \"a\"\nexpected = \"1\"\ncompare = \"fuzzy\"\n", &files()).unwrap_err();
        assert!(err.contains("line 6") && err.contains("fuzzy"), "{err}");
        let err = parse(
            "[run]\nargv = [\"p\"]\n[[case]]\nname = \"a\"\nexpected_file = \"nope.out\"\n",
            &files(),
        )
        .unwrap_err();
        assert!(err.contains("line 4") && err.contains("nope.out"), "{err}");
        let err = parse("[run]\nargv = [\"p\"]\n[[case]]\nname = \"a\"\nexpected = \"1\"\nfiles = { \"../x\" = \"data.txt\" }\n", &files()).unwrap_err();
        assert!(err.contains("relative target"), "{err}");
    }

    #[test]
    fn no_cases_is_an_error_that_says_what_to_do() {
        let err = parse("[run]\nargv = [\"p\"]\n", &files()).unwrap_err();
        assert!(err.contains("discover = true"), "{err}");
    }
}
