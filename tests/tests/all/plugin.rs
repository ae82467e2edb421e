//! Misbehaving graders: each bad mode is a plugin-error for its submission
//! only, with a clear reason, and the next submission grades normally.

use std::path::{Path, PathBuf};

use agh::batch::{self, Batch, BatchError};
use agh::config::{Config, OnExcess};
use agh::grading;
use agh::plugin::{PluginError, PluginHost};
use agh::policy::Budget;
use agh::report::Status;
use agh_tests::graders;

use crate::support;

/// Grade-time modes of the misbehaving grader and a phrase of the reason.
pub(crate) const GRADE_MODES: [(&str, &str); 17] = [
    ("loop", "ran out of fuel"),
    ("allocate", "memory"),
    ("recurse", "stack"),
    ("panic", "panicked on purpose"),
    ("unreachable", "unreachable"),
    ("nan-score", "score NaN"),
    ("negative-score", "not within"),
    ("above-max", "not within"),
    ("infinite-max", "max score inf"),
    ("million-tests", "at most 1000"),
    ("duplicate-names", "appears twice"),
    ("bad-path", "refused"),
    ("host-path", "refused"),
    ("undeclared-asset", "was not declared"),
    ("call-flood", "more than 100000 host calls"),
    ("log-flood", "more than 100000 host calls"),
    ("wasi-escape", "no host access through WASI"),
];

fn submission(root: &Path, name: &str, mode: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("mode.txt"), mode).expect("write mode");
    dir
}

fn config_with_mode(mode: &str) -> Config {
    let mut config = Config::default();
    config.settings.insert("mode".into(), mode.into());
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_mode_fails_only_its_own_submission() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = support::batch_id("misbehaving");
    let batch = Batch::prepare(
        Path::new(graders::MISBEHAVING),
        Config::default(),
        id.clone(),
    )
    .await
    .expect("preparing the batch");
    let mut problems = Vec::new();
    for (i, (mode, reason)) in GRADE_MODES.iter().enumerate() {
        let bad = batch
            .grade_submission(&submission(dir.path(), &format!("{i:02}-{mode}"), mode))
            .await;
        let error = bad.error.clone().unwrap_or_default();
        if bad.status != Status::PluginError
            || !error.contains(reason)
            || bad.score != 0.0
            || !bad.tests.is_empty()
        {
            problems.push(format!(
                "{mode}: expected plugin-error with {reason:?}, got {:?}: {error}",
                bad.status
            ));
        }
        let good = batch
            .grade_submission(&submission(
                dir.path(),
                &format!("{i:02}-ok-after-{mode}"),
                "ok",
            ))
            .await;
        if good.status != Status::Graded || good.score != 1.0 {
            problems.push(format!(
                "the submission after {mode} did not grade normally: {:?} {:?}",
                good.status, good.error
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    support::assert_no_leftovers(&support::docker().await, &id).await;
}

/// Feedback is often what a student printed, so its size is the student's:
/// 16 MiB of it is clipped by the host to the cap and graded, never turned
/// into a plugin-error (all three `agh new` templates put the student's
/// whole stderr into feedback).
#[tokio::test]
async fn feedback_past_the_cap_is_clipped_and_graded_not_refused() {
    let result = grade_mode("huge-output", &[], &[]).await;
    assert_eq!(result.status, Status::Graded, "{:?}", result.error);
    assert_eq!(result.score, 1.0);
    let feedback = &result.tests[0].output;
    assert!(feedback.len() <= 64 * 1024, "{} bytes", feedback.len());
    assert!(
        feedback.ends_with("more bytes not shown]"),
        "{:?}",
        &feedback[feedback.len() - 80..]
    );
}

#[tokio::test]
async fn the_batch_stops_after_plugin_errors_in_a_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dirs: Vec<batch::Submission> = (0..8)
        .map(|i| {
            batch::Submission::folder(
                &format!("{i}"),
                submission(dir.path(), &format!("{i}"), "panic"),
            )
        })
        .collect();
    let id = support::batch_id("stop");
    let batch = Batch::prepare(
        Path::new(graders::MISBEHAVING),
        Config::default(),
        id.clone(),
    )
    .await
    .expect("prepare");
    let mut seen = 0;
    batch
        .grade_all(dirs, 1, |r| {
            assert_eq!(r.status, Status::PluginError);
            seen += 1;
        })
        .await;
    assert!(batch.stopped(), "the batch went on");
    assert_eq!(
        seen,
        batch::MAX_CONSECUTIVE_PLUGIN_ERRORS,
        "graded past the stop"
    );
    support::assert_no_leftovers(&support::docker().await, &id).await;
}

/// The same run of plugin errors from the start does not stop a batch
/// whose operator names a reference submission that the grader grades: the
/// grader works, the failures were the submissions', all of them get a
/// result.
#[tokio::test]
async fn plugin_errors_from_the_start_do_not_stop_a_batch_whose_reference_grades() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hostile = 2 * batch::MAX_CONSECUTIVE_PLUGIN_ERRORS;
    let dirs: Vec<batch::Submission> = (0..hostile)
        .map(|i| {
            batch::Submission::folder(
                &format!("000-{i}"),
                submission(dir.path(), &format!("000-{i}"), "panic"),
            )
        })
        .collect();
    let config = Config {
        reference: Some(submission(dir.path(), "reference", "ok")),
        ..Config::default()
    };
    let id = support::batch_id("reference");
    let batch = Batch::prepare(Path::new(graders::MISBEHAVING), config, id.clone())
        .await
        .expect("prepare");
    let mut seen = 0;
    batch
        .grade_all(dirs, 1, |r| {
            assert_eq!(r.status, Status::PluginError);
            seen += 1;
        })
        .await;
    assert!(
        !batch.stopped(),
        "the batch stopped though its reference grades"
    );
    assert_eq!(seen, hostile, "every submission gets a result");
    support::assert_no_leftovers(&support::docker().await, &id).await;
}

/// Once the grader has graded a submission it works: any number of hostile
/// submissions after it that make it fail are recorded as plugin errors
/// (never charged) and the batch goes on to the honest ones behind them.
#[tokio::test]
async fn hostile_submissions_in_a_row_do_not_stop_a_working_grader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hostile = 3 * batch::MAX_CONSECUTIVE_PLUGIN_ERRORS;
    let mut dirs = vec![batch::Submission::folder(
        "00-honest",
        submission(dir.path(), "00-honest", "ok"),
    )];
    dirs.extend((1..=hostile).map(|i| {
        batch::Submission::folder(
            &format!("{i:02}-hostile"),
            submission(dir.path(), &format!("{i:02}-hostile"), "panic"),
        )
    }));
    dirs.push(batch::Submission::folder(
        "99-honest",
        submission(dir.path(), "99-honest", "ok"),
    ));
    let id = support::batch_id("no-stop");
    let batch = Batch::prepare(
        Path::new(graders::MISBEHAVING),
        Config::default(),
        id.clone(),
    )
    .await
    .expect("prepare");
    let mut statuses = std::collections::BTreeMap::new();
    batch
        .grade_all(dirs, 1, |r| {
            statuses.insert(r.submission.clone(), r.status);
        })
        .await;
    assert!(
        !batch.stopped(),
        "{hostile} hostile submissions stopped the batch"
    );
    assert_eq!(statuses.len(), hostile + 2, "{statuses:?}");
    assert_eq!(statuses["99-honest"], Status::Graded, "{statuses:?}");
    assert_eq!(
        statuses
            .values()
            .filter(|s| **s == Status::PluginError)
            .count(),
        hostile
    );
    support::assert_no_leftovers(&support::docker().await, &id).await;
}

#[tokio::test]
async fn describe_time_misbehaviour_is_refused_before_any_sandbox() {
    let plugin = Path::new(graders::MISBEHAVING);
    let cases: [(&str, bool, &str); 6] = [
        (
            "wrong-api-version",
            false,
            "built for API version \"9.0.0\"",
        ),
        ("zero-limits", true, "a process limit of 0"),
        ("ungranted-image", true, "is not granted"),
        (
            "ungranted-asset",
            true,
            "source \"elsewhere\" is not granted",
        ),
        ("above-ceilings", true, "above the ceiling"),
        ("describe-loop", false, "ran out of fuel"),
    ];
    for (mode, is_policy, phrase) in cases {
        let mut config = config_with_mode(mode);
        config.on_excess = OnExcess::Refuse;
        let err = match grading::plan(plugin, &config).await {
            Ok(_) => panic!("{mode}: the plan was accepted"),
            Err(err) => err,
        };
        assert_eq!(
            matches!(err, BatchError::Policy(_)),
            is_policy,
            "{mode}: {err}"
        );
        assert!(err.to_string().contains(phrase), "{mode}: {err}");
    }
    // Clamping instead of refusing lowers the request to the ceiling, never widens it.
    let config = config_with_mode("above-ceilings");
    let plan = grading::plan(plugin, &config).await.expect("clamped plan");
    assert_eq!(
        plan.effective.limits.memory_bytes,
        config.ceilings.memory_bytes
    );
    assert_eq!(plan.effective.limits.wall_time, config.ceilings.wall_time);
    assert_eq!(
        plan.effective.clamped.len(),
        2,
        "{:?}",
        plan.effective.clamped
    );
}

#[test]
fn bad_components_are_refused_with_what_to_do() {
    let host = PluginHost::new(None).expect("engine");
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm this is not wasm").expect("write");
    let err = host.load(&garbage).err().expect("garbage loaded");
    assert!(
        err.to_string()
            .contains("not a valid WebAssembly component"),
        "{err}"
    );
    let err = host
        .load(Path::new(graders::NOT_A_GRADER))
        .err()
        .expect("a CLI program loaded as a grader");
    assert!(err.to_string().contains("it is not an agh grader"), "{err}");
    let err = host
        .load(&dir.path().join("missing.wasm"))
        .err()
        .expect("a missing file loaded");
    assert!(
        matches!(err, PluginError::Load { .. }) && err.to_string().contains("cannot read it"),
        "{err}"
    );
}

#[test]
fn compiled_components_are_cached_and_reused() {
    let cache = tempfile::tempdir().expect("tempdir");
    let host = PluginHost::new(Some(cache.path().to_path_buf())).expect("engine");
    let first = host.load(Path::new(graders::C_IO)).expect("first load");
    assert!(!first.load_stats().cached);
    let second = host.load(Path::new(graders::C_IO)).expect("second load");
    assert!(second.load_stats().cached, "the second load compiled again");
    assert_eq!(first.sha256(), second.sha256());
    let files: Vec<_> = std::fs::read_dir(cache.path().join("compiled-v4"))
        .expect("cache dir")
        .collect();
    assert_eq!(files.len(), 1, "one compiled file per component and engine");
}

/// How much of a compilation `load` reported reusing.
fn load_reusing(host: &PluginHost, path: &str) -> agh::plugin::Reuse {
    let mut reuse = None;
    host.load_noting(Path::new(path), &mut |notice| {
        if let agh::plugin::LoadNotice::Compiled { reuse: r, .. } = notice {
            reuse = Some(r);
        }
    })
    .expect("load");
    reuse.expect("the component was compiled, not served whole from the cache")
}

/// A component compiled again (a rebuilt grader is a new component whose
/// functions are mostly the old one's) reuses the machine code of its
/// unchanged functions from the signed incremental pack; a pack with one
/// byte changed is not used at all, and the grader still loads.
#[tokio::test]
async fn a_recompiled_grader_reuses_its_functions_but_never_from_a_tampered_pack() {
    let cache = tempfile::tempdir().expect("tempdir");
    let host = PluginHost::new(Some(cache.path().to_path_buf())).expect("engine");
    let cold = load_reusing(&host, graders::C_IO);
    assert_eq!(cold.reused, 0, "{cold:?}");
    assert!(cold.compiled > 100, "{cold:?}");

    std::fs::remove_file(compiled_entry(cache.path())).expect("forget the whole component");
    let warm = load_reusing(&host, graders::C_IO);
    assert!(
        warm.reused > 0 && warm.reused >= warm.compiled * 5,
        "the unchanged functions were compiled again: {warm:?} after {cold:?}"
    );

    let pack = cache.path().join("incremental-v1/pack");
    let mut bytes = std::fs::read(&pack).expect("the pack");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&pack, &bytes).expect("tamper");
    std::fs::remove_file(compiled_entry(cache.path())).expect("forget the whole component");
    let after_tampering = load_reusing(&host, graders::C_IO);
    assert_eq!(
        after_tampering.reused, 0,
        "machine code from a tampered pack was used: {after_tampering:?}"
    );
    let loaded = host.load(Path::new(graders::C_IO)).expect("load");
    assert_eq!(name_of(&loaded).await, "c-io");
}

async fn name_of(grader: &agh::plugin::Grader) -> String {
    grader
        .describe(&[], Budget::CEILING)
        .await
        .expect("describe")
        .name
}

/// The one compiled entry in `cache`.
fn compiled_entry(cache: &Path) -> std::path::PathBuf {
    let mut entries: Vec<_> = std::fs::read_dir(cache.join("compiled-v4"))
        .expect("cache dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.pop().expect("entry")
}

/// A cached compiled component replaced by another (validly compiled, from
/// another cache), one owned by another user, and one that is a link: each
/// is refused and the genuine grader compiled afresh, so no native code
/// from an unverified file ever runs.
#[tokio::test]
async fn tampered_or_foreign_compiled_cache_entries_are_never_loaded() {
    let cache = tempfile::tempdir().expect("tempdir");
    let host = PluginHost::new(Some(cache.path().to_path_buf())).expect("engine");
    host.load(Path::new(graders::C_IO)).expect("first load");
    let entry = compiled_entry(cache.path());
    // The attacker's code: another grader, compiled by another agh's cache.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let other_host = PluginHost::new(Some(elsewhere.path().to_path_buf())).expect("engine");
    other_host
        .load(Path::new(graders::MISBEHAVING))
        .expect("other grader");
    let planted = std::fs::read(compiled_entry(elsewhere.path())).expect("planted");

    std::fs::write(&entry, &planted).expect("tamper");
    let loaded = host
        .load(Path::new(graders::C_IO))
        .expect("load after tampering");
    assert!(!loaded.load_stats().cached, "a replaced entry was loaded");
    assert_eq!(name_of(&loaded).await, "c-io");

    std::os::unix::fs::chown(&entry, Some(4242), Some(4242)).expect("chown");
    let loaded = host
        .load(Path::new(graders::C_IO))
        .expect("load with a foreign entry");
    assert!(
        !loaded.load_stats().cached,
        "an entry of another user was loaded"
    );
    assert_eq!(name_of(&loaded).await, "c-io");

    let decoy = cache.path().join("decoy.cwasm");
    std::fs::rename(&entry, &decoy).expect("move");
    std::os::unix::fs::symlink(&decoy, &entry).expect("link");
    let loaded = host
        .load(Path::new(graders::C_IO))
        .expect("load with a linked entry");
    assert!(!loaded.load_stats().cached, "a linked entry was followed");
    assert!(
        !entry.is_symlink(),
        "the link was replaced by a genuine entry"
    );
}

/// A cache folder that another user created first (or that anyone may
/// write) is refused with what to do, and nothing in it is used.
#[test]
fn a_cache_folder_of_another_user_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).expect("mkdir");
    std::os::unix::fs::chown(&cache, Some(4242), Some(4242)).expect("chown");
    let host = PluginHost::new(Some(cache.clone())).expect("engine");
    let err = host
        .load(Path::new(graders::C_IO))
        .err()
        .expect("loaded from a foreign cache");
    let text = err.to_string();
    assert!(
        text.contains("belongs to uid 4242") && text.contains("AGH_CACHE_DIR"),
        "{text}"
    );
}

/// Grades one submission of the misbehaving grader in `mode` under
/// `settings`, with `extra` folders in the submission.
async fn grade_mode(
    mode: &str,
    settings: &[(&str, &str)],
    extra: &[&str],
) -> agh::report::SubmissionResult {
    grade_mode_under(Config::default(), mode, settings, extra).await
}

/// [`grade_mode`] under the operator's `config`.
async fn grade_mode_under(
    mut config: Config,
    mode: &str,
    settings: &[(&str, &str)],
    extra: &[&str],
) -> agh::report::SubmissionResult {
    let dir = tempfile::tempdir().expect("tempdir");
    let submission = submission(dir.path(), mode, &format!("{mode}\n"));
    for folder in extra {
        std::fs::create_dir_all(submission.join(folder)).expect("mkdir");
        std::fs::write(submission.join(folder).join("keep"), "x").expect("write");
    }
    for (key, value) in settings {
        config.settings.insert((*key).into(), (*value).into());
    }
    let id = support::batch_id(mode);
    let batch = Batch::prepare(Path::new(graders::MISBEHAVING), config, id.clone())
        .await
        .expect("prepare");
    let result = batch.grade_submission(&submission).await;
    support::assert_no_leftovers(&support::docker().await, &id).await;
    result
}

fn assert_full_marks(result: &agh::report::SubmissionResult) {
    assert_eq!(result.status, Status::Graded, "{:?}", result.error);
    assert!(
        result.score == result.max_score && result.max_score > 0.0,
        "{:?}",
        result.tests
    );
}

/// Contract 0.2.0: after a command brings the sandbox down, `reset` gives a
/// fresh one holding the pristine submission and nothing built before.
#[tokio::test]
async fn sandbox_reset_gives_a_fresh_sandbox_with_the_pristine_submission() {
    assert_full_marks(&grade_mode("reset", &[], &[]).await);
}

/// Contract 0.2.0: a command may ask for longer than the sandbox's default
/// deadline, up to the operator's ceiling; one that does not ask gets the
/// default.
#[tokio::test]
async fn a_command_may_ask_for_a_deadline_past_the_default() {
    assert_full_marks(&grade_mode("long-command", &[("wall_time_ms", "1000")], &[]).await);
}

/// Time in the student's commands is the student's: a grader whose two
/// commands take about 5 s in all, under a declared wall budget of 2 s,
/// is not out of time (it was a plugin error: cases x deadline past the
/// declared budget, a program that waits out every case).
#[tokio::test]
async fn time_in_the_students_commands_is_not_the_graders_budget() {
    let result = grade_mode(
        "long-command",
        &[("wall_time_ms", "1000"), ("grader_wall_ms", "2000")],
        &[],
    )
    .await;
    assert_full_marks(&result);
}

/// The operator's per-submission bound on command time ends what is left
/// as time-limit, scored: the first command is cut at the bound, the
/// second does not run and ends as timed out at once.
#[tokio::test]
async fn the_submission_time_ends_the_remaining_commands_as_time_limit() {
    let config = Config {
        submission_time: std::time::Duration::from_millis(1500),
        ..Config::default()
    };
    let started = std::time::Instant::now();
    let result = grade_mode_under(config, "long-command", &[("wall_time_ms", "1000")], &[]).await;
    assert_eq!(result.status, Status::Graded, "{:?}", result.error);
    // The long command was cut at the bound; the short one timed out.
    assert_eq!(result.score, 1.0, "{:?}", result.tests);
    let timed_out: Vec<bool> = result.commands.iter().map(|c| c.timed_out).collect();
    assert_eq!(timed_out, [true, true], "{:?}", result.commands);
    assert!(
        result.commands[1].wall_time.is_zero(),
        "the second command ran: {:?}",
        result.commands[1]
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

/// Contract 0.2.0: the command result carries the limit met, CPU time and
/// peak memory.
#[tokio::test]
async fn command_results_carry_what_the_host_knows() {
    assert_full_marks(&grade_mode("facts", &[], &[]).await);
}

/// A grader asleep in WASI costs no fuel; its declared wall time still ends
/// the call, as the grader's failure.
#[tokio::test]
async fn a_grader_asleep_ends_at_its_wall_time() {
    let started = std::time::Instant::now();
    let result = grade_mode("sleep", &[("grader_wall_ms", "2000")], &[]).await;
    assert_eq!(result.status, Status::PluginError);
    let error = result.error.unwrap_or_default();
    assert!(
        error.contains("past the grader's wall time of 2s"),
        "{error}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "the sleep was not cut short"
    );
}

/// What the student left in the sandbox (a folder where the grader writes)
/// reaches the grader typed, and the SDK's `?` makes it the student's: an
/// invalid submission, not a plugin error. So is a grader's own
/// `GradeError::Submission`.
#[tokio::test]
async fn the_students_state_is_charged_to_the_student_not_the_grader() {
    let blocked = grade_mode("student-state", &[], &["blocked"]).await;
    assert_eq!(
        blocked.status,
        Status::InvalidSubmission,
        "{:?}",
        blocked.error
    );
    let error = blocked.error.unwrap_or_default();
    assert!(error.contains("the submission's state stops it"), "{error}");
    let ungradable = grade_mode("ungradable", &[], &[]).await;
    assert_eq!(ungradable.status, Status::InvalidSubmission);
    assert!(
        ungradable
            .error
            .unwrap_or_default()
            .contains("nothing here can be graded")
    );
}

/// Grades one submission per `(name, file, contents)` with the grader at
/// `plugin` under the default config, in one batch.
async fn grade_files(
    plugin: &str,
    files: &[(&str, &str, &str)],
) -> Vec<agh::report::SubmissionResult> {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = support::batch_id("files");
    let batch = Batch::prepare(Path::new(plugin), Config::default(), id.clone())
        .await
        .expect("the grader loads");
    let mut results = Vec::new();
    for (name, file, contents) in files {
        let submission = dir.path().join(name);
        std::fs::create_dir_all(&submission).expect("mkdir");
        std::fs::write(submission.join(file), contents).expect("write");
        results.push(batch.grade_submission(&submission).await);
    }
    support::assert_no_leftovers(&support::docker().await, &id).await;
    results
}

/// A grader built against the frozen contract 0.1.0 still loads and
/// grades, and the result says which contract it spoke.
#[tokio::test]
async fn a_grader_built_against_contract_0_1_0_still_grades() {
    let results = grade_files(
        graders::CONTRACT_0_1,
        &[
            ("right", "answer.txt", "42\n"),
            ("wrong", "answer.txt", "41\n"),
        ],
    )
    .await;
    for (result, score) in results.into_iter().zip([1.0, 0.0]) {
        assert_eq!(result.status, Status::Graded, "{:?}", result.error);
        assert_eq!(result.score, score, "{}", result.submission);
        let provenance = result.provenance.expect("provenance");
        assert_eq!(provenance.wit_version, "0.1.0");
    }
}

/// A grader importing an interface agh does not grant (as componentize-js
/// adds `wasi:http` by default) loads; calling the import ends its call as
/// a plugin error that names the import and what to do.
#[tokio::test]
async fn a_grader_importing_what_agh_does_not_grant_fails_only_when_it_calls_it() {
    let results = grade_files(graders::FOREIGN_IMPORT, &[("any", "x", "x")]).await;
    assert_eq!(results[0].status, Status::PluginError);
    let error = results[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("example:net/fetch") && error.contains("--disable http"),
        "{error}"
    );
}
