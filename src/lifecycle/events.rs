//! `ferrun events`: runc's stats events once or every interval, and OOM events, until the
//! container stops.

use super::common::{live, pidfd_of};
use crate::bail;
use crate::cgroups::Cgroup;
use crate::error::{Context, Result};
use crate::state::{Status, Store};
use std::io::Write;
use std::os::fd::AsRawFd;

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
    let Some(pidfd) = pidfd_of(&s) else {
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
