//! Moving files into and out of a sandbox.
//!
//! Files go in as a tar stream over the agent's stream, unpacked by the
//! agent binary run as the user who should own them. That reaches the
//! tmpfs places, which the Docker archive API cannot see under gVisor, and
//! large files stream through without ever sitting whole in memory or on a
//! command line. Files come out the same way: the agent binary, run as the
//! reading user, opens the path one part at a time following no link, and
//! checks that what it opened is a regular file, so a planted link or FIFO
//! is refused instead of followed or blocking.

use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio_util::io::SyncIoBridge;

use agh_protocol::{ProcessLimits, Request, RunReport, RunSpec};

use super::agent::{AGENT_IN_SANDBOX, Stdin};
use super::limits::{OPEN_FILES, STACK_BYTES};
use super::{AGENT_GRACE, DOCKER_CALL_TIMEOUT, KILL_MARGIN, Sandbox, SandboxError, User};
use crate::layout::open_regular_file;
use crate::layout::{Owner, check_sandbox_path};

/// Most bytes one read-back may return; graders read outputs, not datasets.
pub const MAX_READ_BYTES: u64 = 64 * 1024 * 1024;
/// Most files one copy from the host may hold (a submission, an asset tree).
pub const MAX_COPY_FILES: usize = 10_000;
/// Most bytes (apparent size, so a sparse file counts in full) of all the
/// files of one submission folder: the same bound as an unpacked archive,
/// so a folder submission cannot be bigger than an uploaded one.
pub const MAX_SUBMISSION_BYTES: u64 = agh_archive::MAX_UNPACKED_BYTES;
/// Bytes of the unpacker's complaint kept.
const HELPER_OUTPUT_BYTES: u64 = 64 * 1024;
/// Processes the agent's file helpers may have.
const HELPER_PROCESSES: u64 = 16;
/// Buffer between the tar builder thread and the agent's stream.
const TAR_PIPE_BYTES: usize = 256 * 1024;
/// How long a copy into the sandbox may take: placing a 500 MB asset under
/// runsc takes seconds, so this only catches a stuck daemon.
pub const COPY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// One file or directory to put into the sandbox, relative to a destination.
#[derive(Debug)]
pub struct FileEntry {
    /// Path below the destination, with `/` separators.
    pub path: String,
    /// Where the bytes come from; `None` for a directory.
    pub source: Option<EntrySource>,
    /// Whether the file should be executable.
    pub executable: bool,
}

/// The bytes of a [`FileEntry`].
#[derive(Debug)]
pub enum EntrySource {
    /// Bytes in memory (small files the grader writes).
    Bytes(Vec<u8>),
    /// A host file, streamed.
    HostFile(PathBuf),
}

/// Checks a relative path from a host tree or a grader: no absolute, `..`,
/// or odd components.
///
/// # Errors
/// [`SandboxError::Refused`] naming the path.
pub fn check_relative(path: &str) -> Result<(), SandboxError> {
    let ok = !path.is_empty()
        && !path.contains('\0')
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(SandboxError::Refused(format!(
            "relative path {path:?} must not be absolute or contain '..'"
        )))
    }
}

/// Lists a host folder as entries, depth first, refusing symbolic links,
/// hard links, devices, FIFOs and sockets instead of following or opening
/// them, and folders whose files add up to more than `max_bytes`.
///
/// # Errors
/// [`SandboxError::Uncopyable`] for a link or special file, or too many files;
/// [`SandboxError::Io`] when the folder cannot be read.
pub fn host_tree_entries(root: &Path, max_bytes: u64) -> Result<Vec<FileEntry>, SandboxError> {
    use std::os::unix::fs::MetadataExt;
    let mut entries = Vec::new();
    let mut bytes = 0u64;
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let dir = root.join(&relative);
        let io_err = |source| SandboxError::Io {
            context: format!("reading {}", dir.display()),
            source,
        };
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .map_err(io_err)?
            .collect::<Result<_, _>>()
            .map_err(io_err)?;
        names.sort_by_key(std::fs::DirEntry::file_name);
        for item in names {
            let rel = relative.join(item.file_name());
            let rel_text = rel.to_str().ok_or_else(|| {
                SandboxError::Uncopyable(format!("file name {} is not UTF-8", rel.display()))
            })?;
            crate::layout::check_path_shape(rel.components().count(), rel_text.len())
                .map_err(|why| SandboxError::Uncopyable(format!("{rel_text:.200} {why}")))?;
            let meta = item.metadata().map_err(io_err)?; // lstat: links are not followed
            let kind = meta.file_type();
            if kind.is_dir() {
                entries.push(FileEntry {
                    path: rel_text.to_string(),
                    source: None,
                    executable: true,
                });
                pending.push(rel);
            } else if kind.is_file() {
                use std::os::unix::fs::PermissionsExt;
                if meta.nlink() > 1 {
                    return Err(SandboxError::Uncopyable(format!(
                        "{} is a hard link; only files of the folder's own are copied",
                        root.join(&rel).display()
                    )));
                }
                bytes = bytes.saturating_add(meta.len());
                if bytes > max_bytes {
                    return Err(SandboxError::Uncopyable(format!(
                        "{} holds more than {} of files",
                        root.display(),
                        bytesize::ByteSize(max_bytes)
                    )));
                }
                let executable = meta.permissions().mode() & 0o111 != 0;
                entries.push(FileEntry {
                    path: rel_text.to_string(),
                    source: Some(EntrySource::HostFile(item.path())),
                    executable,
                });
            } else {
                return Err(SandboxError::Uncopyable(format!(
                    "{} is a symbolic link or special file; only regular files and folders are copied",
                    root.join(&rel).display()
                )));
            }
            if entries.len() > MAX_COPY_FILES {
                return Err(SandboxError::Uncopyable(format!(
                    "{} holds more than {MAX_COPY_FILES} files",
                    root.display()
                )));
            }
        }
    }
    Ok(entries)
}

/// Writes `entries` as a tar stream with the given owner and modes, and
/// returns the [`TreeDigest`] of what it wrote: the bytes that went in,
/// not what the files held before or after.
fn write_tar(
    out: impl io::Write,
    prefix: &str,
    entries: Vec<FileEntry>,
    owner: Owner,
    read_only: bool,
) -> io::Result<String> {
    let mut digest = TreeDigest::default();
    let mut builder = tar::Builder::new(out);
    let mut parents: Vec<String> = Vec::new();
    // Intermediate folders of the prefix, so tar creates them owned right.
    let mut acc = String::new();
    for part in prefix.split('/').filter(|p| !p.is_empty()) {
        acc = if acc.is_empty() {
            part.to_string()
        } else {
            format!("{acc}/{part}")
        };
        parents.push(acc.clone());
    }
    let header_for = |size: u64, mode: u32, kind: tar::EntryType| {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(mode);
        header.set_uid(u64::from(owner.uid()));
        header.set_gid(u64::from(owner.uid()));
        header.set_entry_type(kind);
        header.set_mtime(0);
        header
    };
    for dir in parents {
        let mut header = header_for(0, 0o755, tar::EntryType::Directory);
        builder.append_data(&mut header, &dir, io::empty())?;
    }
    let join = |path: &str| {
        if prefix.is_empty() {
            path.to_string()
        } else {
            format!("{prefix}/{path}")
        }
    };
    let write_bits = if read_only { 0 } else { 0o200 };
    for entry in entries {
        let exec_bits = if entry.executable { 0o111 } else { 0 };
        digest.start(&entry.path);
        match entry.source {
            None => {
                // Folders stay writable by their owner so the rest extracts.
                let mut header = header_for(0, 0o755, tar::EntryType::Directory);
                builder.append_data(&mut header, join(&entry.path), io::empty())?;
            }
            Some(EntrySource::Bytes(bytes)) => {
                let mut header = header_for(
                    bytes.len() as u64,
                    0o444 | write_bits | exec_bits,
                    tar::EntryType::Regular,
                );
                digest.content(&bytes);
                builder.append_data(&mut header, join(&entry.path), bytes.as_slice())?;
            }
            Some(EntrySource::HostFile(path)) => {
                let file = open_regular_file(&path)?;
                let size = file.metadata()?.len();
                let mut header = header_for(
                    size,
                    0o444 | write_bits | exec_bits,
                    tar::EntryType::Regular,
                );
                // take(): a file that grows while copying cannot overrun its header.
                let hashed = Hashing {
                    inner: file.take(size),
                    digest: &mut digest,
                };
                builder.append_data(&mut header, join(&entry.path), hashed)?;
            }
        }
        digest.end();
    }
    builder.finish()?;
    Ok(digest.finish())
}

/// The sha256 agh records for a tree of files: over each entry in order,
/// its relative path, a zero byte, its content (none for a folder), a zero
/// byte. Computed while the files are copied in, so what is recorded is
/// what was copied.
#[derive(Default)]
pub struct TreeDigest(Sha256);

impl TreeDigest {
    fn start(&mut self, path: &str) {
        self.0.update(path.as_bytes());
        self.0.update([0]);
    }

    fn content(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn end(&mut self) {
        self.0.update([0]);
    }

    fn finish(self) -> String {
        crate::layout::hex(&self.0.finalize())
    }
}

/// A reader that feeds what it reads to a [`TreeDigest`].
struct Hashing<'a, R> {
    inner: R,
    digest: &'a mut TreeDigest,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digest.content(&buf[..n]);
        Ok(n)
    }
}

/// A host folder walked once ([`host_tree_entries`]): the files and
/// folders every later use of it (the copy into a sandbox, a grader's
/// listing, a reset) takes, so none of them walks it again or sees a
/// different set of entries.
#[derive(Debug, Clone)]
pub struct HostTree {
    root: PathBuf,
    entries: Vec<TreeEntry>,
}

#[derive(Debug, Clone)]
struct TreeEntry {
    path: String,
    file: bool,
    executable: bool,
}

impl HostTree {
    /// Walks `root` once, with the checks and bound of [`host_tree_entries`].
    ///
    /// # Errors
    /// As [`host_tree_entries`].
    pub fn walk(root: &Path, max_bytes: u64) -> Result<Self, SandboxError> {
        let entries = host_tree_entries(root, max_bytes)?
            .into_iter()
            .map(|entry| TreeEntry {
                file: entry.source.is_some(),
                path: entry.path,
                executable: entry.executable,
            })
            .collect();
        Ok(Self {
            root: root.to_path_buf(),
            entries,
        })
    }

    /// The folder on the host.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The files' relative paths, in walk order (folders left out).
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter(|e| e.file)
            .map(|e| e.path.as_str())
    }

    /// The entries to copy, each file streamed from the host.
    #[must_use]
    pub fn file_entries(&self) -> Vec<FileEntry> {
        self.entries
            .iter()
            .map(|e| FileEntry {
                path: e.path.clone(),
                source: e
                    .file
                    .then(|| EntrySource::HostFile(self.root.join(&e.path))),
                executable: e.executable,
            })
            .collect()
    }

    /// The [`TreeDigest`] of the files as they are now: one read of each.
    ///
    /// # Errors
    /// When a file cannot be opened (a link planted since the walk
    /// included) or read.
    pub fn digest(&self) -> Result<String, SandboxError> {
        let mut digest = TreeDigest::default();
        for entry in &self.entries {
            digest.start(&entry.path);
            if entry.file {
                let path = self.root.join(&entry.path);
                let io = |source| SandboxError::Io {
                    context: format!("hashing {}", path.display()),
                    source,
                };
                let file = open_regular_file(&path).map_err(io)?;
                let mut hashed = Hashing {
                    inner: file,
                    digest: &mut digest,
                };
                io::copy(&mut hashed, &mut io::sink()).map_err(io)?;
            }
            digest.end();
        }
        Ok(digest.finish())
    }
}

impl Sandbox {
    /// Places `entries` below `dest` (a folder inside one of `owner`'s
    /// places), owned by `owner`, without write permission when `read_only`.
    ///
    /// # Errors
    /// [`SandboxError::Refused`] for a refused path; [`SandboxError::SubmissionState`] when what the student left stops it; [`SandboxError::Lost`]
    /// when the sandbox died; infra errors when Docker or the host fails.
    pub async fn copy_in(
        &self,
        dest: &str,
        entries: Vec<FileEntry>,
        owner: Owner,
        read_only: bool,
    ) -> Result<(), SandboxError> {
        self.copy_in_digest(dest, entries, owner, read_only)
            .await
            .map(drop)
    }

    /// Places a walked host tree below `dest`, as [`Sandbox::copy_in`],
    /// and returns the [`TreeDigest`] of the bytes that went in.
    ///
    /// # Errors
    /// As [`Sandbox::copy_in`].
    pub async fn copy_tree_in(
        &self,
        tree: &HostTree,
        dest: &str,
        owner: Owner,
        read_only: bool,
    ) -> Result<String, SandboxError> {
        self.copy_in_digest(dest, tree.file_entries(), owner, read_only)
            .await
    }

    async fn copy_in_digest(
        &self,
        dest: &str,
        entries: Vec<FileEntry>,
        owner: Owner,
        read_only: bool,
    ) -> Result<String, SandboxError> {
        self.ensure_alive()?;
        let (place, prefix) = check_sandbox_path(dest, owner)?;
        for entry in &entries {
            check_relative(&entry.path)?;
        }
        let (reader, writer) = tokio::io::duplex(TAR_PIPE_BYTES);
        let builder = tokio::task::spawn_blocking(move || {
            write_tar(
                SyncIoBridge::new(writer),
                &prefix,
                entries,
                owner,
                read_only,
            )
        });
        let place_limit = self
            .spec
            .limits
            .tmpfs_bytes
            .max(self.spec.limits.file_size_bytes);
        let ran = self
            .helper(
                vec![AGENT_IN_SANDBOX.into(), "extract".into(), place.into()],
                owner.uid(),
                Stdin::Stream(Box::pin(reader)),
                HELPER_OUTPUT_BYTES,
                COPY_TIMEOUT,
                place_limit,
            )
            .await;
        let built = builder.await.map_err(|e| SandboxError::Io {
            context: "building the tar stream".into(),
            source: io::Error::other(e),
        })?;
        let (report, _, stderr) = ran?;
        // The stream comes from this host's disk; what the agent spends
        // the time on is unpacking. Into the student's places that is the
        // submission's shape (its files and folders, each bounded at
        // intake), with no sign of anything outside: the student's.
        if report.timed_out && owner == Owner::Student {
            return Err(SandboxError::Uncopyable(format!(
                "copying into {dest} took longer than {}s: the submission's files and folders \
                 take too long to unpack",
                COPY_TIMEOUT.as_secs()
            )));
        }
        if report.timed_out {
            return Err(SandboxError::Timeout {
                operation: "copy into sandbox",
                timeout: COPY_TIMEOUT,
            });
        }
        // The unpacker's own complaint (no space, permission) says more
        // than the broken pipe the tar builder sees when it gives up early.
        if report.exit_code != Some(0) {
            return Err(SandboxError::SubmissionState(format!(
                "extracting into {dest} failed: {}",
                String::from_utf8_lossy(&stderr).trim()
            )));
        }
        built.map_err(|source| SandboxError::Io {
            context: format!("copying into {dest}"),
            source,
        })
    }

    /// Copies a host folder's files below `dest`; see [`host_tree_entries`].
    ///
    /// # Errors
    /// As [`host_tree_entries`] and [`Sandbox::copy_in`].
    pub async fn copy_dir_in(
        &self,
        host_dir: &Path,
        dest: &str,
        owner: Owner,
        read_only: bool,
    ) -> Result<(), SandboxError> {
        let walked = host_dir.to_path_buf();
        let tree =
            tokio::task::spawn_blocking(move || HostTree::walk(&walked, MAX_SUBMISSION_BYTES))
                .await
                .map_err(|e| SandboxError::Io {
                    context: format!("listing {}", host_dir.display()),
                    source: io::Error::other(e),
                })??;
        self.copy_tree_in(&tree, dest, owner, read_only)
            .await
            .map(drop)
    }

    /// Writes one file at `path` with `bytes`.
    ///
    /// # Errors
    /// As [`Sandbox::copy_in`].
    pub async fn write_file(
        &self,
        path: &str,
        bytes: Vec<u8>,
        owner: Owner,
        read_only: bool,
    ) -> Result<(), SandboxError> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let entry = FileEntry {
            path: name.to_string(),
            source: Some(EntrySource::Bytes(bytes)),
            executable: false,
        };
        self.copy_in(
            if dir.is_empty() { "/" } else { dir },
            vec![entry],
            owner,
            read_only,
        )
        .await
    }

    /// Reads up to `max_bytes` of the regular file at `path` as `user`.
    /// Returns the bytes and whether the file was longer.
    ///
    /// # Errors
    /// [`SandboxError::Refused`] for a malformed path; [`SandboxError::SubmissionState`] when it is not a regular file,
    /// reached through a symbolic link, or unreadable by `user`;
    /// [`SandboxError::NotFound`] when it is missing.
    pub async fn read_file(
        &self,
        path: &str,
        max_bytes: u64,
        user: User,
    ) -> Result<(Vec<u8>, bool), SandboxError> {
        // Exit statuses of the agent's reader, for a clear refusal.
        const LINK: i32 = agh_protocol::READ_LINK as i32;
        const NOT_REGULAR: i32 = agh_protocol::READ_NOT_REGULAR as i32;
        const MISSING: i32 = agh_protocol::READ_MISSING as i32;
        self.ensure_alive()?;
        if !path.starts_with('/') || path.contains('\0') || path.split('/').any(|p| p == "..") {
            return Err(SandboxError::Refused(format!(
                "read path {path:?} must be absolute without '..'"
            )));
        }
        let max_bytes = max_bytes.min(MAX_READ_BYTES);
        let (report, mut stdout, stderr) = self
            .helper(
                vec![
                    AGENT_IN_SANDBOX.into(),
                    "read".into(),
                    path.into(),
                    (max_bytes + 1).to_string(),
                ],
                user.uid(),
                Stdin::None,
                max_bytes + 1,
                DOCKER_CALL_TIMEOUT,
                0,
            )
            .await?;
        if report.timed_out {
            return Err(SandboxError::Timeout {
                operation: "read file",
                timeout: DOCKER_CALL_TIMEOUT,
            });
        }
        match report.exit_code {
            // The reader stops one byte past the cap; should the agent's
            // cap end it first, what it read is still the file's start.
            _ if report.stdout_truncated => {
                stdout.truncate(usize::try_from(max_bytes).unwrap_or(usize::MAX));
                Ok((stdout, true))
            }
            Some(0) => {
                let truncated = stdout.len() as u64 > max_bytes;
                stdout.truncate(usize::try_from(max_bytes).unwrap_or(usize::MAX));
                Ok((stdout, truncated))
            }
            Some(LINK) => Err(SandboxError::SubmissionState(format!(
                "{path} is or passes through a symbolic link; not read"
            ))),
            Some(NOT_REGULAR) => Err(SandboxError::SubmissionState(format!(
                "{path} is not a regular file"
            ))),
            Some(MISSING) => Err(SandboxError::NotFound(format!("{path} does not exist"))),
            code => Err(SandboxError::SubmissionState(format!(
                "reading {path} failed (exit {code:?}): {}",
                String::from_utf8_lossy(&stderr).trim()
            ))),
        }
    }

    /// Runs the agent binary as `uid` for file work: not a student's
    /// command, so a sandbox that dies during it is never charged to one.
    async fn helper(
        &self,
        argv: Vec<String>,
        uid: u32,
        stdin: Stdin,
        output_cap: u64,
        deadline: std::time::Duration,
        file_size_bytes: u64,
    ) -> Result<(RunReport, Vec<u8>, Vec<u8>), SandboxError> {
        let spec = RunSpec {
            argv,
            env: vec!["PATH=/usr/bin:/bin".into()],
            cwd: "/".into(),
            uid,
            gid: uid,
            limits: ProcessLimits {
                processes: HELPER_PROCESSES,
                file_size_bytes: file_size_bytes.max(1),
                cpu_seconds: deadline.as_secs().max(1),
                open_files: OPEN_FILES,
                stack_bytes: STACK_BYTES,
            },
            deadline_ms: u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
            output_cap,
            stdin: !matches!(stdin, Stdin::None),
            file_size_probe: None,
            places: Vec::new(),
            student_door: None,
        };
        let within = deadline + KILL_MARGIN + AGENT_GRACE;
        let request = Request::Run { spec };
        let exchange = match self
            .link
            .exchange(&request, stdin, [output_cap, 0], within)
            .await
        {
            Ok(exchange) => exchange,
            Err(broken) => {
                return Err(self.account_for(&broken.error, false).await.into_error());
            }
        };
        match exchange.into_run() {
            Ok(ran) => Ok(ran),
            Err(other) => Err(self.unexpected(&other).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_trees_refuse_links_and_fifos() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.py"), "print(1)").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("leak")).unwrap();
        let err = host_tree_entries(dir.path(), MAX_SUBMISSION_BYTES)
            .unwrap_err()
            .to_string();
        assert!(err.contains("symbolic link"), "{err}");
        std::fs::remove_file(dir.path().join("leak")).unwrap();
        // mkfifo(3) is unsafe in Rust; the coreutils tool does the same.
        let status = std::process::Command::new("mkfifo")
            .arg(dir.path().join("pipe"))
            .status()
            .unwrap();
        assert!(status.success());
        let err = host_tree_entries(dir.path(), MAX_SUBMISSION_BYTES)
            .unwrap_err()
            .to_string();
        assert!(err.contains("special file"), "{err}");
        std::fs::remove_file(dir.path().join("pipe")).unwrap();
        let entries = host_tree_entries(dir.path(), MAX_SUBMISSION_BYTES).unwrap();
        assert_eq!(
            entries.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
            ["main.py"]
        );
    }

    #[test]
    fn host_trees_refuse_hard_links_and_huge_sparse_files() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host file").unwrap();
        std::fs::hard_link(outside.path().join("secret"), dir.path().join("main.py")).unwrap();
        let err = host_tree_entries(dir.path(), MAX_SUBMISSION_BYTES)
            .unwrap_err()
            .to_string();
        assert!(err.contains("hard link"), "{err}");
        assert!(open_regular_file(&dir.path().join("main.py")).is_err());
        std::fs::remove_file(dir.path().join("main.py")).unwrap();
        let sparse = std::fs::File::create(dir.path().join("sparse")).unwrap();
        sparse.set_len(2 * 1024 * 1024 * 1024).unwrap();
        let err = host_tree_entries(dir.path(), MAX_SUBMISSION_BYTES)
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds more than"), "{err}");
    }

    #[test]
    fn opening_refuses_links() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("l")).unwrap();
        assert!(open_regular_file(&dir.path().join("l")).is_err());
    }
}
