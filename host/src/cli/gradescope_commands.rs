//! `agh gradescope build`: a Gradescope autograder zip made into a sandbox
//! image, for `builtin:gradescope`.

use super::sandbox_commands::sandbox_error_exit;
use super::*;
use agh::sandbox::images::{self, ImageBuildError};

#[derive(Debug, Subcommand)]
pub(super) enum GradescopeCommand {
    /// Build the sandbox image of a Gradescope autograder zip (setup.sh runs
    /// as root, with the network, under plain runc: an operator-trusted
    /// step with no student code); the same zip reuses its image.
    Build(GradescopeBuildArgs),
}

#[derive(Debug, Args)]
pub(super) struct GradescopeBuildArgs {
    /// The autograder zip, as uploaded to Gradescope.
    zip: PathBuf,
    /// Image tag (default: agh/gradescope-<zip sha256 prefix>:1).
    #[arg(long)]
    tag: Option<String>,
    /// The agh image it is built on.
    #[arg(long, default_value = images::DEFAULT_BASE)]
    base: String,
}

pub(super) async fn gradescope_command(command: GradescopeCommand) -> Outcome {
    let GradescopeCommand::Build(args) = command;
    let docker = match sandbox::connect().await {
        Ok(docker) => docker,
        Err(err) => return sandbox_error_exit(&err),
    };
    eprintln!(
        "agh: building {} on {} (setup.sh runs as root with the network under runc; \
         a first build with apt or pip installs takes minutes)",
        args.zip.display(),
        args.base
    );
    let mut line = |text: &str| eprintln!("setup.sh | {text}");
    let built = images::build_gradescope(
        &docker,
        &args.zip,
        args.tag.as_deref(),
        &args.base,
        &mut line,
    )
    .await;
    match built {
        Ok(image) => {
            if image.reused {
                eprintln!(
                    "agh: {} is already built from this zip (sha256 {}); reused",
                    image.tag, image.zip_sha256
                );
            } else {
                eprintln!(
                    "agh: built {} in {:.1} s (zip sha256 {})",
                    image.tag,
                    image.elapsed.as_secs_f64(),
                    image.zip_sha256
                );
            }
            if image.unittest_suite {
                eprintln!(
                    "agh: its tests are Python unittest suites using gradescope_utils, run in the \
                     student's process, so a submission can forge its results (as on Gradescope). \
                     agh's own grader judges the same tests out of the student's reach: put the \
                     test files in a folder, name it as the `tests` asset and grade with \
                     `--plugin builtin:python-tests` (see \"Gradescope unittest suites, natively\" \
                     in the README)"
                );
            }
            println!("{}", config_for(&image.tag));
            Outcome::Success
        }
        Err(err @ (ImageBuildError::Zip { .. } | ImageBuildError::Setup { .. })) => {
            eprintln!("agh: {err}");
            Outcome::Usage
        }
        Err(err @ ImageBuildError::NoBase(_)) => {
            eprintln!("agh: {err}");
            Outcome::Unhealthy
        }
        Err(err) => {
            eprintln!("agh: {err}");
            Outcome::Infra
        }
    }
}

/// The agh.toml that grades with the built image.
fn config_for(tag: &str) -> String {
    format!(
        "# agh.toml for this autograder: agh grade --plugin builtin:gradescope --config agh.toml\n\
         images = [{tag:?}]\n\
         places = [\"/autograder\"]\n\
         wall_multiple = 1   # Gradescope's timeout is wall-clock\n\
         \n\
         [ceilings]\n\
         wall_time = \"10m\"\n\
         cpu_time = \"10m\"\n\
         \n\
         [settings]\n\
         image = {tag:?}\n\
         timeout = \"600\"        # seconds for run_autograder, as on Gradescope\n\
         total_points = \"10\"   # the assignment's points\n"
    )
}
