//! Write agh course graders in Rust.
//!
//! A grader is a WebAssembly component. Implement [`Grader`] and export it:
//!
//! ```ignore
//! use agh_grader::{Cmd, GradeContext, GradeError, Grader, GraderInfo, Report, Test};
//!
//! struct Course;
//!
//! impl Grader for Course {
//!     fn describe(_settings: Vec<(String, String)>) -> GraderInfo {
//!         agh_grader::info("hello", "1.0.0", "agh/python-c:1")
//!     }
//!
//!     fn grade(context: GradeContext) -> Result<Report, GradeError> {
//!         let greeting = context.setting_or("greeting", "hello");
//!         // `?` on a host error: the student's doing (a state they left,
//!         // a sandbox they brought down) makes the submission ungradable
//!         // and scored 0; anything else is the grader's failure.
//!         let run = Cmd::new(["python3", "hello.py"]).run()?;
//!         let test = Test::new("prints the greeting", 1.0);
//!         let test = if agh_grader::compare::ignoring_whitespace(greeting, &run.stdout_text()) {
//!             test.passed("")
//!         } else {
//!             test.failed_with(&run, &format!("expected {greeting}"))
//!         };
//!         Ok(Report { tests: vec![test], output: String::new() })
//!     }
//! }
//!
//! agh_grader::export_grader!(Course);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release`; the `.wasm`
//! in `target/wasm32-wasip2/release/` is the grader.
//!
//! The grader never runs anything itself: [`Cmd::run`] asks agh to run the
//! command in the submission's gVisor sandbox, under the limits the operator
//! allows, and returns what happened.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/0.2.0",
        world: "grader-plugin",
        pub_export_macro: true,
        default_bindings_module: "agh_grader::bindings",
    });
}

pub use bindings::agh::grader::types::{
    Asset, Budget, Command, CommandResult, Conversation, Error, GradeContext, GradeError,
    GraderInfo, Limit, Limits, Report, TestResult, User, Verdict, Visibility,
};
use bindings::agh::grader::{assets, log, sandbox, submission};
pub use bindings::exports::agh::grader::grader::Guest as Grader;

/// The contract version this SDK speaks.
pub const API_VERSION: &str = "0.2.0";

/// Exports a type implementing [`Grader`] as the component's grader.
#[macro_export]
macro_rules! export_grader {
    ($grader:ident) => {
        $crate::bindings::export!($grader with_types_in $crate::bindings);
    };
}

/// Limits that suit most course exercises: 10 s per command, 512 MiB,
/// 64 processes, 1 MiB of output per stream, 64 MiB files, 256 MiB per
/// writable place.
#[must_use]
pub fn default_limits() -> Limits {
    Limits {
        wall_time_ms: 10_000,
        memory_bytes: 512 * 1024 * 1024,
        processes: 64,
        output_bytes: 1024 * 1024,
        file_size_bytes: 64 * 1024 * 1024,
        tmpfs_bytes: 256 * 1024 * 1024,
    }
}

/// What a compiled grader needs per call: 20 billion fuel (seconds of
/// computation) and five minutes in all, its commands included.
#[must_use]
pub fn default_budget() -> Budget {
    Budget {
        fuel: 20_000_000_000,
        wall_time_ms: 300_000,
    }
}

/// A [`GraderInfo`] with [`default_limits`], [`default_budget`], no assets,
/// and this SDK's API version.
#[must_use]
pub fn info(name: &str, version: &str, image: &str) -> GraderInfo {
    GraderInfo {
        name: name.into(),
        version: version.into(),
        api_version: API_VERSION.into(),
        image: image.into(),
        limits: default_limits(),
        budget: default_budget(),
        assets: Vec::new(),
    }
}

/// An [`Asset`] declaration: `source` is `SOURCE:PATH` as the operator grants.
#[must_use]
pub fn asset(name: &str, source: &str, target: &str) -> Asset {
    Asset {
        name: name.into(),
        source: source.into(),
        target: target.into(),
    }
}

/// The course setting `name` among `settings`, as `describe` receives them.
#[must_use]
pub fn setting<'a>(settings: &'a [(String, String)], name: &str) -> Option<&'a str> {
    settings
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

impl GradeContext {
    /// The course setting `name` from the operator's configuration.
    #[must_use]
    pub fn setting(&self, name: &str) -> Option<&str> {
        setting(&self.settings, name)
    }

    /// The course setting `name`, or `default` when the operator set none.
    #[must_use]
    pub fn setting_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.setting(name).unwrap_or(default)
    }
}

impl Error {
    /// What kind of error it is, as every SDK spells it: `refused`,
    /// `not-found`, `submission-state`, `sandbox-lost`, `too-large`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Refused(_) => "refused",
            Error::NotFound(_) => "not-found",
            Error::SubmissionState(_) => "submission-state",
            Error::SandboxLost(_) => "sandbox-lost",
            Error::TooLarge(_) => "too-large",
        }
    }

    /// The host's own words about it.
    #[must_use]
    pub fn detail(&self) -> &str {
        match self {
            Error::Refused(m)
            | Error::NotFound(m)
            | Error::SubmissionState(m)
            | Error::SandboxLost(m)
            | Error::TooLarge(m) => m,
        }
    }

    /// True when the student's doing caused it: a state they left in the
    /// sandbox, or a sandbox their command brought down.
    #[must_use]
    pub fn is_students(&self) -> bool {
        matches!(self, Error::SubmissionState(_) | Error::SandboxLost(_))
    }
}

/// `?` on a host error in `grade`: the student's doing makes the
/// submission ungradable (scored 0, with the message); the rest is the
/// grader's failure (plugin-error, never charged to the student).
impl From<Error> for GradeError {
    fn from(error: Error) -> Self {
        if error.is_students() {
            GradeError::Submission(describe_error(error))
        } else {
            GradeError::Grader(describe_error(error))
        }
    }
}

/// `?` on the grader's own errors (`Err("...")?`, a parse failure turned
/// into a `String`): the grader's failure.
impl From<String> for GradeError {
    fn from(message: String) -> Self {
        GradeError::Grader(message)
    }
}

impl From<&str> for GradeError {
    fn from(message: &str) -> Self {
        GradeError::Grader(message.into())
    }
}

/// A one-line description of a host error, for reports and `Err` returns.
#[must_use]
pub fn describe_error(error: Error) -> String {
    match error {
        Error::Refused(m) => format!("refused: {m}"),
        Error::NotFound(m) => format!("not found: {m}"),
        Error::SubmissionState(m) => format!("the submission's state stops it: {m}"),
        Error::SandboxLost(m) => format!("sandbox lost: {m}"),
        Error::TooLarge(m) => format!("too large: {m}"),
    }
}

/// A command to run in the sandbox, built step by step.
#[derive(Debug, Clone)]
pub struct Cmd {
    command: Command,
}

impl Cmd {
    /// Runs `argv` as the student, in `/work`, with no stdin.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            command: Command {
                argv: argv.into_iter().map(Into::into).collect(),
                stdin: Vec::new(),
                cwd: None,
                env: Vec::new(),
                user: User::Student,
                wall_time_ms: None,
                output_bytes: None,
            },
        }
    }

    /// Appends arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.command.argv.extend(args.into_iter().map(Into::into));
        self
    }

    /// Feeds `bytes` to stdin.
    #[must_use]
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.command.stdin = bytes.into();
        self
    }

    /// Runs in `dir` instead of the user's own folder (`/work` for the
    /// student, `/grader` for the grader user).
    #[must_use]
    pub fn cwd(mut self, dir: &str) -> Self {
        self.command.cwd = Some(dir.into());
        self
    }

    /// Adds an environment variable.
    #[must_use]
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.command.env.push((name.into(), value.into()));
        self
    }

    /// Runs as the grader user, who can read `/grader`. Unless [`Cmd::cwd`]
    /// says otherwise, the command starts in `/grader` with `TMPDIR` there
    /// too: a grader-user command that ran in `/work` would import, execute
    /// or write through whatever the student left there.
    #[must_use]
    pub fn as_grader(mut self) -> Self {
        self.command.user = User::Grader;
        self
    }

    /// Sets the deadline: shorter than the sandbox's, or longer up to the
    /// operator's ceiling (a long build, a slow test).
    #[must_use]
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.command.wall_time_ms = Some(ms);
        self
    }

    /// Keeps at most `bytes` of each output stream (never above the sandbox's).
    #[must_use]
    pub fn output_bytes(mut self, bytes: u64) -> Self {
        self.command.output_bytes = Some(bytes);
        self
    }

    /// Runs the command in the sandbox.
    ///
    /// # Errors
    /// When the host refuses the command or the sandbox is gone.
    pub fn run(&self) -> Result<CommandResult, Error> {
        sandbox::run(&self.command)
    }

    /// Runs this command as a judge beside `student`, each one's stdout
    /// feeding the other's stdin. Make the judge [`Cmd::as_grader`] and
    /// let it report its verdict on its own stderr: the student's code
    /// runs in another process as another user and cannot forge it. The
    /// conversation ends a second after the judge does.
    ///
    /// # Errors
    /// When the host refuses either command or the sandbox is gone.
    pub fn converse(&self, student: &Cmd) -> Result<Conversation, Error> {
        sandbox::converse(&self.command, &student.command)
    }
}

impl CommandResult {
    /// Stdout as text (invalid UTF-8 replaced).
    #[must_use]
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text (invalid UTF-8 replaced).
    #[must_use]
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// True when the command exited 0 within every limit.
    #[must_use]
    pub fn succeeded(&self) -> bool {
        self.verdict.is_none() && self.exit_code == Some(0)
    }
}

/// Writes a file into the sandbox (`/work`, `/grader` or `/assets`).
///
/// # Errors
/// When the path is refused or the sandbox is gone.
pub fn write_file(path: &str, contents: &[u8], read_only: bool) -> Result<(), Error> {
    sandbox::write_file(path, contents, read_only)
}

/// Reads up to `max_bytes` of a regular file in the sandbox.
///
/// # Errors
/// When the file is missing, a link, a special file, or the sandbox is gone.
pub fn read_file(path: &str, max_bytes: u64) -> Result<Vec<u8>, Error> {
    sandbox::read_file(path, max_bytes)
}

/// Replaces the sandbox with a fresh one holding the pristine submission,
/// and places the named declared assets again: after a test that brought
/// the sandbox down, or before a test that must not see what earlier ones
/// left.
///
/// # Errors
/// When an asset was not declared, or past the host's limit on resets.
pub fn reset_sandbox(assets: &[&str]) -> Result<(), Error> {
    let names: Vec<String> = assets.iter().map(|a| (*a).to_string()).collect();
    sandbox::reset(&names)
}

/// After a test that brought the sandbox down: a fresh sandbox with the
/// named assets, and `None`; or, once the submission's programs have
/// brought it down more often than the host resets it, `Some(why)`, and
/// the grader fails the tests it has not run with [`Verdict::ResourceLimit`]
/// and `why` (see [`Test::not_run`]). Neither is the grader's failure.
///
/// # Errors
/// When an asset was not declared, or the host fails.
pub fn reset_after_loss(assets: &[&str]) -> Result<Option<String>, Error> {
    match reset_sandbox(assets) {
        Ok(()) => Ok(None),
        Err(Error::SandboxLost(why)) => Ok(Some(why)),
        Err(other) => Err(other),
    }
}

/// Places a declared asset at its declared target.
///
/// # Errors
/// When the asset was not declared, is missing, or the sandbox is gone.
pub fn place_asset(name: &str) -> Result<(), Error> {
    sandbox::place_asset(name)
}

/// The submission's files, from the host's pristine copy.
///
/// # Errors
/// When the host cannot list them.
pub fn submission_files() -> Result<Vec<String>, Error> {
    submission::list_files()
}

/// One submission file's bytes, from the host's pristine copy.
///
/// # Errors
/// When the file is missing or refused.
pub fn submission_file(path: &str) -> Result<Vec<u8>, Error> {
    submission::read_file(path)
}

/// The files of a declared asset.
///
/// # Errors
/// When the asset was not declared or cannot be read.
pub fn asset_files(name: &str) -> Result<Vec<String>, Error> {
    assets::list_files(name)
}

/// One file of a declared asset, read by the grader (it never enters the sandbox).
///
/// # Errors
/// When the asset or file is missing or refused.
pub fn asset_file(name: &str, path: &str) -> Result<Vec<u8>, Error> {
    assets::read(name, path)
}

/// Logs for the operator.
pub fn log_info(message: &str) {
    log::log(log::Level::Info, message);
}

/// Logs a warning for the operator.
pub fn log_warn(message: &str) {
    log::log(log::Level::Warn, message);
}

/// Comparing a program's output with what was expected, by the rules of
/// `graders/spec/comparators.md` that every agh SDK shares.
pub mod compare {
    /// The whitespace of the comparisons: space, tab, line feed, form feed
    /// and carriage return, and nothing else.
    #[must_use]
    pub fn is_space(c: char) -> bool {
        matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r')
    }

    /// The tokens of `text`: its runs of characters that are not whitespace.
    pub fn tokens(text: &str) -> impl Iterator<Item = &str> {
        text.split(is_space).filter(|t| !t.is_empty())
    }

    /// Byte-for-byte equal.
    #[must_use]
    pub fn exact(expected: &str, got: &str) -> bool {
        expected == got
    }

    /// Equal token by token.
    #[must_use]
    pub fn ignoring_whitespace(expected: &str, got: &str) -> bool {
        tokens(expected).eq(tokens(got))
    }

    /// The value of `token` when it is a number by the specification:
    /// decimal digits with an optional sign, point and exponent, finite.
    #[must_use]
    pub fn number(token: &str) -> Option<f64> {
        let bytes = token.as_bytes();
        let mut i = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
        let digits = |i: &mut usize| {
            let start = *i;
            while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i - start
        };
        let mut mantissa = digits(&mut i);
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            mantissa += digits(&mut i);
        }
        if mantissa == 0 {
            return None;
        }
        if matches!(bytes.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(bytes.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return None;
            }
        }
        if i != bytes.len() {
            return None;
        }
        token.parse::<f64>().ok().filter(|v| v.is_finite())
    }

    /// Token by token: numbers within `tolerance` (absolute or relative),
    /// other tokens equal.
    #[must_use]
    pub fn numeric(expected: &str, got: &str, tolerance: f64) -> bool {
        let mut want = tokens(expected);
        let mut have = tokens(got);
        loop {
            match (want.next(), have.next()) {
                (None, None) => return true,
                (Some(w), Some(h)) => {
                    let close = match (number(w), number(h)) {
                        (Some(a), Some(b)) => {
                            (a - b).abs() <= tolerance || (a - b).abs() <= tolerance * a.abs()
                        }
                        _ => w == h,
                    };
                    if !close {
                        return false;
                    }
                }
                _ => return false,
            }
        }
    }
}

/// Line-based comparisons and feedback, for outputs judged line by line.
pub mod lines {
    use super::Visibility;

    /// The lines of `text` (split at line feeds) without trailing
    /// whitespace, and without the empty lines at its end.
    fn trimmed(text: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = text
            .split('\n')
            .map(|l| l.trim_end_matches(super::compare::is_space))
            .collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines
    }

    /// Equal line by line, ignoring trailing whitespace and blank last lines.
    #[must_use]
    pub fn same(expected: &str, got: &str) -> bool {
        trimmed(expected) == trimmed(got)
    }

    /// The same lines in any order (each as many times).
    #[must_use]
    pub fn same_unordered(expected: &str, got: &str) -> bool {
        let mut want = trimmed(expected);
        let mut have = trimmed(got);
        want.sort_unstable();
        have.sort_unstable();
        want == have
    }

    /// Where `got` first departs from `expected`, for a test's feedback,
    /// by the one rule every SDK shares (graders/spec/comparators.md): the
    /// expected line is named only when the test is [`Visibility::Visible`];
    /// otherwise the feedback says where and what the student printed,
    /// never what was expected. `line 3: expected "6 3", got "6 4"`.
    /// [`Test::wrong_output`] is this with the test's own visibility.
    #[must_use]
    pub fn first_difference(expected: &str, got: &str, visibility: Visibility) -> String {
        let shown = matches!(visibility, Visibility::Visible);
        let (want, have) = (trimmed(expected), trimmed(got));
        let at = want.iter().zip(&have).position(|(w, h)| w != h);
        let n = at.unwrap_or(want.len().min(have.len()));
        let line = n + 1;
        match (want.get(n), have.get(n)) {
            (Some(w), Some(h)) if shown => {
                format!("line {line}: expected {}, got {}", quoted(w), quoted(h))
            }
            (Some(_), Some(h)) => {
                format!(
                    "line {line}: got {}, which is not what was expected",
                    quoted(h)
                )
            }
            (Some(w), None) if shown => {
                format!(
                    "line {line}: expected {}, got the end of the output",
                    quoted(w)
                )
            }
            (Some(_), None) => {
                format!("line {line}: got the end of the output, and more was expected")
            }
            (None, Some(h)) if shown => {
                format!(
                    "line {line}: expected the end of the output, got {}",
                    quoted(h)
                )
            }
            (None, Some(h)) => {
                format!(
                    "line {line}: got {}, past the end of what was expected",
                    quoted(h)
                )
            }
            (None, None) => "the output differs only in spacing".into(),
        }
    }

    /// A line for feedback: its first 80 code points, quoted, with what
    /// could end the quotation or drive a terminal escaped.
    fn quoted(line: &str) -> String {
        const SHOWN: usize = 80;
        let mut out = String::with_capacity(line.len().min(4 * SHOWN) + 4);
        out.push('"');
        for c in line.chars().take(SHOWN) {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
                c => out.push(c),
            }
        }
        if line.chars().nth(SHOWN).is_some() {
            out.push('…');
        }
        out.push('"');
        out
    }
}

/// Building one [`TestResult`].
#[derive(Debug, Clone)]
pub struct Test {
    name: String,
    max_score: f64,
    visibility: Visibility,
}

impl Test {
    /// A test worth `max_score` points, visible to the student.
    #[must_use]
    pub fn new(name: &str, max_score: f64) -> Self {
        Self {
            name: name.into(),
            max_score,
            visibility: Visibility::Visible,
        }
    }

    /// Sets who may see the result.
    #[must_use]
    pub fn visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = visibility;
        self
    }

    /// Never shown to the student.
    #[must_use]
    pub fn hidden(self) -> Self {
        self.visibility(Visibility::Hidden)
    }

    /// Full marks.
    #[must_use]
    pub fn passed(self, output: &str) -> TestResult {
        let max = self.max_score;
        self.scored(max, Verdict::Accepted, output)
    }

    /// No marks, with the verdict given.
    #[must_use]
    pub fn failed(self, verdict: Verdict, output: &str) -> TestResult {
        self.scored(0.0, verdict, output)
    }

    /// No marks; the verdict comes from the run (a crash, a timeout), or is
    /// `wrong` when the run itself was clean.
    #[must_use]
    pub fn failed_with(self, run: &CommandResult, output: &str) -> TestResult {
        self.failed(run.verdict.unwrap_or(Verdict::Wrong), output)
    }

    /// No marks, `wrong`: the program printed `got` where `expected` was
    /// due. The feedback is [`lines::first_difference`] with this test's
    /// visibility: the expected line is named only to a visible test.
    #[must_use]
    pub fn wrong_output(self, expected: &str, got: &str) -> TestResult {
        let feedback = format!(
            "wrong output: {}",
            lines::first_difference(expected, got, self.visibility)
        );
        self.failed(Verdict::Wrong, &feedback)
    }

    /// No marks: the test could not run because the submission's programs
    /// kept bringing the sandbox down (`why` from [`reset_after_loss`]).
    #[must_use]
    pub fn not_run(self, why: &str) -> TestResult {
        self.failed(Verdict::ResourceLimit, &format!("not run: {why}"))
    }

    /// `score` points with the verdict given; `output` past
    /// [`MAX_FEEDBACK_BYTES`] is clipped ([`clip_feedback`]).
    #[must_use]
    pub fn scored(self, score: f64, verdict: Verdict, output: &str) -> TestResult {
        TestResult {
            name: self.name,
            score,
            max_score: self.max_score,
            verdict,
            output: clip_feedback(output),
            visibility: self.visibility,
        }
    }
}

/// Most bytes of one test's feedback the host keeps (its cap on feedback).
pub const MAX_FEEDBACK_BYTES: usize = 64 * 1024;

/// `feedback` held to [`MAX_FEEDBACK_BYTES`] at a character boundary, with
/// a last line saying how much was cut, as the host clips it. Feedback is
/// often what the student printed, so its size is the student's choice.
#[must_use]
pub fn clip_feedback(feedback: &str) -> String {
    if feedback.len() <= MAX_FEEDBACK_BYTES {
        return feedback.to_string();
    }
    let over = feedback.len() - MAX_FEEDBACK_BYTES;
    let note = format!(
        "\n[agh: feedback clipped to {} KiB; {over} more bytes not shown]",
        MAX_FEEDBACK_BYTES / 1024
    );
    let mut keep = MAX_FEEDBACK_BYTES - note.len();
    while !feedback.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{note}", &feedback[..keep])
}

#[cfg(test)]
mod tests {
    use super::{
        CommandResult, Error, MAX_FEEDBACK_BYTES, Test, Verdict, Visibility, clip_feedback,
        compare, lines,
    };

    #[test]
    fn line_comparisons() {
        assert!(lines::same("a\nb\n", "a  \nb\n\n"));
        assert!(!lines::same("a\nb", "b\na"));
        assert!(lines::same_unordered("a\nb\nb", "b\na\nb\n"));
        assert!(!lines::same_unordered("a\nb", "a\na"));
    }

    /// The cases of a WIT enum or variant of the contract, as it spells them.
    fn contract_cases(kind: &str, name: &str) -> Vec<String> {
        let wit = include_str!("../../../wit/0.2.0/grader.wit");
        let start = wit
            .find(&format!("{kind} {name} {{"))
            .expect("in the contract");
        let body = &wit[start..][..wit[start..].find('}').expect("closed")];
        body.lines()
            .skip(1)
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("//"))
            .map(|l| l.split(['(', ',']).next().unwrap_or(l).to_string())
            .collect()
    }

    /// What every SDK spells the same way (graders/spec/sdk.json).
    #[test]
    fn the_shared_names() {
        let spec: serde_json::Value =
            serde_json::from_str(include_str!("../../spec/sdk.json")).expect("sdk.json");
        assert_eq!(spec["contract"], super::API_VERSION);
        let names = |key: &str| -> Vec<String> {
            let list = spec.pointer(key).and_then(|v| v.as_array()).expect(key);
            list.iter()
                .map(|v| v.as_str().expect(key).to_string())
                .collect()
        };
        let test = || Test::new("adds", 2.0);
        let run = CommandResult {
            exit_code: Some(1),
            signal: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            timed_out: false,
            cpu_time_exceeded: false,
            out_of_memory: false,
            process_limit_reached: false,
            file_size_exceeded: false,
            storage_full: false,
            sandbox_lost: false,
            limit: None,
            verdict: Some(Verdict::RuntimeError),
            wall_time_ms: 1,
            cpu_time_ms: 1,
            peak_memory_bytes: 0,
        };
        for method in names("/test/methods") {
            let result = match method.as_str() {
                "visibility" => test().visibility(Visibility::AfterDueDate).passed(""),
                "hidden" => test().hidden().passed(""),
                "scored" => test().scored(1.0, Verdict::Wrong, ""),
                "passed" => test().passed(""),
                "failed" => test().failed(Verdict::Wrong, ""),
                "failed_with" => test().failed_with(&run, ""),
                "wrong_output" => test().wrong_output("1", "2"),
                "not_run" => test().not_run("why"),
                other => panic!("the Rust SDK's Test has no {other}"),
            };
            assert_eq!((result.name.as_str(), result.max_score), ("adds", 2.0));
        }
        let students = names("/host_error/students");
        let kinds = contract_cases("variant", "error");
        assert_eq!(kinds.len(), 5, "{kinds:?}");
        for kind in kinds {
            let detail = "the host says why".to_string();
            let error = match kind.as_str() {
                "refused" => Error::Refused(detail),
                "not-found" => Error::NotFound(detail),
                "submission-state" => Error::SubmissionState(detail),
                "sandbox-lost" => Error::SandboxLost(detail),
                "too-large" => Error::TooLarge(detail),
                other => panic!("the Rust SDK has no error {other}"),
            };
            assert_eq!(error.kind(), kind);
            assert_eq!(error.detail(), "the host says why");
            assert_eq!(error.is_students(), students.contains(&kind), "{kind}");
        }
        assert_eq!(names("/host_error/fields"), ["kind", "detail", "students"]);
    }

    /// The feedback on a wrong output every SDK gives (graders/spec).
    #[test]
    fn the_shared_difference_vectors() {
        let text = include_str!("../../spec/comparators.json");
        let spec: serde_json::Value = serde_json::from_str(text).expect("vectors");
        let vectors = spec["differences"].as_array().expect("a difference list");
        assert!(vectors.len() >= 12, "{} vectors", vectors.len());
        let mut wrong = Vec::new();
        for v in vectors {
            let text = |key: &str| v[key].as_str().expect(key).to_string();
            let shown = match text("visibility").as_str() {
                "visible" => Visibility::Visible,
                "after-due-date" => Visibility::AfterDueDate,
                "after-published" => Visibility::AfterPublished,
                "hidden" => Visibility::Hidden,
                other => panic!("unknown visibility {other}"),
            };
            let (e, g) = (text("expected"), text("got"));
            let got = lines::first_difference(&e, &g, shown);
            if got != text("feedback") {
                wrong.push(format!("{shown:?}: {got:?} where {:?}", text("feedback")));
            }
            let result = Test::new("t", 1.0).visibility(shown).wrong_output(&e, &g);
            assert_eq!(result.output, format!("wrong output: {}", text("feedback")));
            assert!(matches!(result.verdict, Verdict::Wrong) && result.score == 0.0);
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn comparisons() {
        assert!(compare::exact("a\n", "a\n"));
        assert!(!compare::exact("a\n", "a"));
        assert!(compare::ignoring_whitespace("1 2\n3", " 1\t2 3 \n"));
        assert!(!compare::ignoring_whitespace("1 2", "1 2 3"));
        assert!(compare::numeric("3.14159 ok", "3.1416 ok", 1e-3));
        assert!(!compare::numeric("3.14", "3.2", 1e-3));
        assert!(!compare::numeric("nan", "1", 1.0));
    }

    /// The vectors every SDK is tested against (graders/spec).
    /// The same clipping in every SDK and the host (`graders/spec` tests
    /// the other two against the same values).
    #[test]
    fn feedback_is_clipped_like_the_host_clips_it() {
        assert_eq!(clip_feedback("short"), "short");
        let note = "\n[agh: feedback clipped to 64 KiB; 4464 more bytes not shown]";
        let clipped = clip_feedback(&"a".repeat(70000));
        assert_eq!(clipped, "a".repeat(65536 - note.len()) + note);
        let wide = clip_feedback(&"\u{e9}".repeat(40000));
        assert!(wide.len() <= MAX_FEEDBACK_BYTES);
        assert!(
            wide.ends_with("14464 more bytes not shown]"),
            "{}",
            &wide[wide.len() - 80..]
        );
        let test = Test::new("t", 1.0).failed(Verdict::Wrong, &"b".repeat(70000));
        assert_eq!(test.output.len(), MAX_FEEDBACK_BYTES);
    }

    #[test]
    fn the_shared_comparator_vectors() {
        let text = include_str!("../../spec/comparators.json");
        let spec: serde_json::Value = serde_json::from_str(text).expect("vectors");
        let vectors = spec["vectors"].as_array().expect("a vector list");
        assert!(vectors.len() >= 30, "{} vectors", vectors.len());
        let mut wrong = Vec::new();
        for v in vectors {
            let (e, g) = (
                v["expected"].as_str().expect("expected"),
                v["got"].as_str().expect("got"),
            );
            let tolerance = v["tolerance"].as_f64().unwrap_or(1e-6);
            let name = v["comparator"].as_str().expect("comparator");
            let got = match name {
                "exact" => compare::exact(e, g),
                "ignoring_whitespace" => compare::ignoring_whitespace(e, g),
                "numeric" => compare::numeric(e, g, tolerance),
                "lines_same" => lines::same(e, g),
                "lines_same_unordered" => lines::same_unordered(e, g),
                other => panic!("unknown comparator {other}"),
            };
            if got != v["equal"].as_bool().expect("equal") {
                wrong.push(format!("{name}({e:.40?}, {g:.40?}) gave {got}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
