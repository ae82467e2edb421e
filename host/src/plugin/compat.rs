//! What the frozen contracts' conversions share: every import they have in
//! common with the current contract is the same call with the same
//! arguments, its answer passed back through the module's own `back` (which
//! maps the current errors to the old ones). Expanded inside each
//! `compat_*` module, where `old`, `now`, `back` and the old interfaces'
//! modules (`sandbox`, `submission`, `assets`, `log`) name that version's.

/// The `sandbox` calls every contract has, inside `impl sandbox::Host`
/// (`reset` came with 0.2.0), through the module's `command` and
/// `result_back` conversions.
macro_rules! forward_sandbox {
    () => {
        async fn run(
            &mut self,
            cmd: old::Command,
        ) -> wasmtime::Result<Result<old::CommandResult, old::Error>> {
            back(
                now::sandbox::Host::run(self, command(cmd)).await,
                result_back,
            )
        }

        async fn converse(
            &mut self,
            judge: old::Command,
            student: old::Command,
        ) -> wasmtime::Result<Result<old::Conversation, old::Error>> {
            back(
                now::sandbox::Host::converse(self, command(judge), command(student)).await,
                |c| old::Conversation {
                    judge: result_back(c.judge),
                    student: result_back(c.student),
                },
            )
        }

        async fn write_file(
            &mut self,
            path: String,
            contents: Vec<u8>,
            read_only: bool,
        ) -> wasmtime::Result<Result<(), old::Error>> {
            back(
                now::sandbox::Host::write_file(self, path, contents, read_only).await,
                |()| (),
            )
        }

        async fn read_file(
            &mut self,
            path: String,
            max_bytes: u64,
        ) -> wasmtime::Result<Result<Vec<u8>, old::Error>> {
            back(
                now::sandbox::Host::read_file(self, path, max_bytes).await,
                |b| b,
            )
        }

        async fn place_asset(&mut self, name: String) -> wasmtime::Result<Result<(), old::Error>> {
            back(now::sandbox::Host::place_asset(self, name).await, |()| ())
        }
    };
}

/// `submission`, `assets` and `log`, unchanged since 0.1.0.
macro_rules! forward_reads_and_log {
    () => {
        impl submission::Host for GraderState {
            async fn list_files(&mut self) -> wasmtime::Result<Result<Vec<String>, old::Error>> {
                back(now::submission::Host::list_files(self).await, |f| f)
            }

            async fn read_file(
                &mut self,
                path: String,
            ) -> wasmtime::Result<Result<Vec<u8>, old::Error>> {
                back(now::submission::Host::read_file(self, path).await, |b| b)
            }
        }

        impl assets::Host for GraderState {
            async fn list_files(
                &mut self,
                name: String,
            ) -> wasmtime::Result<Result<Vec<String>, old::Error>> {
                back(now::assets::Host::list_files(self, name).await, |f| f)
            }

            async fn read(
                &mut self,
                name: String,
                path: String,
            ) -> wasmtime::Result<Result<Vec<u8>, old::Error>> {
                back(now::assets::Host::read(self, name, path).await, |b| b)
            }
        }

        impl log::Host for GraderState {
            async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
                let level = match level {
                    log::Level::Debug => now::log::Level::Debug,
                    log::Level::Info => now::log::Level::Info,
                    log::Level::Warn => now::log::Level::Warn,
                };
                now::log::Host::log(self, level, message).await
            }
        }
    };
}

pub(super) use {forward_reads_and_log, forward_sandbox};
