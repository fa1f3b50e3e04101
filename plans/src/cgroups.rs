//! The cgroup part of a plan: the host's layout (a planner input), the hierarchies a container
//! joins, its path in them, and the file writes that apply `linux.resources`.

use serde::{Deserialize, Serialize};

/// How the host mounts cgroups (probed once by the runtime; part of the plan cache key).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupLayout {
    /// cgroup v1 hierarchies, in mount order.
    pub v1: Vec<V1Hierarchy>,
    /// The cgroup2 mount, if any.
    pub unified: Option<Unified>,
}

/// One mounted v1 hierarchy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Hierarchy {
    /// Controllers bound to it (`["cpu", "cpuacct"]`), or `["name=systemd"]` for a named one.
    pub controllers: Vec<String>,
    /// Its mount point, e.g. `/sys/fs/cgroup/memory`.
    pub mount: String,
}

/// The cgroup2 mount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unified {
    pub mount: String,
    /// `cgroup.controllers` of its root: the controllers bound to v2.
    pub controllers: Vec<String>,
}

/// What kind of host this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupMode {
    /// No cgroup hierarchy at all.
    None,
    V1,
    V2,
    /// v1 controllers plus a cgroup2 mount for whatever is bound there.
    Hybrid,
}

impl CgroupLayout {
    pub fn mode(&self) -> CgroupMode {
        match (self.v1.is_empty(), self.unified.is_some()) {
            (true, false) => CgroupMode::None,
            (true, true) => CgroupMode::V2,
            (false, false) => CgroupMode::V1,
            (false, true) => CgroupMode::Hybrid,
        }
    }

    /// The v1 hierarchy holding `controller`.
    pub fn v1_index(&self, controller: &str) -> Option<usize> {
        self.v1
            .iter()
            .position(|h| h.controllers.iter().any(|c| c == controller))
    }

    /// True when `controller` is bound to the cgroup2 hierarchy.
    pub fn on_v2(&self, controller: &str) -> bool {
        self.unified
            .as_ref()
            .is_some_and(|u| u.controllers.iter().any(|c| c == controller))
    }

    /// Every hierarchy a container joins: the v1 ones in mount order, then the unified one.
    pub fn hierarchies(&self) -> Vec<Hierarchy> {
        let mut out: Vec<Hierarchy> = self
            .v1
            .iter()
            .map(|h| Hierarchy {
                name: h.controllers.join(","),
                mount: h.mount.clone(),
                v2: false,
            })
            .collect();
        if let Some(u) = &self.unified {
            out.push(Hierarchy {
                name: "unified".into(),
                mount: u.mount.clone(),
                v2: true,
            });
        }
        out
    }
}

/// A hierarchy the container joins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hierarchy {
    /// `memory`, `cpu,cpuacct`, `name=systemd`, or `unified` for cgroup2.
    pub name: String,
    pub mount: String,
    pub v2: bool,
}

/// `linux.cgroupsPath`, cleaned. Resolved to a directory per hierarchy at create time: a relative
/// path depends on the caller's own cgroup, and the default on the container id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgroupPath {
    /// From the hierarchy's root, e.g. `/libpod_parent/libpod-1af7…`.
    Absolute(String),
    /// Below the caller's own cgroup in each hierarchy.
    Relative(String),
    /// No `cgroupsPath`: the container id, below the caller's own cgroup.
    Default,
    /// `exec`: the running container's cgroup, as its state records it.
    Container,
}

impl std::fmt::Display for CgroupPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CgroupPath::Absolute(p) => write!(f, "{p}"),
            CgroupPath::Relative(p) => write!(f, "<own cgroup>/{p}"),
            CgroupPath::Default => write!(f, "<own cgroup>/<id>"),
            CgroupPath::Container => write!(f, "the container's"),
        }
    }
}

/// Where the container's cgroups are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroups {
    pub path: CgroupPath,
    /// Every hierarchy joined; host steps and mounts refer to them by index.
    pub hierarchies: Vec<Hierarchy>,
    /// The cgroup2 hierarchy the clone is born in (`CLONE_INTO_CGROUP`), if any.
    pub clone_into: Option<u8>,
    /// Controllers to enable in the `cgroup.subtree_control` of every cgroup2 ancestor.
    pub v2_controllers: Vec<String>,
    /// An existing cgroup that holds processes may be joined (annotation
    /// `ferrun.cgroup.shared: "true"`); otherwise create refuses it.
    pub shared: bool,
    /// `--systemd-cgroup`: systemd makes the cgroup, as a transient scope, once the container
    /// process exists; ferrun then writes the resources into the delegated directory.
    pub systemd: Option<SystemdScope>,
    /// Rootless and asked for no resources: when the caller may not create the cgroup (it is
    /// not delegated), the container runs without one, with a warning, as runc's does.
    pub optional: bool,
}

/// The transient unit systemd is asked for (`StartTransientUnit`) with the container's pid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemdScope {
    /// The slice it goes in, e.g. `machine.slice`.
    pub slice: String,
    /// The unit's name, e.g. `libpod-1af7….scope`.
    pub unit: String,
    /// The resources systemd has properties for, as it spells them (`MemoryMax`, `TasksMax`,
    /// …); everything else is only written to the cgroup's files.
    pub properties: Vec<UnitProperty>,
}

/// One unit property, typed as systemd's D-Bus API wants it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitProperty {
    pub name: String,
    pub value: UnitValue,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnitValue {
    /// D-Bus `t`.
    U64(u64),
    /// D-Bus `b`.
    Bool(bool),
    /// D-Bus `ay` (a CPU or NUMA node bitmask).
    Bytes(Vec<u8>),
}

impl std::fmt::Display for UnitProperty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            UnitValue::U64(u64::MAX) => write!(f, "{}=infinity", self.name),
            UnitValue::U64(v) => write!(f, "{}={v}", self.name),
            UnitValue::Bool(b) => write!(f, "{}={}", self.name, if *b { "yes" } else { "no" }),
            UnitValue::Bytes(b) => {
                write!(f, "{}=", self.name)?;
                for x in b {
                    write!(f, "{x:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// One write into a cgroup file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupWrite {
    /// Index into [`Cgroups::hierarchies`].
    pub hierarchy: u8,
    pub file: String,
    pub value: String,
    /// The config field it comes from, for error messages.
    pub field: String,
}

/// `BPF_DEVCG_DEV_*` and `BPF_DEVCG_ACC_*` as the kernel passes them to a device program.
pub const DEVCG_DEV_BLOCK: u32 = 1;
pub const DEVCG_DEV_CHAR: u32 = 2;
pub const DEVCG_ACC_MKNOD: u32 = 1;
pub const DEVCG_ACC_READ: u32 = 2;
pub const DEVCG_ACC_WRITE: u32 = 4;
