//! The command line: parsing, printing and exit codes. Each subcommand is a
//! short function over the library: `sandbox_commands` holds the commands that run
//! single sandboxes (`doctor`, `sandbox run`, `sandbox clean`), `grade_commands`
//! the ones that grade (`plan`, `grade`, `export`, `merge`).

mod grade_commands;
mod sandbox_commands;

use grade_commands::{
    ExportArgs, GradeArgs, MergeArgs, PlanArgs, export_command, grade_command, merge_command,
    plan_command,
};
use sandbox_commands::{SandboxCommand, doctor_command, sandbox_clean, sandbox_run};

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytesize::ByteSize;
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::assets::{self, S3Timeouts};
use crate::batch::{
    self, Batch, BatchError, OpenMode, OutputDir, OutputError, OutputLock, Submission,
};
use crate::config::Config;
use crate::doctor;
use crate::report::Verdict;
use crate::report::export::{self, Format};
use crate::report::{Status, SubmissionResult, TestStatus};
use crate::sandbox::{
    self, Command, EntrySource, FileEntry, Limits, Owner, Runtime, Sandbox, SandboxError,
    SandboxSpec, User,
};

/// Exit code for a bad command line or configuration.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when a grader plugin or the operator's policy refused the work.
pub const EXIT_PLUGIN: u8 = 3;
/// Exit code when Docker, the disk or another part of the host failed.
pub const EXIT_INFRA: u8 = 4;
/// Exit code when `agh doctor` found a problem.
pub const EXIT_UNHEALTHY: u8 = 5;

#[derive(Debug, Parser)]
#[command(
    name = "agh",
    version,
    about = "Grade untrusted submissions with WebAssembly graders in gVisor sandboxes"
)]
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
    /// Grade one submission or a folder of them with a grader plugin.
    Grade(GradeArgs),
    /// Show what a grader declares and what the policy allows; runs nothing.
    Plan(PlanArgs),
    /// Write Gradescope, CSV or JUnit files from an output folder.
    Export(ExportArgs),
    /// Join the output folders of shards into one.
    Merge(MergeArgs),
}

/// Parses the command line, runs it, and maps the outcome to an exit code.
#[must_use]
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AGH_LOG")
                .unwrap_or_else(|_| "warn".into()),
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
            Commands::Sandbox(SandboxCommand::Clean { all }) => sandbox_clean(all).await,
            Commands::Grade(args) => grade_command(args).await,
            Commands::Plan(args) => plan_command(args).await,
            Commands::Export(args) => export_command(args).await,
            Commands::Merge(args) => merge_command(args).await,
        }
    })
}

pub(super) fn load_config(path: Option<&PathBuf>) -> Result<Config, ExitCode> {
    match path {
        Some(path) => Config::load(path).map_err(|err| {
            eprintln!("agh: {err}");
            ExitCode::from(EXIT_USAGE)
        }),
        None => Ok(Config::default()),
    }
}

pub(super) fn batch_error_exit(err: &BatchError) -> ExitCode {
    eprintln!("agh: {err}");
    ExitCode::from(if err.is_infra() {
        EXIT_INFRA
    } else {
        EXIT_PLUGIN
    })
}
