//! A submission archive of arbitrary bytes, as a student uploads it, read
//! as each kind agh takes (zip, tar, tar.gz): unpacked or refused, never a
//! panic, never a file outside the target, and no allocation past the
//! bound libFuzzer is given (`-malloc_limit_mb`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["s.zip", "s.tar", "s.tar.gz"] {
        let archive = dir.path().join(name);
        std::fs::write(&archive, data).expect("write the archive");
        let target = dir.path().join("out").join(name);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        let _ = agh_archive::unpack(&archive, &target);
        // Nothing lands beside the target, whatever the entries' names.
        let beside: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .filter(|n| !["s.zip", "s.tar", "s.tar.gz", "out"].iter().any(|k| n == k))
            .collect();
        assert!(beside.is_empty(), "{beside:?}");
    }
});
