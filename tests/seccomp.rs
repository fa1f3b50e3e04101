//! Seccomp in real containers: the filter is installed (with and without no_new_privs) and the
//! container feels each action.

mod common;

use common::{Bundle, status_field};
use serde_json::{Value, json};

fn with_profile(script: &str, nnp: bool, profile: Value) -> Bundle {
    let mut b = Bundle::new(&["sh", "-c", script]);
    b.edit(|c| {
        c["process"]["noNewPrivileges"] = json!(nnp);
        c["linux"]["seccomp"] = profile;
    });
    b
}

fn deny(names: &[&str], action: &str, errno: Option<u32>) -> Value {
    let mut rule = json!({"names": names, "action": action});
    if let Some(e) = errno {
        rule["errnoRet"] = json!(e);
    }
    json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], "syscalls": [rule]})
}

#[test]
fn filter_is_installed_with_and_without_no_new_privs() {
    for nnp in [true, false] {
        let b = with_profile(
            "cat /proc/self/status",
            nnp,
            deny(&["acct"], "SCMP_ACT_ERRNO", None),
        );
        let (code, out, err) = b.run(if nnp { "nnp" } else { "no-nnp" });
        assert_eq!(code, 0, "{err}");
        assert_eq!(status_field(&out, "Seccomp"), "2", "nnp={nnp}");
        assert_eq!(status_field(&out, "Seccomp_filters"), "1", "nnp={nnp}");
        assert_eq!(
            status_field(&out, "NoNewPrivs"),
            if nnp { "1" } else { "0" }
        );
    }
}

#[test]
fn errno_actions_reach_the_container() {
    for (nnp, errno, text) in [
        (true, 13, "Permission denied"),
        (false, 30, "Read-only file system"),
    ] {
        let b = with_profile(
            "mkdir /tmp/x 2>&1; echo rc=$?",
            nnp,
            deny(&["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", Some(errno)),
        );
        let (code, out, err) = b.run("errno");
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains(text) && out.contains("rc=1"),
            "nnp={nnp}: {out}"
        );
    }
    // Without errnoRet, ERRNO means EPERM.
    let b = with_profile(
        "mkdir /tmp/x 2>&1",
        true,
        deny(&["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", None),
    );
    assert!(b.run("eperm").1.contains("Operation not permitted"));
}

#[test]
fn kill_and_trap_end_the_process_with_sigsys() {
    for action in ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_KILL"] {
        // uname(2) is what `uname` makes; the shell itself never calls it.
        let b = with_profile("uname; echo survived", true, deny(&["uname"], action, None));
        let (code, out, _) = b.run("sigsys");
        assert!(!out.contains("survived"), "{action}: {out}");
        assert_eq!(code, 128 + libc::SIGSYS, "{action}");
    }
}

#[test]
fn log_and_allow_let_the_call_through() {
    for action in ["SCMP_ACT_LOG", "SCMP_ACT_ALLOW"] {
        let mut profile = deny(&["uname"], action, None);
        profile["defaultAction"] = json!("SCMP_ACT_ALLOW");
        let b = with_profile("uname -s", true, profile);
        assert_eq!(b.run("log").1, "Linux\n", "{action}");
    }
}

#[test]
fn argument_conditions_are_64_bit() {
    // Deny kill(pid, 9) only: kill -0 passes, kill -9 on a child is refused with EPERM.
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{
        "names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
        "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]}]});
    let b = with_profile(
        "sleep 5 & p=$!; kill -0 $p && echo probe-ok; kill -9 $p 2>&1 || echo kill9-refused; kill -15 $p && echo term-ok",
        true,
        profile,
    );
    let (code, out, err) = b.run("args");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("probe-ok") && out.contains("kill9-refused") && out.contains("term-ok"),
        "{out}"
    );
}

#[test]
fn default_errno_ret_and_allow_list() {
    // An allow-list that is missing mkdir: every other call of busybox's mkdir path works.
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]});
    let b = with_profile("mkdir /tmp/d 2>&1; true", true, profile);
    assert!(b.run("enosys").1.contains("Function not implemented"));
}

#[test]
fn bad_profiles_are_refused_naming_the_rule() {
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["no_such_call"], "action": "SCMP_ACT_ERRNO"}]}),
            "linux.seccomp.syscalls[0].names[0]: unknown syscall",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            "linux.seccomp.syscalls[0].args[0].index",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_BOGUS"}]}),
            "linux.seccomp.syscalls[0].action",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}]}),
            "linux.seccomp.syscalls[0].args[0].op",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "SCMP_ACT_NOTIFY needs an absolute listenerPath",
        ),
    ];
    for (profile, want) in cases {
        let b = with_profile("true", true, profile);
        let (code, _, err) = b.run("bad");
        assert_eq!(code, 1, "{want}");
        assert!(err.contains(want), "want {want:?} in {err:?}");
        assert!(b.leftover_state().is_empty());
    }
}

/// profile, syscall, args, predicted action, script, what the container prints.
type Case = (
    Value,
    &'static str,
    Vec<&'static str>,
    &'static str,
    &'static str,
    &'static str,
);

/// `ferrun seccomp check` on the compiled BPF predicts what the container then meets.
#[test]
fn check_agrees_with_the_container() {
    let kill9 = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]}]});
    let cases: Vec<Case> = vec![
        // profile, syscall, args, predicted action, script, what the container prints
        (
            deny(&["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", Some(13)),
            "mkdir",
            vec!["0", "0"],
            "ERRNO(13)",
            "mkdir /tmp/a 2>&1",
            "Permission denied",
        ),
        (
            deny(&["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", Some(13)),
            "rmdir",
            vec![],
            "ALLOW",
            "rmdir /dev/shm/nope 2>&1",
            "No such file or directory",
        ),
        (
            deny(&["uname"], "SCMP_ACT_ERRNO", Some(38)),
            "uname",
            vec![],
            "ERRNO(38)",
            "uname -s | grep -q Linux || echo failed",
            "failed",
        ),
        (
            deny(&["uname"], "SCMP_ACT_LOG", None),
            "uname",
            vec![],
            "LOG",
            "uname",
            "Linux",
        ),
        (
            deny(&["uname"], "SCMP_ACT_KILL_PROCESS", None),
            "uname",
            vec![],
            "KILL_PROCESS",
            "uname; echo after",
            "",
        ),
        (
            deny(&["uname"], "SCMP_ACT_TRAP", None),
            "uname",
            vec![],
            "TRAP",
            "uname; echo after",
            "",
        ),
        (
            kill9.clone(),
            "kill",
            vec!["1", "9"],
            "ERRNO(1)",
            "sleep 5 & kill -9 $! 2>&1 || echo refused",
            "refused",
        ),
        (
            kill9.clone(),
            "kill",
            vec!["1", "15"],
            "ALLOW",
            "sleep 5 & kill -15 $! && echo sent",
            "sent",
        ),
        (kill9, "kill", vec!["1", "0x900000009"], "ALLOW", "true", ""),
        (
            deny(
                &["chmod", "fchmodat", "fchmodat2"],
                "SCMP_ACT_ERRNO",
                Some(30),
            ),
            "fchmodat",
            vec![],
            "ERRNO(30)",
            "chmod 700 /tmp 2>&1",
            "Read-only file system",
        ),
    ];
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    for (i, (profile, syscall, args, action, script, seen)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("p{i}.json"));
        std::fs::write(&path, serde_json::to_vec(&profile).expect("encode")).expect("write");
        let mut cmd = vec!["seccomp", "check", path.to_str().expect("utf-8"), syscall];
        cmd.extend(args.iter().copied());
        let b = with_profile(script, true, profile);
        let o = b.ferrun(&cmd);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            action,
            "case {i}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let (code, out, err) = b.run("agree");
        if action.starts_with("KILL") || action == "TRAP" {
            assert_eq!(code, 128 + libc::SIGSYS, "case {i}: {out} {err}");
        } else {
            assert!(
                out.contains(seen),
                "case {i}: want {seen:?} in {out:?} ({err})"
            );
        }
    }
}
