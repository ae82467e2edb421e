//! [`SandboxPort`]: the one way a grader's host calls reach a sandbox.
//!
//! Every operation a grader can cause (a command, a conversation, a file
//! written, read or placed, a fresh sandbox, the teardown) goes through this
//! trait, so a grader's behaviour can be driven against a scripted sandbox
//! in tests (no Docker, milliseconds), and every call and its reply pass one
//! place where they can be recorded. [`Sandbox`], a real gVisor container,
//! is the implementation agh grades with.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{
    Command, CommandOutcome, FileEntry, HostTree, Owner, Sandbox, SandboxError, SandboxSpec, User,
};

/// Where a submission's files are placed in its sandbox.
pub const SUBMISSION_DEST: &str = "/work";

/// What a port's operations return.
pub type PortFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SandboxError>> + Send + 'a>>;

/// A sandbox as the grader host uses it. Each method means what the
/// [`Sandbox`] method of the same name does, with its errors.
pub trait SandboxPort: Send + Sync {
    /// The spec the sandbox was created from (its limits).
    fn spec(&self) -> &SandboxSpec;

    /// Runs one command.
    fn run<'a>(&'a self, command: &'a Command) -> PortFuture<'a, CommandOutcome>;

    /// Runs a judge beside the student's program, each one's stdout the
    /// other's stdin.
    fn converse<'a>(
        &'a self,
        judge: &'a Command,
        student: &'a Command,
    ) -> PortFuture<'a, (CommandOutcome, CommandOutcome)>;

    /// Writes one file.
    fn write_file<'a>(
        &'a self,
        path: &'a str,
        bytes: Vec<u8>,
        owner: Owner,
        read_only: bool,
    ) -> PortFuture<'a, ()>;

    /// Reads a file back, up to `max_bytes`; says whether it was cut.
    fn read_file<'a>(
        &'a self,
        path: &'a str,
        max_bytes: u64,
        user: User,
    ) -> PortFuture<'a, (Vec<u8>, bool)>;

    /// Puts `entries` below `dest`.
    fn copy_in<'a>(
        &'a self,
        dest: &'a str,
        entries: Vec<FileEntry>,
        owner: Owner,
        read_only: bool,
    ) -> PortFuture<'a, ()>;

    /// Puts a walked host tree below `dest`; returns the digest of the
    /// bytes that went in ([`super::TreeDigest`]).
    fn copy_tree_in<'a>(
        &'a self,
        tree: &'a HostTree,
        dest: &'a str,
        owner: Owner,
        read_only: bool,
    ) -> PortFuture<'a, String>;

    /// A new, empty sandbox from the same spec; this one is left as it is.
    fn renew(&self) -> PortFuture<'_, Arc<dyn SandboxPort>>;

    /// A fresh sandbox holding `submission` in `/work` as the first one
    /// did, this one torn down first (so two sandboxes of one submission
    /// never run at once); returns it with the digest of what was copied.
    /// A renewed sandbox that cannot be filled is torn down here.
    fn reset<'a>(
        &'a self,
        submission: &'a HostTree,
    ) -> PortFuture<'a, (Arc<dyn SandboxPort>, String)> {
        Box::pin(async move {
            self.teardown().await;
            let fresh = self.renew().await?;
            match fresh
                .copy_tree_in(submission, SUBMISSION_DEST, Owner::Student, false)
                .await
            {
                Ok(digest) => Ok((fresh, digest)),
                Err(err) => {
                    fresh.teardown().await;
                    Err(err)
                }
            }
        })
    }

    /// Ends the sandbox; never fails (what cannot be removed now is
    /// removed as a leftover later).
    fn teardown(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

impl SandboxPort for Sandbox {
    fn spec(&self) -> &SandboxSpec {
        Sandbox::spec(self)
    }

    fn run<'a>(&'a self, command: &'a Command) -> PortFuture<'a, CommandOutcome> {
        Box::pin(Sandbox::run(self, command))
    }

    fn converse<'a>(
        &'a self,
        judge: &'a Command,
        student: &'a Command,
    ) -> PortFuture<'a, (CommandOutcome, CommandOutcome)> {
        Box::pin(Sandbox::converse(self, judge, student))
    }

    fn write_file<'a>(
        &'a self,
        path: &'a str,
        bytes: Vec<u8>,
        owner: Owner,
        read_only: bool,
    ) -> PortFuture<'a, ()> {
        Box::pin(Sandbox::write_file(self, path, bytes, owner, read_only))
    }

    fn read_file<'a>(
        &'a self,
        path: &'a str,
        max_bytes: u64,
        user: User,
    ) -> PortFuture<'a, (Vec<u8>, bool)> {
        Box::pin(Sandbox::read_file(self, path, max_bytes, user))
    }

    fn copy_in<'a>(
        &'a self,
        dest: &'a str,
        entries: Vec<FileEntry>,
        owner: Owner,
        read_only: bool,
    ) -> PortFuture<'a, ()> {
        Box::pin(Sandbox::copy_in(self, dest, entries, owner, read_only))
    }

    fn copy_tree_in<'a>(
        &'a self,
        tree: &'a HostTree,
        dest: &'a str,
        owner: Owner,
        read_only: bool,
    ) -> PortFuture<'a, String> {
        Box::pin(Sandbox::copy_tree_in(self, tree, dest, owner, read_only))
    }

    fn renew(&self) -> PortFuture<'_, Arc<dyn SandboxPort>> {
        Box::pin(async move {
            let fresh: Arc<dyn SandboxPort> = Arc::new(Sandbox::renew(self).await?);
            Ok(fresh)
        })
    }

    fn teardown(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(Sandbox::teardown(self))
    }
}
