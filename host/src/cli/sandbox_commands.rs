//! `agh doctor` and `agh sandbox`: single sandboxes, for operators.

use super::*;

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once; boxing buys nothing
pub(super) enum SandboxCommand {
    /// Run one command in a fresh sandbox and print the outcome as JSON.
    Run(SandboxRunArgs),
    /// Remove the sandboxes of agh runs that are gone (killed, crashed);
    /// another agh's sandboxes in flight are kept.
    Clean {
        /// Remove every container agh labelled, including those of agh
        /// runs still grading, here or on other hosts.
        #[arg(long)]
        all: bool,
    },
    /// Print the sandbox users' ids as shell assignments, for the image
    /// recipes (scripts/setup), so the images and agh agree by construction.
    #[command(hide = true)]
    Users,
}

/// `agh sandbox users`: the ids images must give the sandbox users.
pub(super) fn sandbox_users() -> Outcome {
    println!("STUDENT_UID={}", agh::layout::STUDENT_UID);
    println!("GRADER_UID={}", agh::layout::GRADER_UID);
    Outcome::Success
}

#[derive(Debug, Args)]
pub(super) struct SandboxRunArgs {
    /// Image to run in.
    #[arg(long, default_value = doctor::DEFAULT_IMAGES[0])]
    image: String,
    #[command(flatten)]
    limits: LimitArgs,
    /// Run as the grader user instead of the student.
    #[arg(long)]
    as_grader: bool,
    /// File whose bytes are the command's stdin.
    #[arg(long)]
    stdin_file: Option<PathBuf>,
    /// Use plain runc instead of gVisor. Insecure: recorded in the output.
    #[arg(long)]
    insecure_runc: bool,
    /// Copy a host file or folder in first: HOST=SANDBOX_DIR, where the
    /// folder is below /work (student's), /assets (root's, read-only) or
    /// /grader (grader's). Repeatable.
    #[arg(long = "put", value_name = "HOST=SANDBOX_DIR")]
    puts: Vec<String>,
    /// The command, as separate arguments (no shell).
    #[arg(last = true, required = true)]
    argv: Vec<String>,
}

/// Limit flags shared by every subcommand that starts sandboxes.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Wall-clock deadline per command, for example 10s or 1m.
    #[arg(long, value_parser = humantime::parse_duration)]
    wall_time: Option<Duration>,
    /// Memory of the sandbox, for example 512MiB; swap is not allowed.
    #[arg(long)]
    memory: Option<ByteSize>,
    /// Processes per sandbox user.
    #[arg(long)]
    processes: Option<u32>,
    /// CPU cores, for example 0.5.
    #[arg(long)]
    cpus: Option<f64>,
    /// Bytes kept of each output stream.
    #[arg(long)]
    output: Option<ByteSize>,
    /// Largest file a command may write.
    #[arg(long)]
    file_size: Option<ByteSize>,
    /// Size of each writable tmpfs.
    #[arg(long)]
    tmpfs: Option<ByteSize>,
}

impl LimitArgs {
    /// Applies the flags given over `base`.
    fn apply(&self, mut base: Limits) -> Limits {
        if let Some(v) = self.wall_time {
            base.wall_time = v;
        }
        if let Some(v) = self.memory {
            base.memory_bytes = v.as_u64();
        }
        if let Some(v) = self.processes {
            base.processes = v;
        }
        if let Some(v) = self.cpus {
            // Fractions of a core below a thousandth round to zero and are refused.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let millicpus = (v.max(0.0) * 1000.0).round() as u32;
            base.millicpus = millicpus;
        }
        if let Some(v) = self.output {
            base.output_bytes = v.as_u64();
        }
        if let Some(v) = self.file_size {
            base.file_size_bytes = v.as_u64();
        }
        if let Some(v) = self.tmpfs {
            base.tmpfs_bytes = v.as_u64();
        }
        base
    }
}

pub(super) async fn doctor_command(images: Vec<String>) -> Outcome {
    let images = if images.is_empty() {
        doctor::DEFAULT_IMAGES.map(String::from).to_vec()
    } else {
        images
    };
    let checks = doctor::run_checks(&images).await;
    for check in &checks {
        let mark = if check.ok { "ok  " } else { "FAIL" };
        println!("{mark} {}: {}", check.name, check.detail);
        if let Some(fix) = &check.fix {
            println!("     fix: {fix}");
        }
    }
    if checks.iter().all(|c| c.ok) {
        println!("agh can grade on this machine.");
        Outcome::Success
    } else {
        Outcome::Unhealthy
    }
}

pub(super) fn sandbox_error_exit(err: &SandboxError) -> Outcome {
    eprintln!("agh: {err}");
    Outcome::from(err.blame().when_the_operator_asked())
}

pub(super) async fn sandbox_run(args: SandboxRunArgs) -> Outcome {
    let limits = args.limits.apply(Limits::default());
    let runtime = if args.insecure_runc {
        Runtime::RuncInsecure
    } else {
        Runtime::Runsc
    };
    if runtime == Runtime::RuncInsecure {
        eprintln!(
            "agh: WARNING: running under plain runc, without gVisor; do not use for student code"
        );
    }
    let stdin = match &args.stdin_file {
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) => {
                eprintln!("agh: cannot read --stdin-file {}: {err}", path.display());
                return Outcome::Usage;
            }
        },
        None => Vec::new(),
    };
    let docker = match sandbox::connect().await {
        Ok(docker) => docker,
        Err(err) => return sandbox_error_exit(&err),
    };
    let spec = SandboxSpec {
        runtime,
        limits,
        ..SandboxSpec::new(&args.image)
    }
    .labelled("cli", "sandbox-run");
    let sandbox = match Sandbox::create(&docker, spec).await {
        Ok(sandbox) => sandbox,
        Err(err) => return sandbox_error_exit(&err),
    };
    let mut copies = Vec::new();
    for put in &args.puts {
        match put_into(&sandbox, put).await {
            Ok(copy) => copies.push(copy),
            Err(err) => {
                sandbox.teardown().await;
                return sandbox_error_exit(&err);
            }
        }
    }
    let command = Command {
        argv: args.argv,
        stdin,
        user: if args.as_grader {
            User::Grader
        } else {
            User::Student
        },
        ..Command::default()
    };
    let outcome = sandbox.run(&command).await;
    sandbox.teardown().await;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => return sandbox_error_exit(&err),
    };
    let printed = json!({
        "verdict": Verdict::of_outcome(&outcome),
        "outcome": agh::report::CommandRecord::from(&outcome),
        "stdout": String::from_utf8_lossy(&outcome.stdout),
        "stderr": String::from_utf8_lossy(&outcome.stderr),
        "image": sandbox.spec().image,
        "runtime": runtime,
        "insecure": runtime == Runtime::RuncInsecure,
        "limits": &sandbox.spec().limits,
        "copied_in": copies,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&printed).unwrap_or_default()
    );
    Outcome::Success
}

/// Copies `HOST=SANDBOX_DIR` into the sandbox, timing it.
async fn put_into(sandbox: &Sandbox, put: &str) -> Result<serde_json::Value, SandboxError> {
    let Some((host, dest)) = put.split_once('=') else {
        return Err(SandboxError::Refused(format!(
            "--put {put:?}: write HOST=SANDBOX_DIR"
        )));
    };
    let (owner, read_only) = match dest.split('/').nth(1) {
        Some("assets") => (Owner::Root, true),
        Some("grader") => (Owner::Grader, true),
        _ => (Owner::Student, false),
    };
    let host = std::path::Path::new(host);
    let entries = if host.is_dir() {
        sandbox::host_tree_entries(host, sandbox::MAX_SUBMISSION_BYTES)?
    } else {
        let name = host
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        vec![FileEntry {
            path: name,
            source: Some(EntrySource::HostFile(host.into())),
            executable: false,
        }]
    };
    let bytes: u64 = entries
        .iter()
        .filter_map(|e| match &e.source {
            Some(EntrySource::HostFile(p)) => std::fs::metadata(p).ok().map(|m| m.len()),
            _ => None,
        })
        .sum();
    let started = std::time::Instant::now();
    sandbox.copy_in(dest, entries, owner, read_only).await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(
        json!({ "host": host, "dest": dest, "bytes": bytes, "ms": seconds * 1000.0, "mb_per_s": bytes as f64 / 1e6 / seconds }),
    )
}

pub(super) async fn sandbox_clean(all: bool) -> Outcome {
    let docker = match sandbox::connect().await {
        Ok(docker) => docker,
        Err(err) => return sandbox_error_exit(&err),
    };
    let scope = if all {
        sandbox::Leftovers::All
    } else {
        sandbox::Leftovers::Orphaned
    };
    match sandbox::remove_leftovers(&docker, scope).await {
        Ok(cleaned) => {
            println!("removed {} leftover sandbox(es)", cleaned.removed);
            if cleaned.kept > 0 {
                println!(
                    "kept {} of agh runs that still run, run on another host, or are unknown; `agh sandbox clean --all` removes them too",
                    cleaned.kept
                );
            }
            Outcome::Success
        }
        Err(err) => sandbox_error_exit(&err),
    }
}
