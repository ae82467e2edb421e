//! `agh:grader/log`: bounded logging.

use super::bindings::current::agh::grader::log::{Host, Level};
use super::state::GraderState;

/// Most log lines kept per submission.
pub const MAX_LOG_LINES: usize = 200;
/// Most bytes of one log line kept.
pub const MAX_LOG_LINE_BYTES: usize = 1024;

impl Host for GraderState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.count_call()?;
        if self.log.len() >= MAX_LOG_LINES {
            self.log_dropped += 1;
            return Ok(());
        }
        let mut keep = message.len().min(MAX_LOG_LINE_BYTES);
        while !message.is_char_boundary(keep) {
            keep -= 1;
        }
        let mut line = message[..keep].to_string();
        line.insert_str(
            0,
            match level {
                Level::Debug => "debug: ",
                Level::Info => "info: ",
                Level::Warn => "warn: ",
            },
        );
        tracing::debug!(grader_log = %line);
        self.log.push(line);
        Ok(())
    }
}
