//! The protocol between agh and the agent that runs as init in every
//! sandbox: one byte stream each way (the container's attached stdin and
//! stdout), cut into frames.
//!
//! A frame is a 6-byte header (payload length as a little-endian `u32`, a
//! [`Channel`], a [`Side`]) and the payload. Control frames carry one JSON
//! message ([`Request`] from agh, [`Reply`] from the agent); the others carry
//! a command's bytes. One request is in flight at a time: agh sends a
//! request, then (for a command with input, or an extraction) its stdin
//! frames and an end-of-input frame; the agent sends output frames as they
//! come and ends with exactly one reply.
//!
//! Neither side trusts the other's framing: a frame longer than
//! [`MAX_PAYLOAD`], an unknown channel or side, or a control payload that is
//! not a known message is a [`ProtocolError`], and the stream is over.

use serde::{Deserialize, Serialize};

/// The protocol version; the agent says it first, and agh refuses another.
pub const VERSION: u32 = 1;

/// The largest payload of one frame.
pub const MAX_PAYLOAD: usize = 1024 * 1024;

/// Longest the agent spends killing what a command left, after its end or
/// deadline, even under a fork bomb; past it the agent ends the sandbox.
pub const KILL_MARGIN_MS: u64 = 1000;

/// Bytes of a frame header.
pub const HEADER_BYTES: usize = 6;

/// The sandbox's places, each a tmpfs of its own: where a full file
/// system is looked for. `/assets` is root's, filled only by agh.
pub const TMPFS_PLACES: [&str; 5] = ["/work", "/tmp", "/grader", "/assets", "/dev/shm"];

/// The places a command can write (every one but `/assets`): where a file
/// cut short by the file-size limit is looked for.
pub const COMMAND_PLACES: [&str; 4] = ["/work", "/tmp", "/grader", "/dev/shm"];

/// `PATH` of the agent and of every command.
pub const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Exit statuses of the agent's `read` helper, so agh can say why a read
/// was refused: the path is or passes through a link.
pub const READ_LINK: u8 = 3;
/// Not a regular file.
pub const READ_NOT_REGULAR: u8 = 4;
/// Missing.
pub const READ_MISSING: u8 = 5;
/// Any other failure (permission).
pub const READ_FAILED: u8 = 6;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Channel {
    /// One JSON [`Request`] or [`Reply`].
    Control = 0,
    /// Bytes for the command's stdin (or the tar stream of an extraction).
    Stdin = 1,
    /// End of the command's stdin; empty payload.
    StdinEnd = 2,
    /// The command's stdout.
    Stdout = 3,
    /// The command's stderr.
    Stderr = 4,
}

/// Which command of a conversation a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Side {
    /// The only command of a run, or the student's program in a conversation.
    Main = 0,
    /// The judge of a conversation.
    Judge = 1,
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What it carries.
    pub channel: Channel,
    /// Whose it is.
    pub side: Side,
    /// At most [`MAX_PAYLOAD`] bytes.
    pub payload: Vec<u8>,
}

impl Frame {
    /// A control frame holding `message` as JSON.
    ///
    /// # Panics
    /// Never for the messages of this crate: they serialize to JSON.
    #[must_use]
    pub fn control<T: Serialize>(message: &T) -> Self {
        Self {
            channel: Channel::Control,
            side: Side::Main,
            payload: serde_json::to_vec(message).unwrap_or_default(),
        }
    }

    /// A data frame.
    #[must_use]
    pub fn data(channel: Channel, side: Side, payload: Vec<u8>) -> Self {
        Self {
            channel,
            side,
            payload,
        }
    }

    /// The frame as bytes on the wire.
    ///
    /// # Errors
    /// [`ProtocolError::TooLong`] for a payload above [`MAX_PAYLOAD`].
    pub fn encode(&self) -> Result<Vec<u8>, ProtocolError> {
        if self.payload.len() > MAX_PAYLOAD {
            return Err(ProtocolError::TooLong(self.payload.len()));
        }
        let mut bytes = Vec::with_capacity(HEADER_BYTES + self.payload.len());
        let len = u32::try_from(self.payload.len())
            .map_err(|_| ProtocolError::TooLong(self.payload.len()))?;
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.push(self.channel as u8);
        bytes.push(self.side as u8);
        bytes.extend_from_slice(&self.payload);
        Ok(bytes)
    }

    /// Reads a control payload as `T`.
    ///
    /// # Errors
    /// [`ProtocolError::Message`] when the frame is not control or not a `T`.
    pub fn message<T: for<'de> Deserialize<'de>>(&self) -> Result<T, ProtocolError> {
        if self.channel != Channel::Control {
            return Err(ProtocolError::Message(format!(
                "expected a control frame, got {:?}",
                self.channel
            )));
        }
        serde_json::from_slice(&self.payload).map_err(|e| ProtocolError::Message(e.to_string()))
    }
}

/// A broken stream: whoever sees one ends the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// A payload longer than [`MAX_PAYLOAD`].
    TooLong(usize),
    /// A header naming no channel or side.
    BadHeader([u8; 2]),
    /// A control payload that is not the expected message.
    Message(String),
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtocolError::TooLong(n) => {
                write!(f, "a frame of {n} bytes is longer than {MAX_PAYLOAD}")
            }
            ProtocolError::BadHeader([c, s]) => {
                write!(f, "a frame header names channel {c} and side {s}")
            }
            ProtocolError::Message(why) => write!(f, "a control message is malformed: {why}"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Cuts a byte stream into frames, whatever sizes it arrives in.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: Vec<u8>,
}

impl Decoder {
    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame, if one has arrived.
    ///
    /// # Errors
    /// A [`ProtocolError`] as soon as a header is wrong, before its payload
    /// is awaited, so an oversized frame is never buffered.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ProtocolError> {
        if self.buffer.len() < HEADER_BYTES {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&self.buffer[..4]);
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_PAYLOAD {
            return Err(ProtocolError::TooLong(len));
        }
        let channel = match self.buffer[4] {
            0 => Channel::Control,
            1 => Channel::Stdin,
            2 => Channel::StdinEnd,
            3 => Channel::Stdout,
            4 => Channel::Stderr,
            _ => return Err(ProtocolError::BadHeader([self.buffer[4], self.buffer[5]])),
        };
        let side = match self.buffer[5] {
            0 => Side::Main,
            1 => Side::Judge,
            _ => return Err(ProtocolError::BadHeader([self.buffer[4], self.buffer[5]])),
        };
        if self.buffer.len() < HEADER_BYTES + len {
            return Ok(None);
        }
        let payload = self.buffer[HEADER_BYTES..HEADER_BYTES + len].to_vec();
        self.buffer.drain(..HEADER_BYTES + len);
        Ok(Some(Frame {
            channel,
            side,
            payload,
        }))
    }
}

/// Limits the agent sets on a command between fork and exec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessLimits {
    /// Processes and threads of the command's user (RLIMIT_NPROC).
    pub processes: u64,
    /// Largest file the command may write (RLIMIT_FSIZE), in bytes.
    pub file_size_bytes: u64,
    /// CPU seconds of each process (RLIMIT_CPU).
    pub cpu_seconds: u64,
    /// Open files of each process (RLIMIT_NOFILE).
    pub open_files: u64,
    /// Stack of each process (RLIMIT_STACK), in bytes.
    pub stack_bytes: u64,
}

/// One command for the agent to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Program and arguments; the program is looked up on `PATH` in `env`.
    pub argv: Vec<String>,
    /// The whole environment, as `NAME=value`.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// User and group ids.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Limits set between fork and exec.
    pub limits: ProcessLimits,
    /// Wall-clock deadline in milliseconds.
    pub deadline_ms: u64,
    /// Bytes kept of each of stdout and stderr; one more ends the command.
    pub output_cap: u64,
    /// Whether stdin frames follow (otherwise stdin is empty).
    pub stdin: bool,
    /// Largest file size, in bytes, that counts as a file-size hit when the
    /// command fails (RLIMIT_FSIZE stops a write at exactly this size).
    /// `None` skips the search.
    pub file_size_probe: Option<u64>,
    /// Writable places of the grader's own (absolute paths, each its own
    /// tmpfs), looked at like [`TMPFS_PLACES`] and [`COMMAND_PLACES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub places: Vec<String>,
    /// The uid the agent's student door runs programs as, for this
    /// command's own processes that ask (`agh-as-student`); none keeps the
    /// door shut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student_door: Option<u32>,
}

/// What agh asks of the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Run one command; output comes on [`Side::Main`].
    Run {
        /// The command.
        spec: RunSpec,
    },
    /// Run a judge and a program with each one's stdout as the other's
    /// stdin; only their stderr comes back.
    Converse {
        /// The judge, on [`Side::Judge`].
        judge: RunSpec,
        /// The program, on [`Side::Main`].
        program: RunSpec,
    },
}

/// How one command ended, as the agent saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    /// Exit status, when it ended by itself.
    pub exit_code: Option<i32>,
    /// The signal that ended it (SIGKILL when the agent killed it).
    pub signal: Option<i32>,
    /// Milliseconds from start to end or kill.
    pub wall_ms: u64,
    /// User and system CPU of every process of the command, in milliseconds.
    pub cpu_ms: u64,
    /// The largest resident set of any of its processes, in bytes.
    pub peak_rss_bytes: u64,
    /// The wall-clock deadline passed.
    pub timed_out: bool,
    /// A process used up its CPU time.
    pub cpu_time_exceeded: bool,
    /// Stdout went past its cap.
    pub stdout_truncated: bool,
    /// Stderr went past its cap.
    pub stderr_truncated: bool,
    /// Processes the user had when the command was stopped.
    pub processes_at_end: u64,
    /// Most processes of the user counted while the command ran (counted
    /// only while processes were being orphaned).
    pub peak_processes: u64,
    /// Processes the command left behind that the agent reaped as init.
    pub orphans: u64,
    /// The user had as many processes as its limit allows.
    pub process_limit_reached: bool,
    /// A write stopped at the file-size limit.
    pub file_size_exceeded: bool,
    /// A writable place was full when the command ended.
    pub storage_full: bool,
    /// Some process of the user survived every kill for the margin; the
    /// agent ends the sandbox after this reply.
    pub unkillable: bool,
}

/// What the agent answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum Reply {
    /// First frame of the stream: the agent is up.
    Hello {
        /// [`VERSION`] of the agent.
        version: u32,
    },
    /// A run ended.
    Ran {
        /// How.
        report: RunReport,
    },
    /// A conversation ended.
    Conversed {
        /// The judge.
        judge: RunReport,
        /// The program.
        program: RunReport,
    },
    /// The request could not be carried out (no such program, bad cwd).
    Refused {
        /// Why.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_any_split() {
        let frames = [
            Frame::control(&Reply::Hello { version: VERSION }),
            Frame::data(Channel::Stdout, Side::Judge, b"hello".to_vec()),
            Frame::data(Channel::StdinEnd, Side::Main, Vec::new()),
        ];
        let wire: Vec<u8> = frames.iter().flat_map(|f| f.encode().unwrap()).collect();
        for step in [1, 2, 5, 7, wire.len()] {
            let mut decoder = Decoder::default();
            let mut got = Vec::new();
            for chunk in wire.chunks(step) {
                decoder.push(chunk);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    got.push(frame);
                }
            }
            assert_eq!(got, frames, "split every {step} bytes");
        }
    }

    #[test]
    fn oversized_and_unknown_headers_end_the_stream_before_the_payload() {
        let mut decoder = Decoder::default();
        decoder.push(&(u32::MAX).to_le_bytes());
        decoder.push(&[0, 0]);
        assert_eq!(
            decoder.next_frame(),
            Err(ProtocolError::TooLong(u32::MAX as usize))
        );
        let mut decoder = Decoder::default();
        decoder.push(&[0, 0, 0, 0, 9, 0]);
        assert_eq!(decoder.next_frame(), Err(ProtocolError::BadHeader([9, 0])));
        let too_long = Frame::data(Channel::Stdin, Side::Main, vec![0; MAX_PAYLOAD + 1]);
        assert!(too_long.encode().is_err());
    }

    #[test]
    fn a_control_frame_that_is_not_a_message_is_refused() {
        let frame = Frame::data(
            Channel::Control,
            Side::Main,
            b"{\"reply\":\"nope\"}".to_vec(),
        );
        assert!(frame.message::<Reply>().is_err());
    }
}
