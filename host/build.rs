//! Builds the sandbox agent (`agent/`) as a static musl binary and leaves it
//! in OUT_DIR, where `sandbox::agent` embeds it: one `agh` binary carries
//! the exact agent it speaks with, so the two can never disagree.

use std::path::PathBuf;
use std::process::Command;

/// The target the agent is built for: static, so it needs nothing from
/// the sandbox image.
const AGENT_TARGET: &str = "x86_64-unknown-linux-musl";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let root = manifest.join("..");
    for watched in ["agent", "protocol", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let target_dir = root.join("target").join("agent");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.current_dir(&root).args([
        "build",
        "--release",
        "--locked",
        "-p",
        "agh-agent",
        "--target",
        AGENT_TARGET,
    ]);
    build.env("CARGO_TARGET_DIR", &target_dir);
    // The outer build's settings are for the host, not for the agent.
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
    let status = build.status().expect("running cargo for the sandbox agent");
    assert!(
        status.success(),
        "building the sandbox agent for {AGENT_TARGET} failed; is the target installed? \
         (`rustup target add {AGENT_TARGET}`, or scripts/setup)"
    );
    let built = target_dir
        .join(AGENT_TARGET)
        .join("release")
        .join("agh-agent");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("out dir")).join("agh-agent");
    std::fs::copy(&built, &out).expect("copying the agent into OUT_DIR");
}
