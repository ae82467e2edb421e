//! Results: verdicts, the result model, and the files agh writes.

mod verdict;

pub use verdict::Verdict;
