//! The human-readable listing of a plan: one numbered line per step, flags by name.

use crate::flags::{RLIMITS, cap_names, clone_flag_names, mount_attr_names, mount_flag_names};
use crate::{
    BindFrom, CBuf, HostStep, IOPRIO_CLASSES, IdMapKind, MEMPOLICY_FLAGS, MEMPOLICY_MODES, Plan,
    SCHED_FLAGS, SCHED_POLICIES, Step, Target, mask_bit_list,
};
use std::fmt::{self, Display, Formatter};

fn opt(b: &Option<CBuf>) -> String {
    match b {
        Some(b) => format!("{:?}", b.text()),
        None => "NULL".into(),
    }
}

impl Display for HostStep {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            HostStep::OpenNamespace { slot, ns, path } => {
                write!(
                    f,
                    "open {} namespace {} as slot {slot}",
                    ns.oci_name(),
                    path.text()
                )
            }
            HostStep::JoinBeforeClone { ns, path } => {
                write!(
                    f,
                    "setns {} namespace {} before clone (the clone is born in it)",
                    ns.oci_name(),
                    path.text()
                )
            }
            HostStep::WriteIdMap { kind, map } => {
                let file = match kind {
                    IdMapKind::Uid => "uid_map",
                    IdMapKind::Gid => "gid_map",
                };
                write!(f, "write /proc/<pid>/{file} {:?}", map.text())
            }
            HostStep::IdMapHelper { kind, map } => {
                let helper = match kind {
                    IdMapKind::Uid => "newuidmap",
                    IdMapKind::Gid => "newgidmap",
                };
                write!(
                    f,
                    "{helper} <pid> {}",
                    map.text().split_whitespace().collect::<Vec<_>>().join(" ")
                )
            }
            HostStep::DenySetgroups => write!(f, "write /proc/<pid>/setgroups \"deny\""),
            HostStep::OomScoreAdj { value } => {
                write!(f, "write /proc/<pid>/oom_score_adj {}", value.text())
            }
            HostStep::Release => write!(f, "release the container process (id maps written)"),
            HostStep::TimeNamespace { offsets } => write!(
                f,
                "unshare a time namespace for the clone, write its timens_offsets {:?}",
                offsets.text()
            ),
            HostStep::NetDevices { devices } => {
                let moves: Vec<String> = devices
                    .iter()
                    .map(|(host, name)| format!("{} as {}", host.text(), name.text()))
                    .collect();
                write!(
                    f,
                    "move network devices into the container: {} (permanent global addresses \
                     kept, set up)",
                    moves.join(", ")
                )
            }
            HostStep::LeaveTimeNamespace => {
                write!(f, "setns back to our own time namespace")
            }
            HostStep::CpuAffinity { cpus } => {
                write!(
                    f,
                    "sched_setaffinity of the parent: cpus {}",
                    mask_bit_list(cpus)
                )
            }
            HostStep::JoinContainer { flags } => write!(
                f,
                "setns container pidfd {} before clone",
                clone_flag_names(*flags)
            ),
            HostStep::CgroupCreate => write!(f, "cgroup: create the container's cgroup"),
            HostStep::OpenMountTrees => write!(
                f,
                "open the mounts the container takes from the parent (binds, device nodes)"
            ),
            HostStep::StartScope => write!(
                f,
                "cgroup: systemd StartTransientUnit of the scope with the container's pid, wait for the job"
            ),
            HostStep::CgroupWrite(w) => write!(
                f,
                "cgroup: write {:?} to {}#{} ({})",
                w.value, w.file, w.hierarchy, w.field
            ),
            HostStep::CgroupDevices { hierarchy, program } => write!(
                f,
                "cgroup: attach a device program of {} instructions to #{hierarchy}",
                program.len() / 8
            ),
        }
    }
}

impl Display for Step {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Step::NotDumpable => write!(f, "prctl PR_SET_DUMPABLE 0"),
            Step::LoopbackUp => write!(f, "bring lo up (SIOCSIFFLAGS IFF_UP)"),
            Step::SetNs { slot, ns } => write!(f, "setns slot {slot} ({})", ns.oci_name()),
            Step::WaitParent => write!(f, "wait for the parent (id maps)"),
            Step::TmpfsCopyUp { dest, flags, data } => write!(
                f,
                "mount tmpfs on {} flags {} data {}, copying up what it held",
                dest.text(),
                mount_flag_names(*flags),
                opt(data)
            ),
            Step::AwaitHooks => write!(
                f,
                "report the runtime environment made; wait for the prestart, createRuntime and createContainer hooks"
            ),
            Step::SetNsContainer { flags } => {
                write!(f, "setns container pidfd {}", clone_flag_names(*flags))
            }
            Step::OpenRoot => write!(f, "open / as the root paths resolve in"),
            Step::JoinCgroup { hierarchy } => {
                write!(
                    f,
                    "join own cgroup of #{hierarchy} (write 0 to its tasks file)"
                )
            }
            Step::CgroupBind {
                hierarchy,
                dest,
                set,
            } => write!(
                f,
                "bind own cgroup of #{hierarchy} on {} attrs {}",
                dest.text(),
                mount_attr_names(*set)
            ),
            Step::Unshare { flags } => write!(f, "unshare {}", clone_flag_names(*flags)),
            Step::BecomeNsRoot => {
                write!(f, "setresgid 0, setresuid 0 (root of the user namespace)")
            }
            Step::RootPropagation { flags } => {
                write!(f, "mount propagation of / {}", mount_flag_names(*flags))
            }
            Step::BindRootfs { path } => {
                write!(f, "bind rootfs {} on itself, open it", path.text())
            }
            Step::Mount {
                source,
                dest,
                fstype,
                flags,
                data,
                target,
            } => {
                write!(
                    f,
                    "mount {} on {} type {} flags {} data {}",
                    opt(source),
                    dest.text(),
                    fstype
                        .as_ref()
                        .map_or("NULL".into(), |t| t.text().into_owned()),
                    mount_flag_names(*flags),
                    opt(data)
                )?;
                match target {
                    Target::LikeSource => write!(f, " (target like source)"),
                    Target::OrdinaryDir => write!(f, " (on a directory, never a symlink)"),
                    Target::Dir => Ok(()),
                }
            }
            Step::BindMount {
                source,
                dest,
                recursive,
                set,
                clear,
                rset,
                rclear,
                from,
            } => {
                write!(
                    f,
                    "bind {}{} on {}",
                    if *recursive { "recursively " } else { "" },
                    source.text(),
                    dest.text()
                )?;
                match from {
                    BindFrom::Child => {}
                    BindFrom::Parent { idmap: m } => {
                        let map = |b: &CBuf| b.text().trim().replace('\n', ", ");
                        write!(
                            f,
                            " (opened by the parent, {}id-mapped uid [{}] gid [{}])",
                            if m.recursive { "recursively " } else { "" },
                            map(&m.uid_map),
                            map(&m.gid_map)
                        )?;
                    }
                    BindFrom::ChildElseParent => write!(
                        f,
                        " (else the parent's copy, if the source is out of reach)"
                    )?,
                }
                if set | clear != 0 {
                    write!(
                        f,
                        " set {} clear {}",
                        mount_attr_names(*set),
                        mount_attr_names(*clear)
                    )?;
                }
                if rset | rclear != 0 {
                    write!(
                        f,
                        " recursive set {} clear {}",
                        mount_attr_names(*rset),
                        mount_attr_names(*rclear)
                    )?;
                }
                Ok(())
            }
            Step::Remount { dest, flags } => {
                write!(
                    f,
                    "remount {} flags {}",
                    dest.text(),
                    mount_flag_names(*flags)
                )
            }
            Step::Propagation { dest, flags } => {
                write!(
                    f,
                    "mount propagation of {} {}",
                    dest.text(),
                    mount_flag_names(*flags)
                )
            }
            Step::SetAttr {
                dest,
                recursive,
                set,
                clear,
            } => write!(
                f,
                "mount_setattr {}{} set {} clear {}",
                dest.text(),
                if *recursive { " recursive" } else { "" },
                mount_attr_names(*set),
                mount_attr_names(*clear)
            ),
            Step::MkNod(n) => write!(f, "mknod {} {n}", n.dest.text()),
            Step::AttachDevice(n) => write!(f, "attach the parent's {n} on {}", n.dest.text()),
            Step::BindDevice { source, dest } => {
                write!(
                    f,
                    "bind device {} on {} attrs NOSUID|NOEXEC",
                    source.text(),
                    dest.text()
                )
            }
            Step::Symlink { target, link } => {
                write!(f, "symlink {} -> {}", link.text(), target.text())
            }
            Step::PivotRoot => write!(f, "pivot_root into the rootfs, detach the old root"),
            Step::Chroot => write!(f, "chroot into the rootfs (--no-pivot)"),
            Step::MaskPath { path } => write!(f, "mask {}", path.text()),
            Step::ReadonlyPath { path } => write!(f, "read-only {}", path.text()),
            Step::ReadonlyRoot => write!(f, "remount / read-only"),
            Step::OpenProcfs => write!(f, "open a procfs of our own"),
            Step::LsmExec { lsm, value } => match lsm {
                crate::Lsm::AppArmor => write!(
                    f,
                    "AppArmor: write {:?} to thread-self/attr/apparmor/exec",
                    value.text()
                ),
                crate::Lsm::SELinux => {
                    write!(
                        f,
                        "SELinux: write {:?} to thread-self/attr/exec",
                        value.text()
                    )
                }
            },
            Step::CloseStrayFds => write!(
                f,
                "close every fd but stdio, preserved ones and the sync and start fds"
            ),
            Step::Sysctl { path, value } => {
                write!(f, "sysctl {} = {:?}", path.text(), value.text())
            }
            Step::Hostname { name } => write!(f, "sethostname {:?}", name.text()),
            Step::Domainname { name } => write!(f, "setdomainname {:?}", name.text()),
            Step::Terminal => write!(
                f,
                "open the pty, send its master, make it the controlling tty"
            ),
            Step::NewSession => write!(f, "setsid: a session of its own"),
            Step::ReopenDevNull => write!(f, "stdio on /dev/null: the container's /dev/null"),
            Step::Rlimit {
                resource,
                soft,
                hard,
            } => {
                let name = RLIMITS
                    .get(*resource as usize)
                    .copied()
                    .unwrap_or("RLIMIT_?");
                let show = |v: u64| {
                    if v == u64::MAX {
                        "unlimited".into()
                    } else {
                        v.to_string()
                    }
                };
                write!(
                    f,
                    "setrlimit {name} soft {} hard {}",
                    show(*soft),
                    show(*hard)
                )
            }
            Step::Scheduler(a) => {
                let policy = SCHED_POLICIES
                    .get(a.policy as usize)
                    .copied()
                    .unwrap_or("SCHED_?");
                let flags: Vec<&str> = SCHED_FLAGS
                    .iter()
                    .enumerate()
                    .filter(|(bit, _)| a.flags & (1 << bit) != 0)
                    .map(|(_, n)| *n)
                    .collect();
                write!(
                    f,
                    "sched_setattr {policy} nice {} priority {} flags [{}]",
                    a.nice,
                    a.priority,
                    flags.join(" ")
                )?;
                if a.runtime != 0 || a.deadline != 0 || a.period != 0 {
                    write!(
                        f,
                        " runtime {} deadline {} period {} ns",
                        a.runtime, a.deadline, a.period
                    )?;
                }
                Ok(())
            }
            Step::IoPriority { class, level } => {
                let name = IOPRIO_CLASSES
                    .get(*class as usize)
                    .copied()
                    .unwrap_or("IOPRIO_CLASS_?");
                write!(f, "ioprio_set {name} level {level}")
            }
            Step::Personality { persona } => {
                let name = if *persona == 0x0008 {
                    "PER_LINUX32"
                } else {
                    "PER_LINUX"
                };
                write!(f, "personality {name} ({persona:#06x})")
            }
            Step::MemoryPolicy { mode, flags, nodes } => {
                let name = usize::try_from(*mode)
                    .ok()
                    .and_then(|m| MEMPOLICY_MODES.get(m))
                    .copied()
                    .unwrap_or("MPOL_?");
                let names: Vec<&str> = MEMPOLICY_FLAGS
                    .iter()
                    .filter(|(_, bit)| flags & bit != 0)
                    .map(|(n, _)| *n)
                    .collect();
                write!(
                    f,
                    "set_mempolicy {name} flags [{}] nodes [{}]",
                    names.join(" "),
                    mask_bit_list(nodes)
                )
            }
            Step::CpuAffinity { cpus } => {
                write!(f, "sched_setaffinity cpus {}", mask_bit_list(cpus))
            }
            Step::Chdir { path } => write!(f, "chdir {}", path.text()),
            Step::Console => write!(f, "bind the pty onto /dev/console"),
            Step::ChownStdio { uid } => {
                write!(f, "fchown stdio pipes and files to uid {uid}")
            }
            Step::MkdirCwd { path } => {
                write!(f, "mkdir -p {} (the working directory)", path.text())
            }
            Step::HomeFromPasswd { uid } => {
                write!(
                    f,
                    "HOME from /etc/passwd for uid {uid} (/ without an entry)"
                )
            }
            Step::ResolveExec { name, candidates } => {
                let c: Vec<_> = candidates.iter().map(|c| c.text().into_owned()).collect();
                write!(f, "find executable {:?} in {}", name.text(), c.join(" "))
            }
            Step::DropBounding { keep, last_cap } => {
                write!(
                    f,
                    "bounding set keeps {} (drop the rest up to {last_cap})",
                    cap_names(*keep)
                )
            }
            Step::KeepCaps { on } => write!(f, "prctl PR_SET_KEEPCAPS {}", u8::from(*on)),
            Step::SetGroups { gids } => write!(f, "setgroups {gids:?}"),
            Step::SetGid { gid } => write!(f, "setresgid {gid}"),
            Step::SetUid { uid } => write!(f, "setresuid {uid}"),
            Step::SetCaps {
                effective,
                permitted,
                inheritable,
            } => write!(
                f,
                "capset effective {} permitted {} inheritable {}",
                cap_names(*effective),
                cap_names(*permitted),
                cap_names(*inheritable)
            ),
            Step::Ambient { caps } => write!(f, "ambient raise {}", cap_names(*caps)),
            Step::NoNewPrivs => write!(f, "prctl PR_SET_NO_NEW_PRIVS 1"),
            Step::Seccomp { flags, bpf, hash } => {
                let names: Vec<&str> = [
                    (1, "TSYNC"),
                    (2, "LOG"),
                    (4, "SPEC_ALLOW"),
                    (8, "NEW_LISTENER"),
                    (32, "WAIT_KILLABLE_RECV"),
                ]
                .iter()
                .filter(|(bit, _)| flags & bit != 0)
                .map(|(_, n)| *n)
                .collect();
                write!(
                    f,
                    "seccomp filter {} ({} instructions) flags {}",
                    hash.get(..16).unwrap_or(hash),
                    bpf.len() / 8,
                    if names.is_empty() {
                        "0".to_string()
                    } else {
                        names.join("|")
                    }
                )
            }
            Step::Umask { mask } => write!(f, "umask {mask:04o}"),
            Step::Ready => write!(f, "tell the parent: ready"),
            Step::WaitStart => write!(f, "wait for start"),
            Step::CloseFds => write!(f, "close-on-exec every fd but stdio and preserved ones"),
            Step::Exec { argv, env } => {
                let a: Vec<_> = argv.iter().map(|c| format!("{:?}", c.text())).collect();
                write!(f, "execve argv [{}] env {} vars", a.join(", "), env.len())
            }
        }
    }
}

impl Display for Plan {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "plan format {} arch {} inputs {}",
            self.header.format, self.header.arch, self.header.input_hash
        )?;
        writeln!(
            f,
            "rootfs {}{}",
            self.rootfs,
            if self.terminal { " terminal" } else { "" }
        )?;
        if let Some(c) = &self.cgroups {
            writeln!(f, "cgroup path {}", c.path)?;
            for (i, h) in c.hierarchies.iter().enumerate() {
                writeln!(f, "      #{i} {} at {}", h.name, h.mount)?;
            }
            if c.shared {
                writeln!(f, "      may share an existing cgroup")?;
            }
            if c.optional {
                writeln!(f, "      rootless: skipped if not delegated")?;
            }
            if let Some(i) = c.clone_into {
                writeln!(f, "      cloned into #{i}")?;
            }
            if let Some(s) = &c.systemd {
                writeln!(f, "      systemd scope {} in {}", s.unit, s.slice)?;
                if !s.properties.is_empty() {
                    let props: Vec<String> = s.properties.iter().map(|p| p.to_string()).collect();
                    writeln!(f, "      unit properties {}", props.join(" "))?;
                }
            }
            if !c.v2_controllers.is_empty() {
                writeln!(
                    f,
                    "      cgroup2 controllers {}",
                    c.v2_controllers.join(" ")
                )?;
            }
        }
        for (phase, hooks) in self.hooks.phases() {
            for h in hooks {
                write!(f, "hook {phase} {} args {:?}", h.path, h.args)?;
                if let Some(t) = h.timeout {
                    write!(f, " timeout {t}s")?;
                }
                writeln!(f)?;
            }
        }
        if let Some(l) = &self.seccomp_listener {
            writeln!(
                f,
                "seccomp listener fd goes to {} (metadata {:?})",
                l.path, l.metadata
            )?;
        }
        let mut n = 0;
        let mut line = |f: &mut Formatter<'_>, text: &dyn Display| {
            n += 1;
            writeln!(f, "{n:4}  {text}")
        };
        writeln!(f, "parent, before clone:")?;
        for s in &self.before_clone {
            line(f, s)?;
        }
        line(
            f,
            &format_args!("clone3 {}", clone_flag_names(self.clone_flags)),
        )?;
        writeln!(f, "parent, after clone:")?;
        for s in &self.after_clone {
            line(f, s)?;
        }
        writeln!(f, "container process:")?;
        for s in &self.steps {
            line(f, s)?;
        }
        if !self.not_planned.is_empty() {
            writeln!(f, "not yet planned:")?;
            for np in &self.not_planned {
                writeln!(f, "      {}: {}", np.field, np.why)?;
            }
        }
        if !self.warnings.is_empty() {
            writeln!(f, "warnings:")?;
            for w in &self.warnings {
                writeln!(f, "      {w}")?;
            }
        }
        Ok(())
    }
}
