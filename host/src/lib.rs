//! agh: a grading host. Course graders are WebAssembly components; student
//! code runs only inside gVisor Docker sandboxes that this library creates,
//! limits and tears down.
//!
//! The `agh` binary (`main.rs` and `cli/`) is a thin command line over this
//! library; nothing here depends on its argument parser or progress bars.

pub mod assets;
pub mod batch;
pub mod blame;
pub mod check;
pub mod config;
pub mod doctor;
pub mod grading;
pub mod layout;
pub mod names;
pub mod plugin;
pub mod policy;
pub mod private_dir;
pub mod report;
pub mod sandbox;
pub mod scaffold;
pub mod service;
pub mod transcript;

/// The version of agh, recorded in every result.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod tests {
    /// Every `pub const MAX_*` of agh's crates is in `docs/bounds.md`, so a
    /// new bound cannot go unlisted.
    #[test]
    fn bounds_table_lists_every_bound() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the repository");
        let table = std::fs::read_to_string(root.join("docs/bounds.md")).expect("docs/bounds.md");
        let mut found = Vec::new();
        let mut folders: Vec<std::path::PathBuf> =
            ["host/src", "archive/src", "protocol/src", "agent/src"]
                .iter()
                .map(|f| root.join(f))
                .collect();
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).expect("source folder").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    folders.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let source = std::fs::read_to_string(&path).expect("source");
                    for line in source.lines() {
                        if let Some(rest) = line.trim_start().strip_prefix("pub const MAX_") {
                            let name: String = rest
                                .chars()
                                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                                .collect();
                            found.push(format!("MAX_{name}"));
                        }
                    }
                }
            }
        }
        assert!(
            found.len() >= 30,
            "only {} bounds found: {found:?}",
            found.len()
        );
        let missing: Vec<&String> = found
            .iter()
            .filter(|name| !table.contains(&format!("`{name}`")))
            .collect();
        assert!(missing.is_empty(), "not in docs/bounds.md: {missing:?}");
    }
}
