//! A `cases.toml` of arbitrary text, as course staff (or a grader project
//! from elsewhere) write it, read by the no-code grader's parser: a config
//! or an error naming what is wrong, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../../graders/io-cases/src/cases.rs"]
#[allow(dead_code)]
mod cases;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let files = [
        "01.in".to_string(),
        "01.out".to_string(),
        "data/x.txt".to_string(),
    ];
    let _ = cases::parse(text, &files);
});
