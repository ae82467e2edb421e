//! Finding submissions: one folder per submission, or one archive (zip,
//! tar, tar.gz) per submission, unpacked safely into a staging folder, and
//! a stable share of them for `--shard K/N`.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::names;

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

/// A submission to grade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// Its name: the folder name, or the archive's name without extension.
    pub name: String,
    /// The folder holding its files (a staging folder for an archive).
    pub dir: PathBuf,
    /// Why it cannot be graded, when its archive was refused.
    pub refused: Option<String>,
    /// Its content's sha256, once computed (see [`super::submission_digest`]).
    pub digest: Option<String>,
}

/// Submissions that cannot be taken in: what is wrong, and with which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IntakeError(String);

const ARCHIVE_SUFFIXES: [&str; 4] = [".zip", ".tar.gz", ".tgz", ".tar"];

fn archive_stem(file_name: &OsStr) -> Option<&OsStr> {
    let bytes = file_name.as_bytes();
    ARCHIVE_SUFFIXES
        .iter()
        .find_map(|suffix| bytes.strip_suffix(suffix.as_bytes()))
        .map(OsStr::from_bytes)
}

/// One entry of a submissions folder, before anything is unpacked.
struct Found {
    /// The name it will be graded and recorded under.
    name: String,
    /// The folder or archive on the operator's disk.
    source: PathBuf,
    archive: bool,
    /// Why its own name could not be used, when it could not.
    bad_name: Option<String>,
}

impl Found {
    /// Names an entry by its folder name or archive stem; a name that
    /// [`names::check_name`] refuses is graded as refused, under a stand-in.
    fn new(raw: &OsStr, source: PathBuf, archive: bool) -> Self {
        match names::checked_name(raw) {
            Ok(name) => Self {
                name,
                source,
                archive,
                bad_name: None,
            },
            Err(why) => Self {
                name: names::stand_in_name(raw),
                bad_name: Some(format!(
                    "the submission {:?} was not graded: its name {why}; rename it and grade again",
                    source.file_name().unwrap_or_default()
                )),
                source,
                archive,
            },
        }
    }

    /// Unpacks an archive into `staging/NAME`; a folder is used in place.
    fn into_submission(self, staging: &Path) -> Submission {
        if let Some(why) = self.bad_name {
            return Submission {
                name: self.name,
                dir: PathBuf::new(),
                refused: Some(why),
                digest: None,
            };
        }
        if !self.archive {
            return Submission {
                name: self.name,
                dir: self.source,
                refused: None,
                digest: None,
            };
        }
        // The name is checked, so the target is a direct child of staging.
        let target = staging.join(&self.name);
        let refused = std::fs::create_dir_all(staging)
            .map_err(|e| format!("cannot create {}: {e}", staging.display()))
            .and_then(|()| unpack(&self.source, &target))
            .err();
        Submission {
            name: self.name,
            dir: target,
            refused,
            digest: None,
        }
    }
}

/// Refuses two entries that would be graded under one name.
fn refuse_duplicates(found: &[Found]) -> Result<(), String> {
    let mut seen: std::collections::BTreeMap<&str, &Path> = Default::default();
    for entry in found {
        if let Some(first) = seen.insert(&entry.name, &entry.source) {
            return Err(format!(
                "{} and {} would both be graded as {:?}; rename or remove one and grade again",
                first.display(),
                entry.source.display(),
                entry.name
            ));
        }
    }
    Ok(())
}

/// Lists the submissions in `dir`, sorted by name, unpacking archives into
/// `staging`. A refused archive, or an entry whose name cannot be used, is
/// still listed with the reason, so it gets a result rather than vanishing.
///
/// # Errors
/// When `dir` cannot be read, holds no submissions, or holds two that
/// would be graded under one name (`alice/` and `alice.zip`).
pub fn discover(dir: &Path, staging: &Path) -> Result<Vec<Submission>, IntakeError> {
    discover_in(dir, staging).map_err(IntakeError)
}

fn discover_in(dir: &Path, staging: &Path) -> Result<Vec<Submission>, String> {
    let read = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut found = Vec::new();
    for entry in read.filter_map(Result::ok) {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let file_name = entry.file_name();
        if kind.is_dir() {
            found.push(Found::new(&file_name, entry.path(), false));
        } else if let (true, Some(stem)) = (kind.is_file(), archive_stem(&file_name)) {
            found.push(Found::new(stem, entry.path(), true));
        }
    }
    if found.is_empty() {
        return Err(format!(
            "{} holds no submission folders or archives",
            dir.display()
        ));
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    refuse_duplicates(&found)?;
    Ok(found
        .into_iter()
        .map(|f| f.into_submission(staging))
        .collect())
}

/// The one submission at `path`: a folder, or an archive unpacked into
/// `staging`.
///
/// # Errors
/// When `path` is neither a folder nor a zip or tarball.
pub fn single(path: &Path, staging: &Path) -> Result<Submission, IntakeError> {
    single_in(path, staging).map_err(IntakeError)
}

fn single_in(path: &Path, staging: &Path) -> Result<Submission, String> {
    let file_name = path.file_name().unwrap_or_default();
    let found = if path.is_dir() {
        Found::new(file_name, path.to_path_buf(), false)
    } else if let Some(stem) = archive_stem(file_name).filter(|_| path.is_file()) {
        Found::new(stem, path.to_path_buf(), true)
    } else {
        return Err(format!(
            "{} is not a folder, a zip or a tarball (.tar, .tar.gz, .tgz)",
            path.display()
        ));
    };
    Ok(found.into_submission(staging))
}

/// Keeps the submissions of shard `k` of `n` (1-based): a stable share by
/// the sha256 of the name, so every machine computes the same split.
#[must_use]
pub fn shard(submissions: Vec<Submission>, k: u32, n: u32) -> Vec<Submission> {
    submissions
        .into_iter()
        .filter(|s| {
            let digest = Sha256::digest(s.name.as_bytes());
            let value = u64::from_be_bytes(digest[..8].try_into().unwrap_or([0; 8]));
            value % u64::from(n) == u64::from(k - 1)
        })
        .collect()
}

/// Parses `K/N` with 1 <= K <= N.
///
/// # Errors
/// What is wrong with the text.
pub fn parse_shard(text: &str) -> Result<(u32, u32), IntakeError> {
    parse_shard_in(text).map_err(IntakeError)
}

fn parse_shard_in(text: &str) -> Result<(u32, u32), String> {
    let parsed = text
        .split_once('/')
        .and_then(|(k, n)| Some((k.parse::<u32>().ok()?, n.parse::<u32>().ok()?)));
    match parsed {
        Some((k, n)) if k >= 1 && k <= n => Ok((k, n)),
        _ => Err(format!(
            "--shard {text:?}: write K/N with 1 <= K <= N, for example 2/8"
        )),
    }
}

/// A relative path inside an archive that stays inside the target.
fn safe_entry_path(path: &Path) -> Result<PathBuf, String> {
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
        return Err(format!("entry {:?} has no name", path.display()));
    }
    crate::layout::check_path_shape(clean.components().count(), clean.as_os_str().len())
        .map_err(|why| format!("entry {:.200} {why}", clean.display()))?;
    Ok(clean)
}

/// Writes one entry's bytes, counting against the total.
fn write_entry(
    target: &Path,
    relative: &Path,
    reader: &mut dyn Read,
    total: &mut u64,
) -> Result<(), String> {
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
/// [`MAX_ARCHIVE_ENTRIES`] entries and [`MAX_UNPACKED_BYTES`] bytes. On
/// refusal `target` is removed.
///
/// # Errors
/// Why the archive was refused.
fn unpack(archive: &Path, target: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(target);
    std::fs::create_dir(target).map_err(|e| format!("{}: {e}", target.display()))?;
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let outcome = if name.ends_with(".zip") {
        unpack_zip(archive, target)
    } else {
        unpack_tar(archive, target, &name)
    };
    if let Err(why) = &outcome {
        let _ = std::fs::remove_dir_all(target);
        return Err(format!("{name} refused: {why}"));
    }
    outcome
}

fn unpack_zip(archive: &Path, target: &Path) -> Result<(), String> {
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
        let mut entry = zip.by_index(i).map_err(|e| e.to_string())?;
        let relative = safe_entry_path(Path::new(entry.name()))?;
        if entry.is_dir() {
            std::fs::create_dir_all(target.join(&relative)).map_err(|e| e.to_string())?;
        } else if entry.is_symlink() {
            return Err(format!("entry {} is a symbolic link", relative.display()));
        } else {
            write_entry(target, &relative, &mut entry, &mut total)?;
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
fn check_tar_headers(archive: &Path, name: &str) -> Result<(), String> {
    let mut tar = tar::Archive::new(tar_stream(archive, name)?);
    let entries = tar
        .entries()
        .map_err(|e| format!("not a readable tar: {e}"))?
        .raw(true);
    for (count, entry) in entries.enumerate() {
        if count >= 2 * MAX_ARCHIVE_ENTRIES {
            return Err(format!("more than {MAX_ARCHIVE_ENTRIES} entries"));
        }
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

fn unpack_tar(archive: &Path, target: &Path, name: &str) -> Result<(), String> {
    check_tar_headers(archive, name)?;
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
        let mut entry = entry.map_err(|e| format!("not a readable tar: {e}"))?;
        let relative = safe_entry_path(&entry.path().map_err(|e| e.to_string())?)?;
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(target.join(&relative)).map_err(|e| e.to_string())?
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                write_entry(target, &relative, &mut entry, &mut total)?
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
    fn folders_and_archives_are_submissions() {
        let dir = tempfile::tempdir().unwrap();
        let staging = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("alice")).unwrap();
        zip_with(
            &dir.path().join("bob.zip"),
            &[("src/main.c", b"int main(){}")],
        );
        let found = discover(dir.path(), staging.path()).unwrap();
        assert_eq!(
            found.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["alice", "bob"]
        );
        assert_eq!(
            std::fs::read(found[1].dir.join("src/main.c")).unwrap(),
            b"int main(){}"
        );
    }

    #[test]
    fn archive_names_that_are_dots_stay_inside_staging() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("submissions");
        let staging = parent.path().join("out/.staging");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(parent.path().join("out")).unwrap();
        std::fs::write(parent.path().join("out/keep"), "x").unwrap();
        for name in ["...zip", "..zip", ".zip", "a\u{1b}[2Kb.zip"] {
            zip_with(&dir.join(name), &[("main.c", b"int main(){}")]);
        }
        let found = discover(&dir, &staging).unwrap();
        assert_eq!(found.len(), 4);
        for submission in &found {
            assert!(submission.name.starts_with("unnamed-"), "{submission:?}");
            assert!(submission.refused.as_deref().unwrap().contains("rename it"));
        }
        assert!(
            parent.path().join("out/keep").is_file(),
            "the output folder was touched"
        );
        assert!(
            !parent.path().join("main.c").exists() && !parent.path().join("out/main.c").exists()
        );
    }

    #[test]
    fn a_folder_and_an_archive_of_one_name_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let staging = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("alice")).unwrap();
        zip_with(&dir.path().join("alice.zip"), &[("main.c", b"x")]);
        let err = discover(dir.path(), staging.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("alice.zip") && err.contains("both be graded as \"alice\""),
            "{err}"
        );
        assert!(
            !staging.path().join("alice").exists(),
            "nothing was unpacked"
        );
        zip_with(&dir.path().join("bob.tar.gz"), &[]);
        std::fs::remove_dir(dir.path().join("alice")).unwrap();
        std::fs::copy(dir.path().join("bob.tar.gz"), dir.path().join("bob.tgz")).unwrap();
        assert!(
            discover(dir.path(), staging.path())
                .unwrap_err()
                .to_string()
                .contains("bob")
        );
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
        let deep = "d/".repeat(crate::layout::MAX_PATH_DEPTH) + "main.c";
        let archive = dir.path().join("deep.zip");
        zip_with(&archive, &[(deep.as_str(), b"int main(){}")]);
        let err = unpack(&archive, &dir.path().join("out")).unwrap_err();
        assert!(err.contains("folders deep; at most 64"), "{err}");
        let shallow = dir.path().join("shallow.zip");
        let ok = "d/".repeat(crate::layout::MAX_PATH_DEPTH - 1) + "main.c";
        zip_with(&shallow, &[(ok.as_str(), b"int main(){}")]);
        unpack(&shallow, &dir.path().join("out")).unwrap();
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

    #[test]
    fn shards_partition_the_submissions() {
        let all: Vec<Submission> = (0..100)
            .map(|i| Submission {
                name: format!("s{i}"),
                dir: PathBuf::new(),
                refused: None,
                digest: None,
            })
            .collect();
        let mut seen: Vec<String> = (1..=3)
            .flat_map(|k| shard(all.clone(), k, 3))
            .map(|s| s.name)
            .collect();
        seen.sort();
        let mut names: Vec<String> = all.iter().map(|s| s.name.clone()).collect();
        names.sort();
        assert_eq!(seen, names, "every submission in exactly one shard");
        assert_eq!(parse_shard("2/8"), Ok((2, 8)));
        assert!(
            parse_shard("0/8").is_err() && parse_shard("9/8").is_err() && parse_shard("x").is_err()
        );
    }
}
