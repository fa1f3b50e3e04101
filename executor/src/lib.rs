//! The executor: replays a plan's container steps in the cloned child.
//!
//! Owns `clone3`, the replay, the sync protocol with the parent (fixed 8-byte records on a
//! `SOCK_SEQPACKET` socket) and the error record. After `clone` nothing here allocates, formats
//! or panics: [`Prepared`] builds every pointer array before the clone, paths are assembled in
//! stack buffers, and a failing step ends the child with `(step index, errno)` sent to the parent.

mod fs;
mod passwd;
mod steps;

use ferrun_plans::{Plan, Step};
use libc::{c_char, c_int};
use std::io;

/// A sync record's `step` field for "set-up done, waiting for start".
pub const MSG_READY: u32 = u32::MAX;
/// A sync record's `step` field for "here is the pty master" (the fd rides along).
pub const MSG_PTY: u32 = u32::MAX - 1;
/// A sync record's `step` field for "installing a filter with a listener: watch the hand-off
/// page". Sent before the filter exists, so no notified syscall is needed to announce it.
pub const MSG_SECCOMP: u32 = u32::MAX - 2;

/// A sync record's `step` field for "the runtime environment exists: run the create hooks".
pub const MSG_HOOKS: u32 = u32::MAX - 3;

/// A failed step's "errno" when a mount target resolved onto a procfs (through a symlink or an
/// earlier mount) while its destination is outside `/proc`: mounts there are refused, as runc
/// does.
pub const E_INSIDE_PROC: i32 = 0x1000_0001;
/// A failed step's "errno" when a file ferrun writes under `/proc` is not on procfs.
pub const E_NOT_PROCFS: i32 = 0x1000_0002;
/// A failed step's "errno" when `proc` or `sysfs` would be mounted on a symlink or on
/// something other than a directory.
pub const E_NOT_ORDINARY_DIR: i32 = 0x1000_0003;

/// What a child tells its parent: a step index and an errno, or one of the `MSG_*` markers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub step: u32,
    pub errno: i32,
}

impl Record {
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&self.step.to_le_bytes());
        b[4..].copy_from_slice(&self.errno.to_le_bytes());
        b
    }

    pub fn from_bytes(b: [u8; 8]) -> Record {
        let (s, e) = b.split_at(4);
        let mut s4 = [0u8; 4];
        let mut e4 = [0u8; 4];
        s4.copy_from_slice(s);
        e4.copy_from_slice(e);
        Record {
            step: u32::from_le_bytes(s4),
            errno: i32::from_le_bytes(e4),
        }
    }
}

/// The fds a child works with, all opened by the parent before the clone.
#[derive(Clone, Copy, Debug)]
pub struct ChildFds {
    /// The child's end of the sync socket.
    pub sync: c_int,
    /// The parent's end, which the child closes first so that a dead parent reads as EOF.
    pub parent_sync: c_int,
    /// Where `WaitStart` reads its byte: the exec fifo (`create`) or the sync socket (`run`).
    pub start: c_int,
    /// Namespace fds by slot (`HostStep::OpenNamespace`).
    pub ns: [c_int; 8],
    /// How many fds after stdio survive `execve` (`--preserve-fds`).
    pub preserve: u32,
    /// The page shared with the parent ([`Shared`]); null without one.
    pub shared: *const Shared,
}

/// A page shared by the parent and the container process, written without a syscall:
/// - the seccomp listener hand-off: after installing a filter that may notify any syscall, the
///   child publishes the listener fd here and spins until the parent has taken it
///   (`pidfd_getfd`);
/// - the step under way and a failed step's record, which the parent reads when the child ends
///   without a word: a filter that refuses the report (and `exit`), or a signal.
#[repr(C)]
pub struct Shared {
    pub state: std::sync::atomic::AtomicU32,
    pub fd: std::sync::atomic::AtomicI32,
    /// 1 + the index of the step under way; 0 before the first.
    pub at: std::sync::atomic::AtomicU32,
    /// 1 once `failed_step` and `failed_errno` hold a failure.
    pub failed: std::sync::atomic::AtomicU32,
    pub failed_step: std::sync::atomic::AtomicU32,
    pub failed_errno: std::sync::atomic::AtomicI32,
    /// 1 when the parent asks for a profile (`--profile`): each step is stamped.
    pub profile: std::sync::atomic::AtomicU32,
    /// `CLOCK_MONOTONIC` nanoseconds at the start of each step, while profiling.
    pub stamps: [std::sync::atomic::AtomicU64; MAX_STAMPS],
}

/// How many steps a profile stamps (the page holds that many; later steps go unstamped).
pub const MAX_STAMPS: usize = 480;

/// `CLOCK_MONOTONIC` in nanoseconds: the vDSO's clock, no syscall, no allocation.
pub fn now_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills our stack timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    (t.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(t.tv_nsec as u64)
}

/// `Handoff::state`: nothing yet, fd published, fd taken.
pub const HANDOFF_EMPTY: u32 = 0;
pub const HANDOFF_PUBLISHED: u32 = 1;
pub const HANDOFF_TAKEN: u32 = 2;

/// What the child left on its [`Shared`] page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The index of the step under way (or last run); `None` before the first.
    pub at: Option<u32>,
    /// A failed step's record, written before the child tried to send it.
    pub failure: Option<Record>,
}

/// What waiting for the listener fd ended with.
#[derive(Debug, PartialEq, Eq)]
pub enum Published {
    Fd(c_int),
    /// The child wrote to (or closed) the sync socket instead: read its record.
    ChildSpoke,
    TimedOut,
}

/// The parent's mapping of a [`Shared`] page (`MAP_SHARED`, so the clone sees the same page).
pub struct SharedPage {
    ptr: *mut Shared,
}

impl SharedPage {
    pub fn new() -> io::Result<SharedPage> {
        // SAFETY: a fresh anonymous shared mapping, zero-filled (state EMPTY).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(SharedPage { ptr: p.cast() })
    }

    pub fn ptr(&self) -> *const Shared {
        self.ptr
    }

    fn get(&self) -> &Shared {
        // SAFETY: the mapping lives as long as self and holds a zero-initialised Shared.
        unsafe { &*self.ptr }
    }

    /// Asks the child to stamp each step (before the clone).
    pub fn set_profile(&self) {
        self.get()
            .profile
            .store(1, std::sync::atomic::Ordering::Release);
    }

    /// The start stamps of the first `n` steps (0 for a step not reached or not stamped).
    pub fn stamps(&self, n: usize) -> Vec<u64> {
        let p = self.get();
        p.stamps
            .iter()
            .take(n)
            .map(|s| s.load(std::sync::atomic::Ordering::Acquire))
            .collect()
    }

    /// Where the child got to, and its failure if it recorded one.
    pub fn progress(&self) -> Progress {
        use std::sync::atomic::Ordering;
        let p = self.get();
        let at = p.at.load(Ordering::Acquire);
        let failure = (p.failed.load(Ordering::Acquire) == 1).then(|| Record {
            step: p.failed_step.load(Ordering::Acquire),
            errno: p.failed_errno.load(Ordering::Acquire),
        });
        Progress {
            at: at.checked_sub(1),
            failure,
        }
    }

    /// Waits up to `timeout` for the child to publish its listener fd, watching `sync` too: a
    /// child whose install failed reports it there (and ends) instead of publishing.
    pub fn wait_published(&self, sync: c_int, timeout: std::time::Duration) -> Published {
        use std::sync::atomic::Ordering;
        let start = std::time::Instant::now();
        loop {
            if self.get().state.load(Ordering::Acquire) == HANDOFF_PUBLISHED {
                return Published::Fd(self.get().fd.load(Ordering::Acquire));
            }
            let mut p = libc::pollfd {
                fd: sync,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; 1 ms at a time.
            if unsafe { libc::poll(&mut p, 1, 1) } > 0 {
                return Published::ChildSpoke;
            }
            if start.elapsed() > timeout {
                return Published::TimedOut;
            }
        }
    }

    /// Lets the child go on.
    pub fn release(&self) {
        self.get()
            .state
            .store(HANDOFF_TAKEN, std::sync::atomic::Ordering::Release);
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(self.ptr.cast(), 4096) };
    }
}

/// A plan with everything the child needs precomputed, so that the child allocates nothing.
pub struct Prepared<'p> {
    plan: &'p Plan,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    /// The container's cgroup directory on the host, per hierarchy of `plan.cgroups`.
    cgroup_dirs: Vec<ferrun_plans::CBuf>,
    /// The cgroup2 directory for `CLONE_INTO_CGROUP`; -1 for none.
    clone_into: c_int,
    /// Per hierarchy, the container's `tasks` file opened for writing; -1 for none.
    cgroup_tasks: Vec<c_int>,
    /// Rootless without a delegated cgroup: the process stays in the caller's cgroups, so
    /// `JoinCgroup` has nothing to do and `CgroupBind` shows the caller's own directories.
    cgroups_skipped: bool,
    /// `HomeFromPasswd`: `HOME=<dir>` written by the child into `home`, and the env with it.
    pub(crate) home: Option<HomeEnv>,
    /// Per step, the detached mount the parent opened for it (`OpenMountTrees`); -1 for none.
    trees: Vec<c_int>,
}

/// Room for the `HOME` a container process finds in its `/etc/passwd`, made before the clone
/// so that the child only fills it in.
pub(crate) struct HomeEnv {
    pub(crate) buf: Box<std::cell::UnsafeCell<[u8; HOME_ROOM]>>,
    /// The plan's env, then `buf`, then NULL.
    pub(crate) envp: Vec<*const c_char>,
}

/// `HOME=`, a path of at most `PATH_MAX` bytes, and a NUL.
pub(crate) const HOME_ROOM: usize = 5 + 4096 + 1;

impl<'p> Prepared<'p> {
    /// Builds the NULL-terminated pointer arrays for `execve`.
    pub fn new(plan: &'p Plan) -> Prepared<'p> {
        let mut argv = Vec::new();
        let mut envp = Vec::new();
        for s in &plan.steps {
            if let Step::Exec { argv: a, env } = s {
                argv = a.iter().map(|b| b.as_ptr()).collect();
                envp = env.iter().map(|b| b.as_ptr()).collect();
            }
        }
        let home = plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::HomeFromPasswd { .. }))
            .then(|| {
                let buf = Box::new(std::cell::UnsafeCell::new([0u8; HOME_ROOM]));
                let mut with = envp.clone();
                with.push(buf.get().cast::<c_char>().cast_const());
                with.push(std::ptr::null());
                HomeEnv { buf, envp: with }
            });
        argv.push(std::ptr::null());
        envp.push(std::ptr::null());
        Prepared {
            plan,
            argv,
            envp,
            cgroup_dirs: Vec::new(),
            clone_into: -1,
            cgroup_tasks: Vec::new(),
            cgroups_skipped: false,
            home,
            trees: Vec::new(),
        }
    }

    /// Rootless, the cgroup not delegated: the plan's cgroup steps keep the caller's cgroups
    /// (`dirs` are the caller's own directories).
    pub fn with_cgroups_skipped(mut self, dirs: Vec<ferrun_plans::CBuf>) -> Self {
        self.cgroup_dirs = dirs;
        self.cgroups_skipped = true;
        self
    }

    pub(crate) fn cgroups_skipped(&self) -> bool {
        self.cgroups_skipped
    }

    /// Sets the host directories of the container's cgroups (resolved at create time), and the
    /// cgroup2 directory fd the clone is born in (-1 for none).
    /// `tasks` holds, per hierarchy, the container's `tasks` file open for writing (-1 for
    /// none), which `JoinCgroup` writes to.
    pub fn with_cgroups(
        mut self,
        dirs: Vec<ferrun_plans::CBuf>,
        clone_into: c_int,
        tasks: Vec<c_int>,
    ) -> Self {
        self.cgroup_dirs = dirs;
        self.clone_into = clone_into;
        self.cgroup_tasks = tasks;
        self
    }

    /// The detached mounts the parent opened, by step index (-1 where none).
    pub fn with_trees(mut self, trees: Vec<c_int>) -> Self {
        self.trees = trees;
        self
    }

    pub(crate) fn tree(&self, step: usize) -> c_int {
        self.trees.get(step).copied().unwrap_or(-1)
    }

    pub(crate) fn cgroup_tasks(&self, hierarchy: u8) -> c_int {
        self.cgroup_tasks
            .get(usize::from(hierarchy))
            .copied()
            .unwrap_or(-1)
    }

    pub(crate) fn cgroup_dir(&self, hierarchy: u8) -> Option<&ferrun_plans::CBuf> {
        self.cgroup_dirs.get(usize::from(hierarchy))
    }

    pub fn plan(&self) -> &Plan {
        self.plan
    }
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// The cloned container process, as the parent sees it.
#[derive(Debug)]
pub struct Child {
    pub pid: libc::pid_t,
    /// A pidfd for race-free waits and signals.
    pub pidfd: c_int,
}

/// Clones the container process (`clone3` with the plan's namespace flags and a pidfd) and, in
/// the child, replays the plan. `before_steps` runs first in the child; tests use it to arm a
/// guard that fails on any allocation.
pub fn spawn(
    prepared: &Prepared<'_>,
    fds: &ChildFds,
    before_steps: Option<&dyn Fn()>,
) -> io::Result<Child> {
    spawn_with(prepared, fds, before_steps, 0)
}

/// [`spawn`] with more clone flags: `CLONE_PARENT` makes the process a sibling of the
/// caller, for a helper that joined namespaces its parent could not return from.
pub fn spawn_with(
    prepared: &Prepared<'_>,
    fds: &ChildFds,
    before_steps: Option<&dyn Fn()>,
    extra_flags: u64,
) -> io::Result<Child> {
    let mut pidfd: c_int = -1;
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let into = if prepared.clone_into >= 0 {
        CLONE_INTO_CGROUP
    } else {
        0
    };
    let args = CloneArgs {
        flags: prepared.plan.clone_flags | libc::CLONE_PIDFD as u64 | into | extra_flags,
        cgroup: if into != 0 {
            prepared.clone_into as u64
        } else {
            0
        },
        pidfd: &mut pidfd as *mut c_int as u64,
        // With CLONE_PARENT the kernel wants none: the caller's own exit signal is used.
        exit_signal: if extra_flags & libc::CLONE_PARENT as u64 != 0 {
            0
        } else {
            libc::SIGCHLD as u64
        },
        ..Default::default()
    };
    // SAFETY: clone3 without CLONE_VM behaves like fork: the child gets a copy of this
    // single-threaded process and only runs `replay`, which never returns.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        if let Some(f) = before_steps {
            f();
        }
        replay(prepared, fds);
    }
    Ok(Child {
        pid: pid as libc::pid_t,
        pidfd,
    })
}

/// Sends a record to the parent; a parent that is gone is not an error worth acting on.
fn send_record(fd: c_int, r: Record) -> Result<(), i32> {
    let b = r.to_bytes();
    // SAFETY: b is a valid 8-byte buffer.
    let n = unsafe { libc::send(fd, b.as_ptr().cast(), b.len(), libc::MSG_NOSIGNAL) };
    if n == b.len() as isize {
        Ok(())
    } else {
        Err(errno())
    }
}

/// Per-replay state of the child.
pub(crate) struct Ctx<'a> {
    pub fds: &'a ChildFds,
    pub rootfd: c_int,
    /// The procfs of `OpenProcfs`; -1 until then.
    pub procfd: c_int,
    /// The program `ResolveExec` chose (a plan buffer); null until then.
    pub exec_path: *const libc::c_char,
    /// `HomeFromPasswd` filled in `HOME`: exec with the env that has it.
    pub home_set: bool,
    /// The index of the step under way.
    pub step: usize,
}

/// Runs every container step; never returns.
fn replay(prepared: &Prepared<'_>, fds: &ChildFds) -> ! {
    // SAFETY: plain syscalls on values we own. Signals blocked by a `run` parent for forwarding
    // must not stay blocked, and Rust's SIG_IGN of SIGPIPE must not reach the container.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        // Device nodes and created dirs get exactly the planned modes.
        libc::umask(0);
        if fds.parent_sync >= 0 {
            libc::close(fds.parent_sync);
        }
        // Until it reports ready, the container process dies with its parent (a blocked,
        // half-made container would pin the rootfs with nothing left to clean it up).
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        // A parent that died before the line above sent no signal: its end of the sync socket
        // is closed then (getppid cannot tell across a new pid namespace).
        let mut p = libc::pollfd {
            fd: fds.sync,
            events: libc::POLLRDHUP,
            revents: 0,
        };
        if libc::poll(&mut p, 1, 0) > 0 && p.revents & (libc::POLLHUP | libc::POLLRDHUP) != 0 {
            libc::_exit(1);
        }
    }
    let mut ctx = Ctx {
        fds,
        rootfd: -1,
        procfd: -1,
        exec_path: std::ptr::null(),
        home_set: false,
        step: 0,
    };
    // SAFETY: the parent's page (or null) outlives the child's use of it.
    let shared = unsafe { fds.shared.as_ref() };
    let profiling =
        shared.is_some_and(|p| p.profile.load(std::sync::atomic::Ordering::Acquire) == 1);
    for (i, step) in prepared.plan.steps.iter().enumerate() {
        use std::sync::atomic::Ordering;
        if let Some(p) = shared {
            p.at.store(i as u32 + 1, Ordering::Release);
            if profiling && let Some(s) = p.stamps.get(i) {
                s.store(now_ns(), Ordering::Release);
            }
        }
        ctx.step = i;
        if let Err(errno) = steps::run(step, &mut ctx, prepared) {
            // Recorded first, without a syscall: a seccomp filter may refuse the send, and
            // even the exit (the child then dies of SIGSEGV, and the parent reads this).
            if let Some(p) = shared {
                p.failed_step.store(i as u32, Ordering::Release);
                p.failed_errno.store(errno, Ordering::Release);
                p.failed.store(1, Ordering::Release);
            }
            let _ = send_record(
                fds.sync,
                Record {
                    step: i as u32,
                    errno,
                },
            );
            // SAFETY: ends the child without running any destructor. Under a filter that
            // refuses exit_group and exit too, glibc's _exit ends in a trapping instruction:
            // the child dies of SIGSEGV, and the parent reads the page.
            unsafe { libc::_exit(1) };
        }
    }
    // A plan always ends in Exec; reaching here means it did not.
    let _ = send_record(
        fds.sync,
        Record {
            step: prepared.plan.steps.len() as u32,
            errno: libc::ENOEXEC,
        },
    );
    // SAFETY: as above.
    unsafe { libc::_exit(1) }
}

/// A procfs of the calling process's own: a fresh instance, else a detached clone of `/proc`.
/// The runtime's own writes under `/proc` use it too.
pub fn open_procfs() -> Result<std::os::fd::OwnedFd, i32> {
    fs::open_procfs().map(fs::Fd::into_owned)
}

/// Opens `rel` below the procfs root `procfd`: no symlink followed, no mount crossed, and the file
/// checked to be on procfs.
pub fn open_in_procfs(
    procfd: c_int,
    rel: &std::ffi::CStr,
    flags: c_int,
) -> Result<std::os::fd::OwnedFd, i32> {
    fs::open_in_procfs(procfd, rel.to_bytes_with_nul(), flags).map(fs::Fd::into_owned)
}

/// Opens `path` resolved inside `root` (`RESOLVE_IN_ROOT`, no magic link): a restore reads the
/// rootfs the way the container's set-up does.
pub fn open_in_root(
    root: c_int,
    path: &std::ffi::CStr,
    flags: c_int,
) -> Result<std::os::fd::OwnedFd, i32> {
    fs::open_in_root(root, path.to_bytes_with_nul(), flags).map(fs::Fd::into_owned)
}

/// Makes a missing mount point inside `root` as the set-up does: its directories, then a
/// directory or an empty file; whatever is already there is left alone.
pub fn make_mountpoint(root: c_int, path: &std::ffi::CStr, dir: bool) -> Result<(), i32> {
    let p = path.to_bytes_with_nul();
    match fs::open_in_root(root, p, libc::O_PATH | libc::O_CLOEXEC | libc::O_NOFOLLOW) {
        Ok(_) => return Ok(()),
        Err(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    if dir {
        fs::mkdir_missing(root, p)
    } else {
        fs::ensure_file(root, p)
    }
}

/// Whether `fd` is the root of a procfs instance.
pub fn is_procfs_root(fd: c_int) -> Result<bool, i32> {
    fs::is_procfs_root(fd)
}

pub(crate) fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// `Ok(ret)` for a non-negative syscall return, `Err(errno)` otherwise.
pub(crate) fn check(ret: libc::c_long) -> Result<libc::c_long, i32> {
    if ret < 0 { Err(errno()) } else { Ok(ret) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips() {
        let r = Record {
            step: 12,
            errno: -5,
        };
        assert_eq!(Record::from_bytes(r.to_bytes()), r);
    }
}
