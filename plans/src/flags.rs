//! Names of the numeric flags a plan holds, for the listing and for the planner's parsing.

/// `MS_*` mount flags by name, in listing order.
pub const MOUNT_FLAGS: &[(u64, &str)] = &[
    (libc::MS_RDONLY, "MS_RDONLY"),
    (libc::MS_NOSUID, "MS_NOSUID"),
    (libc::MS_NODEV, "MS_NODEV"),
    (libc::MS_NOEXEC, "MS_NOEXEC"),
    (libc::MS_SYNCHRONOUS, "MS_SYNCHRONOUS"),
    (libc::MS_REMOUNT, "MS_REMOUNT"),
    (libc::MS_MANDLOCK, "MS_MANDLOCK"),
    (libc::MS_DIRSYNC, "MS_DIRSYNC"),
    (libc::MS_NOSYMFOLLOW, "MS_NOSYMFOLLOW"),
    (libc::MS_NOATIME, "MS_NOATIME"),
    (libc::MS_NODIRATIME, "MS_NODIRATIME"),
    (libc::MS_BIND, "MS_BIND"),
    (libc::MS_MOVE, "MS_MOVE"),
    (libc::MS_REC, "MS_REC"),
    (libc::MS_SILENT, "MS_SILENT"),
    (libc::MS_UNBINDABLE, "MS_UNBINDABLE"),
    (libc::MS_PRIVATE, "MS_PRIVATE"),
    (libc::MS_SLAVE, "MS_SLAVE"),
    (libc::MS_SHARED, "MS_SHARED"),
    (libc::MS_RELATIME, "MS_RELATIME"),
    (libc::MS_I_VERSION, "MS_I_VERSION"),
    (libc::MS_STRICTATIME, "MS_STRICTATIME"),
    (libc::MS_LAZYTIME, "MS_LAZYTIME"),
];

/// `MOUNT_ATTR_*` bits for `mount_setattr`.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

const MOUNT_ATTRS: &[(u64, &str)] = &[
    (MOUNT_ATTR_RDONLY, "RDONLY"),
    (MOUNT_ATTR_NOSUID, "NOSUID"),
    (MOUNT_ATTR_NODEV, "NODEV"),
    (MOUNT_ATTR_NOEXEC, "NOEXEC"),
    (MOUNT_ATTR_NOATIME, "NOATIME"),
    (MOUNT_ATTR_STRICTATIME, "STRICTATIME"),
    (MOUNT_ATTR__ATIME, "ATIME_MASK"),
    (MOUNT_ATTR_NODIRATIME, "NODIRATIME"),
    (MOUNT_ATTR_NOSYMFOLLOW, "NOSYMFOLLOW"),
];

/// Capability names, indexed by number (`CAP_CHOWN` is 0).
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// `RLIMIT_*` names by resource number.
pub const RLIMITS: &[&str] = &[
    "RLIMIT_CPU",
    "RLIMIT_FSIZE",
    "RLIMIT_DATA",
    "RLIMIT_STACK",
    "RLIMIT_CORE",
    "RLIMIT_RSS",
    "RLIMIT_NPROC",
    "RLIMIT_NOFILE",
    "RLIMIT_MEMLOCK",
    "RLIMIT_AS",
    "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
];

fn names(bits: u64, table: &[(u64, &str)]) -> String {
    let mut out = Vec::new();
    let mut rest = bits;
    for &(bit, name) in table {
        if bit != 0 && bits & bit == bit {
            out.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        out.push(format!("{rest:#x}"));
    }
    if out.is_empty() {
        "0".to_string()
    } else {
        out.join("|")
    }
}

/// `MS_NOSUID|MS_NODEV`, or `0`.
pub fn mount_flag_names(flags: u64) -> String {
    names(flags, MOUNT_FLAGS)
}

/// `RDONLY|NOSUID`, or `0`.
pub fn mount_attr_names(attrs: u64) -> String {
    names(attrs, MOUNT_ATTRS)
}

/// `CAP_CHOWN,CAP_KILL`, or `none`.
pub fn cap_names(mask: u64) -> String {
    let v: Vec<String> = (0..64)
        .filter(|b| mask & (1u64 << b) != 0)
        .map(|b| {
            CAPABILITIES
                .get(b)
                .map_or_else(|| format!("cap{b}"), |s| s.to_string())
        })
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(",")
    }
}

/// `CLONE_NEWNS|CLONE_NEWPID`, or `0`.
pub fn clone_flag_names(flags: u64) -> String {
    let table: Vec<(u64, &str)> = crate::Namespace::ALL
        .iter()
        .map(|ns| {
            (
                ns.clone_flag(),
                match ns {
                    crate::Namespace::User => "CLONE_NEWUSER",
                    crate::Namespace::Mount => "CLONE_NEWNS",
                    crate::Namespace::Pid => "CLONE_NEWPID",
                    crate::Namespace::Network => "CLONE_NEWNET",
                    crate::Namespace::Ipc => "CLONE_NEWIPC",
                    crate::Namespace::Uts => "CLONE_NEWUTS",
                    crate::Namespace::Cgroup => "CLONE_NEWCGROUP",
                    crate::Namespace::Time => "CLONE_NEWTIME",
                },
            )
        })
        .collect();
    names(flags, &table)
}
