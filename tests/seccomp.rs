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
fn an_unknown_syscall_name_is_skipped_with_a_warning() {
    // A profile newer than ferrun's syscall tables still works, as under runc and crun.
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat", "no_such_call"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]});
    let b = with_profile("mkdir /tmp/d 2>&1; true", true, profile);
    let (code, out, err) = b.run("newer");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Function not implemented"),
        "the known names are filtered: {out}"
    );
    assert!(
        err.contains(
            "linux.seccomp.syscalls[0].names[2]: unknown syscall \"no_such_call\" skipped"
        ),
        "{err}"
    );
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
        let mut b = with_profile("true", true, profile);
        // crun's annotation turns the skip of an unknown name back into a refusal.
        b.edit(|c| c["annotations"] = json!({"run.oci.seccomp_fail_unknown_syscall": "true"}));
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

/// A call for the probe: ABI, syscall name, arguments.
struct Call(&'static str, &'static str, Vec<u64>);

fn nr(abi: &str, name: &str) -> usize {
    use std::str::FromStr;
    match abi {
        "x86" => syscalls::x86::Sysno::from_str(name).expect("x86 name").id() as usize,
        _ => syscalls::x86_64::Sysno::from_str(name)
            .expect("x86_64 name")
            .id() as usize,
    }
}

fn probe_args(calls: &[Call]) -> Vec<String> {
    let mut v = Vec::new();
    for (i, Call(abi, name, args)) in calls.iter().enumerate() {
        if i > 0 {
            v.push("--".to_string());
        }
        if *abi == "x86" {
            v.push("x86".into());
        }
        v.push(nr(abi, name).to_string());
        v.extend(args.iter().map(|a| format!("{a:#x}")));
    }
    v
}

/// Runs the probe's calls in a container with `profile` (or none): exit code and lines.
fn probe_run(profile: Option<&Value>, calls: &[Call]) -> (i32, Vec<String>) {
    let mut argv = vec!["/probe".to_string()];
    argv.extend(probe_args(calls));
    let mut b = Bundle::new(&[]);
    b.with_probe();
    b.edit(|c| {
        c["process"]["args"] = json!(argv);
        c["process"]["noNewPrivileges"] = json!(true);
        if let Some(p) = profile {
            c["linux"]["seccomp"] = p.clone();
        }
    });
    let (code, out, err) = b.run("probe");
    assert!(
        code == 0 || code == 128 + libc::SIGSYS,
        "probe failed: {code} {err}"
    );
    (code, out.lines().map(str::to_string).collect())
}

/// At least 40 calls: `ferrun seccomp check` on the compiled BPF says what each call gets, and
/// the same call made in a container under that profile gets exactly that.
#[test]
fn check_predicts_real_syscalls() {
    let a = |i: u32, op: &str, v: u64| json!({"index": i, "op": op, "value": v});
    let arches = json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
    let neg1 = u64::MAX;
    let cases: Vec<(Value, Vec<Call>)> = vec![
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": arches, "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["getuid"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["dup"], "action": "SCMP_ACT_ERRNO", "errnoRet": 7, "args": [a(0, "SCMP_CMP_GE", 100)]},
            {"names": ["lseek"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22, "args": [a(2, "SCMP_CMP_NE", 0)]},
            {"names": ["umask"], "action": "SCMP_ACT_TRACE", "errnoRet": 1},
            {"names": ["getpriority"], "action": "SCMP_ACT_LOG"}]}),
            vec![
                Call("x86_64", "getpid", vec![]),
                Call("x86_64", "getppid", vec![]),
                Call("x86_64", "getuid", vec![]),
                Call("x86_64", "dup", vec![neg1]),
                Call("x86_64", "dup", vec![5]),
                Call("x86_64", "dup", vec![99]),
                Call("x86_64", "lseek", vec![neg1, 0, 1]),
                Call("x86_64", "lseek", vec![neg1, 0, 0]),
                Call("x86_64", "umask", vec![0o22]),
                Call("x86_64", "getpriority", vec![0, 0]),
                Call("x86", "getppid", vec![]),
                Call("x86", "getuid32", vec![]),
                Call("x86", "dup", vec![0xffff_ffff]),
                Call("x86", "dup", vec![5]),
                Call("x86", "getpid", vec![]),
            ],
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "architectures": arches, "syscalls": [
            {"names": ["execve", "exit_group", "exit", "write", "brk", "arch_prctl", "set_tid_address", "set_robust_list",
                       "rseq", "prlimit64", "mprotect", "readlinkat", "getrandom", "uname", "newfstatat", "fstat", "mmap", "munmap", "close", "getpid", "ioctl"],
             "action": "SCMP_ACT_ALLOW"},
            {"names": ["kill"], "action": "SCMP_ACT_ALLOW", "args": [a(1, "SCMP_CMP_EQ", 0)]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [a(0, "SCMP_CMP_EQ", 0xffff_ffff)]}]}),
            vec![
                Call("x86_64", "getpid", vec![]),
                Call("x86_64", "getppid", vec![]),
                Call("x86_64", "close", vec![neg1]),
                Call("x86_64", "kill", vec![1, 0]),
                Call("x86_64", "kill", vec![1, 15]),
                Call("x86_64", "kill", vec![1, 1 << 32]),
                Call("x86_64", "personality", vec![0xffff_ffff]),
                Call("x86_64", "personality", vec![0x1_ffff_ffff]),
                Call("x86_64", "sched_yield", vec![]),
                Call("x86", "getpid", vec![]),
                Call("x86", "sched_yield", vec![]),
            ],
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["dup2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [a(1, "SCMP_CMP_LT", 3)]},
            {"names": ["dup3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2, "args": [a(1, "SCMP_CMP_LE", 3)]},
            {"names": ["fcntl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3, "args": [a(1, "SCMP_CMP_GT", 0x4_0000_0000)]},
            {"names": ["flock"], "action": "SCMP_ACT_ERRNO", "errnoRet": 4, "args": [{"index": 1, "op": "SCMP_CMP_MASKED_EQ", "value": 0xff00_0000_0000_000fu64, "valueTwo": 0x1200_0000_0000_0004u64}]}]}),
            vec![
                Call("x86_64", "dup2", vec![neg1, 2]),
                Call("x86_64", "dup2", vec![neg1, 3]),
                Call("x86_64", "dup3", vec![neg1, 3, 0]),
                Call("x86_64", "dup3", vec![neg1, 4, 0]),
                Call("x86_64", "fcntl", vec![neg1, 0x4_0000_0001]),
                Call("x86_64", "fcntl", vec![neg1, 0x4_0000_0000]),
                Call("x86_64", "flock", vec![neg1, 0x1234_5678_0000_0004]),
                Call("x86_64", "flock", vec![neg1, 0x1200_0000_0000_0005]),
                Call("x86_64", "flock", vec![neg1, 0x0034_0000_0000_0004]),
            ],
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}]}),
            vec![
                Call("x86_64", "getpid", vec![]),
                Call("x86_64", "getppid", vec![]),
            ],
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_TRAP"}]}),
            vec![
                Call("x86_64", "getuid", vec![]),
                Call("x86_64", "getppid", vec![]),
            ],
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL"}]}),
            vec![Call("x86_64", "getppid", vec![])],
        ),
        // x86 is not listed: an i386 call is killed, x86_64 calls are judged.
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 9}]}),
            vec![
                Call("x86_64", "getppid", vec![]),
                Call("x86", "getpid", vec![]),
            ],
        ),
    ];
    // podman's own profile: denials with its errnos, conditional rules, the x86 ABI.
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/config/podman-run.json");
    let podman: Value =
        serde_json::from_slice(&std::fs::read(fixture).expect("fixture")).expect("json");
    let mut cases = cases;
    cases.push((
        podman["linux"]["seccomp"].clone(),
        vec![
            Call("x86_64", "getpid", vec![]),
            Call("x86_64", "add_key", vec![]),
            Call("x86_64", "uselib", vec![0]),
            // The query first: a personality the filter lets through changes later answers.
            Call("x86_64", "personality", vec![0xffff_ffff]),
            Call("x86_64", "personality", vec![0x1234]),
            Call("x86_64", "socket", vec![16, 3, 9]),
            Call("x86_64", "io_uring_setup", vec![1, 0]),
            Call("x86_64", "setns", vec![neg1, 0]),
            Call("x86", "getpid", vec![]),
            Call("x86", "add_key", vec![]),
            Call("x86", "personality", vec![0x1234]),
        ],
    ));
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let ferrun = common::ferrun_bin();
    let mut compared = 0;
    for (k, (profile, calls)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("profile{k}.json"));
        std::fs::write(&path, serde_json::to_vec(profile).expect("encode")).expect("write");
        let (_, baseline) = probe_run(None, calls);
        let (code, got) = probe_run(Some(profile), calls);
        for (i, Call(abi, name, args)) in calls.iter().enumerate() {
            let mut cmd = std::process::Command::new(ferrun);
            cmd.args([
                "seccomp",
                "check",
                "--arch",
                abi,
                path.to_str().expect("utf-8"),
                name,
            ]);
            cmd.args(args.iter().map(|a| a.to_string()));
            let o = cmd.output().expect("check");
            let verdict = String::from_utf8_lossy(&o.stdout).trim().to_string();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let line = got.get(i).cloned();
            let what = format!(
                "profile {k} call {i} {abi} {name}{args:x?}: verdict {verdict}, saw {line:?}"
            );
            if let Some(e) = verdict
                .strip_prefix("ERRNO(")
                .and_then(|v| v.strip_suffix(')'))
            {
                assert_eq!(line, Some(format!("errno {e}")), "{what}");
            } else if verdict.starts_with("TRACE") {
                assert_eq!(
                    line.as_deref(),
                    Some("errno 38"),
                    "{what} (no tracer: ENOSYS)"
                );
            } else if verdict == "ALLOW" || verdict == "LOG" {
                assert_eq!(
                    line.as_ref(),
                    baseline.get(i),
                    "{what}: as without a filter"
                );
            } else {
                assert!(verdict.starts_with("KILL") || verdict == "TRAP", "{what}");
                assert_eq!(line, None, "{what}: the call did not return");
                assert_eq!(got.len(), i, "{what}");
                assert_eq!(code, 128 + libc::SIGSYS, "{what}");
            }
            compared += 1;
        }
    }
    assert!(compared >= 40, "{compared} calls compared");
}

#[test]
fn legacy_single_name_is_understood() {
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "mkdir", "action": "SCMP_ACT_ERRNO", "errnoRet": 13}, {"name": "mkdirat", "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]});
    let b = with_profile("mkdir /tmp/x 2>&1; true", true, profile);
    let (code, out, err) = b.run("legacy");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Permission denied"), "{out}");
}

#[test]
fn a_filter_that_refuses_the_ready_report_fails_create_instead_of_hanging() {
    // Without no_new_privs the filter goes on before the container reports ready; a profile
    // that refuses sendto makes that report fail. `timeout` turns a hang into a failure.
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["sendto", "sendmsg"], "action": "SCMP_ACT_ERRNO"}]});
    let b = with_profile("true", false, profile);
    let bundle = b.path().to_str().expect("utf-8").to_string();
    let root = b.state_root().to_str().expect("utf-8").to_string();
    let o = common::output_via_files({
        let mut c = std::process::Command::new("timeout");
        c.args([
            "20",
            common::ferrun_bin(),
            "--root",
            &root,
            "create",
            "--bundle",
            &bundle,
            "noready",
        ]);
        c
    });
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(b.leftover_state().is_empty());
}
