//! `ferrun update`: new limits for a live container, from flags or a `linux.resources` document,
//! planned as `create` plans them and written to its cgroups.

use super::common::live;
use crate::bail;
use crate::cgroups::{Cgroup, layout_of};
use crate::error::{Context, Error, Result};
use crate::state::{Status, Store};
use ferrun_plans::CgroupLayout;

/// `update`'s flags, runc's names.
#[derive(Clone, Debug, Default)]
pub struct UpdateFlags {
    pub resources: Option<String>,
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub kernel_memory: Option<String>,
    pub kernel_memory_tcp: Option<String>,
    pub cpu_share: Option<u64>,
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_burst: Option<u64>,
    pub cpu_rt_period: Option<u64>,
    pub cpu_rt_runtime: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub cpu_idle: Option<i64>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
}

/// `100m`, `1.5g`, `1GB`, `-1`: binary units, as runc (docker/go-units) reads them.
pub fn parse_size(flag: &str, s: &str) -> Result<i64> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let lower = t.to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let mult: f64 = match unit.trim() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024f64.powi(4),
        "p" | "pb" | "pib" => 1024f64.powi(5),
        _ => bail!("{flag}: invalid size {s:?}"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| Error(format!("{flag}: invalid size {s:?}")))?;
    Ok((n * mult) as i64)
}

impl UpdateFlags {
    /// The flags as a `linux.resources` object.
    fn to_json(&self) -> Result<serde_json::Value> {
        use serde_json::{Map, Value, json};
        let mut mem = Map::new();
        for (flag, key, v) in [
            ("--memory", "limit", &self.memory),
            (
                "--memory-reservation",
                "reservation",
                &self.memory_reservation,
            ),
            ("--memory-swap", "swap", &self.memory_swap),
            ("--kernel-memory", "kernel", &self.kernel_memory),
            ("--kernel-memory-tcp", "kernelTCP", &self.kernel_memory_tcp),
        ] {
            if let Some(v) = v {
                mem.insert(key.into(), json!(parse_size(flag, v)?));
            }
        }
        let mut cpu = Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                cpu.insert(k.into(), v);
            }
        };
        put("shares", self.cpu_share.map(Value::from));
        put("period", self.cpu_period.map(Value::from));
        put("quota", self.cpu_quota.map(Value::from));
        put("burst", self.cpu_burst.map(Value::from));
        put("realtimePeriod", self.cpu_rt_period.map(Value::from));
        put("realtimeRuntime", self.cpu_rt_runtime.map(Value::from));
        put("cpus", self.cpuset_cpus.clone().map(Value::from));
        put("mems", self.cpuset_mems.clone().map(Value::from));
        put("idle", self.cpu_idle.map(Value::from));
        let mut res = Map::new();
        if !mem.is_empty() {
            res.insert("memory".into(), Value::Object(mem));
        }
        if !cpu.is_empty() {
            res.insert("cpu".into(), Value::Object(cpu));
        }
        if let Some(p) = self.pids_limit {
            res.insert("pids".into(), json!({"limit": p}));
        }
        if let Some(w) = self.blkio_weight {
            res.insert("blockIO".into(), json!({"weight": w}));
        }
        Ok(Value::Object(res))
    }
}

/// `ferrun update`: new limits for a created, running or paused container. Device rules are
/// left alone, as runc leaves them.
pub fn update(store: &Store, id: &str, flags: &UpdateFlags) -> Result<()> {
    let (_, status, c) = live(store, id, "update")?;
    if status == Status::Stopped {
        bail!("cannot update container {id}: container not running");
    }
    let (bytes, what) = match &flags.resources {
        Some(path) if path == "-" => {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
                .ctx(|| "read --resources from stdin".into())?;
            (b, "--resources")
        }
        Some(path) => (
            std::fs::read(path).ctx(|| format!("--resources {path}"))?,
            "--resources",
        ),
        None => (
            serde_json::to_vec(&flags.to_json()?).unwrap_or_default(),
            "update",
        ),
    };
    let mut res = ferrun_planner::cgroups::parse_resources(&bytes, what)
        .map_err(|e| Error(e.to_string().replacen("config.json: ", "", 1)))?;
    res.set_devices(None);
    let layout = layout_of(&c);
    let applied = ferrun_planner::cgroups::resources(&res, &layout, what, false)
        .map_err(|e| Error(e.to_string().replacen("config.json: ", "", 1)))?;
    for w in &applied.warnings {
        crate::log::warn(w);
    }
    let mut writes = applied.writes;
    if let Some(m) = res.memory() {
        check_memory(&c, &layout, m, what)?;
        order_memory_writes(&c, &mut writes);
    }
    if let Some(unit) = &c.systemd_unit {
        set_unit_properties(&c, unit, &layout, &mut writes)?;
    }
    for w in &writes {
        c.write(usize::from(w.hierarchy), &w.file, &w.value, &w.field)?;
    }
    Ok(())
}

/// Files systemd writes from its own record of the unit when a property of their controller is
/// set.
const SYSTEMD_MANAGED: [&str; 12] = [
    "cpu.max",
    "cpu.weight",
    "cpu.idle",
    "memory.max",
    "memory.high",
    "memory.low",
    "memory.min",
    "memory.swap.max",
    "pids.max",
    "io.weight",
    "cpuset.cpus",
    "cpuset.mems",
];

/// The systemd driver: the new limits become the scope's properties too (systemd would put its
/// own record back at its next reload otherwise). Setting them makes systemd rewrite the other
/// files of the same controllers from that record, which may be rounder than what the container
/// was given (a CPU quota goes in 10 ms steps): those are put back as they were.
fn set_unit_properties(
    c: &Cgroup,
    unit: &str,
    layout: &CgroupLayout,
    writes: &mut [ferrun_plans::CgroupWrite],
) -> Result<()> {
    let Some(dir) = c.v2_dir() else {
        return Ok(());
    };
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    let before: Vec<(&str, String)> = SYSTEMD_MANAGED.iter().map(|f| (*f, read(f))).collect();
    // A period alone keeps the quota in force now, before systemd rewrites it rounder.
    let quota = before
        .iter()
        .find(|(f, _)| *f == "cpu.max")
        .and_then(|(_, v)| v.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "max".into());
    for w in writes.iter_mut() {
        if w.file == "cpu.max"
            && let Some(period) = w.value.strip_prefix("<keep> ")
        {
            w.value = format!("{quota} {period}");
        }
    }
    // A quota alone: the unit's quota per second needs the period in force.
    let for_unit: Vec<ferrun_plans::CgroupWrite> = writes
        .iter()
        .map(|w| {
            let mut w = w.clone();
            if w.file == "cpu.max" && !w.value.contains(' ') {
                let cur = read("cpu.max");
                let period = cur.split_whitespace().nth(1).unwrap_or("100000");
                w.value = format!("{} {period}", w.value);
            }
            w
        })
        .collect();
    let v2 = layout.v1.len() as u8;
    let props = ferrun_planner::cgroups::unit_properties(&for_unit, v2);
    crate::cgroups::systemd::set_properties(unit, &props)?;
    for (file, was) in before {
        if writes.iter().any(|w| w.file == file) || read(file) == was {
            continue;
        }
        // io.weight reads as one line per device: each is written on its own.
        for line in was.lines().filter(|l| !l.trim().is_empty()) {
            if let Err(e) = std::fs::write(dir.join(file), line.trim()) {
                crate::log::warn(&format!(
                    "update: put {file} back to {:?} after systemd rewrote it: {e}",
                    line.trim()
                ));
            }
        }
    }
    Ok(())
}

/// `checkBeforeUpdate`: refuse a limit below what the container already uses.
fn check_memory(
    c: &Cgroup,
    layout: &CgroupLayout,
    m: &oci_spec::runtime::LinuxMemory,
    what: &str,
) -> Result<()> {
    let (Some(true), Some(limit)) = (m.check_before_update(), m.limit()) else {
        return Ok(());
    };
    if limit <= 0 {
        return Ok(());
    }
    let file = if layout.v1_index("memory").is_some() {
        "memory.usage_in_bytes"
    } else {
        "memory.current"
    };
    let i = layout.v1_index("memory").unwrap_or(layout.v1.len());
    let usage: i64 = c
        .dirs
        .get(i)
        .and_then(|d| std::fs::read_to_string(d.join(file)).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if limit <= usage {
        bail!("{what}.memory.limit: {limit} is not above the current usage {usage}");
    }
    Ok(())
}

/// v1 wants memory+swap ≥ memory at every moment: raise the swap limit first when the new
/// memory limit would pass the current one (runc's order).
fn order_memory_writes(c: &Cgroup, writes: &mut [ferrun_plans::CgroupWrite]) {
    let li = writes
        .iter()
        .position(|w| w.file == "memory.limit_in_bytes");
    let si = writes
        .iter()
        .position(|w| w.file == "memory.memsw.limit_in_bytes");
    let (Some(li), Some(si)) = (li, si) else {
        return;
    };
    let dir = &c.dirs[usize::from(writes[li].hierarchy).min(c.dirs.len() - 1)];
    let current: i64 = std::fs::read_to_string(dir.join("memory.limit_in_bytes"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(i64::MAX);
    let swap: i64 = writes[si].value.parse().unwrap_or(-1);
    let swap_first = swap == -1 || current < swap;
    if swap_first != (si < li) {
        writes.swap(li, si);
    }
}
