//! Results: verdicts, the result model, and the files agh writes.

pub mod export;
mod result;
mod verdict;

pub use result::{
    AssetDigest, Provenance, RESULT_SCHEMA, RESULTS_DIR, Retry, Status, SubmissionResult,
    TestRecord, TestStatus, TestVisibility, Timings, result_path,
};
pub use verdict::{Limit, Verdict};
