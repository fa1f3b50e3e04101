//! The caller's terminal as the container's console, for `run` with `terminal: true` and no
//! `--console-socket`: raw mode, window size, and copying both ways.

use crate::error::{Context, Result};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

pub struct Proxy {
    master: Arc<OwnedFd>,
    saved: Option<libc::termios>,
    output: JoinHandle<()>,
}

fn copy(from: i32, to: i32) {
    let mut buf = [0u8; 8192];
    loop {
        // SAFETY: valid buffer and fds.
        let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && crate::errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            return;
        }
        let mut off = 0;
        while off < n as usize {
            // SAFETY: as above.
            let w = unsafe { libc::write(to, buf[off..].as_ptr().cast(), n as usize - off) };
            if w <= 0 {
                return;
            }
            off += w as usize;
        }
    }
}

impl Proxy {
    pub fn start(master: OwnedFd) -> Result<Proxy> {
        let master = Arc::new(master);
        // SAFETY: termios calls on stdin with stack structs.
        let saved = unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::isatty(0) == 1 && libc::tcgetattr(0, &mut t) == 0 {
                let saved = t;
                libc::cfmakeraw(&mut t);
                libc::tcsetattr(0, libc::TCSANOW, &t);
                Some(saved)
            } else {
                None
            }
        };
        let p = Proxy {
            master: master.clone(),
            saved,
            output: {
                let m = master.clone();
                std::thread::spawn(move || copy(m.as_raw_fd(), 1))
            },
        };
        p.resize();
        let m = master;
        // The input side ends with the process; nothing waits for it.
        std::thread::spawn(move || copy(0, m.as_raw_fd()));
        Ok(p)
    }

    /// Gives the container's pty the size of the caller's terminal.
    pub fn resize(&self) {
        // SAFETY: winsize ioctls with a stack struct.
        unsafe {
            let mut ws: libc::winsize = std::mem::zeroed();
            if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
                libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
            }
        }
    }

    /// Waits for the output to drain, then restores the caller's terminal.
    pub fn finish(self) {
        let _ = self.output.join();
        if let Some(t) = self.saved {
            // SAFETY: restoring the saved termios.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        }
    }
}

/// `process.consoleSize` on a fresh pty.
pub(crate) fn set_console_size(master: &OwnedFd, size: Option<(u16, u16)>) {
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ on a pty master we hold, with a valid winsize.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
}

/// Sends the pty master to `--console-socket`.
pub(crate) fn send_console(socket: &Path, master: &OwnedFd) -> Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let stream = std::os::unix::net::UnixStream::connect(socket)
        .ctx(|| format!("connect to console socket {}", socket.display()))?;
    let fds = [master.as_raw_fd()];
    let iov = [std::io::IoSlice::new(b"/dev/ptmx")];
    sendmsg::<()>(
        stream.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .ctx(|| format!("send the pty to {}", socket.display()))?;
    Ok(())
}
