//! `agh check`: the grader gate, printed for its author.

use super::*;
use agh::check::{self, CheckReport, CheckRequest, Finding};
use agh::names::for_terminal;

#[derive(Debug, Args)]
pub(super) struct CheckArgs {
    /// The grader to check.
    #[arg(long)]
    plugin: PathBuf,
    /// The operator's configuration (agh.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// A folder holding expected.toml (each sample's score) and the samples in submissions/.
    #[arg(long)]
    samples: PathBuf,
    /// A new folder that keeps every grading, for agh show (default: a temporary one, removed).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Submissions graded at once.
    #[arg(short = 'j', long)]
    jobs: Option<usize>,
    /// The report as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) async fn check_command(args: CheckArgs) -> Outcome {
    let config = match load_config(args.config.as_ref()) {
        Ok(config) => config,
        Err(outcome) => return outcome,
    };
    let temporary = match &args.out {
        Some(_) => None,
        None => match tempfile::Builder::new().prefix("agh-check-").tempdir() {
            Ok(dir) => Some(dir),
            Err(err) => {
                eprintln!("agh check: cannot make a temporary folder: {err}");
                return Outcome::Infra;
            }
        },
    };
    let out = args
        .out
        .clone()
        .or_else(|| temporary.as_ref().map(|t| t.path().join("check")))
        .unwrap_or_default();
    let request = CheckRequest {
        plugin: args.plugin,
        config,
        samples: args.samples,
        out,
        jobs: args.jobs.unwrap_or_else(batch::default_jobs),
    };
    let report = match check::check(request, |step| eprintln!("agh check: {step}")).await {
        Ok(report) => report,
        Err(err) => {
            eprintln!("agh check: {err}");
            return Outcome::from(err.blame());
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print_report(&report, temporary.is_none());
    }
    if report.passed() {
        Outcome::Success
    } else {
        Outcome::Found
    }
}

fn print_findings(findings: &[Finding]) {
    for finding in findings {
        println!(
            "  {:4}  {:<32} {:>6}/{:<6} {:<18} {}",
            if finding.ok { "ok" } else { "FAIL" },
            for_terminal(&finding.name),
            finding.score,
            finding.max_score,
            finding.status,
            finding
                .why
                .as_deref()
                .map_or_else(|| finding.what.as_str().into(), for_terminal)
        );
    }
}

fn print_report(report: &CheckReport, kept: bool) {
    println!("grader: {}", for_terminal(&report.grader));
    println!("samples ({}), each graded twice:", report.samples.len());
    print_findings(&report.samples);
    println!(
        "stock attacks for {}, made from {}, each graded twice:",
        report.language.name(),
        for_terminal(&report.base)
    );
    print_findings(&report.attacks);
    if report.unstable.is_empty() {
        println!("determinism: every submission scored the same both times");
    } else {
        println!("determinism: graded differently the second time:");
        for unstable in &report.unstable {
            println!(
                "  FAIL  {:<32} {}",
                for_terminal(&unstable.name),
                unstable.how
            );
        }
    }
    let mut ms: Vec<f64> = report.cost.iter().map(|c| c.grader_ms).collect();
    let mut fuel: Vec<u64> = report.cost.iter().map(|c| c.fuel).collect();
    ms.sort_by(f64::total_cmp);
    fuel.sort_unstable();
    if let (Some(ms_max), Some(fuel_max)) = (ms.last(), fuel.last()) {
        println!(
            "grader's own cost per submission: median {:.1} ms, most {ms_max:.1} ms; fuel median {}, most {fuel_max}",
            ms[ms.len() / 2],
            fuel[fuel.len() / 2]
        );
    }
    if kept {
        println!(
            "every grading is kept in {} (agh show {}/samples-1 NAME)",
            report.out.display(),
            report.out.display()
        );
    }
    let failures = report.failures();
    if failures.is_empty() {
        println!("PASSED: the grader is fit to grade");
    } else {
        println!("FAILED: {} problem(s):", failures.len());
        for failure in failures {
            println!("  {}", for_terminal(&failure));
        }
    }
}
