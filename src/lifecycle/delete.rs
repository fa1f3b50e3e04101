//! `ferrun delete`: kill what is left (with `--force`), remove the cgroups, the state and a plan
//! no other container can use, run the `poststop` hooks.

use super::common::{container_pids, pidfd_of};
use crate::bail;
use crate::cache;
use crate::error::{Error, Result};
use crate::log;
use crate::state::{Status, Store};
use std::os::fd::AsRawFd;

/// `ferrun delete`.
pub fn delete(store: &Store, id: &str, force: bool) -> Result<()> {
    let s = match store.load(id) {
        Ok(s) => s,
        Err(e) if force && crate::state::check_id(id).is_ok() => {
            // An unknown id is no error with --force, as in runc (engines delete after every
            // failed create). A state that cannot be read is: its container may still run.
            log::debug(&format!("delete --force: {e}"));
            store.check_unreadable(id, &e)?;
            return store.remove(id);
        }
        Err(e) => return Err(e),
    };
    let mut status = store.status(&s);
    if matches!(status, Status::Running | Status::Created) && killed_and_exiting(&s) {
        // `kill 9` returns before the process is gone: a delete right after it waits for
        // the death it follows instead of calling the container running.
        status = store.status(&s);
    }
    if status != Status::Stopped {
        if let Some(c) = s.cgroup.as_ref().filter(|c| force && c.owned()) {
            c.signal_all(libc::SIGKILL)?;
        }
        if !force {
            bail!(
                "cannot delete container {id} that is not stopped: it is {} (use --force)",
                status.as_str()
            );
        }
        if let Some(pidfd) = pidfd_of(&s) {
            let victims = container_pids(&s);
            for pid in victims.iter().skip(1) {
                // SAFETY: plain kill of the container's processes.
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
            // SAFETY: signalling through our pidfd, then waiting for it to become readable (exit).
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd.as_raw_fd(),
                    libc::SIGKILL,
                    0,
                    0,
                );
            }
            // A frozen container cannot die until thawed (runc kills, then thaws), whoever
            // froze it.
            if let Some(c) = &s.cgroup {
                c.release_frozen_for_kill()?;
            }
            // SAFETY: waiting for our pidfd to become readable (exit).
            unsafe {
                let mut p = libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                if libc::poll(&mut p, 1, 10_000) == 0 {
                    bail!("delete container {id}: its process {} did not die", s.pid);
                }
            }
        }
    }
    if let Some(c) = &s.cgroup {
        // Processes left behind by an init that died (no pid namespace) go with it, as runc
        // does; the state stays until the cgroup is gone, so a failed delete can be retried.
        c.remove(true)
            .map_err(|e| Error(format!("delete container {id}: {}", e.0)))?;
    }
    store.remove(id)?;
    if s.plan_private {
        cache::forget(&store.root, &s.plan);
    }
    if let Some(h) = &s.hooks {
        let st = crate::host::hooks::state(h, id, "stopped", 0, &s.bundle);
        crate::host::hooks::run_warn("poststop", &h.poststop, &st);
    }
    Ok(())
}

/// True once the init, exiting or with a SIGKILL pending, has died within a moment (a frozen
/// one cannot).
fn killed_and_exiting(s: &crate::state::State) -> bool {
    // `PF_EXITING` in the flags of /proc/<pid>/stat (field 9): do_exit has begun.
    const PF_EXITING: u64 = 0x4;
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", s.pid)).unwrap_or_default();
    let exiting = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(6))
        .and_then(|f| f.parse::<u64>().ok())
        .is_some_and(|f| f & PF_EXITING != 0);
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid)).unwrap_or_default();
    let kill_bit = 1u64 << (libc::SIGKILL - 1);
    let pending = status.lines().any(|l| {
        ["SigPnd:", "ShdPnd:"].iter().any(|k| {
            l.strip_prefix(k)
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                .is_some_and(|m| m & kill_bit != 0)
        })
    });
    if !exiting && !pending {
        return false;
    }
    let Some(pidfd) = pidfd_of(s) else {
        return true;
    };
    let mut p = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd on our pidfd.
    unsafe { libc::poll(&mut p, 1, 2_000) > 0 }
}
