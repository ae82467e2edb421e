//! Resource limits for a sandbox and for each command run in it.
//!
//! Every limit is a positive number: zero is refused rather than read as
//! "unlimited", because an operator or a plugin that writes 0 by mistake must
//! never switch a bound off.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::exec::CommandOutcome;

/// Bytes in one mebibyte.
pub const MIB: u64 = 1024 * 1024;

/// Host tasks the gVisor sentry needs for itself in the container's pids
/// cgroup: Debian's runsc does not boot with a pids limit of 32.
pub const SENTRY_PIDS_HEADROOM: u32 = 512;

/// Host tasks allowed per guest process under gVisor (each address space
/// has stub threads on the host). With 96 a shell fork bomb of 64 guest
/// processes met the host bound first (forks failed below the guest
/// limit, and at 1,024 the whole sandbox died); with 256 it meets its own
/// RLIMIT_NPROC first.
pub const HOST_TASKS_PER_PROCESS: u32 = 256;

/// Open files of each process of a command (RLIMIT_NOFILE).
pub const OPEN_FILES: u64 = 1024;
/// Memory a sandbox needs besides its files: gVisor's own structures, the
/// agent, and a small program. The writable places are tmpfs, held in the
/// sandbox's memory, so a sandbox whose memory is below a full `/work` and
/// this would run out while agh copies a submission that fits every cap.
pub const SANDBOX_OVERHEAD_BYTES: u64 = 64 * MIB;
/// Stack of each process of a command (RLIMIT_STACK); the sandbox's memory
/// limit bounds it in any case.
pub const STACK_BYTES: u64 = 64 * MIB;

/// Limits applied to one sandbox and, as defaults, to its commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Time limit of one command: it bounds CPU time (with `cpu_time`),
    /// and the wall clock stops the command at the sandbox's
    /// [`super::SandboxSpec::wall_multiple`] of it.
    #[serde(with = "humantime_serde_compat")]
    #[schemars(with = "String")]
    pub wall_time: Duration,
    /// CPU time of each process of one command, rounded up to whole
    /// seconds: bounds computation while a slow, waiting command may use
    /// its whole wall time.
    #[serde(with = "humantime_serde_compat")]
    #[schemars(with = "String")]
    pub cpu_time: Duration,
    /// Memory of the whole sandbox in bytes; swap is set equal, so no swap.
    pub memory_bytes: u64,
    /// Processes (and threads) one sandbox user may have at once.
    pub processes: u32,
    /// CPU share in thousandths of a core.
    pub millicpus: u32,
    /// Bytes kept of each of stdout and stderr of one command.
    pub output_bytes: u64,
    /// Largest file a command may write.
    pub file_size_bytes: u64,
    /// Size of each writable tmpfs (`/work`, `/grader`, `/assets`, `/tmp`).
    pub tmpfs_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            wall_time: Duration::from_secs(10),
            cpu_time: Duration::from_secs(10),
            memory_bytes: 512 * MIB,
            processes: 64,
            millicpus: 1000,
            output_bytes: MIB,
            file_size_bytes: 64 * MIB,
            tmpfs_bytes: 256 * MIB,
        }
    }
}

impl Limits {
    /// Checks that every limit is positive and that the sandbox can boot.
    ///
    /// # Errors
    /// A phrase naming the first limit that is zero or too small, in words
    /// ("a process limit of 0; ..."), to follow "the grader asks for".
    pub fn validate(&self) -> Result<(), String> {
        let checks: [(&str, bool); 8] = [
            ("a wall time", self.wall_time.is_zero()),
            ("a CPU time", self.cpu_time.is_zero()),
            ("memory", self.memory_bytes == 0),
            ("a process limit", self.processes == 0),
            ("a CPU share", self.millicpus == 0),
            ("an output cap", self.output_bytes == 0),
            ("a file size limit", self.file_size_bytes == 0),
            ("a size of writable places", self.tmpfs_bytes == 0),
        ];
        if let Some((what, _)) = checks.iter().find(|(_, zero)| *zero) {
            return Err(format!(
                "{what} of 0; 0 never means unlimited, give a positive value"
            ));
        }
        if self.memory_bytes < 32 * MIB {
            return Err(format!(
                "memory of {}; a gVisor sandbox needs at least 32 MiB",
                bytesize::ByteSize(self.memory_bytes)
            ));
        }
        Ok(())
    }

    /// The command's CPU limit in whole seconds, rounded up.
    #[must_use]
    pub fn cpu_seconds(&self) -> u64 {
        self.cpu_time.as_secs() + u64::from(self.cpu_time.subsec_nanos() > 0)
    }

    /// Why a sandbox of these limits could not hold a full `/work`, if it
    /// could not: a phrase to follow "the grader asks for".
    #[must_use]
    pub fn room_for_work(&self) -> Option<String> {
        let needed = self.tmpfs_bytes.saturating_add(SANDBOX_OVERHEAD_BYTES);
        (self.memory_bytes < needed).then(|| {
            format!(
                "memory of {} with writable places of {}: a full /work is held in memory and \
                 needs {} with the sandbox's own {}; ask for at least {} of memory or \
                 writable places of at most {}",
                bytesize::ByteSize(self.memory_bytes),
                bytesize::ByteSize(self.tmpfs_bytes),
                bytesize::ByteSize(needed),
                bytesize::ByteSize(SANDBOX_OVERHEAD_BYTES),
                bytesize::ByteSize(needed),
                bytesize::ByteSize(self.memory_bytes.saturating_sub(SANDBOX_OVERHEAD_BYTES)),
            )
        })
    }

    /// The pids cgroup limit for the container. The process limit itself is
    /// RLIMIT_NPROC, which gVisor enforces inside the sandbox by failing
    /// `fork`; hitting the host cgroup limit instead can kill the whole
    /// sandbox, so the cgroup limit is only a backstop above what the guest
    /// can reach.
    #[must_use]
    pub fn container_pids(&self) -> i64 {
        i64::from(self.processes) * i64::from(HOST_TASKS_PER_PROCESS)
            + i64::from(SENTRY_PIDS_HEADROOM)
    }
}

/// Durations in TOML and JSON as human text ("10s", "1m 30s").
pub(crate) mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_refused_not_unlimited() {
        let limits = Limits {
            processes: 0,
            ..Limits::default()
        };
        let err = limits.validate().unwrap_err();
        assert!(err.contains("a process limit of 0"), "{err}");
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Limits::default().validate(), Ok(()));
    }

    #[test]
    fn pids_backstop_leaves_room_for_the_sentry() {
        let limits = Limits {
            processes: 10,
            ..Limits::default()
        };
        assert_eq!(limits.container_pids(), 10 * 256 + 512);
    }
}

/// The limit that ended a command, when more than one was met: the one
/// that caused the others wins, always in this order.
///
/// 1. `processes`: a fork bomb exhausts memory and time as a consequence.
/// 2. `memory`: running out ends the whole sandbox, and with it any
///    deadline or output.
/// 3. `file-size`: a write cut short makes a program fail or retry forever.
/// 4. `storage`: a full place does the same.
/// 5. `cpu-time`: a process that used its CPU time was killed for it, even
///    if the deadline passed while it was dying.
/// 6. `wall-time`: the deadline is the bound of last resort.
/// 7. `output`: a program killed for its output was within every other.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Limit {
    /// The process limit (or the sandbox's host-side pids bound).
    Processes,
    /// The sandbox's memory.
    Memory,
    /// The largest file a command may write.
    FileSize,
    /// The room in a writable place.
    Storage,
    /// CPU time of a process.
    CpuTime,
    /// The wall-clock deadline.
    WallTime,
    /// The output cap.
    Output,
}

impl Limit {
    /// The limit that ended `outcome`, by the precedence above.
    #[must_use]
    pub fn of(outcome: &CommandOutcome) -> Option<Limit> {
        // A sandbox that died by the command's doing without running out
        // of memory met its host-side process bound.
        let crashed = outcome.sandbox_lost && !outcome.out_of_memory;
        let met = [
            (Limit::Processes, outcome.process_limit_reached || crashed),
            (Limit::Memory, outcome.out_of_memory),
            (
                Limit::FileSize,
                outcome.file_size_exceeded || outcome.signal.as_deref() == Some("SIGXFSZ"),
            ),
            (Limit::Storage, outcome.storage_full),
            (Limit::CpuTime, outcome.cpu_time_exceeded),
            (Limit::WallTime, outcome.timed_out),
            (
                Limit::Output,
                outcome.stdout_truncated || outcome.stderr_truncated,
            ),
        ];
        met.into_iter()
            .find(|(_, hit)| *hit)
            .map(|(limit, _)| limit)
    }

    /// The name results use.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Limit::Processes => "processes",
            Limit::Memory => "memory",
            Limit::FileSize => "file-size",
            Limit::Storage => "storage",
            Limit::CpuTime => "cpu-time",
            Limit::WallTime => "wall-time",
            Limit::Output => "output",
        }
    }
}
