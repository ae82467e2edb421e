//! `agh plan`, `agh grade`, `agh export` and `agh merge`.

use super::*;
use crate::names::for_terminal;

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
    formats: Vec<Format>,
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
    formats: Vec<Format>,
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

pub(super) async fn plan_command(args: PlanArgs) -> ExitCode {
    let config = match load_config(args.config.as_ref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let plan = match batch::plan(&args.plugin, &config).await {
        Ok(plan) => plan,
        Err(err) => return batch_error_exit(&err),
    };
    let missing = batch::missing_local_assets(&plan.effective);
    if !missing.is_empty() {
        return batch_error_exit(&BatchError::Assets(missing));
    }
    let image_check = match sandbox::connect().await {
        Ok(docker) => match batch::image_present(&docker, &plan.effective.image).await {
            Ok(_) => "present".to_string(),
            Err(err @ BatchError::Policy(_)) => return batch_error_exit(&err),
            Err(err) => format!("not checked: {err}"),
        },
        Err(err) => format!("not checked: {err}"),
    };
    let resolved = if args.resolve {
        let cache = match batch::open_asset_cache(&config) {
            Ok(cache) => cache,
            Err(err) => return batch_error_exit(&err),
        };
        match assets::resolve_all(&plan.effective.assets, Some(&cache), S3Timeouts::default()).await
        {
            Ok(resolved) => resolved,
            Err(problems) => return batch_error_exit(&BatchError::Assets(problems)),
        }
    } else {
        Vec::new()
    };
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
        return ExitCode::SUCCESS;
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
        "limits   wall {} | cpu time {} | memory {} | processes {} | cpu {:.2} | output {} | file {} | tmpfs {}",
        humantime::format_duration(l.wall_time),
        humantime::format_duration(l.cpu_time),
        ByteSize(l.memory_bytes),
        l.processes,
        f64::from(l.millicpus) / 1000.0,
        ByteSize(l.output_bytes),
        ByteSize(l.file_size_bytes),
        ByteSize(l.tmpfs_bytes),
    );
    println!(
        "commands up to wall {} | cpu time {} when a grader asks",
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
            crate::config::SourceLocation::Local(root) => root.display().to_string(),
            crate::config::SourceLocation::S3(s3) => format!("s3://{}/{}", s3.bucket, s3.prefix),
        };
        println!(
            "asset    {} = {}:{} -> {} ({:?}, {place})",
            a.name, a.source, a.path, a.target, a.owner
        );
    }
    ExitCode::SUCCESS
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

/// Exit code after Ctrl-C, as shells report death by SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;
/// How long in-flight submissions may finish after Ctrl-C before they are
/// abandoned and their containers removed.
const INTERRUPT_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// The submissions a grade command names, after sharding.
fn submissions_of(args: &GradeArgs, staging: &std::path::Path) -> Result<Vec<Submission>, String> {
    let mut found = match (&args.submission, &args.submissions) {
        (Some(one), _) => vec![batch::intake::single(one, staging)?],
        (None, Some(many)) => batch::intake::discover(many, staging)?,
        (None, None) => return Err("give --submission DIR or --submissions DIR".into()),
    };
    if let Some(shard) = &args.shard {
        let (k, n) = batch::intake::parse_shard(shard)?;
        found = batch::intake::shard(found, k, n);
    }
    Ok(found)
}

/// Where archives are unpacked: a folder of agh's own inside the output
/// folder (whose lock is held), or a fresh private temporary folder. The
/// former is removed explicitly while the lock is still held (a batch that
/// stops early leaves it to the next run, which clears it under its lock);
/// removing it after the lock is released could delete another run's.
enum Staging {
    InOutput(std::path::PathBuf),
    Temporary(tempfile::TempDir),
}

impl Staging {
    fn path(&self) -> &std::path::Path {
        match self {
            Staging::InOutput(path) => path,
            Staging::Temporary(dir) => dir.path(),
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

pub(super) async fn grade_command(args: GradeArgs) -> ExitCode {
    let mut config = match load_config(args.config.as_ref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    if args.insecure_runc {
        config.runtime = Runtime::RuncInsecure;
    }
    if config.runtime == Runtime::RuncInsecure {
        eprintln!(
            "agh: WARNING: sandboxes run under plain runc, WITHOUT gVisor; every result records \"insecure\": true"
        );
    }
    // The output folder's lock comes first: a second agh pointed at a
    // folder a running batch holds must touch nothing in it.
    let lock = match &args.out {
        Some(out) => match OutputLock::acquire(out) {
            Ok(lock) => Some(lock),
            Err(err) => return output_error_exit(&err),
        },
        None => None,
    };
    let staging = match &lock {
        Some(lock) => {
            let path = lock.path().join(".staging");
            let _ = std::fs::remove_dir_all(&path);
            Staging::InOutput(path)
        }
        None => match tempfile::Builder::new().prefix("agh-staging-").tempdir() {
            Ok(dir) => Staging::Temporary(dir),
            Err(err) => {
                eprintln!("agh: cannot create a staging folder: {err}");
                return ExitCode::from(EXIT_INFRA);
            }
        },
    };
    let submissions = match submissions_of(&args, staging.path()) {
        Ok(found) => found,
        Err(err) => {
            eprintln!("agh: {err}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let new_id = args.batch_id.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("{}-{now}", std::process::id())
    });
    let plugin_sha = match crate::plugin::component_sha256(&args.plugin) {
        Ok(sha) => sha,
        Err(err) => return batch_error_exit(&BatchError::Plugin(err)),
    };
    let mode = match (args.resume, args.regrade) {
        (true, _) => OpenMode::Resume,
        (false, true) => OpenMode::Regrade,
        (false, false) => OpenMode::New,
    };
    let mut output = match lock {
        Some(lock) => match OutputDir::open(lock, &new_id, &plugin_sha, mode) {
            Ok(output) => Some(output),
            Err(err) => return output_error_exit(&err),
        },
        None => None,
    };
    let batch_id = output.as_ref().map_or(new_id, |o| o.identity().id.clone());
    let batch = match Batch::prepare(&args.plugin, config, batch_id).await {
        Ok(batch) => batch,
        Err(err) => return batch_error_exit(&err),
    };
    if let Ok(removed) = batch.remove_leftovers().await
        && removed > 0
    {
        eprintln!("agh: removed {removed} container(s) left by an earlier run of this batch");
    }
    if output.as_ref().is_some_and(OutputDir::graded_any) {
        batch.grader_worked_before();
    }
    let total = submissions.len();
    let todo: Vec<Submission> = submissions
        .into_iter()
        .filter(|s| {
            let done = output.as_ref().is_some_and(|o| {
                s.refused.is_none()
                    && batch::submission_digest(&s.dir).is_ok_and(|sha| o.is_done(&s.name, &sha))
            });
            !done
        })
        .collect();
    if todo.len() < total {
        eprintln!(
            "agh: {} of {total} submission(s) already graded in this output folder; grading the other {}",
            total - todo.len(),
            todo.len()
        );
    }
    let jobs = args.jobs.unwrap_or_else(batch::default_jobs);
    let mut progress = Progress::new(todo.len(), args.json);
    let mut results = Vec::new();
    let mut write_error: Option<String> = None;
    let interrupted = {
        let grading = batch.grade_all(todo, jobs, |result| {
            if let Some(out) = output.as_mut()
                && let Err(err) = out.record(result)
            {
                if write_error.is_none() {
                    eprintln!("agh: {err}; stopping the batch (results already written are whole)");
                    write_error = Some(err.to_string());
                }
                batch.interrupt();
            }
            progress.record(result, args.json);
            // With an output folder the summary is read back from it (the
            // whole batch, earlier runs included), so nothing is held here.
            if output.is_none() {
                results.push(result.clone());
            }
        });
        tokio::pin!(grading);
        let mut interrupted = false;
        tokio::select! {
            () = &mut grading => {}
            _ = tokio::signal::ctrl_c() => {
                interrupted = true;
                batch.interrupt();
                eprintln!("agh: interrupted; letting submissions in flight finish (up to {}s; Ctrl-C again to stop now)", INTERRUPT_GRACE.as_secs());
                tokio::select! {
                    () = &mut grading => {}
                    () = tokio::time::sleep(INTERRUPT_GRACE) => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
        }
        interrupted
    };
    progress.finish();
    // Containers a failed teardown left (a daemon restart, an interrupt
    // that abandoned submissions mid-way) go now, not at the next run.
    if let Err(err) = batch.remove_leftovers().await {
        eprintln!(
            "agh: could not remove this batch's leftover containers ({err}); `agh sandbox clean` will"
        );
    }
    if let Staging::InOutput(path) = &staging {
        let _ = std::fs::remove_dir_all(path);
    }
    if let Some(out) = &args.out
        && write_error.is_none()
    {
        match export::load_results(out) {
            Ok(all) => results = all,
            Err(err) => eprintln!("agh: reading the batch's results back: {err}"),
        }
    }
    results.sort_by(|a, b| a.submission.cmp(&b.submission));
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&results).unwrap_or_default()
        );
    } else {
        print_table(&results);
        print_pass_rates(&results);
    }
    if let Some(out) = &args.out
        && !args.formats.is_empty()
        && write_error.is_none()
    {
        for format in &args.formats {
            if let Err(err) = export::export(&results, *format, out) {
                eprintln!("agh: exporting {format:?}: {err}");
                write_error = Some(err.to_string());
            }
        }
    }
    if interrupted {
        eprintln!("agh: stopped by Ctrl-C; run the same command with --resume to continue");
        return ExitCode::from(EXIT_INTERRUPTED);
    }
    if batch.stopped() {
        eprintln!(
            "agh: stopped after {} plugin errors and no submission graded: the grader looks broken; fix it and grade again",
            batch::MAX_CONSECUTIVE_PLUGIN_ERRORS
        );
        return ExitCode::from(EXIT_PLUGIN);
    }
    if write_error.is_some() || results.iter().any(|r| r.status == Status::InfraError) {
        return ExitCode::from(EXIT_INFRA);
    }
    if results.iter().any(|r| r.status == Status::PluginError) {
        return ExitCode::from(EXIT_PLUGIN);
    }
    ExitCode::SUCCESS
}

fn output_error_exit(err: &OutputError) -> ExitCode {
    eprintln!("agh: {err}");
    ExitCode::from(if matches!(err, OutputError::Io { .. }) {
        EXIT_INFRA
    } else {
        EXIT_USAGE
    })
}

pub(super) async fn export_command(args: ExportArgs) -> ExitCode {
    let results = match export::load_results(&args.from) {
        Ok(results) => results,
        Err(err) => {
            eprintln!("agh: {err}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let to = args.to.as_ref().unwrap_or(&args.from);
    for format in &args.formats {
        match export::export(&results, *format, to) {
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
                return ExitCode::from(EXIT_INFRA);
            }
        }
    }
    ExitCode::SUCCESS
}

pub(super) async fn merge_command(args: MergeArgs) -> ExitCode {
    match batch::merge::merge_folders(&args.inputs, &args.out) {
        Ok(count) => {
            println!(
                "merged {count} submission(s) from {} folder(s) into {}",
                args.inputs.len(),
                args.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("agh: {err}");
            let infra = matches!(
                err,
                batch::merge::MergeError::Output(OutputError::Io { .. })
            );
            ExitCode::from(if infra { EXIT_INFRA } else { EXIT_USAGE })
        }
    }
}
