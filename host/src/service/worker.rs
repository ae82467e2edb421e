//! Grading slots: a worker takes the next submission from the store only
//! when a slot is free or about to be (one more than its slots in flight,
//! as a batch has: the next sandbox is made and filled while the others
//! grade), holds it under a lease it renews, grades it with the course
//! version's prepared grader, and records its one result (or, after an
//! infra error, queues it again with a back-off, at most
//! [`MAX_SERVICE_ATTEMPTS`] attempts in all).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::blobs::{BlobKind, Blobs};
use super::courses::Graders;
use super::store::{Claim, LEASE, MAX_SERVICE_ATTEMPTS, Store, StoreError};
use crate::blame::Blame;
use crate::grading::{RetryPolicy, Snapshot};
use crate::report::{Status, SubmissionResult};
use crate::sandbox;

/// The label of the service's sandboxes: `service/ID` for submission ID.
pub const SERVICE_LABEL: &str = "service";

/// The batch label of the sandboxes grading `claim`.
fn claim_label(claim: &Claim) -> String {
    format!("{SERVICE_LABEL}/{}", claim.id)
}

/// How often an idle slot asks the store for work.
const POLL: Duration = Duration::from_millis(250);

/// How often a worker looks for what stopped agh processes on its host
/// left (sandboxes, leases).
const SWEEP: Duration = Duration::from_secs(15);

/// What a worker needs.
pub struct Worker {
    /// The store it takes submissions from.
    pub store: Store,
    /// Where archives are.
    pub blobs: Blobs,
    /// Prepared graders.
    pub graders: Arc<Graders>,
    /// Where archives are unpacked while graded.
    pub work: PathBuf,
    /// Grading slots.
    pub slots: usize,
    /// Who it is in leases.
    pub owner: String,
    /// True while the sandbox is proved safe: no submission is taken
    /// (no student code runs) otherwise.
    pub healthy: Arc<AtomicBool>,
}

impl Worker {
    /// Takes and grades submissions until `stop`, then waits for those in
    /// flight to finish (a lease taken is never abandoned while agh runs).
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        self.take_back_from_stopped().await;
        let mut last_sweep = tokio::time::Instant::now();
        let in_flight = self.slots.max(1) + 1;
        let claims = Arc::new(Semaphore::new(in_flight));
        let grading = Arc::new(Semaphore::new(self.slots.max(1)));
        loop {
            let permit = tokio::select! {
                permit = claims.clone().acquire_owned() => permit,
                () = stop.cancelled() => break,
            };
            let Ok(permit) = permit else { break };
            if last_sweep.elapsed() >= SWEEP {
                last_sweep = tokio::time::Instant::now();
                tokio::spawn({
                    let worker = self.clone();
                    async move { worker.take_back_from_stopped().await }
                });
            }
            if !self.healthy.load(Ordering::SeqCst) {
                drop(permit);
                tokio::select! {
                    () = tokio::time::sleep(POLL) => {}
                    () = stop.cancelled() => break,
                }
                continue;
            }
            match self.store.claim(&self.owner).await {
                Ok(Some(claim)) => {
                    let (worker, grading) = (self.clone(), grading.clone());
                    tokio::spawn(async move {
                        worker.grade(claim, &grading).await;
                        drop(permit);
                    });
                }
                Ok(None) => {
                    drop(permit);
                    tokio::select! {
                        () = tokio::time::sleep(POLL) => {}
                        () = stop.cancelled() => break,
                    }
                }
                Err(err) => {
                    drop(permit);
                    tracing::error!(%err, "cannot take work from the store");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(2)) => {}
                        () = stop.cancelled() => break,
                    }
                }
            }
        }
        tracing::info!("draining: waiting for submissions in flight");
        let all = u32::try_from(in_flight).unwrap_or(u32::MAX);
        let _ = claims.acquire_many(all).await;
        self.graders.settle().await;
    }

    /// Removes the sandboxes of agh processes on this host that are
    /// provably gone (another worker here killed, say) and ends their
    /// leases at once: at start, and every [`SWEEP`] while it runs, so a
    /// node whose other worker died is not left with its sandboxes.
    async fn take_back_from_stopped(&self) {
        if let Ok(docker) = sandbox::connect().await {
            match sandbox::remove_leftovers(&docker, sandbox::Leftovers::Orphaned).await {
                Ok(cleaned) if cleaned.removed > 0 => {
                    tracing::info!(
                        removed = cleaned.removed,
                        "removed sandboxes of stopped agh processes"
                    );
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(%err, "could not look for leftover sandboxes"),
            }
        }
        match self.store.expire_leases_of(sandbox::owner_is_gone).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                submissions = n,
                "taking back submissions whose agh process stopped"
            ),
            Err(err) => tracing::warn!(%err, "could not look for submissions of stopped workers"),
        }
    }

    /// Grades one claimed submission, renewing its lease meanwhile. When
    /// the lease is lost (the submission was cancelled, or another worker
    /// took it), grading stops there: its slot is free at once and its
    /// sandboxes are removed.
    async fn grade(&self, claim: Claim, grading: &Semaphore) {
        let beat = CancellationToken::new();
        let lost = CancellationToken::new();
        let heartbeat = {
            let (store, claim, beat, lost) = (
                self.store.clone(),
                claim.clone(),
                beat.clone(),
                lost.clone(),
            );
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(LEASE / 3) => {}
                        () = beat.cancelled() => return,
                    }
                    match store.heartbeat(&claim).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(submission = %claim.id, "lease lost (cancelled or taken over); grading stops");
                            lost.cancel();
                            return;
                        }
                        Err(err) => {
                            tracing::warn!(submission = %claim.id, %err, "could not renew a lease")
                        }
                    }
                }
            })
        };
        let outcome = tokio::select! {
            outcome = self.attempt(&claim, grading) => Some(outcome),
            () = lost.cancelled() => None,
        };
        beat.cancel();
        let _ = heartbeat.await;
        match outcome {
            Some(outcome) => {
                if let Err(err) = self.record(&claim, outcome).await {
                    tracing::error!(submission = %claim.id, %err, "could not record a result; the lease runs out and it is graded again");
                }
            }
            None => self.abandon(&claim).await,
        }
    }

    /// Removes what a grading stopped midway left: this process's
    /// sandboxes of `claim` and its unpacked files.
    async fn abandon(&self, claim: &Claim) {
        if let Ok(docker) = sandbox::connect().await {
            match sandbox::remove_leftovers(&docker, sandbox::Leftovers::Mine(&claim_label(claim)))
                .await
            {
                Ok(cleaned) => {
                    tracing::info!(submission = %claim.id, removed = cleaned.removed, "stopped grading");
                }
                Err(err) => {
                    tracing::warn!(submission = %claim.id, %err, "could not remove the stopped grading's sandboxes");
                }
            }
        }
        let target = self.work.join(format!("{}-{}", claim.id, claim.fence));
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(target)).await;
    }

    /// One attempt: the result, or an infra error's reason.
    async fn attempt(&self, claim: &Claim, grading: &Semaphore) -> SubmissionResult {
        let version = match self.store.version(&claim.course, Some(claim.version)).await {
            Ok(Some(version)) => version,
            Ok(None) => {
                return SubmissionResult::failed(
                    &claim.student,
                    Status::InfraError,
                    format!(
                        "course {} version {} is not in the store",
                        claim.course, claim.version
                    ),
                );
            }
            Err(err) => {
                return SubmissionResult::failed(
                    &claim.student,
                    Status::InfraError,
                    err.to_string(),
                );
            }
        };
        let grader = match self.graders.get(&version).await {
            Ok(grader) => grader,
            Err(err) => {
                let status = match err.blame() {
                    Blame::Grader => Status::PluginError,
                    _ => Status::InfraError,
                };
                return SubmissionResult::failed(&claim.student, status, err.to_string());
            }
        };
        let kind = BlobKind::archive(&claim.archive_kind).unwrap_or(BlobKind::Zip);
        let archive = match self.blobs.fetch(&claim.archive_sha256, kind).await {
            Ok(archive) => archive,
            Err(err) => {
                return SubmissionResult::failed(
                    &claim.student,
                    Status::InfraError,
                    err.to_string(),
                );
            }
        };
        let target = self.work.join(format!("{}-{}", claim.id, claim.fence));
        let unpacked = {
            let (archive, target) = (archive.clone(), target.clone());
            tokio::task::spawn_blocking(move || {
                crate::batch::intake::unpack_into(&archive, &target)
            })
            .await
            .unwrap_or_else(|panic| Err(panic.to_string()))
        };
        let result = match unpacked {
            Err(why) => {
                // Say "the upload", not the blob's file name.
                let blob = format!("{}.{} ", claim.archive_sha256, kind.name());
                let why = why.replacen(&blob, "the uploaded archive was ", 1);
                SubmissionResult::failed(&claim.student, Status::InvalidSubmission, why)
            }
            Ok(()) => match Snapshot::take(&claim.student, &target).await {
                Err(failed) => *failed,
                Ok(snapshot) => grader
                    .grade(
                        &snapshot,
                        &claim_label(claim),
                        RetryPolicy::Once,
                        grading,
                        None,
                    )
                    .await
                    .unwrap_or_else(|| {
                        SubmissionResult::failed(
                            &claim.student,
                            Status::InfraError,
                            "stopped".into(),
                        )
                    }),
            },
        };
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(target)).await;
        result
    }

    /// Records `result` for `claim`: final results once; an infra error
    /// queued again, or final after the last attempt.
    async fn record(&self, claim: &Claim, mut result: SubmissionResult) -> Result<(), StoreError> {
        if !result.status.is_final() && claim.attempts < MAX_SERVICE_ATTEMPTS {
            let reason = result.error.clone().unwrap_or_default();
            tracing::warn!(submission = %claim.id, attempt = claim.attempts, %reason, "infra error; queued again");
            let wait = Duration::from_secs(2u64.pow(u32::try_from(claim.attempts).unwrap_or(1)));
            self.store.retry_later(claim, &reason, wait).await?;
            return Ok(());
        }
        result.retries.splice(0..0, claim.retries.iter().cloned());
        if !self.store.finish(claim, &result).await? {
            tracing::warn!(submission = %claim.id, "graded after its lease was lost; the result is dropped");
        }
        Ok(())
    }
}
