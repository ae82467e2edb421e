//! Sandbox images built by agh itself: a Gradescope autograder zip turned
//! into an image (`agh gradescope build`), on top of one of agh's own
//! images, with no image registry.
//!
//! The build is an operator-trusted step: no student code is present. It
//! runs the autograder's `setup.sh` as root in a throwaway container under
//! plain runc with Docker's default network, so apt and pip reach the
//! package registries as the host does (with the host's CA bundle, for a
//! registry behind the operator's proxy). Grading never runs there: the
//! built image is used like any other, under gVisor with no network.
//!
//! The image holds the autograder as Gradescope lays it out, `/autograder`
//! after `setup.sh`, kept at [`PRISTINE`] (at grading time `/autograder` is
//! an empty writable place that `builtin:gradescope` fills from it). Its
//! labels say which zip it came from and carry the end of the build log.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerConfig, ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CommitContainerOptions, CreateContainerOptions, RemoveContainerOptions,
    UploadToContainerOptions,
};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

/// Where a built image keeps the autograder as set up.
pub const PRISTINE: &str = "/usr/share/agh-gradescope/autograder";
/// The label holding the zip's sha256.
pub const LABEL_ZIP: &str = "agh.gradescope.zip-sha256";
/// The label holding the version of agh's recipe ([`RECIPE`]) and the base.
pub const LABEL_RECIPE: &str = "agh.gradescope.recipe";
/// The build recipe's version: a change to how images are built changes
/// it, so an image built the old way is built again, not reused.
pub const RECIPE: &str = "3";
/// The label saying the zip's tests use `gradescope_utils`.
pub const LABEL_UNITTEST: &str = "agh.gradescope.unittest";
/// The label holding the end of the build log.
pub const LABEL_LOG: &str = "agh.gradescope.build-log";
/// The image built on unless told otherwise: Debian with Python and C.
pub const DEFAULT_BASE: &str = "agh/python-c:1";
/// Largest zip taken.
const MAX_ZIP_BYTES: u64 = 256 * 1024 * 1024;
/// Bytes of the build log kept in the image's label (its end).
const LOG_LABEL_BYTES: usize = 32 * 1024;
/// Longest `setup.sh` may run.
const SETUP_TIME: Duration = Duration::from_secs(60 * 60);
/// Where the host's CA bundle is, and where the build sees it.
const HOST_CA: &str = "/etc/ssl/certs/ca-certificates.crt";
const BUILD_CA: &str = "/tmp/agh-build-ca.crt";

/// Why an autograder image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ImageBuildError {
    /// The zip cannot be read or is refused by the intake's checks.
    #[error("{zip}: {why}")]
    Zip {
        /// The zip.
        zip: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The base image is not on this daemon.
    #[error(
        "the base image {0} is not on this Docker daemon; build agh's images with `sudo scripts/setup`"
    )]
    NoBase(String),
    /// `setup.sh` failed.
    #[error("setup.sh failed with status {status}{line}{hint}\nlast lines of its output:\n{tail}")]
    Setup {
        /// Its exit status.
        status: i64,
        /// The command it was running, as `bash -x` traced it.
        line: String,
        /// What to do, when the output says.
        hint: String,
        /// The end of its output.
        tail: String,
    },
    /// Docker failed.
    #[error("docker: {operation}: {source}")]
    Docker {
        /// What agh asked of it.
        operation: &'static str,
        /// Docker's error.
        source: bollard::errors::Error,
    },
    /// A host file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What agh was doing.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

/// A built (or reused) autograder image.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// Its tag, for `[settings] image` in agh.toml.
    pub tag: String,
    /// The daemon's image id.
    pub id: String,
    /// The zip's sha256.
    pub zip_sha256: String,
    /// An image of this tag from the same zip was there already.
    pub reused: bool,
    /// How long the build took (zero when reused).
    pub elapsed: Duration,
    /// The zip's tests are Python unittest suites marked with
    /// `gradescope_utils` decorators: the kind a native grader can judge
    /// out of the student's reach.
    pub unittest_suite: bool,
}

/// Whether any Python file of the unpacked autograder imports
/// `gradescope_utils` (its unittest decorators and JSON runner).
fn uses_gradescope_utils(source: &Path) -> bool {
    let mut folders = vec![source.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "py")
                && std::fs::read_to_string(&path).is_ok_and(|t| t.contains("gradescope_utils"))
            {
                return true;
            }
        }
    }
    false
}

fn docker_err(operation: &'static str) -> impl FnOnce(bollard::errors::Error) -> ImageBuildError {
    move |source| ImageBuildError::Docker { operation, source }
}

/// The tag an autograder zip is built under unless one is given.
#[must_use]
pub fn default_tag(zip_sha256: &str) -> String {
    format!("agh/gradescope-{}:1", &zip_sha256[..12])
}

/// Builds the image of a Gradescope autograder zip, or reuses the one
/// built from the same zip under the same tag. `line` receives the
/// build's output as it comes, line by line.
///
/// # Errors
/// [`ImageBuildError`] saying what failed and what to do.
pub async fn build_gradescope(
    docker: &Docker,
    zip: &Path,
    tag: Option<&str>,
    base: &str,
    line: &mut (dyn FnMut(&str) + Send),
) -> Result<BuiltImage, ImageBuildError> {
    let zip_err = |why: String| ImageBuildError::Zip {
        zip: zip.into(),
        why,
    };
    let bytes = read_zip(zip).map_err(zip_err)?;
    let zip_sha256 = crate::layout::hex(&Sha256::digest(&bytes));
    let tag = tag.map_or_else(|| default_tag(&zip_sha256), String::from);
    if let Ok(existing) = docker.inspect_image(&tag).await {
        let labels = existing.config.and_then(|c| c.labels).unwrap_or_default();
        let recipe = format!("{RECIPE} {base}");
        if labels.get(LABEL_ZIP) == Some(&zip_sha256) && labels.get(LABEL_RECIPE) == Some(&recipe) {
            return Ok(BuiltImage {
                tag,
                id: existing.id.unwrap_or_default(),
                zip_sha256,
                reused: true,
                elapsed: Duration::ZERO,
                unittest_suite: labels.get(LABEL_UNITTEST).is_some_and(|v| v == "true"),
            });
        }
    }
    if docker.inspect_image(base).await.is_err() {
        return Err(ImageBuildError::NoBase(base.into()));
    }
    let staging = tempfile::tempdir().map_err(|source| ImageBuildError::Io {
        context: "making a staging folder".into(),
        source,
    })?;
    let source = staging.path().join("source");
    let context = unpack_autograder(zip, &source).map_err(zip_err)?;
    let unittest_suite = uses_gradescope_utils(&context.join("autograder/source"));
    let started = Instant::now();
    let name = format!(
        "agh-gradescope-build-{}-{}",
        &zip_sha256[..12],
        std::process::id()
    );
    let created = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.clone()),
                ..Default::default()
            }),
            ContainerCreateBody {
                image: Some(base.into()),
                entrypoint: Some(vec!["/bin/sleep".into()]),
                cmd: Some(vec!["infinity".into()]),
                user: Some("0:0".into()),
                labels: Some(HashMap::from([("agh.build".into(), "gradescope".into())])),
                host_config: Some(HostConfig {
                    runtime: Some("runc".into()),
                    init: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .map_err(docker_err("creating the build container"))?;
    let labels = HashMap::from([
        (LABEL_ZIP.to_string(), zip_sha256.clone()),
        (LABEL_RECIPE.to_string(), format!("{RECIPE} {base}")),
        (LABEL_UNITTEST.to_string(), unittest_suite.to_string()),
    ]);
    let built = build_in(docker, &created.id, &context, labels, &tag, line).await;
    let _ = docker
        .remove_container(
            &created.id,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            }),
        )
        .await;
    let id = built?;
    Ok(BuiltImage {
        tag,
        id,
        zip_sha256,
        reused: false,
        elapsed: started.elapsed(),
        unittest_suite,
    })
}

/// Everything the build does inside its container; the caller removes it.
async fn build_in(
    docker: &Docker,
    container: &str,
    context: &Path,
    mut labels: HashMap<String, String>,
    tag: &str,
    line: &mut (dyn FnMut(&str) + Send),
) -> Result<String, ImageBuildError> {
    docker
        .start_container(
            container,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .map_err(docker_err("starting the build container"))?;
    let tar = context_tar(context).map_err(|source| ImageBuildError::Io {
        context: "packing the autograder".into(),
        source,
    })?;
    docker
        .upload_to_container(
            container,
            Some(UploadToContainerOptions {
                path: "/".into(),
                ..Default::default()
            }),
            bollard::body_full(tar.into()),
        )
        .await
        .map_err(docker_err("copying the autograder in"))?;
    let mut log = String::new();
    let status = exec(docker, container, SETUP, &mut log, line).await?;
    if status != 0 {
        return Err(setup_failed(status, &log));
    }
    let seal = SEAL.replace("GRADER_UID", &crate::layout::GRADER_UID.to_string());
    let status = exec(docker, container, &seal, &mut log, line).await?;
    if status != 0 {
        return Err(ImageBuildError::Setup {
            status,
            line: String::new(),
            hint: String::new(),
            tail: tail(&log, 20),
        });
    }
    let (repo, version) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
    let mut log_label = log.clone();
    if log_label.len() > LOG_LABEL_BYTES {
        let mut cut = log_label.len() - LOG_LABEL_BYTES;
        while !log_label.is_char_boundary(cut) {
            cut += 1;
        }
        log_label.drain(..cut);
    }
    let committed = docker
        .commit_container(
            CommitContainerOptions {
                container: Some(container.into()),
                repo: Some(repo.into()),
                tag: Some(version.into()),
                comment: Some("agh gradescope build".into()),
                pause: true,
                ..Default::default()
            },
            ContainerConfig {
                labels: Some({
                    labels.insert(LABEL_LOG.into(), log_label);
                    labels
                }),
                entrypoint: Some(Vec::new()),
                cmd: Some(vec!["/bin/sh".into()]),
                ..Default::default()
            },
        )
        .await
        .map_err(docker_err("saving the image"))?;
    Ok(committed.id)
}

/// Runs `setup.sh` as Gradescope does (root, from `/autograder/source`),
/// traced so a failure names its line. Debian bookworm's pip refuses
/// system-wide installs (PEP 668) unless told; Gradescope's images allow
/// them, so the build does.
const SETUP: &str = r#"set -u
mkdir -p /autograder/results
cp /autograder/source/run_autograder /autograder/run_autograder
chmod +x /autograder/run_autograder
cd /autograder/source
exec bash -x ./setup.sh"#;

/// After a good setup: the autograder kept where grading finds it,
/// the grader user's alone (GRADER_UID is replaced by its id: the
/// student's processes cannot read the tests and expected outputs, here or
/// in `/autograder`, which the layout copies with this folder's mode),
/// `agh-as-student` on PATH (the agent's student door, for autograders
/// that run the student's program as the student), the build's CA bundle
/// gone.
const SEAL: &str = r#"set -eu
rm -f /tmp/agh-build-ca.crt
mkdir -p /usr/share/agh-gradescope
rm -rf /usr/share/agh-gradescope/autograder
cp -a /autograder /usr/share/agh-gradescope/autograder
chmod 755 /usr/share/agh-gradescope
chmod -R u+rwX /usr/share/agh-gradescope/autograder
chown -R GRADER_UID:GRADER_UID /usr/share/agh-gradescope/autograder
chmod 700 /usr/share/agh-gradescope/autograder
printf '#!/bin/sh\n# Runs a program as the student user (agh sandbox agent).\nexec /agh-agent as-student "$@"\n' > /usr/local/bin/agh-as-student
chmod 755 /usr/local/bin/agh-as-student
(apt-get clean || true) 2>/dev/null
rm -rf /var/lib/apt/lists/* /root/.cache"#;

/// Runs `script` with bash as root, streaming its output into `log` and
/// `line`; returns its exit status.
async fn exec(
    docker: &Docker,
    container: &str,
    script: &str,
    log: &mut String,
    line: &mut (dyn FnMut(&str) + Send),
) -> Result<i64, ImageBuildError> {
    let mut env = vec![
        "DEBIAN_FRONTEND=noninteractive".to_string(),
        "PIP_BREAK_SYSTEM_PACKAGES=1".to_string(),
        "PIP_ROOT_USER_ACTION=ignore".to_string(),
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
    ];
    if Path::new(HOST_CA).is_file() {
        for var in [
            "SSL_CERT_FILE",
            "PIP_CERT",
            "REQUESTS_CA_BUNDLE",
            "NODE_EXTRA_CA_CERTS",
        ] {
            env.push(format!("{var}={BUILD_CA}"));
        }
    }
    let created = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(vec!["/bin/bash".to_string(), "-c".into(), script.into()]),
                env: Some(env),
                user: Some("0:0".into()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(docker_err("starting setup.sh"))?;
    let started = docker
        .start_exec(&created.id, None)
        .await
        .map_err(docker_err("starting setup.sh"))?;
    if let StartExecResults::Attached { mut output, .. } = started {
        let mut pending = String::new();
        let streamed = tokio::time::timeout(SETUP_TIME, async {
            while let Some(chunk) = output.next().await {
                let chunk = chunk.map_err(docker_err("reading setup.sh's output"))?;
                pending.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
                while let Some(end) = pending.find('\n') {
                    let text: String = pending.drain(..=end).collect();
                    let text = text.trim_end_matches(['\n', '\r']);
                    line(text);
                    log.push_str(text);
                    log.push('\n');
                }
            }
            Ok::<(), ImageBuildError>(())
        })
        .await;
        match streamed {
            Ok(done) => done?,
            Err(_) => {
                return Err(ImageBuildError::Setup {
                    status: -1,
                    line: format!(" (it ran longer than {} min)", SETUP_TIME.as_secs() / 60),
                    hint: String::new(),
                    tail: tail(log, 20),
                });
            }
        }
        if !pending.is_empty() {
            line(&pending);
            log.push_str(&pending);
        }
    }
    let inspected = docker
        .inspect_exec(&created.id)
        .await
        .map_err(docker_err("reading setup.sh's status"))?;
    Ok(inspected.exit_code.unwrap_or(-1))
}

fn tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The failure of `setup.sh` in words: the last command `bash -x` traced,
/// and a hint when apt named a package Debian does not have.
fn setup_failed(status: i64, log: &str) -> ImageBuildError {
    let traced = log
        .lines()
        .rev()
        .find(|l| l.starts_with("+ "))
        .map(|l| format!(" at: {}", l.trim_start_matches("+ ")))
        .unwrap_or_default();
    let missing = log.lines().find_map(|l| {
        l.split_once("Unable to locate package ")
            .map(|(_, p)| p.trim().to_string())
            .or_else(|| {
                l.split_once("Package '")
                    .and_then(|(_, rest)| rest.split_once("' has no installation candidate"))
                    .map(|(p, _)| p.to_string())
            })
    });
    let hint = missing.map_or_else(String::new, |package| {
        format!(
            "\nhint: package {package:?} does not exist in Debian bookworm, which agh's images \
             are built from (Gradescope's are Ubuntu). Find its bookworm name with \
             `apt-cache search` and change setup.sh; for example openjdk-11-jdk is \
             openjdk-17-jdk in bookworm."
        )
    });
    ImageBuildError::Setup {
        status,
        line: traced,
        hint,
        tail: tail(log, 20),
    }
}

fn read_zip(zip: &Path) -> Result<Vec<u8>, String> {
    let file = crate::layout::open_regular_file(zip).map_err(|e| format!("cannot read it: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_ZIP_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > MAX_ZIP_BYTES {
        return Err(format!("larger than {} MiB", MAX_ZIP_BYTES / 1024 / 1024));
    }
    Ok(bytes)
}

/// Unpacks the zip with the intake's checks (regular files and folders
/// only, no path leaving the folder, bounded), keeps the executable bits
/// the zip recorded, and checks Gradescope's layout: `setup.sh` and
/// `run_autograder` at the top. Returns the build context: a folder whose
/// `autograder/source` is the zip and, when the host has one, the CA
/// bundle for the build.
fn unpack_autograder(zip: &Path, source: &Path) -> Result<PathBuf, String> {
    let context = source.with_file_name("context");
    let tree = context.join("autograder");
    std::fs::create_dir_all(&tree).map_err(|e| e.to_string())?;
    let unpacked = tree.join("source");
    agh_archive::unpack(zip, &unpacked).map_err(|why| format!("refused: {why}"))?;
    keep_executable_bits(zip, &unpacked)?;
    for needed in ["setup.sh", "run_autograder"] {
        if !unpacked.join(needed).is_file() {
            let top: Vec<String> = std::fs::read_dir(&unpacked)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            return Err(format!(
                "it has no {needed} at its top (it holds {}); Gradescope's autograders keep \
                 setup.sh and run_autograder at the top of the zip: zip the folder's contents, \
                 not the folder",
                if top.is_empty() {
                    "nothing".into()
                } else {
                    top.join(", ")
                }
            ));
        }
    }
    if Path::new(HOST_CA).is_file() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = context.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
        // The tar carries the folder's mode onto the image's /tmp.
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))
            .map_err(|e| e.to_string())?;
        std::fs::copy(HOST_CA, tmp.join("agh-build-ca.crt")).map_err(|e| e.to_string())?;
    }
    Ok(context)
}

/// Sets the executable bit on the files the zip marks executable (the
/// unpacker writes every file 0644): autograders run their scripts.
fn keep_executable_bits(zip: &Path, unpacked: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let file = std::fs::File::open(zip).map_err(|e| e.to_string())?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| e.to_string())?;
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(|e| e.to_string())?;
        let executable = entry.unix_mode().is_some_and(|m| m & 0o111 != 0);
        if !executable || entry.is_dir() {
            continue;
        }
        // The unpacker already refused every name that leaves the folder.
        if let Some(name) = entry.enclosed_name() {
            let path = unpacked.join(name);
            if path.is_file() {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

/// The build context as a tar, paths as they go below `/`.
fn context_tar(context: &Path) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    for entry in std::fs::read_dir(context)? {
        let entry = entry?;
        builder.append_dir_all(entry.file_name(), entry.path())?;
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_setup_names_its_line_and_the_missing_package() {
        let log = "+ apt-get update\nHit:1 bookworm\n+ apt-get install -y openjdk-11-jdk\n\
                   E: Unable to locate package openjdk-11-jdk\n";
        let message = setup_failed(100, log).to_string();
        assert!(
            message.contains("status 100 at: apt-get install -y openjdk-11-jdk"),
            "{message}"
        );
        assert!(
            message.contains("\"openjdk-11-jdk\" does not exist in Debian bookworm"),
            "{message}"
        );
        let message = setup_failed(1, "+ false\n").to_string();
        assert!(
            message.contains("at: false") && !message.contains("hint"),
            "{message}"
        );
    }
}
