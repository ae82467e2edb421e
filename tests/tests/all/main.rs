//! End-to-end and adversarial tests of agh, against the real Docker daemon
//! with the runsc runtime. Nothing here is skipped when Docker is missing:
//! the tests fail and say how to set the machine up.

mod assets;
mod batch;
mod check;
mod cli;
mod grade;
mod gradescope;
mod plugin;
mod project;
mod sandbox;
mod scripted;
mod service;
mod support;
mod transcript;
