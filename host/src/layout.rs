//! Where things are, in one place: the sandbox's writable places, the
//! users that own them, the rules a path inside the sandbox must follow,
//! and the host-side file helpers every part of agh writes through (atomic
//! writes, hex digests). A leaf: it depends on nothing else in agh.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Uid (and gid) of the student user, who owns `/work`.
pub const STUDENT_UID: u32 = 1000;
/// Uid (and gid) of the grader user, who owns `/grader`.
pub const GRADER_UID: u32 = 1001;

/// Bounds on a submission's paths (see `agh-archive`), for every copy.
pub use agh_archive::{MAX_PATH_BYTES, MAX_PATH_DEPTH, check_path_shape};

/// A writable place inside every sandbox, each its own tmpfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The submission and what it builds; the student's.
    Work,
    /// Course files students may read, not change; root's.
    Assets,
    /// Files only the grader user may read.
    Grader,
    /// Scratch for everyone (sticky).
    Tmp,
}

impl Place {
    /// Every place, in the order the sandbox mounts them.
    pub const ALL: [Place; 4] = [Place::Work, Place::Assets, Place::Grader, Place::Tmp];

    /// Its absolute path in the sandbox.
    #[must_use]
    pub fn path(self) -> &'static str {
        match self {
            Place::Work => "/work",
            Place::Assets => "/assets",
            Place::Grader => "/grader",
            Place::Tmp => "/tmp",
        }
    }

    /// Owner uid and mode of the place itself; `None` owner for the shared
    /// `/tmp`, which is root's and sticky.
    #[must_use]
    pub fn owner_and_mode(self) -> (u32, &'static str) {
        match self {
            Place::Work => (STUDENT_UID, "0755"),
            Place::Assets => (0, "0755"),
            Place::Grader => (GRADER_UID, "0700"),
            Place::Tmp => (0, "1777"),
        }
    }

    /// The place `path` is in, if any.
    #[must_use]
    pub fn of(path: &str) -> Option<Place> {
        Place::ALL.into_iter().find(|place| {
            path == place.path()
                || path
                    .strip_prefix(place.path())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }
}

/// Who owns files placed in the sandbox, and so where they may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Owner {
    /// Root: course files under `/assets` that students read but cannot change.
    Root,
    /// The student: files under `/work` (the submission, scratch inputs).
    Student,
    /// The grader user: files under `/grader` that students cannot read.
    Grader,
}

impl Owner {
    /// Its uid, which is also its gid.
    #[must_use]
    pub fn uid(self) -> u32 {
        match self {
            Owner::Root => 0,
            Owner::Student => STUDENT_UID,
            Owner::Grader => GRADER_UID,
        }
    }

    /// The places this owner may put files in.
    #[must_use]
    pub fn places(self) -> &'static [Place] {
        match self {
            Owner::Root => &[Place::Assets],
            Owner::Student => &[Place::Work, Place::Tmp],
            Owner::Grader => &[Place::Grader, Place::Tmp],
        }
    }

    /// Who owns a file written at `path`: the owner of the place it is in
    /// (`/tmp` files are the student's).
    #[must_use]
    pub fn of_path(path: &str) -> Option<Owner> {
        Some(match Place::of(path)? {
            Place::Work | Place::Tmp => Owner::Student,
            Place::Grader => Owner::Grader,
            Place::Assets => Owner::Root,
        })
    }
}

/// Most places of its own a grader may declare.
pub const MAX_EXTRA_PLACES: usize = 4;

/// Top-level folders a grader's own place may never be: the system's, and
/// the standard places.
const SYSTEM_FOLDERS: [&str; 24] = [
    "bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "media", "mnt", "opt",
    "proc", "root", "run", "sbin", "srv", "sys", "usr", "var", "work", "assets", "grader", "tmp",
];

/// A writable place a grader declared besides the standard four (contract
/// 0.3.0), granted by the operator: its own tmpfs, empty in every fresh
/// sandbox, owned by `owner` with the mode of that user's standard place
/// ([`ExtraPlace::mode`]). Only commands write in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraPlace {
    /// Absolute path of one component, such as `/autograder`.
    pub path: String,
    /// The student or the grader user; never root.
    pub owner: Owner,
}

impl ExtraPlace {
    /// The place's mode: a grader's place is the grader's alone, as
    /// `/grader` is (0700: the student's processes cannot even read the
    /// tests and expected outputs kept there); a student's place is
    /// readable by all, as `/work` is (0755).
    #[must_use]
    pub fn mode(&self) -> &'static str {
        match self.owner {
            Owner::Grader => Place::Grader.owner_and_mode().1,
            Owner::Student | Owner::Root => Place::Work.owner_and_mode().1,
        }
    }
}

/// Checks the shape of a grader's own place: `/NAME`, NAME of 1 to 32
/// lower-case letters, digits, `-` or `_`, and not a system folder or a
/// standard place.
///
/// # Errors
/// A sentence saying what is wrong.
pub fn check_extra_place(path: &str) -> Result<(), String> {
    let name = path.strip_prefix('/').unwrap_or("");
    let shaped = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !shaped {
        return Err(format!(
            "place {path:?} must be one folder below / named with 1 to 32 lower-case letters, \
             digits, '-' or '_', such as /autograder"
        ));
    }
    if SYSTEM_FOLDERS.contains(&name) {
        return Err(format!(
            "place {path:?} is a system folder or one of agh's own places; choose another name"
        ));
    }
    Ok(())
}

/// A sandbox path that breaks the rules, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sandbox path {path:?} {why}; {owner:?} files go below {allowed}")]
pub struct PathRefused {
    path: String,
    why: &'static str,
    owner: Owner,
    allowed: String,
}

/// Checks a path inside the sandbox: absolute, no `.` or `..`, no empty or
/// NUL parts, and inside one of `owner`'s places. Returns the place's path
/// and the rest below it.
///
/// # Errors
/// [`PathRefused`] saying what is wrong and where `owner`'s files may go.
pub fn check_sandbox_path(path: &str, owner: Owner) -> Result<(&'static str, String), PathRefused> {
    let refuse = |why| PathRefused {
        path: path.into(),
        why,
        owner,
        allowed: owner
            .places()
            .iter()
            .map(|p| p.path())
            .collect::<Vec<_>>()
            .join(" or "),
    };
    if !path.starts_with('/') {
        return Err(refuse("is not absolute"));
    }
    if path.contains('\0')
        || path
            .split('/')
            .skip(1)
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(refuse("has an empty, '.', '..' or NUL part"));
    }
    match Place::of(path) {
        Some(place) if owner.places().contains(&place) => {
            let rest = path[place.path().len()..].trim_start_matches('/');
            Ok((place.path(), rest.to_string()))
        }
        _ => Err(refuse("is outside the places it may be written")),
    }
}

/// Writes `bytes` to `file` inside `dir` atomically: a temporary file in the
/// same folder, fsync'd, then renamed over the target, then the folder
/// fsync'd. A crash leaves the old file or the new one, never a part.
///
/// # Errors
/// The I/O error of the step that failed.
pub fn write_atomic(dir: &Path, file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(file).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Lower-case hex of `bytes`, as digests are shown and stored.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, b| {
            let _ = write!(text, "{b:02x}");
            text
        })
}

/// The bytes of the regular file `path`, opened as [`open_regular_file`]
/// opens it.
///
/// # Errors
/// As [`open_regular_file`], or a failed read.
pub fn read_regular_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut open_regular_file(path)?, &mut bytes)?;
    Ok(bytes)
}

/// Opens a host file for reading without following a symbolic link and
/// without blocking on a FIFO, and checks the opened file (never the path
/// before opening): a regular file with no other hard link, so a link
/// planted in a folder cannot make agh read a file from elsewhere.
///
/// # Errors
/// An I/O error saying what the file is when it is not a regular file.
pub fn open_regular_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    if meta.nlink() > 1 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{} has {} hard links; copy it instead of linking it",
                path.display(),
                meta.nlink()
            ),
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `scripts/setup` reads the sandbox users' ids from these two lines,
    /// with sed, so that it need not build agh first: they must keep the
    /// shape it reads (a plain decimal literal, one line each).
    #[test]
    fn the_user_ids_are_written_as_scripts_setup_reads_them() {
        let source = include_str!("layout.rs");
        for (name, id) in [("STUDENT_UID", STUDENT_UID), ("GRADER_UID", GRADER_UID)] {
            let line = format!("pub const {name}: u32 = {id};");
            assert_eq!(
                source.lines().filter(|l| *l == line).count(),
                1,
                "scripts/setup looks for the line `{line}`"
            );
        }
    }

    /// The places agh mounts are the ones the agent knows (plus `/dev/shm`,
    /// gVisor's own), and the student's and grader's writable ones are
    /// where the agent looks for a file cut short.
    #[test]
    fn the_places_agree_with_the_agents() {
        for place in Place::ALL {
            assert!(
                agh_protocol::TMPFS_PLACES.contains(&place.path()),
                "{place:?}"
            );
            let written = !Owner::Root.places().contains(&place);
            assert_eq!(
                agh_protocol::COMMAND_PLACES.contains(&place.path()),
                written,
                "{place:?}"
            );
        }
        assert_eq!(agh_protocol::TMPFS_PLACES.len(), Place::ALL.len() + 1);
    }

    #[test]
    fn paths_are_checked_against_the_owners_places() {
        assert_eq!(
            check_sandbox_path("/assets/tests/a.py", Owner::Root).unwrap(),
            ("/assets", "tests/a.py".into())
        );
        assert_eq!(
            check_sandbox_path("/work", Owner::Student).unwrap(),
            ("/work", String::new())
        );
        for bad in [
            "/assets/../etc/passwd",
            "assets/a",
            "/etc/passwd",
            "/assets//a",
            "/assetsx/a",
            "/work/./a",
        ] {
            let err = check_sandbox_path(bad, Owner::Root)
                .unwrap_err()
                .to_string();
            assert!(err.contains("/assets"), "{bad}: {err}");
        }
        assert!(check_sandbox_path("/grader/x", Owner::Student).is_err());
    }

    #[test]
    fn a_path_belongs_to_the_owner_of_its_place() {
        assert_eq!(Owner::of_path("/work/a"), Some(Owner::Student));
        assert_eq!(Owner::of_path("/tmp"), Some(Owner::Student));
        assert_eq!(Owner::of_path("/grader/t/x"), Some(Owner::Grader));
        assert_eq!(Owner::of_path("/assets/x"), Some(Owner::Root));
        assert_eq!(Owner::of_path("/workshop/x"), None);
        assert_eq!(Owner::of_path("/etc"), None);
    }

    #[test]
    fn a_graders_own_place_is_one_new_folder_below_the_root() {
        assert!(check_extra_place("/autograder").is_ok());
        assert!(check_extra_place("/my_place-2").is_ok());
        for bad in [
            "autograder",
            "/",
            "/etc",
            "/usr",
            "/work",
            "/tmp",
            "/proc",
            "/a/b",
            "/A",
            "/a.b",
            "/..",
            "/x\0",
            &format!("/{}", "a".repeat(33)),
        ] {
            assert!(check_extra_place(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hex_is_lower_case_and_two_digits_a_byte() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
