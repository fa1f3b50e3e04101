//! `ferrun restore`: a container made from a bundle and criu's images instead of a fresh
//! process. The bundle is planned as for `create`; its id is claimed and its cgroups made and
//! written; criu (`criu swrk`) joins them, restores the tree into the rootfs (bound on a mount
//! point of its own) as ferrun's child, with the external mounts and namespaces the plan names
//! and the engine's new stdio pipes in place of the dumped ones. The `prestart` and
//! `createRuntime` hooks run when criu has made the namespaces; the container is then
//! `running`, a normal ferrun container. Without `--detach` ferrun waits for it, as `run` does.

use super::checks::{check_rootfs, open_namespace};
use super::common::{CreateOpts, absolute};
use super::criu::{
    CriuFlags, DESCRIPTORS, External, base_opts, external_ns_key, externals, image_dir,
    joined_namespaces, log_path, open_work, restore_mounts,
};
use super::launch::{Guard, cgroup_file_step, initial_state};
use crate::bail;
use crate::cache;
use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};
use crate::host::criu::{
    CgroupRoot, FIRST_PASSED_FD, InheritFd, JoinNamespace, Req, ReqType, log_errors, spawn,
};
use crate::host::files::write_pid_file;
use crate::log;
use crate::state::{State, Store, proc_stat};
use ferrun_plans::{HostStep, Namespace, Plan, Step};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// `restore`'s options: `create`'s (id, bundle, pid file, console socket, `--no-pivot`, the
/// cgroup manager) and criu's.
#[derive(Clone, Debug, Default)]
pub struct RestoreOpts {
    pub create: CreateOpts,
    pub flags: CriuFlags,
    pub detach: bool,
}

const LOG: &str = "restore.log";

/// The rootfs bound on `<state dir>/criu-root` (`state::CRIU_ROOT`): criu wants a root that is a
/// mount point whose parent is not overmounted. Unmounted and removed when dropped (and by
/// `Store::remove`, should ferrun die first).
struct RootBind(PathBuf);

impl RootBind {
    fn new(rootfs: &str, at: PathBuf) -> Result<RootBind> {
        std::fs::create_dir(&at).ctx(|| format!("create {}", at.display()))?;
        let bind = RootBind(at);
        nix::mount::mount(
            Some(rootfs),
            &bind.0,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| Error(format!("root.path: bind {rootfs} for criu: {e}")))?;
        Ok(bind)
    }
}

impl Drop for RootBind {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// `ferrun restore`: the exit code of the container's process without `--detach`, else 0.
pub fn restore(store: &Store, o: &RestoreOpts) -> Result<i32> {
    let id = &o.create.id;
    crate::state::check_id(id)?;
    if crate::host::rootless::detect() {
        bail!("restore needs root: criu cannot restore a rootless container");
    }
    let bundle = absolute(&o.create.bundle)?;
    let loaded = cache::load_or_plan(
        &store.root,
        &bundle,
        o.create.config.as_deref(),
        ferrun_planner::Options {
            no_pivot: o.create.no_pivot,
            systemd_cgroup: o.create.systemd_cgroup,
        },
    )?;
    let private = loaded.private_to(id, &bundle);
    let key = loaded.key;
    let plan = loaded.plan;
    super::profile::mark("plan");
    if plan.terminal && o.create.console_socket.is_none() && o.detach {
        bail!("process.terminal is true: restore --detach needs --console-socket");
    }
    check_rootfs(&plan, &bundle)?;
    let images_path = image_dir(&o.flags);
    let images = std::fs::File::open(&images_path)
        .map(OwnedFd::from)
        .ctx(|| format!("--image-path {}", images_path.display()))?;
    let descriptors: Vec<String> = {
        let path = images_path.join(DESCRIPTORS);
        let bytes = std::fs::read(&path).ctx(|| {
            format!(
                "--image-path {}: no {DESCRIPTORS} (not a container's checkpoint?)",
                images_path.display()
            )
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error(format!("{}: {e}", path.display())))?
    };
    let work = open_work(&o.flags)?;
    let mut cgroup = plan
        .cgroups
        .as_ref()
        .map(|c| Cgroup::resolve(c, id))
        .transpose()?;
    let mut state = initial_state(&o.create, &bundle, &plan, (&key, private), cgroup.clone());
    let dir = store.claim(&state)?;
    // Declared before the guard, so that it is still open when the guard kills through it.
    let pidfd: OwnedFd;
    let mut guard = Guard::new(store, id, cgroup.clone(), private.then_some(key));
    if let (Some(cg), Some(c)) = (&mut cgroup, &plan.cgroups)
        && c.systemd.is_none()
    {
        let made = cg.create(&c.v2_controllers, c.shared);
        guard.set_cgroup(Some(cg.clone()));
        made?;
        state.cgroup = Some(cg.clone());
        store.save(&state)?;
        cgroup_steps(cg, &plan.before_clone)?;
    }
    let root = RootBind::new(&plan.rootfs, dir.join(crate::state::CRIU_ROOT))?;
    let dirs = cgroup.as_ref().map(|c| c.dirs.clone()).unwrap_or_default();
    make_mountpoints(&plan, &externals(&plan, &dirs, &|_| true))?;
    // Again, now that every mount point exists: their names resolve as at the dump.
    let ext = externals(&plan, &dirs, &|_| true);

    let mut opts = base_opts(&o.flags, &images, work.as_ref(), LOG)?;
    opts.root = Some(root.0.to_string_lossy().into_owned());
    opts.rst_sibling = Some(true);
    opts.evasive_devices = Some(true);
    opts.ext_mnt = restore_mounts(&ext);
    let mut passed = Vec::new();
    for (ns, path) in joined_namespaces(&plan) {
        if let Some(key) = external_ns_key(ns) {
            let c = ferrun_plans::CBuf::new(&path)
                .ok_or_else(|| Error(format!("linux.namespaces: a NUL in {path}")))?;
            let f = OwnedFd::from(open_namespace(ns, &c)?);
            opts.inherit_fd.push(InheritFd {
                key: key.into(),
                fd: FIRST_PASSED_FD + passed.len() as i32,
            });
            passed.push(f);
        } else if matches!(ns, Namespace::Cgroup | Namespace::Time) {
            bail!(
                "linux.namespaces: criu cannot restore into a joined {} namespace ({path})",
                ns.oci_name()
            );
        } else {
            opts.join_ns.push(JoinNamespace {
                ns: ns.proc_name().into(),
                ns_file: path,
            });
        }
    }
    // The engine's new pipes stand in for the dumped ones, by the fd criu has them on.
    for (fd, d) in descriptors.iter().enumerate().take(3) {
        if d.contains("pipe:") {
            opts.inherit_fd.push(InheritFd {
                key: d.clone(),
                fd: fd as i32,
            });
        }
    }
    super::profile::mark("state, cgroups, root and mount points");
    let pass: Vec<&OwnedFd> = passed.iter().collect();
    let mut criu = spawn(&pass)?;
    if let Some(cg) = &mut cgroup {
        enter_cgroups(store, &mut state, &mut guard, cg, &plan, criu.pid())?;
        opts.cg_root = cgroup_roots(criu.pid());
    }
    let req = Req {
        r#type: ReqType::Restore as i32,
        opts: Some(opts),
        ..Default::default()
    };
    let mut master: Option<OwnedFd> = None;
    let hooks = plan.hooks.clone();
    let bundle_text = state.bundle.clone();
    let mut on_notify = |script: &str, pid: i32, fd: Option<OwnedFd>| -> Result<()> {
        match script {
            "setup-namespaces" => {
                let st = crate::host::hooks::state(&hooks, id, "created", pid, &bundle_text);
                crate::host::hooks::run("prestart", &hooks.prestart, &st, None)?;
                crate::host::hooks::run("createRuntime", &hooks.create_runtime, &st, None)
            }
            "orphan-pts-master" => {
                let Some(fd) = fd else {
                    bail!("criu sent no pty master");
                };
                crate::host::console::set_console_size(&fd, plan.console_size);
                match &o.create.console_socket {
                    Some(sock) => crate::host::console::send_console(sock, &fd),
                    None => {
                        master = Some(fd);
                        Ok(())
                    }
                }
            }
            _ => Ok(()),
        }
    };
    super::profile::mark("criu started, in the cgroups");
    let called = criu.call(&req, &mut on_notify);
    super::profile::mark("criu: the restore");
    let resp = match called {
        Ok(r) => r,
        Err(e) => {
            drop(criu);
            let log = log_path(&o.flags, LOG);
            return Err(Error(format!(
                "restore {id}: {}; criu's log {}:\n  {}",
                e.0,
                log.display(),
                log_errors(&log)
            )));
        }
    };
    let pid = resp.restore.map_or(0, |r| r.pid);
    if pid <= 0 {
        bail!("restore {id}: criu named no restored process");
    }
    // SAFETY: pidfd_open returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        bail!("restore {id}: the restored process {pid} is gone");
    }
    // SAFETY: a fresh fd.
    pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    guard.child = Some((pid, pidfd.as_raw_fd()));
    if !criu.finish()? {
        log::warn(&format!(
            "restore {id}: criu exited with an error after restoring (see {})",
            log_path(&o.flags, LOG).display()
        ));
    }
    super::profile::mark("criu: its exit");
    drop(root);
    state.pid = pid;
    state.pid_start = proc_stat(pid).map_or(0, |(start, _)| start);
    store.save(&state)?;
    let stopped = crate::host::hooks::state(&hooks, id, "stopped", pid, &state.bundle);
    guard.set_poststop(hooks.poststop.clone(), stopped);
    let running = crate::host::hooks::state(&hooks, id, "running", pid, &state.bundle);
    crate::host::hooks::run("poststart", &hooks.poststart, &running, None)?;
    if let Some(p) = &o.create.pid_file {
        write_pid_file(p, pid)?;
    }
    super::profile::mark("state, hooks, pid file");
    if o.detach {
        guard.armed = false;
        return Ok(0);
    }
    let forwarded = crate::host::signals::forwarded_signals();
    let old = crate::host::signals::block(&forwarded)?;
    let console = master.map(crate::host::console::Proxy::start).transpose()?;
    let code =
        crate::host::signals::wait_forwarding(pid, pidfd.as_raw_fd(), &forwarded, console.as_ref());
    // SAFETY: restoring the mask we saved.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    if let Some(c) = console {
        c.finish();
    }
    // As `run`: once the process exits, the guard deletes the container.
    guard.child = None;
    code
}

/// The plan's cgroup writes and device program among `steps`.
fn cgroup_steps(cg: &Cgroup, steps: &[HostStep]) -> Result<()> {
    let mut open = None;
    for h in steps {
        if matches!(h, HostStep::CgroupWrite(_) | HostStep::CgroupDevices { .. }) {
            cgroup_file_step(Some(cg), h, &mut open)?;
        }
    }
    Ok(())
}

/// criu joins the container's cgroups before it restores the tree into them: cgroupfs moves it
/// into the directories made above; the systemd driver starts the scope with criu's pid (as
/// runc does), then writes what systemd has no property for.
fn enter_cgroups(
    store: &Store,
    state: &mut State,
    guard: &mut Guard<'_>,
    cg: &mut Cgroup,
    plan: &Plan,
    criu: i32,
) -> Result<()> {
    let Some(c) = &plan.cgroups else {
        return Ok(());
    };
    let Some(scope) = &c.systemd else {
        return cg.enter(criu);
    };
    let started = cg.start_scope(scope, criu, &state.id);
    guard.set_cgroup(Some(cg.clone()));
    state.cgroup = Some(cg.clone());
    if cg.systemd_unit.is_some() {
        store.save(state)?;
    }
    started?;
    cg.check_scope(criu, &c.v2_controllers)?;
    cgroup_steps(cg, &plan.after_clone)
}

/// `/proc/<criu>/cgroup` as criu's cgroup roots: each hierarchy's directory (cgroup2's as the
/// root of every controller not named).
fn cgroup_roots(pid: i32) -> Vec<CgroupRoot> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            Some(CgroupRoot {
                ctrl: (!ctrl.is_empty()).then(|| ctrl.to_string()),
                path: path.to_string(),
            })
        })
        .collect()
}

/// Mount points of the external binds made in the rootfs where missing (a rootfs taken from an
/// export lacks those the first create made), except on a tmpfs the images hold.
fn make_mountpoints(plan: &Plan, ext: &[External]) -> Result<()> {
    let tmpfs: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Mount { dest, fstype, .. }
                if fstype.as_ref().is_some_and(|f| f.text() == "tmpfs") =>
            {
                Some(dest.text().into_owned())
            }
            Step::TmpfsCopyUp { dest, .. } => Some(dest.text().into_owned()),
            _ => None,
        })
        .collect();
    let cgroup_binds: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::CgroupBind { dest, .. } => Some(dest.text().into_owned()),
            _ => None,
        })
        .collect();
    let root = std::fs::File::open(&plan.rootfs).ctx(|| format!("root.path {}", plan.rootfs))?;
    for e in ext {
        if e.source.is_none()
            || cgroup_binds.contains(&e.dest)
            || tmpfs
                .iter()
                .any(|t| Path::new(&e.dest).starts_with(t) && e.dest != *t)
        {
            continue;
        }
        let c = std::ffi::CString::new(e.dest.as_str())
            .map_err(|_| Error(format!("mounts: a NUL in {}", e.dest)))?;
        ferrun_executor::make_mountpoint(root.as_raw_fd(), &c, e.dir).map_err(|errno| {
            Error(format!(
                "mounts: make the mount point {} for criu: {}",
                e.dest,
                crate::error::errno_text(errno)
            ))
        })?;
    }
    Ok(())
}
