//! `agh new` and `agh build`: a grader project in Rust, Python or
//! JavaScript that works from the first command, and the one command that
//! builds it with its language's own toolchain and checks it the way
//! `agh grade` will load it.
//!
//! A new project carries the contract at the version this agh serves
//! (`wit/grader.wit`), the SDK of its language, a sample grader of a small
//! exercise, its course files, a passing and a failing submission, an
//! `agh.toml` and a README with the commands to build and try it. Nothing
//! refers back to agh's checkout.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::plugin::{LoadNotice, PluginError, PluginHost};
use crate::policy::Budget;

/// The languages a grader can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Rust, with `cargo` and the `wasm32-wasip2` target.
    Rust,
    /// Python, with componentize-py.
    Python,
    /// JavaScript, with componentize-js.
    Javascript,
}

/// The contract new graders target.
const WIT: &str = include_str!("../../wit/0.2.0/grader.wit");

const PYTHON_SDK: [(&str, &str); 5] = [
    (
        "agh_grader/__init__.py",
        include_str!("../../graders/sdk-python/agh_grader/__init__.py"),
    ),
    (
        "agh_grader/compare.py",
        include_str!("../../graders/sdk-python/agh_grader/compare.py"),
    ),
    (
        "agh_grader/lines.py",
        include_str!("../../graders/sdk-python/agh_grader/lines.py"),
    ),
    (
        "agh_grader/feedback.py",
        include_str!("../../graders/sdk-python/agh_grader/feedback.py"),
    ),
    ("agh_grader/py.typed", ""),
];

const JS_SDK: [(&str, &str); 2] = [
    (
        "agh-grader.js",
        include_str!("../../graders/sdk-js/agh-grader.js"),
    ),
    (
        "agh-grader.d.ts",
        include_str!("../../graders/sdk-js/agh-grader.d.ts"),
    ),
];

/// The sample course every new project grades.
const COURSE: [(&str, &str); 10] = [
    (
        "agh.toml",
        include_str!("../../graders/templates/course/agh.toml"),
    ),
    (
        "expected.toml",
        include_str!("../../graders/templates/course/expected.toml"),
    ),
    (
        "course/cases/01.in",
        include_str!("../../graders/templates/course/cases/01.in"),
    ),
    (
        "course/cases/01.out",
        include_str!("../../graders/templates/course/cases/01.out"),
    ),
    (
        "course/cases/02.in",
        include_str!("../../graders/templates/course/cases/02.in"),
    ),
    (
        "course/cases/02.out",
        include_str!("../../graders/templates/course/cases/02.out"),
    ),
    (
        "course/cases/03.in",
        include_str!("../../graders/templates/course/cases/03.in"),
    ),
    (
        "course/cases/03.out",
        include_str!("../../graders/templates/course/cases/03.out"),
    ),
    (
        "submissions/passing/solution.py",
        include_str!("../../graders/templates/course/submissions/passing/solution.py"),
    ),
    (
        "submissions/failing/solution.py",
        include_str!("../../graders/templates/course/submissions/failing/solution.py"),
    ),
];

/// The componentize-py release agh's Python SDK is built and tested with.
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
/// The componentize-js release agh's JavaScript SDK is built and tested with.
pub const COMPONENTIZE_JS: &str = "@bytecodealliance/componentize-js@0.23.0";

/// Why a project could not be made or built.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The folder exists and is not empty.
    #[error("{0} exists and is not empty; give a new folder")]
    NotEmpty(PathBuf),
    /// The folder holds no grader project agh knows.
    #[error(
        "{0} holds no grader project: agh builds Cargo.toml (Rust), app.py (Python) or app.js (JavaScript); make one with `agh new grader --lang LANG DIR`"
    )]
    Unknown(PathBuf),
    /// The language's toolchain is missing.
    #[error("{tool} is not installed: {install}")]
    Missing {
        /// The missing tool.
        tool: &'static str,
        /// How to install it.
        install: String,
    },
    /// The toolchain failed on the grader's source.
    #[error("{tool} failed (exit {status}); its messages are above")]
    Failed {
        /// The tool that ran.
        tool: &'static str,
        /// Its exit status.
        status: String,
    },
    /// The built component is not a grader agh can load.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn write(root: &Path, relative: &str, contents: &str) -> Result<(), ScaffoldError> {
    let path = root.join(relative);
    let io = |source| ScaffoldError::Io {
        path: path.clone(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(&path, contents).map_err(io)
}

/// The Rust SDK, vendored: its bindings read the project's own `wit/`.
fn rust_sdk() -> String {
    include_str!("../../graders/sdk/src/lib.rs")
        .replace("path: \"../../wit/0.2.0\"", "path: \"../wit\"")
}

fn readme(language: Language) -> String {
    let (name, edit, tools) = match language {
        Language::Rust => (
            "Rust",
            "src/lib.rs",
            "cargo with the wasm32-wasip2 target (`rustup target add wasm32-wasip2`)",
        ),
        Language::Python => (
            "Python",
            "app.py",
            "componentize-py (`pip install componentize-py==0.25.1` in a venv, its bin on PATH)",
        ),
        Language::Javascript => (
            "JavaScript",
            "app.js",
            "componentize-js (`npm install -g @bytecodealliance/componentize-js@0.23.0`)",
        ),
    };
    format!(
        "# An agh grader in {name}\n\n\
         The grader is `{edit}`. It grades a small exercise: the student's\n\
         `solution.py` reads numbers and prints their sum. Each case\n\
         `course/cases/NAME.in` is fed to it and its output compared, inside the\n\
         grader, with `NAME.out` (expected outputs never enter the sandbox).\n\n\
         Build it (needs {tools}; `agh build` says what is missing):\n\n    \
         agh build\n\n\
         Try it on the two sample submissions (one passes, one fails):\n\n    \
         agh grade --plugin grader.wasm --config agh.toml --submissions submissions\n\n\
         Before students meet it, check it: the samples must score what\n\
         `expected.toml` says, and agh's own hostile submissions (endless loops,\n\
         fork bombs, forged scores, reads of the course files) must score nothing:\n\n    \
         agh check --plugin grader.wasm --config agh.toml --samples .\n\n\
         - `wit/grader.wit` is the contract, `agh:grader@0.2.0`, as this agh serves it.\n\
         - `agh.toml` is the operator's policy: images, ceilings, and the course\n  \
           files the grader may read (`course:` is the `course/` folder).\n\
         - The SDK is in this folder too, so the project needs nothing else.\n"
    )
}

/// A Python unittest course graded by agh's own unittest grader: tests
/// marked as Gradescope's gradescope_utils marks them, two submissions,
/// the policy and what each submission scores.
const PYTHON_TESTS_COURSE: [(&str, &str); 5] = [
    (
        "agh.toml",
        include_str!("../../graders/templates/python-tests/agh.toml"),
    ),
    (
        "expected.toml",
        include_str!("../../graders/templates/python-tests/expected.toml"),
    ),
    (
        "course/tests/test_stats.py",
        include_str!("../../graders/templates/python-tests/course/tests/test_stats.py"),
    ),
    (
        "submissions/passing/stats.py",
        include_str!("../../graders/templates/python-tests/submissions/passing/stats.py"),
    ),
    (
        "submissions/failing/stats.py",
        include_str!("../../graders/templates/python-tests/submissions/failing/stats.py"),
    ),
];

const PYTHON_TESTS_README: &str = "# A Python course graded by its unittest tests

     No grader code to write or build: agh's own unittest grader,
     `builtin:python-tests`, runs the tests in `course/tests/` against each
     submission, one test at a time, each in a judge process that the
     student's code cannot reach (a submission that patches `unittest` or
     the decorators changes nothing), with per-test limits.

     The exercise: `stats.py` with `mean(xs)` and `spread(xs)`. Grade the two
     sample submissions (one passes, one scores part):

         agh grade --plugin builtin:python-tests --config agh.toml --submissions submissions

     Before students meet it, check it: the samples must score what
     `expected.toml` says, and agh's own hostile submissions (endless loops,
     fork bombs, forged scores, a patched `unittest`) must score nothing:

         agh check --plugin builtin:python-tests --config agh.toml --samples .

     Writing tests: any `unittest.TestCase` in `course/tests/test_*.py`, marked
     as Gradescope's `gradescope_utils` marks them (the files run unchanged
     there): `@weight(points)`, `@number(\"1.1\")`, `@visibility(...)`,
     `@partial_credit(points)` with `set_score`, `@hide_errors(\"message\")`,
     and `timeout_decorator`'s `@timeout(seconds)`. A test without `@weight`
     is worth nothing. A failing test's own message (`3 != 8`) is shown only
     to a test visible at once; for any other visibility the student reads
     that it failed, what their code raised, and what it printed.

     - `agh.toml` is the operator's policy: images, ceilings, and the course
         files (`course/`); `reference` is graded first, so broken tests stop
         the batch before anyone is charged.
     - To grade in your own way later, `agh new grader --lang python DIR` makes
         a grader project whose code you write.
";

/// Makes a Python unittest course graded by `builtin:python-tests` in
/// `dir` (which must not exist, or be empty).
///
/// # Errors
/// [`ScaffoldError::NotEmpty`], or a file that cannot be written.
pub fn new_tests_course(dir: &Path) -> Result<Vec<PathBuf>, ScaffoldError> {
    let mut files: Vec<(String, String)> = PYTHON_TESTS_COURSE
        .iter()
        .map(|(p, c)| ((*p).to_string(), (*c).to_string()))
        .collect();
    files.push(("README.md".into(), PYTHON_TESTS_README.into()));
    files.push((".gitignore".into(), "__pycache__/\nout/\n".into()));
    make(dir, files)
}

/// Writes `files` into `dir`, which must not exist or be empty.
fn make(dir: &Path, files: Vec<(String, String)>) -> Result<Vec<PathBuf>, ScaffoldError> {
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ScaffoldError::NotEmpty(dir.into()));
    }
    for (path, contents) in &files {
        write(dir, path, contents)?;
    }
    Ok(files.into_iter().map(|(p, _)| dir.join(p)).collect())
}

/// Makes a new grader project in `dir` (which must not exist, or be empty).
///
/// # Errors
/// [`ScaffoldError`] when the folder is in use or cannot be written.
pub fn new_project(dir: &Path, language: Language) -> Result<Vec<PathBuf>, ScaffoldError> {
    let mut files: Vec<(String, String)> = COURSE
        .iter()
        .map(|(p, c)| ((*p).to_string(), (*c).to_string()))
        .collect();
    files.push(("wit/grader.wit".into(), WIT.into()));
    files.push(("README.md".into(), readme(language)));
    files.push((
        ".gitignore".into(),
        "grader.wasm\ntarget/\nnode_modules/\n__pycache__/\n".into(),
    ));
    match language {
        Language::Rust => {
            files.push((
                "Cargo.toml".into(),
                include_str!("../../graders/templates/rust/Cargo.toml").into(),
            ));
            files.push((
                "src/lib.rs".into(),
                include_str!("../../graders/templates/rust/src/lib.rs").into(),
            ));
            files.push((
                "agh-grader/Cargo.toml".into(),
                include_str!("../../graders/templates/rust/sdk-Cargo.toml").into(),
            ));
            files.push(("agh-grader/src/lib.rs".into(), rust_sdk()));
        }
        Language::Python => {
            files.push((
                "app.py".into(),
                include_str!("../../graders/templates/python/app.py").into(),
            ));
            files.extend(
                PYTHON_SDK
                    .iter()
                    .map(|(p, c)| ((*p).to_string(), (*c).to_string())),
            );
        }
        Language::Javascript => {
            files.push((
                "app.js".into(),
                include_str!("../../graders/templates/javascript/app.js").into(),
            ));
            files.push((
                "package.json".into(),
                include_str!("../../graders/templates/javascript/package.json").into(),
            ));
            files.extend(
                JS_SDK
                    .iter()
                    .map(|(p, c)| ((*p).to_string(), (*c).to_string())),
            );
        }
    }
    make(dir, files)
}

/// The language of the project in `dir`.
///
/// # Errors
/// [`ScaffoldError::Unknown`] when it holds none agh builds.
pub fn language_of(dir: &Path) -> Result<Language, ScaffoldError> {
    if dir.join("Cargo.toml").is_file() {
        Ok(Language::Rust)
    } else if dir.join("app.py").is_file() {
        Ok(Language::Python)
    } else if dir.join("app.js").is_file() {
        Ok(Language::Javascript)
    } else {
        Err(ScaffoldError::Unknown(dir.into()))
    }
}

/// The folders of PATH a build may take tools from: absolute ones, and
/// none inside the project (a `.` entry, or the project's own
/// `node_modules/.bin`, would run the project's files as the operator).
fn tool_path(project: &Path) -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .filter(|dir| dir.is_absolute() && !dir.starts_with(project))
                .collect()
        })
        .unwrap_or_default()
}

/// A tool on the build's PATH ([`tool_path`]), or `None`.
fn on_path(project: &Path, tool: &str) -> Option<PathBuf> {
    tool_path(project)
        .into_iter()
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

/// Variables a build keeps from agh's environment: where the toolchains
/// are and the locale. Nothing else (no `DOCKER_HOST`, no cloud
/// credentials, no tokens) reaches the project's build scripts.
const BUILD_ENVIRONMENT: [&str; 7] = [
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "RUSTUP_HOME",
    "CARGO_HOME",
    "RUSTUP_TOOLCHAIN",
];

/// A toolchain command for the project in `dir`: started in it, with a
/// cleared environment ([`BUILD_ENVIRONMENT`] and the filtered PATH), and,
/// when agh runs as root, as the user who owns the project. Building runs
/// the project's own code (a `build.rs`, a package's install script);
/// whoever could write the project could already run code as its owner,
/// so that is all they get.
fn build_command(tool: impl AsRef<std::ffi::OsStr>, dir: &Path) -> Command {
    let mut command = Command::new(tool);
    command.current_dir(dir).env_clear();
    for name in BUILD_ENVIRONMENT {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    if let Ok(path) = std::env::join_paths(tool_path(dir)) {
        command.env("PATH", path);
    }
    if let Some((uid, gid)) = project_owner_when_root(dir) {
        use std::os::unix::process::CommandExt;
        command.uid(uid).gid(gid);
        // The owner's own home, not root's.
        command.env(
            "HOME",
            home_of(uid).unwrap_or_else(|| PathBuf::from("/nonexistent")),
        );
    }
    command
}

/// The owner of `dir` when agh runs as root and someone else owns it.
fn project_owner_when_root(dir: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).ok()?;
    (crate::private_dir::running_as_root() && meta.uid() != 0).then(|| (meta.uid(), meta.gid()))
}

/// `uid`'s home folder, from `/etc/passwd`.
fn home_of(uid: u32) -> Option<PathBuf> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 6 && fields[2] == uid.to_string()).then(|| PathBuf::from(fields[5]))
    })
}

fn run(tool: &'static str, command: &mut Command) -> Result<(), ScaffoldError> {
    let status = command.status().map_err(|source| ScaffoldError::Io {
        path: tool.into(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(ScaffoldError::Failed {
            tool,
            status: status
                .code()
                .map_or_else(|| "by a signal".into(), |c| c.to_string()),
        })
    }
}

/// A folder holding what a project lacks and agh carries (the contract,
/// the SDK), so a grader folder with only its source builds too.
struct Supplied {
    dir: tempfile::TempDir,
}

impl Supplied {
    fn new() -> Result<Self, ScaffoldError> {
        let dir = tempfile::Builder::new()
            .prefix("agh-build-")
            .tempdir()
            .map_err(|source| ScaffoldError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        write(dir.path(), "wit/grader.wit", WIT)?;
        Ok(Self { dir })
    }

    /// Gives what agh supplied to the user the build runs as (see
    /// [`build_command`]), so a build dropped to the project's owner can
    /// read it.
    fn hand_to_builder(&self, project: &Path) -> Result<(), ScaffoldError> {
        let Some((uid, gid)) = project_owner_when_root(project) else {
            return Ok(());
        };
        let mut pending = vec![self.dir.path().to_path_buf()];
        while let Some(path) = pending.pop() {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).map_err(|source| {
                ScaffoldError::Io {
                    path: path.clone(),
                    source,
                }
            })?;
            if path.is_dir() && !path.is_symlink() {
                let entries = std::fs::read_dir(&path).map_err(|source| ScaffoldError::Io {
                    path: path.clone(),
                    source,
                })?;
                pending.extend(entries.filter_map(Result::ok).map(|e| e.path()));
            }
        }
        Ok(())
    }

    /// The project's own `wit/`, or agh's.
    fn wit(&self, project: &Path) -> PathBuf {
        let own = project.join("wit");
        if own.join("grader.wit").is_file() {
            own
        } else {
            self.dir.path().join("wit")
        }
    }
}

/// What `agh build` made.
#[derive(Debug)]
pub struct Built {
    /// The component.
    pub wasm: PathBuf,
    /// Its language.
    pub language: Language,
    /// Its size in bytes.
    pub bytes: u64,
    /// The grader's name and version, from `describe`.
    pub grader: String,
    /// The contract version it speaks.
    pub contract: &'static str,
    /// Compile time when agh compiled it now (its first load).
    pub compiled: Option<Duration>,
}

fn build_rust(dir: &Path, out: &Path) -> Result<(), ScaffoldError> {
    const TARGET: &str = "wasm32-wasip2";
    if on_path(dir, "cargo").is_none() {
        return Err(ScaffoldError::Missing {
            tool: "cargo",
            install: "install Rust with rustup (https://rustup.rs), then `rustup target add wasm32-wasip2`".into(),
        });
    }
    let targets = build_command("rustc", dir)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .map(|sysroot| sysroot.join("lib/rustlib").join(TARGET).is_dir());
    if targets == Some(false) {
        return Err(ScaffoldError::Missing {
            tool: "the wasm32-wasip2 target",
            install: "run `rustup target add wasm32-wasip2`".into(),
        });
    }
    let target_dir = dir.join("target");
    run(
        "cargo",
        build_command("cargo", dir)
            .args(["build", "--release", "--target", TARGET])
            .env("CARGO_TARGET_DIR", &target_dir),
    )?;
    let release = target_dir.join(TARGET).join("release");
    let built = std::fs::read_dir(&release)
        .map_err(|source| ScaffoldError::Io {
            path: release.clone(),
            source,
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .ok_or_else(|| ScaffoldError::Failed {
            tool: "cargo",
            status: "0, but it made no .wasm (is the crate a cdylib?)".into(),
        })?;
    std::fs::copy(&built, out).map_err(|source| ScaffoldError::Io {
        path: out.into(),
        source,
    })?;
    Ok(())
}

fn build_python(dir: &Path, out: &Path, supplied: &Supplied) -> Result<(), ScaffoldError> {
    let tool = std::env::var_os("AGH_COMPONENTIZE_PY")
        .map(PathBuf::from)
        .or_else(|| on_path(dir, "componentize-py"))
        .ok_or_else(|| ScaffoldError::Missing {
            tool: "componentize-py",
            install: format!(
                "`python3 -m venv ~/.agh-py && ~/.agh-py/bin/pip install {COMPONENTIZE_PY}`, then put ~/.agh-py/bin on PATH (or set AGH_COMPONENTIZE_PY)"
            ),
        })?;
    let mut command = build_command(tool, dir);
    command.arg("-d").arg(supplied.wit(dir)).args([
        "-w",
        "grader-plugin",
        "componentize",
        "app",
        "-p",
        ".",
    ]);
    if !dir.join("agh_grader").is_dir() {
        for (path, contents) in PYTHON_SDK {
            write(supplied.dir.path(), &format!("python/{path}"), contents)?;
        }
        command.arg("-p").arg(supplied.dir.path().join("python"));
    }
    supplied.hand_to_builder(dir)?;
    run("componentize-py", command.arg("-o").arg(out))
}

fn build_javascript(dir: &Path, out: &Path, supplied: &Supplied) -> Result<(), ScaffoldError> {
    let tool = std::env::var_os("AGH_COMPONENTIZE_JS")
        .map(PathBuf::from)
        .or_else(|| on_path(dir, "componentize-js"))
        .ok_or_else(|| ScaffoldError::Missing {
            tool: "componentize-js",
            install: format!(
                "`npm install -g {COMPONENTIZE_JS}` (needs Node.js 18 or later), or set AGH_COMPONENTIZE_JS to it; agh never runs a tool from the project folder (its node_modules/.bin)"
            ),
        })?;
    // Built from a copy holding the SDK when the project has none.
    let source = supplied.dir.path().join("js");
    copy_js(dir, &source)?;
    for (path, contents) in JS_SDK {
        if !source.join(path).exists() {
            write(&source, path, contents)?;
        }
    }
    supplied.hand_to_builder(dir)?;
    run(
        "componentize-js",
        build_command(tool, dir)
            .arg(source.join("app.js"))
            .arg("--wit")
            .arg(supplied.wit(dir))
            .args(["--world-name", "grader-plugin"])
            // agh grants no network: leave WASI's HTTP out of the component.
            .args(["--disable", "http", "--disable", "fetch-event"])
            .arg("-o")
            .arg(out),
    )
}

/// Copies the project's `.js`/`.mjs`/`.json` files (not `node_modules`).
fn copy_js(from: &Path, to: &Path) -> Result<(), ScaffoldError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ScaffoldError::Io { path, source }
    };
    std::fs::create_dir_all(to).map_err(io(to))?;
    for entry in std::fs::read_dir(from)
        .map_err(io(from))?
        .filter_map(Result::ok)
    {
        let path = entry.path();
        let name = entry.file_name();
        let kind = entry.file_type().map_err(io(&path))?;
        if kind.is_dir() && name != "node_modules" && name != "target" {
            copy_js(&path, &to.join(&name))?;
        } else if kind.is_file()
            && path
                .extension()
                .is_some_and(|e| e == "js" || e == "mjs" || e == "json")
        {
            std::fs::copy(&path, to.join(&name)).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// Builds the grader project in `dir` into `out` (default
/// `dir/grader.wasm`) with its language's toolchain, then loads it the way
/// `agh grade` does (contract version, exports, imports), describes it,
/// and leaves it compiled in agh's cache.
///
/// # Errors
/// [`ScaffoldError`] saying what is missing and how to install it, or
/// what is wrong with the result.
pub async fn build(
    dir: &Path,
    out: Option<&Path>,
    notice: &mut dyn FnMut(LoadNotice),
) -> Result<Built, ScaffoldError> {
    let dir = &dir.canonicalize().map_err(|source| ScaffoldError::Io {
        path: dir.into(),
        source,
    })?;
    let language = language_of(dir)?;
    let out = match out {
        None => dir.join("grader.wasm"),
        Some(out) if out.is_relative() => std::env::current_dir()
            .map_err(|source| ScaffoldError::Io {
                path: out.into(),
                source,
            })?
            .join(out),
        Some(out) => out.to_path_buf(),
    };
    let supplied = Supplied::new()?;
    match language {
        Language::Rust => build_rust(dir, &out)?,
        Language::Python => build_python(dir, &out, &supplied)?,
        Language::Javascript => build_javascript(dir, &out, &supplied)?,
    }
    let cache = crate::private_dir::default_cache_dir().map_err(|e| ScaffoldError::Io {
        path: PathBuf::from("the cache folder"),
        source: std::io::Error::other(e.to_string()),
    })?;
    let host = PluginHost::new(Some(cache))?;
    let mut compiled = None;
    let grader = host.load_noting(&out, &mut |n| {
        if let LoadNotice::Compiled { took, .. } = n {
            compiled = Some(took);
        }
        notice(n);
    })?;
    let described = grader
        .describe(&[], Budget::for_describe(Budget::CEILING))
        .await?;
    let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    Ok(Built {
        wasm: out,
        language,
        bytes,
        grader: format!("{} {}", described.name, described.version),
        contract: grader.contract(),
        compiled,
    })
}
