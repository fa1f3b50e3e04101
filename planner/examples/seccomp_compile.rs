//! Cold compile of podman's seccomp profile: ferrun's compiler against libseccomp (as runc uses
//! it: the three x86 ABIs, rules in config order, BPF exported). A benchmark, not a test:
//!   cargo run --release -p ferrun-planner --example seccomp_compile
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{LinuxSeccompAction as A, LinuxSeccompOperator as Op};
use std::time::{Duration, Instant};

fn action(a: A, errno: Option<u32>) -> ScmpAction {
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

fn libseccomp(s: &oci_spec::runtime::LinuxSeccomp) -> usize {
    let default = action(s.default_action(), s.default_errno_ret());
    let mut ctx = ScmpFilterContext::new(default).expect("ctx");
    for arch in [ScmpArch::X86, ScmpArch::X32] {
        ctx.add_arch(arch).expect("arch");
    }
    for sc in s.syscalls().iter().flatten() {
        let act = action(sc.action(), sc.errno_ret());
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
        for name in sc.names() {
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let _ = if conds.is_empty() {
                ctx.add_rule(act, nr)
            } else {
                ctx.add_rule_conditional(act, nr, &conds)
            };
        }
    }
    let f = tempfile::tempfile().expect("tempfile");
    ctx.export_bpf(&f).expect("export");
    f.metadata().map(|m| m.len() as usize / 8).unwrap_or(0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/config/podman-run.json");
    let config = std::fs::read(path).expect("fixture");
    let profile = ferrun_planner::seccomp::load_profile(&config).expect("profile");
    let runs = 200;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut n_ours, mut n_theirs) = (0, 0);
    for _ in 0..runs {
        let t = Instant::now();
        let c = ferrun_planner::seccomp::compile(&profile, "x86_64").expect("compile");
        let bytes = ferrun_planner::seccomp::bpf::to_bytes(&c.insns);
        ours.push(t.elapsed());
        n_ours = bytes.len() / 8;
        let t = Instant::now();
        n_theirs = libseccomp(&profile);
        theirs.push(t.elapsed());
    }
    let (a, b) = (median(ours), median(theirs));
    println!("podman profile, x86_64 + x86 + x32, median of {runs}:");
    println!(
        "  ferrun:     {:>8.1} µs  {n_ours} instructions",
        a.as_secs_f64() * 1e6
    );
    println!(
        "  libseccomp: {:>8.1} µs  {n_theirs} instructions",
        b.as_secs_f64() * 1e6
    );
    println!(
        "  ferrun/libseccomp: {:.3}",
        a.as_secs_f64() / b.as_secs_f64()
    );
}
