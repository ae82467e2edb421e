//! Unpacking a submission's archive (zip, tar, tar.gz) safely: regular
//! files and folders only, no path leaving the target, bounded in entries,
//! bytes, path depth and length, and in the memory the decoders may take,
//! whatever the archive's bytes. Kept apart from agh so the same code is
//! fuzzed (`tests/fuzz`) without building the rest of agh.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// Most entries an archive may hold.
pub const MAX_ARCHIVE_ENTRIES: usize = 10_000;
/// Most bytes an archive may unpack to, all files together (a zip bomb stops here).
pub const MAX_UNPACKED_BYTES: u64 = 256 * 1024 * 1024;
/// Largest GNU long-name or PAX extension entry of a tarball. The tar
/// crate reads such an entry whole before any entry or byte cap applies:
/// a 2 MB `.tar.gz` holding a 2 GiB name made agh allocate 8 GB.
pub const MAX_TAR_EXTENSION_BYTES: u64 = 64 * 1024;
/// Most bytes a tarball's stream may decompress to, headers included: the
/// files' cap and 64 MiB for the headers (a 512-byte header and up to 511
/// bytes of padding an entry, and their long names).
pub const MAX_TAR_STREAM_BYTES: u64 = MAX_UNPACKED_BYTES + 64 * 1024 * 1024;

/// Longest one archive may take to unpack. The caps above bound the work
/// already (a 256 MiB bomb unpacks in seconds); this bounds it whatever
/// the host's load or a decoder's slow path, so intake never holds a
/// grading slot for long: past it, the archive is refused.
pub const MAX_UNPACK_TIME: Duration = Duration::from_secs(60);

/// Most folders a path in a submission may nest, at intake and in every
/// copy into a sandbox: a tree thousands of levels deep in a small archive
/// made every step that walks it (the copy, the agent's probes) slow, and
/// no course needs more.
pub const MAX_PATH_DEPTH: usize = 64;
/// Longest path of a file in a submission, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;

/// Whether a relative path of `depth` parts and `bytes` bytes stays within
/// [`MAX_PATH_DEPTH`] and [`MAX_PATH_BYTES`].
///
/// # Errors
/// The bound it passes, in words.
pub fn check_path_shape(depth: usize, bytes: usize) -> Result<(), String> {
    if depth > MAX_PATH_DEPTH {
        return Err(format!(
            "is nested {depth} folders deep; at most {MAX_PATH_DEPTH}"
        ));
    }
    if bytes > MAX_PATH_BYTES {
        return Err(format!(
            "has a path of {bytes} bytes; at most {MAX_PATH_BYTES}"
        ));
    }
    Ok(())
}

/// A relative path inside an archive that stays inside the target.
fn safe_entry_path(path: &Path, is_dir: bool) -> Result<PathBuf, String> {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            _ => {
                return Err(format!(
                    "entry {} leaves the submission folder",
                    path.display()
                ));
            }
        }
    }
    if clean.as_os_str().is_empty() {
        // `./`, as `tar -C DIR -cf A.tar .` writes first: the folder itself.
        if is_dir {
            return Ok(clean);
        }
        return Err(format!("entry {:?} has no name", path.display()));
    }
    check_path_shape(clean.components().count(), clean.as_os_str().len())
        .map_err(|why| format!("entry {:.200} {why}", clean.display()))?;
    Ok(clean)
}

/// When unpacking must be done by: checked before each entry and during
/// every read of an entry's bytes (where a decoder does its work).
#[derive(Clone, Copy)]
struct Deadline {
    at: Instant,
    within: Duration,
}

impl Deadline {
    fn check(self) -> Result<(), String> {
        if Instant::now() >= self.at {
            return Err(format!(
                "took more than {} s to unpack; make the archive smaller or of fewer files",
                self.within.as_secs()
            ));
        }
        Ok(())
    }
}

/// A reader that fails once its deadline has passed.
struct Timed<'a> {
    inner: &'a mut dyn Read,
    deadline: Deadline,
}

impl Read for Timed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.deadline.check().map_err(std::io::Error::other)?;
        self.inner.read(buf)
    }
}

/// Writes one entry's bytes, counting against the total.
fn write_entry(
    target: &Path,
    relative: &Path,
    reader: &mut dyn Read,
    total: &mut u64,
    deadline: Deadline,
) -> Result<(), String> {
    let reader = Timed {
        inner: reader,
        deadline,
    };
    let path = target.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", relative.display()))?;
    let room = MAX_UNPACKED_BYTES.saturating_sub(*total);
    let written = std::io::copy(&mut reader.take(room + 1), &mut file)
        .map_err(|e| format!("{}: {e}", relative.display()))?;
    *total += written;
    if written > room {
        return Err(format!(
            "unpacks to more than {MAX_UNPACKED_BYTES} bytes (an archive bomb?)"
        ));
    }
    Ok(())
}

/// Unpacks an archive into `target` (replaced if present): regular files
/// and folders only, no path leaving `target`, no links or devices, at most
/// [`MAX_ARCHIVE_ENTRIES`] entries and [`MAX_UNPACKED_BYTES`] bytes, within
/// [`MAX_UNPACK_TIME`]. On refusal `target` is removed.
///
/// # Errors
/// Why the archive was refused.
pub fn unpack(archive: &Path, target: &Path) -> Result<(), String> {
    unpack_within(archive, target, MAX_UNPACK_TIME)
}

/// [`unpack`], refusing the archive when unpacking takes longer than `within`.
///
/// # Errors
/// Why the archive was refused.
pub fn unpack_within(archive: &Path, target: &Path, within: Duration) -> Result<(), String> {
    let deadline = Deadline {
        at: Instant::now() + within,
        within,
    };
    let _ = std::fs::remove_dir_all(target);
    std::fs::create_dir(target).map_err(|e| format!("{}: {e}", target.display()))?;
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let outcome = if name.ends_with(".zip") {
        unpack_zip(archive, target, deadline)
    } else {
        unpack_tar(archive, target, &name, deadline)
    };
    if let Err(why) = &outcome {
        let _ = std::fs::remove_dir_all(target);
        return Err(format!("{name} refused: {why}"));
    }
    outcome
}

fn unpack_zip(archive: &Path, target: &Path, deadline: Deadline) -> Result<(), String> {
    let file = std::fs::File::open(archive).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| format!("not a readable zip: {e}"))?;
    if zip.len() > MAX_ARCHIVE_ENTRIES {
        return Err(format!(
            "{} entries; at most {MAX_ARCHIVE_ENTRIES}",
            zip.len()
        ));
    }
    let mut total = 0;
    for i in 0..zip.len() {
        deadline.check()?;
        let mut entry = zip.by_index(i).map_err(|e| e.to_string())?;
        let relative = safe_entry_path(Path::new(entry.name()), entry.is_dir())?;
        if entry.is_dir() {
            std::fs::create_dir_all(target.join(&relative)).map_err(|e| e.to_string())?;
        } else if entry.is_symlink() {
            return Err(format!("entry {} is a symbolic link", relative.display()));
        } else {
            write_entry(target, &relative, &mut entry, &mut total, deadline)?;
        }
    }
    Ok(())
}

/// A tarball's decompressed stream, held to [`MAX_TAR_STREAM_BYTES`]: past
/// it, reads fail with a message rather than end quietly.
struct Budgeted<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // One byte more than the budget tells a stream that ends here
            // from one that goes on.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(format!(
                    "decompresses to more than {MAX_TAR_STREAM_BYTES} bytes (an archive bomb?)"
                ))),
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// A tarball's stream from the start, decompressed if it is gzipped.
fn tar_stream(archive: &Path, name: &str) -> Result<Budgeted<Box<dyn Read>>, String> {
    let file = std::fs::File::open(archive).map_err(|e| e.to_string())?;
    let inner: Box<dyn Read> = if name.ends_with(".tar") {
        Box::new(std::io::BufReader::new(file))
    } else {
        Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)))
    };
    Ok(Budgeted {
        inner,
        left: MAX_TAR_STREAM_BYTES,
    })
}

/// Looks at the tarball's raw entries, reading none of them into memory:
/// refuses an extension entry (GNU long name or link, PAX header) larger
/// than [`MAX_TAR_EXTENSION_BYTES`] before the tar crate would read it
/// whole, and more than [`MAX_ARCHIVE_ENTRIES`] entries.
fn check_tar_headers(archive: &Path, name: &str, deadline: Deadline) -> Result<(), String> {
    let mut tar = tar::Archive::new(tar_stream(archive, name)?);
    let entries = tar
        .entries()
        .map_err(|e| format!("not a readable tar: {e}"))?
        .raw(true);
    for (count, entry) in entries.enumerate() {
        if count >= 2 * MAX_ARCHIVE_ENTRIES {
            return Err(format!("more than {MAX_ARCHIVE_ENTRIES} entries"));
        }
        deadline.check()?;
        let entry = entry.map_err(|e| format!("not a readable tar: {e}"))?;
        let header = entry.header();
        let kind = header.entry_type();
        let extension = kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions();
        let size = header
            .entry_size()
            .map_err(|e| format!("not a readable tar: {e}"))?;
        if extension && size > MAX_TAR_EXTENSION_BYTES {
            return Err(format!(
                "an extension header of {size} bytes (a long name or PAX record); at most {MAX_TAR_EXTENSION_BYTES}"
            ));
        }
    }
    Ok(())
}

fn unpack_tar(archive: &Path, target: &Path, name: &str, deadline: Deadline) -> Result<(), String> {
    check_tar_headers(archive, name, deadline)?;
    let mut tar = tar::Archive::new(tar_stream(archive, name)?);
    let mut total = 0;
    for (count, entry) in tar
        .entries()
        .map_err(|e| format!("not a readable tar: {e}"))?
        .enumerate()
    {
        if count >= MAX_ARCHIVE_ENTRIES {
            return Err(format!("more than {MAX_ARCHIVE_ENTRIES} entries"));
        }
        deadline.check()?;
        let mut entry = entry.map_err(|e| format!("not a readable tar: {e}"))?;
        let is_dir = entry.header().entry_type() == tar::EntryType::Directory;
        let relative = safe_entry_path(&entry.path().map_err(|e| e.to_string())?, is_dir)?;
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(target.join(&relative)).map_err(|e| e.to_string())?
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                write_entry(target, &relative, &mut entry, &mut total, deadline)?
            }
            other => {
                return Err(format!(
                    "entry {} is a {other:?}, not a file or folder",
                    relative.display()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_with(path: &Path, entries: &[(&str, &[u8])]) {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        for (name, bytes) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
    }

    #[test]
    fn zip_slip_and_absolute_entries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["../../evil.txt", "/etc/evil.txt", "a/../../evil.txt"] {
            let archive = dir.path().join("slip.zip");
            zip_with(&archive, &[(name, b"x")]);
            let err = unpack(&archive, &dir.path().join("out")).unwrap_err();
            assert!(
                err.contains("leaves the submission folder"),
                "{name}: {err}"
            );
            assert!(!dir.path().join("out").exists());
        }
        assert!(!dir.path().join("evil.txt").exists() && !Path::new("/etc/evil.txt").exists());
    }

    #[test]
    fn archive_bombs_stop_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("bomb.zip");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&archive).unwrap());
        zip.start_file("zeros", zip::write::SimpleFileOptions::default())
            .unwrap();
        let block = vec![0u8; 1 << 20];
        for _ in 0..(MAX_UNPACKED_BYTES >> 20) + 2 {
            zip.write_all(&block).unwrap();
        }
        zip.finish().unwrap();
        assert!(
            std::fs::metadata(&archive).unwrap().len() < 2 << 20,
            "the bomb should compress well"
        );
        let err = unpack(&archive, &dir.path().join("out")).unwrap_err();
        assert!(err.contains("archive bomb"), "{err}");
    }

    /// A GNU long-name header that claims a 2 GiB name is refused from its
    /// header, before anything reads it (it made agh allocate 8 GB).
    #[test]
    fn a_tar_extension_header_past_its_cap_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("long-name.tar.gz");
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&archive).unwrap(),
            flate2::Compression::fast(),
        );
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        header.set_entry_type(tar::EntryType::GNULongName);
        header.set_size(2 << 30);
        header.set_cksum();
        gz.write_all(header.as_bytes()).unwrap();
        gz.write_all(&vec![b'a'; 1 << 20]).unwrap();
        gz.finish().unwrap();
        let err = unpack(&archive, &dir.path().join("out")).unwrap_err();
        assert!(
            err.contains("extension header of 2147483648 bytes"),
            "{err}"
        );
    }

    /// A folder tree deeper than the bound is refused at intake.
    #[test]
    fn an_archive_nested_past_the_depth_bound_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let deep = "d/".repeat(MAX_PATH_DEPTH) + "main.c";
        let archive = dir.path().join("deep.zip");
        zip_with(&archive, &[(deep.as_str(), b"int main(){}")]);
        let err = unpack(&archive, &dir.path().join("out")).unwrap_err();
        assert!(err.contains("folders deep; at most 64"), "{err}");
        let shallow = dir.path().join("shallow.zip");
        let ok = "d/".repeat(MAX_PATH_DEPTH - 1) + "main.c";
        zip_with(&shallow, &[(ok.as_str(), b"int main(){}")]);
        unpack(&shallow, &dir.path().join("out")).unwrap();
    }

    /// Unpacking past its time is refused, whatever the archive holds,
    /// and leaves nothing behind.
    #[test]
    fn an_archive_slower_to_unpack_than_its_bound_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("sub.zip");
        zip_with(&archive, &[("main.c", b"int main(){}")]);
        let out = dir.path().join("out");
        let err = unpack_within(&archive, &out, Duration::ZERO).unwrap_err();
        assert!(err.contains("took more than 0 s to unpack"), "{err}");
        assert!(!out.exists());
        unpack(&archive, &out).unwrap();
        assert_eq!(std::fs::read(out.join("main.c")).unwrap(), b"int main(){}");
    }

    #[test]
    fn links_in_tarballs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("link.tar");
        let mut builder = tar::Builder::new(std::fs::File::create(&archive).unwrap());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder
            .append_link(&mut header, "passwd", "/etc/passwd")
            .unwrap();
        builder.finish().unwrap();
        let err = unpack(&archive, &dir.path().join("out")).unwrap_err();
        assert!(err.contains("Symlink"), "{err}");
    }

    /// `tar -C DIR -cf A.tar .` starts with the entry `./`: the folder
    /// itself, taken as such; a file with no name is still refused.
    #[test]
    fn the_root_folder_entry_of_a_tarball_is_the_submission_folder() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("dot.tar");
        let mut builder = tar::Builder::new(std::fs::File::create(&archive).unwrap());
        let mut folder = tar::Header::new_gnu();
        folder.set_entry_type(tar::EntryType::Directory);
        folder.set_mode(0o755);
        folder.set_size(0);
        builder
            .append_data(&mut folder, "./", std::io::empty())
            .unwrap();
        let mut file = tar::Header::new_gnu();
        file.set_size(3);
        file.set_mode(0o644);
        builder
            .append_data(&mut file, "./main.c", &b"int"[..])
            .unwrap();
        builder.finish().unwrap();
        let out = dir.path().join("out");
        unpack(&archive, &out).unwrap();
        assert_eq!(std::fs::read(out.join("main.c")).unwrap(), b"int");
        assert!(safe_entry_path(Path::new("./"), false).is_err());
        assert!(
            safe_entry_path(Path::new("./"), true)
                .unwrap()
                .as_os_str()
                .is_empty()
        );
    }
}
