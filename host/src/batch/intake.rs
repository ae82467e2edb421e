//! Finding submissions: one folder per submission, or one archive (zip,
//! tar, tar.gz) per submission, unpacked safely into a staging folder, and
//! a stable share of them for `--shard K/N`.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

/// Most entries an archive may hold.
pub const MAX_ARCHIVE_ENTRIES: usize = 10_000;
/// Most bytes an archive may unpack to, all files together (a zip bomb stops here).
pub const MAX_UNPACKED_BYTES: u64 = 256 * 1024 * 1024;

/// A submission to grade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// Its name: the folder name, or the archive's name without extension.
    pub name: String,
    /// The folder holding its files (a staging folder for an archive).
    pub dir: PathBuf,
    /// Why it cannot be graded, when its archive was refused.
    pub refused: Option<String>,
}

const ARCHIVE_SUFFIXES: [&str; 4] = [".zip", ".tar.gz", ".tgz", ".tar"];

fn archive_stem(file_name: &str) -> Option<&str> {
    ARCHIVE_SUFFIXES
        .iter()
        .find_map(|suffix| file_name.strip_suffix(suffix))
}

/// Lists the submissions in `dir`, sorted by name, unpacking archives into
/// `staging`. A refused archive is still listed, with the reason, so it gets
/// a result rather than vanishing.
///
/// # Errors
/// When `dir` cannot be read or holds no submissions.
pub fn discover(dir: &Path, staging: &Path) -> Result<Vec<Submission>, String> {
    let read = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut found = Vec::new();
    for entry in read.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            found.push(Submission {
                name,
                dir: entry.path(),
                refused: None,
            });
        } else if let (true, Some(stem)) = (kind.is_file(), archive_stem(&name)) {
            let target = staging.join(stem);
            let refused = unpack(&entry.path(), &target).err();
            found.push(Submission {
                name: stem.to_string(),
                dir: target,
                refused,
            });
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    if found.is_empty() {
        return Err(format!(
            "{} holds no submission folders or archives",
            dir.display()
        ));
    }
    Ok(found)
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
pub fn parse_shard(text: &str) -> Result<(u32, u32), String> {
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
pub fn unpack(archive: &Path, target: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(target);
    std::fs::create_dir_all(target).map_err(|e| format!("{}: {e}", target.display()))?;
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

fn unpack_tar(archive: &Path, target: &Path, name: &str) -> Result<(), String> {
    let file = std::fs::File::open(archive).map_err(|e| e.to_string())?;
    let reader: Box<dyn Read> = if name.ends_with(".tar") {
        Box::new(file)
    } else {
        Box::new(flate2::read::GzDecoder::new(file))
    };
    let mut tar = tar::Archive::new(reader);
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
