//! Finding submissions: one folder per submission, or one archive (zip,
//! tar, tar.gz) per submission, unpacked safely into a staging folder when
//! it is graded (not before), and a stable share of them for `--shard K/N`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::names;

use agh_archive::unpack;
pub use agh_archive::{
    MAX_ARCHIVE_ENTRIES, MAX_TAR_EXTENSION_BYTES, MAX_TAR_STREAM_BYTES, MAX_UNPACKED_BYTES,
};

/// A submission to grade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// Its name: the folder name, or the archive's name without extension.
    pub name: String,
    /// The folder holding its files (for an archive, the staging folder it
    /// is unpacked into when graded).
    pub dir: PathBuf,
    /// The archive its files come from, unpacked into `dir` when graded.
    pub archive: Option<PathBuf>,
    /// Why it cannot be graded, when its name was refused.
    pub refused: Option<String>,
    /// Attempts an earlier run of the batch made that ended in infra
    /// errors (from the journal): a resume does not pay them again.
    pub earlier_attempts: u32,
}

impl Submission {
    /// The submission in folder `dir`, named `name`.
    #[must_use]
    pub fn folder(name: &str, dir: PathBuf) -> Self {
        Self {
            name: name.to_string(),
            dir,
            archive: None,
            refused: None,
            earlier_attempts: 0,
        }
    }

    /// Its files, for an archive unpacked first (off the async threads)
    /// with every cap and check of [`agh_archive::unpack`].
    ///
    /// # Errors
    /// The result to record: a refused archive or folder is the student's
    /// (an invalid submission), a host that cannot read it an infra error.
    pub async fn snapshot(
        &self,
    ) -> Result<crate::grading::Snapshot, Box<crate::report::SubmissionResult>> {
        if let Some(archive) = &self.archive {
            let (archive, target) = (archive.clone(), self.dir.clone());
            let unpacked = tokio::task::spawn_blocking(move || unpack_into(&archive, &target))
                .await
                .unwrap_or_else(|panic| Err(panic.to_string()));
            if let Err(why) = unpacked {
                return Err(Box::new(crate::report::SubmissionResult::failed(
                    &self.name,
                    crate::report::Status::InvalidSubmission,
                    why,
                )));
            }
        }
        crate::grading::Snapshot::take(&self.name, &self.dir).await
    }

    /// Removes what [`Submission::snapshot`] unpacked; a folder is left alone.
    pub async fn release(&self) {
        if self.archive.is_some() {
            let target = self.dir.clone();
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(target)).await;
        }
    }
}

/// Unpacks `archive` into `target` (a fresh folder; what an earlier
/// unpack left there is removed first).
///
/// # Errors
/// Why the archive was refused, or the staging folder cannot be made.
pub fn unpack_into(archive: &Path, target: &Path) -> Result<(), String> {
    let staging = target.parent().unwrap_or(target);
    std::fs::create_dir_all(staging)
        .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    match std::fs::remove_dir_all(target) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot clear {}: {e}", target.display())),
    }
    unpack(archive, target)
}

/// Submissions that cannot be taken in as named: what is wrong, and with
/// which. Each is the operator's to fix (see [`IntakeError::blame`]).
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The submissions folder cannot be read.
    #[error("cannot read {}: {source}", .dir.display())]
    Unreadable {
        /// The folder.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// It holds nothing to grade.
    #[error("{} holds no submission folders or archives", .0.display())]
    Empty(PathBuf),
    /// Two entries would be graded under one name.
    #[error(
        "{} and {} would both be graded as {name:?}; rename or remove one and grade again",
        .first.display(),
        .second.display()
    )]
    SameName {
        /// The first entry.
        first: PathBuf,
        /// The second.
        second: PathBuf,
        /// The name both would take.
        name: String,
    },
    /// The one submission named is neither a folder nor an archive.
    #[error("{} is not a folder, a zip or a tarball (.tar, .tar.gz, .tgz)", .0.display())]
    NotASubmission(PathBuf),
    /// `--shard` is not `K/N`.
    #[error("--shard {0:?}: write K/N with 1 <= K <= N, for example 2/8")]
    BadShard(String),
}

impl IntakeError {
    /// The operator's: the folder, file or flag they named.
    #[must_use]
    pub fn blame(&self) -> crate::blame::Blame {
        crate::blame::Blame::Operator
    }
}

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

    /// An archive is to be unpacked into `staging/NAME` when graded; a
    /// folder is used in place.
    fn into_submission(self, staging: &Path) -> Submission {
        if let Some(why) = self.bad_name {
            return Submission {
                refused: Some(why),
                ..Submission::folder(&self.name, PathBuf::new())
            };
        }
        if !self.archive {
            return Submission::folder(&self.name, self.source);
        }
        // The name is checked, so the target is a direct child of staging.
        Submission {
            archive: Some(self.source),
            ..Submission::folder(&self.name, staging.join(&self.name))
        }
    }
}

/// Refuses two entries that would be graded under one name.
fn refuse_duplicates(found: &[Found]) -> Result<(), IntakeError> {
    let mut seen: std::collections::BTreeMap<&str, &Path> = Default::default();
    for entry in found {
        if let Some(first) = seen.insert(&entry.name, &entry.source) {
            return Err(IntakeError::SameName {
                first: first.to_path_buf(),
                second: entry.source.clone(),
                name: entry.name.clone(),
            });
        }
    }
    Ok(())
}

/// Lists the submissions in `dir`, sorted by name, each archive to be
/// unpacked into `staging` when it is graded. An entry whose name cannot
/// be used is still listed with the reason, so it gets a result rather
/// than vanishing.
///
/// # Errors
/// When `dir` cannot be read, holds no submissions, or holds two that
/// would be graded under one name (`alice/` and `alice.zip`).
pub fn discover(dir: &Path, staging: &Path) -> Result<Vec<Submission>, IntakeError> {
    let read = std::fs::read_dir(dir).map_err(|source| IntakeError::Unreadable {
        dir: dir.to_path_buf(),
        source,
    })?;
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
        return Err(IntakeError::Empty(dir.to_path_buf()));
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    refuse_duplicates(&found)?;
    Ok(found
        .into_iter()
        .map(|f| f.into_submission(staging))
        .collect())
}

/// The one submission at `path`: a folder, or an archive to be unpacked
/// into `staging` when it is graded.
///
/// # Errors
/// When `path` is neither a folder nor a zip or tarball.
pub fn single(path: &Path, staging: &Path) -> Result<Submission, IntakeError> {
    let file_name = path.file_name().unwrap_or_default();
    let found = if path.is_dir() {
        Found::new(file_name, path.to_path_buf(), false)
    } else if let Some(stem) = archive_stem(file_name).filter(|_| path.is_file()) {
        Found::new(stem, path.to_path_buf(), true)
    } else {
        return Err(IntakeError::NotASubmission(path.to_path_buf()));
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
    let parsed = text
        .split_once('/')
        .and_then(|(k, n)| Some((k.parse::<u32>().ok()?, n.parse::<u32>().ok()?)));
    match parsed {
        Some((k, n)) if k >= 1 && k <= n => Ok((k, n)),
        _ => Err(IntakeError::BadShard(text.to_string())),
    }
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
        assert!(!found[1].dir.exists(), "unpacked before it is graded");
        unpack_into(found[1].archive.as_ref().unwrap(), &found[1].dir).unwrap();
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
    fn shards_partition_the_submissions() {
        let all: Vec<Submission> = (0..100)
            .map(|i| Submission::folder(&format!("s{i}"), PathBuf::new()))
            .collect();
        let mut seen: Vec<String> = (1..=3)
            .flat_map(|k| shard(all.clone(), k, 3))
            .map(|s| s.name)
            .collect();
        seen.sort();
        let mut names: Vec<String> = all.iter().map(|s| s.name.clone()).collect();
        names.sort();
        assert_eq!(seen, names, "every submission in exactly one shard");
        assert_eq!(parse_shard("2/8").ok(), Some((2, 8)));
        assert!(
            parse_shard("0/8").is_err() && parse_shard("9/8").is_err() && parse_shard("x").is_err()
        );
    }
}
