//! The few system calls the agent needs that the standard library does not
//! wrap. Every `unsafe` block of the agent is here, each one a single call
//! whose arguments are owned values or plain integers (or, for passing
//! descriptors, the control-message walk around one call), but for the
//! start of a program ([`Exec`]): its child, between a vfork-style clone
//! and the exec, is a run of system calls on what was made before it.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Turns a -1 return into the OS error.
pub fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Makes the agent non-dumpable: no ptrace attach, no `/proc/1/fd`, no
/// `/proc/1/mem` for anyone but a process with CAP_SYS_PTRACE (which no
/// process in the sandbox has).
pub fn make_undumpable() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }).map(drop)
}

/// Blocks SIGCHLD and returns a signal descriptor that becomes readable
/// when a child changes state. Children get an empty mask from `spawn`.
pub fn child_signal_fd() -> io::Result<OwnedFd> {
    // SAFETY: sigset_t is plain data; every pointer is to a local.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        check(libc::sigemptyset(&raw mut set))?;
        check(libc::sigaddset(&raw mut set, libc::SIGCHLD))?;
        check(libc::sigprocmask(
            libc::SIG_BLOCK,
            &raw const set,
            std::ptr::null_mut(),
        ))?;
        let fd = check(libc::signalfd(
            -1,
            &raw const set,
            libc::SFD_NONBLOCK | libc::SFD_CLOEXEC,
        ))?;
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Empties a signal descriptor (the state changes are read with [`reap`]).
pub fn drain_signal_fd(fd: &OwnedFd) {
    let mut buf = [0u8; 128 * 8];
    // SAFETY: reads into a local buffer of the stated length.
    while unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

/// A child that ended: its pid, raw wait status and resource use.
pub struct Reaped {
    pub pid: i32,
    pub status: i32,
    pub cpu: Duration,
    pub max_rss_bytes: u64,
}

/// Reaps one ended child, any child, without waiting.
pub fn reap() -> Option<Reaped> {
    let mut status = 0;
    // SAFETY: rusage is plain data, written by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pointers to locals.
    let pid = unsafe { libc::wait4(-1, &raw mut status, libc::WNOHANG, &raw mut usage) };
    if pid <= 0 {
        return None;
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    Some(Reaped {
        pid,
        status,
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        max_rss_bytes: u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
    })
}

/// Sends `signal` to every process the agent may signal but itself: as
/// the sandbox's init that is every other process in it. False when there
/// was none.
pub fn signal_all(signal: libc::c_int) -> bool {
    // SAFETY: kill with integer arguments.
    unsafe { libc::kill(-1, signal) == 0 }
}

/// What `poll` reported for one descriptor.
pub fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<()> {
    let ms = timeout.map_or(-1, |t| {
        libc::c_int::try_from(t.as_millis().saturating_add(1)).unwrap_or(libc::c_int::MAX)
    });
    let nfds = libc::nfds_t::try_from(fds.len()).unwrap_or(0);
    // SAFETY: the slice is valid for its length.
    match check(unsafe { libc::poll(fds.as_mut_ptr(), nfds, ms) }) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        other => other.map(drop),
    }
}

/// Puts a descriptor in non-blocking mode.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl with integer arguments.
    unsafe {
        let flags = check(libc::fcntl(fd, libc::F_GETFL))?;
        check(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK)).map(drop)
    }
}

/// A pipe whose both ends close on exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: writes two descriptors into the local array, which then own them.
    unsafe {
        check(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC))?;
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

/// A resource name as `setrlimit` takes it.
#[cfg(target_env = "gnu")]
pub type Resource = libc::__rlimit_resource_t;
/// A resource name as `setrlimit` takes it.
#[cfg(not(target_env = "gnu"))]
pub type Resource = libc::c_int;

/// Opens `name` below the directory `dir` (or the root) without following
/// a link in its last part; the caller walks one part at a time.
pub fn open_below(dir: Option<&OwnedFd>, name: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let dirfd = dir.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
    // SAFETY: a valid C string and descriptor; the result is owned below.
    let fd = check(unsafe {
        libc::openat(
            dirfd,
            name.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes the folder `name` below `dir` (mode 0777 less the umask, as
/// `mkdir -p` does); an existing entry of that name is left as it is (the
/// caller opens it and checks what it is).
pub fn mkdir_at(dir: &OwnedFd, name: &str) -> io::Result<()> {
    let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid descriptor and C string.
    match check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o777) }) {
        Err(err) if err.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        other => other.map(drop),
    }
}

/// Removes the entry `name` (not a folder) below `dir`, without following it.
pub fn unlink_at(dir: &OwnedFd, name: &str) -> io::Result<()> {
    let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid descriptor and C string.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
}

/// Creates the regular file `name` below `dir`, which must not exist yet.
pub fn create_at(dir: &OwnedFd, name: &str) -> io::Result<OwnedFd> {
    let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid descriptor and C string; the result is owned below.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600,
        )
    })?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets the mode of what `fd` holds.
pub fn set_mode(fd: &OwnedFd, mode: u32) -> io::Result<()> {
    // SAFETY: a valid descriptor.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }).map(drop)
}

/// Device and inode of `name` below `dir`, and whether it is a symbolic
/// link, without following it.
pub fn identity_at(dir: &OwnedFd, name: &str) -> io::Result<(u64, u64, bool)> {
    let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: stat is plain data written by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor, C string and pointer to a local.
    check(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &raw mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    let is_link = st.st_mode & libc::S_IFMT == libc::S_IFLNK;
    Ok((st.st_dev, st.st_ino, is_link))
}

/// Free and total bytes of the file system holding `path`.
pub fn space(path: &str) -> io::Result<(u64, u64)> {
    let path = CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: statvfs is plain data written by the kernel.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a pointer to a local.
    check(unsafe { libc::statvfs(path.as_ptr(), &raw mut st) })?;
    let unit = st.f_frsize;
    Ok((st.f_bavail * unit, st.f_blocks * unit))
}

/// `clone3` as a plain fork (no shared memory, SIGCHLD to the parent) with
/// extra `flags`: the child's pid, 0 in the child, or the error.
pub fn clone3_fork(flags: u64) -> io::Result<i32> {
    // struct clone_args as of Linux 5.3: flags, pidfd, child_tid,
    // parent_tid, exit_signal, stack, stack_size, tls.
    let args: [u64; 8] = [flags, 0, 0, 0, libc::SIGCHLD as u64, 0, 0, 0];
    // SAFETY: the structure is a local array of the size passed; with no
    // CLONE_VM the child gets a copy of this process and only exits.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args.as_ptr(),
            std::mem::size_of_val(&args),
        )
    };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(i32::try_from(ret).unwrap_or(-1))
    }
}

/// Ends this process at once, running nothing (for a child of
/// [`clone3_fork`], which shares the parent's buffers).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an integer and never returns.
    unsafe { libc::_exit(code) }
}

/// Waits for child `pid` to end.
pub fn wait_child(pid: i32) {
    let mut status = 0;
    // SAFETY: the status pointer is to a local.
    unsafe { libc::waitpid(pid, &raw mut status, 0) };
}

/// `unshare(CLONE_NEWUSER)`: whether this process may make a user namespace.
pub fn unshare_user_namespace() -> io::Result<()> {
    // SAFETY: unshare takes an integer.
    check(unsafe { libc::unshare(libc::CLONE_NEWUSER) }).map(drop)
}

fn unix_address(name: &[u8]) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: sockaddr_un is plain data.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (slot, byte) in addr.sun_path.iter_mut().zip(name) {
        *slot = *byte as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + name.len().min(addr.sun_path.len());
    (addr, libc::socklen_t::try_from(len).unwrap_or(0))
}

fn seqpacket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the fd is owned below.
    let fd = check(unsafe {
        libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0)
    })?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A non-blocking listening Unix seqpacket socket at `path`, made as
/// `uid`:`gid` (the effective ids alone, for the bind; the real and saved
/// ones stay root's, so the agent's capabilities come back with its
/// effective uid) with mode 0600, so the folder's and the file's
/// permissions decide who may connect. What was at `path` is replaced.
pub fn seqpacket_listen_as(path: &str, uid: u32, gid: u32) -> io::Result<OwnedFd> {
    let socket = seqpacket()?;
    let (addr, len) = unix_address(path.as_bytes());
    let c_path = CString::new(path).map_err(io::Error::other)?;
    // SAFETY: setresgid and setresuid take integers; only the effective
    // ids change (-1 keeps the others), and they are set back below.
    // gVisor ignores setfsuid, so the effective ids it is.
    let keep = libc::uid_t::MAX;
    let became = unsafe {
        check(libc::setresgid(keep, gid, keep))
            .and_then(|_| check(libc::setresuid(keep, uid, keep)))
    };
    // SAFETY: a NUL-terminated path; addr is a valid sockaddr_un of len.
    let bound = became.and_then(|_| unsafe {
        libc::unlink(c_path.as_ptr());
        check(libc::bind(
            socket.as_raw_fd(),
            (&raw const addr).cast(),
            len,
        ))
        .and_then(|_| check(libc::chmod(c_path.as_ptr(), 0o600)))
    });
    // SAFETY: as above; the real and saved uid are root's, so this is
    // allowed, and the capabilities return with it.
    let restored = unsafe {
        check(libc::setresuid(keep, 0, keep)).and_then(|_| check(libc::setresgid(keep, 0, keep)))
    };
    if restored.is_err() {
        // An agent that cannot be root again cannot go on safely.
        std::process::abort();
    }
    bound?;
    // SAFETY: plain syscall on our fd.
    check(unsafe { libc::listen(socket.as_raw_fd(), 16) })?;
    set_nonblocking(socket.as_raw_fd())?;
    Ok(socket)
}

/// A seqpacket connection to the socket at `path`.
pub fn seqpacket_connect(path: &str) -> io::Result<OwnedFd> {
    let socket = seqpacket()?;
    let (addr, len) = unix_address(path.as_bytes());
    // SAFETY: addr is a valid sockaddr_un of length len.
    check(unsafe { libc::connect(socket.as_raw_fd(), (&raw const addr).cast(), len) })?;
    Ok(socket)
}

/// One waiting connection of `listener`.
pub fn accept(listener: &OwnedFd) -> Option<OwnedFd> {
    // SAFETY: no address wanted.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    };
    // SAFETY: a fresh fd we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Room for the control message of [`MAX_PASSED_FDS`] descriptors.
const CONTROL_WORDS: usize = 8;
/// Most descriptors one message carries.
pub const MAX_PASSED_FDS: usize = 3;

/// Receives one message into `buffer` with the descriptors it carries.
/// Returns its length; a truncated message is an error.
pub fn recv_with_fds(conn: &OwnedFd, buffer: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut control = [0u64; CONTROL_WORDS];
    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    // SAFETY: msghdr is plain data; its pointers are set to locals below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points at live buffers of the sizes given.
    let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &raw mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: the kernel filled msg's control buffer; the macros walk it
    // within msg_controllen, and each descriptor is ours to own.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
                for i in 0..bytes / std::mem::size_of::<libc::c_int>() {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        return Err(io::Error::other("a message too large"));
    }
    Ok((n.unsigned_abs(), fds))
}

/// Sends `bytes` as one message carrying `fds` (at most [`MAX_PASSED_FDS`]).
pub fn send_with_fds(conn: &OwnedFd, bytes: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let fds = &fds[..fds.len().min(MAX_PASSED_FDS)];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    let mut control = [0u64; CONTROL_WORDS];
    let fd_bytes = u32::try_from(std::mem::size_of_val(fds)).unwrap_or(0);
    // SAFETY: msghdr is plain data; its pointers are set to locals below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is arithmetic.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(fd_bytes) } as _;
    // SAFETY: the control buffer holds one header and MAX_PASSED_FDS fds.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast(), fds.len());
    }
    // SAFETY: msg points at live buffers.
    let sent = unsafe { libc::sendmsg(conn.as_raw_fd(), &raw const msg, libc::MSG_NOSIGNAL) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends one small message.
pub fn send_bytes(conn: &OwnedFd, bytes: &[u8]) {
    // SAFETY: a live buffer of the length given.
    let _ = unsafe {
        libc::send(
            conn.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_NOSIGNAL,
        )
    };
}

/// Receives one small message into `buffer`; its length (0 at the end).
pub fn recv_bytes(conn: &OwnedFd, buffer: &mut [u8]) -> usize {
    // SAFETY: a live buffer of the length given.
    let got = unsafe {
        libc::recv(
            conn.as_raw_fd(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            0,
        )
    };
    usize::try_from(got).unwrap_or(0)
}

/// Kills the process group `group` (a session leader's pid).
pub fn kill_group(group: i32) {
    // SAFETY: kill with integer arguments.
    unsafe { libc::kill(-group, libc::SIGKILL) };
}

/// A program to start, made whole before the clone: between the clone and
/// the exec the child shares this process's memory, so it only makes
/// system calls with what is here, allocating nothing and taking no lock.
pub struct Exec {
    /// Where to look for the program, in order (argv\[0\] itself when it
    /// names a path, else each folder of the `PATH` it is given).
    candidates: Vec<CString>,
    argv: Vec<CString>,
    env: Vec<CString>,
    cwd: CString,
    /// Where to start when `cwd` cannot be entered as the program's user.
    fallback_cwd: Option<CString>,
    uid: u32,
    gid: u32,
    /// Root drops its supplementary groups (another user has none to drop).
    drop_groups: bool,
    /// The descriptors that become its stdin, stdout and stderr.
    stdio: [RawFd; 3],
    limits: Vec<(Resource, u64, u64)>,
}

/// Where programs are looked for when the command's environment names no
/// `PATH` (as the C library's `execvp` looks).
const DEFAULT_PATH: &str = "/usr/local/bin:/bin:/usr/bin";

impl Exec {
    /// A program: `argv` run with exactly `env` (`NAME=value` entries; the
    /// last of a name wins), from `cwd`, as `uid`:`gid` with no
    /// supplementary groups, in a session of its own, with `stdio` as its
    /// 0, 1 and 2 and `limits` (resource, soft, hard) set.
    ///
    /// # Errors
    /// `InvalidInput` for an empty argv or a NUL byte in any string.
    pub fn new(
        argv: &[String],
        env: &[String],
        cwd: &str,
        ids: (u32, u32),
        stdio: [RawFd; 3],
        limits: Vec<(Resource, u64, u64)>,
    ) -> io::Result<Self> {
        let text = |s: &str| {
            CString::new(s).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the command")
            })
        };
        let program = argv
            .first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an empty command"))?;
        let mut named = std::collections::BTreeMap::new();
        for entry in env {
            if let Some((name, value)) = entry.split_once('=') {
                named.insert(name, value);
            }
        }
        let candidates = if program.contains('/') {
            vec![text(program)?]
        } else {
            named
                .get("PATH")
                .copied()
                .unwrap_or(DEFAULT_PATH)
                .split(':')
                .map(|dir| {
                    text(&format!(
                        "{}/{program}",
                        if dir.is_empty() { "." } else { dir }
                    ))
                })
                .collect::<io::Result<_>>()?
        };
        Ok(Self {
            candidates,
            argv: argv.iter().map(|a| text(a)).collect::<io::Result<_>>()?,
            env: named
                .iter()
                .map(|(name, value)| text(&format!("{name}={value}")))
                .collect::<io::Result<_>>()?,
            cwd: text(cwd)?,
            fallback_cwd: None,
            uid: ids.0,
            gid: ids.1,
            // SAFETY: getuid takes nothing and cannot fail.
            drop_groups: unsafe { libc::getuid() } == 0,
            stdio,
            limits,
        })
    }

    /// Starts in `fallback` when the program's user may not enter its folder.
    #[must_use]
    pub fn or_start_in(mut self, fallback: &std::ffi::CStr) -> Self {
        self.fallback_cwd = Some(fallback.to_owned());
        self
    }

    /// Starts the program: its pid once it has begun (the exec done), or
    /// why it could not (the error of its exec, or of a step before it).
    ///
    /// A vfork-style clone (`CLONE_VM | CLONE_VFORK`): the child borrows
    /// this process's memory until its exec instead of copying it, which
    /// under gVisor is most of what starting a command costs.
    pub fn spawn(&self) -> io::Result<i32> {
        const STACK: usize = 64 * 1024;
        let pointers = |strings: &[CString]| -> Vec<*const libc::c_char> {
            strings
                .iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        let argv = pointers(&self.argv);
        let env = pointers(&self.env);
        let mut child = Child {
            exec: self,
            argv: argv.as_ptr(),
            env: env.as_ptr(),
            error: 0,
        };
        let mut stack = vec![0u8; STACK];
        // The stack grows down from its end, kept 16-byte aligned.
        let top = (stack.as_mut_ptr() as usize + STACK) & !15;
        // SAFETY: `child_main` gets a pointer to `child`, which (with the
        // strings and stack it points to) outlives the call: CLONE_VFORK
        // holds this thread until the child has exec'd or exited. The child
        // only makes system calls (see `child_main`).
        let pid = unsafe {
            libc::clone(
                child_main,
                top as *mut libc::c_void,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                (&raw mut child).cast(),
            )
        };
        if pid == -1 {
            return Err(io::Error::last_os_error());
        }
        drop(stack);
        if child.error != 0 {
            // It exited without running anything: reaped here, not counted
            // as an orphan by the loop.
            wait_child(pid);
            return Err(io::Error::from_raw_os_error(child.error));
        }
        Ok(pid)
    }
}

/// What the child of [`Exec::spawn`] reads, and where it leaves the error
/// that stopped it.
struct Child<'a> {
    exec: &'a Exec,
    argv: *const *const libc::c_char,
    env: *const *const libc::c_char,
    error: libc::c_int,
}

/// The child of [`Exec::spawn`], between clone and exec. It shares the
/// agent's memory, so it allocates nothing, panics nowhere and makes its
/// identity changes as raw system calls: the C library's `setuid` and
/// `setgid` would signal every thread of the process whose memory this is.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Child` of `spawn`, alive until this child execs
    // or exits; every call below takes integers or pointers into it.
    unsafe {
        let child = &mut *arg.cast::<Child>();
        let exec = child.exec;
        let fail = |child: &mut Child| -> ! {
            child.error = *libc::__errno_location();
            if child.error == 0 {
                child.error = libc::EINVAL;
            }
            libc::_exit(127)
        };
        // A program starts with default signals and none blocked (the
        // agent ignores SIGPIPE and blocks SIGCHLD for its own reasons).
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &raw const none, std::ptr::null_mut());
        for (target, &fd) in (0..).zip(exec.stdio.iter()) {
            // dup2 onto itself would keep close-on-exec.
            let done = if fd == target {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, target)
            };
            if done == -1 {
                fail(child);
            }
        }
        // Supplementary groups go when root drops to the program's user.
        if (exec.drop_groups
            && libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) == -1)
            || libc::syscall(libc::SYS_setgid, exec.gid) == -1
            || libc::syscall(libc::SYS_setuid, exec.uid) == -1
        {
            fail(child);
        }
        if libc::chdir(exec.cwd.as_ptr()) == -1 {
            match &exec.fallback_cwd {
                Some(fallback) if libc::chdir(fallback.as_ptr()) == 0 => {}
                _ => fail(child),
            }
        }
        for &(resource, soft, hard) in &exec.limits {
            let limit = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            // prlimit64 itself: a C library may apply setrlimit to every
            // thread of the process, which is the agent's here.
            let set = libc::syscall(
                libc::SYS_prlimit64,
                0,
                resource,
                &raw const limit,
                std::ptr::null_mut::<libc::rlimit>(),
            );
            if set == -1 {
                fail(child);
            }
        }
        if libc::setsid() == -1 {
            fail(child);
        }
        // As execvp looks: a missing candidate is passed over; a found one
        // that may not run is remembered and reported unless a later one runs.
        let mut denied = false;
        for program in &exec.candidates {
            libc::execve(program.as_ptr(), child.argv, child.env);
            match *libc::__errno_location() {
                libc::ENOENT | libc::ENOTDIR => {}
                libc::EACCES => denied = true,
                _ => fail(child),
            }
        }
        *libc::__errno_location() = if denied { libc::EACCES } else { libc::ENOENT };
        fail(child)
    }
}
