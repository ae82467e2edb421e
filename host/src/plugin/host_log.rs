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
        let mut line: String = message.chars().take(MAX_LOG_LINE_BYTES).collect();
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
