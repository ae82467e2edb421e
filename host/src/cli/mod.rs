//! The command line: parsing, printing and exit codes. Each subcommand is a
//! short function over the library: `sandbox_commands` holds the commands that run
//! single sandboxes (`doctor`, `sandbox run`, `sandbox clean`), `grade_commands`
//! the ones that grade (`plan`, `grade`, `export`, `merge`),
//! `transcript_commands` those over recorded gradings (`show`, `rescore`,
//! `diff`, `report`), `check_commands` the grader gate (`check`),
//! `gradescope_commands` the building of Gradescope autograder images.

mod grade_commands;
mod sandbox_commands;

use grade_commands::{
    ExportArgs, GradeArgs, MergeArgs, PlanArgs, export_command, grade_command, merge_command,
    plan_command,
};
mod check_commands;
mod gradescope_commands;
mod project_commands;
mod service_commands;
mod transcript_commands;

use transcript_commands::{
    DiffArgs, ReportArgs, RescoreArgs, ShowArgs, diff_command, report_command, rescore_command,
    show_command,
};

use service_commands::{
    CourseCommand, LogFormat, ProbeArgs, ServeArgs, TokenCommand, WorkerArgs, course_command,
    probe_command, serve_command, token_command, worker_command,
};

use check_commands::{CheckArgs, check_command};
use gradescope_commands::{GradescopeCommand, gradescope_command};
use project_commands::{BuildArgs, NewCommand, build_command, new_command};
use sandbox_commands::{SandboxCommand, doctor_command, sandbox_clean, sandbox_run, sandbox_users};

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytesize::ByteSize;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;

use agh::batch::{self, BatchError, OpenMode};
use agh::blame::Blame;
use agh::config::Config;
use agh::doctor;
use agh::report::Verdict;
use agh::report::export::{self, Format};
use agh::report::{Status, SubmissionResult, TestStatus};
use agh::sandbox::{
    self, Command, EntrySource, FileEntry, Limits, Owner, Runtime, Sandbox, SandboxError,
    SandboxSpec, User,
};

/// Exit code of `agh diff` when the folders differ, and of `agh check`
/// when the grader failed it.
pub const EXIT_FOUND: u8 = 1;
/// Exit code for a bad command line or configuration.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when a grader plugin or the operator's policy refused the work.
pub const EXIT_PLUGIN: u8 = 3;
/// Exit code when Docker, the disk or another part of the host failed.
pub const EXIT_INFRA: u8 = 4;
/// Exit code when `agh doctor` found a problem.
pub const EXIT_UNHEALTHY: u8 = 5;
/// Exit code after Ctrl-C, as shells report death by SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

/// How a command ended. Commands print and return one; [`main`] alone
/// turns it into the process's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done as asked.
    Success,
    /// A bad command line, configuration or input.
    Usage,
    /// The grader failed or the operator's policy refused it.
    Grader,
    /// Docker, the disk or another part of the host failed.
    Infra,
    /// `agh doctor` found a problem.
    Unhealthy,
    /// Stopped by Ctrl-C.
    Interrupted,
    /// `agh diff` found differences, or `agh check` problems.
    Found,
}

impl From<Blame> for Outcome {
    /// The one map from whose doing a failure is to how agh ends.
    fn from(blame: Blame) -> Self {
        match blame {
            Blame::Student | Blame::Operator => Outcome::Usage,
            Blame::Grader => Outcome::Grader,
            Blame::Host => Outcome::Infra,
        }
    }
}

impl Outcome {
    /// The one map from outcomes to exit codes.
    fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::Usage => ExitCode::from(EXIT_USAGE),
            Outcome::Grader => ExitCode::from(EXIT_PLUGIN),
            Outcome::Infra => ExitCode::from(EXIT_INFRA),
            Outcome::Unhealthy => ExitCode::from(EXIT_UNHEALTHY),
            Outcome::Interrupted => ExitCode::from(EXIT_INTERRUPTED),
            Outcome::Found => ExitCode::from(EXIT_FOUND),
        }
    }
}

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
    /// One submission's result and transcript: what ran and what it printed.
    Show(ShowArgs),
    /// Rescore an output folder with a (changed) grader from its transcripts, without sandboxes.
    Rescore(RescoreArgs),
    /// What changed between two output folders, per submission and test.
    Diff(DiffArgs),
    /// One self-contained HTML page of an output folder, for staff.
    Report(ReportArgs),
    /// Prove a grader before students meet it: its samples and agh's stock attacks, graded twice.
    Check(CheckArgs),
    /// Make a new project: `agh new grader --lang rust|python|javascript DIR`.
    #[command(subcommand)]
    New(NewCommand),
    /// Build a grader project with its language's toolchain, then load it
    /// the way `agh grade` will and leave it compiled in the cache.
    Build(BuildArgs),
    /// Run the grading service: an HTTP API, its store, and grading slots.
    Serve(ServeArgs),
    /// Grade for a service on a shared PostgreSQL store: one per grading node.
    Worker(WorkerArgs),
    /// Make or revoke the service's bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Register courses with a running service.
    #[command(subcommand)]
    Course(CourseCommand),
    /// Probe a running service: what it must refuse (deny_), allow (allow_) and support (support_).
    Probe(ProbeArgs),
    /// Gradescope autograders: `agh gradescope build autograder.zip`, then grade
    /// with `--plugin builtin:gradescope`.
    #[command(subcommand)]
    Gradescope(GradescopeCommand),
}

/// Parses the command line, runs it, and maps the outcome to an exit code.
#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let (json, default_level) = match &cli.command {
        Commands::Serve(ServeArgs { log_format, .. })
        | Commands::Worker(WorkerArgs { log_format, .. }) => {
            (*log_format == LogFormat::Json, "info")
        }
        _ => (false, "warn"),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AGH_LOG")
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("agh: cannot start the async runtime: {err}");
            return Outcome::Infra.exit_code();
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Commands::Doctor { images } => doctor_command(images).await,
            Commands::Sandbox(SandboxCommand::Run(args)) => sandbox_run(args).await,
            Commands::Sandbox(SandboxCommand::Clean { all }) => sandbox_clean(all).await,
            Commands::Sandbox(SandboxCommand::Users) => sandbox_users(),
            Commands::Grade(args) => grade_command(args).await,
            Commands::Plan(args) => plan_command(args).await,
            Commands::Export(args) => export_command(args).await,
            Commands::Merge(args) => merge_command(args).await,
            Commands::Show(args) => show_command(&args),
            Commands::Rescore(args) => rescore_command(args).await,
            Commands::Diff(args) => diff_command(&args),
            Commands::Check(args) => check_command(args).await,
            Commands::Report(args) => report_command(&args),
            Commands::New(command) => new_command(command),
            Commands::Build(args) => build_command(args).await,
            Commands::Serve(args) => serve_command(args).await,
            Commands::Worker(args) => worker_command(args).await,
            Commands::Token(command) => token_command(command).await,
            Commands::Course(command) => course_command(command).await,
            Commands::Probe(args) => probe_command(args).await,
            Commands::Gradescope(command) => gradescope_command(command).await,
        }
    });
    outcome.exit_code()
}

pub(super) fn load_config(path: Option<&PathBuf>) -> Result<Config, Outcome> {
    match path {
        Some(path) => Config::load(path).map_err(|err| {
            eprintln!("agh: {err}");
            Outcome::Usage
        }),
        None => Ok(Config::default()),
    }
}

pub(super) fn batch_error_exit(err: &BatchError) -> Outcome {
    eprintln!("agh: {err}");
    Outcome::from(err.blame())
}

/// `--format`: the library's [`Format`], as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    /// `gradescope/<submission>/results.json`, Gradescope's autograder format.
    Gradescope,
    /// `gradebook.csv`: a row per submission, a column per test.
    Csv,
    /// `junit.xml`: a test suite per submission.
    Junit,
}

impl From<FormatArg> for Format {
    fn from(arg: FormatArg) -> Self {
        match arg {
            FormatArg::Gradescope => Format::Gradescope,
            FormatArg::Csv => Format::Csv,
            FormatArg::Junit => Format::Junit,
        }
    }
}

/// `--lang`: the library's [`agh::scaffold::Language`], as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LanguageArg {
    /// Rust, with `cargo` and the `wasm32-wasip2` target.
    Rust,
    /// Python, with componentize-py.
    Python,
    /// JavaScript, with componentize-js.
    Javascript,
}

impl From<LanguageArg> for agh::scaffold::Language {
    fn from(arg: LanguageArg) -> Self {
        match arg {
            LanguageArg::Rust => Self::Rust,
            LanguageArg::Python => Self::Python,
            LanguageArg::Javascript => Self::Javascript,
        }
    }
}
