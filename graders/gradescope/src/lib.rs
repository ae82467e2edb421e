//! `builtin:gradescope`: a Gradescope autograder, unchanged, under agh.
//!
//! The image (`agh gradescope build ZIP`) holds the autograder as
//! Gradescope lays it out, kept at [`PRISTINE`] because `/autograder` is a
//! writable place of this grader's own (contract 0.3.0), empty in every
//! fresh sandbox. For each submission the grader, as the grader user:
//!
//! 1. copies the autograder into `/autograder`, the submission into
//!    `/autograder/submission`, and a synthesized
//!    `/autograder/submission_metadata.json`;
//! 2. runs `/autograder/run_autograder` from `/autograder`, as the grader
//!    user (never root), under the course's limits;
//! 3. once every process of that command is gone, reads
//!    `/autograder/results/results.json` (links refused) and maps it
//!    (`results`).
//!
//! A missing or malformed results.json scores 0 with Gradescope's message
//! and the reason agh saw (time, memory, exit status).
//!
//! Settings (`[settings]` in agh.toml): `image` (the built image, required),
//! `timeout` (seconds for run_autograder; 600, as Gradescope), `memory_mb`
//! (1536), `total_points` (the assignment's points, for the metadata and
//! for a results.json without tests), `assignment_title`, `due_date`.

mod results;

wit_bindgen::generate!({
    path: "../../wit/0.3.0",
    world: "grader-plugin",
});

use agh::grader::types::{
    Budget, Command, CommandResult, Error, GradeContext, GradeError, GraderInfo, Limits, Place,
    Report, TestResult, User, Verdict, Visibility,
};
use agh::grader::{log, sandbox};
use exports::agh::grader::grader::Guest;
use results::{Results, Shown};

/// Where the image keeps the autograder as built (`/autograder` of the
/// image build, after `setup.sh`).
const PRISTINE: &str = "/usr/share/agh-gradescope/autograder";
/// The writable place the autograder runs in.
const PLACE: &str = "/autograder";
const RESULTS: &str = "/autograder/results/results.json";
const METADATA: &str = "/grader/submission_metadata.json";
/// Most bytes of results.json read.
const MAX_RESULTS_BYTES: u64 = 4 * 1024 * 1024;
/// Gradescope's words for a run that left no usable results.json.
const FAILED: &str = "The autograder failed to execute correctly. Please ensure that your \
                      submission is valid. Contact your course staff for help in debugging \
                      this issue.";
const MIB: u64 = 1024 * 1024;

fn setting<'a>(settings: &'a [(String, String)], key: &str) -> Option<&'a str> {
    settings
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn number(settings: &[(String, String)], key: &str) -> Option<u64> {
    setting(settings, key).and_then(|v| v.trim().parse().ok())
}

struct Gradescope;

impl Guest for Gradescope {
    fn describe(settings: Vec<(String, String)>) -> GraderInfo {
        let timeout_ms = number(&settings, "timeout")
            .unwrap_or(600)
            .saturating_mul(1000);
        let memory = number(&settings, "memory_mb")
            .unwrap_or(1536)
            .saturating_mul(MIB);
        GraderInfo {
            name: "gradescope".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            api_version: "0.3.0".into(),
            // No default: the image is the course's own build. Without it
            // the policy refuses "agh/gradescope:unset" by name.
            image: setting(&settings, "image")
                .unwrap_or("agh/gradescope:unset")
                .into(),
            limits: Limits {
                wall_time_ms: timeout_ms.max(1),
                memory_bytes: memory,
                processes: 256,
                output_bytes: MIB,
                file_size_bytes: 256 * MIB,
                tmpfs_bytes: (memory / 3).max(64 * MIB),
            },
            budget: Budget {
                fuel: 20_000_000_000,
                wall_time_ms: 120_000,
            },
            assets: Vec::new(),
            places: vec![Place {
                path: PLACE.into(),
                owner: User::Grader,
            }],
        }
    }

    fn grade(context: GradeContext) -> Result<Report, GradeError> {
        let settings = &context.settings;
        sandbox::write_file(METADATA, metadata(&context).as_bytes(), true)
            .map_err(|e| GradeError::Grader(format!("writing {METADATA}: {}", said(&e))))?;
        let laid_out = run(
            vec![
                "/bin/sh".into(),
                "-c".into(),
                LAY_OUT.into(),
                "lay-out".into(),
                PRISTINE.into(),
            ],
            None,
        )?;
        if laid_out.exit_code != Some(0) {
            return Err(GradeError::Grader(format!(
                "laying out /autograder failed (is the image built by `agh gradescope build`?): {}",
                String::from_utf8_lossy(&laid_out.stderr).trim()
            )));
        }
        let timeout_ms = number(settings, "timeout")
            .unwrap_or(600)
            .saturating_mul(1000);
        let ran = run(
            vec!["/autograder/run_autograder".into()],
            Some(timeout_ms.max(1)),
        )?;
        let stdout = String::from_utf8_lossy(&ran.stdout).into_owned();
        log::log(
            log::Level::Info,
            &format!(
                "run_autograder: exit {:?}, signal {:?}, {} ms; its stdout is in the transcript \
                 (agh show), for staff",
                ran.exit_code, ran.signal, ran.wall_time_ms
            ),
        );
        // The command is over and every process it started is gone: what is
        // in the file now is what the autograder (or the code it ran) left.
        let read = sandbox::read_file(RESULTS, MAX_RESULTS_BYTES);
        let parsed = match read {
            Ok(bytes) => results::parse(&bytes),
            Err(e) => Err(said(&e)),
        };
        let total = setting(settings, "total_points").and_then(|p| p.trim().parse::<f64>().ok());
        Ok(match parsed {
            Ok(results) => report(results, &ran, &stdout, total),
            Err(why) => failed(&ran, &why, total),
        })
    }
}

/// Lays out `/autograder` as Gradescope does, from the image's pristine
/// copy (`$1`): run as the grader user, so every file is the grader's, and
/// `/autograder` stays the grader's alone (a program run as the student
/// reads none of the tests or expected outputs).
const LAY_OUT: &str = r#"set -eu
cp -R --preserve=mode,timestamps "$1"/. /autograder/
chmod 700 /autograder
if [ ! -e /autograder/run_autograder ] && [ -f /autograder/source/run_autograder ]; then
  cp /autograder/source/run_autograder /autograder/run_autograder
fi
chmod u+x /autograder/run_autograder
mkdir -p /autograder/results /autograder/submission
cp -R /work/. /autograder/submission/
cp /grader/submission_metadata.json /autograder/submission_metadata.json
"#;

fn run(argv: Vec<String>, wall_time_ms: Option<u64>) -> Result<CommandResult, GradeError> {
    sandbox::run(&Command {
        argv,
        stdin: Vec::new(),
        cwd: Some(PLACE.into()),
        env: vec![("HOME".into(), PLACE.into())],
        user: User::Grader,
        wall_time_ms,
        output_bytes: None,
    })
    .map_err(|e| match e {
        // The student's processes brought the sandbox down.
        Error::SandboxLost(m) | Error::SubmissionState(m) => GradeError::Submission(m),
        other => GradeError::Grader(said(&other)),
    })
}

fn said(error: &Error) -> String {
    match error {
        Error::Refused(m)
        | Error::NotFound(m)
        | Error::SubmissionState(m)
        | Error::SandboxLost(m)
        | Error::TooLarge(m) => m.clone(),
    }
}

/// What agh saw of the run, in words, for a run that left no results.
fn why_no_results(ran: &CommandResult) -> String {
    if ran.timed_out || ran.cpu_time_exceeded {
        format!(
            "run_autograder ran out of time after {} ms",
            ran.wall_time_ms
        )
    } else if ran.out_of_memory {
        "run_autograder ran out of memory".into()
    } else if let Some(signal) = &ran.signal {
        format!("run_autograder was killed by {signal}")
    } else {
        match ran.exit_code {
            Some(0) | None => "run_autograder exited without writing results".into(),
            Some(code) => format!("run_autograder exited with status {code}"),
        }
    }
}

/// Gradescope's failure, scored 0 out of the assignment's points.
fn failed(ran: &CommandResult, why: &str, total: Option<f64>) -> Report {
    let verdict = ran.verdict.unwrap_or(Verdict::RuntimeError);
    Report {
        tests: vec![TestResult {
            name: "autograder".into(),
            score: 0.0,
            max_score: total.unwrap_or(0.0).max(0.0),
            verdict,
            output: format!("{FAILED}\n\n({}; {why})", why_no_results(ran)),
            visibility: Visibility::Visible,
        }],
        output: FAILED.into(),
        score: None,
    }
}

fn visibility(shown: Shown) -> Visibility {
    match shown {
        Shown::Visible => Visibility::Visible,
        Shown::AfterDueDate => Visibility::AfterDueDate,
        Shown::AfterPublished => Visibility::AfterPublished,
        Shown::Hidden => Visibility::Hidden,
    }
}

fn report(results: Results, ran: &CommandResult, stdout: &str, total: Option<f64>) -> Report {
    let mut tests: Vec<TestResult> = results
        .tests
        .into_iter()
        .map(|t| TestResult {
            name: t.name,
            score: t.score,
            max_score: t.max_score,
            verdict: if t.passed {
                Verdict::Accepted
            } else {
                Verdict::Wrong
            },
            output: t.output,
            visibility: visibility(t.shown),
        })
        .collect();
    let mut score = results.score;
    if tests.is_empty() {
        // Only a total: one test carries it, out of the assignment's points.
        let earned = score.take().unwrap_or(0.0);
        let max_score = total.unwrap_or(earned.max(0.0)).max(0.0);
        tests.push(TestResult {
            name: "autograder".into(),
            score: earned,
            max_score,
            verdict: if earned >= max_score {
                Verdict::Accepted
            } else {
                Verdict::Wrong
            },
            output: String::new(),
            visibility: Visibility::Visible,
        });
    }
    let mut output = results.output;
    if results.dropped > 0 {
        output.push_str(&format!(
            "\n[agh: {} more tests in results.json were left out; at most {}]",
            results.dropped,
            results::MAX_TESTS
        ));
    }
    if results.stdout_visible && !stdout.is_empty() {
        output.push_str("\n\nAutograder output:\n");
        output.push_str(stdout);
        if ran.stdout_truncated {
            output.push_str("\n[agh: output cut at the cap]");
        }
    }
    Report {
        tests,
        output,
        score,
    }
}

/// Escapes `text` as a JSON string.
fn json(text: &str) -> String {
    serde_json::Value::String(text.into()).to_string()
}

/// Gradescope's `submission_metadata.json`, synthesized: the submission's
/// name stands for its one user and its id; the assignment comes from the
/// settings; `created_at` is the grading's start (agh's pinned clock).
fn metadata(context: &GradeContext) -> String {
    let settings = &context.settings;
    let name = &context.submission;
    let title = setting(settings, "assignment_title").unwrap_or("assignment");
    let due = setting(settings, "due_date").map_or("null".into(), json);
    let total = setting(settings, "total_points")
        .and_then(|p| p.trim().parse::<f64>().ok())
        .map_or("null".into(), |p| p.to_string());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "{{\"id\": {id}, \"created_at\": {created}, \"submission_method\": \"upload\", \
         \"assignment\": {{\"title\": {title}, \"due_date\": {due}, \"total_points\": {total}}}, \
         \"users\": [{{\"name\": {user}, \"email\": null, \"id\": {id}}}], \
         \"previous_submissions\": []}}\n",
        id = json(name),
        created = json(&rfc3339(now)),
        title = json(title),
        user = json(name),
    )
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SS+00:00`.
fn rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+00:00",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

export!(Gradescope);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_as_gradescope_writes_them() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(rfc3339(1_798_761_599), "2026-12-31T23:59:59+00:00");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00+00:00");
    }

    #[test]
    fn the_metadata_is_json_whatever_the_names_hold() {
        let context = GradeContext {
            submission: "ann \"the\" \\ student".into(),
            settings: vec![("assignment_title".into(), "hw\n1".into())],
        };
        let text = metadata(&context);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["users"][0]["name"], "ann \"the\" \\ student");
        assert_eq!(value["assignment"]["title"], "hw\n1");
    }
}
