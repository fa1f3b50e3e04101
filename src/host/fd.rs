//! The runtime's side of the sync protocol with a container process: the socket pair, one record
//! (with an fd riding along) or one byte at a time, and fds moved above the preserved range.
//! Uses libc and nix only.

use crate::bail;
use crate::error::{Context, Result};
use ferrun_executor::Record;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Moves `fd` to a number above the preserved range, close-on-exec.
pub(crate) fn above(fd: OwnedFd, min: u32) -> Result<OwnedFd> {
    if fd.as_raw_fd() >= min as RawFd {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new fd we then own.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min as libc::c_int) };
    if n < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "dup fd".into());
    }
    // SAFETY: n is a fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

pub(crate) fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid out-array.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "socketpair".into());
    }
    // SAFETY: both fds are fresh.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Receives one record (and an fd riding with it). `None` when the child closed its end.
pub(crate) fn recv_record(sock: &OwnedFd) -> Result<Option<(Record, Option<OwnedFd>)>> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut buf = [0u8; 8];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = loop {
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.ctx(|| "read from the container process".into())?,
        }
    };
    if msg.bytes == 0 {
        return Ok(None);
    }
    let mut fd = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for f in fds {
                    // SAFETY: the kernel just gave us this fd.
                    fd = Some(unsafe { OwnedFd::from_raw_fd(f) });
                }
            }
        }
    }
    let bytes = msg.bytes;
    if bytes != 8 {
        bail!("container process sent a {bytes}-byte record");
    }
    Ok(Some((Record::from_bytes(buf), fd)))
}

pub(crate) fn send_byte(sock: &OwnedFd) -> Result<()> {
    // SAFETY: a 1-byte buffer.
    let n = unsafe {
        libc::send(
            sock.as_raw_fd(),
            b"1".as_ptr().cast(),
            1,
            libc::MSG_NOSIGNAL,
        )
    };
    if n != 1 {
        return Err(std::io::Error::last_os_error()).ctx(|| "signal the container process".into());
    }
    Ok(())
}
