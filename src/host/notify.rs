//! `NOTIFY_SOCKET` (sd_notify) through the container, as runc does: when ferrun is given one,
//! the container gets a socket of its own at `/run/notify/notify.sock` (a directory of its
//! state dir, bound in), and `start` (or `run`) waits until the container's program reports
//! `READY=1` there, forwarding what it says to the caller's socket, with `MAINPID`.

use crate::bail;
use crate::error::{Context, Result};
use ferrun_plans::{CBuf, Plan, Step};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Where the socket is inside the container.
pub const CONTAINER_DIR: &str = "/run/notify";

/// The caller's `NOTIFY_SOCKET`, if any.
pub fn host_socket() -> Option<String> {
    std::env::var("NOTIFY_SOCKET")
        .ok()
        .filter(|s| !s.is_empty())
}

/// The directory, in the container's state dir, that holds the container's socket.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("notify")
}

/// Makes the socket directory and adds to the plan its bind (after every other mount, before
/// the root changes) and `NOTIFY_SOCKET` in the program's environment.
pub fn prepare(plan: &mut Plan, state_dir: &Path) -> Result<()> {
    let d = dir(state_dir);
    std::fs::create_dir(&d).ctx(|| format!("create {}", d.display()))?;
    std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .ctx(|| format!("chmod {}", d.display()))?;
    let (Some(source), Some(dest), Some(env)) = (
        CBuf::new(&d.to_string_lossy()),
        CBuf::new(CONTAINER_DIR),
        CBuf::new(&format!("NOTIFY_SOCKET={CONTAINER_DIR}/notify.sock")),
    ) else {
        bail!("state dir {}: not a usable path", d.display());
    };
    let at = plan
        .steps
        .iter()
        .position(|s| matches!(s, Step::PivotRoot | Step::Chroot))
        .unwrap_or(plan.steps.len());
    plan.steps.insert(
        at,
        // Read-only: sending to a socket needs no write access to its directory.
        Step::BindMount {
            source,
            dest,
            recursive: false,
            set: ferrun_plans::MOUNT_ATTR_RDONLY
                | ferrun_plans::MOUNT_ATTR_NOSUID
                | ferrun_plans::MOUNT_ATTR_NODEV
                | ferrun_plans::MOUNT_ATTR_NOEXEC,
            clear: 0,
            rset: 0,
            rclear: 0,
            from: ferrun_plans::BindFrom::Child,
        },
    );
    for s in &mut plan.steps {
        if let Step::Exec { env: e, .. } = s {
            e.retain(|v| !v.text().starts_with("NOTIFY_SOCKET="));
            e.push(env.clone());
        }
    }
    Ok(())
}

/// Binds the container's socket (before the program starts, so nothing it says is lost).
pub fn bind(state_dir: &Path) -> Result<OwnedFd> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, bind, socket};
    let path = dir(state_dir).join("notify.sock");
    let _ = std::fs::remove_file(&path);
    let sock = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ctx(|| "notify socket".into())?;
    let addr = UnixAddr::new(&path).ctx(|| format!("notify socket {}", path.display()))?;
    bind(sock.as_raw_fd(), &addr).ctx(|| format!("bind {}", path.display()))?;
    // Any user in the container may report.
    let _ = std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o777));
    Ok(sock)
}

/// Waits for the container's `READY=1` and passes it on to `host` with `MAINPID`, or fails when
/// the container's process ends first. Nothing else the container says is forwarded: ferrun
/// speaks to the caller's socket as root, and a `MAINPID` of the container's choosing would
/// name any host process to the service manager.
pub fn wait_ready(sock: &OwnedFd, pidfd: i32, pid: i32, host: &str) -> Result<()> {
    use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr, sendto, socket};
    let out = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ctx(|| "socket".into())?;
    let addr = match host.strip_prefix('@') {
        Some(name) => UnixAddr::new_abstract(name.as_bytes()),
        None => UnixAddr::new(host),
    }
    .ctx(|| format!("NOTIFY_SOCKET {host}"))?;
    let send = |msg: &[u8]| {
        // The container runs either way: a caller's socket that went away is only a warning.
        if let Err(e) = sendto(out.as_raw_fd(), msg, &addr, MsgFlags::empty()) {
            crate::log::warn(&format!("NOTIFY_SOCKET {host}: send: {e}"));
        }
    };
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = [
            libc::pollfd {
                fd: sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: pidfd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: a valid pollfd array.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 && crate::errno() != libc::EINTR {
            bail!(
                "NOTIFY_SOCKET: poll: {}",
                crate::error::errno_text(crate::errno())
            );
        }
        if fds[0].revents & libc::POLLIN != 0 {
            // SAFETY: reading one datagram into our buffer.
            let got =
                unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if got > 0 {
                let msg = &buf[..got as usize];
                if msg.split(|b| *b == b'\n').any(|l| l == b"READY=1") {
                    send(format!("READY=1\nMAINPID={pid}").as_bytes());
                    barrier(out.as_raw_fd(), &addr, host);
                    return Ok(());
                }
            }
            continue;
        }
        if fds[1].revents & libc::POLLIN != 0 {
            bail!("the container's process exited before it reported READY=1");
        }
    }
}

/// `sd_notify_barrier`: sends `BARRIER=1` with the write end of a pipe and waits (5 s at most)
/// until the service manager closes it, which it does once it has read what came before. A
/// caller that exits at once could otherwise leave systemd unable to tell whose READY=1 it was.
fn barrier(sock: i32, addr: &nix::sys::socket::UnixAddr, host: &str) {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let mut p = [0; 2];
    // SAFETY: pipe2 into a valid array.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return;
    }
    // SAFETY: both fds are fresh and ours.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
    let fds = [write.as_raw_fd()];
    let iov = [std::io::IoSlice::new(b"BARRIER=1")];
    if let Err(e) = sendmsg(
        sock,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        Some(addr),
    ) {
        crate::log::warn(&format!("NOTIFY_SOCKET {host}: barrier: {e}"));
        return;
    }
    drop(write);
    let mut fd = libc::pollfd {
        fd: read.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd; POLLHUP comes once every write end is closed.
    unsafe { libc::poll(&mut fd, 1, 5000) };
}
