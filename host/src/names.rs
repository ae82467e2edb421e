//! The one place that decides whether a name agh did not choose may become
//! a file name: submission folders, archive stems, result names read back
//! from an output folder. Every such name passes [`check_name`] before it
//! is joined to a path, so `..`, `.`, an empty name, a separator or a
//! control character never reaches the file system.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Longest name in bytes: room for a student id and a suffix, well under
/// the 255 bytes a file name may have once `.json` is added.
pub const MAX_NAME_BYTES: usize = 100;

/// Why a name cannot be used as a file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not valid UTF-8.
    #[error("is not valid UTF-8")]
    NotUtf8,
    /// Empty, `.` or `..` (for an archive, once its extension is removed).
    #[error("is empty, `.` or `..`")]
    Dots,
    /// Starts with a dot, where agh keeps its own files.
    #[error("starts with a dot")]
    Hidden,
    /// Holds `/` or `\`.
    #[error("holds a path separator")]
    Separator,
    /// Holds a control character (a terminal escape, a NUL, a newline).
    #[error("holds a control character")]
    Control,
    /// Longer than [`MAX_NAME_BYTES`].
    #[error("is {0} bytes long; at most {MAX_NAME_BYTES}")]
    TooLong(usize),
}

/// Checks that `name` can name one file or folder inside a folder of agh's.
///
/// # Errors
/// The rule the name breaks.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(NameError::Dots);
    }
    if name.starts_with('.') {
        return Err(NameError::Hidden);
    }
    if name.contains(['/', '\\']) {
        return Err(NameError::Separator);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong(name.len()));
    }
    Ok(())
}

/// `name` as UTF-8 once [`check_name`] accepts it.
///
/// # Errors
/// The rule the name breaks.
pub fn checked_name(name: &OsStr) -> Result<String, NameError> {
    let name = name.to_str().ok_or(NameError::NotUtf8)?;
    check_name(name)?;
    Ok(name.to_string())
}

/// `dir/name` for a checked `name`.
///
/// # Errors
/// The rule the name breaks.
pub fn child(dir: &Path, name: &str) -> Result<PathBuf, NameError> {
    check_name(name)?;
    Ok(dir.join(name))
}

/// A name agh can use for a submission whose own name it refused: stable
/// for the same raw bytes, so a resumed batch finds its result again.
#[must_use]
pub fn stand_in_name(raw: &OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    let digest = Sha256::digest(raw.as_bytes());
    format!("unnamed-{}", crate::layout::hex(&digest[..6]))
}

/// `name` for showing on a terminal: control characters (escape sequences
/// among them) are escaped, so a name cannot move the cursor, forge a line
/// or change the terminal's title.
#[must_use]
pub fn for_terminal(name: &str) -> std::borrow::Cow<'_, str> {
    if name.chars().any(char::is_control) {
        std::borrow::Cow::Owned(name.chars().flat_map(char::escape_default).collect())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_leave_or_hide_in_a_folder_are_refused() {
        for (name, why) in [
            ("", NameError::Dots),
            (".", NameError::Dots),
            ("..", NameError::Dots),
            (".staging", NameError::Hidden),
            ("a/b", NameError::Separator),
            ("a\\b", NameError::Separator),
            ("graded \u{1b}[2K", NameError::Control),
            ("new\nline", NameError::Control),
            ("nul\0", NameError::Control),
        ] {
            assert_eq!(check_name(name), Err(why), "{name:?}");
        }
        assert_eq!(check_name(&"x".repeat(101)), Err(NameError::TooLong(101)));
        for good in [
            "alice",
            "bob smith",
            "s-123_x.v2",
            "élève",
            &"x".repeat(100),
        ] {
            assert_eq!(check_name(good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn stand_in_names_are_stable_and_valid() {
        let a = stand_in_name(OsStr::new(".."));
        assert_eq!(a, stand_in_name(OsStr::new("..")));
        assert_ne!(a, stand_in_name(OsStr::new(".")));
        assert_eq!(check_name(&a), Ok(()));
    }

    #[test]
    fn terminal_text_has_no_escapes() {
        assert_eq!(for_terminal("alice"), "alice");
        assert_eq!(for_terminal("a\u{1b}]0;x\u{7}"), "a\\u{1b}]0;x\\u{7}");
    }
}
