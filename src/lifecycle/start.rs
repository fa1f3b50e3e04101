//! `ferrun start`: run the `startContainer` hooks, release a created container through its exec
//! fifo, forward its READY=1, run the `poststart` hooks.

use super::common::{config_process, pidfd_of};
use crate::bail;
use crate::error::{Context, Result};
use crate::state::{Status, Store};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// `ferrun start`: release a created container.
pub fn start(store: &Store, id: &str) -> Result<()> {
    let s = store.load(id)?;
    let status = store.status(&s);
    if status != Status::Created {
        bail!(
            "cannot start container {id}: it is {}, not created",
            status.as_str()
        );
    }
    let fifo = store.fifo(id);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo);
    let mut f = match f {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            bail!("cannot start container {id}: container not running")
        }
        Err(e) => return Err(e).ctx(|| format!("open {}", fifo.display())),
    };
    if let Some(h) = &s.hooks
        && !h.start_container.is_empty()
    {
        let Some(pidfd) = pidfd_of(&s) else {
            bail!("cannot start container {id}: container not running");
        };
        let st = crate::host::hooks::state(h, id, "created", s.pid, &s.bundle);
        let process = config_process(&s)?;
        if let Err(e) = crate::host::hooks::run_start_container(
            &h.start_container,
            &st,
            &store.root,
            id,
            &process,
        ) {
            // The spec: a failed startContainer hook stops the container.
            kill(&pidfd);
            return Err(e);
        }
    }
    let notify = match &s.notify {
        Some(_) => Some(crate::host::notify::bind(&store.dir(id))?),
        None => None,
    };
    f.write_all(b"0")
        .ctx(|| format!("write {}", fifo.display()))?;
    std::fs::remove_file(&fifo).ctx(|| format!("remove {}", fifo.display()))?;
    if let (Some(sock), Some(host), Some(pidfd)) = (&notify, &s.notify, pidfd_of(&s)) {
        crate::host::notify::wait_ready(sock, pidfd.as_raw_fd(), s.pid, host)?;
    }
    if let Some(h) = &s.hooks
        && !h.poststart.is_empty()
    {
        let st = crate::host::hooks::state(h, id, "running", s.pid, &s.bundle);
        // Spec 1.3: a failed poststart hook is an error and stops the container (its
        // poststop hooks run when it is deleted).
        if let Err(e) = crate::host::hooks::run("poststart", &h.poststart, &st, None) {
            if let Some(pidfd) = pidfd_of(&s) {
                kill(&pidfd);
            }
            return Err(e);
        }
    }
    Ok(())
}

fn kill(pidfd: &std::os::fd::OwnedFd) {
    // SAFETY: signalling through the pidfd we hold.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            0,
            0,
        )
    };
}
