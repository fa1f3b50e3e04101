//! `mounts[]` and `linux.rootfsPropagation`: options parsed into flags, data and attributes; mounts
//! ordered so that parents precede children; the default `/dev/pts` and `/dev/shm`.

use crate::{PlanError, Planner, cbuf, clean_abs, err};
use ferrun_plans::{
    BindFrom, IdMap, MOUNT_ATTR__ATIME, MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NODIRATIME, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NOSYMFOLLOW,
    MOUNT_ATTR_RDONLY, MOUNT_ATTR_RELATIME, MOUNT_ATTR_STRICTATIME, Namespace, Step, Target,
};
use oci_spec::runtime::Spec;

/// What an option does.
enum Opt {
    /// Set (true) or clear (false) `MS_*` flags.
    Flag(bool, u64),
    /// A propagation type (`MS_PRIVATE`, …, maybe with `MS_REC`).
    Propagation(u64),
    /// A recursive attribute: set (true) or clear (false) `MOUNT_ATTR_*` bits.
    Attr(bool, u64),
    /// `tmpcopyup` (runc's and crun's extension): the tmpfs starts with what the directory held.
    CopyUp,
}

/// Every mount option the planner understands (anything else is passed to the filesystem as data).
pub const OPTION_NAMES: &[&str] = &[
    "defaults",
    "tmpcopyup",
    "idmap",
    "ridmap",
    "ro",
    "rw",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "sync",
    "async",
    "dirsync",
    "remount",
    "mand",
    "nomand",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "silent",
    "loud",
    "iversion",
    "noiversion",
    "nosymfollow",
    "symfollow",
    "bind",
    "rbind",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
    "rro",
    "rrw",
    "rnosuid",
    "rsuid",
    "rnodev",
    "rdev",
    "rnoexec",
    "rexec",
    "rnodiratime",
    "rdiratime",
    "rnoatime",
    "rrelatime",
    "ratime",
    "rnorelatime",
    "rnostrictatime",
    "rstrictatime",
    "rnosymfollow",
    "rsymfollow",
];

fn option(name: &str) -> Option<Opt> {
    use libc::*;
    Some(match name {
        "defaults" => Opt::Flag(true, 0),
        "ro" => Opt::Flag(true, MS_RDONLY),
        "rw" => Opt::Flag(false, MS_RDONLY),
        "nosuid" => Opt::Flag(true, MS_NOSUID),
        "suid" => Opt::Flag(false, MS_NOSUID),
        "nodev" => Opt::Flag(true, MS_NODEV),
        "dev" => Opt::Flag(false, MS_NODEV),
        "noexec" => Opt::Flag(true, MS_NOEXEC),
        "exec" => Opt::Flag(false, MS_NOEXEC),
        "sync" => Opt::Flag(true, MS_SYNCHRONOUS),
        "async" => Opt::Flag(false, MS_SYNCHRONOUS),
        "dirsync" => Opt::Flag(true, MS_DIRSYNC),
        "remount" => Opt::Flag(true, MS_REMOUNT),
        "mand" => Opt::Flag(true, MS_MANDLOCK),
        "nomand" => Opt::Flag(false, MS_MANDLOCK),
        "atime" => Opt::Flag(false, MS_NOATIME),
        "noatime" => Opt::Flag(true, MS_NOATIME),
        "diratime" => Opt::Flag(false, MS_NODIRATIME),
        "nodiratime" => Opt::Flag(true, MS_NODIRATIME),
        "relatime" => Opt::Flag(true, MS_RELATIME),
        "norelatime" => Opt::Flag(false, MS_RELATIME),
        "strictatime" => Opt::Flag(true, MS_STRICTATIME),
        "nostrictatime" => Opt::Flag(false, MS_STRICTATIME),
        "lazytime" => Opt::Flag(true, MS_LAZYTIME),
        "nolazytime" => Opt::Flag(false, MS_LAZYTIME),
        "silent" => Opt::Flag(true, MS_SILENT),
        "loud" => Opt::Flag(false, MS_SILENT),
        "iversion" => Opt::Flag(true, MS_I_VERSION),
        "noiversion" => Opt::Flag(false, MS_I_VERSION),
        "nosymfollow" => Opt::Flag(true, MS_NOSYMFOLLOW),
        "symfollow" => Opt::Flag(false, MS_NOSYMFOLLOW),
        "bind" => Opt::Flag(true, MS_BIND),
        "rbind" => Opt::Flag(true, MS_BIND | MS_REC),
        "private" => Opt::Propagation(MS_PRIVATE),
        "rprivate" => Opt::Propagation(MS_PRIVATE | MS_REC),
        "shared" => Opt::Propagation(MS_SHARED),
        "rshared" => Opt::Propagation(MS_SHARED | MS_REC),
        "slave" => Opt::Propagation(MS_SLAVE),
        "rslave" => Opt::Propagation(MS_SLAVE | MS_REC),
        "unbindable" => Opt::Propagation(MS_UNBINDABLE),
        "runbindable" => Opt::Propagation(MS_UNBINDABLE | MS_REC),
        "tmpcopyup" => Opt::CopyUp,
        "rro" => Opt::Attr(true, MOUNT_ATTR_RDONLY),
        "rrw" => Opt::Attr(false, MOUNT_ATTR_RDONLY),
        "rnosuid" => Opt::Attr(true, MOUNT_ATTR_NOSUID),
        "rsuid" => Opt::Attr(false, MOUNT_ATTR_NOSUID),
        "rnodev" => Opt::Attr(true, MOUNT_ATTR_NODEV),
        "rdev" => Opt::Attr(false, MOUNT_ATTR_NODEV),
        "rnoexec" => Opt::Attr(true, MOUNT_ATTR_NOEXEC),
        "rexec" => Opt::Attr(false, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => Opt::Attr(true, MOUNT_ATTR_NODIRATIME),
        "rdiratime" => Opt::Attr(false, MOUNT_ATTR_NODIRATIME),
        "rnoatime" => Opt::Attr(true, MOUNT_ATTR_NOATIME),
        // Back to the default atime mode, as runc reads these.
        "rrelatime" | "ratime" | "rnorelatime" | "rnostrictatime" => {
            Opt::Attr(true, MOUNT_ATTR_RELATIME)
        }
        "rstrictatime" => Opt::Attr(true, MOUNT_ATTR_STRICTATIME),
        "rnosymfollow" => Opt::Attr(true, MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => Opt::Attr(false, MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

/// Flags a bind mount only gets from a second call (the kernel ignores them on `MS_BIND`).
const BIND_ATTR_FLAGS: u64 = libc::MS_RDONLY
    | libc::MS_NOSUID
    | libc::MS_NODEV
    | libc::MS_NOEXEC
    | libc::MS_NOATIME
    | libc::MS_NODIRATIME
    | libc::MS_RELATIME
    | libc::MS_STRICTATIME
    | libc::MS_NOSYMFOLLOW;

/// `MS_*` per-mount flags as `MOUNT_ATTR_*` bits to set, and the atime bits to clear.
fn flags_to_attrs(flags: u64) -> (u64, u64) {
    let mut set = 0;
    for (ms, attr) in [
        (libc::MS_RDONLY, MOUNT_ATTR_RDONLY),
        (libc::MS_NOSUID, MOUNT_ATTR_NOSUID),
        (libc::MS_NODEV, MOUNT_ATTR_NODEV),
        (libc::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
        (libc::MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
        (libc::MS_NOSYMFOLLOW, MOUNT_ATTR_NOSYMFOLLOW),
    ] {
        if flags & ms != 0 {
            set |= attr;
        }
    }
    let atime = if flags & libc::MS_NOATIME != 0 {
        Some(MOUNT_ATTR_NOATIME)
    } else if flags & libc::MS_STRICTATIME != 0 {
        Some(MOUNT_ATTR_STRICTATIME)
    } else if flags & libc::MS_RELATIME != 0 {
        Some(MOUNT_ATTR_RELATIME)
    } else {
        None
    };
    match atime {
        Some(a) => (set | a, MOUNT_ATTR__ATIME),
        None => (set, 0),
    }
}

pub(crate) struct PlannedMounts {
    pub steps: Vec<Step>,
    /// `/dev` is bound from elsewhere: the default devices are not ours to make.
    pub dev_is_bind: bool,
}

/// The files below `/proc` a mount may cover: those lxcfs emulates (runc's list).
const PROC_FILES: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/sys/kernel/ns_last_pid",
    "/proc/sys/crypto/fips_enabled",
];

/// runc's rule: nothing is mounted inside `/proc` but [`PROC_FILES`], and `/proc` itself takes a
/// proc mount or a bind of a procfs root (which the executor checks on the source it opened). The executor judges the destination again
/// once resolved, so a symlink in the image cannot lead a mount there either.
pub(crate) fn check_proc_destination(
    field: &str,
    dest: &str,
    (is_bind, typ): (bool, Option<&str>),
) -> Result<(), PlanError> {
    if dest == "/proc" {
        // A bind's source is judged once resolved: the executor requires a procfs root.
        if !is_bind && typ != Some("proc") {
            return err(
                format!("{field}.destination"),
                "/proc takes a proc mount or a bind of a procfs, nothing else",
            );
        }
        return Ok(());
    }
    if dest.starts_with("/proc/") && !PROC_FILES.contains(&dest) {
        return err(
            format!("{field}.destination"),
            format!(
                "{} cannot be mounted because it is inside /proc (only {} may be)",
                ferrun_plans::clip(dest, 200),
                PROC_FILES.join(", ")
            ),
        );
    }
    Ok(())
}

struct Parsed {
    dest: String,
    steps: Vec<Step>,
}

pub(crate) fn plan_mounts(p: &Planner<'_>) -> Result<PlannedMounts, PlanError> {
    let list = p.spec.mounts().clone().unwrap_or_default();
    let mut parsed = Vec::with_capacity(list.len() + 2);
    let mut dev_is_bind = false;
    let mut dev_tmpfs = None;
    // `linux.mountLabel` becomes a `context=` option of the tmpfs and devpts mounts
    // (as runc's label code does); without SELinux it is refused, not dropped.
    let mount_label = p
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.mount_label().clone())
        .filter(|l| !l.is_empty());
    if let Some(l) = &mount_label {
        if !p.input.host.selinux {
            return err(
                "linux.mountLabel",
                format!(
                    "{:?} cannot be applied: SELinux is not enabled on this host",
                    ferrun_plans::clip(l, 200)
                ),
            );
        }
        if l.contains('"') || l.chars().any(|c| c.is_control()) || l.len() > 4000 {
            return err("linux.mountLabel", "must be one line without quotes");
        }
    }
    let context = mount_label.map(|l| format!("context=\"{l}\""));
    for (i, m) in list.iter().enumerate() {
        let field = format!("mounts[{i}]");
        let dest = m.destination().to_str().unwrap_or("");
        if !dest.starts_with('/') {
            return err(format!("{field}.destination"), "must be absolute");
        }
        let dest = clean_abs(dest);
        if dest == "/" {
            return err(
                format!("{field}.destination"),
                "must not be / (that is root.path)",
            );
        }
        let options = m.options().clone().unwrap_or_default();
        let (mut flags, mut propagation, mut attr_set, mut attr_clear, mut data) =
            (0u64, 0u64, 0u64, 0u64, Vec::new());
        let mut copy_up = false;
        let mut idmap: Option<(bool, usize)> = None;
        for (j, o) in options.iter().enumerate() {
            match option(o) {
                Some(Opt::Flag(true, f)) => flags |= f,
                Some(Opt::Flag(false, f)) => flags &= !f,
                Some(Opt::Propagation(f)) => propagation = f,
                Some(Opt::Attr(true, a))
                    if a & MOUNT_ATTR__ATIME != 0 || a == MOUNT_ATTR_RELATIME =>
                {
                    // The atime mode is one value: the kernel wants the whole mask cleared.
                    attr_set = (attr_set & !MOUNT_ATTR__ATIME) | a;
                    attr_clear |= MOUNT_ATTR__ATIME;
                }
                Some(Opt::Attr(true, a)) => {
                    attr_set |= a;
                    attr_clear &= !a;
                }
                Some(Opt::Attr(false, a)) => {
                    attr_clear |= a;
                    attr_set &= !a;
                }
                Some(Opt::CopyUp) => copy_up = true,
                None if o == "idmap" || o == "ridmap" => idmap = Some((o == "ridmap", j)),
                None if o.starts_with("idmap") || o.starts_with("ridmap") => {
                    return err(
                        format!("{field}.options[{j}]"),
                        "only plain idmap and ridmap are supported: give the maps in \
                         uidMappings and gidMappings",
                    );
                }
                None if o.is_empty() || o.contains(',') => {
                    return err(
                        format!("{field}.options[{j}]"),
                        "must be one non-empty option",
                    );
                }
                None => data.push(o.as_str()),
            }
        }
        let typ = m.typ().as_deref().filter(|t| !t.is_empty() && *t != "none");
        let is_bind = flags & libc::MS_BIND != 0 || typ == Some("bind");
        if let Some(ctx) = &context
            && !is_bind
            // As runc: every new filesystem but those whose labels come from elsewhere (proc,
            // sysfs, cgroup) and mqueue, whose superblock belongs to the IPC namespace and
            // refuses the option (EINVAL).
            && !matches!(
                typ,
                None | Some("proc" | "sysfs" | "cgroup" | "cgroup2" | "mqueue")
            )
            && !data.iter().any(|d| d.starts_with("context="))
        {
            data.push(ctx.as_str());
        }
        let source = m
            .source()
            .as_ref()
            .and_then(|s| s.to_str())
            .filter(|s| !s.is_empty());
        let data = if data.is_empty() {
            None
        } else {
            Some(cbuf(&format!("{field}.options"), &data.join(","))?)
        };
        check_proc_destination(&field, &dest, (is_bind, typ))?;
        let dest_buf = cbuf(&format!("{field}.destination"), &dest)?;
        let mut steps = Vec::new();
        if is_bind {
            let Some(source) = source else {
                return err(format!("{field}.source"), "required for a bind mount");
            };
            let source = if source.starts_with('/') {
                clean_abs(source)
            } else {
                clean_abs(&p.input.bundle.join(source).to_string_lossy())
            };
            if dest == "/dev" {
                dev_is_bind = true;
            }
            // Bind mounts take no data; the kernel ignores it.
            let _ = data;
            let from = bind_from(p, m, &field, idmap)?;
            let (set, clear) = flags_to_attrs(flags & BIND_ATTR_FLAGS);
            // One step: the attributes are set on the detached copy before it is attached.
            steps.push(Step::BindMount {
                source: cbuf(&format!("{field}.source"), &source)?,
                dest: dest_buf.clone(),
                recursive: flags & libc::MS_REC != 0,
                set,
                clear,
                rset: attr_set,
                rclear: attr_clear,
                from,
            });
            (attr_set, attr_clear) = (0, 0);
        } else {
            if let Some((_, j)) = idmap {
                return err(
                    format!("{field}.options[{j}]"),
                    "id-mapped mounts are for bind mounts only",
                );
            }
            if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
                return err(
                    format!("{field}.uidMappings"),
                    "id-mapped mounts are for bind mounts only",
                );
            }
            let Some(typ) = typ else {
                return err(
                    format!("{field}.type"),
                    "required unless the options say bind or rbind",
                );
            };
            if typ == "cgroup" || typ == "cgroup2" {
                let steps = match &p.cgroups {
                    Some(c) => cgroup_mount(c, &dest, flags, &field)?,
                    // Listed by the caller as not planned.
                    None => vec![],
                };
                parsed.push(Parsed { dest, steps });
                continue;
            }
            if dest == "/dev" && typ == "tmpfs" {
                dev_tmpfs = Some(parsed.len());
            }
            if copy_up && typ != "tmpfs" {
                return err(
                    format!("{field}.options"),
                    "tmpcopyup is for tmpfs mounts only",
                );
            }
            if copy_up {
                steps.push(Step::TmpfsCopyUp {
                    dest: dest_buf.clone(),
                    flags,
                    data,
                });
            } else if flags & libc::MS_REMOUNT != 0 {
                steps.push(Step::Remount {
                    dest: dest_buf.clone(),
                    flags: flags & !libc::MS_REMOUNT,
                });
            } else if typ == "sysfs"
                && ((p.has_ns(Namespace::User) && !p.new_ns(Namespace::Network))
                    || (p.input.host.rootless && !p.has_ns(Namespace::Network)))
            {
                // The kernel mounts sysfs only for the owner of the network namespace: in a
                // new user namespace without a network namespace of its own, or rootless in
                // the host's, the host's /sys is bound instead, read-only whatever the options
                // say (as crun does). A rootless caller's joined one (rootless podman's) is its
                // own: there sysfs is mounted.
                let (set, clear) = flags_to_attrs(flags & BIND_ATTR_FLAGS);
                steps.push(Step::BindMount {
                    source: cbuf(&format!("{field}.source"), "/sys")?,
                    dest: dest_buf.clone(),
                    recursive: true,
                    set: set | MOUNT_ATTR_RDONLY,
                    clear: clear & !MOUNT_ATTR_RDONLY,
                    rset: attr_set | MOUNT_ATTR_RDONLY,
                    rclear: attr_clear & !MOUNT_ATTR_RDONLY,
                    from: BindFrom::Child,
                });
                (attr_set, attr_clear) = (0, 0);
            } else {
                steps.push(Step::Mount {
                    source: Some(cbuf(&format!("{field}.source"), source.unwrap_or(typ))?),
                    dest: dest_buf.clone(),
                    fstype: Some(cbuf(&format!("{field}.type"), typ)?),
                    flags,
                    data,
                    target: if matches!(typ, "proc" | "sysfs") {
                        Target::OrdinaryDir
                    } else {
                        Target::Dir
                    },
                });
            }
        }
        if propagation != 0 {
            steps.push(Step::Propagation {
                dest: dest_buf.clone(),
                flags: propagation,
            });
        }
        if attr_set != 0 || attr_clear != 0 {
            steps.push(Step::SetAttr {
                dest: dest_buf,
                recursive: true,
                set: attr_set,
                clear: attr_clear,
            });
        }
        parsed.push(Parsed { dest, steps });
    }
    // The runtime spec: mounts in the listed order. Defaults go right after a /dev tmpfs.
    if let Some(dev) = dev_tmpfs {
        defaults(&mut parsed, dev + 1, context.as_deref())?;
    }
    let steps = parsed.into_iter().flat_map(|m| m.steps).collect();
    Ok(PlannedMounts { steps, dev_is_bind })
}

/// `/dev/pts` and `/dev/shm` under the config's `/dev` tmpfs when the config has none.
fn defaults(parsed: &mut Vec<Parsed>, at: usize, context: Option<&str>) -> Result<(), PlanError> {
    let defaults = [
        (
            "/dev/pts",
            "devpts",
            libc::MS_NOSUID | libc::MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620,gid=5",
        ),
        (
            "/dev/shm",
            "tmpfs",
            libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_NODEV,
            "mode=1777,size=65536k",
        ),
    ];
    for (dest, typ, flags, data) in defaults {
        if parsed.iter().any(|m| m.dest == dest) {
            continue;
        }
        parsed.insert(
            at.min(parsed.len()),
            Parsed {
                dest: dest.into(),
                steps: vec![Step::Mount {
                    source: Some(cbuf("", typ)?),
                    dest: cbuf("", dest)?,
                    fstype: Some(cbuf("", typ)?),
                    flags,
                    data: Some(cbuf(
                        "linux.mountLabel",
                        &match context {
                            Some(c) => format!("{data},{c}"),
                            None => data.to_string(),
                        },
                    )?),
                    target: Target::Dir,
                }],
            },
        );
    }
    Ok(())
}

/// Who opens a bind's source: the parent for an id-mapped mount (`idmap`, `ridmap`, or the
/// mount's own maps; without those the container's user namespace's maps, as runc does); in
/// a new user namespace made by root, the container process, else the parent's copy where its
/// root may not reach the source; otherwise the container process.
fn bind_from(
    p: &Planner<'_>,
    m: &oci_spec::runtime::Mount,
    field: &str,
    option: Option<(bool, usize)>,
) -> Result<BindFrom, PlanError> {
    let (uids, gids) = (m.uid_mappings().as_ref(), m.gid_mappings().as_ref());
    let own_maps = uids.is_some() || gids.is_some();
    if option.is_none() && !own_maps {
        return Ok(if p.new_ns(Namespace::User) && !p.input.host.rootless {
            BindFrom::ChildElseParent
        } else {
            BindFrom::Child
        });
    }
    if p.input.host.rootless {
        return err(
            field,
            "id-mapped mounts cannot be made by a rootless runtime",
        );
    }
    let linux = p.spec.linux().as_ref();
    let (uids, gids) = match (uids, gids) {
        (Some(u), Some(g)) => (u.clone(), g.clone()),
        (None, None) if p.new_ns(Namespace::User) => (
            linux
                .and_then(|l| l.uid_mappings().clone())
                .unwrap_or_default(),
            linux
                .and_then(|l| l.gid_mappings().clone())
                .unwrap_or_default(),
        ),
        (None, None) => {
            return err(
                field,
                "an id-mapped mount needs uidMappings and gidMappings, or a new user \
                 namespace whose maps it takes",
            );
        }
        (Some(_), None) => {
            return err(format!("{field}.gidMappings"), "required with uidMappings");
        }
        (None, Some(_)) => {
            return err(format!("{field}.uidMappings"), "required with gidMappings");
        }
    };
    if uids.is_empty() || gids.is_empty() {
        return err(
            format!("{field}.uidMappings"),
            "an id-mapped mount needs at least one uid and one gid mapping",
        );
    }
    Ok(BindFrom::Parent {
        idmap: IdMap {
            uid_map: crate::id_map(&format!("{field}.uidMappings"), &uids, 0)?,
            gid_map: crate::id_map(&format!("{field}.gidMappings"), &gids, 0)?,
            recursive: option.is_some_and(|(recursive, _)| recursive),
        },
    })
}

/// A `cgroup` mount shows the container's own cgroups: on a cgroup2-only host its cgroup2
/// directory bound on `dest`; otherwise a tmpfs holding one bind per hierarchy (named like the
/// host's mount points, with links for co-mounted controllers such as `cpu -> cpu,cpuacct`).
fn cgroup_mount(
    c: &ferrun_plans::Cgroups,
    dest: &str,
    flags: u64,
    field: &str,
) -> Result<Vec<Step>, PlanError> {
    let (set, _) = flags_to_attrs(flags & BIND_ATTR_FLAGS);
    let set = set & !MOUNT_ATTR__ATIME;
    let buf = |p: &str| cbuf(&format!("{field}.destination"), p);
    if let [h] = c.hierarchies.as_slice()
        && h.v2
    {
        return Ok(vec![Step::CgroupBind {
            hierarchy: 0,
            dest: buf(dest)?,
            set,
        }]);
    }
    let mut steps = vec![Step::Mount {
        source: Some(buf("tmpfs")?),
        dest: buf(dest)?,
        fstype: Some(buf("tmpfs")?),
        flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        data: Some(buf("mode=755")?),
        target: Target::Dir,
    }];
    for (i, h) in c.hierarchies.iter().enumerate() {
        let name = h.mount.rsplit('/').next().unwrap_or(&h.name);
        steps.push(Step::CgroupBind {
            hierarchy: i as u8,
            dest: buf(&format!("{dest}/{name}"))?,
            set,
        });
        if name.contains(',') {
            for part in name.split(',') {
                steps.push(Step::Symlink {
                    target: buf(name)?,
                    link: buf(&format!("{dest}/{part}"))?,
                });
            }
        }
    }
    if flags & libc::MS_RDONLY != 0 {
        steps.push(Step::SetAttr {
            dest: buf(dest)?,
            recursive: false,
            set: MOUNT_ATTR_RDONLY,
            clear: 0,
        });
    }
    Ok(steps)
}

/// Indices of the `cgroup` mounts.
pub(crate) fn cgroup_mounts(spec: &Spec) -> Vec<usize> {
    let list = spec.mounts().clone().unwrap_or_default();
    list.iter()
        .enumerate()
        .filter(|(_, m)| matches!(m.typ().as_deref(), Some("cgroup") | Some("cgroup2")))
        .map(|(i, _)| i)
        .collect()
}

/// `linux.rootfsPropagation` as flags.
pub(crate) fn root_propagation(spec: &Spec) -> Result<Option<u64>, PlanError> {
    let Some(p) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
    else {
        return Ok(None);
    };
    if p.is_empty() {
        return Ok(None);
    }
    match option(&p) {
        Some(Opt::Propagation(f)) => Ok(Some(f)),
        _ => err(
            "linux.rootfsPropagation",
            format!(
                "{p:?} is not a propagation type (private, rprivate, slave, rslave, shared, rshared, unbindable, runbindable)"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_listed_option_is_understood() {
        for name in super::OPTION_NAMES {
            // idmap and ridmap are read by `bind_from`: they make the parent open the source.
            let id_mapped = matches!(*name, "idmap" | "ridmap");
            assert!(super::option(name).is_some() || id_mapped, "{name}");
        }
        assert!(super::option("size=64k").is_none());
    }
}
