//! `agh new` and `agh build`.

use super::*;
use agh::scaffold::{self, ScaffoldError};
use std::path::Path;

#[derive(Debug, Subcommand)]
pub(super) enum NewCommand {
    /// A grader project: a working grader of a small exercise, the
    /// contract, the SDK, a sample course and two submissions.
    Grader {
        /// The language to write it in.
        #[arg(long, value_enum)]
        lang: LanguageArg,
        /// With `--lang python`: a course of unittest tests (marked as
        /// gradescope_utils marks them) graded by agh's own unittest
        /// grader, `builtin:python-tests`, with no grader code at all.
        #[arg(long)]
        tests: bool,
        /// The folder to make (new, or empty).
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub(super) struct BuildArgs {
    /// The grader project (default: this folder).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Where to write the component (default: DIR/grader.wasm).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub(super) fn new_command(command: NewCommand) -> Outcome {
    let NewCommand::Grader { lang, tests, dir } = command;
    if tests {
        return new_tests_course(lang, &dir);
    }
    match scaffold::new_project(&dir, lang.into()) {
        Ok(files) => {
            println!(
                "made a {lang:?} grader project in {} ({} files)",
                dir.display(),
                files.len()
            );
            println!(
                "next:\n  cd {}\n  agh build\n  agh grade --plugin grader.wasm --config agh.toml --submissions submissions",
                dir.display()
            );
            Outcome::Success
        }
        Err(err) => not_made(&err),
    }
}

/// A project that could not be made: the operator's mistake (a folder in
/// use), or the machine's (a file that could not be written).
fn not_made(err: &ScaffoldError) -> Outcome {
    eprintln!("agh: {err}");
    match err {
        ScaffoldError::Io { .. } => Outcome::Infra,
        _ => Outcome::Usage,
    }
}

fn new_tests_course(lang: LanguageArg, dir: &Path) -> Outcome {
    if !matches!(lang, LanguageArg::Python) {
        eprintln!(
            "agh: --tests makes a Python unittest course, graded with no grader code: use it with --lang python"
        );
        return Outcome::Usage;
    }
    match scaffold::new_tests_course(dir) {
        Ok(files) => {
            println!(
                "made a Python unittest course in {} ({} files), graded by builtin:python-tests: no grader to build",
                dir.display(),
                files.len()
            );
            println!(
                "next:\n  cd {}\n  agh grade --plugin builtin:python-tests --config agh.toml --submissions submissions\n  agh check --plugin builtin:python-tests --config agh.toml --samples .",
                dir.display()
            );
            Outcome::Success
        }
        Err(err) => not_made(&err),
    }
}

pub(super) async fn build_command(args: BuildArgs) -> Outcome {
    let mut notice = |n: agh::plugin::LoadNotice| eprintln!("agh: {}", n.line());
    match scaffold::build(&args.dir, args.out.as_deref(), &mut notice).await {
        Ok(built) => {
            println!(
                "built {} ({:?}, {:.1} MB): {}, contract agh:grader@{}",
                built.wasm.display(),
                built.language,
                built.bytes as f64 / 1e6,
                built.grader,
                built.contract
            );
            Outcome::Success
        }
        Err(err) => {
            eprintln!("agh: {err}");
            match err {
                ScaffoldError::Missing { .. } | ScaffoldError::Io { .. } => Outcome::Infra,
                ScaffoldError::Plugin(_) | ScaffoldError::Failed { .. } => Outcome::Grader,
                ScaffoldError::NotEmpty(_) | ScaffoldError::Unknown(_) => Outcome::Usage,
            }
        }
    }
}
