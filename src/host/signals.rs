//! Signals of a foreground `run` or `exec`: blocked, forwarded to the container process through
//! its pidfd (SIGWINCH resizes the console instead), and its exit code as a shell reports it.

use crate::bail;
use crate::error::{Context, Result, errno_text};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub(crate) fn forwarded_signals() -> libc::sigset_t {
    // SAFETY: building a sigset on the stack.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [
            libc::SIGHUP,
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGTERM,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGWINCH,
            libc::SIGCONT,
            libc::SIGALRM,
            libc::SIGTSTP,
            libc::SIGTTIN,
            libc::SIGTTOU,
        ] {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

pub(crate) fn block(set: &libc::sigset_t) -> Result<libc::sigset_t> {
    // SAFETY: valid sigsets.
    unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        if libc::pthread_sigmask(libc::SIG_BLOCK, set, &mut old) != 0 {
            bail!("block signals");
        }
        Ok(old)
    }
}

/// Forwards signals to the container process until it exits; returns its exit code
/// (128 + signal when killed, as a shell reports it).
pub(crate) fn wait_forwarding(
    pid: libc::pid_t,
    pidfd: RawFd,
    set: &libc::sigset_t,
    console: Option<&crate::host::console::Proxy>,
) -> Result<i32> {
    // SAFETY: signalfd on a valid set; we own the fd.
    let sfd = unsafe { libc::signalfd(-1, set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    if sfd < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "signalfd".into());
    }
    // SAFETY: sfd is fresh.
    let sfd = unsafe { OwnedFd::from_raw_fd(sfd) };
    loop {
        let mut fds = [
            libc::pollfd {
                fd: pidfd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: valid pollfd array.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            if crate::errno() == libc::EINTR {
                continue;
            }
            bail!(
                "wait for the container process: poll: {}",
                errno_text(crate::errno())
            );
        }
        if fds[1].revents & libc::POLLIN != 0 {
            // SAFETY: reading one signalfd_siginfo.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let sz = std::mem::size_of::<libc::signalfd_siginfo>();
            while unsafe {
                libc::read(
                    sfd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    sz,
                )
            } == sz as isize
            {
                let sig = info.ssi_signo as libc::c_int;
                if sig == libc::SIGWINCH
                    && let Some(c) = console
                {
                    c.resize();
                    continue;
                }
                // SAFETY: signalling our own child through its pidfd.
                unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd, sig, 0, 0) };
            }
        }
        if fds[0].revents & libc::POLLIN != 0 {
            let mut status = 0;
            // SAFETY: reaping our own child.
            let r = unsafe { libc::waitpid(pid, &mut status, 0) };
            // SAFETY: closing our handle.
            unsafe { libc::close(pidfd) };
            if r < 0 {
                bail!(
                    "wait for the container process: {}",
                    errno_text(crate::errno())
                );
            }
            return Ok(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                1
            });
        }
    }
}

/// SIGKILL through the pidfd, then the wait: our own child, gone when this returns.
pub fn kill_and_reap(pid: libc::pid_t, pidfd: RawFd) {
    // SAFETY: plain syscalls on our own child.
    unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd, libc::SIGKILL, 0, 0);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}
