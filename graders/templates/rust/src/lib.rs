//! The grader of an exercise: the student's `solution.py` reads numbers
//! and prints their sum. Each case `NAME.in` of the course files is fed to
//! it, and its output compared with `NAME.out` here, in the grader:
//! expected outputs never enter the sandbox.

use agh_grader::{Cmd, GradeContext, GradeError, Grader, GraderInfo, Report, Test};

struct Exercise;

impl Grader for Exercise {
    fn describe(_settings: Vec<(String, String)>) -> GraderInfo {
        let mut info = agh_grader::info("exercise", "0.1.0", "agh/python-c:1");
        info.limits.wall_time_ms = 2_000;
        // Read by the grader only; never placed in the sandbox.
        info.assets
            .push(agh_grader::asset("cases", "course:cases", "/grader/cases"));
        info
    }

    fn grade(_context: GradeContext) -> Result<Report, GradeError> {
        let mut names: Vec<String> = agh_grader::asset_files("cases")?
            .into_iter()
            .filter_map(|f| f.strip_suffix(".in").map(String::from))
            .collect();
        names.sort();
        let mut tests = Vec::new();
        for name in names {
            let input = agh_grader::asset_file("cases", &format!("{name}.in"))?;
            let expected = agh_grader::asset_file("cases", &format!("{name}.out"))?;
            let expected = String::from_utf8_lossy(&expected);
            let run = Cmd::new(["python3", "/work/solution.py"]).stdin(input).run()?;
            let test = Test::new(&name, 1.0);
            tests.push(if !run.succeeded() {
                test.failed_with(&run, &run.stderr_text())
            } else if agh_grader::compare::ignoring_whitespace(&expected, &run.stdout_text()) {
                test.passed("")
            } else {
                test.wrong_output(&expected, &run.stdout_text())
            });
        }
        Ok(Report {
            tests,
            output: String::new(),
        })
    }
}

agh_grader::export_grader!(Exercise);
