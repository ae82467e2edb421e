//! File work the agent starts as a sandbox user: unpacking a tar stream
//! into a writable place, reading a file back, and looking for a file cut
//! short by the file-size limit. Each runs with the rights of the user it
//! serves, so it can touch nothing that user could not.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::ExitCode;

use crate::sys;

use agh_protocol::{COMMAND_PLACES, READ_FAILED, READ_LINK, READ_MISSING, READ_NOT_REGULAR};

/// Most entries the file-size search looks at.
const PROBE_ENTRIES: usize = 100_000;
/// Longest the file-size search may take: it runs inside the kill margin
/// agh allows past a command's end, and a tree the student built
/// thousands of levels deep must not stretch it into a silent agent.
pub const PROBE_TIME: std::time::Duration = std::time::Duration::from_millis(1_000);

pub fn run(helper: &str, args: &[String]) -> ExitCode {
    let result = match (helper, args) {
        ("extract", [place]) => extract(place),
        ("read", [path, max]) => return read(path, max.parse().unwrap_or(0)),
        ("probe", [size, since, places @ ..]) => {
            let (size, since) = (size.parse().unwrap_or(u64::MAX), since.parse().unwrap_or(0));
            return if probe(size, since, places) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            };
        }
        ("threads", []) => return threads(),
        ("as-student", argv) => return crate::door::knock(argv),
        _ => Err(io::Error::other(format!(
            "agh-agent: unknown helper {helper:?}; the agent itself takes no arguments"
        ))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{err}");
            ExitCode::FAILURE
        }
    }
}

/// Unpacks the tar stream on stdin below `place`, keeping each entry's mode
/// (permission bits only), owned by whoever runs this. Every folder and
/// file is made and opened relative to a folder already held open, one
/// path part at a time, following no link: the work per entry is its own
/// path parts below the folders the entry before it left open, however
/// deep the tree, and a link planted earlier is refused, never followed.
/// An existing file is replaced. Folder modes are set last, so a
/// read-only folder is filled first.
fn extract(place: &str) -> io::Result<()> {
    let root = sys::open_below(None, place, libc::O_DIRECTORY | libc::O_RDONLY)?;
    let mut open = OpenFolders {
        root,
        chain: Vec::new(),
    };
    let mut folder_modes = Vec::new();
    let mut archive = tar::Archive::new(io::stdin().lock());
    for entry in archive.entries()? {
        let mut entry = entry?;
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode()? & 0o777;
        let path = entry.path()?.into_owned();
        let shown = path.display().to_string();
        let parts = path_parts(&path).ok_or_else(|| {
            io::Error::other(format!(
                "{shown} would land outside {place}, or is not UTF-8"
            ))
        })?;
        let Some((name, folders)) = parts.split_last() else {
            continue; // the place itself
        };
        let in_place = |err: io::Error| io::Error::new(err.kind(), format!("{shown}: {err}"));
        let parent = open.folder(folders).map_err(in_place)?;
        if kind.is_dir() {
            sys::mkdir_at(parent, name).map_err(in_place)?;
            let folder =
                open_checked(parent, name, libc::O_DIRECTORY | libc::O_RDONLY).map_err(in_place)?;
            folder_modes.push((folder, mode));
        } else if kind.is_file() {
            let file = match sys::create_at(parent, name) {
                Err(err) if err.raw_os_error() == Some(libc::EEXIST) => {
                    sys::unlink_at(parent, name).map_err(in_place)?;
                    sys::create_at(parent, name)
                }
                created => created,
            }
            .map_err(in_place)?;
            let mut file = File::from(file);
            io::copy(&mut entry, &mut file).map_err(in_place)?;
            sys::set_mode(&file.into(), mode).map_err(in_place)?;
        } else {
            return Err(io::Error::other(format!(
                "{shown} is neither a file nor a folder"
            )));
        }
    }
    for (folder, mode) in folder_modes.iter().rev() {
        sys::set_mode(folder, *mode)?;
    }
    Ok(())
}

/// The folders of the last entry's path, held open: the next entry in the
/// same or a nearby folder opens only the parts that differ.
struct OpenFolders {
    root: OwnedFd,
    chain: Vec<(String, OwnedFd)>,
}

impl OpenFolders {
    /// The folder `parts` below the place, made where missing.
    fn folder(&mut self, parts: &[String]) -> io::Result<&OwnedFd> {
        let shared = self
            .chain
            .iter()
            .zip(parts)
            .take_while(|((held, _), part)| held == *part)
            .count();
        self.chain.truncate(shared);
        for part in &parts[shared..] {
            let parent = self.chain.last().map_or(&self.root, |(_, fd)| fd);
            sys::mkdir_at(parent, part)?;
            let next = open_checked(parent, part, libc::O_DIRECTORY | libc::O_RDONLY)?;
            self.chain.push((part.clone(), next));
        }
        Ok(self.chain.last().map_or(&self.root, |(_, fd)| fd))
    }
}

/// The parts of a relative entry path, or `None` for one that could leave
/// its place (`..`, an absolute path) or is not UTF-8.
fn path_parts(path: &Path) -> Option<Vec<String>> {
    use std::path::Component;
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?.to_string()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts)
}

/// Writes up to `max` bytes of the regular file at `path` to stdout,
/// walking the path one part at a time and following no link anywhere:
/// each part is opened relative to the one before, and what is opened is
/// what is checked.
fn read(path: &str, max: u64) -> ExitCode {
    let opened = open_no_links(path).and_then(|fd| {
        let file = File::from(fd);
        let meta = file.metadata()?;
        Ok((file, meta.file_type().is_file()))
    });
    let file = match opened {
        Ok((file, true)) => file,
        Ok((_, false)) => return ExitCode::from(READ_NOT_REGULAR),
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => return ExitCode::from(READ_LINK),
        Err(err) if err.raw_os_error() == Some(libc::ENOTDIR) => return ExitCode::from(READ_LINK),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return ExitCode::from(READ_MISSING),
        Err(err) => {
            eprintln!("{path}: {err}");
            return ExitCode::from(READ_FAILED);
        }
    };
    let copied = io::copy(&mut file.take(max), &mut io::stdout().lock());
    match copied.and_then(|_| io::stdout().flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{path}: {err}");
            ExitCode::from(READ_FAILED)
        }
    }
}

/// Opens an absolute path with no link in any part; a FIFO is opened
/// without blocking so it can be refused. Each part is opened with
/// O_NOFOLLOW, then checked: what the name holds, looked at without
/// following, must be the very file that was opened (gVisor follows a
/// link in a part opened as a folder despite O_NOFOLLOW).
fn open_no_links(path: &str) -> io::Result<OwnedFd> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let Some((last, dirs)) = parts.split_last() else {
        return Err(io::Error::from_raw_os_error(libc::EISDIR));
    };
    let mut dir = sys::open_below(None, "/", libc::O_DIRECTORY | libc::O_RDONLY)?;
    for part in dirs {
        if *part == ".." || *part == "." {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        let next = open_checked(&dir, part, libc::O_DIRECTORY | libc::O_RDONLY)?;
        dir = next;
    }
    open_checked(&dir, last, libc::O_RDONLY | libc::O_NONBLOCK)
}

/// Opens `name` below `dir` and checks it is what the name holds.
fn open_checked(dir: &OwnedFd, name: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    use std::os::unix::fs::MetadataExt;
    let opened = sys::open_below(Some(dir), name, flags)?;
    let meta = File::from(opened.try_clone()?).metadata()?;
    let (dev, ino, is_link) = sys::identity_at(dir, name)?;
    if is_link || dev != meta.dev() || ino != meta.ino() {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    Ok(opened)
}

/// True when some regular file in a writable place, changed at or after
/// `since` (seconds since the epoch), is at least `size` bytes: the mark of
/// a write stopped by RLIMIT_FSIZE, even when the program ignored SIGXFSZ
/// and exited with an ordinary error.
fn probe(size: u64, since: i64, places: &[String]) -> bool {
    use std::os::unix::fs::MetadataExt;
    let deadline = std::time::Instant::now() + PROBE_TIME;
    let mut budget = PROBE_ENTRIES;
    let mut stack: Vec<std::path::PathBuf> = COMMAND_PLACES
        .iter()
        .copied()
        .chain(places.iter().map(String::as_str))
        .map(|p| Path::new(p).to_path_buf())
        .collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if budget == 0 || std::time::Instant::now() >= deadline {
                return false;
            }
            budget -= 1;
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && meta.len() >= size && meta.mtime() >= since {
                return true;
            }
        }
    }
    false
}

/// Exit status of `threads` when no thread can start.
pub const THREADS_REFUSED: u8 = 2;
/// Exit status of `threads` when a user namespace could be made.
pub const USER_NAMESPACE_ALLOWED: u8 = 3;

/// Checks, as the user it runs as, what `agh doctor` must know of this
/// sandbox's seccomp profile: a thread can start (glibc's `clone3` works
/// or answers ENOSYS, on which glibc falls back to `clone`), and no user
/// namespace can be made, neither through `clone3` nor through `unshare`.
/// Prints what it saw on one line.
fn threads() -> ExitCode {
    let plain = match sys::clone3_fork(0) {
        Ok(0) => sys::exit_now(0),
        Ok(pid) => {
            sys::wait_child(pid);
            "clone3 works".to_string()
        }
        Err(err) if err.raw_os_error() == Some(libc::ENOSYS) => {
            "clone3 answers ENOSYS, so glibc falls back to clone".to_string()
        }
        Err(err) => {
            println!("clone3 answers {err}: glibc gives up and no thread can start");
            return ExitCode::from(THREADS_REFUSED);
        }
    };
    match sys::clone3_fork(libc::CLONE_NEWUSER as u64) {
        Ok(0) => sys::exit_now(0),
        Ok(pid) => {
            sys::wait_child(pid);
            println!("{plain}; clone3 made a user namespace");
            return ExitCode::from(USER_NAMESPACE_ALLOWED);
        }
        Err(_) => {}
    }
    if sys::unshare_user_namespace().is_ok() {
        println!("{plain}; unshare made a user namespace");
        return ExitCode::from(USER_NAMESPACE_ALLOWED);
    }
    println!("{plain}; user namespaces are refused");
    ExitCode::SUCCESS
}
