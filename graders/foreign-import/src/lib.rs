//! A grader that imports an interface agh does not grant: it loads, and
//! calling the import ends the call as the grader's failure.

wit_bindgen::generate!({
    path: ["../../wit/0.2.0", "wit"],
    world: "example:net/grader-with-network",
    generate_all,
});

use agh::grader::types::{
    Budget, GradeContext, GradeError, GraderInfo, Limits, Report, TestResult, Verdict, Visibility,
};
use exports::agh::grader::grader::Guest;

struct Networked;

impl Guest for Networked {
    fn describe(_settings: Vec<(String, String)>) -> GraderInfo {
        GraderInfo {
            name: "networked".into(),
            version: "1.0.0".into(),
            api_version: "0.2.0".into(),
            image: "agh/busybox:1".into(),
            limits: Limits {
                wall_time_ms: 5_000,
                memory_bytes: 128 * 1024 * 1024,
                processes: 16,
                output_bytes: 4096,
                file_size_bytes: 1024 * 1024,
                tmpfs_bytes: 16 * 1024 * 1024,
            },
            budget: Budget {
                fuel: 1_000_000_000,
                wall_time_ms: 30_000,
            },
            assets: Vec::new(),
        }
    }

    fn grade(_context: GradeContext) -> Result<Report, GradeError> {
        let page = example::net::fetch::get("http://example.invalid/answers");
        Ok(Report {
            tests: vec![TestResult {
                name: "fetched".into(),
                score: 1.0,
                max_score: 1.0,
                verdict: Verdict::Accepted,
                output: page,
                visibility: Visibility::Visible,
            }],
            output: String::new(),
        })
    }
}

export!(Networked);
