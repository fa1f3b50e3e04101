//! The reference: libseccomp's filter for an OCI profile, built the way runc builds it
//! (arches from the profile, rules in config order, rules equal to the default dropped, one rule
//! per check when a rule checks one argument twice). Shared by the differential test and the
//! compile benchmark.

use ferrun_planner::seccomp::bpf::{self, Insn};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction as A, LinuxSeccompOperator as Op};
use std::io::{Read, Seek};

pub fn scmp_action(a: A, errno: Option<u32>) -> ScmpAction {
    match a {
        A::ScmpActKill | A::ScmpActKillThread => ScmpAction::KillThread,
        A::ScmpActKillProcess => ScmpAction::KillProcess,
        A::ScmpActTrap => ScmpAction::Trap,
        A::ScmpActErrno => ScmpAction::Errno(errno.unwrap_or(1) as i32),
        A::ScmpActTrace => ScmpAction::Trace(errno.unwrap_or(1) as u16),
        A::ScmpActLog => ScmpAction::Log,
        A::ScmpActAllow => ScmpAction::Allow,
        A::ScmpActNotify => ScmpAction::Notify,
    }
}

/// libseccomp's filter for the profile, the way runc builds it.
pub fn libseccomp_bpf(s: &LinuxSeccomp) -> Vec<Insn> {
    let default = scmp_action(s.default_action(), s.default_errno_ret());
    let mut ctx = ScmpFilterContext::new(default).expect("ctx");
    for a in s.architectures().iter().flatten() {
        let arch = match format!("{a:?}").as_str() {
            "ScmpArchX86" => ScmpArch::X86,
            "ScmpArchX32" => ScmpArch::X32,
            "ScmpArchX86_64" => ScmpArch::X8664,
            _ => continue,
        };
        let _ = ctx.add_arch(arch);
    }
    for sc in s.syscalls().iter().flatten() {
        let act = scmp_action(sc.action(), sc.errno_ret());
        if act == default {
            continue;
        }
        let conds: Vec<ScmpArgCompare> = sc
            .args()
            .iter()
            .flatten()
            .map(|a| {
                let op = match a.op() {
                    Op::ScmpCmpNe => ScmpCompareOp::NotEqual,
                    Op::ScmpCmpLt => ScmpCompareOp::Less,
                    Op::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
                    Op::ScmpCmpEq => ScmpCompareOp::Equal,
                    Op::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
                    Op::ScmpCmpGt => ScmpCompareOp::Greater,
                    Op::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(a.value()),
                };
                let datum = if a.op() == Op::ScmpCmpMaskedEq {
                    a.value_two().unwrap_or(0)
                } else {
                    a.value()
                };
                ScmpArgCompare::new(a.index() as u32, op, datum)
            })
            .collect();
        let repeated = conds.len() > 1
            && sc.args().iter().flatten().enumerate().any(|(i, a)| {
                sc.args()
                    .iter()
                    .flatten()
                    .take(i)
                    .any(|b| b.index() == a.index())
            });
        for name in sc.names() {
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                continue;
            };
            if conds.is_empty() {
                let _ = ctx.add_rule(act, nr);
            } else if repeated {
                for c in &conds {
                    let _ = ctx.add_rule_conditional(act, nr, std::slice::from_ref(c));
                }
            } else {
                let _ = ctx.add_rule_conditional(act, nr, &conds);
            }
        }
    }
    let mut f = tempfile::tempfile().expect("tempfile");
    ctx.export_bpf(&f).expect("export");
    let mut bytes = Vec::new();
    f.rewind().expect("rewind");
    f.read_to_end(&mut bytes).expect("read");
    bpf::from_bytes(&bytes).expect("whole instructions")
}
