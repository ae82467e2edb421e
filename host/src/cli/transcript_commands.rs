//! The commands over recorded gradings: `show` (a transcript for staff),
//! `rescore` (a grader against transcripts, no sandboxes) and `diff` (what
//! changed between two output folders).

use super::*;
use agh::names::for_terminal;
use agh::transcript::rescore::{How, RescoreRequest};
use agh::transcript::{TranscriptDir, show};

#[derive(Debug, Args)]
pub(super) struct ShowArgs {
    /// The output folder of agh grade.
    out: PathBuf,
    /// The submission.
    name: String,
    /// Every byte of each stream, not the first 2 KiB.
    #[arg(long)]
    full: bool,
    /// The result and the transcript's entries as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn show_command(args: &ShowArgs) -> Outcome {
    match show::load(&args.out, &args.name) {
        Ok((result, entries)) => {
            if args.json {
                let value = json!({ "result": result, "transcript": entries });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).unwrap_or_default()
                );
            } else {
                print!(
                    "{}",
                    show::render(&TranscriptDir::new(&args.out), &result, &entries, args.full)
                );
            }
            Outcome::Success
        }
        Err(err) => {
            eprintln!("agh show: {err}");
            Outcome::Usage
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct RescoreArgs {
    /// The grader to rescore with (changed or not).
    #[arg(long)]
    plugin: PathBuf,
    /// The operator's configuration (agh.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The output folder whose transcripts are replayed.
    #[arg(long)]
    from: PathBuf,
    /// The new output folder.
    #[arg(long)]
    out: PathBuf,
    /// Never start a sandbox: list the submissions that would need one.
    #[arg(long)]
    no_sandbox: bool,
    /// The report as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) async fn rescore_command(args: RescoreArgs) -> Outcome {
    let config = match load_config(args.config.as_ref()) {
        Ok(config) => config,
        Err(outcome) => return outcome,
    };
    let request = RescoreRequest {
        plugin: args.plugin,
        config,
        from: args.from,
        out: args.out.clone(),
        sandbox: !args.no_sandbox,
    };
    let report = match agh::transcript::rescore::rescore(request).await {
        Ok(report) => report,
        Err(err) => {
            eprintln!("agh rescore: {err}");
            return Outcome::Usage;
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        let mut counts = std::collections::BTreeMap::<&str, usize>::new();
        for (name, how) in &report.submissions {
            let label = match how {
                How::Replayed => "replayed",
                How::Carried => "carried over",
                How::Graded(why) => {
                    println!(
                        "{}: graded in a sandbox ({})",
                        for_terminal(name),
                        for_terminal(why)
                    );
                    "graded in a sandbox"
                }
                How::NeedsSandbox(why) => {
                    println!(
                        "{}: needs a sandbox ({})",
                        for_terminal(name),
                        for_terminal(why)
                    );
                    "need a sandbox"
                }
                How::Refused(why) => {
                    println!("{}: refused ({})", for_terminal(name), for_terminal(why));
                    "refused"
                }
            };
            *counts.entry(label).or_default() += 1;
        }
        let summary: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
        println!(
            "rescored {} submission(s) into {}: {}; {} sandbox(es) started",
            report.submissions.len(),
            args.out.display(),
            summary.join(", "),
            report.sandboxes
        );
    }
    if report.complete() {
        Outcome::Success
    } else {
        eprintln!("agh rescore: some submissions have no result in the new folder (listed above)");
        Outcome::Usage
    }
}

#[derive(Debug, Args)]
pub(super) struct DiffArgs {
    /// The folder before (the published grades).
    before: PathBuf,
    /// The folder after (the regrade or rescore to review).
    after: PathBuf,
    /// The differences as JSON.
    #[arg(long)]
    json: bool,
}

/// Exits 0 when nothing changed, 1 when something did (as diff(1) does).
pub(super) fn diff_command(args: &DiffArgs) -> Outcome {
    let load = |dir: &PathBuf| {
        agh::batch::journal::load_results(dir).map_err(|err| {
            eprintln!("agh diff: {err}");
            Outcome::Usage
        })
    };
    let (before, after) = match (load(&args.before), load(&args.after)) {
        (Ok(before), Ok(after)) => (before, after),
        (Err(outcome), _) | (_, Err(outcome)) => return outcome,
    };
    let diff = agh::report::diff::diff(&before, &after);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&diff).unwrap_or_default()
        );
    } else {
        print!("{}", agh::report::diff::render(&diff));
    }
    if diff.changed.is_empty() {
        Outcome::Success
    } else {
        Outcome::Found
    }
}

#[derive(Debug, Args)]
pub(super) struct ReportArgs {
    /// The output folder of agh grade or agh rescore.
    out: PathBuf,
    /// Write one self-contained HTML page for staff here.
    #[arg(long)]
    html: PathBuf,
}

pub(super) fn report_command(args: &ReportArgs) -> Outcome {
    let results = match batch::journal::load_results(&args.out) {
        Ok(results) => results,
        Err(err) => {
            eprintln!("agh report: {err}");
            return Outcome::from(err.blame());
        }
    };
    let page = agh::report::html::render(&args.out, &results);
    let dir = match args.html.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match agh::layout::write_atomic(&dir, &args.html, page.as_bytes()) {
        Ok(()) => {
            eprintln!(
                "agh report: {} submissions in {}",
                results.len(),
                args.html.display()
            );
            Outcome::Success
        }
        Err(err) => {
            eprintln!("agh report: writing {}: {err}", args.html.display());
            Outcome::Infra
        }
    }
}
