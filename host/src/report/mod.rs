//! Results: verdicts, the result model, and the files agh writes.

mod result;
mod verdict;

pub use result::{write_atomic, AssetDigest, Provenance, Status, SubmissionResult, TestRecord, Timings};
pub use verdict::Verdict;
