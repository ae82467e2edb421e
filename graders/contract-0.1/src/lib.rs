//! A grader written against `agh:grader@0.1.0` with bare bindings, as a
//! grader built before 0.2.0 was: agh must go on grading with it.
//!
//! The submission's `answer.txt` is run through `cat` in the sandbox and
//! must read `42`.

wit_bindgen::generate!({
    path: "../../wit/0.1.0",
    world: "grader-plugin",
});

use agh::grader::sandbox;
use agh::grader::types::{
    Command, GradeContext, GraderInfo, Limits, Report, TestResult, User, Verdict, Visibility,
};
use exports::agh::grader::grader::Guest;

struct Answer;

impl Guest for Answer {
    fn describe(_settings: Vec<(String, String)>) -> GraderInfo {
        GraderInfo {
            name: "answer".into(),
            version: "1.0.0".into(),
            api_version: "0.1.0".into(),
            image: "agh/busybox:1".into(),
            limits: Limits {
                wall_time_ms: 5_000,
                memory_bytes: 128 * 1024 * 1024,
                processes: 16,
                output_bytes: 4096,
                file_size_bytes: 1024 * 1024,
                tmpfs_bytes: 16 * 1024 * 1024,
            },
            assets: Vec::new(),
        }
    }

    fn grade(_context: GradeContext) -> Result<Report, String> {
        let run = sandbox::run(&Command {
            argv: vec!["cat".into(), "/work/answer.txt".into()],
            stdin: Vec::new(),
            cwd: None,
            env: Vec::new(),
            user: User::Student,
            wall_time_ms: None,
            output_bytes: None,
        })
        .map_err(|e| format!("{e:?}"))?;
        let right = run.exit_code == Some(0) && String::from_utf8_lossy(&run.stdout).trim() == "42";
        Ok(Report {
            tests: vec![TestResult {
                name: "the answer".into(),
                score: if right { 1.0 } else { 0.0 },
                max_score: 1.0,
                verdict: if right {
                    Verdict::Accepted
                } else {
                    Verdict::Wrong
                },
                output: String::new(),
                visibility: Visibility::Visible,
            }],
            output: String::new(),
        })
    }
}

export!(Answer);
