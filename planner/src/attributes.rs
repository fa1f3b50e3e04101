//! Per-process attributes the kernel keeps across `execve`: `process.scheduler`
//! (`sched_setattr`), `process.ioPriority` (`ioprio_set`), `linux.personality` and
//! `linux.memoryPolicy` (`set_mempolicy`), and `process.execCPUAffinity` for `exec`. Checked
//! here, as runc checks them, so that a bad value names its field before anything exists.

use crate::{PlanError, err};
use ferrun_plans::{MEMPOLICY_FLAGS, MEMPOLICY_MODES, SCHED_FLAGS, SchedAttr, Step};
use oci_spec::runtime::{
    IOPriorityClass, LinuxMemoryPolicy, LinuxPersonality, LinuxPersonalityDomain,
    LinuxSchedulerFlag, LinuxSchedulerPolicy, MemoryPolicyFlagType, MemoryPolicyModeType,
    Scheduler,
};

/// The most NUMA nodes and CPUs a mask may name (the kernel's largest `NR_CPUS` and
/// `MAX_NUMNODES`).
const MAX_NODES: usize = 1 << 10;
const MAX_CPUS: usize = 1 << 13;

/// The spec's (and the kernel's) name of a scheduler flag. oci-spec spells the first one
/// `SCHED_RESET_ON_FORK`; the planner accepts the spec's spelling too (see `crate::parse`).
fn sched_flag_bit(f: LinuxSchedulerFlag) -> u64 {
    let name = match f {
        LinuxSchedulerFlag::SchedResetOnFork => "SCHED_FLAG_RESET_ON_FORK",
        LinuxSchedulerFlag::SchedFlagReclaim => "SCHED_FLAG_RECLAIM",
        LinuxSchedulerFlag::SchedFlagDLOverrun => "SCHED_FLAG_DL_OVERRUN",
        LinuxSchedulerFlag::SchedFlagKeepPolicy => "SCHED_FLAG_KEEP_POLICY",
        LinuxSchedulerFlag::SchedFlagKeepParams => "SCHED_FLAG_KEEP_PARAMS",
        LinuxSchedulerFlag::SchedFlagUtilClampMin => "SCHED_FLAG_UTIL_CLAMP_MIN",
        LinuxSchedulerFlag::SchedFlagUtilClampMax => "SCHED_FLAG_UTIL_CLAMP_MAX",
    };
    SCHED_FLAGS
        .iter()
        .position(|n| *n == name)
        .map_or(0, |bit| 1 << bit)
}

/// `process.scheduler` → the `sched_setattr` step.
pub(crate) fn scheduler(s: &Scheduler) -> Result<Step, PlanError> {
    let field = "process.scheduler";
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => {
            return err(
                format!("{field}.policy"),
                "SCHED_ISO is reserved: the Linux kernel does not implement it",
            );
        }
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let nice = s.nice().unwrap_or(0);
    // runc's rule: only the fair policies read a nice value.
    if matches!(policy, 0 | 3) && !(-20..=19).contains(&nice) {
        return err(
            format!("{field}.nice"),
            format!("{nice} is outside -20..19"),
        );
    }
    let priority = s.priority().unwrap_or(0);
    let realtime = matches!(policy, 1 | 2);
    if realtime && !(1..=99).contains(&priority) {
        return err(
            format!("{field}.priority"),
            format!("{priority}: SCHED_FIFO and SCHED_RR take a priority in 1..99"),
        );
    }
    if !realtime && priority != 0 {
        return err(
            format!("{field}.priority"),
            format!("{priority}: only SCHED_FIFO and SCHED_RR take a priority; it must be 0"),
        );
    }
    let (runtime, deadline, period) = (
        s.runtime().unwrap_or(0),
        s.deadline().unwrap_or(0),
        s.period().unwrap_or(0),
    );
    if policy == 6 {
        // The kernel's own rules (`__checkparam_dl`), named here rather than as EINVAL.
        if deadline == 0 {
            return err(
                format!("{field}.deadline"),
                "SCHED_DEADLINE needs a deadline in nanoseconds",
            );
        }
        if runtime < 1024 {
            return err(
                format!("{field}.runtime"),
                format!("{runtime}: SCHED_DEADLINE needs a runtime of at least 1024 ns"),
            );
        }
        if runtime > deadline {
            return err(
                format!("{field}.runtime"),
                format!("{runtime} exceeds the deadline {deadline}"),
            );
        }
        if period != 0 && deadline > period {
            return err(
                format!("{field}.deadline"),
                format!("{deadline} exceeds the period {period}"),
            );
        }
    } else if runtime != 0 || deadline != 0 || period != 0 {
        return err(
            field,
            "runtime, deadline and period are for SCHED_DEADLINE only",
        );
    }
    let flags = s
        .flags()
        .iter()
        .flatten()
        .fold(0, |acc, f| acc | sched_flag_bit(*f));
    Ok(Step::Scheduler(SchedAttr {
        policy,
        flags,
        nice,
        priority: priority as u32,
        runtime,
        deadline,
        period,
    }))
}

/// `process.ioPriority` → the `ioprio_set` step.
pub(crate) fn io_priority(class: IOPriorityClass, priority: i64) -> Result<Step, PlanError> {
    let class = match class {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&priority) {
        return err(
            "process.ioPriority.priority",
            format!("{priority} is outside 0..7"),
        );
    }
    Ok(Step::IoPriority {
        class,
        level: priority as u32,
    })
}

/// `linux.personality` → the `personality` step. The spec defines no flags yet: runc warns and
/// goes on, and so does ferrun.
pub(crate) fn personality(p: &LinuxPersonality, warnings: &mut Vec<String>) -> Step {
    for flag in p.flags().iter().flatten() {
        warnings.push(format!(
            "linux.personality.flags: {:?} ignored: the runtime spec defines no personality flags",
            ferrun_plans::clip(flag, 100)
        ));
    }
    let persona = match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    Step::Personality { persona }
}

/// `linux.memoryPolicy` → the `set_mempolicy` step: the mode's node rules and the flags' as the
/// kernel applies them, so that a refusal names the field instead of an errno at start.
pub(crate) fn memory_policy(m: &LinuxMemoryPolicy) -> Result<Step, PlanError> {
    let field = "linux.memoryPolicy";
    let name = match m.mode() {
        MemoryPolicyModeType::MpolDefault => "MPOL_DEFAULT",
        MemoryPolicyModeType::MpolPreferred => "MPOL_PREFERRED",
        MemoryPolicyModeType::MpolBind => "MPOL_BIND",
        MemoryPolicyModeType::MpolInterleave => "MPOL_INTERLEAVE",
        MemoryPolicyModeType::MpolLocal => "MPOL_LOCAL",
        MemoryPolicyModeType::MpolPreferredMany => "MPOL_PREFERRED_MANY",
        MemoryPolicyModeType::MpolWeightedInterleave => "MPOL_WEIGHTED_INTERLEAVE",
    };
    let mode = MEMPOLICY_MODES.iter().position(|n| *n == name).unwrap_or(0) as i32;
    let list = m.nodes().as_deref().map(str::trim).unwrap_or("");
    let nodes = if list.is_empty() {
        Vec::new()
    } else {
        ferrun_plans::bit_list_mask(list, MAX_NODES).ok_or_else(|| PlanError {
            field: format!("{field}.nodes"),
            problem: format!(
                "{:?} is not a node list like 0-3,7 (nodes below {MAX_NODES})",
                ferrun_plans::clip(list, 100)
            ),
        })?
    };
    let mut flags = 0;
    for f in m.flags().iter().flatten() {
        let wanted = match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => "MPOL_F_NUMA_BALANCING",
            MemoryPolicyFlagType::MpolFRelativeNodes => "MPOL_F_RELATIVE_NODES",
            MemoryPolicyFlagType::MpolFStaticNodes => "MPOL_F_STATIC_NODES",
        };
        flags |= MEMPOLICY_FLAGS
            .iter()
            .find(|(n, _)| *n == wanted)
            .map_or(0, |(_, bit)| *bit);
    }
    let has = |n: &str| {
        MEMPOLICY_FLAGS
            .iter()
            .any(|(name, bit)| *name == n && flags & bit != 0)
    };
    let relative_or_static = has("MPOL_F_STATIC_NODES") || has("MPOL_F_RELATIVE_NODES");
    match m.mode() {
        MemoryPolicyModeType::MpolDefault | MemoryPolicyModeType::MpolLocal => {
            if !nodes.is_empty() {
                return err(format!("{field}.nodes"), format!("{name} takes no nodes"));
            }
            if m.mode() == MemoryPolicyModeType::MpolLocal && relative_or_static {
                return err(format!("{field}.flags"), "MPOL_LOCAL takes no node flags");
            }
        }
        MemoryPolicyModeType::MpolPreferred => {
            if nodes.is_empty() && relative_or_static {
                return err(
                    format!("{field}.flags"),
                    "MPOL_PREFERRED without nodes (local allocation) takes no node flags",
                );
            }
        }
        _ => {
            if nodes.is_empty() {
                return err(
                    format!("{field}.nodes"),
                    format!("{name} needs at least one node"),
                );
            }
        }
    }
    if has("MPOL_F_STATIC_NODES") && has("MPOL_F_RELATIVE_NODES") {
        return err(
            format!("{field}.flags"),
            "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other",
        );
    }
    if has("MPOL_F_NUMA_BALANCING")
        && !matches!(
            m.mode(),
            MemoryPolicyModeType::MpolBind | MemoryPolicyModeType::MpolPreferredMany
        )
    {
        return err(
            format!("{field}.flags"),
            format!(
                "MPOL_F_NUMA_BALANCING applies to MPOL_BIND and MPOL_PREFERRED_MANY, not {name}"
            ),
        );
    }
    Ok(Step::MemoryPolicy { mode, flags, nodes })
}

/// A CPU list of `process.execCPUAffinity` as a `sched_setaffinity` mask.
pub(crate) fn cpu_mask(field: &str, list: &str) -> Result<Vec<u8>, PlanError> {
    ferrun_plans::bit_list_mask(list.trim(), MAX_CPUS).ok_or_else(|| PlanError {
        field: field.into(),
        problem: format!(
            "{:?} is not a CPU list like 0-3,7 (CPUs below {MAX_CPUS})",
            ferrun_plans::clip(list, 100)
        ),
    })
}
