//! `--systemd-cgroup`: the transient scope systemd is asked for, and the unit properties that
//! carry the resources systemd knows, translated from the cgroup2 writes the plan already has
//! (so that `update` and `create` agree). The writes themselves stay in the plan: systemd sets
//! what it has a property for, and ferrun writes every file into the delegated cgroup, as runc
//! does.

use ferrun_plans::CgroupWrite;
use ferrun_plans::cgroups::{UnitProperty, UnitValue};

/// systemd's CPU quota granularity: 1% of a CPU, 10 ms per second.
const QUOTA_STEP_USEC: u64 = 10_000;

/// The unit properties for the writes into cgroup2 hierarchy `v2`.
pub fn unit_properties(writes: &[CgroupWrite], v2: u8) -> Vec<UnitProperty> {
    let mut out: Vec<UnitProperty> = Vec::new();
    let mut set = |name: &str, value: UnitValue| {
        // A later write of the same file wins, as it would on the file.
        out.retain(|p| p.name != name);
        out.push(UnitProperty {
            name: name.into(),
            value,
        });
    };
    for w in writes.iter().filter(|w| w.hierarchy == v2) {
        let v = w.value.trim();
        let bytes = || {
            if v == "max" {
                Some(u64::MAX)
            } else {
                v.parse().ok()
            }
        };
        let name = match w.file.as_str() {
            "memory.max" => "MemoryMax",
            "memory.high" => "MemoryHigh",
            "memory.low" => "MemoryLow",
            "memory.min" => "MemoryMin",
            "memory.swap.max" => "MemorySwapMax",
            // systemd refuses TasksMax=0 ("out of range"): a limit of 0 is written into the
            // delegated cgroup once the scope exists, and only there.
            "pids.max" if v == "0" => continue,
            "pids.max" => "TasksMax",
            "cpu.weight" => "CPUWeight",
            "cpu.max" => {
                cpu_max(v, &mut set);
                continue;
            }
            "io.weight" => match v.strip_prefix("default ") {
                Some(n) => {
                    if let Ok(n) = n.trim().parse() {
                        set("IOWeight", UnitValue::U64(n));
                    }
                    continue;
                }
                None => continue,
            },
            "cpuset.cpus" | "cpuset.mems" => {
                if let Some(mask) = bitmask(v) {
                    let name = if w.file == "cpuset.cpus" {
                        "AllowedCPUs"
                    } else {
                        "AllowedMemoryNodes"
                    };
                    set(name, UnitValue::Bytes(mask));
                }
                continue;
            }
            _ => continue,
        };
        if let Some(n) = bytes() {
            set(name, UnitValue::U64(n));
        }
    }
    out
}

/// `QUOTA PERIOD`, `max PERIOD`, `QUOTA` or `<keep> PERIOD` → CPUQuotaPerSecUSec (rounded up to
/// systemd's 10 ms step, as runc does, so that a small quota is not lost) and CPUQuotaPeriodUSec.
fn cpu_max(v: &str, set: &mut impl FnMut(&str, UnitValue)) {
    let mut parts = v.split_whitespace();
    let quota = parts.next().unwrap_or("max");
    let period: Option<u64> = parts.next().and_then(|p| p.parse().ok());
    if let Some(p) = period {
        set("CPUQuotaPeriodUSec", UnitValue::U64(p));
    }
    if quota == "<keep>" {
        return;
    }
    let per_sec = match quota.parse::<u64>() {
        Ok(q) => {
            let p = period.unwrap_or(100_000).max(1);
            let per_sec = q.saturating_mul(1_000_000) / p;
            per_sec
                .div_ceil(QUOTA_STEP_USEC)
                .saturating_mul(QUOTA_STEP_USEC)
        }
        Err(_) => u64::MAX,
    };
    set("CPUQuotaPerSecUSec", UnitValue::U64(per_sec));
}

/// `0-3,8` → systemd's little-endian bitmask bytes (bit n of byte n/8), without trailing
/// zero bytes. The planner has checked the list; the limit bounds what a bitmask may cost.
fn bitmask(list: &str) -> Option<Vec<u8>> {
    let mut mask = ferrun_plans::bit_list_mask(list.trim(), 8192)?;
    while mask.last() == Some(&0) {
        mask.pop();
    }
    (!mask.is_empty()).then_some(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(file: &str, value: &str) -> CgroupWrite {
        CgroupWrite {
            hierarchy: 0,
            file: file.into(),
            value: value.into(),
            field: "f".into(),
        }
    }

    #[test]
    fn writes_become_properties() {
        let props = unit_properties(
            &[
                w("memory.max", "268435456"),
                w("memory.swap.max", "max"),
                w("pids.max", "64"),
                w("cpu.max", "5000 100000"),
                w("cpu.weight", "20"),
                w("io.weight", "default 300"),
                w("io.weight", "8:0 200"),
                w("cpuset.cpus", "0-1,9"),
                w("memory.oom.group", "1"),
            ],
            0,
        );
        let text: Vec<String> = props.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            text,
            [
                "MemoryMax=268435456",
                "MemorySwapMax=infinity",
                "TasksMax=64",
                "CPUQuotaPeriodUSec=100000",
                "CPUQuotaPerSecUSec=50000",
                "CPUWeight=20",
                "IOWeight=300",
                "AllowedCPUs=0302",
            ]
        );
    }

    #[test]
    fn a_pids_limit_of_zero_is_no_tasks_max() {
        // systemd refuses TasksMax=0; the write into the delegated cgroup sets it.
        assert!(unit_properties(&[w("pids.max", "0")], 0).is_empty());
    }

    #[test]
    fn a_small_quota_rounds_up_to_systemds_step() {
        let props = unit_properties(&[w("cpu.max", "1 1000000")], 0);
        assert!(props.contains(&UnitProperty {
            name: "CPUQuotaPerSecUSec".into(),
            value: UnitValue::U64(10_000)
        }));
        // A period changed alone leaves the quota to systemd.
        let props = unit_properties(&[w("cpu.max", "<keep> 50000")], 0);
        assert_eq!(props.len(), 1, "{props:?}");
    }
}
