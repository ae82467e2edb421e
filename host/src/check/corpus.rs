//! agh's stock corpus of hostile submissions: what students do to a grader
//! instead of solving the exercise. Each is made from the author's best
//! sample, so it has the files the grader expects: the sample's source
//! files of the course's language are replaced by the attack, the rest is
//! kept as it is.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::sandbox::{EntrySource, HostTree, MAX_SUBMISSION_BYTES};

/// The language of a course's submissions, told by the best sample's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Language {
    /// `.c` files.
    C,
    /// `.py` files.
    Python,
    /// `.java` files.
    Java,
    /// None of these: only the attacks that need no program.
    Unknown,
}

impl Language {
    fn of(path: &str) -> Self {
        if path.ends_with(".c") {
            Language::C
        } else if path.ends_with(".py") {
            Language::Python
        } else if path.ends_with(".java") {
            Language::Java
        } else {
            Language::Unknown
        }
    }

    /// The name shown.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Language::C => "C",
            Language::Python => "Python",
            Language::Java => "Java",
            Language::Unknown => "no language agh knows",
        }
    }
}

/// A submission's files: path below it and bytes.
pub type Files = Vec<(String, Vec<u8>)>;

/// One hostile submission.
#[derive(Debug, Clone)]
pub struct Attack {
    /// Its name (`attack-NAME` in the output folders).
    pub name: &'static str,
    /// What it does, for the report.
    pub what: &'static str,
    /// Its files: path below the submission and bytes.
    pub files: Files,
}

/// The files of `base` (a folder), each with its bytes, and the language
/// of its source files.
///
/// # Errors
/// When `base` cannot be walked (a link, a special file, too large) or read.
pub fn read_base(base: &Path) -> Result<(Language, Files), String> {
    let tree = HostTree::walk(base, MAX_SUBMISSION_BYTES)
        .map_err(|e| format!("{}: {e}", base.display()))?;
    let mut files = Vec::new();
    for entry in tree.file_entries() {
        let bytes = match entry.source {
            Some(EntrySource::HostFile(path)) => crate::layout::read_regular_file(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?,
            Some(EntrySource::Bytes(bytes)) => bytes.to_vec(),
            None => continue,
        };
        files.push((entry.path, bytes));
    }
    let language = files
        .iter()
        .map(|(path, _)| Language::of(path))
        .find(|l| *l != Language::Unknown)
        .unwrap_or(Language::Unknown);
    Ok((language, files))
}

/// The stock attacks for `language`, made from the best sample's `files`;
/// `shown` is what that sample's program printed first, which a student
/// sees in a visible case's feedback.
#[must_use]
pub fn attacks(language: Language, files: &[(String, Vec<u8>)], shown: &[u8]) -> Vec<Attack> {
    let mut attacks = vec![Attack {
        name: "empty",
        what: "an empty submission",
        files: Vec::new(),
    }];
    if language == Language::Java {
        // A Java source is a class named after its file: each is replaced
        // by a class of its own name (and package) whose loading attacks,
        // so the attack runs whether the course runs a main or its tests
        // load the classes.
        for (name, what, body) in java_attacks(shown) {
            let files = files
                .iter()
                .map(|(path, bytes)| match java_class(path) {
                    Some(class) => (
                        path.clone(),
                        java_program(&java_package(bytes), class, &body).into_bytes(),
                    ),
                    None => (path.clone(), bytes.clone()),
                })
                .collect();
            attacks.push(Attack { name, what, files });
        }
        return attacks;
    }
    let programs: Vec<(&'static str, &'static str, String)> = match language {
        Language::C => c_programs(shown),
        Language::Python => python_programs(shown),
        Language::Java => Vec::new(),
        Language::Unknown => vec![
            (
                "syntax-error",
                "every file replaced by text that is no program",
                NOT_A_PROGRAM.into(),
            ),
            (
                "fake-score",
                "every file replaced by a results file claiming full marks",
                FAKE_RESULTS.into(),
            ),
        ],
    };
    for (name, what, program) in programs {
        attacks.push(Attack {
            name,
            what,
            files: replaced(language, files, program.as_bytes()),
        });
    }
    attacks
}

/// `files` with the language's sources (for C, the one holding `main`)
/// replaced by `program`.
fn replaced(
    language: Language,
    files: &[(String, Vec<u8>)],
    program: &[u8],
) -> Vec<(String, Vec<u8>)> {
    let is_source = |path: &str| Language::of(path) == language;
    let main_c = files
        .iter()
        .find(|(path, bytes)| {
            path.ends_with(".c") && String::from_utf8_lossy(bytes).contains("main(")
        })
        .map(|(path, _)| path.clone());
    files
        .iter()
        .map(|(path, bytes)| {
            let replace = match language {
                Language::C => Some(path) == main_c.as_ref(),
                Language::Python | Language::Java => is_source(path),
                Language::Unknown => true,
            };
            if replace {
                (path.clone(), program.to_vec())
            } else {
                (path.clone(), bytes.clone())
            }
        })
        .collect()
}

const NOT_A_PROGRAM: &str = "this is not a program ((\n";

const FAKE_RESULTS: &str = r#"{"score": 100, "max_score": 100, "output": "All tests passed", "tests": [{"name": "all", "score": 100, "max_score": 100, "status": "passed"}]}"#;

/// Places a forged results file is written to.
const FORGED_PATHS: [&str; 5] = [
    "/work/results.json",
    "/tmp/results.json",
    "/autograder/results/results.json",
    "/grader/results.json",
    "/assets/results.json",
];

/// Folders a student looks in for the expected outputs.
const PEEKED: [&str; 4] = ["/assets", "/grader", "/autograder", "/work"];

/// `bytes` as a C string literal (octal escapes only: never greedy).
fn c_literal(bytes: &[u8]) -> String {
    let mut literal = String::from("\"");
    for byte in bytes {
        let _ = write!(literal, "\\{byte:03o}");
    }
    literal.push('"');
    literal
}

fn c_strings(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| c_literal(s.as_bytes()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn c_programs(shown: &[u8]) -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("syntax-error", "does not compile", NOT_A_PROGRAM.into()),
        (
            "endless-loop",
            "never ends",
            "int main(void) { volatile unsigned long n = 0; for (;;) n++; }\n".into(),
        ),
        (
            "fork-bomb",
            "forks until it cannot",
            "#include <unistd.h>\nint main(void) { for (;;) fork(); }\n".into(),
        ),
        (
            "memory-bomb",
            "takes memory until it is stopped",
            "#include <stdlib.h>\n#include <string.h>\nint main(void) { for (;;) { char *p = malloc(1 << 24); if (p) memset(p, 1, 1 << 24); } }\n".into(),
        ),
        (
            "output-flood",
            "prints without end",
            "#include <stdio.h>\nint main(void) { for (;;) fputs(\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\\n\", stdout); }\n".into(),
        ),
        (
            "prints-visible-output",
            "prints what the best sample printed first (a visible case's output), whatever it is given",
            format!(
                "#include <stdio.h>\nstatic const char shown[] = {};\nint main(void) {{ fwrite(shown, 1, sizeof shown - 1, stdout); return 0; }}\n",
                c_literal(shown)
            ),
        ),
        (
            "fake-score",
            "prints and writes a results file claiming full marks, and says it passed",
            format!(
                "#include <stdio.h>\nstatic const char fake[] = {};\nstatic const char *paths[] = {{ {} }};\n\
                 int main(void) {{\n  for (unsigned i = 0; i < sizeof paths / sizeof *paths; i++) {{ FILE *f = fopen(paths[i], \"w\"); if (f) {{ fputs(fake, f); fclose(f); }} }}\n  \
                 puts(fake); puts(\"All tests passed\"); puts(\"OK\"); puts(\"PASS\"); puts(\"score: 100/100\");\n  return 0;\n}}\n",
                c_literal(FAKE_RESULTS.as_bytes()),
                c_strings(&FORGED_PATHS)
            ),
        ),
        (
            "reads-assets",
            "looks for its input among the files it can read and prints the file beside it",
            format!("{}{}", format_args!("static const char *roots[] = {{ {} }};\n", c_strings(&PEEKED)), C_PEEK),
        ),
    ]
}

/// Reads stdin, finds a readable file holding the same bytes below the
/// roots, and prints its siblings of the same stem (`01.in` → `01.out`);
/// with none found, prints every file it can read.
const C_PEEK: &str = r#"#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <string.h>
static char given[1 << 20], buf[1 << 20], found[4096], stem[4096];
static size_t given_len;
static int dump_all;
static size_t slurp(const char *path) { FILE *f = fopen(path, "rb"); if (!f) return (size_t)-1; size_t n = fread(buf, 1, sizeof buf, f); fclose(f); return n; }
static int seek(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st; (void)ftw;
  if (type != FTW_F || found[0]) return 0;
  size_t n = slurp(path);
  if (n != (size_t)-1 && n == given_len && memcmp(buf, given, n) == 0) strncpy(found, path, sizeof found - 1);
  return 0;
}
static int print(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st; (void)ftw;
  if (type != FTW_F || strcmp(path, found) == 0) return 0;
  if (!dump_all && strncmp(path, stem, strlen(stem)) != 0) return 0;
  size_t n = slurp(path);
  if (n != (size_t)-1) fwrite(buf, 1, n, stdout);
  return 0;
}
int main(void) {
  given_len = fread(given, 1, sizeof given, stdin);
  for (unsigned i = 0; i < sizeof roots / sizeof *roots; i++) nftw(roots[i], seek, 16, FTW_PHYS);
  if (found[0]) { strncpy(stem, found, sizeof stem - 1); char *dot = strrchr(stem, '.'); char *slash = strrchr(stem, '/'); if (dot && (!slash || dot > slash)) dot[1] = 0; }
  else dump_all = 1;
  for (unsigned i = 0; i < sizeof roots / sizeof *roots; i++) nftw(roots[i], print, 16, FTW_PHYS);
  return 0;
}
"#;

fn python_list(items: &[&str]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn python_programs(shown: &[u8]) -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("syntax-error", "does not parse", "def (:\n".into()),
        (
            "endless-loop",
            "never ends",
            "while True:\n    pass\n".into(),
        ),
        (
            "fork-bomb",
            "forks until it cannot",
            "import os\nwhile True:\n    os.fork()\n".into(),
        ),
        (
            "memory-bomb",
            "takes memory until it is stopped",
            "hog = []\nwhile True:\n    hog.append(b'x' * (1 << 24))\n".into(),
        ),
        (
            "output-flood",
            "prints without end",
            "while True:\n    print('A' * 1000)\n".into(),
        ),
        (
            "prints-visible-output",
            "prints what the best sample printed first (a visible case's output), whatever it is given",
            format!(
                "import sys\nsys.stdout.buffer.write(bytes.fromhex({:?}))\nsys.stdout.flush()\n",
                crate::layout::hex(shown)
            ),
        ),
        (
            "fake-score",
            "prints and writes a results file claiming full marks, and says it passed",
            format!(
                "FAKE = {FAKE_RESULTS:?}\nfor path in {}:\n    try:\n        with open(path, 'w') as f:\n            f.write(FAKE)\n    except OSError:\n        pass\n\
                 print(FAKE)\nprint('All tests passed')\nprint('OK')\nprint('PASS')\nprint('score: 100/100')\n",
                python_list(&FORGED_PATHS)
            ),
        ),
        (
            "reads-assets",
            "looks for its input among the files it can read and prints the file beside it",
            format!("ROOTS = {}\n{PYTHON_PEEK}", python_list(&PEEKED)),
        ),
        (
            "patches-unittest",
            "replaces unittest's assertions and test runs with ones that always pass, and exits 0 at the end",
            PYTHON_PATCH.into(),
        ),
        (
            "exits-early",
            "says OK and exits 0 before anything can test it",
            "import os\nprint('OK')\nos._exit(0)\n".into(),
        ),
    ]
}

const PYTHON_PEEK: &str = r#"import os, sys
given = sys.stdin.buffer.read()
files = []
for root in ROOTS:
    for folder, _, names in os.walk(root):
        files += [os.path.join(folder, n) for n in names]
def read(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError:
        return None
found = next((p for p in files if read(p) == given), None)
for path in files:
    if path == found:
        continue
    if found is None or os.path.splitext(path)[0] == os.path.splitext(found)[0]:
        sys.stdout.buffer.write(read(path) or b'')
"#;

const PYTHON_PATCH: &str = r#"import atexit, os, sys, unittest
def _passes(*args, **kwargs):
    return None
for _name in dir(unittest.TestCase):
    if _name.startswith('assert') or _name in ('fail', 'skipTest'):
        setattr(unittest.TestCase, _name, _passes)
def _run_passing(self, result=None):
    if result is not None:
        result.startTest(self)
        result.addSuccess(self)
        result.stopTest(self)
    return result
unittest.TestCase.run = _run_passing
unittest.TestResult.wasSuccessful = lambda self: True
def _exit_zero():
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
atexit.register(_exit_zero)
"#;

/// The class a `.java` file must hold: its file name's stem.
fn java_class(path: &str) -> Option<&str> {
    let stem = path.rsplit('/').next()?.strip_suffix(".java")?;
    let identifier = stem
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    identifier.then_some(stem)
}

/// The `package` line of a Java source, if it has one.
fn java_package(source: &[u8]) -> String {
    String::from_utf8_lossy(source)
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("package ") && line.ends_with(';'))
        .map(|line| format!("{line}\n"))
        .unwrap_or_default()
}

/// `text` as a Java string literal.
fn java_literal(text: &str) -> String {
    let mut literal = String::from("\"");
    for unit in text.encode_utf16() {
        match unit {
            0x22 => literal.push_str("\\\""),
            0x5c => literal.push_str("\\\\"),
            0x20..=0x7e => literal.push(char::from(u8::try_from(unit).unwrap_or(b'?'))),
            _ => {
                let _ = write!(literal, "\\u{unit:04x}");
            }
        }
    }
    literal.push('"');
    literal
}

/// A class `class` whose static initializer is `body`: it runs when the
/// class is first used, by `main` or by a test.
fn java_program(package: &str, class: &str, body: &str) -> String {
    if body.is_empty() {
        return NOT_A_PROGRAM.into();
    }
    format!(
        "{package}public class {class} {{\n  static volatile boolean on = true;\n  static {{\n{body}\n  }}\n  public static void main(String[] args) {{}}\n}}\n"
    )
}

/// Java's attacks: name, what it does, and the static initializer's body
/// (empty for the source that is no program at all).
fn java_attacks(shown: &[u8]) -> Vec<(&'static str, &'static str, String)> {
    let paths = FORGED_PATHS
        .iter()
        .map(|p| java_literal(p))
        .collect::<Vec<_>>()
        .join(", ");
    let roots = PEEKED
        .iter()
        .map(|p| java_literal(p))
        .collect::<Vec<_>>()
        .join(", ");
    let shown_bytes = shown
        .iter()
        .map(|b| format!("(byte) {b}"))
        .collect::<Vec<_>>()
        .join(", ");
    vec![
        ("syntax-error", "does not compile", String::new()),
        ("endless-loop", "never ends", "    while (on) {}".into()),
        (
            "thread-bomb",
            "starts threads until it cannot, each spinning",
            "    while (on) {\n      try { new Thread(() -> { while (on) {} }).start(); } catch (Throwable t) {}\n    }".into(),
        ),
        (
            "memory-bomb",
            "takes memory until it is stopped",
            "    java.util.List<byte[]> hog = new java.util.ArrayList<>();\n    while (on) hog.add(new byte[1 << 24]);".into(),
        ),
        (
            "output-flood",
            "prints without end",
            "    String line = \"A\".repeat(1000);\n    while (on) System.out.println(line);".into(),
        ),
        (
            "prints-visible-output",
            "prints what the best sample printed first (a visible case's output), whatever it is given",
            format!("    byte[] shown = {{ {shown_bytes} }};\n    System.out.write(shown, 0, shown.length);\n    System.out.flush();"),
        ),
        (
            "fake-score",
            "prints and writes a results file claiming full marks, and says it passed",
            format!(
                "    String fake = {};\n    for (String path : new String[] {{ {paths} }}) {{\n      try {{ java.nio.file.Files.writeString(java.nio.file.Path.of(path), fake); }} catch (Exception e) {{}}\n    }}\n    System.out.println(fake);\n    System.out.println(\"All tests passed\");\n    System.out.println(\"OK\");\n    System.out.println(\"score: 100/100\");",
                java_literal(FAKE_RESULTS)
            ),
        ),
        (
            "reads-assets",
            "looks for its input among the files it can read and prints the file beside it",
            format!("    String[] roots = {{ {roots} }};\n{JAVA_PEEK}"),
        ),
        (
            "exits-early",
            "says OK and exits 0 as soon as it is loaded, before a test can finish",
            "    System.out.println(\"OK\");\n    System.exit(0);".into(),
        ),
    ]
}

/// As the C and Python peeks: finds a readable file holding what stdin
/// gave and prints the files of the same stem beside it (every readable
/// file when none is found).
const JAVA_PEEK: &str = r#"    try {
      byte[] given = System.in.readAllBytes();
      java.util.List<java.nio.file.Path> files = new java.util.ArrayList<>();
      for (String root : roots) {
        try (var walk = java.nio.file.Files.walk(java.nio.file.Path.of(root))) {
          walk.filter(java.nio.file.Files::isRegularFile).forEach(files::add);
        } catch (Exception e) {}
      }
      java.nio.file.Path found = null;
      for (var path : files) {
        try { if (java.util.Arrays.equals(java.nio.file.Files.readAllBytes(path), given)) { found = path; break; } } catch (Exception e) {}
      }
      String stem = found == null ? null : found.toString().replaceAll("\\.[^./]*$", "");
      for (var path : files) {
        if (path.equals(found)) continue;
        if (stem != null && !path.toString().replaceAll("\\.[^./]*$", "").equals(stem)) continue;
        try { System.out.write(java.nio.file.Files.readAllBytes(path)); } catch (Exception e) {}
      }
      System.out.flush();
    } catch (Exception e) {}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_c_literal_keeps_every_byte() {
        assert_eq!(c_literal(b"a\"\n\x00"), "\"\\141\\042\\012\\000\"");
    }

    #[test]
    fn attacks_replace_the_sources_and_keep_the_rest() {
        let files = vec![
            (
                "main.c".to_string(),
                b"int main(void) { return 0; }".to_vec(),
            ),
            (
                "util.c".to_string(),
                b"int util(void) { return 1; }".to_vec(),
            ),
            ("README".to_string(), b"notes".to_vec()),
        ];
        let attacks = attacks(Language::C, &files, b"42\n");
        let flood = attacks
            .iter()
            .find(|a| a.name == "output-flood")
            .expect("flood");
        assert!(String::from_utf8_lossy(&flood.files[0].1).contains("fputs"));
        assert_eq!(flood.files[1], files[1]);
        assert_eq!(flood.files[2], files[2]);
        let shown = attacks
            .iter()
            .find(|a| a.name == "prints-visible-output")
            .expect("shown");
        assert!(String::from_utf8_lossy(&shown.files[0].1).contains("\\064\\062\\012"));
        assert!(
            attacks
                .iter()
                .any(|a| a.name == "empty" && a.files.is_empty())
        );
    }

    #[test]
    fn java_attacks_keep_each_class_and_package_and_the_rest() {
        let files = vec![
            (
                "src/Main.java".to_string(),
                b"package course.io;\npublic class Main { public static void main(String[] a) {} }"
                    .to_vec(),
            ),
            ("Helper.java".to_string(), b"class Helper {}".to_vec()),
            ("notes.txt".to_string(), b"notes".to_vec()),
        ];
        let attacks = attacks(Language::Java, &files, b"4 2\n");
        let names: Vec<&str> = attacks.iter().map(|a| a.name).collect();
        assert!(
            names.contains(&"exits-early") && names.contains(&"thread-bomb"),
            "{names:?}"
        );
        let early = attacks
            .iter()
            .find(|a| a.name == "exits-early")
            .expect("early");
        let main = String::from_utf8_lossy(&early.files[0].1);
        assert!(
            main.starts_with("package course.io;\npublic class Main {"),
            "{main}"
        );
        assert!(main.contains("System.exit(0)"), "{main}");
        let helper = String::from_utf8_lossy(&early.files[1].1);
        assert!(helper.starts_with("public class Helper {"), "{helper}");
        assert_eq!(early.files[2], files[2]);
        let shown = attacks
            .iter()
            .find(|a| a.name == "prints-visible-output")
            .expect("shown");
        assert!(
            String::from_utf8_lossy(&shown.files[0].1)
                .contains("(byte) 52, (byte) 32, (byte) 50, (byte) 10")
        );
        assert_eq!(java_literal("a\"\\\n\u{e9}"), "\"a\\\"\\\\\\u000a\\u00e9\"");
        assert_eq!(java_class("x/My-Class.java"), None);
    }
}
