//! The parent side of a container start, shared by `create` and `run`, in the plan's own
//! phases: [`prepare`] (the plan, the checks, the claimed state), [`open_sync`] and
//! [`before_clone`] (the host steps: namespaces to join, cgroups), [`clone_child`] (`clone3`
//! into the executor), [`after_clone`] (id maps, the oom score, release), [`until_ready`] (the
//! records the container process sends: the pty, the create hooks, the seccomp listener, a
//! failed step) and [`ready`]. A [`Guard`] undoes whatever a failing phase leaves.

use super::checks::{
    check_rlimits, check_rootfs, check_sysctls, open_namespace, socket_activation,
};
use super::common::{CreateOpts, absolute};
use super::failure::{describe_death, render_failure};
use super::profile;
use crate::bail;
use crate::cache;
use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result, errno_text};
use crate::host::console::{send_console, set_console_size};
use crate::host::fd::{above, recv_record, send_byte, seqpacket_pair};
use crate::log;
use crate::state::{State, Store, proc_stat};
use ferrun_executor::{Child, ChildFds, MSG_PTY, MSG_READY, Prepared, SharedPage};
use ferrun_planner::Options;
use ferrun_plans::{HostStep, IdMapKind, Plan};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Leave the container waiting on its exec fifo.
    Create,
    /// Start it at once from this process.
    Run,
}

/// Removes what a failed create made: kills the container process, removes the state dir.
pub(crate) struct Guard<'a> {
    store: &'a Store,
    id: String,
    pub(crate) child: Option<(libc::pid_t, RawFd)>,
    cgroup: Option<Cgroup>,
    /// `poststop` hooks and the state they read, once the container existed.
    poststop: Option<(Vec<ferrun_plans::Hook>, String)>,
    /// The cache key of a plan no other container could use, removed with the container.
    private_plan: Option<String>,
    pub(crate) armed: bool,
}

impl<'a> Guard<'a> {
    /// Armed for a container just claimed, with `cgroup` to remove and a private plan to forget.
    pub(crate) fn new(
        store: &'a Store,
        id: &str,
        cgroup: Option<Cgroup>,
        private_plan: Option<String>,
    ) -> Guard<'a> {
        Guard {
            store,
            id: id.to_string(),
            child: None,
            cgroup,
            poststop: None,
            private_plan,
            armed: true,
        }
    }

    /// What ferrun really made, once known: removed on failure.
    pub(crate) fn set_cgroup(&mut self, c: Option<Cgroup>) {
        self.cgroup = c;
    }

    /// `poststop` hooks to run once the container existed.
    pub(crate) fn set_poststop(&mut self, hooks: Vec<ferrun_plans::Hook>, state: String) {
        self.poststop = Some((hooks, state));
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some((pid, pidfd)) = self.child {
            crate::host::signals::kill_and_reap(pid, pidfd);
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
            crate::host::hooks::run_warn("poststop", hooks, state);
        }
    }
}

/// A container process that finished set-up.
pub(crate) struct Launched<'a> {
    pub(crate) guard: Guard<'a>,
    pub(crate) child: ferrun_executor::Child,
    pub(crate) sync: OwnedFd,
    pub(crate) pty: Option<OwnedFd>,
    pub(crate) plan: Plan,
    pub(crate) page: SharedPage,
}

/// What the phases share: the plan and what has been made for it so far.
struct Launch<'a> {
    store: &'a Store,
    opts: &'a CreateOpts,
    mode: Mode,
    bundle: PathBuf,
    plan: Plan,
    state: State,
    cgroup: Option<Cgroup>,
    guard: Guard<'a>,
    /// `--preserve-fds` plus socket activation's fds: they follow stdio into the container.
    preserve_fds: u32,
    /// OOM kills the container's cgroup had before the clone: only a new one is blamed.
    oom_before: u64,
    /// Rootless, the cgroup not delegated and no resources asked for: no cgroup is made and
    /// the plan's cgroup steps keep the caller's.
    cgroups_skipped: bool,
    /// The parent's own time namespace while its children are born in the container's.
    own_time_ns: Option<std::fs::File>,
    /// The parent's own namespaces while it is in the ones the clone joins: returned to right
    /// after the clone (see `join_before_clone`).
    own_namespaces: Vec<(OwnedFd, nix::sched::CloneFlags)>,
    /// A pid namespace was joined that ferrun may not leave (rootless): no thread until exit.
    stuck_in_pid_namespace: bool,
    /// Per container step, the fd of the detached mount the parent opened for it.
    trees: Vec<RawFd>,
}

/// The parent's fds for the clone: the sync socket pair, the exec fifo, namespaces to join.
struct SyncFds {
    parent: OwnedFd,
    child: OwnedFd,
    fifo: Option<OwnedFd>,
    ns: [RawFd; 8],
    ns_files: Vec<OwnedFd>,
}

/// Starts a container process and waits until it is set up (`Ready`): the state then holds its
/// pid. A failure anywhere is undone by the guard.
pub(crate) fn launch<'a>(
    store: &'a Store,
    opts: &'a CreateOpts,
    mode: Mode,
    hook: Option<&dyn Fn()>,
) -> Result<Launched<'a>> {
    let mut l = prepare(store, opts, mode)?;
    let mut sync = open_sync(&l)?;
    if let Err(e) = before_clone(&mut l, &mut sync) {
        // Whatever was joined is left before the clean-up runs its hooks.
        let _ = leave_joined(&mut l);
        return Err(e);
    }
    let page = match SharedPage::new() {
        Ok(p) => p,
        Err(e) => {
            let _ = leave_joined(&mut l);
            return Err(e).ctx(|| "map the page shared with the container process".into());
        }
    };
    if profile::enabled() {
        page.set_profile();
    }
    profile::mark("host steps before clone");
    let cloned = clone_child(&mut l, sync, &page, hook);
    let left = leave_joined(&mut l);
    let (child, parent) = cloned?;
    left?;
    profile::mark("clone3");
    if let Err(e) = after_clone(&mut l, &parent, &child) {
        // A container process that failed (or died) meanwhile says more than what it broke.
        return Err(child_failure(&mut l, &parent, &page, &child).unwrap_or(e));
    }
    profile::mark("host steps after clone");
    let pty = until_ready(&mut l, &parent, &page, &child)?;
    profile::mark("container set-up, until ready");
    if l.mode == Mode::Create && profile::enabled() {
        let upto = l
            .plan
            .steps
            .iter()
            .position(|s| matches!(s, ferrun_plans::Step::Ready));
        let n = upto.map_or(l.plan.steps.len(), |i| i + 1);
        profile::container(&l.plan, &page.stamps(n), ferrun_executor::now_ns());
    }
    ready(l, child, parent, pty, page)
}

/// The plan (from the cache or planned now), the checks on the live system, and the state,
/// claimed: nothing else is made yet.
fn prepare<'a>(store: &'a Store, opts: &'a CreateOpts, mode: Mode) -> Result<Launch<'a>> {
    crate::state::check_id(&opts.id)?;
    let bundle = absolute(&opts.bundle)?;
    let options = Options {
        no_pivot: opts.no_pivot,
        systemd_cgroup: opts.systemd_cgroup,
    };
    let loaded = cache::load_or_plan(&store.root, &bundle, opts.config.as_deref(), options)?;
    profile::mark(match loaded.origin {
        cache::Origin::Hit => "plan (cache hit)",
        cache::Origin::TemplateHit => "plan (template filled in)",
        _ => "plan (planned)",
    });
    log::debug(&format!("plan {} ({})", loaded.key, loaded.origin));
    for np in &loaded.plan.not_planned {
        log::debug(&format!("not yet planned: {}: {}", np.field, np.why));
    }
    // What the planner left out on purpose is said each time, as runc says it.
    for w in &loaded.plan.warnings {
        log::warn(w);
    }
    let private = loaded.private_to(&opts.id, &bundle);
    let key = loaded.key;
    let mut plan = loaded.plan;
    let listen_fds = socket_activation(&mut plan);
    let preserve_fds = opts.preserve_fds.saturating_add(listen_fds).min(65536);
    if plan.terminal && opts.console_socket.is_none() && mode == Mode::Create {
        bail!("process.terminal is true: create needs --console-socket to hand the pty to");
    }
    check_rootfs(&plan, &bundle)?;
    check_sysctls(&plan)?;
    check_rlimits(&plan)?;
    crate::host::hooks::check(&plan.hooks)?;
    // Resolved (and a path the kernel would refuse refused) before anything is made.
    let mut cgroup = plan
        .cgroups
        .as_ref()
        .map(|c| Cgroup::resolve(c, &opts.id))
        .transpose()?;
    let mut cgroups_skipped = false;
    if let (Some(cg), Some(c)) = (&cgroup, &plan.cgroups)
        && c.optional
        && let Err(why) = cg.may_create()
    {
        // runc's rule: a rootless container that asks for no resources runs without a cgroup.
        log::warn(&format!("rootless: no cgroup for {}: {why}", opts.id));
        cgroup = None;
        cgroups_skipped = true;
    }
    let mut state = initial_state(opts, &bundle, &plan, (&key, private), cgroup.clone());
    state.notify = crate::host::notify::host_socket();
    // The directory appears with its state in it (see `Store::claim`).
    let dir = store.claim(&state)?;
    let guard = Guard::new(store, &opts.id, cgroup.clone(), private.then_some(key));
    if state.notify.is_some() {
        crate::host::notify::prepare(&mut plan, &dir)?;
    }
    profile::mark("checks, state claimed");
    Ok(Launch {
        store,
        opts,
        mode,
        bundle,
        plan,
        state,
        cgroup,
        guard,
        preserve_fds,
        oom_before: 0,
        cgroups_skipped,
        own_time_ns: None,
        own_namespaces: Vec::new(),
        stuck_in_pid_namespace: false,
        trees: Vec::new(),
    })
}

/// A container's state as it is claimed, before it has a process: `create`'s and `restore`'s.
pub(crate) fn initial_state(
    opts: &CreateOpts,
    bundle: &Path,
    plan: &Plan,
    (key, private): (&str, bool),
    cgroup: Option<Cgroup>,
) -> State {
    State {
        id: opts.id.clone(),
        pid: 0,
        pid_start: 0,
        bundle: bundle.to_string_lossy().into_owned(),
        rootfs: plan.rootfs.clone(),
        created: log::rfc3339_now(),
        owner: String::new(),
        plan_private: private,
        plan: key.to_string(),
        cgroup,
        hooks: (!plan.hooks.is_empty()).then(|| plan.hooks.clone()),
        notify: None,
        config: opts
            .config
            .as_ref()
            .and_then(|c| std::fs::canonicalize(c).ok())
            .map(|c| c.to_string_lossy().into_owned()),
    }
}

/// The sync socket pair and, for `create`, the exec fifo, all above the preserved fds.
fn open_sync(l: &Launch<'_>) -> Result<SyncFds> {
    let min_fd = 3 + l.preserve_fds;
    let (parent, child) = seqpacket_pair()?;
    let parent = above(parent, min_fd)?;
    let child = above(child, min_fd)?;
    let fifo = match l.mode {
        Mode::Create => {
            let path = l.store.fifo(&l.opts.id);
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
    Ok(SyncFds {
        parent,
        child,
        fifo,
        ns: [-1; 8],
        ns_files: Vec::new(),
    })
}

/// The plan's host steps before clone: namespaces opened (or joined, so the clone is born in
/// them), the cgroups made and written.
fn before_clone(l: &mut Launch<'_>, sync: &mut SyncFds) -> Result<()> {
    let min_fd = 3 + l.preserve_fds;
    let mut open = None;
    let mut joins = Vec::new();
    for (i, h) in l.plan.before_clone.iter().enumerate() {
        if profile::enabled() {
            profile::host_step(i + 1, h.to_string());
        }
        match h {
            HostStep::OpenNamespace { slot, ns, path } => {
                let f = above(OwnedFd::from(open_namespace(*ns, path)?), min_fd)?;
                if let Some(s) = sync.ns.get_mut(usize::from(*slot)) {
                    *s = f.as_raw_fd();
                }
                sync.ns_files.push(f);
            }
            // Opened now, so that a bad path fails here; joined last.
            HostStep::JoinBeforeClone { ns, path } => joins.push((*ns, open_namespace(*ns, path)?)),
            HostStep::TimeNamespace { offsets } => {
                // Above the preserved fds: a gap among them must not pass it to the container.
                let own = above(OwnedFd::from(time_namespace_with_offsets(offsets)?), min_fd)?;
                l.own_time_ns = Some(std::fs::File::from(own));
            }
            HostStep::OpenMountTrees => {
                let trees = crate::host::trees::open(&l.plan, min_fd)?;
                l.trees = trees.by_step;
                // Held until the clone has inherited them.
                sync.ns_files.extend(trees.fds);
            }
            HostStep::NetDevices { devices } => {
                let Some(path) = l.plan.before_clone.iter().find_map(|h| match h {
                    HostStep::JoinBeforeClone {
                        ns: ferrun_plans::Namespace::Network,
                        path,
                    } => Some(path.clone()),
                    _ => None,
                }) else {
                    bail!("plan: {h} before clone without a network namespace to join");
                };
                let ns = open_namespace(ferrun_plans::Namespace::Network, &path)?;
                crate::host::netdev::move_devices(
                    &net_devices(devices),
                    crate::host::netdev::Target::File(&ns),
                )?;
            }
            HostStep::CgroupCreate | HostStep::CgroupWrite(_) | HostStep::CgroupDevices { .. }
                if l.cgroups_skipped => {}
            HostStep::CgroupCreate => {
                let (Some(cg), Some(c)) = (&mut l.cgroup, &l.plan.cgroups) else {
                    return Err(no_cgroup());
                };
                let made = cg.create(&c.v2_controllers, c.shared).map_err(|e| {
                    let denied = ["Permission denied", "Operation not permitted", "Read-only"]
                        .iter()
                        .any(|p| e.0.contains(p));
                    if denied && crate::host::rootless::detect() {
                        Error(format!(
                            "{}; rootless, and the cgroup is not delegated to you, so \
                             linux.resources cannot be applied",
                            e.0
                        ))
                    } else {
                        e
                    }
                });
                // What ferrun really made, known now: kept for clean-up and for delete.
                l.guard.cgroup = Some(cg.clone());
                made?;
                l.state.cgroup = Some(cg.clone());
                l.store.save(&l.state)?;
                l.oom_before = cg.oom_kills_so_far();
            }
            HostStep::CgroupWrite(_) | HostStep::CgroupDevices { .. } => {
                cgroup_file_step(l.cgroup.as_ref(), h, &mut open)?
            }
            other => bail!("plan: {other} cannot run before clone"),
        }
    }
    join_before_clone(l, joins, min_fd)
}

/// Joins the namespaces the clone is to be born in (all the config names but user and mount), as
/// the last thing before it, keeping the parent's own to return to right after it. Until then a
/// process whose children's pid namespace is not its own cannot start a thread (the kernel
/// refuses CLONE_THREAD), which the systemd driver's D-Bus client needs; and the hooks and
/// helpers it starts run in the runtime's namespaces, not the container's. Whether the way back
/// is open is asked of the kernel before joining, by joining ferrun's own namespace (a no-op
/// with the same permission checks): where ferrun runs in a user namespace that does not own
/// it (rootless podman's, with the host's network), it stays joined, as before. (runc's and
/// crun's parents never join: their child does.)
fn join_before_clone(
    l: &mut Launch<'_>,
    joins: Vec<(ferrun_plans::Namespace, std::fs::File)>,
    min_fd: u32,
) -> Result<()> {
    for (ns, f) in joins {
        let own = ferrun_plans::CBuf::new(&format!("/proc/self/ns/{}", ns.proc_name()))
            .ok_or_else(|| Error("a NUL in a constant".into()))?;
        let own = above(OwnedFd::from(open_namespace(ns, &own)?), min_fd)?;
        let flags = nix::sched::CloneFlags::from_bits_truncate(ns.clone_flag() as i32);
        let can_return = nix::sched::setns(&own, flags).is_ok();
        nix::sched::setns(&f, flags).ctx(|| format!("join the {} namespace", ns.oci_name()))?;
        if can_return {
            l.own_namespaces.push((own, flags));
        } else if ns == ferrun_plans::Namespace::Pid {
            l.stuck_in_pid_namespace = true;
        }
    }
    Ok(())
}

/// Back to the parent's own namespaces, once the clone is born in the joined ones (or failed):
/// every one is tried, and the first failure reported.
fn leave_joined(l: &mut Launch<'_>) -> Result<()> {
    let mut first = Ok(());
    for (own, flags) in l.own_namespaces.drain(..) {
        let back =
            nix::sched::setns(&own, flags).ctx(|| "return to ferrun's own namespaces".into());
        if first.is_ok() {
            first = back;
        }
    }
    first
}

/// `linux.timeOffsets`: a new time namespace for the parent's children, its offsets written
/// through a procfs of ferrun's own before any process is in it; returns the parent's own.
fn time_namespace_with_offsets(offsets: &ferrun_plans::CBuf) -> Result<std::fs::File> {
    let field = "linux.timeOffsets";
    let own = ferrun_plans::CBuf::new("/proc/self/ns/time")
        .ok_or_else(|| Error("a NUL in a constant".into()))?;
    let own = open_namespace(ferrun_plans::Namespace::Time, &own)?;
    // SAFETY: unshare takes flags only.
    if unsafe { libc::unshare(libc::CLONE_NEWTIME) } != 0 {
        let e = std::io::Error::last_os_error();
        let hint = if crate::host::rootless::detect() {
            " (rootless: making a time namespace needs CAP_SYS_ADMIN)"
        } else {
            ""
        };
        bail!("{field}: unshare a time namespace: {e}{hint}");
    }
    crate::host::procfs::ProcFs::open()?
        .write(
            &format!("{}/timens_offsets", std::process::id()),
            offsets.bytes(),
        )
        .map_err(|e| Error(format!("{field}: {}", e.0)))?;
    Ok(own)
}

fn net_devices(devices: &[(ferrun_plans::CBuf, ferrun_plans::CBuf)]) -> Vec<(String, String)> {
    devices
        .iter()
        .map(|(host, name)| (host.text().into_owned(), name.text().into_owned()))
        .collect()
}

fn no_cgroup() -> Error {
    Error("plan: a cgroup step without cgroups".into())
}

/// A write into the container's cgroup files, or its device program: the same before clone
/// (cgroupfs) and after it (the systemd driver, once the scope exists).
pub(crate) fn cgroup_file_step(
    cg: Option<&Cgroup>,
    h: &HostStep,
    open: &mut Option<(std::path::PathBuf, std::fs::File)>,
) -> Result<()> {
    let cg = cg.ok_or_else(no_cgroup)?;
    match h {
        HostStep::CgroupWrite(w) => {
            cg.write_through(open, usize::from(w.hierarchy), &w.file, &w.value, &w.field)
        }
        HostStep::CgroupDevices { hierarchy, program } => {
            cg.attach_devices(usize::from(*hierarchy), program)
        }
        other => bail!("plan: {other} is not a cgroup file step"),
    }
}

/// `clone3` into the executor, born in the container's cgroup2 directory; the parent then drops
/// its copies of what only the child needs and keeps its end of the sync socket.
fn clone_child(
    l: &mut Launch<'_>,
    sync: SyncFds,
    page: &SharedPage,
    hook: Option<&dyn Fn()>,
) -> Result<(Child, OwnedFd)> {
    let fds = ChildFds {
        parent_sync: sync.parent.as_raw_fd(),
        shared: page.ptr(),
        sync: sync.child.as_raw_fd(),
        start: sync
            .fifo
            .as_ref()
            .map_or(sync.child.as_raw_fd(), |f| f.as_raw_fd()),
        ns: sync.ns,
        preserve: l.preserve_fds,
    };
    // The cgroup2 directory the clone is born in, the v1 `tasks` files it writes itself into.
    let clone_fds = match &l.cgroup {
        Some(cg) => Some(cg.clone_fds(&l.plan, 3 + l.preserve_fds)?),
        None => None,
    };
    let cgroup_dirs = l
        .cgroup
        .as_ref()
        .map(|c| {
            c.dirs
                .iter()
                .filter_map(|d| ferrun_plans::CBuf::new(&d.to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    let prepared = Prepared::new(&l.plan)
        .with_trees(l.trees.clone())
        .with_cgroups(
            cgroup_dirs,
            clone_fds.as_ref().map_or(-1, |c| c.clone_into),
            clone_fds
                .as_ref()
                .map(|c| c.tasks.clone())
                .unwrap_or_default(),
        );
    let prepared = match (&l.plan.cgroups, l.cgroups_skipped) {
        (Some(c), true) => prepared.with_cgroups_skipped(
            crate::cgroups::own_dirs(&c.hierarchies)
                .iter()
                .filter_map(|d| ferrun_plans::CBuf::new(&d.to_string_lossy()))
                .collect(),
        ),
        _ => prepared,
    };
    if profile::enabled() {
        let flags = ferrun_plans::clone_flag_names(l.plan.clone_flags);
        profile::host_step(l.plan.before_clone.len() + 1, format!("clone3 {flags}"));
    }
    let child = ferrun_executor::spawn(&prepared, &fds, hook)
        .ctx(|| "clone3 the container process".into())?;
    l.guard.child = Some((child.pid, child.pidfd));
    if !l.plan.hooks.poststop.is_empty() {
        // From here the container exists: its poststop hooks run however it ends.
        let bundle = l.bundle.to_string_lossy();
        let stopped = crate::host::hooks::state(&l.plan.hooks, &l.opts.id, "stopped", 0, &bundle);
        l.guard.poststop = Some((l.plan.hooks.poststop.clone(), stopped));
    }
    Ok((child, sync.parent))
}

/// The plan's host steps after clone: id maps and the oom score, written through a procfs of
/// ferrun's own, then the release.
fn after_clone(l: &mut Launch<'_>, parent: &OwnedFd, child: &Child) -> Result<()> {
    let mut proc = None;
    let mut open = None;
    let first = l.plan.before_clone.len() + 2;
    for (j, h) in l.plan.after_clone.iter().enumerate() {
        if profile::enabled() {
            profile::host_step(first + j, h.to_string());
        }
        match h {
            HostStep::WriteIdMap { kind, map } => {
                let file = match kind {
                    IdMapKind::Uid => "uid_map",
                    IdMapKind::Gid => "gid_map",
                };
                let proc = proc_root(&mut proc)?;
                proc.write(&format!("{}/{file}", child.pid), map.bytes())?;
            }
            HostStep::DenySetgroups => {
                let proc = proc_root(&mut proc)?;
                proc.write(&format!("{}/setgroups", child.pid), b"deny")
                    .map_err(|e| Error(format!("linux.gidMappings: {}", e.0)))?;
            }
            HostStep::IdMapHelper { kind, map } => id_map_helper(*kind, map, child.pid)?,
            HostStep::OomScoreAdj { value } => {
                let proc = proc_root(&mut proc)?;
                proc.write(&format!("{}/oom_score_adj", child.pid), value.bytes())
                    .map_err(|e| Error(format!("process.oomScoreAdj: {}", e.0)))?;
            }
            HostStep::StartScope => {
                let (Some(cg), Some(c)) = (&mut l.cgroup, &l.plan.cgroups) else {
                    return Err(no_cgroup());
                };
                let Some(scope) = &c.systemd else {
                    return Err(no_cgroup());
                };
                if l.stuck_in_pid_namespace {
                    // The D-Bus client needs a thread, which the kernel refuses here.
                    bail!(
                        "linux.namespaces: a pid namespace joined by path, which ferrun cannot \
                         leave from this user namespace, and the systemd cgroup manager cannot \
                         be combined (use the cgroupfs manager)"
                    );
                }
                let started = cg.start_scope(scope, child.pid, &l.opts.id);
                // From the moment the unit exists it is recorded, so that a failure here (or a
                // ferrun killed from here on) leaves `delete` the unit to stop.
                l.guard.cgroup = Some(cg.clone());
                l.state.cgroup = Some(cg.clone());
                if cg.systemd_unit.is_some() {
                    l.store.save(&l.state)?;
                }
                started?;
                cg.check_scope(child.pid, &c.v2_controllers)?;
            }
            HostStep::CgroupWrite(_) | HostStep::CgroupDevices { .. } => {
                cgroup_file_step(l.cgroup.as_ref(), h, &mut open)?
            }
            HostStep::Release => send_byte(parent)?,
            HostStep::NetDevices { devices } => crate::host::netdev::move_devices(
                &net_devices(devices),
                crate::host::netdev::Target::Process {
                    pid: child.pid,
                    pidfd: child.pidfd,
                },
            )?,
            HostStep::LeaveTimeNamespace => {
                let Some(own) = l.own_time_ns.take() else {
                    bail!("plan: {h} without a time namespace to leave");
                };
                nix::sched::setns(own, nix::sched::CloneFlags::empty())
                    .ctx(|| "return to ferrun's own time namespace".into())?;
            }
            other => bail!("plan: {other} cannot run after clone"),
        }
    }
    Ok(())
}

/// `newuidmap`/`newgidmap <pid> <inside> <outside> <count>…`: the setuid helpers that check
/// the ranges against `/etc/subuid` and `/etc/subgid` and write the map for an unprivileged
/// caller.
fn id_map_helper(kind: IdMapKind, map: &ferrun_plans::CBuf, pid: i32) -> Result<()> {
    let (helper, field, file) = match kind {
        IdMapKind::Uid => ("newuidmap", "linux.uidMappings", "/etc/subuid"),
        IdMapKind::Gid => ("newgidmap", "linux.gidMappings", "/etc/subgid"),
    };
    let out = std::process::Command::new(helper)
        .arg(pid.to_string())
        .args(map.text().split_whitespace())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| {
            Error(format!(
                "{field}: a rootless map beyond your own id needs {helper} (package uidmap): {}",
                crate::error::errno_text(e.raw_os_error().unwrap_or(libc::EIO))
            ))
        })?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        bail!(
            "{field}: {helper} refused the map {:?} (are its ranges yours in {file}?): {}",
            map.text().trim_end(),
            why.trim()
        );
    }
    Ok(())
}

/// The failure the container process reported, or its death, if either happened already.
fn child_failure(
    l: &mut Launch<'_>,
    parent: &OwnedFd,
    page: &SharedPage,
    child: &Child,
) -> Option<Error> {
    let mut p = libc::pollfd {
        fd: parent.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: polling our own socket without waiting.
    if unsafe { libc::poll(&mut p, 1, 0) } != 1 {
        return None;
    }
    match recv_record(parent) {
        Ok(Some((r, _))) if r.step < ferrun_executor::MSG_HOOKS => {
            Some(Error(render_failure(&l.plan, r)))
        }
        Ok(None) => {
            let mut status = 0;
            // SAFETY: reaping our own child, which closed its end: it is exiting.
            unsafe { libc::waitpid(child.pid, &mut status, 0) };
            l.guard.child = None;
            let cgroup = (l.guard.cgroup.as_ref(), l.oom_before);
            Some(Error(describe_death(&l.plan, page, status, cgroup)))
        }
        _ => None,
    }
}

/// Serves the container process until it reports ready: its pty, the create hooks at
/// `AwaitHooks`, the seccomp listener; a failed step (or a death without a word) is the error.
fn until_ready(
    l: &mut Launch<'_>,
    parent: &OwnedFd,
    page: &SharedPage,
    child: &Child,
) -> Result<Option<OwnedFd>> {
    let mut pty = None;
    loop {
        match recv_record(parent)? {
            Some((r, fd)) if r.step == MSG_PTY => {
                let master = fd.ok_or_else(|| Error("container process sent no pty".into()))?;
                set_console_size(&master, l.plan.console_size);
                match &l.opts.console_socket {
                    Some(sock) => send_console(sock, &master)?,
                    None => pty = Some(master),
                }
            }
            Some((r, _)) if r.step == MSG_READY => return Ok(pty),
            Some((r, _)) if r.step == ferrun_executor::MSG_HOOKS => {
                create_hooks(l, child)?;
                send_byte(parent)?;
            }
            Some((r, _)) if r.step == ferrun_executor::MSG_SECCOMP => {
                let Some(listener) = &l.plan.seccomp_listener else {
                    bail!("container process announced a seccomp listener the plan has none of");
                };
                let who = (child.pidfd, child.pid, l.opts.id.as_str());
                hand_over_listener(parent.as_raw_fd(), page, listener, who, &l.bundle)?;
            }
            Some((r, _)) => return Err(Error(render_failure(&l.plan, r))),
            None => {
                let mut status = 0;
                // SAFETY: reaping our own child.
                unsafe { libc::waitpid(child.pid, &mut status, 0) };
                l.guard.child = None;
                let cgroup = (l.guard.cgroup.as_ref(), l.oom_before);
                return Err(Error(describe_death(&l.plan, page, status, cgroup)));
            }
        }
    }
}

/// `prestart`, `createRuntime` and `createContainer`, once the runtime environment exists.
fn create_hooks(l: &Launch<'_>, child: &Child) -> Result<()> {
    let h = &l.plan.hooks;
    let bundle = l.bundle.to_string_lossy();
    let st = crate::host::hooks::state(h, &l.opts.id, "creating", child.pid, &bundle);
    crate::host::hooks::run("prestart", &h.prestart, &st, None)?;
    crate::host::hooks::run("createRuntime", &h.create_runtime, &st, None)?;
    let ns = Some((child.pidfd, h.container_ns));
    crate::host::hooks::run("createContainer", &h.create_container, &st, ns)
}

/// The container process is set up: its pid goes into the state.
fn ready<'a>(
    mut l: Launch<'a>,
    child: Child,
    sync: OwnedFd,
    pty: Option<OwnedFd>,
    page: SharedPage,
) -> Result<Launched<'a>> {
    l.state.pid = child.pid;
    l.state.pid_start = proc_stat(child.pid).map_or(0, |(s, _)| s);
    l.store.save(&l.state)?;
    Ok(Launched {
        guard: l.guard,
        child,
        sync,
        pty,
        plan: l.plan,
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
    (pidfd, pid, id): (RawFd, i32, &str),
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
        "ociVersion": crate::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": listener.metadata,
        "state": {
            "ociVersion": crate::OCI_VERSION,
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
    let addr = UnixAddr::new(listener.path.as_str()).ctx(|| {
        format!(
            "linux.seccomp.listenerPath {}",
            ferrun_plans::clip(&listener.path, 300)
        )
    })?;
    connect(stream.as_raw_fd(), &addr).ctx(|| {
        format!(
            "linux.seccomp.listenerPath: connect to {}",
            ferrun_plans::clip(&listener.path, 300)
        )
    })?;
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
            ferrun_plans::clip(&listener.path, 300)
        )
    })?;
    page.release();
    Ok(true)
}

/// The procfs the parent writes a child's files through, opened at the first write.
fn proc_root(
    slot: &mut Option<crate::host::procfs::ProcFs>,
) -> Result<&crate::host::procfs::ProcFs> {
    if slot.is_none() {
        *slot = Some(crate::host::procfs::ProcFs::open()?);
    }
    match slot {
        Some(p) => Ok(p),
        None => bail!("open /proc"),
    }
}
