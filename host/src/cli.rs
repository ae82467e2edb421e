//! The command line: parsing, printing and exit codes. Each subcommand is a
//! short function over the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytesize::ByteSize;
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::doctor;
use crate::report::Verdict;
use crate::sandbox::{self, Command, Limits, Runtime, Sandbox, SandboxError, SandboxSpec, User};

/// Exit code for a bad command line or configuration.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when a grader plugin or the operator's policy refused the work.
pub const EXIT_PLUGIN: u8 = 3;
/// Exit code when Docker, the disk or another part of the host failed.
pub const EXIT_INFRA: u8 = 4;
/// Exit code when `agh doctor` found a problem.
pub const EXIT_UNHEALTHY: u8 = 5;

#[derive(Debug, Parser)]
#[command(name = "agh", version, about = "Grade untrusted submissions with WebAssembly graders in gVisor sandboxes")]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Check Docker, the runsc runtime, gVisor from inside a sandbox, and the images.
    Doctor {
        /// Images to check (default: the images scripts/setup builds).
        #[arg(long = "image")]
        images: Vec<String>,
    },
    /// Operate sandboxes directly, for trying limits.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
}

#[derive(Debug, Subcommand)]
enum SandboxCommand {
    /// Run one command in a fresh sandbox and print the outcome as JSON.
    Run(SandboxRunArgs),
    /// Remove every container agh labelled (leftovers of a killed run).
    Clean,
}

#[derive(Debug, Args)]
struct SandboxRunArgs {
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

/// Parses the command line, runs it, and maps the outcome to an exit code.
#[must_use]
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AGH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("agh: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_INFRA);
        }
    };
    runtime.block_on(async {
        match cli.command {
            Commands::Doctor { images } => doctor_command(images).await,
            Commands::Sandbox(SandboxCommand::Run(args)) => sandbox_run(args).await,
            Commands::Sandbox(SandboxCommand::Clean) => sandbox_clean().await,
        }
    })
}

async fn doctor_command(images: Vec<String>) -> ExitCode {
    let images = if images.is_empty() { doctor::DEFAULT_IMAGES.map(String::from).to_vec() } else { images };
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
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_UNHEALTHY)
    }
}

fn sandbox_error_exit(err: &SandboxError) -> ExitCode {
    eprintln!("agh: {err}");
    ExitCode::from(if err.is_infra() { EXIT_INFRA } else { EXIT_USAGE })
}

async fn sandbox_run(args: SandboxRunArgs) -> ExitCode {
    let limits = args.limits.apply(Limits::default());
    let runtime = if args.insecure_runc { Runtime::RuncInsecure } else { Runtime::Runsc };
    if runtime == Runtime::RuncInsecure {
        eprintln!("agh: WARNING: running under plain runc, without gVisor; do not use for student code");
    }
    let stdin = match &args.stdin_file {
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) => {
                eprintln!("agh: cannot read --stdin-file {}: {err}", path.display());
                return ExitCode::from(EXIT_USAGE);
            }
        },
        None => Vec::new(),
    };
    let docker = match sandbox::connect().await {
        Ok(docker) => docker,
        Err(err) => return sandbox_error_exit(&err),
    };
    let spec = SandboxSpec { runtime, limits, ..SandboxSpec::new(&args.image) }.labelled("cli", "sandbox-run");
    let sandbox = match Sandbox::create(&docker, spec).await {
        Ok(sandbox) => sandbox,
        Err(err) => return sandbox_error_exit(&err),
    };
    let command = Command {
        argv: args.argv,
        stdin,
        user: if args.as_grader { User::Grader } else { User::Student },
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
        "outcome": &outcome,
        "stdout": String::from_utf8_lossy(&outcome.stdout),
        "stderr": String::from_utf8_lossy(&outcome.stderr),
        "image": sandbox.spec().image,
        "runtime": runtime,
        "insecure": runtime == Runtime::RuncInsecure,
        "limits": &sandbox.spec().limits,
    });
    println!("{}", serde_json::to_string_pretty(&printed).unwrap_or_default());
    ExitCode::SUCCESS
}

async fn sandbox_clean() -> ExitCode {
    let docker = match sandbox::connect().await {
        Ok(docker) => docker,
        Err(err) => return sandbox_error_exit(&err),
    };
    match sandbox::remove_labelled_containers(&docker, None).await {
        Ok(n) => {
            println!("removed {n} labelled container(s)");
            ExitCode::SUCCESS
        }
        Err(err) => sandbox_error_exit(&err),
    }
}
