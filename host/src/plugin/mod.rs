//! Grader plugins: WebAssembly components run by wasmtime.
//!
//! One [`Engine`] per process. A component is compiled once and cached on
//! disk, keyed by its sha256 and the engine's compatibility hash, then
//! pre-instantiated once per batch. Each call (`describe`, or `grade` for a
//! submission) gets a fresh store with a memory limiter, a fuel budget and
//! wasm's stack limit, and a WASI context that grants nothing of the host.
//! Everything the grader returns is validated before it is used.

mod bindings;
mod compat;
mod compat_0_1;
mod compat_0_2;
mod convert;
mod host_assets;
mod host_log;
mod host_sandbox;
mod host_submission;
mod incremental;
mod pins;
mod state;
pub mod validate;

use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config as EngineConfig, Engine, Store};

use bindings::types::GradeError;
pub use bindings::types::{GradeContext, Report, TestResult, Verdict as WitVerdict, Visibility};
use bindings::{GraderPlugin, GraderPluginPre, v0_1, v0_2};
use state::GraderState;

use crate::policy::Budget;

use crate::private_dir::{self, SIGNATURE_BYTES, SigningKey};
pub use incremental::Reuse;
pub use pins::Pins;
pub use state::{
    GRADER_MEMORY_BYTES, InfraFailure, MAX_HOST_CALLS, PolicyViolation, Session, SessionParts,
};
pub use validate::Description;

/// The contract version new graders target.
pub const WIT_VERSION: &str = "0.3.0";
/// Every contract version this host serves, newest first.
pub const WIT_VERSIONS: [&str; 3] = [WIT_VERSION, "0.2.0", "0.1.0"];
/// The export every grader must have, without its version.
const GRADER_EXPORT: &str = "agh:grader/grader@";
/// Fuel between yields to the async runtime, so a busy grader never starves
/// other submissions' tasks.
const FUEL_YIELD_INTERVAL: u64 = 10_000_000;
/// Folder name of the compiled-component cache; bump on a layout change.
/// An entry is the key's signature ([`SIGNATURE_BYTES`]) followed by the
/// serialized component.
const COMPILED_CACHE_DIR: &str = "compiled-v4";
/// Largest component file agh will load.
pub const MAX_COMPONENT_BYTES: u64 = 256 * 1024 * 1024;

/// Why a grader could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file could not be read or compiled, or is not an agh grader.
    #[error("grader {path}: {message}")]
    Load {
        /// The component file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The grader misbehaved during a call: a trap, an `err`, an invalid return.
    #[error("the grader failed: {0}")]
    Failed(String),
    /// The grader found the submission cannot be graded because of what
    /// the student did: the student's, not retried.
    #[error("the submission cannot be graded: {0}")]
    Ungradable(String),
    /// The host failed under the grader (Docker, disk): retry, never score.
    #[error("infrastructure failed while grading: {0}")]
    Infra(String),
}

impl PluginError {
    /// Whose doing the failure is.
    #[must_use]
    pub fn blame(&self) -> crate::blame::Blame {
        use crate::blame::Blame;
        match self {
            PluginError::Load { .. } | PluginError::Failed(_) => Blame::Grader,
            PluginError::Ungradable(_) => Blame::Student,
            PluginError::Infra(_) => Blame::Host,
        }
    }
}

/// The engine and its on-disk cache of compiled components.
pub struct PluginHost {
    engine: Engine,
    cache_dir: Option<PathBuf>,
}

/// What [`PluginHost::load_noting`] tells while it loads.
#[derive(Debug, Clone, Copy)]
pub enum LoadNotice {
    /// The component is not in the compiled cache: compiling it now.
    Compiling {
        /// Its size.
        bytes: usize,
        /// Whether functions of earlier compilations are at hand to reuse.
        warm: bool,
    },
    /// Compiling took this long; the result is cached for next time.
    Compiled {
        /// Time to compile.
        took: Duration,
        /// How many of its functions came from an earlier compilation.
        reuse: incremental::Reuse,
    },
}

/// How a component was loaded, for the report and benchmarks.
#[derive(Debug, Clone, Copy)]
pub struct LoadStats {
    /// Served from the compiled cache.
    pub cached: bool,
    /// Time to compile or deserialize.
    pub load_time: Duration,
}

/// A component pre-instantiated against the contract it was built for.
enum Pre {
    Current(GraderPluginPre<GraderState>),
    V0_2(v0_2::GraderPluginPre<GraderState>),
    V0_1(v0_1::GraderPluginPre<GraderState>),
}

/// A loaded, version-checked, pre-instantiated grader.
pub struct Grader {
    pre: Pre,
    contract: &'static str,
    sha256: String,
    stats: LoadStats,
}

/// What one `grade` call produced, besides the report.
pub struct GradeRun {
    /// The validated report, or why the grader failed.
    pub report: Result<Report, PluginError>,
    /// The commands it ran.
    pub commands: Vec<crate::sandbox::CommandOutcome>,
    /// The sandbox the grader ended with: a fresh one after a
    /// `sandbox.reset`, which the caller tears down.
    pub sandbox: Option<std::sync::Arc<dyn crate::sandbox::SandboxPort>>,
    /// The grader's log lines.
    pub log: Vec<String>,
    /// From store creation to the first wasm instruction of `grade`.
    pub instantiate_time: Duration,
    /// Whole call.
    pub call_time: Duration,
    /// Part of the call spent in host calls (sandbox work).
    pub host_time: Duration,
    /// Fuel the grader burned.
    pub fuel: u64,
}

/// A std Hasher that feeds sha256, to turn the engine's compatibility hash
/// into a stable cache key.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The one wasmtime engine of this process: every host and grader shares
/// it (an engine holds compiled code's memory and its settings, which never
/// vary), so loading another grader costs no engine.
fn process_engine() -> Result<Engine, PluginError> {
    static ENGINE: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    if let Some(engine) = ENGINE.get() {
        return Ok(engine.clone());
    }
    let mut config = EngineConfig::new();
    config.wasm_component_model(true);
    config.consume_fuel(true);
    config.max_wasm_stack(512 * 1024);
    config.parallel_compilation(true);
    // One NaN bit pattern on every machine: a replay computes what the
    // recorded run computed.
    config.cranelift_nan_canonicalization(true);
    // A rebuilt grader compiles only the functions that changed.
    config
        .enable_incremental_compilation(incremental::store())
        .map_err(|e| PluginError::Failed(format!("engine: {e}")))?;
    let engine = Engine::new(&config).map_err(|e| PluginError::Failed(format!("engine: {e}")))?;
    Ok(ENGINE.get_or_init(|| engine).clone())
}

impl LoadNotice {
    /// The notice as a line for a terminal: what is being compiled, about
    /// how long a cold compilation takes, and how much a warm one reused.
    #[must_use]
    pub fn line(&self) -> String {
        match *self {
            LoadNotice::Compiling { bytes, warm: true } => format!(
                "compiling the grader ({:.1} MB; functions an earlier build compiled are reused)...",
                bytes as f64 / 1e6
            ),
            LoadNotice::Compiling { bytes, warm: false } => {
                let cores = std::thread::available_parallelism().map_or(1, usize::from);
                // Measured: Cranelift compiles about 1 MB of component a
                // second per core (a 20 MB Python grader: about 10 s on
                // 2 cores); rebuilds reuse unchanged functions.
                let estimate = bytes as f64 / (1e6 * cores as f64);
                format!(
                    "compiling the grader ({:.1} MB; the first time takes about {:.0} s on {cores} cores, \
                     later builds compile only what changed)...",
                    bytes as f64 / 1e6,
                    estimate.max(1.0)
                )
            }
            LoadNotice::Compiled { took, reuse } if reuse.reused > 0 => format!(
                "compiled the grader in {:.1}s ({} functions compiled, {} reused)",
                took.as_secs_f64(),
                reuse.compiled,
                reuse.reused
            ),
            LoadNotice::Compiled { took, .. } => {
                format!("compiled the grader in {:.1}s", took.as_secs_f64())
            }
        }
    }
}

impl PluginHost {
    /// A host on the process's engine. `cache_dir` holds compiled components; `None`
    /// compiles every time.
    ///
    /// # Errors
    /// When wasmtime rejects the configuration (a host bug).
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, PluginError> {
        Ok(Self {
            engine: process_engine()?,
            cache_dir,
        })
    }

    /// Loads a grader: reads it, compiles it (or reuses the cached
    /// compilation), checks the contract version it was built for, and
    /// pre-instantiates it against agh's imports.
    ///
    /// # Errors
    /// [`PluginError::Load`] saying what is wrong and what to do.
    pub fn load(&self, path: &Path) -> Result<Grader, PluginError> {
        self.load_noting(path, &mut |_| {})
    }

    /// [`PluginHost::load`], telling `notice` when the component must be
    /// compiled (the first load of a component takes seconds and hundreds of
    /// megabytes for an interpreted grader) and how long that took.
    ///
    /// # Errors
    /// As [`PluginHost::load`].
    pub fn load_noting(
        &self,
        path: &Path,
        notice: &mut dyn FnMut(LoadNotice),
    ) -> Result<Grader, PluginError> {
        let fail = |message: String| PluginError::Load {
            path: path.into(),
            message,
        };
        let bytes = read_component(path)?;
        let sha256 = crate::layout::hex(&Sha256::digest(&bytes));
        let started = Instant::now();
        let (component, cached) = self.compile_cached(&bytes, &sha256, notice).map_err(|e| {
            match e.downcast_ref::<private_dir::PrivateError>() {
                Some(cache) => fail(format!("its compiled cache is unusable: {cache}")),
                None => fail(format!("not a valid WebAssembly component ({e:#}); build it with `cargo build --target wasm32-wasip2`")),
            }
        })?;
        let stats = LoadStats {
            cached,
            load_time: started.elapsed(),
        };
        let contract = self.check_contract(&component).map_err(fail)?;
        let mut linker: Linker<GraderState> = Linker::new(&self.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| fail(format!("linking WASI: {e}")))?;
        let linked = match contract {
            WIT_VERSION => GraderPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state),
            "0.2.0" => {
                v0_2::GraderPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            }
            _ => v0_1::GraderPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state),
        };
        linked.map_err(|e| fail(format!("linking agh: {e}")))?;
        stub_foreign_imports(&mut linker, &component, &self.engine)
            .map_err(|e| fail(format!("it imports what agh cannot stand in for: {e:#}")))?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| fail(format!("it needs imports agh does not provide: {e:#}")))?;
        let not_a_grader =
            |e: wasmtime::Error| fail(format!("it does not export the grader interface: {e:#}"));
        let pre = match contract {
            WIT_VERSION => Pre::Current(GraderPluginPre::new(pre).map_err(not_a_grader)?),
            "0.2.0" => Pre::V0_2(v0_2::GraderPluginPre::new(pre).map_err(not_a_grader)?),
            _ => Pre::V0_1(v0_1::GraderPluginPre::new(pre).map_err(not_a_grader)?),
        };
        Ok(Grader {
            pre,
            contract,
            sha256,
            stats,
        })
    }

    /// Reads the contract version from the component's export names: one
    /// of [`WIT_VERSIONS`].
    fn check_contract(&self, component: &Component) -> Result<&'static str, String> {
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let Some(version) = exports
            .iter()
            .find_map(|name| name.strip_prefix(GRADER_EXPORT))
        else {
            return Err(format!(
                "it is not an agh grader: it exports [{}], not agh:grader/grader@{WIT_VERSION}",
                exports.join(", ")
            ));
        };
        WIT_VERSIONS
            .into_iter()
            .find(|served| *served == version)
            .ok_or_else(|| {
                format!(
                    "it was built against agh:grader@{version}; this agh serves agh:grader@{}. \
                     Rebuild it against this agh's wit/{WIT_VERSION}/",
                    WIT_VERSIONS.join(" and @")
                )
            })
    }

    fn compile_cached(
        &self,
        bytes: &[u8],
        sha256: &str,
        notice: &mut dyn FnMut(LoadNotice),
    ) -> wasmtime::Result<(Component, bool)> {
        let mut compile =
            |bytes: &[u8], cache: Option<(&Path, &SigningKey)>| -> wasmtime::Result<Component> {
                let started = Instant::now();
                let compilation = incremental::begin(cache);
                notice(LoadNotice::Compiling {
                    bytes: bytes.len(),
                    warm: compilation.warm(),
                });
                let component = Component::new(&self.engine, bytes)?;
                let reuse = compilation.finish();
                notice(LoadNotice::Compiled {
                    took: started.elapsed(),
                    reuse,
                });
                Ok(component)
            };
        let Some(cache_dir) = &self.cache_dir else {
            return Ok((compile(bytes, None)?, false));
        };
        let mut hasher = Sha256Hasher(Sha256::new());
        std::hash::Hash::hash(&self.engine.precompile_compatibility_hash(), &mut hasher);
        let engine_key = crate::layout::hex(&hasher.0.finalize()[..8]);
        let cache_dir = private_dir::open_dir(cache_dir)?;
        let dir = private_dir::open_dir(&cache_dir.join(COMPILED_CACHE_DIR))?;
        let key = SigningKey::open(&cache_dir)?;
        let file = dir.join(format!("{sha256}-{engine_key}.cwasm"));
        // The signature covers what the entry is for, not only its bytes: an
        // entry signed for another grader or engine, copied over this
        // one's, does not verify.
        let bound_to = [sha256.as_bytes(), engine_key.as_bytes()];
        match read_signed(&key, &bound_to, &file) {
            Ok(Some(signed)) => {
                let component = deserialize_signed(&self.engine, &signed[SIGNATURE_BYTES..])?;
                return Ok((component, true));
            }
            Ok(None) => {}
            Err(err) => {
                // Shown by default: the CLI logs warnings to stderr.
                tracing::warn!(file = %file.display(), %err, "refusing a cached component; compiling afresh");
            }
        }
        let component = compile(bytes, Some((&cache_dir, &key)))?;
        let serialized = component.serialize()?;
        let mut signed = key.sign(&bound_to, &serialized).to_vec();
        signed.extend_from_slice(&serialized);
        if let Err(err) = crate::layout::write_atomic(&dir, &file, &signed) {
            tracing::warn!(file = %file.display(), %err, "could not cache the compiled component");
        }
        Ok((component, false))
    }
}

/// Interface packages agh links: its own contract and WASI's basics (any
/// version of which wasmtime matches by semver).
const GRANTED_PACKAGES: [&str; 7] = [
    "agh:grader/",
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:random/",
    "wasi:sockets/",
];

/// Makes every function of an interface agh does not grant (such as
/// `wasi:http`, which some toolchains import by default) trap when called,
/// instead of refusing the grader: the trap names the function, the
/// submission is a plugin-error, and nothing of the host is reached.
/// Granted packages are left to the linker, which matches their versions.
fn stub_foreign_imports(
    linker: &mut Linker<GraderState>,
    component: &Component,
    engine: &Engine,
) -> wasmtime::Result<()> {
    use wasmtime::component::types::ComponentItem;
    let ty = component.component_type();
    for (name, import) in ty.imports(engine) {
        if GRANTED_PACKAGES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let ComponentItem::ComponentInstance(instance) = import.ty else {
            wasmtime::bail!("import {name} is not an interface");
        };
        let mut stub = linker.instance(name)?;
        for (item, export) in instance.exports(engine) {
            match export.ty {
                ComponentItem::ComponentFunc(_) => {
                    let called = format!("{name}#{item}");
                    stub.func_new(item, move |_, _, _, _| {
                        wasmtime::bail!("unknown import: `{called}` has not been defined")
                    })?;
                }
                ComponentItem::Resource(_) => {
                    stub.resource(item, shared_resource(item), |_, _| Ok(()))?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The type a foreign interface's resource must have: WASI's own for the
/// stream, pollable and error types such interfaces use from `wasi:io`
/// (as `wasi:http` does), a type of its own for anything else.
fn shared_resource(name: &str) -> wasmtime::component::ResourceType {
    use wasmtime::component::ResourceType;
    use wasmtime_wasi::p2;
    match name {
        "input-stream" => ResourceType::host::<p2::DynInputStream>(),
        "output-stream" => ResourceType::host::<p2::DynOutputStream>(),
        "pollable" => ResourceType::host::<p2::DynPollable>(),
        "io-error" => ResourceType::host::<p2::IoError>(),
        _ => ResourceType::host::<ForeignResource>(),
    }
}

/// Stands in for a resource of an interface agh does not grant; none is
/// ever made, since every function that could make one traps.
struct ForeignResource;

/// Why a cached compiled component was refused.
#[derive(Debug, thiserror::Error)]
enum CachedComponentError {
    #[error(transparent)]
    NotPrivate(#[from] private_dir::PrivateError),
    #[error("{0} was not signed by this cache's key (changed or copied in)")]
    BadSignature(PathBuf),
}

/// Reads a cached component and checks its signature; `None` when there is
/// none. The bytes returned still start with the signature (not shifted out:
/// a compiled interpreted grader is tens of megabytes). The file is opened
/// without following links and checked as opened.
fn read_signed(
    key: &SigningKey,
    bound_to: &[&[u8]],
    file: &Path,
) -> Result<Option<Vec<u8>>, CachedComponentError> {
    let mut opened = match private_dir::open_file(file) {
        Ok(opened) => opened,
        Err(private_dir::PrivateError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return Ok(None);
        }
        Err(err) => return Err(err.into()),
    };
    let io = |source| private_dir::PrivateError::Io {
        path: file.into(),
        source,
    };
    let size = opened.metadata().map_err(io)?.len();
    let mut signed = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    std::io::Read::read_to_end(&mut opened, &mut signed).map_err(io)?;
    if signed.len() < SIGNATURE_BYTES
        || !key.verify(
            bound_to,
            &signed[SIGNATURE_BYTES..],
            &signed[..SIGNATURE_BYTES],
        )
    {
        return Err(CachedComponentError::BadSignature(file.into()));
    }
    Ok(Some(signed))
}

/// Graders built into agh, named `builtin:NAME` where a component file goes.
pub const BUILTINS: [(&str, &[u8]); 4] = [
    (
        "io-cases",
        include_bytes!(concat!(env!("OUT_DIR"), "/io-cases.wasm")),
    ),
    (
        "sandbox-probe",
        include_bytes!(concat!(env!("OUT_DIR"), "/sandbox-probe.wasm")),
    ),
    (
        "gradescope",
        include_bytes!(concat!(env!("OUT_DIR"), "/gradescope.wasm")),
    ),
    (
        "python-tests",
        include_bytes!(concat!(env!("OUT_DIR"), "/python-tests.wasm")),
    ),
];

/// The compatibility mode of a grader, by its sha256: `gradescope` for
/// `builtin:gradescope`, whose verdicts are computed inside the sandbox
/// beside the student's code; none for every other grader.
#[must_use]
pub fn compat_of(sha256: &str) -> Option<&'static str> {
    static GRADESCOPE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let builtin = GRADESCOPE.get_or_init(|| {
        BUILTINS
            .iter()
            .find(|(name, _)| *name == "gradescope")
            .map(|(_, bytes)| crate::layout::hex(&Sha256::digest(bytes)))
            .unwrap_or_default()
    });
    (sha256 == builtin).then_some("gradescope")
}

/// The bytes of the component at `path`, or of the built-in grader it names
/// (`builtin:io-cases`).
///
/// # Errors
/// [`PluginError::Load`] when the file cannot be read, is too large, or
/// names no built-in grader.
pub fn read_component(path: &Path) -> Result<Vec<u8>, PluginError> {
    let fail = |message: String| PluginError::Load {
        path: path.into(),
        message,
    };
    if let Some(name) = path.to_str().and_then(|p| p.strip_prefix("builtin:")) {
        return BUILTINS
            .iter()
            .find(|(builtin, _)| *builtin == name)
            .map(|(_, bytes)| bytes.to_vec())
            .ok_or_else(|| {
                let names: Vec<String> = BUILTINS
                    .iter()
                    .map(|(n, _)| format!("builtin:{n}"))
                    .collect();
                fail(format!(
                    "no such built-in grader; agh has {}",
                    names.join(", ")
                ))
            });
    }
    let size = std::fs::metadata(path)
        .map_err(|e| fail(format!("cannot read it: {e}")))?
        .len();
    if size > MAX_COMPONENT_BYTES {
        return Err(fail(format!("{size} bytes; at most {MAX_COMPONENT_BYTES}")));
    }
    std::fs::read(path).map_err(|e| fail(format!("cannot read it: {e}")))
}

/// Loads a compiled component whose signature [`read_signed`] checked.
#[allow(unsafe_code)]
fn deserialize_signed(engine: &Engine, serialized: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: wasmtime requires bytes produced by `Component::serialize` of
    // a compatible engine and not altered since. These bytes carry a valid
    // signature by the private cache's key, which only agh writes with (the
    // folder, key and entry are owned by the user running agh and writable
    // by nobody else), under a name carrying the engine's compatibility hash.
    unsafe { Component::deserialize(engine, serialized) }
}

impl Grader {
    /// The component's sha256.
    #[must_use]
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// How it was loaded.
    #[must_use]
    pub fn load_stats(&self) -> LoadStats {
        self.stats
    }

    /// The contract version the grader was built against.
    #[must_use]
    pub fn contract(&self) -> &'static str {
        self.contract
    }

    fn store(
        &self,
        session: Option<Session>,
        budget: Budget,
    ) -> Result<Store<GraderState>, PluginError> {
        let engine = match &self.pre {
            Pre::Current(pre) => pre.engine(),
            Pre::V0_2(pre) => pre.engine(),
            Pre::V0_1(pre) => pre.engine(),
        };
        let mut store = Store::new(engine, GraderState::new(session));
        store.limiter(|state| &mut state.limits);
        store
            .set_fuel(budget.fuel)
            .map_err(|e| PluginError::Failed(format!("fuel: {e}")))?;
        store
            .fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL))
            .map_err(|e| PluginError::Failed(format!("fuel: {e}")))?;
        Ok(store)
    }

    /// Calls `describe` in a fresh instance, within `budget` (the
    /// operator's ceiling: the grader has not declared its own yet), and
    /// validates the answer.
    ///
    /// # Errors
    /// [`PluginError::Failed`] for a trap or an invalid description.
    pub async fn describe(
        &self,
        settings: &[(String, String)],
        budget: Budget,
    ) -> Result<Description, PluginError> {
        let mut store = self.store(None, budget)?;
        let call = async {
            match &self.pre {
                Pre::Current(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    instance
                        .agh_grader_grader()
                        .call_describe(&mut store, settings)
                        .await
                }
                Pre::V0_2(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    instance
                        .agh_grader_grader()
                        .call_describe(&mut store, settings)
                        .await
                        .map(compat_0_2::info)
                }
                Pre::V0_1(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    instance
                        .agh_grader_grader()
                        .call_describe(&mut store, settings)
                        .await
                        .map(compat_0_1::info)
                }
            }
        };
        let info = match tokio::time::timeout(budget.wall_time, call).await {
            Ok(Ok(info)) => info,
            Ok(Err(err)) => return Err(failure(&err, &store.data().stdio_text())),
            Err(_) => {
                return Err(PluginError::Failed(format!(
                    "describe took longer than {}",
                    humantime::format_duration(budget.wall_time)
                )));
            }
        };
        validate::description(info, self.contract).map_err(PluginError::Failed)
    }

    /// Calls `grade` for one submission in a fresh instance, within `budget`.
    pub async fn grade(&self, session: Session, context: GradeContext, budget: Budget) -> GradeRun {
        let started = Instant::now();
        let mut store = match self.store(Some(session), budget) {
            Ok(store) => store,
            Err(err) => {
                return GradeRun {
                    report: Err(err),
                    commands: Vec::new(),
                    sandbox: None,
                    log: Vec::new(),
                    instantiate_time: Duration::ZERO,
                    call_time: Duration::ZERO,
                    host_time: Duration::ZERO,
                    fuel: 0,
                };
            }
        };
        let mut instantiate_time = Duration::ZERO;
        let student_clock = store.data().student_clock.clone();
        let call = async {
            match &self.pre {
                Pre::Current(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    instantiate_time = started.elapsed();
                    instance
                        .agh_grader_grader()
                        .call_grade(&mut store, &context)
                        .await
                }
                Pre::V0_2(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    instantiate_time = started.elapsed();
                    instance
                        .agh_grader_grader()
                        .call_grade(&mut store, &compat_0_2::context(&context))
                        .await
                        .map(compat_0_2::graded)
                }
                Pre::V0_1(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    instantiate_time = started.elapsed();
                    instance
                        .agh_grader_grader()
                        .call_grade(&mut store, &compat_0_1::context(&context))
                        .await
                        .map(compat_0_1::graded)
                }
            }
        };
        let outcome = within_own_time(call, budget.wall_time, &student_clock).await;
        let clip = |message: String| -> String {
            message.chars().take(validate::MAX_OUTPUT_BYTES).collect()
        };
        let report = match outcome {
            Ok(Ok(Ok(mut report))) => validate::report(&mut report, self.contract == WIT_VERSION)
                .map(|()| report)
                .map_err(PluginError::Failed),
            Ok(Ok(Err(GradeError::Grader(message)))) => Err(PluginError::Failed(format!(
                "grade returned an error: {}",
                clip(message)
            ))),
            Ok(Ok(Err(GradeError::Submission(message)))) => {
                Err(PluginError::Ungradable(clip(message)))
            }
            Ok(Err(err)) => Err(failure(&err, &store.data().stdio_text())),
            Err(_) => Err(PluginError::Failed(format!(
                "grade ran past the grader's wall time of {} (time in the student's commands not counted)",
                humantime::format_duration(budget.wall_time)
            ))),
        };
        let call_time = started.elapsed();
        let fuel = budget.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let state = store.into_data();
        let mut log = state.log;
        if state.log_dropped > 0 {
            log.push(format!("({} more log lines dropped)", state.log_dropped));
        }
        let (commands, sandbox) = match state.session {
            Some(session) => (session.commands, Some(session.sandbox)),
            None => (Vec::new(), None),
        };
        GradeRun {
            report,
            commands,
            sandbox,
            log,
            instantiate_time,
            call_time,
            host_time: state.host_time,
            fuel,
        }
    }
}

/// Runs `call` until it ends or the grader's own time, all the time since
/// the start less what the student's commands took (`student`), reaches
/// `budget`: a grader that waits on programs which use every deadline is
/// not out of time for it. `Err` when the budget ran out.
async fn within_own_time<F: std::future::Future>(
    call: F,
    budget: Duration,
    student: &state::StudentClock,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    let started = Instant::now();
    let mut call = std::pin::pin!(call);
    loop {
        let own = started.elapsed().saturating_sub(student.spent());
        let left = budget.saturating_sub(own);
        // The last round is an ordinary timeout, so its error says so.
        if left.is_zero() {
            return tokio::time::timeout(Duration::ZERO, std::future::pending()).await;
        }
        if let Ok(done) = tokio::time::timeout(left, &mut call).await {
            return Ok(done);
        }
    }
}

/// Turns an error out of a call into a plugin or infra failure, by type.
fn failure(err: &wasmtime::Error, stdio: &str) -> PluginError {
    if let Some(infra) = err.downcast_ref::<InfraFailure>() {
        return PluginError::Infra(infra.0.clone());
    }
    let printed = if stdio.is_empty() {
        String::new()
    } else {
        format!("; it printed: {}", last_chars(stdio, 500))
    };
    if let Some(violation) = err.downcast_ref::<PolicyViolation>() {
        return PluginError::Failed(format!("{}{printed}", violation.0));
    }
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        let what = match trap {
            wasmtime::Trap::OutOfFuel => {
                "ran out of fuel (an endless loop, or far too much computation)".to_string()
            }
            wasmtime::Trap::StackOverflow => {
                "overflowed its stack (recursion too deep)".to_string()
            }
            wasmtime::Trap::UnreachableCodeReached => {
                "trapped: unreachable (a panic or abort)".to_string()
            }
            other => format!("trapped: {other}"),
        };
        return PluginError::Failed(format!("{what}{printed}"));
    }
    let text = format!("{err:#}");
    if text.contains("unknown import") {
        return PluginError::Failed(format!(
            "{text}: agh grants a grader only its own interfaces and WASI's basics (no network, \
             no files); drop the import from the build (componentize-js: --disable http \
             --disable fetch-event){printed}"
        ));
    }
    PluginError::Failed(format!("{text}{printed}"))
}

fn last_chars(text: &str, n: usize) -> String {
    let count = text.chars().count();
    text.chars().skip(count.saturating_sub(n)).collect()
}
