//! Results: verdicts, the result model, and the files agh writes.

pub mod diff;
pub mod export;
pub mod html;
mod result;
mod verdict;

pub use result::{
    AssetDigest, CommandRecord, Provenance, RESULT_SCHEMA, RESULT_SCHEMA_FILE, RESULTS_DIR,
    Rescored, Retry, Status, SubmissionResult, TestRecord, TestStatus, TestVisibility, Timings,
    result_json_schema, result_path,
};
pub use verdict::{Limit, Verdict};
