//! The plan IR: what a container start does, as data.
//!
//! A [`Plan`] is the exact, ordered list of syscalls that set a container up. The planner builds it
//! from `config.json`; the runtime stores it (postcard bytes, see [`Plan::encode`]) and the executor
//! replays it. Every string is a NUL-terminated [`CBuf`], so the executor hands pointers straight
//! to the kernel. The numbered listing (`Display`) is what `ferrun plan` prints and what the
//! snapshot tests pin. This crate does no I/O.

pub mod cgroups;
mod flags;
mod listing;

pub use cgroups::{CgroupLayout, CgroupPath, CgroupWrite, Cgroups, Hierarchy};

pub use flags::{
    CAPABILITIES, MOUNT_FLAGS, RLIMITS, cap_names, clone_flag_names, mount_attr_names,
    mount_flag_names,
};
pub use flags::{
    MOUNT_ATTR__ATIME, MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_RELATIME, MOUNT_ATTR_STRICTATIME,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bumped whenever the encoding of [`Plan`] changes; a cached plan of another version is rebuilt.
pub const FORMAT_VERSION: u32 = 13;

/// A Linux security module whose exec attribute a plan sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lsm {
    AppArmor,
    SELinux,
}

/// Magic prefix of an encoded plan file.
pub const MAGIC: &[u8; 8] = b"FERRUNPL";

/// A NUL-terminated byte string, ready to pass to the kernel.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CBuf(#[serde(with = "serde_bytes")] Vec<u8>);

impl CBuf {
    /// Builds the buffer; `None` when `s` holds a NUL byte (the kernel would truncate it).
    pub fn new(s: &str) -> Option<CBuf> {
        if s.as_bytes().contains(&0) {
            return None;
        }
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        Some(CBuf(v))
    }

    /// Pointer to the NUL-terminated bytes.
    pub fn as_ptr(&self) -> *const libc::c_char {
        self.0.as_ptr().cast()
    }

    /// The bytes including the final NUL.
    pub fn bytes_with_nul(&self) -> &[u8] {
        &self.0
    }

    /// The bytes without the final NUL.
    pub fn bytes(&self) -> &[u8] {
        &self.0[..self.0.len().saturating_sub(1)]
    }

    /// Text form for listings and messages.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.bytes())
    }

    /// True when the buffer came from a decoded plan that lacks its terminating NUL.
    pub fn is_well_formed(&self) -> bool {
        self.0.last() == Some(&0) && !self.bytes().contains(&0)
    }
}

impl std::fmt::Debug for CBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.text())
    }
}

/// Linux namespace kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Namespace {
    User,
    Mount,
    Pid,
    Network,
    Ipc,
    Uts,
    Cgroup,
    Time,
}

impl Namespace {
    /// All kinds, in the order a process joins them (user first, mount last but one).
    pub const ALL: [Namespace; 8] = [
        Namespace::User,
        Namespace::Pid,
        Namespace::Time,
        Namespace::Network,
        Namespace::Ipc,
        Namespace::Uts,
        Namespace::Cgroup,
        Namespace::Mount,
    ];

    /// The `CLONE_NEW*` flag.
    pub fn clone_flag(self) -> u64 {
        (match self {
            Namespace::User => libc::CLONE_NEWUSER,
            Namespace::Mount => libc::CLONE_NEWNS,
            Namespace::Pid => libc::CLONE_NEWPID,
            Namespace::Network => libc::CLONE_NEWNET,
            Namespace::Ipc => libc::CLONE_NEWIPC,
            Namespace::Uts => libc::CLONE_NEWUTS,
            Namespace::Cgroup => libc::CLONE_NEWCGROUP,
            Namespace::Time => libc::CLONE_NEWTIME,
        }) as u32 as u64
    }

    /// The OCI name (`linux.namespaces[].type`).
    pub fn oci_name(self) -> &'static str {
        match self {
            Namespace::User => "user",
            Namespace::Mount => "mount",
            Namespace::Pid => "pid",
            Namespace::Network => "network",
            Namespace::Ipc => "ipc",
            Namespace::Uts => "uts",
            Namespace::Cgroup => "cgroup",
            Namespace::Time => "time",
        }
    }

    /// The name of its file under `/proc/<pid>/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            Namespace::Mount => "mnt",
            Namespace::Network => "net",
            other => other.oci_name(),
        }
    }

    /// Joined by the parent before `clone`: pid and time apply to children only, and the rest
    /// must be joined before a new user namespace exists (joining one needs privilege over its
    /// owner, which a process inside a new user namespace lacks). User and mount namespaces are
    /// joined by the container process: the parent keeps its own identity and filesystem.
    pub fn joined_before_clone(self) -> bool {
        !matches!(self, Namespace::User | Namespace::Mount)
    }
}

/// Which id map a host step writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdMapKind {
    Uid,
    Gid,
}

/// A device node kind for `mknod`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DevKind {
    Char,
    Block,
    Fifo,
}

impl DevKind {
    /// The `S_IF*` bits.
    pub fn mode_bits(self) -> u32 {
        match self {
            DevKind::Char => libc::S_IFCHR,
            DevKind::Block => libc::S_IFBLK,
            DevKind::Fifo => libc::S_IFIFO,
        }
    }
}

/// Who opens a bind mount's source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BindFrom {
    /// The container process, in its own mount namespace.
    Child,
    /// The parent, before clone, as a detached mount with the id mapping, which the process
    /// attaches (runc's way for id-mapped mounts).
    Parent { idmap: IdMap },
    /// The container process, unless its user namespace may not reach the source (a root-only
    /// directory): then a copy the parent opened from the host's side, as crun does.
    ChildElseParent,
}

/// A mount's id mapping (`mount_setattr(MOUNT_ATTR_IDMAP)` with a user namespace of these
/// maps): the `uid_map` and `gid_map` texts, and whether submounts are mapped too (`ridmap`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub uid_map: CBuf,
    pub gid_map: CBuf,
    pub recursive: bool,
}

/// A device node: where, what, its mode and owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNode {
    pub dest: CBuf,
    pub kind: DevKind,
    pub major: u32,
    pub minor: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl std::fmt::Display for DeviceNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} {}:{} mode {:04o} owner {}:{}",
            self.kind, self.major, self.minor, self.mode, self.uid, self.gid
        )
    }
}

/// What to create at a mount destination that does not exist yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// A directory (every filesystem mount).
    Dir,
    /// A directory that is no symlink (`proc` and `sysfs`: a link in the image could aim them
    /// anywhere in the rootfs, CVE-2019-16884; runc refuses it too).
    OrdinaryDir,
    /// Whatever the bind source is: a file for a file, a directory otherwise.
    LikeSource,
}

/// Work the parent does, around `clone`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum HostStep {
    /// Open a namespace file for the container process to join; its fd goes in `slot`.
    OpenNamespace { slot: u8, ns: Namespace, path: CBuf },
    /// Join a pid or time namespace in the parent, so that the clone is born in it.
    JoinBeforeClone { ns: Namespace, path: CBuf },
    /// Write `/proc/<pid>/{uid,gid}_map`.
    WriteIdMap { kind: IdMapKind, map: CBuf },
    /// Rootless, for maps beyond the caller's own id: `newuidmap`/`newgidmap <pid> <map…>`,
    /// the setuid helpers that check `/etc/subuid` and `/etc/subgid`.
    IdMapHelper { kind: IdMapKind, map: CBuf },
    /// Rootless, before a gid map of the caller's own gid: `deny` written to
    /// `/proc/<pid>/setgroups`, without which the kernel refuses the map.
    DenySetgroups,
    /// Write `/proc/<pid>/oom_score_adj` (from outside: a non-dumpable child in a user namespace
    /// may not write its own).
    OomScoreAdj { value: CBuf },
    /// Release the container process once its id maps are written and it is in its cgroups.
    Release,
    /// A new time namespace with offsets (`linux.timeOffsets`): `unshare(CLONE_NEWTIME)` in the
    /// parent and `offsets` written to its `timens_offsets` through a procfs of ferrun's own,
    /// so that the clone is born in it (a namespace a process is born in by `clone` is frozen
    /// at once, without offsets).
    TimeNamespace { offsets: CBuf },
    /// After clone: the parent back in its own time namespace, so that what it starts next
    /// (hooks, helpers) is not born in the container's.
    LeaveTimeNamespace,
    /// `linux.netDevices`: each `(host name, container name)` interface moved into the
    /// container's network namespace (a joined one before the parent joins it, a new one once
    /// the clone exists), renamed in the same request, its permanent global addresses given
    /// back, and set up.
    NetDevices { devices: Vec<(CBuf, CBuf)> },
    /// `exec`: the parent's CPU set before clone, which the process inherits until it is in
    /// the container's cgroups (`process.execCPUAffinity.initial`).
    CpuAffinity {
        #[serde(with = "serde_bytes")]
        cpus: Vec<u8>,
    },
    /// Create the container's cgroup in every hierarchy (with its missing parents), and enable
    /// the planned controllers in the cgroup2 ancestors.
    CgroupCreate,
    /// Open, from the host's side, the detached mounts the container steps take from the
    /// parent (`BindMount` from `Parent`, `AttachDevice`); the process inherits their fds.
    OpenMountTrees,
    /// `--systemd-cgroup`: ask systemd for the transient scope with the container's pid (the
    /// unit is [`Cgroups::systemd`]), and wait until its job is done.
    StartScope,
    /// Write a cgroup file.
    CgroupWrite(CgroupWrite),
    /// `exec`: join the running container's namespaces in `flags` through its pidfd, so that
    /// the clone is born in them (pid, time) or inherits them.
    JoinContainer { flags: u64 },
    /// Load a `BPF_PROG_TYPE_CGROUP_DEVICE` program and attach it to the cgroup2 directory.
    CgroupDevices {
        hierarchy: u8,
        /// `struct bpf_insn` array as the kernel reads it.
        #[serde(with = "serde_bytes")]
        program: Vec<u8>,
    },
}

/// One syscall (or a tight group of them) in the container process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Step {
    /// `prctl(PR_SET_DUMPABLE, 0)`: other processes may not open our `/proc/<pid>/exe`.
    NotDumpable,
    /// In a new network namespace: `lo` up (`SIOCSIFFLAGS` with `IFF_UP`), as runc and crun.
    LoopbackUp,
    /// `setns(slot fd, ns)`.
    SetNs { slot: u8, ns: Namespace },
    /// Block until the parent has written the id maps.
    WaitParent,
    /// Tell the parent the runtime environment exists (mounts done, before `pivot_root`), then
    /// wait while it runs the `prestart`, `createRuntime` and `createContainer` hooks.
    AwaitHooks,
    /// `exec`: `setns(container pidfd, flags)` for the user and mount namespaces.
    SetNsContainer { flags: u64 },
    /// `exec`: open `/` (the container's root, after joining its mount namespace) as the root
    /// every later path resolves in.
    OpenRoot,
    /// `unshare(flags)`: new namespaces owned by a user namespace joined just before.
    Unshare { flags: u64 },
    /// `setresgid(0)`, `setresuid(0)` inside a new user namespace.
    BecomeNsRoot,
    /// `mount(NULL, "/", NULL, flags, NULL)`: propagation of the whole tree.
    RootPropagation { flags: u64 },
    /// Bind the rootfs on itself (so it is a mount point for `pivot_root`) and open it as the root
    /// that every later target resolves in.
    BindRootfs { path: CBuf },
    /// `mount(source, <dest inside rootfs>, fstype, flags, data)`.
    Mount {
        source: Option<CBuf>,
        dest: CBuf,
        fstype: Option<CBuf>,
        flags: u64,
        data: Option<CBuf>,
        target: Target,
    },
    /// A bind mount made atomically: `open_tree(source, OPEN_TREE_CLONE)`, `mount_setattr` of
    /// the recursive (`rset`/`rclear`) and top-level (`set`/`clear`) attributes on the detached
    /// copy, then `move_mount` onto `<dest>` (created like the source when missing).
    BindMount {
        source: CBuf,
        dest: CBuf,
        recursive: bool,
        set: u64,
        clear: u64,
        rset: u64,
        rclear: u64,
        /// Who opens the source.
        from: BindFrom,
    },
    /// A device node the parent made (`mknod` on a tmpfs of its own, owned by the host ids
    /// `uid`:`gid`) and opened as a detached mount, moved onto `<dest>` (made as an empty
    /// file): a container in a user namespace cannot `mknod`, and the host need not have the
    /// device.
    AttachDevice(DeviceNode),
    /// Bind the container's own cgroup directory of a hierarchy onto `<dest>` with the mount
    /// attributes `set`; the host path is resolved at create time.
    CgroupBind { hierarchy: u8, dest: CBuf, set: u64 },
    /// Move ourselves into the container's cgroup of a v1 hierarchy: `0` written to its `tasks`
    /// file (opened by the parent). A thread moving itself skips the kernel's global
    /// threadgroup lock, which a parent writing our pid to `cgroup.procs` pays for with an RCU
    /// grace period (milliseconds).
    JoinCgroup { hierarchy: u8 },
    /// `tmpcopyup` (runc's and crun's extension): mount a tmpfs on `<dest>` and copy into it
    /// what the directory held before.
    TmpfsCopyUp {
        dest: CBuf,
        flags: u64,
        data: Option<CBuf>,
    },
    /// `mount(NULL, <dest>, NULL, MS_REMOUNT | flags, data)`.
    Remount { dest: CBuf, flags: u64 },
    /// `mount(NULL, <dest>, NULL, propagation, NULL)`.
    Propagation { dest: CBuf, flags: u64 },
    /// `mount_setattr(<dest>, recursive, set, clear)`.
    SetAttr {
        dest: CBuf,
        recursive: bool,
        set: u64,
        clear: u64,
    },
    /// `mknod` a device inside the rootfs, then `chown` it.
    MkNod(DeviceNode),
    /// Bind a host device onto an empty file inside the rootfs (user namespaces cannot `mknod`).
    BindDevice { source: CBuf, dest: CBuf },
    /// `symlink(target, <link inside rootfs>)`; an existing entry is left alone.
    Symlink { target: CBuf, link: CBuf },
    /// Make the rootfs the new `/` with `pivot_root` and detach the old root.
    PivotRoot,
    /// Make the rootfs the new `/` with `chroot` (`--no-pivot`).
    Chroot,
    /// Hide a path: a read-only tmpfs over a directory, `/dev/null` over a file.
    MaskPath { path: CBuf },
    /// Bind a path on itself, read-only.
    ReadonlyPath { path: CBuf },
    /// Remount `/` read-only (not its submounts).
    ReadonlyRoot,
    /// Open a procfs of ferrun's own (`fsopen("proc")`, else a detached clone of `/proc`) for the
    /// `Sysctl` writes that follow: no mount or symlink the config or the image made can
    /// redirect them.
    OpenProcfs,
    /// Write `value` to a `/proc/sys` file, resolved in the procfs of `OpenProcfs` without
    /// following any symlink or crossing a mount, and checked to be on procfs.
    Sysctl { path: CBuf, value: CBuf },
    /// Set the LSM attribute the next `execve` takes, through the procfs of `OpenProcfs`:
    /// `thread-self/attr/apparmor/exec` (or `attr/exec` on kernels without the per-LSM
    /// directory) with `exec <profile>` for AppArmor, `thread-self/attr/exec` with the label for
    /// SELinux.
    LsmExec { lsm: Lsm, value: CBuf },
    /// `sethostname`.
    Hostname { name: CBuf },
    /// `setdomainname`.
    Domainname { name: CBuf },
    /// Open the container's pty, hand its master to the parent, make it the controlling tty.
    Terminal,
    /// Bind the pty (stdin, after `Terminal`) onto `/dev/console`, made as an empty file when
    /// missing and never through a symlink (CVE-2025-52565), as runc and crun give a terminal.
    Console,
    /// `fchown` stdin, stdout and stderr to `uid` where they are pipes or files the caller gave
    /// and someone else's (runc's rule), so that the process can use its own stdio; devices
    /// and ttys are left alone, and a refusal (an unmapped owner) is not an error.
    ChownStdio { uid: u32 },
    /// `setrlimit`.
    Rlimit { resource: u32, soft: u64, hard: u64 },
    /// `sched_setattr(0, attr, 0)` (`process.scheduler`).
    Scheduler(SchedAttr),
    /// `ioprio_set(IOPRIO_WHO_PROCESS, 0, class << 13 | level)` (`process.ioPriority`).
    IoPriority { class: u32, level: u32 },
    /// `personality(persona)` (`linux.personality`).
    Personality { persona: u32 },
    /// `set_mempolicy(mode | flags, nodes, bits + 1)` (`linux.memoryPolicy`).
    MemoryPolicy {
        mode: i32,
        flags: i32,
        /// The node mask, little-endian, a whole number of `unsigned long`s.
        #[serde(with = "serde_bytes")]
        nodes: Vec<u8>,
    },
    /// `sched_setaffinity(0, cpus)`: `exec`'s final CPU set, once it is in the container's
    /// cgroups (`process.execCPUAffinity.final`).
    CpuAffinity {
        #[serde(with = "serde_bytes")]
        cpus: Vec<u8>,
    },
    /// `chdir`.
    Chdir { path: CBuf },
    /// Create the working directory (and its missing parents, mode 0755) inside the new root
    /// when the image lacks it, before `/` may become read-only (runc's rule). Best effort:
    /// `Chdir` reports what stood in the way.
    MkdirCwd { path: CBuf },
    /// The env has no `HOME`: take `uid`'s home from the container's `/etc/passwd` (`/` when
    /// it has none), as runc and crun do.
    HomeFromPasswd { uid: u32 },
    /// Find the program: the first candidate that is an executable regular file.
    ResolveExec { name: CBuf, candidates: Vec<CBuf> },
    /// Drop every capability above `keep` from the bounding set.
    DropBounding { keep: u64, last_cap: u8 },
    /// `prctl(PR_SET_KEEPCAPS)`.
    KeepCaps { on: bool },
    /// `setgroups`.
    SetGroups { gids: Vec<u32> },
    /// `setresgid`.
    SetGid { gid: u32 },
    /// `setresuid`.
    SetUid { uid: u32 },
    /// `capset` of the effective, permitted and inheritable sets.
    SetCaps {
        effective: u64,
        permitted: u64,
        inheritable: u64,
    },
    /// Raise the ambient capabilities.
    Ambient { caps: u64 },
    /// `prctl(PR_SET_NO_NEW_PRIVS)`.
    NoNewPrivs,
    /// `seccomp(SECCOMP_SET_MODE_FILTER, flags, program)`.
    Seccomp {
        flags: u32,
        /// The `sock_filter` array as the kernel reads it.
        #[serde(with = "serde_bytes")]
        bpf: Vec<u8>,
        /// SHA-256 of `bpf`, for the listing and the filter cache.
        hash: String,
    },
    /// `umask`.
    Umask { mask: u32 },
    /// Close every fd but stdio, the preserved ones, the sync socket and the start fd: a
    /// container waiting for `start` (or an exec'd process) holds nothing of the host's.
    CloseStrayFds,
    /// Tell the parent that set-up is done.
    Ready,
    /// Block until `start` (or `run`) releases the container.
    WaitStart,
    /// Mark every fd above stdio and the preserved ones close-on-exec.
    CloseFds,
    /// `execve` the resolved program.
    Exec { argv: Vec<CBuf>, env: Vec<CBuf> },
    /// `setsid`: the init leads a session of its own inside the container (as under runc and
    /// crun), not one of the runtime's caller outside its pid namespace, which criu cannot
    /// dump. (`Terminal` makes the session for a container with a pty.)
    NewSession,
    /// Stdio that is a `/dev/null` (the host's, from an engine) becomes the container's own: a
    /// file of a mount outside the container is one criu cannot dump (runc does the same).
    ReopenDevNull,
}

/// `struct sched_attr` as `sched_setattr` reads it (the first 56 bytes, `SCHED_ATTR_SIZE_VER1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedAttr {
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// Kernel names of `sched_attr.sched_policy` values, by number.
pub const SCHED_POLICIES: [&str; 7] = [
    "SCHED_OTHER",
    "SCHED_FIFO",
    "SCHED_RR",
    "SCHED_BATCH",
    "SCHED_ISO",
    "SCHED_IDLE",
    "SCHED_DEADLINE",
];

/// Kernel names of `sched_attr.sched_flags` bits, by bit.
pub const SCHED_FLAGS: [&str; 7] = [
    "SCHED_FLAG_RESET_ON_FORK",
    "SCHED_FLAG_RECLAIM",
    "SCHED_FLAG_DL_OVERRUN",
    "SCHED_FLAG_KEEP_POLICY",
    "SCHED_FLAG_KEEP_PARAMS",
    "SCHED_FLAG_UTIL_CLAMP_MIN",
    "SCHED_FLAG_UTIL_CLAMP_MAX",
];

/// Kernel names of `set_mempolicy` modes, by number.
pub const MEMPOLICY_MODES: [&str; 7] = [
    "MPOL_DEFAULT",
    "MPOL_PREFERRED",
    "MPOL_BIND",
    "MPOL_INTERLEAVE",
    "MPOL_LOCAL",
    "MPOL_PREFERRED_MANY",
    "MPOL_WEIGHTED_INTERLEAVE",
];

/// Kernel names of `set_mempolicy` mode flags, with their bits.
pub const MEMPOLICY_FLAGS: [(&str, i32); 3] = [
    ("MPOL_F_NUMA_BALANCING", 1 << 13),
    ("MPOL_F_RELATIVE_NODES", 1 << 14),
    ("MPOL_F_STATIC_NODES", 1 << 15),
];

/// Kernel names of I/O priority classes, by number (0 is none).
pub const IOPRIO_CLASSES: [&str; 4] = [
    "IOPRIO_CLASS_NONE",
    "IOPRIO_CLASS_RT",
    "IOPRIO_CLASS_BE",
    "IOPRIO_CLASS_IDLE",
];

/// A bit list (`0-3,7`) as the little-endian mask the kernel reads, padded to whole
/// `unsigned long`s; `None` when it is not such a list or names a bit at `limit` or above.
pub fn bit_list_mask(list: &str, limit: usize) -> Option<Vec<u8>> {
    let mut mask = Vec::new();
    for part in list.split(',').map(str::trim) {
        let num = |x: &str| {
            let x = x.trim();
            if x.is_empty() || !x.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            x.parse::<usize>().ok()
        };
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(part)?, num(part)?),
        };
        if a > b || b >= limit {
            return None;
        }
        for n in a..=b {
            if mask.len() <= n / 8 {
                mask.resize(n / 8 + 1, 0);
            }
            mask[n / 8] |= 1 << (n % 8);
        }
    }
    mask.resize(mask.len().div_ceil(8) * 8, 0);
    Some(mask)
}

/// The bits set in a mask made by [`bit_list_mask`], as a list again (`0-3,7`).
pub fn mask_bit_list(mask: &[u8]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut n = 0;
    let bits = mask.len() * 8;
    let set = |i: usize| mask[i / 8] & (1 << (i % 8)) != 0;
    while n < bits {
        if !set(n) {
            n += 1;
            continue;
        }
        let start = n;
        while n + 1 < bits && set(n + 1) {
            n += 1;
        }
        out.push(if start == n {
            start.to_string()
        } else {
            format!("{start}-{n}")
        });
        n += 1;
    }
    out.join(",")
}

/// `linux.seccomp.listenerPath` and `listenerMetadata`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub path: String,
    pub metadata: String,
}

/// One OCI hook: a program the runtime runs with the container's state on its stdin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// Absolute path of the program.
    pub path: String,
    /// Its argv (the first is `argv[0]`); `[path]` when the config gives none.
    pub args: Vec<String>,
    /// Its whole environment; `None` when the config gives none: then a host hook inherits
    /// the runtime's, and a `startContainer` hook the container process's (runc's rules).
    pub env: Option<Vec<String>>,
    /// Seconds before it is killed and counted as failed.
    pub timeout: Option<u32>,
}

/// `hooks`, by phase, in config order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hooks {
    pub prestart: Vec<Hook>,
    pub create_runtime: Vec<Hook>,
    pub create_container: Vec<Hook>,
    pub start_container: Vec<Hook>,
    pub poststart: Vec<Hook>,
    pub poststop: Vec<Hook>,
    /// `CLONE_NEW*` flags of the container's namespaces, which `createContainer` and
    /// `startContainer` hooks run in.
    pub container_ns: u64,
    /// The config's annotations, which hooks get in the state on their stdin.
    pub annotations: Vec<(String, String)>,
}

impl Hooks {
    pub fn is_empty(&self) -> bool {
        self.phases().iter().all(|(_, h)| h.is_empty())
    }

    /// `(OCI name, hooks)` of every phase, in lifecycle order.
    pub fn phases(&self) -> [(&'static str, &Vec<Hook>); 6] {
        [
            ("prestart", &self.prestart),
            ("createRuntime", &self.create_runtime),
            ("createContainer", &self.create_container),
            ("startContainer", &self.start_container),
            ("poststart", &self.poststart),
            ("poststop", &self.poststop),
        ]
    }
}

/// A config section the planner recognised but does not plan yet: listed, never silently dropped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NotPlanned {
    pub field: String,
    pub why: String,
}

/// The plan header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    /// Hash of every input that decides the plan (the cache key), in hex.
    pub input_hash: String,
    pub arch: String,
}

/// A whole container start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub header: Header,
    /// Parent steps before `clone`.
    pub before_clone: Vec<HostStep>,
    /// `CLONE_NEW*` flags of the namespaces the container process is born in.
    pub clone_flags: u64,
    /// Parent steps after `clone`.
    pub after_clone: Vec<HostStep>,
    /// Container-process steps, in order.
    pub steps: Vec<Step>,
    /// The container's root directory on the host (absolute).
    pub rootfs: String,
    /// `process.terminal`.
    pub terminal: bool,
    /// `process.consoleSize` as (rows, columns), set on the pty before it is handed over.
    pub console_size: Option<(u16, u16)>,
    /// The container's cgroups; `None` when the host has none.
    pub cgroups: Option<Cgroups>,
    /// Where the seccomp listener fd goes (`SCMP_ACT_NOTIFY`).
    pub seccomp_listener: Option<Listener>,
    /// `hooks`.
    pub hooks: Hooks,
    /// Sections recognised but not planned yet.
    pub not_planned: Vec<NotPlanned>,
    /// Things the planner dropped on purpose (e.g. capabilities newer than the kernel).
    pub warnings: Vec<String>,
}

/// Why a stored plan was not usable.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    BadMagic,
    ForeignVersion(u32),
    /// The bytes do not match the checksum stored with them.
    Checksum,
    Corrupt,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::BadMagic => write!(f, "not a ferrun plan"),
            DecodeError::ForeignVersion(v) => {
                write!(f, "plan format {v}, this ferrun reads {FORMAT_VERSION}")
            }
            DecodeError::Checksum => write!(f, "its bytes do not match their checksum"),
            DecodeError::Corrupt => write!(f, "corrupt or truncated plan"),
        }
    }
}

/// `MAGIC`, the format version (LE u32), the SHA-256 of `body`, then `body`: a cache entry whose
/// bytes changed after it was written is refused, not executed.
pub fn seal(magic: &[u8; 8], version: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 44);
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&Sha256::digest(body));
    out.extend_from_slice(body);
    out
}

/// The body of bytes made by [`seal`], once magic, version and checksum are right.
pub fn unseal<'b>(magic: &[u8; 8], version: u32, bytes: &'b [u8]) -> Result<&'b [u8], DecodeError> {
    let rest = bytes
        .strip_prefix(magic.as_slice())
        .ok_or(DecodeError::BadMagic)?;
    let (ver, rest) = rest.split_first_chunk::<4>().ok_or(DecodeError::Corrupt)?;
    let ver = u32::from_le_bytes(*ver);
    if ver != version {
        return Err(DecodeError::ForeignVersion(ver));
    }
    let (sum, body) = rest.split_first_chunk::<32>().ok_or(DecodeError::Corrupt)?;
    if Sha256::digest(body).as_slice() != sum.as_slice() {
        return Err(DecodeError::Checksum);
    }
    Ok(body)
}

impl Plan {
    /// Sealed postcard bytes (see [`seal`]).
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        let body = postcard::to_stdvec(self).unwrap_or_default();
        seal(MAGIC, FORMAT_VERSION, &body)
    }

    /// The encoding without the seal: what a template's values are filled into.
    pub fn body(&self) -> Option<Vec<u8>> {
        postcard::to_stdvec(self).ok()
    }

    /// Decodes and checks a stored plan; anything odd is an error, never trusted.
    pub fn decode(bytes: &[u8]) -> Result<Plan, DecodeError> {
        Plan::decode_filled(bytes, |_| {})
    }

    /// [`Plan::decode`], with `fill` run on the checked body first (a template's values, of
    /// the same lengths as its tokens).
    pub fn decode_filled(bytes: &[u8], fill: impl FnOnce(&mut [u8])) -> Result<Plan, DecodeError> {
        let mut body = unseal(MAGIC, FORMAT_VERSION, bytes)?.to_vec();
        fill(&mut body);
        let (plan, rest): (Plan, &[u8]) =
            postcard::take_from_bytes(&body).map_err(|_| DecodeError::Corrupt)?;
        if !rest.is_empty() || plan.header.format != FORMAT_VERSION || !plan.is_well_formed() {
            return Err(DecodeError::Corrupt);
        }
        Ok(plan)
    }

    /// Every buffer is NUL-terminated with no inner NUL.
    fn is_well_formed(&self) -> bool {
        let mut ok = true;
        self.for_each_buf(&mut |b| ok &= b.is_well_formed());
        ok
    }

    fn for_each_buf(&self, f: &mut dyn FnMut(&CBuf)) {
        for h in self.before_clone.iter().chain(&self.after_clone) {
            match h {
                HostStep::OpenNamespace { path, .. } | HostStep::JoinBeforeClone { path, .. } => {
                    f(path)
                }
                HostStep::WriteIdMap { map, .. } | HostStep::IdMapHelper { map, .. } => f(map),
                HostStep::OomScoreAdj { value } => f(value),
                HostStep::TimeNamespace { offsets } => f(offsets),
                HostStep::NetDevices { devices } => {
                    for (host, name) in devices {
                        f(host);
                        f(name);
                    }
                }
                HostStep::Release
                | HostStep::OpenMountTrees
                | HostStep::LeaveTimeNamespace
                | HostStep::CpuAffinity { .. }
                | HostStep::DenySetgroups
                | HostStep::JoinContainer { .. }
                | HostStep::CgroupCreate
                | HostStep::StartScope
                | HostStep::CgroupWrite(_)
                | HostStep::CgroupDevices { .. } => {}
            }
        }
        for s in &self.steps {
            s.for_each_buf(f);
        }
    }

    /// The number a container step has in the listing (1-based, after the host steps).
    pub fn step_number(&self, index: usize) -> usize {
        self.before_clone.len() + 1 + self.after_clone.len() + index + 1
    }
}

impl Step {
    fn for_each_buf(&self, f: &mut dyn FnMut(&CBuf)) {
        match self {
            Step::BindRootfs { path }
            | Step::MaskPath { path }
            | Step::ReadonlyPath { path }
            | Step::MkdirCwd { path }
            | Step::Chdir { path } => f(path),
            Step::Mount {
                source,
                dest,
                fstype,
                data,
                ..
            } => {
                source.iter().chain(fstype).chain(data).for_each(&mut *f);
                f(dest)
            }
            Step::Remount { dest, .. }
            | Step::Propagation { dest, .. }
            | Step::SetAttr { dest, .. }
            | Step::MkNod(DeviceNode { dest, .. })
            | Step::CgroupBind { dest, .. } => f(dest),
            Step::TmpfsCopyUp { dest, data, .. } => {
                f(dest);
                data.iter().for_each(f)
            }
            Step::BindMount {
                source, dest, from, ..
            } => {
                f(source);
                f(dest);
                if let BindFrom::Parent { idmap: m } = from {
                    f(&m.uid_map);
                    f(&m.gid_map);
                }
            }
            Step::AttachDevice(n) => f(&n.dest),
            Step::BindDevice { source, dest } => {
                f(source);
                f(dest)
            }
            Step::Symlink { target, link } => {
                f(target);
                f(link)
            }
            Step::Sysctl { path, value } => {
                f(path);
                f(value)
            }
            Step::LsmExec { value, .. } => f(value),
            Step::Hostname { name } | Step::Domainname { name } => f(name),
            Step::ResolveExec { name, candidates } => {
                f(name);
                candidates.iter().for_each(f)
            }
            Step::Exec { argv, env } => argv.iter().chain(env).for_each(f),
            _ => {}
        }
    }
}

/// `s` cut to at most `max` bytes (at a character boundary) with the length it had, for
/// messages that echo a value of the user's.
pub fn clip(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len()).into()
}

/// Lower-case hex SHA-256 of the concatenated parts, each length-prefixed so that no two
/// different part lists hash alike.
pub fn content_hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let digest = h.finalize();
    let mut s = String::with_capacity(64);
    for b in digest.iter() {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Plan {
        Plan {
            header: Header {
                format: FORMAT_VERSION,
                input_hash: "ab".into(),
                arch: "x86_64".into(),
            },
            before_clone: vec![],
            clone_flags: Namespace::Mount.clone_flag() | Namespace::Pid.clone_flag(),
            after_clone: vec![],
            steps: vec![
                Step::Mount {
                    source: Some(CBuf::new("proc").unwrap()),
                    dest: CBuf::new("proc").unwrap(),
                    fstype: Some(CBuf::new("proc").unwrap()),
                    flags: libc::MS_NOSUID,
                    data: None,
                    target: Target::Dir,
                },
                Step::Exec {
                    argv: vec![CBuf::new("sh").unwrap()],
                    env: vec![],
                },
            ],
            rootfs: "/r".into(),
            terminal: false,
            console_size: None,
            cgroups: None,
            seccomp_listener: None,
            hooks: Hooks::default(),
            not_planned: vec![],
            warnings: vec![],
        }
    }

    #[test]
    fn round_trips() {
        let p = sample();
        assert_eq!(Plan::decode(&p.encode()), Ok(p));
    }

    #[test]
    fn rejects_truncated_foreign_and_trailing() {
        let bytes = sample().encode();
        assert_eq!(
            Plan::decode(&bytes[..bytes.len() - 3]),
            Err(DecodeError::Checksum)
        );
        // Sealed right, but no plan inside.
        assert_eq!(
            Plan::decode(&seal(MAGIC, FORMAT_VERSION, b"not postcard")),
            Err(DecodeError::Corrupt)
        );
        let mut foreign = bytes.clone();
        foreign[8] = 99;
        assert_eq!(Plan::decode(&foreign), Err(DecodeError::ForeignVersion(99)));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(Plan::decode(&trailing), Err(DecodeError::Checksum));
        assert_eq!(Plan::decode(b"hello"), Err(DecodeError::BadMagic));
    }

    #[test]
    fn rejects_a_changed_byte() {
        let mut bytes = sample().encode();
        let at = bytes
            .windows(4)
            .position(|w| w == b"proc")
            .expect("a string in the body");
        bytes[at] = b'P';
        assert_eq!(Plan::decode(&bytes), Err(DecodeError::Checksum));
    }

    #[test]
    fn rejects_buffer_without_nul() {
        let mut p = sample();
        p.steps[1] = Step::Exec {
            argv: vec![CBuf(b"sh".to_vec())],
            env: vec![],
        };
        assert_eq!(Plan::decode(&p.encode()), Err(DecodeError::Corrupt));
    }

    #[test]
    fn cbuf_refuses_inner_nul() {
        assert!(CBuf::new("a\0b").is_none());
        assert_eq!(CBuf::new("ab").unwrap().bytes_with_nul(), b"ab\0");
    }

    #[test]
    fn hash_separates_parts() {
        assert_ne!(content_hash(&[b"ab", b"c"]), content_hash(&[b"a", b"bc"]));
        assert_eq!(content_hash(&[b"x"]).len(), 64);
    }
}
