//! agh: a grading host. Course graders are WebAssembly components; student
//! code runs only inside gVisor Docker sandboxes that this library creates,
//! limits and tears down.
//!
//! The `agh` binary is a thin command line over this library (see [`cli`]).

pub mod assets;
pub mod batch;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod layout;
pub mod names;
pub mod plugin;
pub mod policy;
pub mod private_dir;
pub mod report;
pub mod sandbox;
pub mod scaffold;

/// The version of agh, recorded in every result.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
