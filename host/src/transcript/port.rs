//! The two ports transcripts are made and read through: [`RecordingPort`]
//! passes every call to a real sandbox and writes it with its reply;
//! [`ReplayPort`] answers each call from a transcript, in order, while the
//! calls are the ones recorded, and stops the grader at the first that is
//! not (the submission must then be graded in a sandbox).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use super::{Call, Entry, Failure, Kept, Ran, Recorder, SubmissionFile, TranscriptDir};
use crate::layout::Owner;
use crate::plugin::Pins;
use crate::sandbox::{
    Command, CommandOutcome, FileEntry, HostTree, PortFuture, SandboxError, SandboxPort,
    SandboxSpec, User,
};

/// The kind a failure is recorded under.
#[must_use]
pub fn failure_kind(err: &SandboxError) -> &'static str {
    match err {
        SandboxError::Refused(_) => "refused",
        SandboxError::SubmissionState(_) => "submission-state",
        SandboxError::NotFound(_) => "not-found",
        SandboxError::Lost { .. } => "lost",
        SandboxError::Uncopyable(_) => "uncopyable",
        _ => "infra",
    }
}

fn failure(err: &SandboxError) -> Failure {
    Failure {
        kind: failure_kind(err).into(),
        message: err.to_string(),
    }
}

/// The error a recorded failure was, when it is the student's or the
/// grader's (an outside failure is never replayed).
fn replayed(failure: &Failure) -> Option<SandboxError> {
    let message = failure.message.clone();
    Some(match failure.kind.as_str() {
        "refused" => SandboxError::Refused(message),
        "submission-state" => SandboxError::SubmissionState(message),
        "not-found" => SandboxError::NotFound(message),
        "lost" => SandboxError::Lost {
            reason: message
                .strip_prefix("the sandbox is gone: ")
                .unwrap_or(&message)
                .to_string(),
        },
        _ => return None,
    })
}

/// A real sandbox whose calls are written to a transcript.
pub struct RecordingPort {
    inner: Arc<dyn SandboxPort>,
    recorder: Arc<Recorder>,
}

impl RecordingPort {
    /// Records the calls to `inner` with `recorder`.
    #[must_use]
    pub fn new(inner: Arc<dyn SandboxPort>, recorder: Arc<Recorder>) -> Self {
        Self { inner, recorder }
    }

    fn ran(&self, outcome: &CommandOutcome) -> Ran {
        Ran {
            outcome: outcome.clone(),
            stdout: self.recorder.keep(&outcome.stdout),
            stderr: self.recorder.keep(&outcome.stderr),
        }
    }

    fn stdin(&self, command: &Command) {
        if !command.stdin.is_empty() {
            self.recorder.keep(&command.stdin);
        }
    }
}

/// The sha256 of `entries`' paths and bytes, in order: what a placement
/// put in, so a replay knows whether the same files would go in now.
///
/// # Errors
/// When a host file cannot be read.
pub fn entries_digest(entries: &[FileEntry]) -> std::io::Result<String> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for entry in entries {
        hasher.update((entry.path.len() as u64).to_le_bytes());
        hasher.update(entry.path.as_bytes());
        hasher.update([u8::from(entry.executable)]);
        match &entry.source {
            None => hasher.update([0]),
            Some(crate::sandbox::EntrySource::Bytes(bytes)) => {
                hasher.update([1]);
                hasher.update((bytes.len() as u64).to_le_bytes());
                hasher.update(bytes);
            }
            Some(crate::sandbox::EntrySource::HostFile(path)) => {
                let bytes = crate::layout::read_regular_file(path)?;
                hasher.update([1]);
                hasher.update((bytes.len() as u64).to_le_bytes());
                hasher.update(&bytes);
            }
        }
    }
    Ok(crate::layout::hex(&hasher.finalize()))
}

/// Records the submission's files and the grader's pins: the transcript's
/// first entry.
///
/// # Errors
/// When a file cannot be read.
pub fn record_submission(
    recorder: &Recorder,
    name: &str,
    tree: &HostTree,
    pins: &Pins,
) -> std::io::Result<()> {
    let mut files = Vec::new();
    for entry in tree.file_entries() {
        let contents = match &entry.source {
            Some(crate::sandbox::EntrySource::HostFile(path)) => {
                Some(recorder.keep(&crate::layout::read_regular_file(path)?))
            }
            Some(crate::sandbox::EntrySource::Bytes(bytes)) => Some(recorder.keep(bytes)),
            None => None,
        };
        files.push(SubmissionFile {
            path: entry.path,
            contents,
            executable: entry.executable,
        });
    }
    recorder.record(&Entry::Submission {
        schema: super::TRANSCRIPT_SCHEMA,
        name: name.to_string(),
        files,
        pins: pins.clone(),
    });
    Ok(())
}

impl SandboxPort for RecordingPort {
    fn spec(&self) -> &SandboxSpec {
        self.inner.spec()
    }

    fn run<'a>(&'a self, command: &'a Command) -> PortFuture<'a, CommandOutcome> {
        Box::pin(async move {
            self.stdin(command);
            let ran = self.inner.run(command).await;
            self.recorder.record(&Entry::Run {
                call: Call::of(command),
                reply: ran.as_ref().map(|o| self.ran(o)).map_err(failure),
            });
            ran
        })
    }

    fn converse<'a>(
        &'a self,
        judge: &'a Command,
        student: &'a Command,
    ) -> PortFuture<'a, (CommandOutcome, CommandOutcome)> {
        Box::pin(async move {
            self.stdin(judge);
            self.stdin(student);
            let ended = self.inner.converse(judge, student).await;
            self.recorder.record(&Entry::Converse {
                judge: Call::of(judge),
                student: Call::of(student),
                reply: ended
                    .as_ref()
                    .map(|(j, s)| (self.ran(j), self.ran(s)))
                    .map_err(failure),
            });
            ended
        })
    }

    fn write_file<'a>(
        &'a self,
        path: &'a str,
        bytes: Vec<u8>,
        owner: Owner,
        read_only: bool,
    ) -> PortFuture<'a, ()> {
        Box::pin(async move {
            let contents = self.recorder.keep(&bytes);
            let written = self.inner.write_file(path, bytes, owner, read_only).await;
            self.recorder.record(&Entry::WriteFile {
                path: path.to_string(),
                contents,
                owner,
                read_only,
                reply: written.as_ref().copied().map_err(failure),
            });
            written
        })
    }

    fn read_file<'a>(
        &'a self,
        path: &'a str,
        max_bytes: u64,
        user: User,
    ) -> PortFuture<'a, (Vec<u8>, bool)> {
        Box::pin(async move {
            let read = self.inner.read_file(path, max_bytes, user).await;
            self.recorder.record(&Entry::ReadFile {
                path: path.to_string(),
                max_bytes,
                user,
                reply: read
                    .as_ref()
                    .map(|(bytes, cut)| (self.recorder.keep(bytes), *cut))
                    .map_err(failure),
            });
            read
        })
    }

    fn copy_in<'a>(
        &'a self,
        dest: &'a str,
        entries: Vec<FileEntry>,
        owner: Owner,
        read_only: bool,
    ) -> PortFuture<'a, ()> {
        Box::pin(async move {
            let paths = entries.iter().map(|e| e.path.clone()).collect();
            let contents_sha256 = entries_digest(&entries).ok();
            let placed = self.inner.copy_in(dest, entries, owner, read_only).await;
            self.recorder.record(&Entry::CopyIn {
                dest: dest.to_string(),
                paths,
                contents_sha256,
                owner,
                read_only,
                reply: placed.as_ref().map(|()| None).map_err(failure),
            });
            placed
        })
    }

    fn copy_tree_in<'a>(
        &'a self,
        tree: &'a HostTree,
        dest: &'a str,
        owner: Owner,
        read_only: bool,
    ) -> PortFuture<'a, String> {
        Box::pin(async move {
            let placed = self.inner.copy_tree_in(tree, dest, owner, read_only).await;
            self.recorder.record(&Entry::CopyIn {
                dest: dest.to_string(),
                paths: tree.files().map(str::to_string).collect(),
                contents_sha256: None,
                owner,
                read_only,
                reply: placed.as_ref().map(|d| Some(d.clone())).map_err(failure),
            });
            placed
        })
    }

    fn renew(&self) -> PortFuture<'_, Arc<dyn SandboxPort>> {
        Box::pin(async move {
            let fresh = self.inner.renew().await;
            self.recorder.record(&Entry::Renew {
                reply: fresh.as_ref().map(|_| ()).map_err(failure),
            });
            let fresh: Arc<dyn SandboxPort> =
                Arc::new(RecordingPort::new(fresh?, self.recorder.clone()));
            Ok(fresh)
        })
    }

    fn teardown(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        self.inner.teardown()
    }
}

/// Why a replay stopped before the grader finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// The grader made a call the transcript does not hold: the
    /// submission must be graded in a sandbox.
    Diverged(String),
    /// A blob is missing or not what was recorded: never replayed.
    Refused(String),
}

struct Cursor {
    entries: VecDeque<Entry>,
    at: usize,
    stopped: Option<Stopped>,
}

/// A transcript being replayed, shared by the ports of one submission.
pub struct Replay {
    dir: TranscriptDir,
    spec: SandboxSpec,
    cursor: Mutex<Cursor>,
}

impl Replay {
    /// Replays `entries` (the transcript after its submission entry),
    /// reading blobs from `dir`, as a sandbox made from `spec`.
    #[must_use]
    pub fn new(dir: TranscriptDir, spec: SandboxSpec, entries: Vec<Entry>) -> Arc<Self> {
        Arc::new(Self {
            dir,
            spec,
            cursor: Mutex::new(Cursor {
                entries: entries.into(),
                at: 1,
                stopped: None,
            }),
        })
    }

    /// The first port.
    #[must_use]
    pub fn port(self: &Arc<Self>) -> Arc<dyn SandboxPort> {
        Arc::new(ReplayPort(self.clone()))
    }

    fn cursor(&self) -> std::sync::MutexGuard<'_, Cursor> {
        self.cursor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Why the replay stopped, if it did.
    #[must_use]
    pub fn stopped(&self) -> Option<Stopped> {
        self.cursor().stopped.clone()
    }

    /// Calls recorded that the grader did not make (a grader that now
    /// stops earlier still decides from replies it was given, so this is
    /// no reason to grade again).
    #[must_use]
    pub fn unused(&self) -> usize {
        self.cursor().entries.len()
    }

    /// The next entry, if `matches` it; otherwise the replay stops.
    fn next<T>(
        &self,
        asked: &str,
        take: impl FnOnce(&Entry) -> Option<T>,
    ) -> Result<T, SandboxError> {
        let mut cursor = self.cursor();
        if let Some(stopped) = &cursor.stopped {
            return Err(stop_error(stopped));
        }
        cursor.at += 1;
        let at = cursor.at;
        let taken = cursor.entries.front().and_then(take);
        match taken {
            Some(value) => {
                cursor.entries.pop_front();
                Ok(value)
            }
            None => {
                let recorded = cursor
                    .entries
                    .front()
                    .map_or_else(|| "nothing more".to_string(), describe);
                let stopped = Stopped::Diverged(format!(
                    "call {at}: {asked}, where the transcript has {recorded}"
                ));
                let err = stop_error(&stopped);
                cursor.stopped = Some(stopped);
                Err(err)
            }
        }
    }

    fn refuse(&self, why: String) -> SandboxError {
        let stopped = Stopped::Refused(why);
        let err = stop_error(&stopped);
        self.cursor().stopped = Some(stopped);
        err
    }

    fn bytes(&self, kept: &Kept) -> Result<Vec<u8>, SandboxError> {
        if !kept.stored {
            let mut cursor = self.cursor();
            let stopped = Stopped::Diverged(format!(
                "{} bytes were past the transcript's cap and not kept",
                kept.blob.bytes
            ));
            let err = stop_error(&stopped);
            cursor.stopped = Some(stopped);
            return Err(err);
        }
        self.dir
            .read_blob(&kept.blob)
            .map_err(|e| self.refuse(e.to_string()))
    }

    fn outcome(&self, ran: &Ran) -> Result<CommandOutcome, SandboxError> {
        let mut outcome = ran.outcome.clone();
        outcome.stdout = self.bytes(&ran.stdout)?;
        outcome.stderr = self.bytes(&ran.stderr)?;
        Ok(outcome)
    }

    fn reply<T>(&self, reply: Result<T, Failure>) -> Result<T, SandboxError> {
        match reply {
            Ok(value) => Ok(value),
            Err(failed) => Err(replayed(&failed).unwrap_or_else(|| {
                let stopped = Stopped::Diverged(format!(
                    "the recorded call failed outside the submission ({})",
                    failed.message
                ));
                let err = stop_error(&stopped);
                self.cursor().stopped = Some(stopped);
                err
            })),
        }
    }
}

/// What the grader is told when a replay stops: the sandbox is gone, an
/// outside failure, so the grader's answer is never taken as a result.
fn stop_error(stopped: &Stopped) -> SandboxError {
    let reason = match stopped {
        Stopped::Diverged(why) => format!("replay stopped: {why}"),
        Stopped::Refused(why) => format!("replay refused: {why}"),
    };
    SandboxError::Gone { reason }
}

fn describe(entry: &Entry) -> String {
    match entry {
        Entry::Submission { .. } => "the submission".into(),
        Entry::Run { call, .. } => format!("a run of {:?}", call.argv),
        Entry::Converse { student, .. } => format!("a conversation with {:?}", student.argv),
        Entry::WriteFile { path, .. } => format!("a write of {path}"),
        Entry::ReadFile { path, .. } => format!("a read of {path}"),
        Entry::CopyIn { dest, .. } => format!("files placed in {dest}"),
        Entry::Renew { .. } => "a fresh sandbox".into(),
        Entry::Cut { .. } => "the cap".into(),
        Entry::Log { .. } => "the grader's log".into(),
    }
}

/// One sandbox of a replay.
struct ReplayPort(Arc<Replay>);

impl SandboxPort for ReplayPort {
    fn spec(&self) -> &SandboxSpec {
        &self.0.spec
    }

    fn run<'a>(&'a self, command: &'a Command) -> PortFuture<'a, CommandOutcome> {
        Box::pin(async move {
            let asked = Call::of(command);
            let reply = self
                .0
                .next(&format!("a run of {:?}", command.argv), |e| match e {
                    Entry::Run { call, reply } if *call == asked => Some(reply.clone()),
                    _ => None,
                })?;
            let ran = self.0.reply(reply)?;
            self.0.outcome(&ran)
        })
    }

    fn converse<'a>(
        &'a self,
        judge: &'a Command,
        student: &'a Command,
    ) -> PortFuture<'a, (CommandOutcome, CommandOutcome)> {
        Box::pin(async move {
            let (j, s) = (Call::of(judge), Call::of(student));
            let reply = self.0.next(
                &format!("a conversation with {:?}", student.argv),
                |e| match e {
                    Entry::Converse {
                        judge,
                        student,
                        reply,
                    } if *judge == j && *student == s => Some(reply.clone()),
                    _ => None,
                },
            )?;
            let (judge, student) = self.0.reply(reply)?;
            Ok((self.0.outcome(&judge)?, self.0.outcome(&student)?))
        })
    }

    fn write_file<'a>(
        &'a self,
        path: &'a str,
        bytes: Vec<u8>,
        owner: Owner,
        read_only: bool,
    ) -> PortFuture<'a, ()> {
        Box::pin(async move {
            let digest = super::sha256(&bytes);
            let reply = self.0.next(&format!("a write of {path}"), |e| match e {
                Entry::WriteFile {
                    path: p,
                    contents,
                    owner: o,
                    read_only: r,
                    reply,
                } if p == path
                    && contents.blob.sha256 == digest
                    && *o == owner
                    && *r == read_only =>
                {
                    Some(reply.clone())
                }
                _ => None,
            })?;
            self.0.reply(reply)
        })
    }

    fn read_file<'a>(
        &'a self,
        path: &'a str,
        max_bytes: u64,
        user: User,
    ) -> PortFuture<'a, (Vec<u8>, bool)> {
        Box::pin(async move {
            let reply = self.0.next(&format!("a read of {path}"), |e| match e {
                Entry::ReadFile {
                    path: p,
                    max_bytes: m,
                    user: u,
                    reply,
                } if p == path && *m == max_bytes && *u == user => Some(reply.clone()),
                _ => None,
            })?;
            let (kept, cut) = self.0.reply(reply)?;
            Ok((self.0.bytes(&kept)?, cut))
        })
    }

    fn copy_in<'a>(
        &'a self,
        dest: &'a str,
        entries: Vec<FileEntry>,
        owner: Owner,
        read_only: bool,
    ) -> PortFuture<'a, ()> {
        Box::pin(async move {
            let paths: Vec<String> = entries.iter().map(|e| e.path.clone()).collect();
            let contents = entries_digest(&entries).map_err(|source| SandboxError::Io {
                context: format!("reading the files to place in {dest}"),
                source,
            })?;
            let reply = self
                .0
                .next(&format!("files placed in {dest}"), |e| match e {
                    Entry::CopyIn {
                        dest: d,
                        paths: p,
                        contents_sha256: Some(c),
                        owner: o,
                        read_only: r,
                        reply,
                    } if d == dest
                        && *p == paths
                        && *c == contents
                        && *o == owner
                        && *r == read_only =>
                    {
                        Some(reply.clone())
                    }
                    _ => None,
                })?;
            self.0.reply(reply).map(drop)
        })
    }

    fn copy_tree_in<'a>(
        &'a self,
        tree: &'a HostTree,
        dest: &'a str,
        owner: Owner,
        read_only: bool,
    ) -> PortFuture<'a, String> {
        Box::pin(async move {
            let paths: Vec<String> = tree.files().map(str::to_string).collect();
            let reply = self
                .0
                .next(&format!("files placed in {dest}"), |e| match e {
                    Entry::CopyIn {
                        dest: d,
                        paths: p,
                        contents_sha256: None,
                        owner: o,
                        read_only: r,
                        reply,
                    } if d == dest && *p == paths && *o == owner && *r == read_only => {
                        Some(reply.clone())
                    }
                    _ => None,
                })?;
            let digest = self.0.reply(reply)?.unwrap_or_default();
            // The tree must be the one recorded, byte for byte.
            let here = tree.digest()?;
            if here != digest {
                return Err(self.0.refuse(format!(
                    "the files copied into {dest} are not those recorded"
                )));
            }
            Ok(digest)
        })
    }

    fn renew(&self) -> PortFuture<'_, Arc<dyn SandboxPort>> {
        Box::pin(async move {
            let reply = self.0.next("a fresh sandbox", |e| match e {
                Entry::Renew { reply } => Some(reply.clone()),
                _ => None,
            })?;
            self.0.reply(reply)?;
            Ok(self.0.port())
        })
    }

    fn teardown(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }
}
