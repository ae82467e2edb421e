//! The seccomp profile every sandbox runs under, agh's own rather than
//! Docker's default.
//!
//! runsc is registered with `--oci-seccomp`, so gVisor applies the
//! container's profile to the processes inside the sandbox. Docker's
//! default profile answers `clone3` with ENOSYS so that glibc falls back to
//! `clone`, whose flags a filter can read; the gVisor release Debian ships
//! does not pass that errno on and answers EPERM instead, glibc gives up on
//! EPERM, and no program could start a thread. This profile lets `clone3`
//! reach gVisor's kernel, which does not implement it and answers ENOSYS
//! itself, and refuses what the sandbox must never allow: a user namespace
//! (inside one the process limit is not enforced), by `clone`, `unshare` or
//! `setns`. `agh doctor` checks both from inside a real sandbox, so a
//! runsc that starts implementing `clone3` (and with it `CLONE_NEWUSER`
//! through a structure no filter can read) fails the check before it
//! grades anything.
//!
//! Everything else is allowed: gVisor is the boundary to the host, every
//! capability is dropped and `no-new-privileges` is set, so calls that need
//! privilege fail on their own. The calls below are refused anyway, since
//! no program a course runs needs them and each has been a route to a
//! kernel's privileged code.

use serde_json::{Value, json};

/// `CLONE_NEWUSER`: the flag that makes a user namespace.
const CLONE_NEWUSER: u64 = 0x1000_0000;
/// The errno a refused call answers (EPERM), as a kernel without the
/// privilege would.
const REFUSED_ERRNO: u64 = 1;
/// Calls refused whatever their arguments: those Docker's default profile
/// refuses a container without the capability, which gVisor would
/// otherwise answer (it shows a kernel log to anyone, for one).
const REFUSED_CALLS: [&str; 33] = [
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "open_by_handle_at",
    "name_to_handle_at",
    "init_module",
    "finit_module",
    "delete_module",
    "syslog",
    "acct",
    "quotactl",
    "swapon",
    "swapoff",
    "reboot",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "sethostname",
    "setdomainname",
    "iopl",
    "ioperm",
    "vhangup",
];

/// The profile as Docker's `seccomp=` security option takes it (JSON text).
#[must_use]
pub fn profile() -> String {
    let user_namespace = |index: u64| {
        json!({
            "index": index,
            "value": CLONE_NEWUSER,
            "valueTwo": CLONE_NEWUSER,
            "op": "SCMP_CMP_MASKED_EQ",
        })
    };
    let profile: Value = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {
                // x86_64's clone takes its flags first.
                "names": ["clone", "unshare"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": REFUSED_ERRNO,
                "args": [user_namespace(0)],
            },
            {
                "names": REFUSED_CALLS.as_slice(),
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": REFUSED_ERRNO,
            },
        ],
    });
    profile.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_refuses_user_namespaces_and_leaves_clone3_to_the_kernel() {
        let profile: Value = serde_json::from_str(&profile()).expect("json");
        let rules = profile["syscalls"].as_array().expect("rules");
        let names: Vec<&str> = rules
            .iter()
            .flat_map(|r| r["names"].as_array().expect("names"))
            .filter_map(Value::as_str)
            .collect();
        for refused in ["clone", "unshare", "setns"] {
            assert!(names.contains(&refused), "{refused} has no rule: {names:?}");
        }
        assert!(!names.contains(&"clone3"), "clone3 must reach gVisor");
        assert_eq!(profile["defaultAction"], "SCMP_ACT_ALLOW");
    }
}
