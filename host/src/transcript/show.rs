//! `agh show OUT NAME`: one submission's result and transcript as staff
//! read it: each test's verdict, then what ran, as whom, for how long,
//! and what it printed. Output is shown lossily (invalid UTF-8 replaced,
//! control characters escaped, so nothing a student printed can drive the
//! terminal) and is stored losslessly in the blobs.

use std::fmt::Write as _;
use std::path::Path;

use super::{Entry, Kept, Ran, TranscriptDir};
use crate::report::SubmissionResult;

/// Bytes of each stream shown unless all are asked for.
pub const SHOWN_BYTES: usize = 2048;

/// Why a submission cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum ShowError {
    /// No such result.
    #[error(
        "no result for {0:?} in {1}: is it an output folder of agh grade, and the name a submission's?"
    )]
    NoResult(String, String),
    /// The result cannot be read.
    #[error("{0}")]
    Unreadable(String),
    /// The transcript cannot be read.
    #[error(transparent)]
    Transcript(#[from] super::TranscriptError),
}

/// The result of `name` in `out` and its transcript's entries (none when
/// it has no transcript).
///
/// # Errors
/// [`ShowError`] saying what is missing.
pub fn load(out: &Path, name: &str) -> Result<(SubmissionResult, Vec<Entry>), ShowError> {
    let path = crate::report::result_path(out, name)
        .map_err(|e| ShowError::Unreadable(format!("{name:?}: {e}")))?;
    let bytes = std::fs::read(&path)
        .map_err(|_| ShowError::NoResult(name.to_string(), out.display().to_string()))?;
    let result: SubmissionResult = serde_json::from_slice(&bytes)
        .map_err(|e| ShowError::Unreadable(format!("{}: {e}", path.display())))?;
    let entries = match &result.transcript {
        Some(reference) => TranscriptDir::new(out).load(reference)?,
        None => Vec::new(),
    };
    Ok((result, entries))
}

/// `bytes` as text a terminal shows as it is: invalid UTF-8 replaced,
/// control characters but newline and tab escaped.
#[must_use]
pub fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The page `agh show` prints.
#[must_use]
pub fn render(
    dir: &TranscriptDir,
    result: &SubmissionResult,
    entries: &[Entry],
    full: bool,
) -> String {
    let mut page = String::new();
    let _ = writeln!(
        page,
        "{}: {}, {}/{}",
        printable(result.submission.as_bytes()),
        result.status.name(),
        result.score,
        result.max_score
    );
    if let Some(error) = &result.error {
        let _ = writeln!(page, "  {}", printable(error.as_bytes()));
    }
    if !result.tests.is_empty() {
        let _ = writeln!(page, "\ntests:");
    }
    for test in &result.tests {
        let first = test.output.lines().next().unwrap_or_default();
        let _ = writeln!(
            page,
            "  {:<7} {:>5}/{:<5} {:<14} {}{}",
            if test.score >= test.max_score {
                "passed"
            } else {
                "failed"
            },
            test.score,
            test.max_score,
            test.verdict.name(),
            printable(test.name.as_bytes()),
            if first.is_empty() {
                String::new()
            } else {
                format!(": {}", printable(first.as_bytes()))
            }
        );
    }
    let Some(reference) = &result.transcript else {
        let _ = writeln!(
            page,
            "\nno transcript (graded without one, or never graded)"
        );
        return page;
    };
    let _ = writeln!(
        page,
        "\ntranscript ({}, {} entries{}):",
        reference.path,
        reference.entries,
        if reference.cut {
            ", cut at its cap"
        } else {
            ""
        }
    );
    for (i, entry) in entries.iter().enumerate() {
        let _ = write!(page, "  [{}] ", i + 1);
        describe(&mut page, dir, entry, full);
    }
    page
}

fn stream(page: &mut String, dir: &TranscriptDir, label: &str, kept: &Kept, full: bool) {
    if kept.blob.bytes == 0 {
        return;
    }
    let _ = writeln!(page, "      {label} ({} bytes):", kept.blob.bytes);
    if !kept.stored {
        let _ = writeln!(page, "        (not kept: past the transcript's cap)");
        return;
    }
    match dir.read_blob(&kept.blob) {
        Ok(bytes) => {
            let shown = if full {
                &bytes[..]
            } else {
                &bytes[..bytes.len().min(SHOWN_BYTES)]
            };
            for line in printable(shown).lines() {
                let _ = writeln!(page, "        | {line}");
            }
            if shown.len() < bytes.len() {
                let _ = writeln!(
                    page,
                    "        ({} more bytes; --full shows them)",
                    bytes.len() - shown.len()
                );
            }
        }
        Err(err) => {
            let _ = writeln!(page, "        ({err})");
        }
    }
}

fn ran(page: &mut String, dir: &TranscriptDir, call: &super::Call, ran: &Ran, full: bool) {
    let o = &ran.outcome;
    let argv: Vec<String> = call.argv.iter().map(|a| printable(a.as_bytes())).collect();
    let ended = match (&o.limit, o.exit_code, &o.signal) {
        (Some(limit), _, _) => format!("stopped at {limit:?}"),
        (None, Some(code), _) => format!("exit {code}"),
        (None, None, Some(signal)) => format!("killed by {signal}"),
        (None, None, None) => "ended".into(),
    };
    let _ = writeln!(
        page,
        "$ {}   (as {:?}{}) {ended}, {} ms wall, {} ms CPU, {:.1} MiB",
        argv.join(" "),
        call.user,
        if call.cwd.is_empty() {
            String::new()
        } else {
            format!(" in {}", printable(call.cwd.as_bytes()))
        },
        o.wall_time.as_millis(),
        o.cpu_time.as_millis(),
        o.peak_memory_bytes as f64 / (1024.0 * 1024.0)
    );
    if let Some(stdin) = &call.stdin_sha256 {
        let _ = writeln!(page, "      stdin: sha256 {stdin}");
    }
    stream(page, dir, "stdout", &ran.stdout, full);
    stream(page, dir, "stderr", &ran.stderr, full);
}

fn describe(page: &mut String, dir: &TranscriptDir, entry: &Entry, full: bool) {
    let failed = |page: &mut String, f: &super::Failure| {
        let _ = writeln!(
            page,
            "      failed ({}): {}",
            f.kind,
            printable(f.message.as_bytes())
        );
    };
    match entry {
        Entry::Submission { files, .. } => {
            let listed: Vec<String> = files
                .iter()
                .filter_map(|f| {
                    f.contents
                        .as_ref()
                        .map(|k| format!("{} ({} B)", printable(f.path.as_bytes()), k.blob.bytes))
                })
                .collect();
            let _ = writeln!(
                page,
                "submission: {} files: {}",
                listed.len(),
                listed.join(", ")
            );
        }
        Entry::Run { call, reply } => match reply {
            Ok(r) => ran(page, dir, call, r, full),
            Err(f) => {
                let _ = writeln!(page, "$ {}", call.argv.join(" "));
                failed(page, f);
            }
        },
        Entry::Converse {
            judge,
            student,
            reply,
        } => {
            let _ = writeln!(page, "conversation:");
            match reply {
                Ok((j, s)) => {
                    let _ = write!(page, "    judge ");
                    ran(page, dir, judge, j, full);
                    let _ = write!(page, "    program ");
                    ran(page, dir, student, s, full);
                }
                Err(f) => failed(page, f),
            }
        }
        Entry::WriteFile {
            path,
            contents,
            owner,
            read_only,
            reply,
        } => {
            let _ = writeln!(
                page,
                "write {} ({} B, {owner:?}{})",
                printable(path.as_bytes()),
                contents.blob.bytes,
                if *read_only { ", read-only" } else { "" }
            );
            if let Err(f) = reply {
                failed(page, f);
            }
        }
        Entry::ReadFile { path, reply, .. } => {
            let _ = writeln!(page, "read {}", printable(path.as_bytes()));
            match reply {
                Ok((kept, cut)) => {
                    stream(
                        page,
                        dir,
                        if *cut { "contents, cut" } else { "contents" },
                        kept,
                        full,
                    );
                }
                Err(f) => failed(page, f),
            }
        }
        Entry::CopyIn {
            dest, paths, reply, ..
        } => {
            let _ = writeln!(
                page,
                "placed {} files in {}",
                paths.len(),
                printable(dest.as_bytes())
            );
            if let Err(f) = reply {
                failed(page, f);
            }
        }
        Entry::Renew { reply } => {
            let _ = writeln!(page, "fresh sandbox");
            if let Err(f) = reply {
                failed(page, f);
            }
        }
        Entry::Log { lines } => {
            let _ = writeln!(page, "the grader logged {} line(s):", lines.len());
            for line in lines {
                let _ = writeln!(page, "      | {}", printable(line.as_bytes()));
            }
        }
        Entry::Cut { max_bytes } => {
            let _ = writeln!(
                page,
                "cap of {max_bytes} bytes reached: later bytes are digests only"
            );
        }
    }
}
