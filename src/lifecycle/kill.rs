//! `ferrun kill`: a signal to the container's process, or to all of them (`--all`).

use super::common::{container_pids, pidfd_of};
use crate::bail;
use crate::error::{Error, Result, errno_text};
use crate::state::{Status, Store};
use std::os::fd::AsRawFd;

/// Parses `KILL`, `SIGKILL`, `kill` or `9`.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal {s:?}");
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| Error(format!("invalid signal {s:?}")))
}

/// `ferrun kill`.
pub fn kill(store: &Store, id: &str, signal: &str, all: bool) -> Result<()> {
    let sig = parse_signal(signal)?;
    let s = store.load(id)?;
    let status = store.status(&s);
    if all && status == Status::Stopped {
        // Processes can outlive the init (no pid namespace of its own: a pod's shared one);
        // engines send `kill --all` for them after it exits, as runc takes it.
        if let Some(c) = s.cgroup.as_ref().filter(|c| c.owned()) {
            c.signal_all(sig)?;
        }
        return Ok(());
    }
    if !matches!(status, Status::Created | Status::Running | Status::Paused) {
        bail!(
            "cannot kill container {id}: container not running (it is {})",
            status.as_str()
        );
    }
    let Some(pidfd) = pidfd_of(&s) else {
        bail!("cannot kill container {id}: container not running")
    };
    if all {
        match &s.cgroup {
            // Every process in the container's cgroup (cgroup.kill for SIGKILL on cgroup2).
            Some(c) if c.owned() => c.signal_all(sig)?,
            _ => {
                for pid in container_pids(&s).into_iter().skip(1) {
                    // SAFETY: plain kill; processes in the container's pid namespace.
                    unsafe { libc::kill(pid, sig) };
                }
            }
        }
    }
    // SAFETY: signalling through a pidfd we hold.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, 0, 0) };
    if r < 0 {
        bail!("kill container {id}: {}", errno_text(crate::errno()));
    }
    if sig == libc::SIGKILL
        && let Some(c) = &s.cgroup
    {
        // A frozen process cannot die: thaw it, as runc does (or, under an ancestor someone
        // else froze, move it out).
        c.release_frozen_for_kill()?;
    }
    Ok(())
}
