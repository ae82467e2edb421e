//! The agent's main loop: one request at a time from agh, each command
//! watched in a single `poll` loop over its pipes, agh's stream, the
//! deadline and SIGCHLD.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use agh_protocol::{
    Channel, Decoder, Frame, KILL_MARGIN_MS, ProcessLimits, Reply, Request, RunReport, RunSpec,
    Side, VERSION,
};

use crate::door::{self, Door, Knock};
use crate::sys;

/// Longest the agent tries to kill what a command left before it gives up
/// and ends the sandbox: the margin past a deadline agh states.
const KILL_MARGIN: Duration = Duration::from_millis(KILL_MARGIN_MS);
/// Pause between kill rounds while processes are still dying.
const KILL_ROUND: Duration = Duration::from_millis(2);
/// Bytes read from a pipe at once (and so the largest output frame).
const CHUNK: usize = 64 * 1024;
/// Stdin bytes held for a command before agh's stream is left unread.
const STDIN_BUFFER: usize = 1024 * 1024;
/// A user this close to its process limit when stopped has met it.
const PROCESS_SLACK: u64 = 2;
/// How long a conversation's program may run on after its judge ended.
const AFTER_JUDGE: Duration = Duration::from_secs(1);
/// How often the processes of a forking command are counted.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// How far below its CPU limit a process killed for it may be accounted:
/// the kernel's tick and gVisor's accounting round.
const CPU_ACCOUNTING_SLACK: Duration = Duration::from_millis(100);
/// A place with less than 1/200 of its room free is full.
const FULL_FRACTION: u64 = 200;

pub fn serve() -> ExitCode {
    match Agent::new().and_then(|mut agent| agent.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("agh-agent: {err}");
            // Whatever is left dies with the sandbox when init exits.
            ExitCode::FAILURE
        }
    }
}

/// agh's side of the stream.
struct Link {
    input: File,
    output: File,
    decoder: Decoder,
    closed: bool,
}

impl Link {
    fn send(&mut self, frame: &Frame) -> io::Result<()> {
        let bytes = frame.encode().map_err(io::Error::other)?;
        self.output.write_all(&bytes)
    }

    fn reply(&mut self, reply: &Reply) -> io::Result<()> {
        self.send(&Frame::control(reply))
    }

    /// Reads what agh has sent; false at end of stream.
    fn fill(&mut self) -> io::Result<bool> {
        let mut buf = [0u8; CHUNK];
        match self.input.read(&mut buf) {
            Ok(0) => {
                self.closed = true;
                Ok(false)
            }
            Ok(n) => {
                self.decoder.push(&buf[..n]);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(e),
        }
    }

    fn next(&mut self) -> io::Result<Option<Frame>> {
        self.decoder.next_frame().map_err(io::Error::other)
    }
}

struct Agent {
    link: Link,
    children: OwnedFd,
    /// The student door, when it could be opened.
    door: Option<Door>,
    /// Programs started through it during the current command.
    knocks: Vec<Knock>,
}

impl Agent {
    fn new() -> io::Result<Self> {
        sys::make_undumpable()?;
        let children = sys::child_signal_fd()?;
        // Fds 0 and 1 are the container's stdio: agh's stream, ours alone.
        let input = File::from(std::io::stdin().as_fd_owned()?);
        let output = File::from(std::io::stdout().as_fd_owned()?);
        Ok(Self {
            link: Link {
                input,
                output,
                decoder: Decoder::default(),
                closed: false,
            },
            children,
            door: None,
            knocks: Vec::new(),
        })
    }

    fn run(&mut self) -> io::Result<()> {
        self.link.reply(&Reply::Hello { version: VERSION })?;
        loop {
            let frame = loop {
                if let Some(frame) = self.link.next()? {
                    break frame;
                }
                if !self.link.fill()? {
                    return Ok(());
                }
            };
            match frame.channel {
                Channel::Control => {}
                // Input for a command that was refused before it started.
                Channel::Stdin | Channel::StdinEnd => continue,
                other => {
                    return Err(io::Error::other(format!(
                        "agh sent a {other:?} frame, which only the agent sends"
                    )));
                }
            }
            let request: Request = frame.message().map_err(io::Error::other)?;
            let reply = match request {
                Request::Run { spec } => {
                    let mut reports = self.watch(vec![(Side::Main, spec)])?;
                    Reply::Ran {
                        report: reports.remove(0),
                    }
                }
                Request::Converse { judge, program } => {
                    let mut reports =
                        self.watch(vec![(Side::Judge, judge), (Side::Main, program)])?;
                    let program = reports.remove(1);
                    Reply::Conversed {
                        judge: reports.remove(0),
                        program,
                    }
                }
            };
            let unkillable = match &reply {
                Reply::Ran { report } => report.unkillable,
                Reply::Conversed { judge, program } => judge.unkillable || program.unkillable,
                _ => false,
            };
            self.link.reply(&reply)?;
            if unkillable {
                return Err(io::Error::other(
                    "processes survived every kill; ending the sandbox",
                ));
            }
        }
    }

    /// Starts the commands (one, or a judge and a program wired together),
    /// watches them until they end, overrun or time out, kills everything
    /// left, and reports on each.
    fn watch(&mut self, specs: Vec<(Side, RunSpec)>) -> io::Result<Vec<RunReport>> {
        let started = Instant::now();
        let deadline = started
            + specs
                .iter()
                .map(|(_, s)| Duration::from_millis(s.deadline_ms))
                .min()
                .unwrap_or_default();
        let conversation = specs.len() == 2;
        let mut procs = Vec::new();
        // A conversation's two programs talk through two pipes of their own.
        let mut crossed = if conversation {
            let (a_read, a_write) = sys::pipe()?;
            let (b_read, b_write) = sys::pipe()?;
            vec![Some((b_read, a_write)), Some((a_read, b_write))]
        } else {
            vec![None]
        };
        // The door opens, as the user of the command that opens it, the
        // first time one does (and again if that user removed it).
        if let Some(spec) = specs
            .iter()
            .map(|(_, s)| s)
            .find(|s| s.student_door.is_some())
            && (self.door.is_none() || !Door::in_place())
        {
            self.door = Door::open(spec.uid, spec.gid).ok();
        }
        for ((side, spec), wiring) in specs.into_iter().zip(crossed.iter_mut()) {
            procs.push(Proc::start(side, spec, wiring.take(), started)?);
        }
        drop(crossed);
        // Stdin frames that came in the same read as the request.
        self.dispatch_input(&mut procs)?;
        let mut timed_out = false;
        let mut orphans = Usage::default();
        let mut sampled = Instant::now();
        // When a conversation's judge has ended, the program has a moment
        // to end too, then is stopped: nothing it does can change a verdict
        // any more, and a program that stopped itself (or was stopped) must
        // not hold the conversation to its deadline.
        let mut after_judge: Option<Instant> = None;
        loop {
            let forking = self.reap(&mut procs, &mut orphans);
            if procs.iter().all(Proc::exited) || procs.iter().any(|p| p.overran) {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                timed_out = true;
                break;
            }
            if conversation
                && after_judge.is_none()
                && procs.iter().any(|p| p.side == Side::Judge && p.exited())
            {
                after_judge = Some(now + AFTER_JUDGE);
            }
            if after_judge.is_some_and(|end| now >= end) {
                break;
            }
            let deadline = after_judge.map_or(deadline, |end| end.min(deadline));
            // Orphans dying means processes come and go: count them now
            // and then, since the count when the command ends can be low.
            if forking && sampled.elapsed() >= SAMPLE_EVERY {
                sampled = Instant::now();
                for proc in &mut procs {
                    proc.peak_processes = proc.peak_processes.max(count_processes(proc.spec.uid));
                }
            }
            self.wait_for_events(&mut procs, (deadline - now).min(SAMPLE_EVERY))?;
        }
        let ended = Instant::now();
        // What is still running is stopped where it stands, counted, killed.
        let frozen = sys::signal_all(libc::SIGSTOP);
        let counts: Vec<u64> = procs
            .iter()
            .map(|p| {
                if frozen {
                    count_processes(p.spec.uid)
                } else {
                    0
                }
            })
            .collect();
        let unkillable = !self.kill_everything(&mut procs, &mut orphans);
        self.knocks.clear();
        for proc in &mut procs {
            proc.drain(&mut self.link)?;
        }
        let mut reports = Vec::new();
        for (proc, processes) in procs.into_iter().zip(counts) {
            let main = proc.side == Side::Main;
            reports.push(proc.report(ProcEnd {
                ended,
                timed_out,
                processes,
                // Orphans are the program's: the judge is agh's own code.
                orphans: if main { orphans } else { Usage::default() },
                orphans_reaped: if main { orphans.count } else { 0 },
                unkillable,
            }));
        }
        Ok(reports)
    }

    /// Sleeps in `poll` until a pipe, agh's stream or a child has news.
    fn wait_for_events(&mut self, procs: &mut [Proc], timeout: Duration) -> io::Result<()> {
        let want_input = !self.link.closed
            && procs
                .iter()
                .any(|p| p.stdin.is_some() && p.stdin_buffer.len() < STDIN_BUFFER);
        let door_open = procs.iter().any(|p| p.spec.student_door.is_some());
        let mut fds = vec![pollfd(self.children.as_raw_fd(), libc::POLLIN)];
        fds.push(pollfd(if want_input { 0 } else { -1 }, libc::POLLIN));
        fds.push(pollfd(
            match &self.door {
                Some(door) if door_open => door.fd(),
                _ => -1,
            },
            libc::POLLIN,
        ));
        for knock in &self.knocks {
            fds.push(pollfd(knock.conn.as_raw_fd(), libc::POLLIN));
        }
        let knocks = self.knocks.len();
        for proc in procs.iter() {
            fds.push(pollfd(
                proc.stdout.as_ref().map_or(-1, AsRawFd::as_raw_fd),
                libc::POLLIN,
            ));
            fds.push(pollfd(
                proc.stderr.as_ref().map_or(-1, AsRawFd::as_raw_fd),
                libc::POLLIN,
            ));
            let feeding = proc.stdin.is_some() && !proc.stdin_buffer.is_empty();
            fds.push(pollfd(
                if feeding {
                    proc.stdin.as_ref().map_or(-1, AsRawFd::as_raw_fd)
                } else {
                    -1
                },
                libc::POLLOUT,
            ));
        }
        sys::poll(&mut fds, Some(timeout))?;
        if fds[0].revents != 0 {
            sys::drain_signal_fd(&self.children);
        }
        if fds[1].revents != 0 {
            self.take_input(procs)?;
        }
        // A helper gone (killed at its caller's timeout) takes its
        // program's group with it.
        for (i, knock) in self.knocks.iter().enumerate() {
            if fds[3 + i].revents != 0 {
                sys::kill_group(knock.pid);
            }
        }
        if fds[2].revents != 0 {
            self.admit(procs);
        }
        for (i, proc) in procs.iter_mut().enumerate() {
            let base = 3 + knocks + i * 3;
            if fds[base].revents != 0 {
                proc.read_stream(Channel::Stdout, &mut self.link)?;
            }
            if fds[base + 1].revents != 0 {
                proc.read_stream(Channel::Stderr, &mut self.link)?;
            }
            if fds[base + 2].revents != 0 {
                proc.feed();
            }
        }
        Ok(())
    }

    /// Starts the programs that grader-user processes of a running command
    /// ask for through the student door, as the student, under that
    /// command's limits. A knock from anyone else is turned away.
    fn admit(&mut self, procs: &mut [Proc]) {
        let Some(door) = self.door.take() else { return };
        while let Some(conn) = door.accept() {
            let Some((student, limits)) = procs
                .iter()
                .filter(|p| !p.exited())
                .find_map(|p| Some((p.spec.student_door?, p.spec.limits.clone())))
            else {
                door::refuse(&conn, door::Refusal::Shut);
                continue;
            };
            let Ok(asked) = door::receive(&conn) else {
                door::refuse(&conn, door::Refusal::Malformed);
                continue;
            };
            let mut stdio = asked.stdio.into_iter();
            let (Some(stdin), Some(stdout), Some(stderr)) =
                (stdio.next(), stdio.next(), stdio.next())
            else {
                continue;
            };
            // The caller's folder, where the student may enter it: a
            // grader's own place is the grader's alone, and the program
            // then starts in the shared /tmp.
            if asked.cwd.contains('\0') {
                door::refuse(&conn, door::Refusal::Malformed);
                continue;
            }
            let env: Vec<String> = asked.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let started = sys::Exec::new(
                &asked.argv,
                &env,
                &asked.cwd,
                (student, student),
                [stdin.as_raw_fd(), stdout.as_raw_fd(), stderr.as_raw_fd()],
                limits_of(&limits),
            )
            .map(|exec| exec.or_start_in(c"/tmp"))
            .and_then(|exec| exec.spawn());
            match started {
                Ok(pid) => self.knocks.push(Knock { pid, conn }),
                // As a shell says it: 127 for a missing program.
                Err(_) => door::answer(&conn, 127 << 8),
            }
        }
        self.door = Some(door);
    }

    /// Moves agh's stdin frames into the command's buffer.
    fn take_input(&mut self, procs: &mut [Proc]) -> io::Result<()> {
        if !self.link.fill()? {
            // agh is gone: nobody will read a verdict. End it all.
            return Err(io::Error::other("agh closed the stream"));
        }
        self.dispatch_input(procs)
    }

    /// Hands decoded stdin frames to their commands.
    fn dispatch_input(&mut self, procs: &mut [Proc]) -> io::Result<()> {
        while let Some(frame) = self.link.next()? {
            let Some(proc) = procs.iter_mut().find(|p| p.side == frame.side) else {
                continue;
            };
            match frame.channel {
                Channel::Stdin => proc.stdin_buffer.extend_from_slice(&frame.payload),
                Channel::StdinEnd => proc.stdin_end = true,
                other => {
                    return Err(io::Error::other(format!(
                        "agh sent a {other:?} frame while a command ran"
                    )));
                }
            }
            proc.feed();
        }
        Ok(())
    }

    /// Reaps every ended child, crediting its use to the command it was.
    /// True when an orphan was among them.
    fn reap(&mut self, procs: &mut [Proc], orphans: &mut Usage) -> bool {
        let mut orphaned = false;
        while let Some(reaped) = sys::reap() {
            if let Some(i) = self.knocks.iter().position(|k| k.pid == reaped.pid) {
                let knock = self.knocks.swap_remove(i);
                door::answer(&knock.conn, reaped.status);
                // The student's program ran for the command that asked.
                if let Some(main) = procs.iter_mut().find(|p| p.side == Side::Main) {
                    main.usage.add(&reaped);
                }
                continue;
            }
            match procs.iter_mut().find(|p| p.pid == Some(reaped.pid)) {
                Some(proc) => {
                    proc.status = Some(reaped.status);
                    proc.usage.add(&reaped);
                    proc.exited_at.get_or_insert_with(Instant::now);
                }
                None => {
                    orphans.add(&reaped);
                    orphaned = true;
                }
            }
        }
        orphaned
    }

    /// Kills every process in the sandbox but the agent, round after round
    /// (a fork bomb forks while it dies), until none is left or the margin
    /// has passed. True when none is left.
    fn kill_everything(&mut self, procs: &mut [Proc], orphans: &mut Usage) -> bool {
        let start = Instant::now();
        loop {
            let any = sys::signal_all(libc::SIGKILL);
            self.reap(procs, orphans);
            if !any {
                return true;
            }
            if start.elapsed() >= KILL_MARGIN {
                return false;
            }
            std::thread::sleep(KILL_ROUND);
        }
    }
}

fn pollfd(fd: i32, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// CPU and memory of ended processes.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    cpu: Duration,
    max_rss_bytes: u64,
    count: u64,
}

impl Usage {
    fn add(&mut self, reaped: &sys::Reaped) {
        self.cpu += reaped.cpu;
        self.max_rss_bytes = self.max_rss_bytes.max(reaped.max_rss_bytes);
        self.count += 1;
    }
}

/// How the whole run ended, for each command's report.
struct ProcEnd {
    ended: Instant,
    timed_out: bool,
    processes: u64,
    orphans: Usage,
    orphans_reaped: u64,
    unkillable: bool,
}

/// One running command.
struct Proc {
    side: Side,
    spec: RunSpec,
    pid: Option<i32>,
    started: Instant,
    /// The same moment by the clock files are stamped with.
    started_wall: std::time::SystemTime,
    exited_at: Option<Instant>,
    stdout: Option<File>,
    stderr: Option<File>,
    stdin: Option<File>,
    stdin_buffer: Vec<u8>,
    stdin_end: bool,
    status: Option<i32>,
    usage: Usage,
    stdout_bytes: u64,
    stderr_bytes: u64,
    stdout_truncated: bool,
    stderr_truncated: bool,
    overran: bool,
    /// Most processes of its user counted while it ran.
    peak_processes: u64,
    /// Why it could not start (exit 127 or 126, like a shell).
    spawn_error: Option<(i32, String)>,
}

impl Proc {
    /// Starts `spec`; its stdin and stdout are `wiring` in a conversation.
    fn start(
        side: Side,
        spec: RunSpec,
        wiring: Option<(OwnedFd, OwnedFd)>,
        started: Instant,
    ) -> io::Result<Self> {
        // Its ends of the pipes (or /dev/null), given to it by the spawn
        // and closed here after it; ours are kept, non-blocking.
        let (mut stdin, mut stdout) = (None, None);
        let (theirs_in, theirs_out): (OwnedFd, OwnedFd) = match wiring {
            Some(pair) => pair,
            None => {
                let theirs_in = if spec.stdin {
                    let (read, write) = sys::pipe()?;
                    stdin = Some(File::from(write));
                    read
                } else {
                    OwnedFd::from(File::open("/dev/null")?)
                };
                let (read, write) = sys::pipe()?;
                stdout = Some(File::from(read));
                (theirs_in, write)
            }
        };
        let (read, theirs_err) = sys::pipe()?;
        let stderr = Some(File::from(read));
        for file in [&stdout, &stderr, &stdin].into_iter().flatten() {
            sys::set_nonblocking(file.as_raw_fd())?;
        }
        let spawned = sys::Exec::new(
            &spec.argv,
            &spec.env,
            &spec.cwd,
            (spec.uid, spec.gid),
            [
                theirs_in.as_raw_fd(),
                theirs_out.as_raw_fd(),
                theirs_err.as_raw_fd(),
            ],
            limits_of(&spec.limits),
        )
        .and_then(|exec| exec.spawn());
        drop((theirs_in, theirs_out, theirs_err));
        let mut proc = Proc {
            side,
            spec,
            pid: None,
            started,
            started_wall: std::time::SystemTime::now(),
            exited_at: None,
            stdout: None,
            stderr: None,
            stdin: None,
            stdin_buffer: Vec::new(),
            stdin_end: false,
            status: None,
            usage: Usage::default(),
            stdout_bytes: 0,
            stderr_bytes: 0,
            stdout_truncated: false,
            stderr_truncated: false,
            overran: false,
            peak_processes: 0,
            spawn_error: None,
        };
        match spawned {
            Ok(pid) => {
                proc.pid = Some(pid);
                proc.stdout = stdout;
                proc.stderr = stderr;
                proc.stdin = stdin;
            }
            Err(err) => {
                let code = if err.kind() == io::ErrorKind::PermissionDenied {
                    126
                } else {
                    127
                };
                proc.spawn_error = Some((code, format!("agh: {}: {err}\n", proc.spec.argv[0])));
                proc.exited_at = Some(Instant::now());
            }
        }
        Ok(proc)
    }

    fn exited(&self) -> bool {
        self.exited_at.is_some()
    }

    /// Reads what is waiting on one of its streams and forwards it within
    /// the cap; past the cap the command has overrun.
    fn read_stream(&mut self, channel: Channel, link: &mut Link) -> io::Result<()> {
        let (file, count, truncated) = match channel {
            Channel::Stdout => (
                &mut self.stdout,
                &mut self.stdout_bytes,
                &mut self.stdout_truncated,
            ),
            _ => (
                &mut self.stderr,
                &mut self.stderr_bytes,
                &mut self.stderr_truncated,
            ),
        };
        let Some(reader) = file.as_mut() else {
            return Ok(());
        };
        let mut buf = vec![0u8; CHUNK];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => {
                    *file = None;
                    return Ok(());
                }
                Ok(n) => {
                    let room = self.spec.output_cap.saturating_sub(*count);
                    let keep = usize::try_from(room).unwrap_or(usize::MAX).min(n);
                    *count += n as u64;
                    if keep > 0 {
                        link.send(&Frame::data(channel, self.side, buf[..keep].to_vec()))?;
                    }
                    if keep < n {
                        *truncated = true;
                        self.overran = true;
                        *file = None;
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(_) => {
                    *file = None;
                    return Ok(());
                }
            }
        }
    }

    /// Writes buffered stdin as far as the pipe takes it; closes it at the end.
    fn feed(&mut self) {
        let Some(pipe) = self.stdin.as_mut() else {
            self.stdin_buffer.clear();
            return;
        };
        while !self.stdin_buffer.is_empty() {
            match pipe.write(&self.stdin_buffer) {
                Ok(n) => {
                    self.stdin_buffer.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // The command stopped reading: what it would get is dropped.
                Err(_) => {
                    self.stdin = None;
                    self.stdin_buffer.clear();
                    return;
                }
            }
        }
        if self.stdin_end {
            self.stdin = None;
        }
    }

    /// After the kill, forwards what is left in its pipes.
    fn drain(&mut self, link: &mut Link) -> io::Result<()> {
        if !self.overran {
            self.read_stream(Channel::Stdout, link)?;
            self.read_stream(Channel::Stderr, link)?;
        }
        // The agent's own words on why the program could not start, held to
        // the same cap as anything the program could print: agh reads
        // bytes past a cap as a broken agent. A name long enough to be cut
        // is the student's choice; exit 127 or 126 says what happened.
        if let Some((_, message)) = &self.spawn_error {
            let room = self.spec.output_cap.saturating_sub(self.stderr_bytes);
            let keep = usize::try_from(room)
                .unwrap_or(usize::MAX)
                .min(message.len());
            if keep > 0 {
                link.send(&Frame::data(
                    Channel::Stderr,
                    self.side,
                    message.as_bytes()[..keep].to_vec(),
                ))?;
            }
        }
        Ok(())
    }

    fn report(self, end: ProcEnd) -> RunReport {
        let mut report = RunReport {
            wall_ms: millis(
                self.exited_at
                    .unwrap_or(end.ended)
                    .duration_since(self.started),
            ),
            stdout_truncated: self.stdout_truncated,
            stderr_truncated: self.stderr_truncated,
            processes_at_end: end.processes,
            unkillable: end.unkillable,
            ..RunReport::default()
        };
        if let Some((code, _)) = self.spawn_error {
            report.exit_code = Some(code);
            return report;
        }
        let usage = Usage {
            cpu: self.usage.cpu + end.orphans.cpu,
            max_rss_bytes: self.usage.max_rss_bytes.max(end.orphans.max_rss_bytes),
            count: 0,
        };
        report.cpu_ms = millis(usage.cpu);
        report.peak_rss_bytes = usage.max_rss_bytes;
        match self.status {
            Some(status) if libc::WIFEXITED(status) => {
                report.exit_code = Some(libc::WEXITSTATUS(status));
            }
            Some(status) if libc::WIFSIGNALED(status) => {
                report.signal = Some(libc::WTERMSIG(status));
            }
            _ => report.signal = Some(libc::SIGKILL),
        }
        // Reaped before the end: it ended by itself, whatever the other side did.
        let killed_at_deadline = end.timed_out && self.exited_at.is_none_or(|t| t >= end.ended);
        report.timed_out = killed_at_deadline;
        if killed_at_deadline {
            report.signal = Some(libc::SIGKILL);
            report.exit_code = None;
        }
        // RLIMIT_CPU is per process: SIGXCPU at the limit, or the kernel's
        // SIGKILL a second later for a process that ignored it. Either
        // counts only with the CPU time spent: a SIGXCPU a program sends
        // itself is a signal, not the limit.
        let killed_by_kernel =
            report.signal == Some(libc::SIGKILL) && !killed_at_deadline && !self.overran;
        let cpu_at_limit = self.usage.cpu + CPU_ACCOUNTING_SLACK
            >= Duration::from_secs(self.spec.limits.cpu_seconds);
        report.cpu_time_exceeded =
            cpu_at_limit && (report.signal == Some(libc::SIGXCPU) || killed_by_kernel);
        report.processes_at_end = end.processes;
        report.peak_processes = self.peak_processes;
        report.orphans = end.orphans_reaped;
        report.process_limit_reached = process_limit_met(
            self.spec.limits.processes,
            end.processes,
            self.peak_processes,
            end.orphans_reaped,
        );
        let failed = report.exit_code != Some(0);
        if failed {
            report.file_size_exceeded = report.signal == Some(libc::SIGXFSZ)
                || self
                    .spec
                    .file_size_probe
                    .is_some_and(|size| file_at_limit(&self.spec, size, self.started_wall));
            report.storage_full = storage_full(&self.spec.places);
        }
        report
    }
}

/// The command's own limits, set between its clone and exec: resource,
/// soft and hard.
fn limits_of(limits: &ProcessLimits) -> Vec<(sys::Resource, u64, u64)> {
    vec![
        (libc::RLIMIT_NPROC, limits.processes, limits.processes),
        (
            libc::RLIMIT_FSIZE,
            limits.file_size_bytes,
            limits.file_size_bytes,
        ),
        // SIGXCPU at the limit, SIGKILL a second later for a program that ignores it.
        (libc::RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1),
        (libc::RLIMIT_NOFILE, limits.open_files, limits.open_files),
        (libc::RLIMIT_STACK, limits.stack_bytes, limits.stack_bytes),
        (libc::RLIMIT_CORE, 0, 0),
    ]
}

/// Whether a command met its process limit. RLIMIT_NPROC fails a fork
/// silently, and a count taken now and then misses the moment a storm of
/// short-lived processes meets it, so this is read from what the agent
/// sees: the user was within [`PROCESS_SLACK`] of the limit when counted,
/// or the command left at least a limit's worth of orphans to the agent
/// (the mark of a fork bomb; an ordinary program orphans no such number).
fn process_limit_met(limit: u64, at_end: u64, peak: u64, orphans: u64) -> bool {
    at_end.max(peak) + PROCESS_SLACK >= limit || orphans >= limit
}

/// Processes of `uid` in the sandbox (read from `/proc` while all are stopped).
fn count_processes(uid: u32) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let wanted = uid.to_string();
    let mut count = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let real_uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|rest| rest.split_whitespace().next());
        if real_uid == Some(wanted.as_str()) {
            count += 1;
        }
    }
    count
}

/// Whether a file in a writable place reached `size` bytes since the
/// command started, looked for by the agent binary run as its user.
fn file_at_limit(spec: &RunSpec, size: u64, since: std::time::SystemTime) -> bool {
    let since = since
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut probe = std::process::Command::new("/proc/self/exe");
    probe
        .args(["probe", &size.to_string(), &since.to_string()])
        .args(&spec.places)
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::uid(&mut probe, spec.uid);
    std::os::unix::process::CommandExt::gid(&mut probe, spec.gid);
    let Ok(mut child) = probe.spawn() else {
        return false;
    };
    // The probe keeps its own time; this bounds a probe stuck in one call.
    let deadline = Instant::now() + 2 * crate::helpers::PROBE_TIME;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(KILL_ROUND),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// Whether some writable place, the grader's own `places` among them, has
/// (almost) no room left.
fn storage_full(places: &[String]) -> bool {
    agh_protocol::TMPFS_PLACES
        .iter()
        .copied()
        .chain(places.iter().map(String::as_str))
        .any(|place| {
            sys::space(place).is_ok_and(|(free, total)| total > 0 && free * FULL_FRACTION < total)
        })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

trait OwnedStdio {
    fn as_fd_owned(&self) -> io::Result<OwnedFd>;
}

impl<T: std::os::fd::AsFd> OwnedStdio for T {
    /// A descriptor of our own for fd 0 or 1, closed on exec.
    fn as_fd_owned(&self) -> io::Result<OwnedFd> {
        self.as_fd().try_clone_to_owned()
    }
}
