//! What several commands share: `create`'s and `run`'s options, the bundle made absolute, the
//! config a container was made from, its init's pidfd and processes, and a live container's
//! cgroups. Uses `cache`, `state`, `cgroups` and leaves.

use crate::bail;
use crate::cache;
use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};
use crate::state::{State, Status, Store};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// `create` and `run` options.
#[derive(Clone, Debug, Default)]
pub struct CreateOpts {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    pub systemd_cgroup: bool,
    /// crun's `--config`: the config file, instead of the bundle's `config.json`.
    pub config: Option<PathBuf>,
}

pub(crate) fn absolute(p: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(p).ctx(|| format!("bundle {}", p.display()))
}

/// The `process` object of the config a container was made from.
pub(crate) fn config_process(s: &State) -> Result<serde_json::Value> {
    let bytes = match &s.config {
        Some(path) => std::fs::read(path).ctx(|| format!("config {path}"))?,
        None => cache::read_config(Path::new(&s.bundle))?,
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error(format!("bundle {}: config.json: {e}", s.bundle)))?;
    Ok(v["process"].clone())
}

pub(crate) fn pidfd_of(s: &State) -> Option<OwnedFd> {
    // SAFETY: pidfd_open returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, s.pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fresh fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    // The pid is ours only if its start time is the one we recorded (checked after opening, so
    // the pidfd pins the right process).
    crate::state::process_alive(s.pid, s.pid_start).then_some(fd)
}

/// Processes to signal for `kill --all`: those in the container's pid namespace, else its init.
pub(crate) fn container_pids(s: &State) -> Vec<i32> {
    let ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let init_ns = ns(s.pid);
    let host_ns = ns(std::process::id() as i32);
    let mut pids = vec![s.pid];
    if init_ns.is_none() || init_ns == host_ns {
        return pids;
    }
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok())
                && pid != s.pid
                && ns(pid) == init_ns
            {
                pids.push(pid);
            }
        }
    }
    pids
}

pub(crate) fn live(store: &Store, id: &str, verb: &str) -> Result<(State, Status, Cgroup)> {
    let s = store.load(id)?;
    let status = store.status(&s);
    let Some(c) = s.cgroup.clone() else {
        bail!("cannot {verb} container {id}: it has no cgroup");
    };
    Ok((s, status, c))
}
