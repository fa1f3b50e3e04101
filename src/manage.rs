//! Commands on a live container's cgroups: `pause`, `resume`, `ps`, `events` and `update`.

use crate::bail;
use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};
use crate::state::{State, Status, Store};
use ferrun_plans::CgroupLayout;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

fn live(store: &Store, id: &str, verb: &str) -> Result<(State, Status, Cgroup)> {
    let s = store.load(id)?;
    let status = store.status(&s);
    let Some(c) = s.cgroup.clone() else {
        bail!("cannot {verb} container {id}: it has no cgroup");
    };
    Ok((s, status, c))
}

/// `ferrun pause`: freeze every process of a created or running container.
pub fn pause(store: &Store, id: &str) -> Result<()> {
    let (_, status, c) = live(store, id, "pause")?;
    if !matches!(status, Status::Running | Status::Created) {
        bail!(
            "cannot pause container {id}: container not running (it is {})",
            status.as_str()
        );
    }
    c.set_frozen(true)
}

/// `ferrun resume`: thaw a paused container.
pub fn resume(store: &Store, id: &str) -> Result<()> {
    let (_, status, c) = live(store, id, "resume")?;
    if status != Status::Paused {
        bail!(
            "cannot resume container {id}: container not paused (it is {})",
            status.as_str()
        );
    }
    c.set_frozen(false)
}

/// `ferrun ps`: the container's processes, as a JSON list of host pids or as the host's `ps`
/// output (`-ef` unless other arguments are given) cut to the container's lines.
pub fn ps(store: &Store, id: &str, format: &str, args: &[String]) -> Result<String> {
    let (_, _, c) = live(store, id, "list the processes of")?;
    let pids = c.pids();
    match format {
        "json" => Ok(serde_json::to_string(&pids).unwrap_or_default() + "\n"),
        "table" => {
            let args: Vec<String> = if args.is_empty() {
                vec!["-ef".into()]
            } else {
                args.to_vec()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .ctx(|| "run ps".into())?;
            if !out.status.success() {
                bail!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or("");
            let Some(col) = header.split_whitespace().position(|f| f == "PID") else {
                bail!("ps {}: no PID column in its output", args.join(" "));
            };
            let mut res = format!("{header}\n");
            for l in lines {
                let pid = l.split_whitespace().nth(col).and_then(|p| p.parse().ok());
                if pid.is_some_and(|p: i32| pids.contains(&p)) {
                    res.push_str(l);
                    res.push('\n');
                }
            }
            Ok(res)
        }
        other => bail!("invalid --format {other:?}: use table or json"),
    }
}

fn pidfd(s: &State) -> Option<OwnedFd> {
    // SAFETY: pidfd_open returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, s.pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fresh fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    crate::state::process_alive(s.pid, s.pid_start).then_some(fd)
}

fn emit(line: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|_| out.flush())
        .ctx(|| "write an event".into())
}

/// `ferrun events`: one `stats` event (`--stats`), or a stream of them every `interval`
/// with an `oom` event whenever the kernel's OOM killer strikes in the container, until the
/// container stops.
pub fn events(store: &Store, id: &str, once: bool, interval: std::time::Duration) -> Result<()> {
    let (s, status, c) = live(store, id, "watch")?;
    if !matches!(status, Status::Running | Status::Created | Status::Paused) {
        bail!("container with id {id} is not running");
    }
    let stats = |c: &Cgroup| serde_json::json!({"type": "stats", "id": id, "data": c.stats()});
    if once {
        return emit(&stats(&c));
    }
    if interval.is_zero() {
        bail!("--interval must be greater than 0");
    }
    let Some(pidfd) = pidfd(&s) else {
        bail!("container with id {id} is not running");
    };
    let mut oom = c.oom_watch();
    let mut next = std::time::Instant::now();
    loop {
        let now = std::time::Instant::now();
        if now >= next {
            emit(&stats(&c))?;
            next = now.checked_add(interval).unwrap_or(now);
        }
        let mut fds = vec![libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(o) = &oom {
            fds.push(libc::pollfd {
                fd: o.fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let wait = next.saturating_duration_since(std::time::Instant::now());
        let ms = wait.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: a valid pollfd array.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms.max(1)) };
        if n < 0 && crate::errno() != libc::EINTR {
            bail!("events: poll: {}", crate::error::errno_text(crate::errno()));
        }
        if let (Some(o), Some(p)) = (&mut oom, fds.get(1))
            && p.revents & libc::POLLIN != 0
        {
            for _ in 0..o.take() {
                emit(&serde_json::json!({"type": "oom", "id": id}))?;
            }
        }
        if fds[0].revents & libc::POLLIN != 0 {
            // Late OOM reports of the last moments still count.
            if let Some(o) = &mut oom {
                for _ in 0..o.take() {
                    emit(&serde_json::json!({"type": "oom", "id": id}))?;
                }
            }
            return Ok(());
        }
    }
}

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

/// The layout a container's cgroups were made on, in the order its hierarchies are stored.
pub(crate) fn layout_of(c: &Cgroup) -> CgroupLayout {
    let mut layout = CgroupLayout::default();
    for h in &c.hierarchies {
        if h.v2 {
            let controllers = std::fs::read_to_string(format!("{}/cgroup.controllers", h.mount))
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect();
            layout.unified = Some(ferrun_plans::cgroups::Unified {
                mount: h.mount.clone(),
                controllers,
            });
        } else {
            layout.v1.push(ferrun_plans::cgroups::V1Hierarchy {
                controllers: h.name.split(',').map(String::from).collect(),
                mount: h.mount.clone(),
            });
        }
    }
    layout
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
    for w in &writes {
        c.write(usize::from(w.hierarchy), &w.file, &w.value, &w.field)?;
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
