//! Builds the sandbox agent (`agent/`) as a static musl binary and the
//! graders agh ships (the no-code grader, `graders/io-cases`, the sandbox
//! probe, `graders/sandbox-probe`, the Gradescope runner,
//! `graders/gradescope`, and the Python unittest judge,
//! `graders/python-unittest`, as `python-tests`) as
//! WebAssembly components, and leaves them in OUT_DIR, where agh embeds
//! them: one `agh` binary carries the exact agent it speaks with, and a
//! course needs no toolchain to use a built-in grader.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target the agent is built for: static, so it needs nothing from
/// the sandbox image.
const AGENT_TARGET: &str = "x86_64-unknown-linux-musl";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let root = manifest.join("..");
    for watched in [
        "agent",
        "protocol",
        "Cargo.lock",
        "graders/io-cases",
        "graders/sandbox-probe",
        "graders/gradescope",
        "graders/python-unittest",
        "graders/sdk",
        "graders/Cargo.lock",
        "wit",
        // Embedded by sqlx::migrate!, which cannot see a new file by itself.
        "host/migrations",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("out dir"));

    let target_dir = root.join("target").join("agent");
    cargo_build(
        &root,
        &target_dir,
        &["agh-agent"],
        AGENT_TARGET,
        &["--locked"],
    );
    let built = target_dir
        .join(AGENT_TARGET)
        .join("release")
        .join("agh-agent");
    std::fs::copy(&built, out.join("agh-agent")).expect("copying the agent into OUT_DIR");

    // The graders' own workspace and target folder, shared with the
    // tests' build of the same graders.
    let graders = root.join("graders");
    let target_dir = graders.join("target");
    // Each grader's crate, and the name it goes by: `builtin:NAME`.
    let builtins = [
        ("io-cases", "io-cases"),
        ("sandbox-probe", "sandbox-probe"),
        ("gradescope", "gradescope"),
        ("python-unittest", "python-tests"),
    ];
    let crates: Vec<&str> = builtins.iter().map(|(krate, _)| *krate).collect();
    cargo_build(&graders, &target_dir, &crates, GRADER_TARGET, &[]);
    for (krate, name) in builtins {
        let built = target_dir
            .join(GRADER_TARGET)
            .join("release")
            .join(format!("{}.wasm", krate.replace('-', "_")));
        std::fs::copy(&built, out.join(format!("{name}.wasm")))
            .unwrap_or_else(|e| panic!("copying {krate} into OUT_DIR: {e}"));
    }
}

/// The target graders are built for.
const GRADER_TARGET: &str = "wasm32-wasip2";

/// `cargo build --release -p PACKAGE... --target TARGET` in `dir`, with the
/// outer build's settings (meant for the host) removed.
fn cargo_build(dir: &Path, target_dir: &Path, packages: &[&str], target: &str, extra: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(dir)
        .arg("build")
        .arg("--release")
        .args(packages.iter().flat_map(|p| ["-p", p]))
        .args(["--target", target])
        .args(extra)
        .env("CARGO_TARGET_DIR", target_dir);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
    ] {
        build.env_remove(var);
    }
    let status = build
        .status()
        .unwrap_or_else(|e| panic!("running cargo for {packages:?}: {e}"));
    assert!(
        status.success(),
        "building {packages:?} for {target} failed; is the target installed? \
         (`rustup target add {target}`, or scripts/setup)"
    );
}
