//! `ferrun exec`: a new process in a running container. The process is planned like a
//! container's (`ferrun_planner::plan_exec`): it enters the container's namespaces through the
//! pidfd of its first process, joins its cgroups, and gets its user, capabilities, rlimits,
//! `no_new_privs` and seccomp filter before `execve`.

use super::common::pidfd_of;
use super::failure::render_failure;
use super::profile;
use crate::bail;
use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};
use crate::host::console::send_console;
use crate::host::fd::{above, recv_record, send_byte, seqpacket_pair};
use crate::host::files::write_pid_file;
use crate::host::signals::{block, forwarded_signals, kill_and_reap, wait_forwarding};
use crate::state::{Status, Store};
use ferrun_executor::{ChildFds, MSG_PTY, MSG_READY, Prepared};
use ferrun_plans::{HostStep, Plan, Step};
use serde_json::{Value, json};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// `exec`'s options, runc's flags.
#[derive(Clone, Debug, Default)]
pub struct ExecOpts {
    pub id: String,
    pub process: Option<PathBuf>,
    pub args: Vec<String>,
    pub pid_file: Option<PathBuf>,
    pub detach: bool,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub cwd: Option<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
    pub preserve_fds: u32,
    pub ignore_paused: bool,
}

/// The `process` object: `--process FILE` as is, or the container's own process with the
/// flags applied (as runc builds it).
fn process_json(opts: &ExecOpts, config: &Value) -> Result<Vec<u8>> {
    if let Some(path) = &opts.process {
        let bytes = std::fs::read(path).ctx(|| format!("--process {}", path.display()))?;
        let Ok(mut p) = serde_json::from_slice::<Value>(&bytes) else {
            // The planner names what is wrong with it.
            return Ok(bytes);
        };
        // A process without a profile or label of its own takes the container's, as in runc:
        // an exec'd process is never less confined than the container by omission.
        for key in ["apparmorProfile", "selinuxLabel"] {
            let own = p
                .get(key)
                .and_then(Value::as_str)
                .is_some_and(|v| !v.is_empty());
            if let Some(theirs) = config["process"].get(key).filter(|v| !own && v.is_string()) {
                p[key] = theirs.clone();
            }
        }
        return serde_json::to_vec(&p).map_err(|e| Error(format!("encode the process: {e}")));
    }
    if opts.args.is_empty() {
        bail!("exec: no command given (and no --process)");
    }
    let mut p = config.get("process").cloned().unwrap_or_else(|| json!({}));
    p["args"] = json!(opts.args);
    p["terminal"] = json!(opts.tty);
    if let Some(cwd) = &opts.cwd {
        p["cwd"] = json!(cwd);
    }
    if !opts.env.is_empty() {
        let mut env: Vec<Value> = p["env"].as_array().cloned().unwrap_or_default();
        // `--env NAME=V` replaces the container's NAME (runc's rule), or is added.
        for e in &opts.env {
            let name = e.split_once('=').map_or(e.as_str(), |(n, _)| n);
            let same = |v: &Value| {
                v.as_str()
                    .is_some_and(|s| s.split_once('=').map_or(s, |(n, _)| n) == name)
            };
            match env.iter().position(same) {
                Some(i) => env[i] = json!(e),
                None => env.push(json!(e)),
            }
            // Any later duplicate of it in the container's list would shadow nothing now.
            let first = env.iter().position(same);
            let mut k = 0;
            env.retain(|v| {
                let keep = !same(v) || Some(k) == first;
                k += 1;
                keep
            });
        }
        p["env"] = json!(env);
    }
    if let Some(u) = &opts.user {
        let (uid, gid) = match u.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (u.as_str(), None),
        };
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| Error(format!("--user {u:?}: want UID[:GID] as numbers")))
        };
        p["user"]["uid"] = json!(num(uid)?);
        // Without a gid the config's stays, as in runc.
        if let Some(g) = gid {
            p["user"]["gid"] = json!(num(g)?);
        }
        if p["user"]["gid"].is_null() {
            p["user"]["gid"] = json!(0);
        }
    }
    if !opts.additional_gids.is_empty() {
        let mut gids: Vec<Value> = p["user"]["additionalGids"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        gids.extend(opts.additional_gids.iter().map(|g| json!(g)));
        p["user"]["additionalGids"] = json!(gids);
    }
    if !opts.caps.is_empty() {
        for set in ["bounding", "effective", "permitted"] {
            let mut list: Vec<Value> = p["capabilities"][set]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for c in &opts.caps {
                let name = if c.starts_with("CAP_") {
                    c.clone()
                } else {
                    format!("CAP_{}", c.to_ascii_uppercase())
                };
                if !list.iter().any(|v| v == &json!(name)) {
                    list.push(json!(name));
                }
            }
            p["capabilities"][set] = json!(list);
        }
    }
    if opts.no_new_privs {
        p["noNewPrivileges"] = json!(true);
    }
    // An empty flag changes nothing (runc's rule), so it cannot drop the container's.
    if let Some(profile) = opts.apparmor.as_ref().filter(|v| !v.is_empty()) {
        p["apparmorProfile"] = json!(profile);
    }
    if let Some(label) = opts.process_label.as_ref().filter(|v| !v.is_empty()) {
        p["selinuxLabel"] = json!(label);
    }
    serde_json::to_vec(&p).map_err(|e| Error(format!("encode the process: {e}")))
}

/// The cgroup2 directory of the container's first process, from `/proc/<pid>/cgroup`.
fn init_cgroup2(pid: i32, cg: Option<&Cgroup>) -> Option<PathBuf> {
    let mount = cg?.hierarchies.iter().find(|h| h.v2)?.mount.clone();
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    if rel.split('/').any(|c| c == "..") {
        return None;
    }
    Some(PathBuf::from(mount).join(rel.trim_start_matches('/')))
}

/// Runs `exec`; returns the exit code to leave with (the process's, unless detached).
pub fn exec(store: &Store, opts: &ExecOpts) -> Result<i32> {
    let forwarded = forwarded_signals();
    let old = block(&forwarded)?;
    let r = exec_blocked(store, opts, &forwarded);
    // SAFETY: restoring the mask we saved.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    r
}

/// `exec` in the plan's phases: the plan for the process, the namespaces joined and the clone,
/// the host steps after it, set-up until ready, and the hand-over (start, then wait or detach).
fn exec_blocked(store: &Store, opts: &ExecOpts, forwarded: &libc::sigset_t) -> Result<i32> {
    let (s, pidfd, plan) = plan_for(store, opts)?;
    profile::mark("plan");
    let cg = s.cgroup.as_ref();
    let min_fd = 3 + opts.preserve_fds;
    let pidfd = above(pidfd, min_fd)?;
    let (parent_sock, child_sock) = seqpacket_pair()?;
    let parent_sock = above(parent_sock, min_fd)?;
    let child_sock = above(child_sock, min_fd)?;
    let page = ferrun_executor::SharedPage::new()
        .ctx(|| "map the page shared with the exec process".into())?;
    let fds = ChildFds {
        parent_sync: parent_sock.as_raw_fd(),
        shared: page.ptr(),
        sync: child_sock.as_raw_fd(),
        start: child_sock.as_raw_fd(),
        ns: {
            let mut ns = [-1; 8];
            ns[0] = pidfd.as_raw_fd();
            ns
        },
        preserve: opts.preserve_fds,
    };
    // Only an OOM kill after this one is blamed for a death.
    let oom = (cg, cg.map_or(0, |c| c.oom_kills()));
    if profile::enabled() {
        page.set_profile();
    }
    let child = clone_into_container(&opts.id, &s, &plan, &pidfd, (&fds, min_fd))?;
    profile::mark("join the container's namespaces, clone3");
    drop(child_sock);
    let kill_child = |why: Error| {
        kill_and_reap(child.pid, child.pidfd);
        why
    };
    after_clone(&plan, &child).map_err(kill_child)?;
    let pty = match until_ready(opts, &plan, &parent_sock, &page, &child, oom) {
        Ok(pty) => pty,
        Err(Dead(why)) => return Err(why),
        Err(Alive(why)) => return Err(kill_child(why)),
    };
    profile::mark("exec process set-up, until ready");
    send_byte(&parent_sock).map_err(kill_child)?;
    match recv_record(&parent_sock).map_err(kill_child)? {
        Some((r, _)) => return Err(kill_child(Error(render_failure(&plan, r)))),
        // A filter that refused the report left the failure on the page.
        None if page.progress().failure.is_some() => {
            let why = super::failure::describe_death(&plan, &page, 0, oom);
            return Err(kill_child(Error(why)));
        }
        None => {}
    }
    if profile::enabled() {
        let stamps = page.stamps(plan.steps.len());
        profile::container(&plan, &stamps, ferrun_executor::now_ns());
        profile::mark("start, execve");
    }
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, child.pid).map_err(kill_child)?;
    }
    let code = hand_over(opts, &child, pty, forwarded);
    profile::mark("the process runs");
    code
}

/// The process runs: detached, or waited for with the console served and signals forwarded.
fn hand_over(
    opts: &ExecOpts,
    child: &ferrun_executor::Child,
    pty: Option<OwnedFd>,
    forwarded: &libc::sigset_t,
) -> Result<i32> {
    if opts.detach {
        // SAFETY: closing our handle; the process stays, to be reaped by our caller's subreaper.
        unsafe { libc::close(child.pidfd) };
        return Ok(0);
    }
    let console = pty.map(crate::host::console::Proxy::start).transpose()?;
    let code = wait_forwarding(child.pid, child.pidfd, forwarded, console.as_ref());
    if let Some(c) = console {
        c.finish();
    }
    code
}

/// The container's state and init pidfd, and the plan of the process: the config's `process`
/// with exec's flags applied, planned on the container's own cgroup layout.
fn plan_for(store: &Store, opts: &ExecOpts) -> Result<(crate::state::State, OwnedFd, Plan)> {
    let s = store.load(&opts.id)?;
    match store.status(&s) {
        Status::Running | Status::Created => {}
        Status::Paused if opts.ignore_paused => {}
        Status::Paused => bail!(
            "cannot exec in container {}: it is paused (resume it, or --ignore-paused)",
            opts.id
        ),
        other => bail!(
            "cannot exec in container {}: container not running (it is {})",
            opts.id,
            other.as_str()
        ),
    }
    let Some(pidfd) = pidfd_of(&s) else {
        bail!(
            "cannot exec in container {}: container not running",
            opts.id
        );
    };
    let bundle = PathBuf::from(&s.bundle);
    let config = match &s.config {
        Some(path) => std::fs::read(path).ctx(|| format!("config {path}"))?,
        None => crate::cache::read_config(&bundle)?,
    };
    let config_json: Value = serde_json::from_slice(&config)
        .map_err(|e| Error(format!("bundle {}: config.json: {e}", bundle.display())))?;
    let process = process_json(opts, &config_json)?;
    let mut host = crate::cache::host_facts();
    // The container's own hierarchies, in its order: the plan's indices are into them.
    host.cgroups = s
        .cgroup
        .as_ref()
        .map(crate::cgroups::layout_of)
        .unwrap_or_default();
    let filters = crate::cache::FilterFiles::new(&store.root);
    let input = ferrun_planner::Input {
        config: &config,
        bundle: &bundle,
        host: &host,
        options: ferrun_planner::Options::default(),
        seccomp_cache: Some(&filters),
    };
    let mut plan = ferrun_planner::plan_exec(&input, &process)
        .map_err(|e| Error(e.to_string().replacen("config.json: ", "exec: ", 1)))?;
    join_time_namespace_of_a_restore(&mut plan, s.pid);
    if plan.seccomp_listener.is_some() {
        bail!("exec: a seccomp filter with SCMP_ACT_NOTIFY is not supported for exec yet");
    }
    if plan.terminal && opts.detach && opts.console_socket.is_none() {
        bail!("exec --tty --detach needs --console-socket to hand the pty to");
    }
    crate::log::debug(&format!("exec plan:\n{plan}"));
    for w in &plan.warnings {
        crate::log::warn(w);
    }
    Ok((s, pidfd, plan))
}

/// A restored container's processes live in a time namespace criu made (so that their clocks
/// go on from the dump), which its config does not name: the process joins it too, as under
/// runc, when the init's is not ferrun's own.
fn join_time_namespace_of_a_restore(plan: &mut Plan, init: i32) {
    let ns = |p: String| std::fs::read_link(p).ok();
    let (theirs, ours) = (
        ns(format!("/proc/{init}/ns/time")),
        ns("/proc/self/ns/time".into()),
    );
    if theirs.is_none() || theirs == ours {
        return;
    }
    let time = libc::CLONE_NEWTIME as u64;
    match plan.before_clone.iter_mut().find_map(|h| match h {
        HostStep::JoinContainer { flags } => Some(flags),
        _ => None,
    }) {
        Some(flags) => *flags |= time,
        None => plan
            .before_clone
            .insert(0, HostStep::JoinContainer { flags: time }),
    }
}

/// Joins the container's pid, time, net, ipc and uts namespaces through its pidfd, clones the
/// process into them (and into the container's cgroup2 directory, or init's own when that is no
/// leaf any more), then returns to ferrun's own namespaces.
fn clone_into_container(
    id: &str,
    s: &crate::state::State,
    plan: &Plan,
    pidfd: &OwnedFd,
    (fds, min_fd): (&ChildFds, u32),
) -> Result<ferrun_executor::Child> {
    // The container's cgroups: born in its cgroup2 directory, written into v1 ones.
    let cg: Option<&Cgroup> = s.cgroup.as_ref();
    let clone_fds = match cg {
        Some(c) => Some(c.clone_fds(plan, min_fd)?),
        None => None,
    };
    let clone_into = clone_fds.as_ref().map_or(-1, |c| c.clone_into);
    let tasks = clone_fds
        .as_ref()
        .map(|c| c.tasks.clone())
        .unwrap_or_default();
    for h in &plan.before_clone {
        if let HostStep::CpuAffinity { cpus } = h {
            // Inherited by the clone (and by the rootless helper's) until it is in the
            // container's cgroups.
            // SAFETY: the kernel reads `cpus.len()` bytes of our mask.
            let r =
                unsafe { libc::syscall(libc::SYS_sched_setaffinity, 0, cpus.len(), cpus.as_ptr()) };
            if r < 0 {
                bail!(
                    "process.execCPUAffinity.initial: sched_setaffinity: {}",
                    crate::error::errno_text(crate::errno())
                );
            }
        }
    }
    if crate::host::rootless::detect() {
        return clone_through_helper(id, s, plan, pidfd, (fds, min_fd), (clone_into, tasks));
    }
    let own = own_namespaces(plan)?;
    for h in &plan.before_clone {
        match h {
            HostStep::CpuAffinity { .. } => {}
            HostStep::JoinContainer { flags } => {
                // SAFETY: setns on a pidfd we hold.
                if unsafe { libc::setns(pidfd.as_raw_fd(), *flags as libc::c_int) } < 0 {
                    bail!(
                        "exec: join the namespaces of container {}: {}",
                        id,
                        crate::error::errno_text(crate::errno())
                    );
                }
            }
            other => bail!("exec plan: {other} cannot run before clone"),
        }
    }
    let prepared = Prepared::new(plan).with_cgroups(Vec::new(), clone_into, tasks.clone());
    let mut spawned = ferrun_executor::spawn(&prepared, fds, None);
    if let Err(e) = &spawned
        && clone_into >= 0
        && matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::ENOENT))
    {
        // The container's cgroup2 directory is no leaf any more (a systemd in the container
        // moved its init) or is gone: join init's own cgroup, as runc does.
        if let Some(f) = open_init_cgroup2(s, min_fd)? {
            let prepared = Prepared::new(plan).with_cgroups(Vec::new(), f.as_raw_fd(), tasks);
            spawned = ferrun_executor::spawn(&prepared, fds, None);
        }
    }
    let mut restored = Ok(());
    for (f, flag) in &own {
        // SAFETY: setns back into our own namespaces through fds we hold.
        if unsafe { libc::setns(f.as_raw_fd(), *flag as libc::c_int) } < 0 {
            restored = Err(Error(format!(
                "exec: return to ferrun's own namespaces: {}",
                crate::error::errno_text(crate::errno())
            )));
        }
    }
    let child = spawned.ctx(|| "clone3 the exec process".into())?;
    if let Err(e) = restored {
        kill_and_reap(child.pid, child.pidfd);
        return Err(e);
    }
    Ok(child)
}

/// init's own cgroup2 directory, opened above `min_fd`, for a clone the container's refused.
fn open_init_cgroup2(s: &crate::state::State, min_fd: u32) -> Result<Option<OwnedFd>> {
    let Some(dir) = init_cgroup2(s.pid, s.cgroup.as_ref()) else {
        return Ok(None);
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(&dir)
        .ctx(|| format!("open cgroup {}", dir.display()))?;
    above(OwnedFd::from(f), min_fd).map(Some)
}

/// Rootless, ferrun could join the container's namespaces but not return to its own (they
/// belong to the host's user namespace): a forked helper joins them and clones the process as
/// ferrun's child (`CLONE_PARENT`), then exits.
fn clone_through_helper(
    id: &str,
    s: &crate::state::State,
    plan: &Plan,
    pidfd: &OwnedFd,
    (fds, min_fd): (&ChildFds, u32),
    (clone_into, tasks): (i32, Vec<i32>),
) -> Result<ferrun_executor::Child> {
    // An unprivileged caller may join the container's pid namespace only from inside its user
    // namespace: the helper joins that too (setns on a pidfd takes the user namespace first),
    // and the process, born in it, joins only the rest.
    let user = libc::CLONE_NEWUSER as u64;
    let owns_userns = plan
        .steps
        .iter()
        .any(|st| matches!(st, Step::SetNsContainer { flags } if flags & user != 0));
    let mut join = plan.before_clone.iter().find_map(|h| match h {
        HostStep::JoinContainer { flags } => Some(*flags),
        _ => None,
    });
    let mut plan = plan.clone();
    if owns_userns {
        join = Some(join.unwrap_or(0) | user);
        for st in &mut plan.steps {
            if let Step::SetNsContainer { flags } = st {
                *flags &= !user;
            }
        }
    }
    let plan = &plan;
    // The helper's answer: the pid, or which call failed and its errno.
    const JOINED: i32 = 0;
    const SETNS_FAILED: i32 = 1;
    const CLONE_FAILED: i32 = 2;
    const OOM_FAILED: i32 = 3;
    // The oom score goes on the helper, which the process inherits it from: once the process
    // is not dumpable, its /proc files are the host root's, out of a rootless caller's reach.
    let oom = plan.after_clone.iter().find_map(|h| match h {
        HostStep::OomScoreAdj { value } => Some(value.bytes().to_vec()),
        _ => None,
    });
    let proc = match oom {
        Some(_) => Some(crate::host::procfs::ProcFs::open()?),
        None => None,
    };
    // A SIGCHLD ignored by whoever started ferrun would let the kernel reap the process and
    // free its pid before it is opened below.
    // SAFETY: restoring the default disposition of SIGCHLD.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    let attempt = |into: i32, tasks: Vec<i32>| -> Result<std::result::Result<i32, i32>> {
        let prepared = Prepared::new(plan).with_cgroups(Vec::new(), into, tasks);
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .ctx(|| "exec: a pipe for the helper".into())?;
        // SAFETY: ferrun is single-threaded here; the helper makes only syscalls and _exits.
        let helper = unsafe { libc::fork() };
        if helper < 0 {
            bail!("exec: fork: {}", crate::error::errno_text(crate::errno()));
        }
        if helper == 0 {
            // SAFETY: in the helper: setns on a pidfd we hold, the executor's clone, one
            // write, _exit.
            unsafe {
                let own_oom = match (&proc, &oom) {
                    (Some(p), Some(v)) => {
                        p.write_errno(&format!("{}/oom_score_adj", libc::getpid()), v)
                    }
                    _ => Ok(()),
                };
                let answer: [i32; 2] = match join {
                    _ if own_oom.is_err() => [OOM_FAILED, own_oom.err().unwrap_or(libc::EIO)],
                    Some(f) if libc::setns(pidfd.as_raw_fd(), f as libc::c_int) < 0 => {
                        [SETNS_FAILED, crate::errno()]
                    }
                    _ => match ferrun_executor::spawn_with(
                        &prepared,
                        fds,
                        None,
                        libc::CLONE_PARENT as u64,
                    ) {
                        Ok(c) => [JOINED, c.pid],
                        Err(e) => [CLONE_FAILED, e.raw_os_error().unwrap_or(libc::EIO)],
                    },
                };
                let n = libc::write(w.as_raw_fd(), answer.as_ptr().cast(), 8);
                libc::_exit(i32::from(n != 8));
            }
        }
        drop(w);
        let mut status = 0;
        // SAFETY: reaping the helper we just forked.
        unsafe { libc::waitpid(helper, &mut status, 0) };
        // The helper is gone: whatever it wrote is in the pipe, and the process (which holds
        // the write end until its execve) must not make this read wait.
        let _ = nix::fcntl::fcntl(
            &r,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let mut b = [0u8; 8];
        if nix::unistd::read(&r, &mut b).unwrap_or(0) != 8 {
            bail!("exec: the helper that joins container {id}'s namespaces died");
        }
        let kind = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        let value = i32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
        match kind {
            JOINED => Ok(Ok(value)),
            SETNS_FAILED => bail!(
                "exec: join the namespaces of container {id}: {}",
                crate::error::errno_text(value)
            ),
            OOM_FAILED => bail!(
                "process.oomScoreAdj: write it: {}",
                crate::error::errno_text(value)
            ),
            _ => Ok(Err(value)),
        }
    };
    let mut got = attempt(clone_into, tasks.clone())?;
    if clone_into >= 0
        && matches!(got, Err(libc::EBUSY) | Err(libc::ENOENT))
        && let Some(f) = open_init_cgroup2(s, min_fd)?
    {
        // As in the direct path: init's own cgroup when the container's is no leaf.
        got = attempt(f.as_raw_fd(), tasks)?;
    }
    let pid = got.map_err(|e| {
        Error(format!(
            "clone3 the exec process: {}",
            crate::error::errno_text(e)
        ))
    })?;
    // The process is ferrun's child now (CLONE_PARENT), not yet reaped: its pid is its own.
    // SAFETY: pidfd_open on our own unreaped child.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = crate::errno();
        // SAFETY: killing and reaping our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        bail!("exec: pidfd_open: {}", crate::error::errno_text(e));
    }
    Ok(ferrun_executor::Child {
        pid,
        pidfd: fd as i32,
    })
}

/// Our own namespaces that `JoinContainer` leaves, to return to once the process is cloned:
/// threads (the console proxy) cannot be made while the namespace for children differs.
fn own_namespaces(plan: &Plan) -> Result<Vec<(std::fs::File, u64)>> {
    let mut own = Vec::new();
    for h in &plan.before_clone {
        let HostStep::JoinContainer { flags } = h else {
            continue;
        };
        for ns in ferrun_plans::Namespace::ALL {
            if *flags & ns.clone_flag() == 0 {
                continue;
            }
            let name = match ns {
                ferrun_plans::Namespace::Pid
                | ferrun_plans::Namespace::Time
                | ferrun_plans::Namespace::Network
                | ferrun_plans::Namespace::Ipc
                | ferrun_plans::Namespace::Uts => ns.proc_name(),
                _ => continue,
            };
            let f = std::fs::File::open(format!("/proc/self/ns/{name}"))
                .ctx(|| format!("open /proc/self/ns/{name}"))?;
            own.push((f, ns.clone_flag()));
        }
    }
    Ok(own)
}

/// The plan's host steps after clone: the oom score, through a procfs of ferrun's own.
fn after_clone(plan: &Plan, child: &ferrun_executor::Child) -> Result<()> {
    if crate::host::rootless::detect() {
        // Written by the helper before the clone (see `clone_through_helper`).
        return Ok(());
    }
    for h in &plan.after_clone {
        if let HostStep::OomScoreAdj { value } = h {
            crate::host::procfs::ProcFs::open()
                .and_then(|p| p.write(&format!("{}/oom_score_adj", child.pid), value.bytes()))
                .map_err(|e| Error(format!("process.oomScoreAdj: {}", e.0)))?;
        }
    }
    Ok(())
}

/// How set-up failed: the process is gone already, or still to be killed.
enum SetupError {
    Dead(Error),
    Alive(Error),
}
use SetupError::{Alive, Dead};

/// Serves the exec process until it reports ready: its pty, or its failure.
fn until_ready(
    opts: &ExecOpts,
    plan: &Plan,
    parent_sock: &OwnedFd,
    page: &ferrun_executor::SharedPage,
    child: &ferrun_executor::Child,
    oom: (Option<&Cgroup>, u64),
) -> std::result::Result<Option<OwnedFd>, SetupError> {
    let mut pty = None;
    loop {
        match recv_record(parent_sock).map_err(Alive)? {
            Some((r, Some(master))) if r.step == MSG_PTY => {
                crate::host::console::set_console_size(&master, plan.console_size);
                match &opts.console_socket {
                    Some(sock) => send_console(sock, &master).map_err(Alive)?,
                    None => pty = Some(master),
                }
            }
            Some((r, _)) if r.step == MSG_READY => return Ok(pty),
            Some((r, _)) => return Err(Alive(Error(render_failure(plan, r)))),
            None => {
                let mut status = 0;
                // SAFETY: reaping our own child.
                unsafe { libc::waitpid(child.pid, &mut status, 0) };
                let why = super::failure::describe_death(plan, page, status, oom).replacen(
                    "container process",
                    "exec process",
                    1,
                );
                return Err(Dead(Error(why)));
            }
        }
    }
}
