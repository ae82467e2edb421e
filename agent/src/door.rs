//! The student door: how a command run as the grader user (a Gradescope
//! autograder's `run_autograder`) runs the student's program as the
//! student, so that program cannot touch what the grader user owns (its
//! results, its processes).
//!
//! The agent listens on a Unix socket, [`PATH`], while a command whose spec
//! opens the door runs. The socket is the grader user's, mode 0600, inside
//! the grader's own `/grader` (0700): only the grader user can reach it, by
//! the file system's permissions (gVisor does not report a peer's uid).
//! The `as-student` helper (the agent binary, which images put on PATH as
//! `agh-as-student`) connects, sends the program's argv, cwd and environment
//! with its own stdin, stdout and stderr as descriptors, and waits. The
//! agent starts the program as the student under
//! the command's limits, in a process group of its own, with those
//! descriptors, in the caller's folder (the shared `/tmp` when the student
//! may not enter it: a grader's own place is the grader's alone), and sends its status when it ends; the helper exits with it.
//! A helper that goes away (killed at its caller's timeout) takes the
//! program's group with it. Everything left ends with the command, as
//! always.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::ExitCode;

use serde_json::{Value, json};

use crate::sys;

/// The socket: in the grader user's place, which only it can enter.
pub const PATH: &str = "/grader/.agh-as-student";
/// Largest request: argv, cwd and environment.
const MAX_REQUEST: usize = 256 * 1024;

/// The listening door.
pub struct Door {
    listener: OwnedFd,
}

/// A program started through the door, and the helper waiting for it.
pub struct Knock {
    /// The program's pid (and process group).
    pub pid: i32,
    /// The helper's connection.
    pub conn: OwnedFd,
}

impl Door {
    /// Opens the door as `uid`:`gid` (the grader user's).
    pub fn open(uid: u32, gid: u32) -> io::Result<Self> {
        Ok(Self {
            listener: sys::seqpacket_listen_as(PATH, uid, gid)?,
        })
    }

    /// Whether its socket is still where helpers look (the grader user may
    /// have removed it).
    pub fn in_place() -> bool {
        std::fs::symlink_metadata(PATH)
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
    }

    /// The fd to poll for knocks.
    pub fn fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Takes one waiting connection.
    pub fn accept(&self) -> Option<OwnedFd> {
        sys::accept(&self.listener)
    }
}

/// What a helper asks: argv, cwd, environment, and its three descriptors.
pub struct Asked {
    pub argv: Vec<String>,
    pub cwd: String,
    pub env: Vec<(String, String)>,
    pub stdio: Vec<OwnedFd>,
}

/// Reads a helper's one request.
pub fn receive(conn: &OwnedFd) -> io::Result<Asked> {
    let mut data = vec![0u8; MAX_REQUEST];
    let (n, stdio) = sys::recv_with_fds(conn, &mut data)?;
    if stdio.len() != 3 {
        return Err(io::Error::other("a request without its three descriptors"));
    }
    let value: Value = serde_json::from_slice(&data[..n]).map_err(io::Error::other)?;
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let argv = strings(&value["argv"]);
    if argv.is_empty() {
        return Err(io::Error::other("no program named"));
    }
    Ok(Asked {
        argv,
        cwd: value["cwd"].as_str().unwrap_or("/tmp").to_string(),
        env: strings(&value["env"])
            .into_iter()
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.into(), v.into())))
            .collect(),
        stdio,
    })
}

/// Tells the helper how its program ended: the exit code, or 128 and the
/// signal, as a shell says it.
pub fn answer(conn: &OwnedFd, wait_status: i32) {
    let code = if libc::WIFEXITED(wait_status) {
        libc::WEXITSTATUS(wait_status)
    } else {
        128 + libc::WTERMSIG(wait_status)
    };
    sys::send_bytes(conn, &code.to_le_bytes());
}

/// Why the door turned a helper away, sent in place of a status.
#[derive(Clone, Copy)]
pub enum Refusal {
    /// No running command opens it.
    Shut = -1,
    /// The request was not argv, cwd and env with three descriptors.
    Malformed = -2,
}

/// Turns a helper away, saying why.
pub fn refuse(conn: &OwnedFd, why: Refusal) {
    sys::send_bytes(conn, &(why as i32).to_le_bytes());
}

/// The `as-student` helper: runs `argv` as the student through the agent
/// and exits as the program did.
pub fn knock(argv: &[String]) -> ExitCode {
    match knock_inner(argv) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) => {
            eprintln!(
                "agh-as-student: {err} (it runs a program as the student, from a command agh \
                 runs as the grader user)"
            );
            ExitCode::from(125)
        }
    }
}

fn knock_inner(argv: &[String]) -> io::Result<i32> {
    if argv.is_empty() {
        return Err(io::Error::other("usage: agh-as-student PROGRAM [ARG...]"));
    }
    let conn = sys::seqpacket_connect(PATH)
        .map_err(|e| io::Error::other(format!("the student door is closed ({e})")))?;
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/tmp".into());
    let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    let request = json!({ "argv": argv, "cwd": cwd, "env": env }).to_string();
    if request.len() > MAX_REQUEST {
        return Err(io::Error::other(
            "the arguments and environment are too large",
        ));
    }
    // A refused helper finds the door's answer waiting, and its request
    // unsent (the door closed the connection).
    let sent = sys::send_with_fds(&conn, request.as_bytes(), &[0, 1, 2]);
    let mut status = [0u8; 4];
    if sys::recv_bytes(&conn, &mut status) != 4 {
        sent?;
        return Err(io::Error::other("the program ended with its command"));
    }
    match i32::from_le_bytes(status) {
        code if code >= 0 => Ok(code),
        -1 => Err(io::Error::other(
            "the door is shut: only a command agh runs as the grader user may run a program \
             as the student",
        )),
        _ => Err(io::Error::other("the agent could not read the request")),
    }
}
