//! Builds every guest under graders/ for wasm32-wasip2 and emits their
//! paths as constants, so a test naming a guest that does not build fails
//! to compile rather than being skipped.

use std::path::PathBuf;
use std::process::Command;

/// Guest crates and the artifact each produces.
const GUESTS: [(&str, &str); 6] = [
    ("PYTHON_UNITTEST", "python_unittest.wasm"),
    ("C_IO", "c_io.wasm"),
    ("MISBEHAVING", "misbehaving.wasm"),
    ("NOT_A_GRADER", "not-a-grader.wasm"),
    ("CONTRACT_0_1", "contract_0_1.wasm"),
    ("FOREIGN_IMPORT", "foreign_import.wasm"),
];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir")).join("..");
    let graders = root.join("graders");
    for watched in [
        "graders/Cargo.toml",
        "graders/sdk",
        "graders/python-unittest",
        "graders/c-io",
        "graders/misbehaving",
        "graders/not-a-grader",
        "graders/contract-0.1",
        "graders/foreign-import",
        "wit",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(&graders)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--workspace",
        ])
        .env("CARGO_TARGET_DIR", graders.join("target"));
    // The outer build's settings are for the host, not for the guests.
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
    let status = build.status().expect("running cargo for the graders");
    assert!(
        status.success(),
        "building the graders for wasm32-wasip2 failed; is the target installed? (`rustup target add wasm32-wasip2`, or scripts/setup)"
    );
    let release = graders
        .join("target/wasm32-wasip2/release")
        .canonicalize()
        .expect("graders' release folder");
    let mut constants = String::new();
    for (name, file) in GUESTS {
        let path = release.join(file);
        assert!(path.is_file(), "guest {} was not built", path.display());
        constants.push_str(&format!(
            "/// Built from graders/.\npub const {name}: &str = {:?};\n",
            path.display().to_string()
        ));
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("out dir")).join("graders.rs");
    std::fs::write(out, constants).expect("writing graders.rs");
}
