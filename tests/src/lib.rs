//! Paths of the guest graders, built by this crate's build script.

/// Grader components compiled from `graders/` for wasm32-wasip2.
pub mod graders {
    include!(concat!(env!("OUT_DIR"), "/graders.rs"));
}
