//! `agh plan`, `agh grade`, `agh export` and `agh merge`.

use super::*;
use agh::batch::run::{Ending, Event, RunRequest, Submissions};
use agh::grading;
use agh::names::for_terminal;

#[derive(Debug, Args)]
pub(super) struct PlanArgs {
    /// The grader component (.wasm).
    #[arg(long)]
    plugin: PathBuf,
    /// The operator's configuration (agh.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also resolve every declared asset (fetching S3 objects into the
    /// cache) and print their digests: a preflight before a batch.
    #[arg(long)]
    resolve: bool,
}

#[derive(Debug, Args)]
pub(super) struct GradeArgs {
    /// The grader component (.wasm).
    #[arg(long)]
    plugin: PathBuf,
    /// One submission: a folder, or a zip or tarball.
    #[arg(
        long,
        conflicts_with = "submissions",
        required_unless_present = "submissions"
    )]
    submission: Option<PathBuf>,
    /// A folder holding one folder, zip or tarball per submission.
    #[arg(long)]
    submissions: Option<PathBuf>,
    /// Where to write one result JSON per submission.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// The operator's configuration (agh.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Submissions graded at once (default: two per core, at most one per GiB of memory).
    #[arg(short = 'j', long)]
    jobs: Option<usize>,
    /// Use plain runc instead of gVisor. Insecure: recorded in every result.
    #[arg(long)]
    insecure_runc: bool,
    /// Label for this batch's containers (default: process id and time).
    #[arg(long)]
    batch_id: Option<String>,
    /// Continue the batch recorded in --out: skip submissions already graded.
    #[arg(long, requires = "out")]
    resume: bool,
    /// Grade everything again, replacing the results in --out.
    #[arg(long, requires = "out", conflicts_with = "resume")]
    regrade: bool,
    /// Also write these formats into --out (repeatable).
    #[arg(long = "format", value_enum, requires = "out")]
    formats: Vec<FormatArg>,
    /// Grade only shard K of N (1-based), a stable share by submission name.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
}

#[derive(Debug, Args)]
pub(super) struct ExportArgs {
    /// An output folder of `agh grade --out`.
    #[arg(long)]
    from: PathBuf,
    /// Where to write (default: the same folder).
    #[arg(long)]
    to: Option<PathBuf>,
    /// Formats to write (repeatable).
    #[arg(long = "format", value_enum, required = true)]
    formats: Vec<FormatArg>,
}

#[derive(Debug, Args)]
pub(super) struct MergeArgs {
    /// The merged output folder (must not hold a batch).
    #[arg(long)]
    out: PathBuf,
    /// Output folders of shards of one batch.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

pub(super) async fn plan_command(args: PlanArgs) -> Outcome {
    let config = match load_config(args.config.as_ref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let checked = match grading::check_plan(
        &args.plugin,
        &config,
        args.resolve,
        &mut print_load_notice,
    )
    .await
    {
        Ok(checked) => checked,
        Err(err) => return batch_error_exit(&err),
    };
    let grading::PlanCheck {
        plan,
        image: image_check,
        resolved,
    } = checked;
    let d = &plan.description;
    if args.json {
        let printed = json!({
            "grader": { "name": d.name, "version": d.version, "sha256": plan.grader.sha256() },
            "load": {
                "cached": plan.grader.load_stats().cached,
                "load_ms": plan.grader.load_stats().load_time.as_secs_f64() * 1000.0,
            },
            "requested": { "image": d.request.image, "limits": d.request.limits, "assets": d.request.assets },
            "allowed": plan.effective,
            "image": image_check,
            "runtime": config.runtime,
            "wall_multiple": config.wall_multiple,
            "resolved_assets": resolved.iter().map(|a| json!({
                "name": a.grant.name,
                "sha256": a.digest(),
                "files": a.files,
                "stale": a.stale,
                "unavailable": a.unavailable,
            })).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&printed).unwrap_or_default()
        );
        return Outcome::Success;
    }
    println!(
        "grader   {} {} (sha256 {})",
        d.name,
        d.version,
        plan.grader.sha256()
    );
    let stats = plan.grader.load_stats();
    println!(
        "loaded   in {:.1} ms ({})",
        stats.load_time.as_secs_f64() * 1000.0,
        if stats.cached {
            "compiled cache"
        } else {
            "compiled now"
        }
    );
    println!("image    {} ({image_check})", plan.effective.image);
    println!("runtime  {}", config.runtime.docker_name());
    let l = &plan.effective.limits;
    println!(
        "limits   time {} (cpu time {}, wall clock {}) | memory {} | processes {} | cpu {:.2} | output {} | file {} | tmpfs {}",
        humantime::format_duration(l.wall_time),
        humantime::format_duration(l.cpu_time),
        humantime::format_duration(l.wall_time.saturating_mul(config.wall_multiple)),
        ByteSize(l.memory_bytes),
        l.processes,
        f64::from(l.millicpus) / 1000.0,
        ByteSize(l.output_bytes),
        ByteSize(l.file_size_bytes),
        ByteSize(l.tmpfs_bytes),
    );
    println!(
        "commands up to time {} | cpu time {} when a grader asks",
        humantime::format_duration(plan.effective.longest.wall_time),
        humantime::format_duration(plan.effective.longest.cpu_time),
    );

    let budget = plan.effective.budget;
    println!(
        "grader   contract agh:grader@{} | fuel {:.1} billion | wall {} per submission",
        plan.grader.contract(),
        budget.fuel as f64 / 1e9,
        humantime::format_duration(budget.wall_time),
    );
    let bound = grading::SlotBound::new(&config, &budget);
    let show = |d: std::time::Duration| humantime::format_duration(d).to_string();
    println!(
        "bound    a submission holds a grading slot at most {} (start {} + copy {} + grader {} + its commands {} + teardown {})",
        show(bound.total()),
        show(bound.start),
        show(bound.copy),
        show(bound.grader),
        show(bound.commands),
        show(bound.teardown),
    );
    for clamp in &plan.effective.clamped {
        println!("clamped  {clamp}");
    }
    for a in &resolved {
        let bytes: u64 = a.files.iter().map(|f| f.size).sum();
        let state = match (&a.unavailable, a.stale) {
            (Some(why), _) => format!("UNAVAILABLE: {why}"),
            (None, true) => "stale: served from the cache, storage unreachable".into(),
            (None, false) => "fresh".into(),
        };
        println!(
            "resolved {}: {} files, {} ({state}), sha256 {}",
            a.grant.name,
            a.files.len(),
            ByteSize(bytes),
            a.digest()
        );
    }
    for a in &plan.effective.assets {
        let place = match &a.location {
            agh::config::SourceLocation::Local(root) => root.display().to_string(),
            agh::config::SourceLocation::S3(s3) => format!("s3://{}/{}", s3.bucket, s3.prefix),
        };
        println!(
            "asset    {} = {}:{} -> {} ({:?}, {place})",
            a.name, a.source, a.path, a.target, a.owner
        );
    }
    Outcome::Success
}

/// One submission per line: name, status, score, tests passed (of those
/// worth points), time.
fn print_table(results: &[SubmissionResult]) {
    let width = results
        .iter()
        .map(|r| r.submission.len())
        .max()
        .unwrap_or(10)
        .max(10);
    println!(
        "{:width$}  {:18}  {:>13}  {:>6}  {:>7}",
        "submission", "status", "score", "passed", "time"
    );
    for r in results {
        let status = r.status.name().to_string();
        // Tests worth no points inform; they are not passed or failed.
        let scored: Vec<_> = r.tests.iter().filter(|t| t.max_score > 0.0).collect();
        let passed = scored
            .iter()
            .filter(|t| t.status == TestStatus::Passed)
            .count();
        println!(
            "{:width$}  {:18}  {:>13}  {:>6}  {:>6.1}s",
            for_terminal(&r.submission),
            status,
            format!("{:.1}/{:.1}", r.score, r.max_score),
            format!("{passed}/{}", scored.len()),
            r.timings.total_ms as f64 / 1000.0,
        );
        if let Some(error) = &r.error {
            println!(
                "{:width$}    {}",
                "",
                for_terminal(error.lines().next().unwrap_or_default())
            );
        }
    }
}

/// A progress bar on a terminal, plain lines elsewhere.
pub(super) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    finished: usize,
    by_status: std::collections::BTreeMap<String, usize>,
    started: std::time::Instant,
}

impl Progress {
    fn new(total: usize, quiet: bool) -> Self {
        use std::io::IsTerminal;
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} (eta {eta})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Self {
            bar,
            total,
            finished: 0,
            by_status: Default::default(),
            started: std::time::Instant::now(),
        }
    }

    fn record(&mut self, result: &SubmissionResult, quiet: bool) {
        self.finished += 1;
        let status = result.status.name().to_string();
        *self.by_status.entry(status.clone()).or_default() += 1;
        let counts: Vec<String> = self
            .by_status
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        match &self.bar {
            Some(bar) => {
                bar.set_message(counts.join(" · "));
                bar.inc(1);
            }
            None if !quiet => {
                let per = self.started.elapsed().as_secs_f64() / self.finished as f64;
                let eta = per * (self.total - self.finished) as f64;
                eprintln!(
                    "[{}/{}] {} {status} {:.1}/{:.1} ({}; eta {eta:.0}s)",
                    self.finished,
                    self.total,
                    for_terminal(&result.submission),
                    result.score,
                    result.max_score,
                    counts.join(", ")
                );
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// Per-test pass rates across the batch's graded submissions.
fn print_pass_rates(results: &[SubmissionResult]) {
    let mut rates: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for result in results.iter().filter(|r| r.status == Status::Graded) {
        for test in &result.tests {
            let entry = rates.entry(&test.name).or_default();
            entry.1 += 1;
            if test.status == TestStatus::Passed {
                entry.0 += 1;
            }
        }
    }
    if rates.is_empty() {
        return;
    }
    println!("\ntest pass rates:");
    for (name, (passed, total)) in rates {
        println!(
            "  {:>5.1}%  {passed:>4}/{total:<4} {}",
            100.0 * passed as f64 / total as f64,
            for_terminal(name)
        );
    }
}

/// Says that a grader is being compiled (its first use takes seconds) and
/// how long it took.
fn print_load_notice(notice: agh::plugin::LoadNotice) {
    eprintln!("agh: {}", notice.line());
}

pub(super) async fn grade_command(args: GradeArgs) -> Outcome {
    let mut config = match load_config(args.config.as_ref()) {
        Ok(config) => config,
        Err(outcome) => return outcome,
    };
    if args.insecure_runc {
        config.runtime = Runtime::RuncInsecure;
    }
    if config.runtime == Runtime::RuncInsecure {
        eprintln!(
            "agh: WARNING: sandboxes run under plain runc, WITHOUT gVisor; every result records \"insecure\": true"
        );
    }
    let shard = match args
        .shard
        .as_deref()
        .map(batch::intake::parse_shard)
        .transpose()
    {
        Ok(shard) => shard,
        Err(err) => {
            eprintln!("agh: {err}");
            return Outcome::Usage;
        }
    };
    let submissions = match (args.submission, args.submissions) {
        (Some(one), _) => Submissions::One(one),
        (None, Some(many)) => Submissions::Folder(many),
        (None, None) => {
            eprintln!("agh: give --submission DIR or --submissions DIR");
            return Outcome::Usage;
        }
    };
    let request = RunRequest {
        plugin: args.plugin,
        config,
        submissions,
        shard,
        out: args.out,
        mode: match (args.resume, args.regrade) {
            (true, _) => OpenMode::Resume,
            (false, true) => OpenMode::Regrade,
            (false, false) => OpenMode::New,
        },
        batch_id: args.batch_id,
        jobs: args.jobs.unwrap_or_else(batch::default_jobs),
        formats: args.formats.into_iter().map(Format::from).collect(),
    };
    let json = args.json;
    let mut progress: Option<Progress> = None;
    let ran = batch::run::run(
        request,
        || async {
            let _ = tokio::signal::ctrl_c().await;
        },
        |event| match event {
            Event::Starting { total, todo } => {
                if todo < total {
                    eprintln!(
                        "agh: {} of {total} submission(s) already graded in this output folder; grading the other {todo}",
                        total - todo
                    );
                }
                progress = Some(Progress::new(todo, json));
            }
            Event::Loading(notice) => print_load_notice(notice),
            Event::LeftoversRemoved(removed) => eprintln!(
                "agh: removed {removed} container(s) left by an earlier run of this batch"
            ),
            Event::Graded(result) => {
                if let Some(progress) = progress.as_mut() {
                    progress.record(result, json);
                }
            }
            Event::WriteFailed(why) => {
                eprintln!("agh: {why}; stopping the batch (results already written are whole)");
            }
            Event::Interrupted => eprintln!(
                "agh: interrupted; letting submissions in flight finish (up to {}s; Ctrl-C again to stop now)",
                batch::run::INTERRUPT_GRACE.as_secs()
            ),
            Event::Warning(warning) => eprintln!("agh: {warning}"),
        },
    )
    .await;
    if let Some(progress) = &progress {
        progress.finish();
    }
    let report = match ran {
        Ok(report) => report,
        Err(err) => {
            eprintln!("agh: {err}");
            return Outcome::from(err.blame());
        }
    };
    let results = &report.results;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(results).unwrap_or_default()
        );
    } else {
        print_table(results);
        print_pass_rates(results);
    }
    match report.ending {
        Ending::Interrupted => {
            eprintln!("agh: stopped by Ctrl-C; run the same command with --resume to continue");
            Outcome::Interrupted
        }
        Ending::GraderBroken => {
            eprintln!(
                "agh: stopped after {} plugin errors (or Gradescope autograder runs that wrote no \
                 results) and no submission graded: the grader looks broken; fix it and grade \
                 again into a fresh output folder",
                batch::MAX_CONSECUTIVE_PLUGIN_ERRORS
            );
            Outcome::Grader
        }
        Ending::WriteFailed(why) => {
            eprintln!("agh: {why}");
            Outcome::Infra
        }
        Ending::Finished if results.iter().any(|r| r.status == Status::InfraError) => {
            Outcome::Infra
        }
        Ending::Finished if results.iter().any(|r| r.status == Status::PluginError) => {
            Outcome::Grader
        }
        Ending::Finished => Outcome::Success,
    }
}

pub(super) async fn export_command(args: ExportArgs) -> Outcome {
    // Results are read from, and exports written to, folders no other user
    // can change: a result swapped in there would be published as a grade.
    // The results folder is only checked; the export folder is made if need be.
    use agh::private_dir::{Purpose, check_dir_for, open_dir_for};
    let checked = check_dir_for(&args.from, Purpose::Output).and_then(|()| {
        args.to
            .as_deref()
            .map_or(Ok(()), |to| open_dir_for(to, Purpose::Output).map(drop))
    });
    if let Err(err) = checked {
        eprintln!("agh: {err}");
        return Outcome::Usage;
    }
    let results = match batch::journal::load_results(&args.from) {
        Ok(results) => results,
        Err(err) => {
            eprintln!("agh: {err}");
            return Outcome::from(err.blame());
        }
    };
    let to = args.to.as_ref().unwrap_or(&args.from);
    for format in &args.formats {
        match export::export(&results, Format::from(*format), to) {
            Ok(paths) => println!(
                "{format:?}: {} file(s), first {}",
                paths.len(),
                paths
                    .first()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
            Err(err) => {
                eprintln!("agh: exporting {format:?} to {}: {err}", to.display());
                return Outcome::Infra;
            }
        }
    }
    Outcome::Success
}

pub(super) async fn merge_command(args: MergeArgs) -> Outcome {
    match batch::merge::merge_folders(&args.inputs, &args.out) {
        Ok(count) => {
            println!(
                "merged {count} submission(s) from {} folder(s) into {}",
                args.inputs.len(),
                args.out.display()
            );
            Outcome::Success
        }
        Err(err) => {
            eprintln!("agh: {err}");
            Outcome::from(err.blame())
        }
    }
}
