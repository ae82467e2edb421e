//! The few system calls the agent needs that the standard library does not
//! wrap. Every `unsafe` block of the agent is here, each one a single call
//! whose arguments are owned values or plain integers.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Turns a -1 return into the OS error.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
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

/// Sets one resource limit of the calling process, soft and hard.
pub fn set_limit(resource: Resource, soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: pointer to a local.
    check(unsafe { libc::setrlimit(resource, &raw const limit) }).map(drop)
}

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

/// Runs `limits` between fork and exec of `command`.
pub fn before_exec(
    command: &mut std::process::Command,
    limits: impl Fn() -> io::Result<()> + Send + Sync + 'static,
) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure only calls setrlimit and setsid, which are
    // async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            limits()?;
            check(libc::setsid()).map(drop)
        });
    }
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
