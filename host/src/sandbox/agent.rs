//! agh's end of the agent that runs as init in every sandbox (`agent/`):
//! the embedded binary, placed read-only into each container, and the one
//! attached stream agh talks to it over for the sandbox's whole life.
//!
//! A reader task cuts the container's stdout into frames; a writer task
//! writes whole frames to its stdin, so a request given up half-way never
//! leaves half a frame on the wire. Requests take turns.

use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use agh_protocol::{Channel, Decoder, Frame, Reply, Request, RunReport, Side, VERSION};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::AttachContainerOptions;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{DOCKER_CALL_TIMEOUT, SandboxError, docker_call};

/// The agent, built for a static target by `build.rs`.
static AGENT_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/agh-agent"));

/// Where the agent is mounted in every sandbox, read-only.
pub const AGENT_IN_SANDBOX: &str = "/agh-agent";

/// Bytes of stdin sent per frame.
const STDIN_CHUNK: usize = 64 * 1024;
/// Frames waiting for the writer; a full queue holds the sender back.
const WRITE_QUEUE: usize = 16;
/// Frames read but not yet handled.
const READ_QUEUE: usize = 64;
/// Most bytes of the agent's own stderr kept for the log.
const AGENT_STDERR_BYTES: usize = 4096;

/// The agent binary on the host: written into the private cache, named by
/// its digest, and checked against the embedded bytes each time a sandbox
/// is made (a millisecond), in a folder that it and every folder above
/// belong to this user or root, then bind-mounted read-only. The agent is
/// init of the sandbox and every verdict rests on it: no one else's file
/// may stand in for it, even mid-batch.
///
/// # Errors
/// [`SandboxError::Io`] when the cache cannot hold it or is not private.
pub(crate) fn agent_file() -> Result<PathBuf, SandboxError> {
    place_agent().map_err(|err| SandboxError::Io {
        context: "placing the sandbox agent".into(),
        source: std::io::Error::other(err.to_string()),
    })
}

fn place_agent() -> Result<PathBuf, Box<dyn std::error::Error>> {
    use sha2::Digest;
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    let digest = crate::layout::hex(&sha2::Sha256::digest(AGENT_BINARY));
    let dir =
        crate::private_dir::open_dir(&crate::private_dir::default_cache_dir()?.join("agent"))?;
    let path = dir.join(format!("agh-agent-{}", &digest[..16]));
    if let Ok(mut file) = crate::private_dir::open_file(&path) {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        if bytes == AGENT_BINARY && file.metadata()?.permissions().mode() & 0o777 == 0o555 {
            return Ok(path);
        }
        tracing::warn!(path = %path.display(), "the cached sandbox agent differs from agh's; writing it again");
    }
    let mut staged = tempfile::NamedTempFile::new_in(&dir)?;
    staged.write_all(AGENT_BINARY)?;
    staged.as_file().sync_all()?;
    std::fs::set_permissions(staged.path(), std::fs::Permissions::from_mode(0o555))?;
    staged.persist(&path)?;
    Ok(path)
}

/// Why talking to the agent stopped.
#[derive(Debug)]
pub(crate) enum LinkError {
    /// The stream ended: the container stopped, or Docker dropped it.
    Ended(String),
    /// The agent broke the protocol; the sandbox cannot be trusted.
    Broken(String),
    /// No answer within the bound.
    Silent(Duration),
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkError::Ended(why) => write!(f, "the sandbox's stream ended: {why}"),
            LinkError::Broken(why) => write!(f, "the sandbox agent broke the protocol: {why}"),
            LinkError::Silent(after) => {
                write!(
                    f,
                    "the sandbox agent did not answer within {}s",
                    after.as_secs()
                )
            }
        }
    }
}

/// Where a request's stdin comes from.
pub(crate) enum Stdin {
    None,
    Bytes(Vec<u8>),
    Stream(Pin<Box<dyn AsyncRead + Send>>),
}

/// What a request's commands printed, by side.
#[derive(Debug, Default)]
pub(crate) struct Printed {
    pub stdout: [Vec<u8>; 2],
    pub stderr: [Vec<u8>; 2],
}

/// One request's answer and the output that came before it.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub reply: Reply,
    pub printed: Printed,
}

/// An exchange that broke off, with what the commands printed before it
/// did: the agent streams output as it comes, so a sandbox that dies
/// during a command still leaves that command's words.
#[derive(Debug)]
pub(crate) struct BrokenOff {
    pub error: LinkError,
    pub printed: Printed,
}

impl Exchange {
    /// A run's report and its output, or the reply that is not a run's.
    pub(crate) fn into_run(self) -> Result<(RunReport, Vec<u8>, Vec<u8>), Box<Reply>> {
        let Exchange {
            reply,
            printed:
                Printed {
                    stdout: [stdout, _],
                    stderr: [stderr, _],
                },
        } = self;
        match reply {
            Reply::Ran { report } => Ok((report, stdout, stderr)),
            other => Err(Box::new(other)),
        }
    }
}

enum Incoming {
    Frame(Frame),
    End(String),
}

/// The attached stream to one sandbox's agent.
#[derive(Debug)]
pub(crate) struct Link {
    writer: mpsc::Sender<Vec<u8>>,
    incoming: tokio::sync::Mutex<mpsc::Receiver<Incoming>>,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Link {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Link {
    /// Attaches to a created container's stdio, before it starts, so not a
    /// byte of the agent's is missed.
    pub(crate) async fn attach(docker: &Docker, id: &str) -> Result<Self, SandboxError> {
        let options = AttachContainerOptions {
            stream: true,
            stdin: true,
            stdout: true,
            stderr: true,
            logs: false,
            detach_keys: None,
        };
        let attached = docker_call(
            "attach to container",
            DOCKER_CALL_TIMEOUT,
            docker.attach_container(id, Some(options)),
        )
        .await?;
        let (write_tx, mut write_rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
        let (read_tx, read_rx) = mpsc::channel(READ_QUEUE);
        let mut input = attached.input;
        let writer = tokio::spawn(async move {
            while let Some(bytes) = write_rx.recv().await {
                if input.write_all(&bytes).await.is_err() || input.flush().await.is_err() {
                    break;
                }
            }
        });
        let container = id.to_string();
        let mut output = attached.output;
        let reader = tokio::spawn(async move {
            let mut decoder = Decoder::default();
            let mut agent_stderr = Vec::new();
            let why = loop {
                match output.next().await {
                    None => break "the container's output closed".to_string(),
                    Some(Err(err)) => break format!("docker: {err}"),
                    Some(Ok(LogOutput::StdOut { message })) => {
                        decoder.push(&message);
                        let mut failed = None;
                        loop {
                            match decoder.next_frame() {
                                Ok(Some(frame)) => {
                                    if read_tx.send(Incoming::Frame(frame)).await.is_err() {
                                        return;
                                    }
                                }
                                Ok(None) => break,
                                Err(err) => {
                                    failed = Some(err.to_string());
                                    break;
                                }
                            }
                        }
                        if let Some(why) = failed {
                            break why;
                        }
                    }
                    Some(Ok(LogOutput::StdErr { message })) => {
                        let room = AGENT_STDERR_BYTES.saturating_sub(agent_stderr.len());
                        agent_stderr.extend_from_slice(&message[..message.len().min(room)]);
                    }
                    Some(Ok(_)) => {}
                }
            };
            if !agent_stderr.is_empty() {
                tracing::warn!(container = %container, agent = %String::from_utf8_lossy(&agent_stderr), "sandbox agent said");
            }
            let _ = read_tx.send(Incoming::End(why)).await;
        });
        Ok(Self {
            writer: write_tx,
            incoming: tokio::sync::Mutex::new(read_rx),
            tasks: [writer, reader],
        })
    }

    /// Waits for the agent's greeting and checks its protocol version.
    pub(crate) async fn hello(&self, within: Duration) -> Result<(), LinkError> {
        let mut incoming = self.incoming.lock().await;
        let frame = match tokio::time::timeout(within, incoming.recv()).await {
            Err(_) => return Err(LinkError::Silent(within)),
            Ok(None) => return Err(LinkError::Ended("the reader stopped".into())),
            Ok(Some(Incoming::End(why))) => return Err(LinkError::Ended(why)),
            Ok(Some(Incoming::Frame(frame))) => frame,
        };
        match frame.message::<Reply>() {
            Ok(Reply::Hello { version }) if version == VERSION => Ok(()),
            Ok(Reply::Hello { version }) => Err(LinkError::Broken(format!(
                "the agent speaks protocol {version}, agh speaks {VERSION}"
            ))),
            Ok(other) => Err(LinkError::Broken(format!(
                "expected a greeting, got {other:?}"
            ))),
            Err(err) => Err(LinkError::Broken(err.to_string())),
        }
    }

    /// Sends `request` with its stdin and collects output until the reply.
    /// `caps` bounds each side's stdout and stderr: the agent enforces the
    /// same caps, so more is a broken agent. The whole exchange has `within`.
    pub(crate) async fn exchange(
        &self,
        request: &Request,
        stdin: Stdin,
        caps: [u64; 2],
        within: Duration,
    ) -> Result<Exchange, BrokenOff> {
        let mut printed = Printed::default();
        let broken = |error, printed| BrokenOff { error, printed };
        let mut incoming = self.incoming.lock().await;
        let frame = match Frame::control(request).encode() {
            Ok(frame) => frame,
            Err(e) => return Err(broken(LinkError::Broken(e.to_string()), printed)),
        };
        if self.writer.send(frame).await.is_err() {
            let gone = LinkError::Ended("the writer stopped".into());
            return Err(broken(gone, printed));
        }
        let feeder = tokio::spawn(feed(stdin, self.writer.clone()));
        let collected =
            tokio::time::timeout(within, collect(&mut incoming, caps, &mut printed)).await;
        // A command that ended without reading all its input leaves the
        // rest unsent; the agent drops stray input between requests.
        feeder.abort();
        match collected {
            Ok(Ok(reply)) => Ok(Exchange { reply, printed }),
            Ok(Err(error)) => Err(broken(error, printed)),
            Err(_) => Err(broken(LinkError::Silent(within), printed)),
        }
    }
}

/// Sends stdin as frames, then the end of it.
async fn feed(stdin: Stdin, writer: mpsc::Sender<Vec<u8>>) {
    let send = |payload: Vec<u8>, channel: Channel| {
        Frame::data(channel, Side::Main, payload)
            .encode()
            .unwrap_or_default()
    };
    match stdin {
        Stdin::None => return,
        Stdin::Bytes(bytes) => {
            for chunk in bytes.chunks(STDIN_CHUNK) {
                if writer
                    .send(send(chunk.to_vec(), Channel::Stdin))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        Stdin::Stream(mut reader) => {
            let mut buf = vec![0u8; STDIN_CHUNK];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if writer
                            .send(send(buf[..n].to_vec(), Channel::Stdin))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        }
    }
    let _ = writer.send(send(Vec::new(), Channel::StdinEnd)).await;
}

/// Output frames into `printed` until the reply.
async fn collect(
    incoming: &mut mpsc::Receiver<Incoming>,
    caps: [u64; 2],
    printed: &mut Printed,
) -> Result<Reply, LinkError> {
    loop {
        let frame = match incoming.recv().await {
            None => return Err(LinkError::Ended("the reader stopped".into())),
            Some(Incoming::End(why)) => return Err(LinkError::Ended(why)),
            Some(Incoming::Frame(frame)) => frame,
        };
        let side = frame.side as usize;
        let buffer = match frame.channel {
            Channel::Control => {
                return frame
                    .message::<Reply>()
                    .map_err(|e| LinkError::Broken(e.to_string()));
            }
            Channel::Stdout => &mut printed.stdout[side],
            Channel::Stderr => &mut printed.stderr[side],
            other => {
                return Err(LinkError::Broken(format!(
                    "the agent sent a {other:?} frame"
                )));
            }
        };
        if (buffer.len() + frame.payload.len()) as u64 > caps[side] {
            return Err(LinkError::Broken("output beyond the command's cap".into()));
        }
        buffer.extend_from_slice(&frame.payload);
    }
}
