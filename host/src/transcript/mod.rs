//! Transcripts: every call a grader made into its submission's sandbox,
//! and each reply, recorded at the [`SandboxPort`](crate::sandbox::SandboxPort)
//! seam while it grades, so staff can read what ran and what it printed
//! (`agh show`), and a changed grader can be run again on the replies
//! instead of on a sandbox (`agh rescore`).
//!
//! A transcript is a file of JSON lines, `OUT/transcripts/NAME.jsonl`, one
//! [`Entry`] per call, written as the calls happen (nothing is held in
//! memory) into a temporary file that takes its name only when the result
//! is recorded: a transcript is whole or absent, like a result. Bytes (the
//! submission's files, stdin, stdout, stderr, files written and read) are
//! blobs in `OUT/blobs`, named by their sha256, each stored once however
//! often it recurs. A submission's transcript holds at most
//! [`MAX_TRANSCRIPT_BYTES`] of new blobs; past that, bytes are not kept,
//! the entry says so, and such a call cannot be replayed.

pub mod port;
pub mod rescore;
pub mod show;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::layout::Owner;
use crate::plugin::Pins;
use crate::sandbox::{Command, CommandOutcome, User};

/// The transcript format's version, in each transcript's first entry.
pub const TRANSCRIPT_SCHEMA: u32 = 1;

/// Most bytes of new blobs one submission's transcript stores.
pub const MAX_TRANSCRIPT_BYTES: u64 = 64 * 1024 * 1024;

/// The folder of transcripts in an output folder.
pub const TRANSCRIPTS_DIR: &str = "transcripts";

/// How a transcript being written is named until it is finished.
const PARTIAL_PREFIX: &str = ".partial-";

/// The folder of blobs in an output folder.
pub const BLOBS_DIR: &str = "blobs";

/// Bytes kept as a blob: their sha256 and length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blob {
    /// Lower-case hex sha256 of the bytes.
    pub sha256: String,
    /// How many bytes.
    pub bytes: u64,
}

/// Bytes as a transcript holds them: a blob, or only their digest when the
/// transcript's cap was reached (then they cannot be replayed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// The bytes' blob.
    #[serde(flatten)]
    pub blob: Blob,
    /// False when the cap was reached and the blob was not stored.
    pub stored: bool,
}

/// A command as a transcript matches it: what the grader asked for, less
/// what the host derives per run (what is left of the submission's time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// The user.
    pub user: User,
    /// Working directory (empty: the user's own).
    pub cwd: String,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// The sha256 of stdin, when there was any.
    pub stdin_sha256: Option<String>,
    /// The time limit asked for, in milliseconds.
    pub wall_time_ms: Option<u64>,
    /// The CPU time asked for, in milliseconds.
    pub cpu_time_ms: Option<u64>,
    /// The output cap asked for.
    pub output_bytes: Option<u64>,
}

impl Call {
    /// `command` as matched.
    #[must_use]
    pub fn of(command: &Command) -> Self {
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            argv: command.argv.clone(),
            user: command.user,
            cwd: command.cwd.clone(),
            env: command.env.clone(),
            stdin_sha256: (!command.stdin.is_empty()).then(|| sha256(&command.stdin)),
            wall_time_ms: command.wall_time.map(ms),
            cpu_time_ms: command.cpu_time.map(ms),
            output_bytes: command.output_bytes,
        }
    }
}

/// How one command ended, with its output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ran {
    /// Its flags, times and memory (stdout and stderr are the blobs).
    pub outcome: CommandOutcome,
    /// Its stdout.
    pub stdout: Kept,
    /// Its stderr.
    pub stderr: Kept,
}

/// A call that failed, as the grader was told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The kind ([`port::failure_kind`]); only the student's and the
    /// grader's kinds are replayed.
    pub kind: String,
    /// The message.
    pub message: String,
}

/// One call of a transcript and its reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
#[allow(clippy::large_enum_variant)] // read one at a time, never held in bulk
pub enum Entry {
    /// First: the submission, its files (path, blob, executable), and
    /// what the grader's randomness and clocks were pinned to.
    Submission {
        /// [`TRANSCRIPT_SCHEMA`].
        schema: u32,
        /// The submission's name.
        name: String,
        /// Its files, in the order they were copied.
        files: Vec<SubmissionFile>,
        /// The grader's seed and clocks, given again in a replay.
        pins: Pins,
    },
    /// A command.
    Run {
        /// What was asked.
        call: Call,
        /// What happened, or why it did not run.
        reply: Result<Ran, Failure>,
    },
    /// A judge and a program talking.
    Converse {
        /// The judge asked for.
        judge: Call,
        /// The program asked for.
        student: Call,
        /// How both ended.
        reply: Result<(Ran, Ran), Failure>,
    },
    /// A file written by the grader.
    WriteFile {
        /// Where.
        path: String,
        /// What.
        contents: Kept,
        /// Whose.
        owner: Owner,
        /// Without write permission.
        read_only: bool,
        /// Whether it was written.
        reply: Result<(), Failure>,
    },
    /// A file read back by the grader.
    ReadFile {
        /// Where.
        path: String,
        /// The most asked for.
        max_bytes: u64,
        /// As whom.
        user: User,
        /// What was read and whether it was cut.
        reply: Result<(Kept, bool), Failure>,
    },
    /// Files placed (an asset, or the submission in a fresh sandbox).
    CopyIn {
        /// Below where.
        dest: String,
        /// The entries' paths.
        paths: Vec<String>,
        /// The sha256 of their paths and bytes ([`port::entries_digest`]);
        /// none for the submission's tree, whose digest is the reply's.
        #[serde(default)]
        contents_sha256: Option<String>,
        /// Whose.
        owner: Owner,
        /// Without write permission.
        read_only: bool,
        /// The digest of what went in, for a tree; whether it went in.
        reply: Result<Option<String>, Failure>,
    },
    /// A fresh sandbox.
    Renew {
        /// Whether one was made.
        reply: Result<(), Failure>,
    },
    /// What the grader logged, once it is done (its log is bounded).
    Log {
        /// The lines, in order.
        lines: Vec<String>,
    },
    /// The transcript's cap was reached: bytes after this are digests only.
    Cut {
        /// The cap.
        max_bytes: u64,
    },
}

/// One of a submission's files in a transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmissionFile {
    /// Its path below the submission.
    pub path: String,
    /// Its bytes; `None` for a folder.
    pub contents: Option<Kept>,
    /// Whether it is executable.
    pub executable: bool,
}

/// Where a result's transcript is, as the result records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TranscriptRef {
    /// Its path in the output folder (`transcripts/NAME.jsonl`).
    pub path: String,
    /// The sha256 of the transcript file.
    pub sha256: String,
    /// Its entries.
    pub entries: u64,
    /// Whether the cap was reached (some bytes are digests only).
    pub cut: bool,
}

/// Lower-case hex sha256 of `bytes`.
#[must_use]
pub fn sha256(bytes: &[u8]) -> String {
    crate::layout::hex(&Sha256::digest(bytes))
}

/// An output folder's transcripts and blobs.
#[derive(Debug, Clone)]
pub struct TranscriptDir {
    root: PathBuf,
}

impl TranscriptDir {
    /// Those of the output folder `out` (made when first written).
    #[must_use]
    pub fn new(out: &Path) -> Self {
        Self {
            root: out.to_path_buf(),
        }
    }

    /// The output folder.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs(&self) -> PathBuf {
        self.root.join(BLOBS_DIR)
    }

    /// The file of the blob `sha256`.
    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.blobs().join(sha256)
    }

    /// Removes transcripts left unfinished by a run that was killed: only
    /// agh's own temporary files, and only under the output folder's lock
    /// (no other run is writing them). Returns how many.
    pub fn remove_partials(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(self.root.join(TRANSCRIPTS_DIR)) else {
            return 0;
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(PARTIAL_PREFIX))
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| std::fs::remove_file(e.path()).is_ok())
            .count()
    }

    /// Starts the transcript of one grading of `name`.
    ///
    /// # Errors
    /// When its folder or file cannot be made.
    pub fn start(&self, name: &str) -> std::io::Result<Recorder> {
        crate::names::check_name(name)
            .map_err(|e| std::io::Error::other(format!("{name:?}: {e}")))?;
        let dir = self.root.join(TRANSCRIPTS_DIR);
        std::fs::create_dir_all(&dir)?;
        std::fs::create_dir_all(self.blobs())?;
        let file = tempfile::Builder::new()
            .prefix(PARTIAL_PREFIX)
            .suffix(".jsonl")
            .tempfile_in(&dir)?;
        Ok(Recorder {
            dir: self.clone(),
            name: name.to_string(),
            state: Mutex::new(RecorderState {
                file: Some(std::io::BufWriter::new(file)),
                hasher: Sha256::new(),
                stored: 0,
                entries: 0,
                cut: false,
                failed: None,
            }),
        })
    }

    /// The bytes of blob `blob`, checked against its digest.
    ///
    /// # Errors
    /// [`TranscriptError`] when it is missing, or its bytes are not the
    /// ones recorded (tampered with, or damaged).
    pub fn read_blob(&self, blob: &Blob) -> Result<Vec<u8>, TranscriptError> {
        if !blob.sha256.bytes().all(|b| b.is_ascii_hexdigit()) || blob.sha256.len() != 64 {
            return Err(TranscriptError::Tampered(format!(
                "{:?} is not a blob name",
                blob.sha256
            )));
        }
        let path = self.blob_path(&blob.sha256);
        let file = crate::layout::open_regular_file(&path)
            .map_err(|e| TranscriptError::Missing(format!("blob {}: {e}", blob.sha256)))?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(file, blob.bytes.saturating_add(1)),
            &mut bytes,
        )
        .map_err(|e| TranscriptError::Missing(format!("blob {}: {e}", blob.sha256)))?;
        if bytes.len() as u64 != blob.bytes || sha256(&bytes) != blob.sha256 {
            return Err(TranscriptError::Tampered(format!(
                "blob {} does not hold the bytes recorded",
                blob.sha256
            )));
        }
        Ok(bytes)
    }

    /// The entries of the transcript `reference` names, checked against
    /// its digest.
    ///
    /// # Errors
    /// [`TranscriptError`] when it is missing, altered or unreadable.
    pub fn load(&self, reference: &TranscriptRef) -> Result<Vec<Entry>, TranscriptError> {
        let name = reference
            .path
            .strip_prefix(&format!("{TRANSCRIPTS_DIR}/"))
            .filter(|n| crate::names::check_name(n.trim_end_matches(".jsonl")).is_ok())
            .ok_or_else(|| {
                TranscriptError::Tampered(format!("{:?} is not a transcript path", reference.path))
            })?;
        let path = self.root.join(TRANSCRIPTS_DIR).join(name);
        let file = crate::layout::open_regular_file(&path)
            .map_err(|e| TranscriptError::Missing(format!("{}: {e}", path.display())))?;
        let mut hasher = Sha256::new();
        let mut entries = Vec::new();
        for line in std::io::BufReader::new(file).lines() {
            let line =
                line.map_err(|e| TranscriptError::Missing(format!("{}: {e}", path.display())))?;
            hasher.update(line.as_bytes());
            hasher.update(b"\n");
            let entry: Entry = serde_json::from_str(&line).map_err(|e| {
                TranscriptError::Tampered(format!(
                    "{}: entry {}: {e}",
                    path.display(),
                    entries.len() + 1
                ))
            })?;
            entries.push(entry);
        }
        if crate::layout::hex(&hasher.finalize()) != reference.sha256 {
            return Err(TranscriptError::Tampered(format!(
                "{} is not the transcript its result recorded",
                path.display()
            )));
        }
        match entries.first() {
            Some(Entry::Submission { schema, .. }) if *schema == TRANSCRIPT_SCHEMA => Ok(entries),
            Some(Entry::Submission { schema, .. }) => Err(TranscriptError::Tampered(format!(
                "{}: transcript schema {schema}; this agh reads {TRANSCRIPT_SCHEMA}",
                path.display()
            ))),
            _ => Err(TranscriptError::Tampered(format!(
                "{} does not begin with its submission",
                path.display()
            ))),
        }
    }
}

/// Why a transcript cannot be read or replayed.
#[derive(Debug, thiserror::Error)]
pub enum TranscriptError {
    /// A transcript or blob is not there.
    #[error("missing: {0}")]
    Missing(String),
    /// A transcript or blob is not what was recorded.
    #[error("refused: {0}")]
    Tampered(String),
}

/// One grading's transcript as it is written.
pub struct Recorder {
    dir: TranscriptDir,
    name: String,
    state: Mutex<RecorderState>,
}

struct RecorderState {
    file: Option<std::io::BufWriter<tempfile::NamedTempFile>>,
    hasher: Sha256,
    stored: u64,
    entries: u64,
    cut: bool,
    failed: Option<String>,
}

impl Recorder {
    fn state(&self) -> std::sync::MutexGuard<'_, RecorderState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `bytes` as a blob, unless the cap is reached.
    pub fn keep(&self, bytes: &[u8]) -> Kept {
        let blob = Blob {
            sha256: sha256(bytes),
            bytes: bytes.len() as u64,
        };
        let path = self.dir.blob_path(&blob.sha256);
        if path.is_file() {
            return Kept { blob, stored: true };
        }
        let mut state = self.state();
        if state.cut || state.stored + blob.bytes > MAX_TRANSCRIPT_BYTES {
            if !state.cut {
                state.cut = true;
                drop(state);
                self.record(&Entry::Cut {
                    max_bytes: MAX_TRANSCRIPT_BYTES,
                });
            }
            return Kept {
                blob,
                stored: false,
            };
        }
        state.stored += blob.bytes;
        drop(state);
        if let Err(err) = crate::layout::write_atomic(&self.dir.blobs(), &path, bytes) {
            self.state().failed = Some(format!("writing blob {}: {err}", blob.sha256));
        }
        Kept { blob, stored: true }
    }

    /// Appends `entry`.
    pub fn record(&self, entry: &Entry) {
        let mut state = self.state();
        let Ok(mut line) = serde_json::to_string(entry) else {
            return;
        };
        line.push('\n');
        state.hasher.update(line.as_bytes());
        state.entries += 1;
        let written = state
            .file
            .as_mut()
            .map(|file| file.write_all(line.as_bytes()));
        if let Some(Err(err)) = written {
            state.failed = Some(format!("writing the transcript: {err}"));
        }
    }

    /// Gives the transcript its name, `transcripts/NAME.jsonl`, replacing an
    /// earlier one of the same submission.
    ///
    /// # Errors
    /// When it could not be written whole.
    pub fn finish(&self) -> Result<TranscriptRef, String> {
        let mut state = self.state();
        if let Some(why) = state.failed.take() {
            return Err(why);
        }
        let file = state
            .file
            .take()
            .ok_or("the transcript was finished already")?;
        let file = file.into_inner().map_err(|e| e.to_string())?;
        file.as_file().sync_all().map_err(|e| e.to_string())?;
        let relative = format!("{TRANSCRIPTS_DIR}/{}.jsonl", self.name);
        file.persist(self.dir.root.join(&relative))
            .map_err(|e| e.error.to_string())?;
        let sha256 = crate::layout::hex(&std::mem::take(&mut state.hasher).finalize());
        Ok(TranscriptRef {
            path: relative,
            sha256,
            entries: state.entries,
            cut: state.cut,
        })
    }
}
