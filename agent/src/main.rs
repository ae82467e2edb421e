//! The agent: init of every agh sandbox.
//!
//! Started by the container as its first process, it speaks the framed
//! protocol of `agh-protocol` on its stdin and stdout with agh, for the
//! sandbox's whole life, and does what agh asks: runs commands as the
//! student or grader user under their limits, enforces their deadlines and
//! output caps, kills everything they leave behind, and reports what
//! happened. It reaps every orphan, as an init must.
//!
//! The same binary, run with a helper name as its first argument, is what
//! the agent starts as a sandbox user for file work (see [`helpers`]), and
//! what a grader-user command runs a student's program through (`as-student`,
//! see [`door`]).

mod door;
mod helpers;
mod serve;
mod sys;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => serve::serve(),
        Some(helper) => helpers::run(helper, &args[1..]),
    }
}
