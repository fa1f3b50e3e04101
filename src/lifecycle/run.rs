//! `ferrun run`: create and start from one process; in the foreground, serve the console and
//! forward signals until the container exits, then delete it.

use super::common::{CreateOpts, absolute, config_process};
use super::failure::{failure_under_filter, render_failure};
use super::launch::{Launched, Mode, launch};
use crate::bail;
use crate::error::{Error, Result};
use crate::host::fd::{recv_record, send_byte};
use crate::host::files::write_pid_file;
use crate::host::signals::{block, forwarded_signals, wait_forwarding};
use crate::log;
use crate::state::Store;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `ferrun run`: create and start; without `--detach`, wait and return the exit code.
pub fn run(store: &Store, opts: &CreateOpts, detach: bool, hook: Option<&dyn Fn()>) -> Result<i32> {
    let forwarded = forwarded_signals();
    let old_mask = block(&forwarded)?;
    let result = run_blocked(store, opts, detach, hook, &forwarded);
    // SAFETY: restoring the mask we saved.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut()) };
    result
}

fn run_blocked(
    store: &Store,
    opts: &CreateOpts,
    detach: bool,
    hook: Option<&dyn Fn()>,
    forwarded: &libc::sigset_t,
) -> Result<i32> {
    let mut l = launch(store, opts, Mode::Run, hook)?;
    if detach && l.plan.terminal && opts.console_socket.is_none() {
        bail!("process.terminal is true: run --detach needs --console-socket");
    }
    let h = &l.plan.hooks;
    let bundle = absolute(&opts.bundle)?.to_string_lossy().into_owned();
    if !h.start_container.is_empty() {
        let st = crate::host::hooks::state(h, &opts.id, "created", l.child.pid, &bundle);
        let s = store.load(&opts.id)?;
        let process = config_process(&s)?;
        crate::host::hooks::run_start_container(
            &h.start_container,
            &st,
            &store.root,
            &opts.id,
            &process,
        )?;
    }
    let notify = match crate::host::notify::host_socket() {
        Some(host) => Some((crate::host::notify::bind(&store.dir(&opts.id))?, host)),
        None => None,
    };
    send_byte(&l.sync)?;
    await_exec(&l)?;
    if super::profile::enabled() {
        // The sync socket closed with execve: the last stamped step ends there.
        let stamps = l.page.stamps(l.plan.steps.len());
        super::profile::container(&l.plan, &stamps, ferrun_executor::now_ns());
        super::profile::mark("startContainer hooks, start, execve");
    }
    if let Some((sock, host)) = notify {
        if detach {
            crate::host::notify::wait_ready(&sock, l.child.pidfd, l.child.pid, &host)?;
        } else {
            // In the foreground the console and the signals must be served meanwhile: READY=1
            // is waited for beside them.
            // SAFETY: F_DUPFD_CLOEXEC returns a new fd (or -1) that the thread then owns.
            let pidfd = unsafe { libc::fcntl(l.child.pidfd, libc::F_DUPFD_CLOEXEC, 3) };
            if pidfd >= 0 {
                // SAFETY: a fresh fd.
                let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
                let pid = l.child.pid;
                let _ = std::thread::Builder::new().spawn(move || {
                    if let Err(e) =
                        crate::host::notify::wait_ready(&sock, pidfd.as_raw_fd(), pid, &host)
                    {
                        log::debug(&format!("NOTIFY_SOCKET: {e}"));
                    }
                });
            }
        }
    }
    let st = crate::host::hooks::state(h, &opts.id, "running", l.child.pid, &bundle);
    // Spec 1.3: a failed poststart hook is an error and stops the container; the guard kills
    // it, removes it and runs poststop, as `run` owns it.
    crate::host::hooks::run("poststart", &h.poststart, &st, None)?;
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, l.child.pid)?;
    }
    if detach {
        l.guard.armed = false;
        // SAFETY: closing our handle only.
        unsafe { libc::close(l.child.pidfd) };
        return Ok(0);
    }
    let console = l
        .pty
        .take()
        .map(crate::host::console::Proxy::start)
        .transpose()?;
    let code = wait_forwarding(l.child.pid, l.child.pidfd, forwarded, console.as_ref());
    super::profile::mark("the container's program runs");
    if let Some(c) = console {
        c.finish();
    }
    // `run` owns the container: once it exits, the guard deletes it, like runc.
    l.guard.child = None;
    code
}

/// After the start byte: the sync socket closes on a successful `execve`, or carries its error
/// (or, when a filter refused the report, the shared page does).
fn await_exec(l: &Launched<'_>) -> Result<()> {
    match recv_record(&l.sync)? {
        None => match l.page.progress().failure {
            None => Ok(()),
            Some(r) => Err(Error(failure_under_filter(&l.plan, r))),
        },
        Some((r, _)) => Err(Error(render_failure(&l.plan, r))),
    }
}
