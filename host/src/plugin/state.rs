//! What a grader's store holds: its WASI context (which grants nothing of
//! the host; its randomness and clocks pinned), its limits, and the session of the submission being graded.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::types::Error;
use crate::assets::ResolvedAsset;
use crate::sandbox::{CommandOutcome, HostTree, SandboxPort};

/// Linear memory one grader instance may use.
pub const GRADER_MEMORY_BYTES: usize = 256 * 1024 * 1024;
/// Host calls one grader may make per export call: far above what grading
/// needs, low enough that a call flood ends in seconds.
pub const MAX_HOST_CALLS: u64 = 100_000;
/// Bytes of the grader's own stdout and stderr kept (panic messages).
pub const GRADER_STDIO_BYTES: usize = 64 * 1024;

/// The grader broke a rule of the host; it is stopped with this as the trap.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PolicyViolation(pub String);

/// Docker, the disk or another host part failed while the grader ran; the
/// submission is an infra error, retried, never scored.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InfraFailure(pub String);

/// Time the submission's commands have taken, watched while they run.
///
/// Time in the student's commands is the student's: it does not count
/// against the grader's wall budget (`grade` reads this clock while the
/// call is under way, a command still running included), and it is bounded
/// per submission by the operator's `submission_time` instead.
#[derive(Debug, Default)]
pub struct StudentClock(std::sync::Mutex<ClockState>);

#[derive(Debug, Default)]
struct ClockState {
    spent: Duration,
    since: Option<std::time::Instant>,
}

impl StudentClock {
    fn state(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A command (or a reset the student's program made necessary) starts.
    pub fn start(&self) {
        self.state().since = Some(std::time::Instant::now());
    }

    /// It ended.
    pub fn stop(&self) {
        let mut state = self.state();
        if let Some(since) = state.since.take() {
            state.spent += since.elapsed();
        }
    }

    /// All the time so far, the running command's included.
    #[must_use]
    pub fn spent(&self) -> Duration {
        let state = self.state();
        state.spent + state.since.map_or(Duration::ZERO, |s| s.elapsed())
    }
}

/// The submission a grader is grading.
pub struct Session {
    /// Its sandbox: a real one when grading, a scripted one in tests.
    pub sandbox: Arc<dyn SandboxPort>,
    /// The submission's files on the host, walked once: what its sandbox
    /// was given, what `submission.list-files` lists, what a reset copies.
    pub submission: Arc<HostTree>,
    /// The digest of what was copied into its first sandbox; a reset that
    /// copies anything else stops grading as an infra error.
    pub submission_sha256: String,
    /// The same folder, opened for confined reads.
    pub submission_dir: cap_std::fs::Dir,
    /// Assets the policy granted, resolved before the batch.
    pub assets: Arc<Vec<ResolvedAsset>>,
    /// Every command run, in order.
    pub commands: Vec<CommandOutcome>,
    /// Times the grader asked for a fresh sandbox.
    pub resets: u32,
    /// Where small asset files are read through (the batch's cache).
    pub memory: Arc<crate::assets::AssetCache>,
    /// Most time the submission's commands may take together (the
    /// operator's `submission_time`); past it, commands end as time-limit
    /// without running.
    pub command_time: Duration,
    /// The grader's seed and clocks for this grading.
    pub pins: super::Pins,
}

/// What a [`Session`] grades with besides its sandbox and submission.
#[derive(Clone)]
pub struct SessionParts {
    /// Assets the policy granted, resolved before the batch.
    pub assets: Arc<Vec<ResolvedAsset>>,
    /// Where small asset files are read through.
    pub memory: Arc<crate::assets::AssetCache>,
    /// The operator's `submission_time`.
    pub command_time: Duration,
    /// The grader's seed and clocks: fresh, or a transcript's.
    pub pins: super::Pins,
}

impl Session {
    /// A session grading `submission` (its root opened here for confined
    /// reads), already copied into `sandbox` with digest
    /// `submission_sha256`, with nothing run yet.
    ///
    /// # Errors
    /// When the submission folder cannot be opened.
    pub fn new(
        sandbox: Arc<dyn SandboxPort>,
        submission: Arc<HostTree>,
        submission_sha256: String,
        parts: SessionParts,
    ) -> std::io::Result<Self> {
        let submission_dir =
            cap_std::fs::Dir::open_ambient_dir(submission.root(), cap_std::ambient_authority())?;
        Ok(Self {
            sandbox,
            submission,
            submission_sha256,
            submission_dir,
            assets: parts.assets,
            commands: Vec::new(),
            resets: 0,
            memory: parts.memory,
            command_time: parts.command_time,
            pins: parts.pins,
        })
    }
}

/// The data of one grader store.
pub struct GraderState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: GraderLimits,
    pub(crate) stdio: MemoryOutputPipe,
    pub(crate) session: Option<Session>,
    pub(crate) calls: u64,
    pub(crate) log: Vec<String>,
    pub(crate) log_dropped: u64,
    /// Time spent inside host calls, so the grader's own share is known.
    pub(crate) host_time: Duration,
    /// Time spent in the student's commands (see [`StudentClock`]).
    pub(crate) student_clock: Arc<StudentClock>,
}

/// Instances, tables and memories one store may have: what componentized
/// graders need, with room to spare.
const MAX_INSTANCES: usize = 32;
const MAX_TABLES: usize = 32;
const MAX_MEMORIES: usize = 8;
/// Table elements of all a store's tables together.
pub const GRADER_TABLE_ELEMENTS: usize = 1_000_000;

/// Caps what a grader's store holds in total: [`GRADER_MEMORY_BYTES`] for
/// all its linear memories together and [`GRADER_TABLE_ELEMENTS`] for all
/// its tables, so several memories or tables cannot add up past the cap.
/// A growth past either traps.
#[derive(Debug, Default)]
pub(crate) struct GraderLimits {
    memory_bytes: usize,
    table_elements: usize,
}

/// Grows `total` from `current` to `desired` within `cap`, or says why not.
fn grow_within(
    total: &mut usize,
    current: usize,
    desired: usize,
    cap: usize,
    what: &str,
) -> wasmtime::Result<bool> {
    let grown = total.saturating_sub(current).saturating_add(desired);
    if grown > cap {
        return Err(wasmtime::Error::new(PolicyViolation(format!(
            "the grader asked for {grown} {what} in all, more than the {cap} allowed"
        ))));
    }
    *total = grown;
    Ok(true)
}

impl ResourceLimiter for GraderLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        grow_within(
            &mut self.memory_bytes,
            current,
            desired,
            GRADER_MEMORY_BYTES,
            "bytes of memory",
        )
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        grow_within(
            &mut self.table_elements,
            current,
            desired,
            GRADER_TABLE_ELEMENTS,
            "table elements",
        )
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

impl GraderState {
    /// A state with no access to the host: no folders, no environment, no
    /// arguments, no network; stdout and stderr go to a capped buffer.
    pub(crate) fn new(session: Option<Session>) -> Self {
        let stdio = MemoryOutputPipe::new(GRADER_STDIO_BYTES);
        let mut builder = wasmtime_wasi::WasiCtxBuilder::new();
        builder.stdout(stdio.clone()).stderr(stdio.clone());
        match &session {
            Some(session) => session.pins.apply(&mut builder),
            None => super::Pins::fixed().apply(&mut builder),
        }
        let wasi = builder.build();
        let limits = GraderLimits::default();
        Self {
            wasi,
            table: ResourceTable::new(),
            limits,
            stdio,
            session,
            calls: 0,
            log: Vec::new(),
            log_dropped: 0,
            host_time: Duration::ZERO,
            student_clock: Arc::default(),
        }
    }

    /// Counts a host call; traps past [`MAX_HOST_CALLS`].
    pub(crate) fn count_call(&mut self) -> wasmtime::Result<()> {
        self.calls += 1;
        if self.calls > MAX_HOST_CALLS {
            return Err(wasmtime::Error::new(PolicyViolation(format!(
                "the grader made more than {MAX_HOST_CALLS} host calls"
            ))));
        }
        Ok(())
    }

    /// The session; calling a submission import from `describe` is a violation.
    pub(crate) fn session(&mut self) -> wasmtime::Result<&mut Session> {
        self.session.as_mut().ok_or_else(|| {
            wasmtime::Error::new(PolicyViolation(
                "describe called an import that needs a submission".into(),
            ))
        })
    }

    /// A declared, granted and resolved asset by name. An asset whose
    /// storage was down at preflight traps as an infra failure: the
    /// submission is retried, never scored without it.
    pub(crate) fn resolved_asset(
        &mut self,
        name: &str,
    ) -> wasmtime::Result<Result<ResolvedAsset, Error>> {
        let Some(asset) = self
            .session()?
            .assets
            .iter()
            .find(|a| a.grant.name == name)
            .cloned()
        else {
            return Ok(Err(Error::Refused(format!(
                "asset {name:?} was not declared in describe, or not granted"
            ))));
        };
        match &asset.unavailable {
            Some(why) => Err(wasmtime::Error::new(InfraFailure(format!(
                "asset {name:?} is unavailable: {why}"
            )))),
            None => Ok(Ok(asset)),
        }
    }

    /// What the grader printed itself (panic messages), lossy.
    pub(crate) fn stdio_text(&self) -> String {
        String::from_utf8_lossy(&self.stdio.contents())
            .trim()
            .to_string()
    }
}

impl WasiView for GraderState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The shared types interface has no functions to implement.
impl super::bindings::current::agh::grader::types::Host for GraderState {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core module declaring `count` memories of 3000 pages (187.5 MiB) each.
    fn module_with_memories(count: u8) -> Vec<u8> {
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        let entries: Vec<u8> = (0..count).flat_map(|_| [0x00, 0xB8, 0x17]).collect();
        wasm.push(5);
        wasm.push(u8::try_from(entries.len() + 1).expect("small"));
        wasm.push(count);
        wasm.extend(entries);
        wasm
    }

    fn instantiate(wasm: &[u8]) -> wasmtime::Result<()> {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, wasm)?;
        let mut store = wasmtime::Store::new(&engine, GraderState::new(None));
        store.limiter(|state| &mut state.limits);
        wasmtime::Instance::new(&mut store, &module, &[]).map(|_| ())
    }

    #[test]
    fn several_memories_cannot_add_up_past_the_cap() {
        instantiate(&module_with_memories(1)).expect("one memory under the cap");
        let err =
            instantiate(&module_with_memories(2)).expect_err("two memories over the cap in all");
        assert!(
            format!("{err:?}").contains("bytes of memory in all"),
            "{err:?}"
        );
    }
}
