//! `linux.seccomp` → one classic-BPF filter.
//!
//! seccompiler has one match action per filter, one arch per filter and no user-notify action, so
//! the filter is emitted here: per-rule actions, every OCI action, multi-arch dispatch (x86_64
//! with x86 and x32; aarch64 with arm), a binary search over syscall numbers, and 64-bit argument
//! comparisons. Rules are resolved the way libseccomp resolves them, which runc and crun inherit:
//! rules whose action is the default are dropped, the first unconditional rule for a syscall wins
//! and replaces earlier conditional ones, and names unknown to an arch are skipped for it.

pub mod bpf;

use crate::{PlanError, err};
use bpf::{Asm, Cond, Insn, OFF_ARCH, OFF_NR, off_arg_hi, off_arg_lo};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as A, LinuxSeccompFilterFlag as F,
    LinuxSeccompOperator as Op,
};
use std::collections::BTreeMap;
use std::str::FromStr;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The x32 calls with numbers of their own (arch/x86/entry/syscalls/syscall_64.tbl, "x32").
const X32_OWN: [(u32, &str); 36] = [
    (512, "rt_sigaction"),
    (513, "rt_sigreturn"),
    (514, "ioctl"),
    (515, "readv"),
    (516, "writev"),
    (517, "recvfrom"),
    (518, "sendmsg"),
    (519, "recvmsg"),
    (520, "execve"),
    (521, "ptrace"),
    (522, "rt_sigpending"),
    (523, "rt_sigtimedwait"),
    (524, "rt_sigqueueinfo"),
    (525, "sigaltstack"),
    (526, "timer_create"),
    (527, "mq_notify"),
    (528, "kexec_load"),
    (529, "waitid"),
    (530, "set_robust_list"),
    (531, "get_robust_list"),
    (532, "vmsplice"),
    (533, "move_pages"),
    (534, "preadv"),
    (535, "pwritev"),
    (536, "rt_tgsigqueueinfo"),
    (537, "recvmmsg"),
    (538, "sendmmsg"),
    (539, "process_vm_readv"),
    (540, "process_vm_writev"),
    (541, "setsockopt"),
    (542, "getsockopt"),
    (543, "io_setup"),
    (544, "io_submit"),
    (545, "execveat"),
    (546, "preadv2"),
    (547, "pwritev2"),
];

/// x86_64 calls that x32 cannot make at all.
const X32_NONE: [&str; 14] = [
    "uselib",
    "_sysctl",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "nfsservctl",
    "set_thread_area",
    "get_thread_area",
    "epoll_ctl_old",
    "epoll_wait_old",
    "vserver",
    "uretprobe",
    "uprobe",
    "map_shadow_stack",
];

/// x86_64's rules renumbered for x32 (without the x32 bit).
fn x32_table(native: &BTreeMap<u32, Vec<Rule>>) -> BTreeMap<u32, Vec<Rule>> {
    let mut out = BTreeMap::new();
    for (nr, rules) in native {
        let Some(name) = Abi::X86_64.syscall_name(*nr) else {
            continue;
        };
        if X32_NONE.contains(&name) {
            continue;
        }
        let nr32 = X32_OWN
            .iter()
            .find(|(_, n)| *n == name)
            .map_or(*nr, |(n32, _)| *n32);
        out.insert(nr32, rules.clone());
    }
    out
}

/// `SECCOMP_FILTER_FLAG_*`.
pub const FLAG_TSYNC: u32 = 1;
pub const FLAG_LOG: u32 = 2;
pub const FLAG_SPEC_ALLOW: u32 = 4;
pub const FLAG_NEW_LISTENER: u32 = 8;
pub const FLAG_WAIT_KILLABLE_RECV: u32 = 32;

/// Bumped whenever the emitter's output for a profile changes: cached filters and plans made by
/// another revision are not used.
pub const COMPILER_REVISION: u32 = 3;

/// Where compiled filters are kept between plans (the runtime's files).
pub trait FilterCache {
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    fn put(&self, key: &str, bytes: &[u8]);
    /// Told whether the filter came from the cache (`true`) or was compiled.
    fn reused(&self, _reused: bool) {}
}

/// The cache key of a profile: its canonical JSON, the host arch and this compiler's version.
pub fn cache_key(s: &LinuxSeccomp, host_arch: &str) -> String {
    let json = serde_json::to_vec(s).unwrap_or_default();
    ferrun_plans::content_hash(&[
        b"seccomp",
        &json,
        host_arch.as_bytes(),
        env!("CARGO_PKG_VERSION").as_bytes(),
    ])
}

/// Compiles through `cache`: a stored filter is reused when it decodes, else compiled and stored.
pub fn compile_cached(
    s: &LinuxSeccomp,
    host_arch: &str,
    cache: Option<&dyn FilterCache>,
) -> Result<Compiled, PlanError> {
    let Some(cache) = cache else {
        return compile(s, host_arch);
    };
    let key = cache_key(s, host_arch);
    if let Some(c) = cache.get(&key).and_then(|b| unseal_filter(&key, &b)) {
        cache.reused(true);
        return Ok(c);
    }
    let c = compile(s, host_arch)?;
    let mut body = key.clone().into_bytes();
    body.extend_from_slice(&c.encode());
    cache.put(
        &key,
        &ferrun_plans::seal(FILTER_MAGIC, COMPILER_REVISION, &body),
    );
    cache.reused(false);
    Ok(c)
}

/// Magic prefix of a cached filter file.
const FILTER_MAGIC: &[u8; 8] = b"FERRUNSC";

/// A cached filter: sealed (checksummed), made by this compiler revision, for this very key.
fn unseal_filter(key: &str, bytes: &[u8]) -> Option<Compiled> {
    let body = ferrun_plans::unseal(FILTER_MAGIC, COMPILER_REVISION, bytes).ok()?;
    Compiled::decode(body.strip_prefix(key.as_bytes())?)
}

/// A compiled filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compiled {
    pub insns: Vec<Insn>,
    /// `SECCOMP_FILTER_FLAG_*` to install it with.
    pub flags: u32,
    /// Some rule (or the default) is `SCMP_ACT_NOTIFY`.
    pub notify: bool,
    /// Where each ABI's dispatch starts, for the disassembly.
    pub sections: Vec<(usize, &'static str)>,
}

impl Compiled {
    /// `flags` (LE u32), `notify` (u8), the section count (u8), each section (pc LE u32, ABI
    /// name length u8, name), then the instructions.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.insns.len() * 8);
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.push(u8::from(self.notify));
        out.push(self.sections.len() as u8);
        for (pc, name) in &self.sections {
            out.extend_from_slice(&(*pc as u32).to_le_bytes());
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
        }
        out.extend_from_slice(&bpf::to_bytes(&self.insns));
        out
    }

    /// The inverse of `encode`; `None` for anything malformed.
    pub fn decode(b: &[u8]) -> Option<Compiled> {
        let flags = u32::from_le_bytes(b.get(..4)?.try_into().ok()?);
        let notify = *b.get(4)? == 1;
        let n = *b.get(5)?;
        let mut at = 6;
        let mut sections = Vec::new();
        for _ in 0..n {
            let pc = u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize;
            let len = usize::from(*b.get(at + 4)?);
            let name = std::str::from_utf8(b.get(at + 5..at + 5 + len)?).ok()?;
            let abi = Abi::by_name(name)?;
            sections.push((pc, abi.name()));
            at += 5 + len;
        }
        let insns = bpf::from_bytes(b.get(at..)?)?;
        // Never trusted: a program the kernel would refuse (or ours never emits) is rebuilt.
        if !bpf::validate(&insns) {
            return None;
        }
        Some(Compiled {
            insns,
            flags,
            notify,
            sections,
        })
    }
}

/// An ABI the filter dispatches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Abi {
    X86_64,
    X32,
    X86,
    Aarch64,
    Arm,
}

impl Abi {
    fn name(self) -> &'static str {
        match self {
            Abi::X86_64 => "x86_64",
            Abi::X32 => "x32",
            Abi::X86 => "x86",
            Abi::Aarch64 => "aarch64",
            Abi::Arm => "arm",
        }
    }

    fn by_name(name: &str) -> Option<Abi> {
        [Abi::X86_64, Abi::X32, Abi::X86, Abi::Aarch64, Abi::Arm]
            .into_iter()
            .find(|a| a.name() == name)
    }

    /// The audit arch value `seccomp_data.arch` holds for this ABI.
    fn audit(self) -> u32 {
        match self {
            Abi::X86_64 | Abi::X32 => AUDIT_ARCH_X86_64,
            Abi::X86 => AUDIT_ARCH_I386,
            Abi::Aarch64 => AUDIT_ARCH_AARCH64,
            Abi::Arm => AUDIT_ARCH_ARM,
        }
    }

    /// The name of syscall `nr` on this ABI.
    fn syscall_name(self, nr: u32) -> Option<&'static str> {
        let nr = nr as usize;
        match self {
            Abi::X86_64 | Abi::X32 => syscalls::x86_64::Sysno::new(nr).map(|s| s.name()),
            Abi::X86 => syscalls::x86::Sysno::new(nr).map(|s| s.name()),
            Abi::Aarch64 => syscalls::aarch64::Sysno::new(nr).map(|s| s.name()),
            Abi::Arm => syscalls::arm::Sysno::new(nr).map(|s| s.name()),
        }
    }

    /// The syscall number of `name` on this ABI.
    fn nr(self, name: &str) -> Option<u32> {
        match self {
            Abi::X86_64 => syscalls::x86_64::Sysno::from_str(name)
                .ok()
                .map(|s| s.id() as u32),
            // x32 is dispatched through x86_64's table (see `emit`).
            Abi::X32 => None,
            Abi::X86 => syscalls::x86::Sysno::from_str(name)
                .ok()
                .map(|s| s.id() as u32),
            Abi::Aarch64 => syscalls::aarch64::Sysno::from_str(name)
                .ok()
                .map(|s| s.id() as u32),
            Abi::Arm => syscalls::arm::Sysno::from_str(name)
                .ok()
                .map(|s| s.id() as u32),
        }
    }

    fn is_32bit(self) -> bool {
        matches!(self, Abi::X86 | Abi::X32 | Abi::Arm)
    }
}

/// The ABIs a filter for `host_arch` covers, given `architectures`.
fn abis(host_arch: &str, listed: &[Arch]) -> Result<Vec<Abi>, PlanError> {
    let native = match host_arch {
        "x86_64" => Abi::X86_64,
        "aarch64" => Abi::Aarch64,
        other => {
            return err(
                "linux.seccomp",
                format!("seccomp is not supported on {other} yet"),
            );
        }
    };
    let mut out = vec![native];
    for a in listed {
        let abi = match (native, a) {
            (_, Arch::ScmpArchNative) => continue,
            (Abi::X86_64, Arch::ScmpArchX86_64) | (Abi::Aarch64, Arch::ScmpArchAarch64) => continue,
            (Abi::X86_64, Arch::ScmpArchX86) => Abi::X86,
            (Abi::X86_64, Arch::ScmpArchX32) => Abi::X32,
            (Abi::Aarch64, Arch::ScmpArchArm) => Abi::Arm,
            // Other arches cannot run on this host: no process of theirs can reach the filter.
            _ => continue,
        };
        if !out.contains(&abi) {
            out.push(abi);
        }
    }
    Ok(out)
}

fn action(a: A, errno_ret: Option<u32>, field: &str) -> Result<u32, PlanError> {
    let data = |default: u32| -> Result<u32, PlanError> {
        let v = errno_ret.unwrap_or(default);
        if v > 0xffff {
            return err(
                field.to_string(),
                format!("errno {v} does not fit in 16 bits"),
            );
        }
        Ok(v)
    };
    Ok(match a {
        A::ScmpActKill | A::ScmpActKillThread => bpf::RET_KILL_THREAD,
        A::ScmpActKillProcess => bpf::RET_KILL_PROCESS,
        A::ScmpActTrap => bpf::RET_TRAP,
        A::ScmpActErrno => bpf::RET_ERRNO | data(libc::EPERM as u32)?,
        A::ScmpActTrace => bpf::RET_TRACE | data(libc::EPERM as u32)?,
        A::ScmpActLog => bpf::RET_LOG,
        A::ScmpActAllow => bpf::RET_ALLOW,
        A::ScmpActNotify => bpf::RET_USER_NOTIF,
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Check {
    index: u32,
    op: Op,
    value: u64,
    mask: u64,
}

#[derive(Clone, Debug)]
struct Rule {
    checks: Vec<Check>,
    action: u32,
}

/// Compiles `linux.seccomp` for a host.
pub fn compile(s: &LinuxSeccomp, host_arch: &str) -> Result<Compiled, PlanError> {
    let default = action(
        s.default_action(),
        s.default_errno_ret(),
        "linux.seccomp.defaultErrnoRet",
    )?;
    let abis = abis(host_arch, s.architectures().as_deref().unwrap_or(&[]))?;
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            // The container process is single-threaded; the kernel refuses TSYNC with a
            // listener, and runc ignores TSYNC too.
            F::SeccompFilterFlagTsync => 0,
            F::SeccompFilterFlagLog => FLAG_LOG,
            F::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            F::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
        };
    }
    let mut notify = default == bpf::RET_USER_NOTIF;
    // ABI → syscall number → rules in order.
    let mut table: BTreeMap<Abi, BTreeMap<u32, Vec<Rule>>> = BTreeMap::new();
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(sc.action(), sc.errno_ret(), &format!("{field}.errnoRet"))?;
        if act == bpf::RET_USER_NOTIF {
            notify = true;
        }
        let mut checks = Vec::new();
        for (j, a) in sc.args().iter().flatten().enumerate() {
            if a.index() > 5 {
                return err(
                    format!("{field}.args[{j}].index"),
                    format!("{} is above 5", a.index()),
                );
            }
            let (value, mask) = match a.op() {
                Op::ScmpCmpMaskedEq => (a.value_two().unwrap_or(0), a.value()),
                _ => (a.value(), u64::MAX),
            };
            checks.push(Check {
                index: a.index() as u32,
                op: a.op(),
                value,
                mask,
            });
        }
        if sc.names().is_empty() {
            return err(format!("{field}.names"), "must name at least one syscall");
        }
        if act == default {
            continue;
        }
        // Two checks on one argument make runc add one rule per check (their OR).
        let repeated = checks
            .iter()
            .enumerate()
            .any(|(x, c)| checks[..x].iter().any(|d| d.index == c.index));
        let rule_checks: Vec<Vec<Check>> = if repeated {
            checks.iter().map(|c| vec![c.clone()]).collect()
        } else {
            vec![checks.clone()]
        };
        // A name no arch knows is skipped ([`unknown_syscalls`] reports it), as runc and crun
        // skip it: a newer profile must not break an older runtime.
        for name in sc.names() {
            for &abi in &abis {
                let Some(nr) = abi.nr(name) else { continue };
                let rules = table.entry(abi).or_default().entry(nr).or_default();
                for checks in &rule_checks {
                    if rules.iter().any(|r| r.checks.is_empty()) {
                        break; // an unconditional rule is already there: it wins
                    }
                    if checks.is_empty() {
                        rules.clear();
                    }
                    rules.push(Rule {
                        checks: checks.clone(),
                        action: act,
                    });
                }
            }
        }
    }
    if notify {
        flags |= FLAG_NEW_LISTENER;
    }
    let (insns, sections) = emit(&abis, &table, default).map_err(|problem| PlanError {
        field: "linux.seccomp".into(),
        problem,
    })?;
    Ok(Compiled {
        insns,
        flags,
        notify,
        sections,
    })
}

/// crun's annotation: a syscall name no arch knows fails the config instead of being skipped.
pub const FAIL_UNKNOWN_SYSCALL_ANNOTATION: &str = "run.oci.seccomp_fail_unknown_syscall";

/// `(field, name)` of every syscall name in the profile that no arch knows.
pub fn unknown_syscalls(s: &LinuxSeccomp) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        for (k, name) in sc.names().iter().enumerate() {
            if !is_known_elsewhere(name) {
                out.push((
                    format!("linux.seccomp.syscalls[{i}].names[{k}]"),
                    name.clone(),
                ));
            }
        }
    }
    out
}

/// Names of other arches' syscalls (libseccomp accepts them everywhere and skips them).
fn is_known_elsewhere(name: &str) -> bool {
    syscalls::x86::Sysno::from_str(name).is_ok()
        || syscalls::arm::Sysno::from_str(name).is_ok()
        || syscalls::aarch64::Sysno::from_str(name).is_ok()
        || syscalls::x86_64::Sysno::from_str(name).is_ok()
        || syscalls::powerpc64::Sysno::from_str(name).is_ok()
        || syscalls::s390x::Sysno::from_str(name).is_ok()
        || syscalls::mips::Sysno::from_str(name).is_ok()
        || syscalls::riscv64::Sysno::from_str(name).is_ok()
        || syscalls::sparc64::Sysno::from_str(name).is_ok()
        || matches!(name, "socketcall" | "ipc" | "sigreturn" | "_sysctl")
}

type Sections = Vec<(usize, &'static str)>;

fn emit(
    abis: &[Abi],
    table: &BTreeMap<Abi, BTreeMap<u32, Vec<Rule>>>,
    default: u32,
) -> Result<(Vec<Insn>, Sections), String> {
    let mut a = Asm::default();
    let empty = BTreeMap::new();
    let kill = a.label();
    a.ld(OFF_ARCH);
    // One entry per audit arch; x32 lives inside x86_64's.
    let mut arch_entries = Vec::new();
    for &abi in abis {
        let audit = match abi {
            Abi::X86_64 => AUDIT_ARCH_X86_64,
            Abi::X86 => AUDIT_ARCH_I386,
            Abi::Aarch64 => AUDIT_ARCH_AARCH64,
            Abi::Arm => AUDIT_ARCH_ARM,
            Abi::X32 => continue,
        };
        let entry = a.label();
        let next = a.label();
        a.jmp(Cond::Eq, audit, entry, next);
        a.here(next);
        arch_entries.push((abi, entry));
    }
    // Any other arch: a process of an ABI the profile does not cover is killed.
    a.ja(kill);
    for &(abi, entry) in &arch_entries {
        a.here(entry);
        a.ld(OFF_NR);
        if abi == Abi::X86_64 {
            let (x32, native, high) = (a.label(), a.label(), a.label());
            a.jmp(Cond::Ge, X32_SYSCALL_BIT, high, native);
            // nr -1 is how a tracer skips a call: judged by the native rules, as libseccomp does.
            a.here(high);
            a.jmp(Cond::Eq, u32::MAX, native, x32);
            if abis.contains(&Abi::X32) {
                // x32 has a tree of its own: x86_64's rules under x32's numbers, with 32-bit
                // argument checks (libseccomp's x32 table, the kernel's syscall_64.tbl).
                a.here(x32);
                a.and(!X32_SYSCALL_BIT);
                let x32_rules = x32_table(table.get(&abi).unwrap_or(&empty));
                dispatch(&mut a, Abi::X32, &x32_rules, default);
            } else {
                a.here(x32);
                a.ja(kill);
            }
            a.here(native);
            dispatch(&mut a, abi, table.get(&abi).unwrap_or(&empty), default);
        } else {
            dispatch(&mut a, abi, table.get(&abi).unwrap_or(&empty), default);
        }
    }
    a.here(kill);
    a.ret(bpf::RET_KILL_PROCESS);
    let (insns, pos) = a.finish()?;
    let sections = arch_entries
        .iter()
        .map(|(abi, l)| (pos[*l], abi.name()))
        .collect();
    Ok((insns, sections))
}

/// A run of syscall numbers with one outcome: an unconditional action, or (a single number)
/// the rules of one syscall.
#[derive(Clone, Copy)]
struct Segment {
    lo: u32,
    hi: u32,
    /// `Some(action)` for an unconditional action; `None` for a syscall with conditions.
    action: Option<u32>,
}

/// Consecutive numbers with the same unconditional action become one segment: most profiles
/// allow long runs of syscalls, and a smaller filter is quicker for the kernel to load and run.
fn segments(rules: &BTreeMap<u32, Vec<Rule>>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    for (&nr, r) in rules {
        let action = match r.as_slice() {
            [only] if only.checks.is_empty() => Some(only.action),
            _ => None,
        };
        match out.last_mut() {
            Some(last) if action.is_some() && last.action == action && last.hi + 1 == nr => {
                last.hi = nr
            }
            _ => out.push(Segment {
                lo: nr,
                hi: nr,
                action,
            }),
        }
    }
    out
}

/// A binary search over the ABI's segments (A holds nr), then the rules of conditional syscalls.
fn dispatch(a: &mut Asm, abi: Abi, rules: &BTreeMap<u32, Vec<Rule>>, default: u32) {
    let segs = segments(rules);
    let mut blocks = Vec::new();
    search(a, &segs, default, &mut blocks);
    for (nr, block) in blocks {
        a.here(block);
        for rule in &rules[&nr] {
            let next = a.label();
            for c in &rule.checks {
                emit_check(a, abi, c, next);
            }
            a.ret(rule.action);
            a.here(next);
        }
        a.ret(default);
    }
}

/// A leaf of a few segments, or a `jge` splitting them. In a leaf, each segment costs two
/// instructions: past its end, try the next; at or after its start, its outcome; else the
/// default (a gap). Conditional syscalls get a block of their own, emitted after the tree.
fn search(a: &mut Asm, segs: &[Segment], default: u32, blocks: &mut Vec<(u32, usize)>) {
    if segs.len() <= 4 {
        let mut rets: Vec<(u32, usize)> = Vec::new();
        let miss = a.label();
        for seg in segs {
            let target = match seg.action {
                Some(act) => match rets.iter().find(|(x, _)| *x == act) {
                    Some((_, l)) => *l,
                    None => {
                        let l = a.label();
                        rets.push((act, l));
                        l
                    }
                },
                None => {
                    let l = a.label();
                    blocks.push((seg.lo, l));
                    l
                }
            };
            let (next, inside) = (a.label(), a.label());
            a.jmp(Cond::Gt, seg.hi, next, inside);
            a.here(inside);
            a.jmp(Cond::Ge, seg.lo, target, miss);
            a.here(next);
        }
        a.here(miss);
        a.ret(default);
        for (act, l) in rets {
            a.here(l);
            a.ret(act);
        }
        return;
    }
    let mid = segs.len() / 2;
    let (hi, lo) = (a.label(), a.label());
    a.jmp(Cond::Ge, segs[mid].lo, hi, lo);
    a.here(lo);
    search(a, &segs[..mid], default, blocks);
    a.here(hi);
    search(a, &segs[mid..], default, blocks);
}

/// Falls through when the check holds, jumps to `fail` otherwise.
fn emit_check(a: &mut Asm, abi: Abi, c: &Check, fail: usize) {
    let (vhi, vlo) = ((c.value >> 32) as u32, c.value as u32);
    let (mhi, mlo) = ((c.mask >> 32) as u32, c.mask as u32);
    let pass = a.label();
    // 32-bit ABIs pass 32-bit arguments: only the low word is compared, as libseccomp does.
    let wide = !abi.is_32bit();
    let lo_then = |a: &mut Asm, cond: Cond, k: u32, taken_passes: bool| {
        a.ld(off_arg_lo(c.index));
        if taken_passes {
            a.jmp(cond, k, pass, fail)
        } else {
            a.jmp(cond, k, fail, pass)
        }
    };
    match c.op {
        Op::ScmpCmpEq | Op::ScmpCmpMaskedEq => {
            let mask = c.op == Op::ScmpCmpMaskedEq;
            if wide {
                let next = a.label();
                a.ld(off_arg_hi(c.index));
                if mask {
                    a.and(mhi);
                }
                a.jmp(Cond::Eq, vhi & mhi, next, fail);
                a.here(next);
            }
            a.ld(off_arg_lo(c.index));
            if mask {
                a.and(mlo);
            }
            a.jmp(Cond::Eq, vlo & mlo, pass, fail);
        }
        Op::ScmpCmpNe => {
            if wide {
                let lo = a.label();
                a.ld(off_arg_hi(c.index));
                a.jmp(Cond::Eq, vhi, lo, pass);
                a.here(lo);
            }
            lo_then(a, Cond::Eq, vlo, false);
        }
        Op::ScmpCmpGt | Op::ScmpCmpGe => {
            let cond = if c.op == Op::ScmpCmpGt {
                Cond::Gt
            } else {
                Cond::Ge
            };
            if wide {
                let (eq, lo) = (a.label(), a.label());
                a.ld(off_arg_hi(c.index));
                a.jmp(Cond::Gt, vhi, pass, eq);
                a.here(eq);
                a.jmp(Cond::Eq, vhi, lo, fail);
                a.here(lo);
            }
            lo_then(a, cond, vlo, true);
        }
        Op::ScmpCmpLt | Op::ScmpCmpLe => {
            // a < v  ⇔ !(a >= v);  a <= v ⇔ !(a > v)
            let cond = if c.op == Op::ScmpCmpLt {
                Cond::Ge
            } else {
                Cond::Gt
            };
            if wide {
                let (eq, lo) = (a.label(), a.label());
                a.ld(off_arg_hi(c.index));
                a.jmp(Cond::Gt, vhi, fail, eq);
                a.here(eq);
                a.jmp(Cond::Eq, vhi, lo, pass);
                a.here(lo);
            }
            lo_then(a, cond, vlo, false);
        }
    }
    a.here(pass);
}

/// The disassembly of a compiled filter, syscall numbers named per ABI section.
pub fn dump(c: &Compiled) -> String {
    let listing = bpf::Disasm(&c.insns).to_string();
    let mut out = String::new();
    let mut abi = None;
    let mut a_is_nr = false;
    for (pc, (line, insn)) in listing.lines().zip(&c.insns).enumerate() {
        if let Some((_, name)) = c.sections.iter().find(|(start, _)| *start == pc) {
            abi = Abi::by_name(name);
            out.push_str(&format!("# {name}\n"));
        }
        out.push_str(line);
        match insn.code {
            bpf::LD_W_ABS => a_is_nr = insn.k == OFF_NR,
            bpf::ALU_AND_K => {}
            bpf::JMP_JEQ_K | bpf::JMP_JGE_K | bpf::JMP_JGT_K if a_is_nr => {
                if let Some(name) = abi.and_then(|a| a.syscall_name(insn.k)) {
                    out.push_str(&format!("    # {name}"));
                }
            }
            _ => {}
        }
        out.push('\n');
    }
    out
}

/// The action the filter returns for `name(args)` on `arch` (default: the host's), by running
/// the compiled BPF.
pub fn check(
    c: &Compiled,
    host_arch: &str,
    arch: Option<&str>,
    name: &str,
    args: &[u64],
) -> Result<u32, String> {
    let abi = match arch {
        Some(a) => Abi::by_name(a)
            .ok_or_else(|| format!("unknown arch {a:?}: use x86_64, x86, x32, aarch64 or arm"))?,
        None => Abi::by_name(host_arch)
            .ok_or_else(|| format!("seccomp is not supported on {host_arch}"))?,
    };
    let lookup = if abi == Abi::X32 { Abi::X86_64 } else { abi };
    let nr = match name.parse::<u32>() {
        Ok(n) => n,
        Err(_) => lookup
            .nr(name)
            .ok_or_else(|| format!("{name:?} is not a {} syscall", abi.name()))?,
    };
    let nr = if abi == Abi::X32 {
        let own = X32_OWN
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(n32, _)| *n32);
        own.unwrap_or(nr) | X32_SYSCALL_BIT
    } else {
        nr
    };
    if args.len() > 6 {
        return Err("at most 6 arguments".into());
    }
    let mut data = bpf::Data {
        nr: nr as i32,
        arch: abi.audit(),
        ip: 0,
        args: [0; 6],
    };
    data.args[..args.len()].copy_from_slice(args);
    bpf::run(&c.insns, &data)
}

/// Turns the legacy `"name": "x"` of a rule into `"names": ["x"]` (oci-spec knows only `names`).
pub fn lift_legacy_names(seccomp: &mut serde_json::Value) {
    let Some(rules) = seccomp.get_mut("syscalls").and_then(|r| r.as_array_mut()) else {
        return;
    };
    for rule in rules {
        let Some(obj) = rule.as_object_mut() else {
            continue;
        };
        if !obj.contains_key("names")
            && let Some(name) = obj.remove("name")
        {
            obj.insert("names".into(), serde_json::Value::Array(vec![name]));
        }
    }
}

/// Reads a profile: either the `linux.seccomp` object itself or a whole `config.json`.
pub fn load_profile(bytes: &[u8]) -> Result<LinuxSeccomp, PlanError> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| PlanError {
        field: String::new(),
        problem: format!("invalid JSON: {e}"),
    })?;
    let (mut value, prefix) = match v.pointer("/linux/seccomp") {
        Some(s) => (s.clone(), "linux.seccomp"),
        None if v.get("linux").is_some() => {
            return err("linux.seccomp", "the config has no seccomp profile");
        }
        None => (v, "linux.seccomp"),
    };
    lift_legacy_names(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let mut problem = e.into_inner().to_string();
        if let Some(cut) = problem.find(", expected one of") {
            problem.truncate(cut);
        }
        PlanError {
            field: if path == "." {
                prefix.into()
            } else {
                format!("{prefix}.{path}")
            },
            problem,
        }
    })
}
