//! Differential test: for every syscall number of x86_64 (and x86 where the profile lists it)
//! and a set of argument vectors per rule, the verdict of ferrun's BPF equals the verdict of
//! libseccomp's BPF (built the way runc builds it) for the podman profile and synthetic
//! profiles. Both programs run in the same interpreter.

mod reference;

use ferrun_planner::seccomp::bpf::{self, Data};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompOperator as Op};
use reference::libseccomp_bpf;
use serde_json::{Value, json};

const AUDIT_X86_64: u32 = 0xc000_003e;
const AUDIT_I386: u32 = 0x4000_0003;

/// Argument vectors that reach every branch of the profile's checks.
fn arg_vectors(s: &LinuxSeccomp) -> Vec<[u64; 6]> {
    let mut interesting: Vec<(usize, u64)> = Vec::new();
    for sc in s.syscalls().iter().flatten() {
        for a in sc.args().iter().flatten() {
            let v = a.value();
            let vals = match a.op() {
                Op::ScmpCmpMaskedEq => {
                    let d = a.value_two().unwrap_or(0);
                    vec![d, d | !v, d ^ 1, d.wrapping_add(1 << 32), 0, u64::MAX]
                }
                _ => vec![
                    v,
                    v.wrapping_sub(1),
                    v.wrapping_add(1),
                    v ^ (1 << 32),
                    v | 0xffff_ffff_0000_0000,
                    0,
                    u64::MAX,
                ],
            };
            for x in vals {
                interesting.push((a.index(), x));
            }
        }
    }
    interesting.sort();
    interesting.dedup();
    let mut out = vec![[0u64; 6]];
    for (i, v) in &interesting {
        let mut a = [0u64; 6];
        a[*i] = *v;
        out.push(a);
    }
    // Every rule's own values together, so multi-argument rules can match.
    for sc in s.syscalls().iter().flatten() {
        let mut a = [0u64; 6];
        for arg in sc.args().iter().flatten() {
            a[arg.index()] = if arg.op() == Op::ScmpCmpMaskedEq {
                arg.value_two().unwrap_or(0)
            } else {
                arg.value()
            };
        }
        out.push(a);
    }
    out.sort();
    out.dedup();
    out
}

fn compare(name: &str, profile: &Value) -> usize {
    let s: LinuxSeccomp =
        serde_json::from_value(profile.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let ours = ferrun_planner::seccomp::compile(&s, "x86_64")
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .insns;
    let theirs = libseccomp_bpf(&s);
    let vectors = arg_vectors(&s);
    let lists_x86 = s
        .architectures()
        .iter()
        .flatten()
        .any(|a| format!("{a:?}") == "ScmpArchX86");
    let lists_x32 = s
        .architectures()
        .iter()
        .flatten()
        .any(|a| format!("{a:?}") == "ScmpArchX32");
    // (audit arch, x32 bit, highest number)
    let mut abis = vec![(AUDIT_X86_64, 0u32, 600)];
    if lists_x86 {
        abis.push((AUDIT_I386, 0, 460));
    }
    if lists_x32 {
        abis.push((AUDIT_X86_64, 0x4000_0000, 547));
    }
    let mut checked = 0;
    for (arch, bit, last) in abis {
        // -1 is a call a tracer skipped; past the tables' end are calls of newer kernels.
        for nr in std::iter::once(-1).chain((0..=last).map(|n: i32| n | bit as i32)) {
            for args in &vectors {
                let d = Data {
                    nr,
                    arch,
                    ip: 0,
                    args: *args,
                };
                let a = bpf::run(&ours, &d).unwrap_or_else(|e| panic!("{name}: ours: {e}"));
                let b = bpf::run(&theirs, &d).unwrap_or_else(|e| panic!("{name}: libseccomp: {e}"));
                assert_eq!(
                    bpf::action_name(a),
                    bpf::action_name(b),
                    "{name}: arch {arch:#x} nr {nr} args {args:x?}"
                );
                checked += 1;
            }
        }
    }
    checked
}

#[test]
fn podman_profile_matches_libseccomp() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/config/podman-run.json");
    let config: Value =
        serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("json");
    let n = compare("podman", &config["linux"]["seccomp"]);
    assert!(n > 10_000, "{n} verdicts compared");
}

fn rule(names: &[&str], action: &str, args: Value) -> Value {
    json!({"names": names, "action": action, "args": args})
}

#[test]
fn synthetic_profiles_match_libseccomp() {
    let arg = |index: u32, op: &str, value: u64| json!({"index": index, "op": op, "value": value});
    let masked = |index: u32, mask: u64, value: u64| json!({"index": index, "op": "SCMP_CMP_MASKED_EQ", "value": mask, "valueTwo": value});
    let x86 = json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
    let profiles: Vec<(&str, Value)> = vec![
        (
            "allow-list",
            json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [rule(&["read", "write", "exit"], "SCMP_ACT_ALLOW", json!([]))]}),
        ),
        (
            "deny-list",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule(&["mount", "umount2"], "SCMP_ACT_ERRNO", json!([]))]}),
        ),
        (
            "default-errno-ret",
            json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "syscalls": [rule(&["getpid"], "SCMP_ACT_ALLOW", json!([]))]}),
        ),
        (
            "errno-ret-per-rule",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 30}]}),
        ),
        (
            "every-action",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            rule(&["acct"], "SCMP_ACT_KILL", json!([])), rule(&["swapon"], "SCMP_ACT_KILL_PROCESS", json!([])),
            rule(&["swapoff"], "SCMP_ACT_KILL_THREAD", json!([])), rule(&["reboot"], "SCMP_ACT_TRAP", json!([])),
            rule(&["syslog"], "SCMP_ACT_ERRNO", json!([])), rule(&["ptrace"], "SCMP_ACT_TRACE", json!([])),
            rule(&["uname"], "SCMP_ACT_LOG", json!([])), rule(&["mkdir"], "SCMP_ACT_NOTIFY", json!([]))]}),
        ),
        (
            "op-eq",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule(&["personality"], "SCMP_ACT_ERRNO", json!([arg(0, "SCMP_CMP_EQ", 8)]))]}),
        ),
        (
            "op-ne",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule(&["personality"], "SCMP_ACT_ERRNO", json!([arg(0, "SCMP_CMP_NE", 0x20008)]))]}),
        ),
        (
            "op-lt",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule(&["dup2"], "SCMP_ACT_ERRNO", json!([arg(1, "SCMP_CMP_LT", 3)]))]}),
        ),
        (
            "op-le",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule(&["dup2"], "SCMP_ACT_ERRNO", json!([arg(1, "SCMP_CMP_LE", 3)]))]}),
        ),
        (
            "op-gt",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule(&["dup2"], "SCMP_ACT_ERRNO", json!([arg(1, "SCMP_CMP_GT", 100)]))]}),
        ),
        (
            "op-ge",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule(&["dup2"], "SCMP_ACT_ERRNO", json!([arg(1, "SCMP_CMP_GE", 100)]))]}),
        ),
        (
            "op-masked-eq",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule(&["clone"], "SCMP_ACT_ERRNO", json!([masked(0, 0x7E02_0000, 0)]))]}),
        ),
        (
            "wide-values",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            rule(&["lseek"], "SCMP_ACT_ERRNO", json!([arg(1, "SCMP_CMP_GT", 0x1_0000_0000u64)])),
            rule(&["pread64"], "SCMP_ACT_ERRNO", json!([arg(3, "SCMP_CMP_LE", 0xffff_ffff_0000_0000u64)])),
            rule(&["pwrite64"], "SCMP_ACT_ERRNO", json!([masked(3, 0xff00_0000_0000_00ff, 0x1200_0000_0000_0034)]))]}),
        ),
        (
            "two-args-and",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule(&["socket"], "SCMP_ACT_ERRNO", json!([arg(0, "SCMP_CMP_EQ", 16), arg(2, "SCMP_CMP_EQ", 9)]))]}),
        ),
        (
            "same-arg-twice-or",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule(&["kill"], "SCMP_ACT_ERRNO", json!([arg(1, "SCMP_CMP_EQ", 9), arg(1, "SCMP_CMP_EQ", 15)]))]}),
        ),
        (
            "conditional-rules-or",
            json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            rule(&["personality"], "SCMP_ACT_ALLOW", json!([arg(0, "SCMP_CMP_EQ", 0)])),
            rule(&["personality"], "SCMP_ACT_ALLOW", json!([arg(0, "SCMP_CMP_EQ", 8)])),
            rule(&["personality"], "SCMP_ACT_ALLOW", json!([arg(0, "SCMP_CMP_EQ", 0xffff_ffff)]))]}),
        ),
        (
            "first-unconditional-wins",
            json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            rule(&["setns", "getpid"], "SCMP_ACT_ALLOW", json!([])),
            {"names": ["setns"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}),
        ),
        (
            "unconditional-replaces-conditional",
            json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22, "args": [arg(0, "SCMP_CMP_EQ", 16)]},
            rule(&["socket"], "SCMP_ACT_ALLOW", json!([]))]}),
        ),
        (
            "rule-equal-to-default-dropped",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            rule(&["getpid"], "SCMP_ACT_ALLOW", json!([])), rule(&["getppid"], "SCMP_ACT_KILL", json!([]))]}),
        ),
        (
            "multi-arch",
            json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": x86, "syscalls": [
            rule(&["read", "write", "exit_group", "socketcall", "_llseek", "mmap2"], "SCMP_ACT_ALLOW", json!([])),
            rule(&["personality"], "SCMP_ACT_ALLOW", json!([arg(0, "SCMP_CMP_EQ", 8)]))]}),
        ),
        (
            "many-syscalls",
            json!({"defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": [rule(
            &["read", "write", "openat", "close", "fstat", "mmap", "mprotect", "munmap", "brk", "rt_sigaction",
              "rt_sigprocmask", "ioctl", "pread64", "readv", "writev", "access", "pipe", "select", "sched_yield",
              "mremap", "msync", "mincore", "madvise", "dup", "dup2", "pause", "nanosleep", "getpid", "socket",
              "connect", "clone", "fork", "execve", "exit", "wait4", "kill", "uname", "fcntl", "getdents64",
              "getcwd", "chdir", "rename", "mkdir", "rmdir", "exit_group", "epoll_wait", "futex", "openat2"],
            "SCMP_ACT_ALLOW", json!([]))]}),
        ),
    ];
    assert!(profiles.len() >= 20);
    for (name, p) in profiles {
        let n = compare(name, &p);
        assert!(n > 400, "{name}: {n}");
    }
}
