//! The container's cgroups on the live system: probing the host's layout, resolving the planned
//! path to one directory per hierarchy, creating, writing, joining, freezing, signalling,
//! listing and removing them. Which files a resource is written to is the planner's business
//! (`ferrun_planner::cgroups`); this module only carries the writes out.
//!
//! One interface, [`Cgroup`], over three managers picked by probing: [`Manager::V1`] (v1
//! controllers only), [`Manager::V2`] (one cgroup2 hierarchy) and [`Manager::Hybrid`] (v1
//! controllers plus a cgroup2 mount for whatever is bound there: on such hosts the freezer and
//! device rules come from v1 when mounted there, the cgroup2 directory is joined too and is the
//! one `clone3` places the process in).
//!
//! It may use `host` (fds above the preserved range) and the leaves; nothing of the lifecycle,
//! the state or the caches.

mod bpf;
pub mod stats;
pub mod systemd;

use crate::bail;
use crate::error::{Error, Result, errno_text};
use ferrun_plans::cgroups::CgroupMode;
use ferrun_plans::{CgroupLayout, CgroupPath, Hierarchy};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `FERRUN_CGROUP_LAYOUT=v1|v2|hybrid|none` restricts the probed layout: `v2` uses only the
/// cgroup2 mount (also on a hybrid host), `v1` ignores it, `none` disables cgroups.
pub const LAYOUT_ENV: &str = "FERRUN_CGROUP_LAYOUT";

/// Reads the cgroup mounts from `/proc/self/mountinfo`.
pub fn probe_layout() -> CgroupLayout {
    let mut layout = CgroupLayout::default();
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return layout;
    };
    for line in info.lines() {
        // `id parent maj:min root mountpoint opts [optional...] - fstype source superopts`
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(mount), Some(fstype)) = (left.get(4), right.first()) else {
            continue;
        };
        let mount = unescape(mount);
        match *fstype {
            "cgroup2" if layout.unified.is_none() => {
                let controllers = std::fs::read_to_string(format!("{mount}/cgroup.controllers"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(String::from)
                    .collect();
                layout.unified = Some(ferrun_plans::cgroups::Unified { mount, controllers });
            }
            "cgroup" => {
                let opts = right.get(2).copied().unwrap_or("");
                let controllers: Vec<String> = opts
                    .split(',')
                    .filter(|o| {
                        !matches!(
                            *o,
                            "rw" | "ro" | "nosuid" | "nodev" | "noexec" | "relatime" | "xattr"
                        ) && !o.starts_with("release_agent=")
                            && !o.starts_with("clone_children")
                            && *o != "noprefix"
                            && *o != "cpuset_v2_mode"
                    })
                    .map(String::from)
                    .collect();
                // The same hierarchy bound twice (a bind of a subtree) is joined once.
                if !controllers.is_empty()
                    && !layout.v1.iter().any(|h| h.controllers == controllers)
                {
                    layout
                        .v1
                        .push(ferrun_plans::cgroups::V1Hierarchy { controllers, mount });
                }
            }
            _ => {}
        }
    }
    match std::env::var(LAYOUT_ENV).as_deref() {
        Ok("v2") => layout.v1.clear(),
        Ok("v1") => layout.unified = None,
        Ok("none") => layout = CgroupLayout::default(),
        _ => {}
    }
    layout
}

/// Octal escapes of mountinfo (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This process's cgroup in `h`, from the text of `/proc/self/cgroup`.
fn own_cgroup(text: &str, h: &Hierarchy) -> String {
    let want: Vec<&str> = h.name.split(',').collect();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let matches = if h.v2 {
            id == "0" && ctrls.is_empty()
        } else {
            let mut have: Vec<&str> = ctrls.split(',').collect();
            let mut w = want.clone();
            have.sort_unstable();
            w.sort_unstable();
            have == w
        };
        if matches {
            return path.to_string();
        }
    }
    "/".into()
}

/// The fds a clone into the container's cgroups needs, opened before it.
pub struct CloneFds {
    /// Keeps the fds below open until the clone is made.
    pub keep: Vec<std::os::fd::OwnedFd>,
    /// The cgroup2 directory the clone is born in; -1 for none.
    pub clone_into: std::os::fd::RawFd,
    /// Per hierarchy, the `tasks` file the process writes itself into; -1 where it does not.
    pub tasks: Vec<std::os::fd::RawFd>,
}

/// The layout a container's cgroups were made on, in the order its hierarchies are stored.
pub fn layout_of(c: &Cgroup) -> CgroupLayout {
    let mut layout = CgroupLayout::default();
    for h in &c.hierarchies {
        if h.v2 {
            let controllers = std::fs::read_to_string(format!("{}/cgroup.controllers", h.mount))
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect();
            layout.unified = Some(ferrun_plans::cgroups::Unified {
                mount: h.mount.clone(),
                controllers,
            });
        } else {
            layout.v1.push(ferrun_plans::cgroups::V1Hierarchy {
                controllers: h.name.split(',').map(String::from).collect(),
                mount: h.mount.clone(),
            });
        }
    }
    layout
}

/// Which manager a layout calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Manager {
    V1,
    V2,
    Hybrid,
}

/// A container's cgroups as the state store keeps them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cgroup {
    pub manager: Manager,
    pub hierarchies: Vec<Hierarchy>,
    /// The container's directory in each hierarchy.
    pub dirs: Vec<PathBuf>,
    /// Whether ferrun made that directory (only those are removed).
    pub created: Vec<bool>,
    /// `--systemd-cgroup`: the scope systemd made the cgroup for, once it exists; stopped at
    /// removal if it is still that unit (`systemd_invocation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// The scope's `InvocationID`: a later unit of the same name is not ours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_invocation: Option<String>,
}

fn io_err(e: std::io::Error) -> String {
    errno_text(e.raw_os_error().unwrap_or(libc::EIO))
}

impl Cgroup {
    /// Resolves the planned path in every hierarchy. Nothing is created yet.
    pub fn resolve(c: &ferrun_plans::Cgroups, id: &str) -> Result<Cgroup> {
        let has_v1 = c.hierarchies.iter().any(|h| !h.v2);
        let has_v2 = c.hierarchies.iter().any(|h| h.v2);
        let manager = match (has_v1, has_v2) {
            (true, true) => Manager::Hybrid,
            (false, true) => Manager::V2,
            _ => Manager::V1,
        };
        if let Some(s) = &c.systemd
            && !systemd::running()
        {
            bail!(
                "--systemd-cgroup: systemd is not running on this host (no /run/systemd/system), \
                 so it cannot make the scope {}; use the cgroupfs manager",
                s.unit
            );
        }
        // A rootless caller's scope is made by its own systemd, below that manager's cgroup.
        let user_manager = match &c.systemd {
            Some(_) if crate::host::rootless::detect() => systemd::manager_cgroup()?,
            _ => String::new(),
        };
        let mut dirs = Vec::new();
        let mut created = Vec::new();
        let own = match c.path {
            CgroupPath::Absolute(_) => String::new(),
            _ => std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
        };
        for h in &c.hierarchies {
            // On cgroup2 our own cgroup holds processes (ourselves), and a cgroup with processes
            // cannot delegate controllers: go below its parent, as runc does.
            let base = |h: &Hierarchy| {
                let own = own_cgroup(&own, h);
                if h.v2 {
                    Path::new(&own)
                        .parent()
                        .map_or("/".into(), |p| p.to_string_lossy().into_owned())
                } else {
                    own
                }
            };
            let rel = match &c.path {
                CgroupPath::Absolute(p) if !user_manager.is_empty() => format!(
                    "{}/{}",
                    user_manager.trim_end_matches('/'),
                    p.trim_start_matches('/')
                ),
                CgroupPath::Absolute(p) => p.clone(),
                CgroupPath::Relative(p) => format!("{}/{p}", base(h)),
                CgroupPath::Default | CgroupPath::Container => format!("{}/{id}", base(h)),
            };
            let rel = rel.trim_start_matches('/');
            if rel.split('/').any(|c| c == "..") {
                bail!("linux.cgroupsPath: {rel} climbs out of {}", h.mount);
            }
            let dir = Path::new(&h.mount).join(rel);
            check_path_len(&dir)?;
            if let Some(s) = &c.systemd
                && dir.exists()
            {
                bail!(
                    "linux.cgroupsPath: the cgroup of systemd unit {} exists already ({}): \
                     another container's?",
                    s.unit,
                    dir.display()
                );
            }
            // systemd's scope is ferrun's only once systemd has made it (`start_scope`).
            created.push(c.systemd.is_none() && !dir.exists());
            dirs.push(dir);
        }
        Ok(Cgroup {
            manager,
            hierarchies: c.hierarchies.clone(),
            dirs,
            created,
            systemd_unit: None,
            systemd_invocation: None,
        })
    }

    /// `--systemd-cgroup`: systemd makes the cgroup as a scope holding `pid`. Once it exists
    /// (even if its job then failed), the unit is recorded as the container's, to be stopped.
    pub fn start_scope(
        &mut self,
        scope: &ferrun_plans::cgroups::SystemdScope,
        pid: i32,
        id: &str,
    ) -> Result<()> {
        let Some(i) = self.v2_index() else {
            bail!("--systemd-cgroup: no cgroup2 hierarchy");
        };
        let (made, r) = match systemd::start_scope(scope, pid, id) {
            Ok(inv) => (Some(inv), Ok(())),
            Err(f) => (f.made, Err(f.error)),
        };
        if let Some(inv) = made {
            self.systemd_unit = Some(scope.unit.clone());
            self.systemd_invocation = Some(inv);
            self.created[i] = true;
        }
        r
    }

    /// After `start_scope`: the process must sit in the scope's cgroup, and the planned
    /// controllers be there. systemd delegates only those it manages: the others (hugetlb,
    /// rdma, misc) are enabled down the ancestors, as runc does.
    pub fn check_scope(&self, pid: i32, controllers: &[String]) -> Result<()> {
        let (Some(i), Some(unit)) = (self.v2_index(), &self.systemd_unit) else {
            bail!("--systemd-cgroup: no scope was made");
        };
        let dir = &self.dirs[i];
        let mount = Path::new(&self.hierarchies[i].mount);
        let rel = Path::new("/").join(dir.strip_prefix(mount).unwrap_or(Path::new("")));
        // cgroup.procs, not /proc/<pid>/cgroup: the latter is relative to the reader's cgroup
        // namespace, which a joined one changes.
        if !read_pids(dir).contains(&pid) {
            bail!(
                "systemd scope {unit}: the container process {pid} is not in {}",
                dir.display()
            );
        }
        let missing = |have: &str| -> Vec<String> {
            controllers
                .iter()
                .filter(|c| !have.split_whitespace().any(|h| h == c.as_str()))
                .cloned()
                .collect()
        };
        let read = || std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        let first = missing(&read());
        if first.is_empty() {
            return Ok(());
        }
        let mut cur = mount.to_path_buf();
        for comp in rel.components().skip(1) {
            enable_controllers(&cur, &first, false)?;
            cur.push(comp);
        }
        let still = missing(&read());
        if !still.is_empty() {
            bail!(
                "linux.resources: the {} controller(s) are not delegated to {unit}",
                still.join(" ")
            );
        }
        Ok(())
    }

    fn v2_index(&self) -> Option<usize> {
        self.hierarchies.iter().position(|h| h.v2)
    }

    fn v1_index(&self, controller: &str) -> Option<usize> {
        self.hierarchies
            .iter()
            .position(|h| !h.v2 && h.name.split(',').any(|c| c == controller))
    }

    /// The cgroup2 directory, if the container has one.
    pub fn v2_dir(&self) -> Option<&Path> {
        self.v2_index().map(|i| self.dirs[i].as_path())
    }

    /// Creates the directories (and missing parents). An existing cgroup that holds
    /// processes is refused unless `shared`. On cgroup2, `controllers` are enabled in every
    /// ancestor's `cgroup.subtree_control`; on v1, new cpuset levels inherit their parent's
    /// cpus and mems (an empty cpuset takes no process).
    ///
    /// Whether ferrun made a directory is decided by its own `mkdir` (so that two creates on one
    /// path cannot both believe they own it); the caller saves the state again afterwards.
    pub fn create(&mut self, controllers: &[String], shared: bool) -> Result<()> {
        for i in 0..self.dirs.len() {
            let (h, dir) = (&self.hierarchies[i], self.dirs[i].clone());
            let mount = Path::new(&h.mount);
            let rel = dir.strip_prefix(mount).unwrap_or(Path::new(""));
            let mut cur = mount.to_path_buf();
            let comps: Vec<_> = rel.components().collect();
            let mut made_leaf = false;
            for (n, comp) in comps.iter().enumerate() {
                let parent = cur.clone();
                cur.push(comp);
                if h.v2 {
                    enable_controllers(&parent, controllers, self.manager == Manager::V2)?;
                }
                match std::fs::create_dir(&cur) {
                    Ok(()) => {
                        made_leaf = n + 1 == comps.len();
                        if h.name.split(',').any(|c| c == "cpuset") {
                            inherit_cpuset(&parent, &cur)?;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(Error(format!(
                            "linux.cgroupsPath: create {}: {}",
                            cur.display(),
                            io_err(e)
                        )));
                    }
                }
            }
            self.created[i] = made_leaf;
            if !made_leaf && !shared && !read_pids(&dir).is_empty() {
                bail!(
                    "linux.cgroupsPath: {} already holds processes (another container's?)",
                    dir.display()
                );
            }
        }
        Ok(())
    }

    /// Moves `pid` (a helper that makes the container's processes, criu at restore) into the
    /// container's directory of every hierarchy.
    pub fn enter(&self, pid: i32) -> Result<()> {
        for dir in &self.dirs {
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, pid.to_string()).map_err(|e| {
                Error(format!(
                    "linux.cgroupsPath: {}: {}",
                    procs.display(),
                    io_err(e)
                ))
            })?;
        }
        Ok(())
    }

    /// True when ferrun made at least one of the directories: only then may it signal
    /// through them (a shared or pre-existing cgroup holds processes that are not ours).
    pub fn owned(&self) -> bool {
        self.created.iter().any(|c| *c)
    }

    /// Opens what `plan`'s clone needs: its `clone_into` directory and the `tasks` file of every
    /// hierarchy a `JoinCgroup` step names; all above `min_fd`, close-on-exec.
    pub fn clone_fds(&self, plan: &ferrun_plans::Plan, min_fd: u32) -> Result<CloneFds> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let into = plan.cgroups.as_ref().and_then(|c| c.clone_into);
        let mut out = CloneFds {
            keep: Vec::new(),
            clone_into: -1,
            tasks: Vec::new(),
        };
        for (i, dir) in self.dirs.iter().enumerate() {
            let joins = plan.steps.iter().any(|s| {
                matches!(s, ferrun_plans::Step::JoinCgroup { hierarchy } if usize::from(*hierarchy) == i)
            });
            let (path, opts) = if into == Some(i as u8) {
                let mut o = std::fs::OpenOptions::new();
                o.read(true).custom_flags(libc::O_DIRECTORY);
                (dir.clone(), o)
            } else if joins {
                let mut o = std::fs::OpenOptions::new();
                o.write(true);
                (dir.join("tasks"), o)
            } else {
                out.tasks.push(-1);
                continue;
            };
            let f = opts
                .open(&path)
                .map_err(|e| Error(format!("open {}: {}", path.display(), io_err(e))))?;
            let f = crate::host::fd::above(std::os::fd::OwnedFd::from(f), min_fd)?;
            if into == Some(i as u8) {
                out.clone_into = f.as_raw_fd();
                out.tasks.push(-1);
            } else {
                out.tasks.push(f.as_raw_fd());
            }
            out.keep.push(f);
        }
        Ok(out)
    }

    /// Writes `value` to `file` in hierarchy `h`; `field` names the setting in errors.
    pub fn write(&self, h: usize, file: &str, value: &str, field: &str) -> Result<()> {
        self.write_through(&mut None, h, file, value, field)
    }

    /// [`Cgroup::write`], through `open` when it holds the same file: a run of writes to one
    /// file (a device list is a dozen lines to `devices.allow`) opens it once. Each write is
    /// still its own `write(2)`, which is all the kernel reads a rule from.
    pub fn write_through(
        &self,
        open: &mut Option<(PathBuf, std::fs::File)>,
        h: usize,
        file: &str,
        value: &str,
        field: &str,
    ) -> Result<()> {
        let Some(dir) = self.dirs.get(h) else {
            bail!("{field}: the plan names cgroup hierarchy #{h}, which the container lacks");
        };
        let path = dir.join(file);
        // `QUOTA PERIOD` with the quota kept: a period changed alone must not lift a quota.
        let kept;
        let value = match value.strip_prefix("<keep> ") {
            Some(period) => {
                let cur = std::fs::read_to_string(&path).unwrap_or_default();
                kept = format!(
                    "{} {period}",
                    cur.split_whitespace().next().unwrap_or("max")
                );
                kept.as_str()
            }
            None => value,
        };
        let r = match open {
            Some((p, f)) if *p == path => std::io::Write::write_all(f, value.as_bytes()),
            _ => {
                // Never O_CREAT: cgroupfs cannot create files, and would answer EACCES for a
                // missing one.
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|mut f| {
                        let r = std::io::Write::write_all(&mut f, value.as_bytes());
                        *open = Some((path.clone(), f));
                        r
                    })
            }
        };
        match r {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && optional(file, value) => {
                crate::log::debug(&format!("{field}: {} absent, skipped", path.display()));
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Kernels without CFQ spell the v1 weights with BFQ's names.
                if let Some(alt) = match file {
                    "blkio.weight" => Some("blkio.bfq.weight"),
                    "blkio.weight_device" => Some("blkio.bfq.weight_device"),
                    _ => None,
                } && dir.join(alt).exists()
                {
                    return self.write(h, alt, value, field);
                }
                bail!(
                    "{field}: the kernel has no {} (cgroup {} lacks the file)",
                    file,
                    dir.display()
                )
            }
            Err(e) => bail!(
                "{field}: write {value:?} to {}: {}",
                path.display(),
                io_err(e)
            ),
        }
    }

    /// Attaches the device program to the cgroup2 directory, replacing any earlier one.
    pub fn attach_devices(&self, h: usize, program: &[u8]) -> Result<()> {
        let Some(dir) = self.dirs.get(h) else {
            bail!("linux.resources.devices: no cgroup2 directory");
        };
        bpf::attach_device_program(dir, program)
            .map_err(|e| Error(format!("linux.resources.devices: {e}")))
    }

    /// Every process in the container's cgroups (and below them), over every hierarchy: a
    /// process may be in some and not yet in others while it is being placed.
    pub fn pids(&self) -> Vec<i32> {
        let mut out = Vec::new();
        // Only directories ferrun made: a shared one holds others' processes too.
        for (d, _) in self.dirs.iter().zip(&self.created).filter(|(_, c)| **c) {
            collect_pids(d, &mut out);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The freezer in use: v1's if mounted, else cgroup2's.
    fn freezer(&self) -> Option<(bool, &Path)> {
        if self.manager != Manager::V2
            && let Some(i) = self.v1_index("freezer")
        {
            return Some((false, &self.dirs[i]));
        }
        self.v2_dir().map(|d| (true, d))
    }

    /// True when the container is frozen.
    pub fn is_frozen(&self) -> bool {
        match self.freezer() {
            // FROZEN because an ancestor is frozen does not make this container paused.
            Some((false, d)) => {
                std::fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
                    && std::fs::read_to_string(d.join("freezer.self_freezing"))
                        .map_or(true, |s| s.trim() == "1")
            }
            Some((true, d)) => {
                std::fs::read_to_string(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
            }
            None => false,
        }
    }

    /// Lets a SIGKILL through to processes a v1 freezer holds (it holds even fatal signals;
    /// cgroup2's does not). The container's own freezer is thawed; where an ancestor someone
    /// else froze holds them, they are moved to the hierarchy's root, which is never frozen
    /// (a move thaws a task): they are dying, and the frozen cgroup and its other members are
    /// left as they are.
    pub fn release_frozen_for_kill(&self) -> Result<()> {
        let Some((false, dir)) = self.freezer() else {
            return Ok(());
        };
        let state = |d: &Path| std::fs::read_to_string(d.join("freezer.state")).unwrap_or_default();
        if state(dir).trim() == "THAWED" {
            return Ok(());
        }
        let parent_frozen = std::fs::read_to_string(dir.join("freezer.parent_freezing"))
            .is_ok_and(|s| s.trim() == "1");
        if self.is_frozen() {
            if parent_frozen {
                // It cannot read THAWED while the ancestor holds it: no waiting for that.
                let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
            } else {
                self.set_frozen(false)?;
            }
        }
        if state(dir).trim() == "THAWED" {
            return Ok(());
        }
        let Some(i) = self.v1_index("freezer") else {
            return Ok(());
        };
        let root = Path::new(&self.hierarchies[i].mount).join("cgroup.procs");
        // Sub-cgroups too: a container may make its own.
        let mut pids = Vec::new();
        collect_pids(dir, &mut pids);
        for pid in pids {
            std::fs::write(&root, pid.to_string())
                .map_err(|e| Error(format!("write {}: {}", root.display(), io_err(e))))?;
        }
        Ok(())
    }

    /// Freezes (or thaws) every process, waiting until the kernel reports it done.
    pub fn set_frozen(&self, frozen: bool) -> Result<()> {
        let Some((v2, dir)) = self.freezer() else {
            bail!("the container has no freezer cgroup");
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        if v2 {
            let f = dir.join("cgroup.freeze");
            std::fs::write(&f, if frozen { "1" } else { "0" })
                .map_err(|e| Error(format!("write {}: {}", f.display(), io_err(e))))?;
            loop {
                let events = std::fs::read_to_string(dir.join("cgroup.events")).unwrap_or_default();
                let now = events
                    .lines()
                    .find_map(|l| l.strip_prefix("frozen "))
                    .is_some_and(|v| v.trim() == "1");
                if now == frozen {
                    return Ok(());
                }
                if std::time::Instant::now() > deadline {
                    let _ = std::fs::write(&f, "0");
                    bail!("cgroup {} did not freeze in 10 s", dir.display());
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        let f = dir.join("freezer.state");
        let want = if frozen { "FROZEN" } else { "THAWED" };
        loop {
            std::fs::write(&f, want)
                .map_err(|e| Error(format!("write {}: {}", f.display(), io_err(e))))?;
            let now = std::fs::read_to_string(&f).unwrap_or_default();
            if now.trim() == want {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                let _ = std::fs::write(&f, "THAWED");
                bail!("cgroup {} did not freeze in 10 s", dir.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Sends `sig` to every process of the container: `cgroup.kill` for SIGKILL where the
    /// kernel has it, else each pid (frozen meanwhile, so that nothing forks past the list).
    pub fn signal_all(&self, sig: i32) -> Result<()> {
        if !self.owned() {
            bail!("the container's cgroup is shared: ferrun will not signal every process in it");
        }
        // A scope systemd collected once empty may have been taken by another container.
        if let (Some(unit), Some(inv)) = (&self.systemd_unit, &self.systemd_invocation)
            && !systemd::is_current(unit, inv)?
        {
            return Ok(());
        }
        if sig == libc::SIGKILL
            && let Some(i) = self.v2_index()
            && self.created[i]
            && std::fs::write(self.dirs[i].join("cgroup.kill"), "1").is_ok()
        {
            // A v1 freezer (hybrid host) still holds frozen tasks: let them go, so they die.
            let _ = self.release_frozen_for_kill();
            return Ok(());
        }
        let freeze = sig == libc::SIGKILL && self.freezer().is_some() && !self.is_frozen();
        if freeze {
            let _ = self.set_frozen(true);
        }
        for pid in self.pids() {
            // SAFETY: plain kill of a process in the container's cgroup.
            unsafe { libc::kill(pid, sig) };
        }
        if sig == libc::SIGKILL {
            // A frozen task cannot die: thaw (or, under a frozen ancestor, move) it.
            let _ = self.release_frozen_for_kill();
        }
        Ok(())
    }

    /// Removes the directories ferrun made, killing leftovers first when `kill` is set.
    /// rmdir is retried while the kernel still counts exiting tasks (EBUSY).
    pub fn remove(&self, kill: bool) -> Result<()> {
        if let (Some(unit), Some(inv)) = (&self.systemd_unit, &self.systemd_invocation) {
            let stopped = if systemd::running() && systemd::is_current(unit, inv)? {
                if kill && !self.pids().is_empty() {
                    let _ = self.signal_all(libc::SIGKILL);
                }
                systemd::stop_scope(unit, inv)?
            } else {
                false
            };
            if !stopped {
                // The scope ended with its processes and systemd collected it, or another unit
                // took the name since: an empty leftover directory goes, nothing else is ours.
                for dir in self.dirs.iter().filter(|d| d.exists()) {
                    let _ = std::fs::remove_dir(dir);
                }
                return Ok(());
            }
            // systemd removed the scope's tree when it stopped; what it could not (tasks still
            // dying) goes now.
            let mut failed: Vec<String> = Vec::new();
            for dir in self.dirs.iter().filter(|d| d.exists()) {
                if let Err(e) = remove_tree(dir) {
                    failed.push(format!("{}: {e}", dir.display()));
                }
            }
            if !failed.is_empty() {
                bail!("remove cgroup {}", failed.join("; "));
            }
            return Ok(());
        }
        // The common case, an empty cgroup, costs one rmdir per hierarchy.
        let mut busy = Vec::new();
        for (dir, created) in self.dirs.iter().zip(&self.created) {
            if !created {
                continue;
            }
            match std::fs::remove_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => busy.push(dir),
            }
        }
        if busy.is_empty() {
            return Ok(());
        }
        if kill && !self.pids().is_empty() {
            let _ = self.signal_all(libc::SIGKILL);
        }
        let mut failed: Vec<String> = Vec::new();
        for dir in busy {
            if let Err(e) = remove_tree(dir) {
                failed.push(format!("{}: {e}", dir.display()));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            bail!("remove cgroup {}", failed.join("; "))
        }
    }
}

/// A cgroup directory the kernel could not name is refused before anything is made (a create
/// that made half of it could never remove it).
fn check_path_len(dir: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    const PATH_MAX: usize = 4096;
    const NAME_MAX: usize = 255;
    // Room for the longest file ferrun reads or writes in it (`/memory.kmem.tcp.max_usage_in_bytes`).
    const FILE_ROOM: usize = 64;
    let len = dir.as_os_str().len();
    if len + FILE_ROOM >= PATH_MAX {
        bail!(
            "linux.cgroupsPath: {}: {len} bytes, too long for the kernel's PATH_MAX ({PATH_MAX}) \
             with the cgroup's files in it",
            ferrun_plans::clip(&dir.to_string_lossy(), 120)
        );
    }
    if let Some(c) = dir.iter().find(|c| c.as_bytes().len() > NAME_MAX) {
        bail!(
            "linux.cgroupsPath: the name {} is longer than {NAME_MAX} bytes",
            ferrun_plans::clip(&c.to_string_lossy(), 60)
        );
    }
    Ok(())
}

fn read_pids(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) {
    out.extend(read_pids(dir));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_pids(&e.path(), out);
            }
        }
    }
}

/// rmdir of `dir` after its sub-cgroups (a container may make its own), retrying EBUSY.
fn remove_tree(dir: &Path) -> std::result::Result<(), String> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path())?;
            }
        }
    }
    let mut wait = std::time::Duration::from_millis(1);
    for _ in 0..12 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(wait);
                wait *= 2;
            }
            Err(e) => return Err(io_err(e)),
        }
    }
    Err("still busy (processes left in it)".into())
}

/// Delegates controllers below `dir`: those the resources need (an error if refused) and, on a
/// cgroup2-only host, every other available one too (best effort, as runc does), so that a
/// later `update` or `events` finds their files.
fn enable_controllers(dir: &Path, needed: &[String], all: bool) -> Result<()> {
    let f = dir.join("cgroup.subtree_control");
    let current = std::fs::read_to_string(&f).unwrap_or_default();
    let on = |c: &str| current.split_whitespace().any(|x| x == c);
    let missing: Vec<&String> = needed.iter().filter(|c| !on(c)).collect();
    if !missing.is_empty() {
        let line: Vec<String> = missing.iter().map(|c| format!("+{c}")).collect();
        std::fs::write(&f, line.join(" ")).map_err(|e| {
            Error(format!(
                "linux.resources: enable {} in {}: {}",
                line.join(" "),
                f.display(),
                io_err(e)
            ))
        })?;
    }
    if all {
        let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        for c in available.split_whitespace().filter(|c| !on(c)) {
            let _ = std::fs::write(&f, format!("+{c}"));
        }
    }
    Ok(())
}

/// Files a kernel may lack without the setting being lost: the reserved hugetlb limits (5.7),
/// CFS burst (5.14), and an unlimited or zero swap limit where swap is not accounted.
fn optional(file: &str, value: &str) -> bool {
    file.ends_with(".rsvd.limit_in_bytes")
        || file.ends_with(".rsvd.max")
        || file == "cpu.cfs_burst_us"
        || file == "cpu.max.burst"
        || (matches!(file, "memory.swap.max" | "memory.memsw.limit_in_bytes")
            && matches!(value, "max" | "-1" | "0"))
}

fn inherit_cpuset(parent: &Path, dir: &Path) -> Result<()> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let mine = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        if mine.trim().is_empty() {
            let theirs = std::fs::read_to_string(parent.join(f)).unwrap_or_default();
            std::fs::write(dir.join(f), theirs.trim())
                .map_err(|e| Error(format!("cgroup {}: copy {f}: {}", dir.display(), io_err(e))))?;
        }
    }
    Ok(())
}

/// The layout's mode, for `features`.
pub fn mode(layout: &CgroupLayout) -> CgroupMode {
    layout.mode()
}

/// This process's own cgroup directory in each of `hierarchies`, where a rootless container
/// that could not have a cgroup of its own stays (and what its cgroup mounts show).
pub fn own_dirs(hierarchies: &[Hierarchy]) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    hierarchies
        .iter()
        .map(|h| {
            let own = own_cgroup(&text, h);
            // Outside our cgroup namespace's root the path climbs (`/..`): then the root of
            // the hierarchy as this namespace shows it is all there is to show.
            if own.split('/').any(|c| c == "..") {
                PathBuf::from(&h.mount)
            } else {
                Path::new(&h.mount).join(own.trim_start_matches('/'))
            }
        })
        .collect()
}

impl Cgroup {
    /// Whether this caller may make (or join) the container's cgroup in every hierarchy: the
    /// nearest existing directory on its path is writable (its `cgroup.procs` or `tasks` when
    /// the cgroup exists). The reason when it may not.
    pub fn may_create(&self) -> std::result::Result<(), String> {
        for (h, dir) in self.hierarchies.iter().zip(&self.dirs) {
            let mut probe = dir.clone();
            if dir.is_dir() {
                probe = dir.join(if h.v2 { "cgroup.procs" } else { "tasks" });
            } else {
                while !probe.is_dir() && probe.pop() {}
            }
            let Ok(c) = std::ffi::CString::new(probe.as_os_str().as_encoded_bytes()) else {
                return Err(format!("{} is no path", probe.display()));
            };
            // SAFETY: a checked NUL-terminated path; AT_EACCESS asks as the effective ids.
            if unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::W_OK, libc::AT_EACCESS) }
                != 0
            {
                return Err(format!(
                    "{} is not writable by you (the {} hierarchy is not delegated)",
                    probe.display(),
                    h.name
                ));
            }
        }
        Ok(())
    }
}
