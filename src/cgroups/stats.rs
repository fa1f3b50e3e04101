//! What `ferrun events` reports: resource usage in runc's `stats` shape, and OOM kills
//! (v1: an eventfd registered on `memory.oom_control`; cgroup2: `memory.events` watched with
//! inotify, reported when `oom_kill` grows).

use super::Cgroup;
use serde_json::{Map, Value, json};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

fn num(dir: &Path, file: &str) -> u64 {
    read(dir, file)
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// `key value` lines (memory.stat, cpu.stat, memory.events) as a map.
fn keyed(dir: &Path, file: &str) -> Map<String, Value> {
    let mut m = Map::new();
    for l in read(dir, file).unwrap_or_default().lines() {
        if let Some((k, v)) = l.split_once(' ')
            && let Ok(v) = v.trim().parse::<u64>()
        {
            m.insert(k.into(), v.into());
        }
    }
    m
}

fn get(m: &Map<String, Value>, k: &str) -> u64 {
    m.get(k).and_then(Value::as_u64).unwrap_or(0)
}

/// `max` → 0 (no limit), as runc reports it.
fn limit_v2(dir: &Path, file: &str) -> u64 {
    match read(dir, file) {
        Some(s) if s.trim() == "max" => 0,
        Some(s) => s.trim().parse().unwrap_or(0),
        None => 0,
    }
}

impl Cgroup {
    fn dir_of(&self, controller: &str) -> Option<(bool, PathBuf)> {
        if let Some(i) = self.v1_index(controller) {
            return Some((false, self.dirs[i].clone()));
        }
        self.v2_dir().map(|d| (true, d.to_path_buf()))
    }

    /// One `stats` event's `data`.
    pub fn stats(&self) -> Value {
        let mut data = Map::new();
        if let Some((v2, d)) = self.dir_of("cpuacct").or_else(|| self.dir_of("cpu")) {
            let cpu = if v2 {
                let s = keyed(&d, "cpu.stat");
                json!({
                    "usage": {
                        "total": get(&s, "usage_usec") * 1000,
                        "kernel": get(&s, "system_usec") * 1000,
                        "user": get(&s, "user_usec") * 1000,
                    },
                    "throttling": {
                        "periods": get(&s, "nr_periods"),
                        "throttledPeriods": get(&s, "nr_throttled"),
                        "throttledTime": get(&s, "throttled_usec") * 1000,
                    }
                })
            } else {
                let percpu: Vec<u64> = read(&d, "cpuacct.usage_percpu")
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                let st = keyed(&d, "cpuacct.stat");
                // USER_HZ ticks → ns.
                let tick = 1_000_000_000 / 100;
                let thr = self
                    .dir_of("cpu")
                    .map(|(_, c)| keyed(&c, "cpu.stat"))
                    .unwrap_or_default();
                json!({
                    "usage": {
                        "total": num(&d, "cpuacct.usage"),
                        "percpu": percpu,
                        "kernel": get(&st, "system") * tick,
                        "user": get(&st, "user") * tick,
                    },
                    "throttling": {
                        "periods": get(&thr, "nr_periods"),
                        "throttledPeriods": get(&thr, "nr_throttled"),
                        "throttledTime": get(&thr, "throttled_time"),
                    }
                })
            };
            data.insert("cpu".into(), cpu);
        }
        if let Some((v2, d)) = self.dir_of("memory") {
            let raw = keyed(&d, "memory.stat");
            let mem = if v2 {
                json!({
                    "cache": get(&raw, "file"),
                    "usage": {
                        "usage": num(&d, "memory.current"),
                        "max": num(&d, "memory.peak"),
                        "limit": limit_v2(&d, "memory.max"),
                        "failcnt": get(&keyed(&d, "memory.events"), "max"),
                    },
                    "swap": {
                        "usage": num(&d, "memory.swap.current"),
                        "limit": limit_v2(&d, "memory.swap.max"),
                        "failcnt": 0,
                    },
                    "raw": raw,
                })
            } else {
                let entry = |p: &str| {
                    json!({
                        "usage": num(&d, &format!("memory.{p}usage_in_bytes")),
                        "max": num(&d, &format!("memory.{p}max_usage_in_bytes")),
                        "limit": num(&d, &format!("memory.{p}limit_in_bytes")),
                        "failcnt": num(&d, &format!("memory.{p}failcnt")),
                    })
                };
                json!({
                    "cache": get(&raw, "cache"),
                    "usage": entry(""),
                    "swap": entry("memsw."),
                    "kernel": entry("kmem."),
                    "kernelTCP": entry("kmem.tcp."),
                    "raw": raw,
                })
            };
            data.insert("memory".into(), mem);
        }
        if let Some((_, d)) = self.dir_of("pids") {
            data.insert(
                "pids".into(),
                json!({ "current": num(&d, "pids.current"), "limit": limit_v2(&d, "pids.max") }),
            );
        }
        Value::Object(data)
    }

    /// `oom_kills`, unless ferrun made the memory cgroup just now (then it is 0, and is not read).
    pub fn oom_kills_so_far(&self) -> u64 {
        let fresh = self
            .v1_index("memory")
            .or_else(|| self.v2_index())
            .is_some_and(|i| self.created[i]);
        if fresh { 0 } else { self.oom_kills() }
    }

    /// How many processes the OOM killer has killed in the container's memory cgroup.
    pub fn oom_kills(&self) -> u64 {
        match self.dir_of("memory") {
            Some((true, d)) => get(&keyed(&d, "memory.events"), "oom_kill"),
            Some((false, d)) => get(&keyed(&d, "memory.oom_control"), "oom_kill"),
            None => 0,
        }
    }

    /// A watch that becomes readable on an OOM kill in the container's memory cgroup.
    pub fn oom_watch(&self) -> Option<OomWatch> {
        let (v2, d) = self.dir_of("memory")?;
        if v2 {
            // SAFETY: inotify_init1 returns a new fd or -1.
            let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
            if fd < 0 {
                return None;
            }
            // SAFETY: fresh fd.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let path = std::ffi::CString::new(
                d.join("memory.events")
                    .into_os_string()
                    .into_encoded_bytes(),
            )
            .ok()?;
            // SAFETY: valid fd and path.
            if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), libc::IN_MODIFY) }
                < 0
            {
                return None;
            }
            let seen = get(&keyed(&d, "memory.events"), "oom_kill");
            return Some(OomWatch {
                fd,
                v2_dir: Some(d),
                v1_dir: None,
                seen,
                _control: None,
            });
        }
        // SAFETY: eventfd returns a new fd or -1.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if efd < 0 {
            return None;
        }
        // SAFETY: fresh fd.
        let efd = unsafe { OwnedFd::from_raw_fd(efd) };
        let control = std::fs::File::open(d.join("memory.oom_control")).ok()?;
        let line = format!("{} {}", efd.as_raw_fd(), control.as_raw_fd());
        std::fs::write(d.join("cgroup.event_control"), line).ok()?;
        Some(OomWatch {
            fd: efd,
            v2_dir: None,
            v1_dir: Some(d),
            seen: 0,
            _control: Some(control),
        })
    }
}

/// See [`Cgroup::oom_watch`].
pub struct OomWatch {
    fd: OwnedFd,
    v2_dir: Option<PathBuf>,
    v1_dir: Option<PathBuf>,
    seen: u64,
    _control: Option<std::fs::File>,
}

impl OomWatch {
    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// How many OOM kills happened since the last call (drains the fd).
    pub fn take(&mut self) -> u64 {
        let mut buf = [0u8; 4096];
        // SAFETY: reading into our buffer from our fd (non-blocking).
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match &self.v2_dir {
            // One report per wake-up: the counter also counts every failed reclaim of one OOM.
            // The kernel also wakes the eventfd when the cgroup goes away: not an OOM.
            None if n == 8 => u64::from(
                buf[..8].iter().any(|b| *b != 0)
                    && self
                        .v1_dir
                        .as_ref()
                        .is_some_and(|d| d.join("cgroup.event_control").exists()),
            ),
            None => 0,
            Some(d) => {
                let now = get(&keyed(d, "memory.events"), "oom_kill");
                let new = now.saturating_sub(self.seen);
                self.seen = now;
                new
            }
        }
    }
}
