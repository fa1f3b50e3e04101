//! The container lifecycle: `create`, `start`, `run`, `kill`, `delete`. The parent side of a start:
//! host steps around `clone`, the sync protocol with the container process, error rendering, the
//! exec fifo, and clean-up of everything a failed create made.

use crate::bail;
use crate::cache;
use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result, errno_text};
use crate::log;
use crate::state::{State, Status, Store, proc_stat};
use ferrun_executor::{ChildFds, MSG_PTY, MSG_READY, Prepared, Record, SharedPage};
use ferrun_planner::Options;
use ferrun_plans::{HostStep, IdMapKind, Plan, Step};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// `create` and `run` options.
#[derive(Clone, Debug, Default)]
pub struct CreateOpts {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    pub systemd_cgroup: bool,
    /// crun's `--config`: the config file, instead of the bundle's `config.json`.
    pub config: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Leave the container waiting on its exec fifo.
    Create,
    /// Start it at once from this process.
    Run,
}

/// Removes what a failed create made: kills the container process, removes the state dir.
struct Guard<'a> {
    store: &'a Store,
    id: String,
    child: Option<(libc::pid_t, RawFd)>,
    cgroup: Option<Cgroup>,
    /// `poststop` hooks and the state they read, once the container existed.
    poststop: Option<(Vec<ferrun_plans::Hook>, String)>,
    /// The cache key of a plan no other container could use, removed with the container.
    private_plan: Option<String>,
    armed: bool,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some((pid, pidfd)) = self.child {
            // SAFETY: plain syscalls on our own child.
            unsafe {
                libc::syscall(libc::SYS_pidfd_send_signal, pidfd, libc::SIGKILL, 0, 0);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
        if let Some(c) = &self.cgroup
            && let Err(e) = c.remove(true)
        {
            // The state stays, so that `delete` can try again.
            log::warn(&format!(
                "clean up after {}: {e}; `delete --force {}` retries",
                self.id, self.id
            ));
            return;
        }
        let _ = self.store.remove(&self.id);
        if let Some(key) = &self.private_plan {
            cache::forget(&self.store.root, key);
        }
        if let Some((hooks, state)) = &self.poststop {
            crate::hooks::run_warn("poststop", hooks, state);
        }
    }
}

/// A container process that finished set-up.
struct Launched<'a> {
    guard: Guard<'a>,
    child: ferrun_executor::Child,
    sync: OwnedFd,
    pty: Option<OwnedFd>,
    plan: Plan,
    page: SharedPage,
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(p).ctx(|| format!("bundle {}", p.display()))
}

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

/// A sysctl changes the namespace it is written in: refused when a joined namespace is the
/// caller's own (the host's, for an engine), as runc refuses it.
fn check_sysctls(plan: &Plan) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    for h in &plan.before_clone {
        let HostStep::JoinBeforeClone { ns, path } = h else {
            continue;
        };
        let prefix: &[&str] = match ns {
            ferrun_plans::Namespace::Network => &["/proc/sys/net/"],
            ferrun_plans::Namespace::Ipc => &[
                "/proc/sys/kernel/msg",
                "/proc/sys/kernel/sem",
                "/proc/sys/kernel/shm",
                "/proc/sys/fs/mqueue/",
            ],
            ferrun_plans::Namespace::Uts => {
                &["/proc/sys/kernel/hostname", "/proc/sys/kernel/domainname"]
            }
            _ => continue,
        };
        let Some(key) = plan.steps.iter().find_map(|s| match s {
            Step::Sysctl { path, .. } if prefix.iter().any(|p| path.text().starts_with(p)) => {
                Some(path.text().into_owned())
            }
            _ => None,
        }) else {
            continue;
        };
        let own = format!(
            "/proc/self/ns/{}",
            match ns {
                ferrun_plans::Namespace::Network => "net",
                ferrun_plans::Namespace::Ipc => "ipc",
                _ => "uts",
            }
        );
        let same =
            |a: &std::fs::Metadata, b: &std::fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
        if let (Ok(joined), Ok(mine)) = (std::fs::metadata(&*path.text()), std::fs::metadata(&own))
            && same(&joined, &mine)
        {
            bail!(
                "linux.sysctl: {} would change the host: the {} namespace {} is the caller's own",
                key.trim_start_matches("/proc/sys/").replace('/', "."),
                ns.oci_name(),
                path.text()
            );
        }
    }
    Ok(())
}

/// The rootfs must be a directory, and a relative `root.path` must stay inside the bundle.
fn check_rootfs(plan: &Plan, bundle: &Path) -> Result<()> {
    let rootfs = Path::new(&plan.rootfs);
    let real = std::fs::canonicalize(rootfs).ctx(|| format!("root.path {}", rootfs.display()))?;
    if !real.is_dir() {
        bail!("root.path {}: not a directory", rootfs.display());
    }
    if rootfs.starts_with(bundle) && !real.starts_with(bundle) {
        bail!(
            "root.path {}: resolves to {}, outside the bundle {}",
            rootfs.display(),
            real.display(),
            bundle.display()
        );
    }
    Ok(())
}

/// Opens a namespace file named by `linux.namespaces[].path`: without blocking (a FIFO there
/// must not hang create), and only if it is a namespace of the kind asked for.
fn open_namespace(
    kind: ferrun_plans::Namespace,
    path: &ferrun_plans::CBuf,
) -> Result<std::fs::File> {
    const NSFS_MAGIC: libc::c_long = 0x6e73_6673;
    // _IO(0xb7, 0x3): the CLONE_NEW* flag of a namespace fd.
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    let what = || {
        format!(
            "linux.namespaces: {} namespace {}",
            kind.oci_name(),
            ferrun_plans::clip(&path.text(), 300)
        )
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&*path.text())
        .ctx(what)?;
    // SAFETY: fstatfs into a zeroed buffer, and an ioctl that only reads, on our fd.
    let (fs_type, ns_type) = unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        let r = libc::fstatfs(f.as_raw_fd(), &mut st);
        let t = libc::ioctl(f.as_raw_fd(), NS_GET_NSTYPE);
        (if r == 0 { st.f_type as libc::c_long } else { 0 }, t)
    };
    if fs_type != NSFS_MAGIC {
        bail!("{}: not a namespace file", what());
    }
    if ns_type >= 0 && ns_type as u64 != kind.clone_flag() {
        bail!("{}: a namespace of another kind", what());
    }
    Ok(f)
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

/// `step 12 mount ... on /proc: Operation not permitted`, with runc's words where engines
/// match on them.
pub fn render_failure(plan: &Plan, r: Record) -> String {
    let Some(step) = plan.steps.get(r.step as usize) else {
        return format!(
            "container process failed after its last step: {}",
            errno_text(r.errno)
        );
    };
    if let Step::ResolveExec { name, .. } = step {
        let name = name.text();
        return match r.errno {
            libc::ENOENT if name.contains('/') => {
                format!("exec: {name:?}: stat {name}: no such file or directory")
            }
            libc::ENOENT => format!("exec: {name:?}: executable file not found in $PATH"),
            libc::EACCES => format!("exec: {name:?}: permission denied"),
            e => format!("exec: {name:?}: {}", errno_text(e)),
        };
    }
    if let Step::Exec { argv, .. } = step {
        let name = argv
            .first()
            .map(|a| a.text().into_owned())
            .unwrap_or_default();
        return format!("exec {name:?}: {}", errno_text(r.errno).to_lowercase());
    }
    let why = match r.errno {
        ferrun_executor::E_INSIDE_PROC => {
            "it resolves inside /proc (through a symlink or an earlier mount), \
             where nothing may be mounted"
                .to_string()
        }
        ferrun_executor::E_NOT_PROCFS => "the file reached is not on procfs".to_string(),
        e => errno_text(e),
    };
    format!(
        "step {} {}: {why}",
        plan.step_number(r.step as usize),
        ferrun_plans::clip(&step.to_string(), 400)
    )
}

/// Writes the pid file atomically: the decimal pid, no newline.
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // A fresh name, created exclusively: never written through something already there.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(".ferrun-pid-{}-{nanos}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .ctx(|| format!("write pid file {}", tmp.display()))?;
    f.write_all(pid.to_string().as_bytes())
        .ctx(|| format!("write pid file {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, path).ctx(|| format!("write pid file {}", path.display()))
}

/// systemd socket activation, as runc passes it on: when ferrun itself was given `LISTEN_FDS`
/// (for its own pid), those fds (3 onwards) go into the container, before the `--preserve-fds`
/// ones, and its process gets `LISTEN_FDS=N` and `LISTEN_PID=1`. Returns N.
fn socket_activation(plan: &mut Plan) -> u32 {
    let n: u32 = match std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) if n > 0 => n,
        _ => return 0,
    };
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_none_or(|p| p == std::process::id());
    if !ours {
        return 0;
    }
    for s in &mut plan.steps {
        if let Step::Exec { env, .. } = s {
            env.retain(|e| {
                !e.text().starts_with("LISTEN_FDS=") && !e.text().starts_with("LISTEN_PID=")
            });
            env.extend(ferrun_plans::CBuf::new(&format!("LISTEN_FDS={n}")));
            env.extend(ferrun_plans::CBuf::new("LISTEN_PID=1"));
        }
    }
    n
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

fn launch<'a>(
    store: &'a Store,
    opts: &CreateOpts,
    mode: Mode,
    hook: Option<&dyn Fn()>,
) -> Result<Launched<'a>> {
    crate::state::check_id(&opts.id)?;
    let bundle = absolute(&opts.bundle)?;
    let loaded = cache::load_or_plan(
        &store.root,
        &bundle,
        opts.config.as_deref(),
        Options {
            no_pivot: opts.no_pivot,
            systemd_cgroup: opts.systemd_cgroup,
        },
    )?;
    log::debug(&format!("plan {} ({})", loaded.key, loaded.origin));
    for np in &loaded.plan.not_planned {
        log::debug(&format!("not yet planned: {}: {}", np.field, np.why));
    }
    let private = loaded.private_to(&opts.id, &bundle);
    let mut plan = loaded.plan;
    let listen_fds = socket_activation(&mut plan);
    let preserve_fds = opts.preserve_fds.saturating_add(listen_fds).min(65536);
    if plan.terminal && opts.console_socket.is_none() && mode == Mode::Create {
        bail!("process.terminal is true: create needs --console-socket to hand the pty to");
    }
    check_rootfs(&plan, &bundle)?;
    check_sysctls(&plan)?;
    crate::hooks::check(&plan.hooks)?;

    // Resolved (and a path the kernel would refuse refused) before anything is made.
    let mut cgroup = plan
        .cgroups
        .as_ref()
        .map(|c| Cgroup::resolve(c, &opts.id))
        .transpose()?;
    let mut state = State {
        id: opts.id.clone(),
        pid: 0,
        pid_start: 0,
        bundle: bundle.to_string_lossy().into_owned(),
        rootfs: plan.rootfs.clone(),
        created: log::rfc3339_now(),
        owner: String::new(),
        plan_private: private,
        plan: loaded.key.clone(),
        cgroup: cgroup.clone(),
        hooks: (!plan.hooks.is_empty()).then(|| plan.hooks.clone()),
        notify: crate::notify::host_socket(),
        config: opts
            .config
            .as_ref()
            .and_then(|c| std::fs::canonicalize(c).ok())
            .map(|c| c.to_string_lossy().into_owned()),
    };
    // The directory appears with its state in it (see `Store::claim`).
    let dir = store.claim(&state)?;
    let mut guard = Guard {
        store,
        id: opts.id.clone(),
        child: None,
        cgroup: cgroup.clone(),
        poststop: None,
        private_plan: private.then(|| loaded.key.clone()),
        armed: true,
    };
    if state.notify.is_some() {
        crate::notify::prepare(&mut plan, &dir)?;
    }
    let min_fd = 3 + preserve_fds;
    let (parent_sock, child_sock) = seqpacket_pair()?;
    let parent_sock = above(parent_sock, min_fd)?;
    let child_sock = above(child_sock, min_fd)?;
    let fifo = match mode {
        Mode::Create => {
            let path = store.fifo(&opts.id);
            nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .ctx(|| format!("create {}", path.display()))?;
            // O_RDWR: opening does not block, and the child's read blocks until `start` writes.
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .ctx(|| format!("open {}", path.display()))?;
            Some(above(OwnedFd::from(f), min_fd)?)
        }
        Mode::Run => None,
    };

    let mut ns = [-1; 8];
    let mut ns_files = Vec::new();
    for h in &plan.before_clone {
        match h {
            HostStep::OpenNamespace {
                slot,
                ns: kind,
                path,
            } => {
                let f = open_namespace(*kind, path)?;
                let f = above(OwnedFd::from(f), min_fd)?;
                if let Some(s) = ns.get_mut(usize::from(*slot)) {
                    *s = f.as_raw_fd();
                }
                ns_files.push(f);
            }
            HostStep::JoinBeforeClone { ns: kind, path } => {
                let f = open_namespace(*kind, path)?;
                nix::sched::setns(
                    &f,
                    nix::sched::CloneFlags::from_bits_truncate(kind.clone_flag() as i32),
                )
                .ctx(|| format!("join {} namespace {}", kind.oci_name(), path.text()))?;
            }
            HostStep::CgroupCreate => {
                let (Some(cg), Some(c)) = (&mut cgroup, &plan.cgroups) else {
                    bail!("plan: a cgroup step without cgroups");
                };
                let made = cg.create(&c.v2_controllers, c.shared);
                // What ferrun really made, known now: kept for clean-up and for delete.
                guard.cgroup = Some(cg.clone());
                made?;
                state.cgroup = Some(cg.clone());
                store.save(&state)?;
            }
            HostStep::CgroupWrite(w) => {
                let Some(cg) = &cgroup else {
                    bail!("plan: a cgroup step without cgroups");
                };
                cg.write(usize::from(w.hierarchy), &w.file, &w.value, &w.field)?;
            }
            HostStep::CgroupDevices { hierarchy, program } => {
                let Some(cg) = &cgroup else {
                    bail!("plan: a cgroup step without cgroups");
                };
                cg.attach_devices(usize::from(*hierarchy), program)?;
            }
            other => bail!("plan: {other} cannot run before clone"),
        }
    }

    let page = SharedPage::new().ctx(|| "map the page shared with the container process".into())?;
    let fds = ChildFds {
        parent_sync: parent_sock.as_raw_fd(),
        shared: page.ptr(),
        sync: child_sock.as_raw_fd(),
        start: fifo
            .as_ref()
            .map_or(child_sock.as_raw_fd(), |f| f.as_raw_fd()),
        ns,
        preserve: preserve_fds,
    };
    // The cgroup2 directory the clone is born in, the v1 `tasks` files it writes itself into.
    let clone_fds = match &cgroup {
        Some(cg) => Some(cg.clone_fds(&plan, min_fd)?),
        None => None,
    };
    let cgroup_dirs = cgroup
        .as_ref()
        .map(|c| {
            c.dirs
                .iter()
                .filter_map(|d| ferrun_plans::CBuf::new(&d.to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    let prepared = Prepared::new(&plan).with_cgroups(
        cgroup_dirs,
        clone_fds.as_ref().map_or(-1, |c| c.clone_into),
        clone_fds
            .as_ref()
            .map(|c| c.tasks.clone())
            .unwrap_or_default(),
    );
    let child = ferrun_executor::spawn(&prepared, &fds, hook)
        .ctx(|| "clone3 the container process".into())?;
    guard.child = Some((child.pid, child.pidfd));
    if !plan.hooks.poststop.is_empty() {
        // From here the container exists: its poststop hooks run however it ends.
        let stopped = crate::hooks::state(
            &plan.hooks,
            &opts.id,
            "stopped",
            0,
            &bundle.to_string_lossy(),
        );
        guard.poststop = Some((plan.hooks.poststop.clone(), stopped));
    }
    drop(child_sock);
    drop(fifo);
    drop(ns_files);
    drop(clone_fds);

    let mut proc = None;
    for h in &plan.after_clone {
        match h {
            HostStep::WriteIdMap { kind, map } => {
                let file = match kind {
                    IdMapKind::Uid => "uid_map",
                    IdMapKind::Gid => "gid_map",
                };
                let proc = proc_root(&mut proc)?;
                proc.write(&format!("{}/{file}", child.pid), map.bytes())?;
            }
            HostStep::OomScoreAdj { value } => {
                let proc = proc_root(&mut proc)?;
                proc.write(&format!("{}/oom_score_adj", child.pid), value.bytes())
                    .map_err(|e| Error(format!("process.oomScoreAdj: {}", e.0)))?;
            }
            HostStep::Release => send_byte(&parent_sock)?,
            other => bail!("plan: {other} cannot run after clone"),
        }
    }

    let mut pty = None;
    loop {
        match recv_record(&parent_sock)? {
            Some((r, fd)) if r.step == MSG_PTY => match fd {
                Some(master) => {
                    set_console_size(&master, plan.console_size);
                    if let Some(sock) = &opts.console_socket {
                        send_console(sock, &master)?;
                    } else {
                        pty = Some(master);
                    }
                }
                None => bail!("container process sent no pty"),
            },
            Some((r, _)) if r.step == MSG_READY => break,
            Some((r, _)) if r.step == ferrun_executor::MSG_HOOKS => {
                let h = &plan.hooks;
                let bundle = bundle.to_string_lossy();
                let st = crate::hooks::state(h, &opts.id, "creating", child.pid, &bundle);
                crate::hooks::run("prestart", &h.prestart, &st, None)?;
                crate::hooks::run("createRuntime", &h.create_runtime, &st, None)?;
                crate::hooks::run(
                    "createContainer",
                    &h.create_container,
                    &st,
                    Some((child.pidfd, h.container_ns)),
                )?;
                send_byte(&parent_sock)?;
            }
            Some((r, _)) if r.step == ferrun_executor::MSG_SECCOMP => {
                let (page, Some(listener)) = (&page, &plan.seccomp_listener) else {
                    bail!("container process announced a seccomp listener the plan has none of");
                };
                hand_over_listener(
                    parent_sock.as_raw_fd(),
                    page,
                    listener,
                    child.pidfd,
                    child.pid,
                    &opts.id,
                    &bundle,
                )?;
            }
            Some((r, _)) => return Err(Error(render_failure(&plan, r))),
            None => {
                let mut status = 0;
                // SAFETY: reaping our own child.
                unsafe { libc::waitpid(child.pid, &mut status, 0) };
                guard.child = None;
                return Err(Error(describe_death(
                    &plan,
                    &page,
                    status,
                    guard.cgroup.as_ref(),
                )));
            }
        }
    }

    state.pid = child.pid;
    state.pid_start = proc_stat(child.pid).map_or(0, |(s, _)| s);
    store.save(&state)?;
    let _ = dir;
    Ok(Launched {
        guard,
        child,
        sync: parent_sock,
        pty,
        plan,
        page,
    })
}

/// Takes the seccomp listener fd out of the container process (which waits without making a
/// syscall) and sends it to `listenerPath` with the container process state, as the runtime
/// spec describes; then lets the container process go on.
fn hand_over_listener(
    sync: RawFd,
    page: &SharedPage,
    listener: &ferrun_plans::Listener,
    pidfd: RawFd,
    pid: i32,
    id: &str,
    bundle: &Path,
) -> Result<bool> {
    use nix::sys::socket::{
        AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, connect, sendmsg,
        socket,
    };
    let fd = match page.wait_published(sync, std::time::Duration::from_secs(10)) {
        ferrun_executor::Published::Fd(fd) => fd,
        // The install failed: the child's record says why.
        ferrun_executor::Published::ChildSpoke => return Ok(false),
        ferrun_executor::Published::TimedOut => {
            bail!("linux.seccomp: the container process did not publish its listener fd")
        }
    };
    // SAFETY: pidfd_getfd returns a new fd in this process, or -1.
    let got = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) };
    if got < 0 {
        let e = crate::errno();
        let hint = if e == libc::EPERM {
            " (ptrace restrictions? see kernel.yama.ptrace_scope)"
        } else {
            ""
        };
        bail!(
            "linux.seccomp: take the listener fd: {}{hint}",
            errno_text(e)
        );
    }
    // SAFETY: fresh fd.
    let got = unsafe { OwnedFd::from_raw_fd(got as RawFd) };
    let state = serde_json::json!({
        "ociVersion": crate::state::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": listener.metadata,
        "state": {
            "ociVersion": crate::state::OCI_VERSION,
            "id": id,
            "status": "creating",
            "pid": pid,
            "bundle": bundle,
        }
    })
    .to_string();
    // Non-blocking: an agent that does not accept must not hold create (and the spinning
    // container process) up.
    let stream = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .ctx(|| "socket".into())?;
    let addr = UnixAddr::new(listener.path.as_str())
        .ctx(|| format!("linux.seccomp.listenerPath {}", listener.path))?;
    connect(stream.as_raw_fd(), &addr)
        .ctx(|| format!("linux.seccomp.listenerPath: connect to {}", listener.path))?;
    let fds = [got.as_raw_fd()];
    let iov = [std::io::IoSlice::new(state.as_bytes())];
    sendmsg::<()>(
        stream.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_DONTWAIT,
        None,
    )
    .ctx(|| {
        format!(
            "linux.seccomp.listenerPath: send the listener fd to {}",
            listener.path
        )
    })?;
    page.release();
    Ok(true)
}

/// `ferrun create`: set the container up and leave it waiting for `start`.
pub fn create(store: &Store, opts: &CreateOpts) -> Result<()> {
    let mut l = launch(store, opts, Mode::Create, None)?;
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, l.child.pid)?;
    }
    l.guard.armed = false;
    // SAFETY: our pidfd; the process stays, it is only the handle that goes.
    unsafe { libc::close(l.child.pidfd) };
    Ok(())
}

/// The `process` object of the config a container was made from.
fn config_process(s: &State) -> Result<serde_json::Value> {
    let bytes = match &s.config {
        Some(path) => std::fs::read(path).ctx(|| format!("config {path}"))?,
        None => cache::read_config(Path::new(&s.bundle))?,
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error(format!("bundle {}: config.json: {e}", s.bundle)))?;
    Ok(v["process"].clone())
}

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
        let st = crate::hooks::state(h, id, "created", s.pid, &s.bundle);
        let process = config_process(&s)?;
        if let Err(e) =
            crate::hooks::run_start_container(&h.start_container, &st, &store.root, id, &process)
        {
            // The spec: a failed startContainer hook stops the container.
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
            return Err(e);
        }
    }
    let notify = match &s.notify {
        Some(_) => Some(crate::notify::bind(&store.dir(id))?),
        None => None,
    };
    f.write_all(b"0")
        .ctx(|| format!("write {}", fifo.display()))?;
    std::fs::remove_file(&fifo).ctx(|| format!("remove {}", fifo.display()))?;
    if let (Some(sock), Some(host), Some(pidfd)) = (&notify, &s.notify, pidfd_of(&s)) {
        crate::notify::wait_ready(sock, pidfd.as_raw_fd(), s.pid, host)?;
    }
    if let Some(h) = &s.hooks {
        let st = crate::hooks::state(h, id, "running", s.pid, &s.bundle);
        crate::hooks::run_warn("poststart", &h.poststart, &st);
    }
    Ok(())
}

use std::os::unix::fs::OpenOptionsExt;

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

/// The procfs the parent writes a child's files through, opened at the first write.
fn proc_root(slot: &mut Option<crate::procfs::ProcFs>) -> Result<&crate::procfs::ProcFs> {
    if slot.is_none() {
        *slot = Some(crate::procfs::ProcFs::open()?);
    }
    match slot {
        Some(p) => Ok(p),
        None => bail!("open /proc"),
    }
}

/// The listing number of the last seccomp filter installed before step `index`.
fn filter_before(plan: &Plan, index: usize) -> Option<usize> {
    plan.steps
        .iter()
        .take(index)
        .rposition(|s| matches!(s, Step::Seccomp { .. }))
        .map(|i| plan.step_number(i))
}

/// A failure the child could only leave on the shared page: a seccomp filter refused its report.
fn failure_under_filter(plan: &Plan, r: Record) -> String {
    let mut msg = render_failure(plan, r);
    if let Some(n) = filter_before(plan, r.step as usize) {
        msg.push_str(&format!(
            " (under the seccomp filter of step {n}, which also refused ferrun's report: \
             linux.seccomp must allow what the runtime calls after it)"
        ));
    }
    msg
}

/// Why a container process ended during set-up without a record on the socket: its failure
/// from the shared page, else the signal (or exit) and the likely cause.
pub(crate) fn describe_death(
    plan: &Plan,
    page: &SharedPage,
    status: i32,
    cgroup: Option<&Cgroup>,
) -> String {
    let progress = page.progress();
    if let Some(r) = progress.failure {
        return failure_under_filter(plan, r);
    }
    let at = progress
        .at
        .map(|i| i as usize)
        .and_then(|i| plan.steps.get(i).map(|s| (i, s)));
    let where_ = match at {
        Some((i, s)) => format!(
            " at step {} {}",
            plan.step_number(i),
            ferrun_plans::clip(&s.to_string(), 200)
        ),
        None => String::new(),
    };
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        let name = nix::sys::signal::Signal::try_from(sig)
            .map_or_else(|_| format!("signal {sig}"), |s| s.as_str().to_string());
        let filter = at.and_then(|(i, _)| filter_before(plan, i + 1));
        let cause = if sig == libc::SIGKILL && cgroup.is_some_and(|c| c.oom_kills() > 0) {
            ": the OOM killer (linux.resources.memory.limit too low?)".to_string()
        } else if sig == libc::SIGSYS
            && let Some(n) = filter
        {
            format!(
                ": the seccomp filter of step {n} refused a call \
                 (linux.seccomp: its defaultAction or a rule kills)"
            )
        } else if let Some(n) = filter {
            format!(" (under the seccomp filter of step {n})")
        } else {
            String::new()
        };
        format!("container process was killed by {name}{where_} during set-up{cause}")
    } else {
        format!(
            "container process exited with status {}{where_} during set-up",
            libc::WEXITSTATUS(status)
        )
    }
}

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
        let st = crate::hooks::state(h, &opts.id, "created", l.child.pid, &bundle);
        let s = store.load(&opts.id)?;
        let process = config_process(&s)?;
        crate::hooks::run_start_container(
            &h.start_container,
            &st,
            &store.root,
            &opts.id,
            &process,
        )?;
    }
    let notify = match crate::notify::host_socket() {
        Some(host) => Some((crate::notify::bind(&store.dir(&opts.id))?, host)),
        None => None,
    };
    send_byte(&l.sync)?;
    await_exec(&l)?;
    if let Some((sock, host)) = notify {
        if detach {
            crate::notify::wait_ready(&sock, l.child.pidfd, l.child.pid, &host)?;
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
                    if let Err(e) = crate::notify::wait_ready(&sock, pidfd.as_raw_fd(), pid, &host)
                    {
                        log::debug(&format!("NOTIFY_SOCKET: {e}"));
                    }
                });
            }
        }
    }
    let st = crate::hooks::state(h, &opts.id, "running", l.child.pid, &bundle);
    crate::hooks::run_warn("poststart", &h.poststart, &st);
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, l.child.pid)?;
    }
    if detach {
        l.guard.armed = false;
        // SAFETY: closing our handle only.
        unsafe { libc::close(l.child.pidfd) };
        return Ok(0);
    }
    let console = l.pty.take().map(crate::console::Proxy::start).transpose()?;
    let code = wait_forwarding(l.child.pid, l.child.pidfd, forwarded, console.as_ref());
    if let Some(c) = console {
        c.finish();
    }
    // `run` owns the container: once it exits, the guard deletes it, like runc.
    l.guard.child = None;
    code
}

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
    console: Option<&crate::console::Proxy>,
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

pub(crate) fn pidfd_of(s: &State) -> Option<OwnedFd> {
    // SAFETY: pidfd_open returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, s.pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fresh fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    // The pid is ours only if its start time is the one we recorded (checked after opening, so
    // the pidfd pins the right process).
    crate::state::process_alive(s.pid, s.pid_start).then_some(fd)
}

/// Processes to signal for `kill --all`: those in the container's pid namespace, else its init.
fn container_pids(s: &State) -> Vec<i32> {
    let ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let init_ns = ns(s.pid);
    let host_ns = ns(std::process::id() as i32);
    let mut pids = vec![s.pid];
    if init_ns.is_none() || init_ns == host_ns {
        return pids;
    }
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok())
                && pid != s.pid
                && ns(pid) == init_ns
            {
                pids.push(pid);
            }
        }
    }
    pids
}

/// `ferrun kill`.
pub fn kill(store: &Store, id: &str, signal: &str, all: bool) -> Result<()> {
    let sig = parse_signal(signal)?;
    let s = store.load(id)?;
    let status = store.status(&s);
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
        && c.is_frozen()
    {
        // A frozen process cannot die: thaw it, as runc does.
        c.set_frozen(false)?;
    }
    Ok(())
}

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
    let status = store.status(&s);
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
            // A paused container cannot die until thawed (runc kills, then thaws).
            if let Some(c) = &s.cgroup
                && c.is_frozen()
            {
                c.set_frozen(false)?;
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
        let st = crate::hooks::state(h, id, "stopped", 0, &s.bundle);
        crate::hooks::run_warn("poststop", &h.poststop, &st);
    }
    Ok(())
}

/// `ferrun state`'s JSON.
pub fn state_json(store: &Store, id: &str) -> Result<String> {
    let s = store.load(id)?;
    let status = store.status(&s);
    Ok(oci_state_json(&s, status, true))
}

pub fn oci_state_json(s: &State, status: Status, pretty: bool) -> String {
    let o = crate::state::OciState {
        oci_version: crate::state::OCI_VERSION,
        id: &s.id,
        pid: if status == Status::Stopped { 0 } else { s.pid },
        status: status.as_str(),
        bundle: &s.bundle,
        rootfs: &s.rootfs,
        created: &s.created,
        owner: &s.owner,
    };
    let r = if pretty {
        serde_json::to_string_pretty(&o)
    } else {
        serde_json::to_string(&o)
    };
    r.unwrap_or_default()
}
