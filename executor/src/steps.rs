//! One function call per plan step: raw syscalls on the plan's buffers, `Err(errno)` on failure.

use crate::fs::{
    Fd, FdPath, PATH_MAX, ensure_file, is_dir, link_target, mkdir_missing, open_in_procfs,
    open_in_root, open_no_magic, open_procfs, with_parent,
};
use crate::{Ctx, MSG_PTY, MSG_READY, Prepared, Record, check, errno, send_record};
use ferrun_plans::{CBuf, Step, Target};
use libc::{c_int, c_long, c_ulong};
use std::ptr::null;

fn ok(r: c_int) -> Result<(), i32> {
    if r < 0 { Err(errno()) } else { Ok(()) }
}

fn opt_ptr(b: &Option<CBuf>) -> *const libc::c_char {
    b.as_ref().map_or(null(), |b| b.as_ptr())
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn mount_setattr(
    dirfd: c_int,
    path: *const libc::c_char,
    flags: u32,
    set: u64,
    clear: u64,
) -> Result<(), i32> {
    set_attr(
        dirfd,
        path,
        flags,
        MountAttr {
            attr_set: set,
            attr_clr: clear,
            propagation: 0,
            userns_fd: 0,
        },
    )
}

fn set_attr(
    dirfd: c_int,
    path: *const libc::c_char,
    flags: u32,
    attr: MountAttr,
) -> Result<(), i32> {
    // SAFETY: attr is a valid mount_attr, path NUL-terminated.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path,
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(|_| ())
}

/// Resolves `dest` inside the root, creating it as `target` asks when missing.
fn target_fd(ctx: &Ctx<'_>, dest: &CBuf, target: Target, source: Option<&CBuf>) -> Result<Fd, i32> {
    if target == Target::OrdinaryDir {
        return ordinary_dir(ctx, dest);
    }
    match open_in_root(ctx.rootfd, dest.bytes_with_nul(), libc::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let dir = match (target, source) {
        (Target::LikeSource, Some(src)) => is_dir(src.bytes_with_nul())?,
        _ => true,
    };
    let create = |path: &[u8]| {
        if dir {
            mkdir_missing(ctx.rootfd, path)
        } else {
            ensure_file(ctx.rootfd, path)
        }
    };
    create(dest.bytes_with_nul())?;
    match open_in_root(ctx.rootfd, dest.bytes_with_nul(), libc::O_PATH) {
        Err(libc::ENOENT) => {}
        other => return other,
    }
    // The target is a dangling symlink (e.g. /etc/resolv.conf -> ../run/...): create what it
    // names, inside the root, following a few links as runc does.
    let (mut cur, mut next) = ([0u8; PATH_MAX], [0u8; PATH_MAX]);
    let d = dest.bytes_with_nul();
    cur[..d.len()].copy_from_slice(d);
    let mut cur_len = d.len() - 1;
    for _ in 0..8 {
        let Some(n) = link_target(ctx.rootfd, &cur[..=cur_len], &mut next)? else {
            break;
        };
        create(&next[..=n])?;
        if open_in_root(ctx.rootfd, &next[..=n], libc::O_PATH).is_ok() {
            break;
        }
        cur = next;
        cur_len = n;
    }
    open_in_root(ctx.rootfd, dest.bytes_with_nul(), libc::O_PATH)
}

/// Refuses a mount target on a procfs unless its planned destination is in `/proc` (where the
/// planner allowed only `/proc` itself and the files lxcfs emulates): a symlink in the image, or
/// an earlier mount, led it onto a procfs.
fn check_not_in_proc(fd: c_int, dest: &CBuf) -> Result<(), i32> {
    let d = dest.bytes();
    if d == b"/proc" || d.starts_with(b"/proc/") {
        return Ok(());
    }
    if crate::fs::on_procfs(fd)? {
        return Err(crate::E_INSIDE_PROC);
    }
    Ok(())
}

/// Closes every fd from 3 + preserved on, but the sync socket and the start fd; and the rootfs and
/// procfs fds this process opened, wherever they are (a gap in the preserved range takes them).
fn close_strays(ctx: &mut Ctx<'_>) -> Result<(), i32> {
    for fd in [ctx.rootfd, ctx.procfd] {
        if fd >= 0 {
            // SAFETY: fds this process opened and no later step uses.
            unsafe { libc::close(fd) };
        }
    }
    let mut keep = [ctx.fds.sync, ctx.fds.start];
    if keep[0] > keep[1] {
        keep.swap(0, 1);
    }
    let mut lo = 3 + ctx.fds.preserve;
    for k in keep {
        let Ok(k) = u32::try_from(k) else { continue };
        if k >= lo {
            if k > lo {
                // SAFETY: close_range over fds this process holds.
                check(unsafe { libc::syscall(libc::SYS_close_range, lo, k - 1, 0) })?;
            }
            lo = k + 1;
        }
    }
    // SAFETY: as above.
    check(unsafe { libc::syscall(libc::SYS_close_range, lo, u32::MAX, 0) })?;
    ctx.rootfd = -1;
    ctx.procfd = -1;
    Ok(())
}

/// `dest` as a directory that is not a symlink (its last component is looked at, not followed),
/// made when missing.
fn ordinary_dir(ctx: &Ctx<'_>, dest: &CBuf) -> Result<Fd, i32> {
    let open = || {
        open_in_root(
            ctx.rootfd,
            dest.bytes_with_nul(),
            libc::O_PATH | libc::O_NOFOLLOW,
        )
    };
    let fd = match open() {
        Err(libc::ENOENT) => {
            mkdir_missing(ctx.rootfd, dest.bytes_with_nul())?;
            open()?
        }
        other => other?,
    };
    // SAFETY: an all-zero stat is a valid out-buffer for fstat on our fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.0, &mut st) } < 0 {
        return Err(errno());
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(crate::E_NOT_ORDINARY_DIR);
    }
    Ok(fd)
}

/// Resolves an existing path inside the root.
fn existing(ctx: &Ctx<'_>, path: &CBuf) -> Result<Fd, i32> {
    open_in_root(ctx.rootfd, path.bytes_with_nul(), libc::O_PATH)
}

pub(crate) fn run(step: &Step, ctx: &mut Ctx<'_>, prepared: &Prepared<'_>) -> Result<(), i32> {
    // SAFETY (whole match): every call below is a plain syscall on NUL-terminated plan buffers,
    // stack values or fds this process owns.
    unsafe {
        match step {
            Step::NotDumpable => ok(libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0)),
            Step::LoopbackUp => loopback_up(),
            Step::SetNs { slot, ns } => {
                let fd = ctx.fds.ns.get(usize::from(*slot)).copied().unwrap_or(-1);
                ok(libc::setns(fd, ns.clone_flag() as c_int))
            }
            Step::SetNsContainer { flags: 0 } => Ok(()),
            Step::SetNsContainer { flags } => {
                // Slot 0 holds the container's pidfd.
                let fd = ctx.fds.ns.first().copied().unwrap_or(-1);
                ok(libc::setns(fd, *flags as c_int))
            }
            Step::OpenRoot => {
                let fd = check(libc::open(
                    c"/".as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                ) as c_long)?;
                ctx.rootfd = fd as c_int;
                Ok(())
            }
            Step::AwaitHooks => {
                send_record(
                    ctx.fds.sync,
                    Record {
                        step: crate::MSG_HOOKS,
                        errno: 0,
                    },
                )?;
                wait_parent(ctx.fds.sync)
            }
            Step::WaitParent => wait_parent(ctx.fds.sync),
            Step::Unshare { flags } => ok(libc::unshare(*flags as c_int)),
            Step::BecomeNsRoot => {
                check(libc::syscall(libc::SYS_setresgid, 0, 0, 0))?;
                check(libc::syscall(libc::SYS_setresuid, 0, 0, 0)).map(|_| ())
            }
            Step::RootPropagation { flags } => ok(libc::mount(
                null(),
                c"/".as_ptr(),
                null(),
                *flags as c_ulong,
                null(),
            )),
            Step::BindRootfs { path } => {
                ok(libc::mount(
                    path.as_ptr(),
                    path.as_ptr(),
                    null(),
                    libc::MS_BIND | libc::MS_REC,
                    null(),
                ))?;
                open_rootfs(ctx, path)
            }
            Step::Mount {
                source,
                dest,
                fstype,
                flags,
                data,
                target,
            } => {
                let fd = target_fd(ctx, dest, *target, source.as_ref())?;
                check_not_in_proc(fd.0, dest)?;
                let p = FdPath::new(fd.0);
                ok(libc::mount(
                    opt_ptr(source),
                    p.ptr(),
                    opt_ptr(fstype),
                    *flags as c_ulong,
                    opt_ptr(data).cast(),
                ))
            }
            Step::BindMount {
                dest,
                from: ferrun_plans::BindFrom::Parent { .. },
                ..
            } => {
                // The parent opened it with its attributes already set: only attach it.
                let target = target_fd_of_tree(ctx, dest, prepared.tree(ctx.step))?;
                check_not_in_proc(target.0, dest)?;
                let tree = prepared.tree(ctx.step);
                if dest.bytes() == b"/proc" && !crate::fs::is_procfs_root(tree)? {
                    return Err(crate::E_NOT_PROCFS);
                }
                move_tree(tree, target.0)
            }
            Step::AttachDevice(n) => {
                ensure_file(ctx.rootfd, n.dest.bytes_with_nul())?;
                let fd = existing(ctx, &n.dest)?;
                check_not_in_proc(fd.0, &n.dest)?;
                move_tree(prepared.tree(ctx.step), fd.0)
            }
            Step::BindMount {
                source,
                dest,
                recursive,
                set,
                clear,
                rset,
                rclear,
                from:
                    from @ (ferrun_plans::BindFrom::Child | ferrun_plans::BindFrom::ChildElseParent),
            } => {
                let parent_copy = prepared.tree(ctx.step);
                let fallback = *from == ferrun_plans::BindFrom::ChildElseParent && parent_copy >= 0;
                // EACCES from the source's lookup only: out of the container root's reach. A
                // refused attribute (a locked flag) is never worked around.
                let target = match target_fd(ctx, dest, Target::LikeSource, Some(source)) {
                    Err(libc::EACCES) if fallback => target_fd_of_tree(ctx, dest, parent_copy)?,
                    other => other?,
                };
                check_not_in_proc(target.0, dest)?;
                // Only a procfs may cover /proc (the masks and read-only paths go on it next).
                let procfs_only = dest.bytes() == b"/proc";
                let tree = match clone_source(source.as_ptr(), *recursive) {
                    Err(libc::EACCES) if fallback => {
                        // The copy the parent opened from the host's side, with the same
                        // attributes.
                        if procfs_only && !crate::fs::is_procfs_root(parent_copy)? {
                            return Err(crate::E_NOT_PROCFS);
                        }
                        return move_tree(parent_copy, target.0);
                    }
                    other => other?,
                };
                attach_tree(
                    tree,
                    target.0,
                    procfs_only,
                    (*set, *clear),
                    (*rset, *rclear),
                )
            }
            Step::JoinCgroup { hierarchy } => {
                let fd = prepared.cgroup_tasks(*hierarchy);
                if fd < 0 {
                    return if prepared.cgroups_skipped() {
                        Ok(())
                    } else {
                        Err(libc::EBADF)
                    };
                }
                let n = check(libc::write(fd, c"0".as_ptr().cast(), 1) as c_long)?;
                libc::close(fd);
                if n == 1 { Ok(()) } else { Err(libc::EIO) }
            }
            Step::CgroupBind {
                hierarchy,
                dest,
                set,
            } => {
                let Some(source) = prepared.cgroup_dir(*hierarchy) else {
                    return Err(libc::ENOENT);
                };
                let target = target_fd(ctx, dest, Target::Dir, None)?;
                check_not_in_proc(target.0, dest)?;
                bind_tree(source.as_ptr(), target.0, (false, false), (*set, 0), (0, 0))
            }
            Step::TmpfsCopyUp { dest, flags, data } => {
                let old = target_fd(ctx, dest, Target::Dir, None)?;
                check_not_in_proc(old.0, dest)?;
                // The directory as it was, still reachable through this fd once covered.
                let below = reopen_dir(old.0)?;
                let p = FdPath::new(old.0);
                // Writable while it is filled; read-only afterwards if asked.
                ok(libc::mount(
                    c"tmpfs".as_ptr(),
                    p.ptr(),
                    c"tmpfs".as_ptr(),
                    (*flags & !libc::MS_RDONLY) as c_ulong,
                    opt_ptr(data).cast(),
                ))?;
                let top = target_fd(ctx, dest, Target::Dir, None)?;
                let fresh = reopen_dir(top.0)?;
                crate::fs::copy_tree(below.0, fresh.0, 16)?;
                if *flags & libc::MS_RDONLY != 0 {
                    mount_setattr(
                        top.0,
                        c"".as_ptr(),
                        libc::AT_EMPTY_PATH as u32,
                        ferrun_plans::MOUNT_ATTR_RDONLY,
                        0,
                    )?;
                }
                Ok(())
            }
            Step::Remount { dest, flags } => {
                let fd = existing(ctx, dest)?;
                let p = FdPath::new(fd.0);
                ok(libc::mount(
                    null(),
                    p.ptr(),
                    null(),
                    (libc::MS_REMOUNT | flags) as c_ulong,
                    null(),
                ))
            }
            Step::Propagation { dest, flags } => {
                // mount_setattr on the fd: no /proc path, so it is as safe after pivot as before.
                let fd = existing(ctx, dest)?;
                let rec = if flags & libc::MS_REC != 0 {
                    libc::AT_RECURSIVE as u32
                } else {
                    0
                };
                let attr = MountAttr {
                    attr_set: 0,
                    attr_clr: 0,
                    propagation: flags & !libc::MS_REC,
                    userns_fd: 0,
                };
                set_attr(fd.0, c"".as_ptr(), libc::AT_EMPTY_PATH as u32 | rec, attr)
            }
            Step::SetAttr {
                dest,
                recursive,
                set,
                clear,
            } => {
                let fd = existing(ctx, dest)?;
                let flags = libc::AT_EMPTY_PATH as u32
                    | if *recursive {
                        libc::AT_RECURSIVE as u32
                    } else {
                        0
                    };
                mount_setattr(fd.0, c"".as_ptr(), flags, *set, *clear)
            }
            Step::MkNod(n) => with_parent(ctx.rootfd, n.dest.bytes_with_nul(), |dir, name| {
                let dev = libc::makedev(n.major, n.minor);
                let r = libc::mknodat(dir, name, n.kind.mode_bits() | (n.mode & 0o7777), dev);
                if r < 0 {
                    return if errno() == libc::EEXIST {
                        Ok(())
                    } else {
                        Err(errno())
                    };
                }
                ok(libc::fchownat(
                    dir,
                    name,
                    n.uid,
                    n.gid,
                    libc::AT_SYMLINK_NOFOLLOW,
                ))
            }),
            Step::BindDevice { source, dest } => {
                ensure_file(ctx.rootfd, dest.bytes_with_nul())?;
                let fd = existing(ctx, dest)?;
                check_not_in_proc(fd.0, dest)?;
                // A device of the host's, bound: nothing on it may run or gain privileges.
                bind_tree(
                    source.as_ptr(),
                    fd.0,
                    (false, false),
                    (
                        ferrun_plans::MOUNT_ATTR_NOSUID | ferrun_plans::MOUNT_ATTR_NOEXEC,
                        0,
                    ),
                    (0, 0),
                )
            }
            Step::Symlink { target, link } => {
                with_parent(ctx.rootfd, link.bytes_with_nul(), |dir, name| {
                    let r = libc::symlinkat(target.as_ptr(), dir, name);
                    if r < 0 && errno() != libc::EEXIST {
                        Err(errno())
                    } else {
                        Ok(())
                    }
                })
            }
            Step::PivotRoot => pivot_root(ctx),
            Step::Chroot => {
                ok(libc::fchdir(ctx.rootfd))?;
                ok(libc::mount(
                    c".".as_ptr(),
                    c"/".as_ptr(),
                    null(),
                    libc::MS_MOVE,
                    null(),
                ))?;
                ok(libc::chroot(c".".as_ptr()))?;
                ok(libc::chdir(c"/".as_ptr()))
            }
            Step::MaskPath { path } => {
                let fd = match existing(ctx, path) {
                    Ok(fd) => fd,
                    Err(libc::ENOENT) => return Ok(()),
                    Err(e) => return Err(e),
                };
                let p = FdPath::new(fd.0);
                let mut st: libc::stat = std::mem::zeroed();
                ok(libc::fstat(fd.0, &mut st))?;
                if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                    ok(libc::mount(
                        c"tmpfs".as_ptr(),
                        p.ptr(),
                        c"tmpfs".as_ptr(),
                        libc::MS_RDONLY,
                        null(),
                    ))
                } else {
                    // The rootfs's /dev/null must be the real one, not whatever the image put
                    // there (a symlink or a file would be mounted over the masked path).
                    let devnull =
                        open_in_root(ctx.rootfd, b"/dev/null\0", libc::O_PATH | libc::O_NOFOLLOW)?;
                    let mut nst: libc::stat = std::mem::zeroed();
                    ok(libc::fstat(devnull.0, &mut nst))?;
                    if nst.st_mode & libc::S_IFMT != libc::S_IFCHR
                        || nst.st_rdev != libc::makedev(1, 3)
                    {
                        return Err(libc::ENODEV);
                    }
                    let n = FdPath::new(devnull.0);
                    ok(libc::mount(n.ptr(), p.ptr(), null(), libc::MS_BIND, null()))
                }
            }
            Step::ReadonlyPath { path } => {
                let fd = match existing(ctx, path) {
                    Ok(fd) => fd,
                    Err(libc::ENOENT) => return Ok(()),
                    Err(e) => return Err(e),
                };
                let p = FdPath::new(fd.0);
                ok(libc::mount(
                    p.ptr(),
                    p.ptr(),
                    null(),
                    libc::MS_BIND | libc::MS_REC,
                    null(),
                ))?;
                drop(fd);
                let top = existing(ctx, path)?;
                let flags = libc::AT_EMPTY_PATH as u32 | libc::AT_RECURSIVE as u32;
                mount_setattr(
                    top.0,
                    c"".as_ptr(),
                    flags,
                    ferrun_plans::MOUNT_ATTR_RDONLY,
                    0,
                )
            }
            Step::ReadonlyRoot => mount_setattr(
                ctx.rootfd,
                c"".as_ptr(),
                libc::AT_EMPTY_PATH as u32,
                ferrun_plans::MOUNT_ATTR_RDONLY,
                0,
            ),
            Step::OpenProcfs => {
                // Kept until `CloseStrayFds`.
                ctx.procfd = open_procfs()?.into_raw();
                Ok(())
            }
            Step::CloseStrayFds => close_strays(ctx),
            Step::Sysctl { path, value } => {
                let rel = path
                    .bytes_with_nul()
                    .strip_prefix(b"/proc/")
                    .ok_or(libc::EINVAL)?;
                let fd = open_in_procfs(ctx.procfd, rel, libc::O_WRONLY)?;
                let v = value.bytes();
                if libc::write(fd.0, v.as_ptr().cast(), v.len()) < 0 {
                    Err(errno())
                } else {
                    Ok(())
                }
            }
            Step::LsmExec { lsm, value } => lsm_exec(ctx.procfd, *lsm, value.bytes()),
            Step::Hostname { name } => ok(libc::sethostname(name.as_ptr(), name.bytes().len())),
            Step::Domainname { name } => ok(libc::setdomainname(name.as_ptr(), name.bytes().len())),
            Step::Terminal => terminal(ctx),
            Step::ReopenDevNull => reopen_dev_null(),
            Step::NewSession => {
                if libc::setsid() < 0 {
                    Err(errno())
                } else {
                    Ok(())
                }
            }
            Step::Console => console(ctx),
            Step::ChownStdio { uid } => {
                chown_stdio(*uid);
                Ok(())
            }
            Step::Rlimit {
                resource,
                soft,
                hard,
            } => {
                let lim = libc::rlimit {
                    rlim_cur: *soft,
                    rlim_max: *hard,
                };
                ok(libc::setrlimit(*resource as _, &lim))
            }
            Step::Scheduler(a) => sched_setattr(a),
            Step::IoPriority { class, level } => check(libc::syscall(
                libc::SYS_ioprio_set,
                IOPRIO_WHO_PROCESS,
                0,
                (*class << 13) | *level,
            ))
            .map(drop),
            Step::Personality { persona } => check(libc::c_long::from(libc::personality(
                libc::c_ulong::from(*persona),
            )))
            .map(drop),
            Step::MemoryPolicy { mode, flags, nodes } => {
                // The kernel reads one bit fewer than `maxnode` says.
                let (ptr, maxnode) = if nodes.is_empty() {
                    (std::ptr::null(), 0)
                } else {
                    (nodes.as_ptr(), nodes.len() * 8 + 1)
                };
                check(libc::syscall(
                    libc::SYS_set_mempolicy,
                    *mode | *flags,
                    ptr,
                    maxnode,
                ))
                .map(drop)
            }
            Step::CpuAffinity { cpus } => check(libc::syscall(
                libc::SYS_sched_setaffinity,
                0,
                cpus.len(),
                cpus.as_ptr(),
            ))
            .map(drop),
            Step::Chdir { path } => {
                // Inside the root and never through a magic link: a leaked fd cannot become the
                // container's cwd (CVE-2024-21626).
                let dir = open_in_root(
                    ctx.rootfd,
                    path.bytes_with_nul(),
                    libc::O_PATH | libc::O_DIRECTORY,
                )?;
                ok(libc::fchdir(dir.0))
            }
            Step::ResolveExec { candidates, .. } => {
                let mut found_unexecutable = false;
                for c in candidates {
                    let mut st: libc::stat = std::mem::zeroed();
                    let fd = if c.bytes().first() == Some(&b'/') {
                        open_in_root(ctx.rootfd, c.bytes_with_nul(), libc::O_PATH)
                    } else {
                        open_no_magic(c.bytes_with_nul(), libc::O_PATH)
                    };
                    let Ok(fd) = fd else { continue };
                    if libc::fstat(fd.0, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFREG
                    {
                        if st.st_mode & 0o111 != 0 {
                            ctx.exec_path = c.as_ptr();
                            return Ok(());
                        }
                        found_unexecutable = true;
                    }
                }
                Err(if found_unexecutable {
                    libc::EACCES
                } else {
                    libc::ENOENT
                })
            }
            Step::DropBounding { keep, last_cap } => {
                for cap in 0..=u32::from(*last_cap).min(63) {
                    if keep & (1u64 << cap) == 0 {
                        let r = libc::prctl(libc::PR_CAPBSET_DROP, cap as c_ulong, 0, 0, 0);
                        if r < 0 && errno() != libc::EINVAL {
                            return Err(errno());
                        }
                    }
                }
                Ok(())
            }
            Step::KeepCaps { on } => ok(libc::prctl(
                libc::PR_SET_KEEPCAPS,
                c_ulong::from(*on),
                0,
                0,
                0,
            )),
            Step::SetGroups { gids } => check(libc::syscall(
                libc::SYS_setgroups,
                gids.len(),
                gids.as_ptr(),
            ))
            .map(|_| ()),
            Step::SetGid { gid } => {
                check(libc::syscall(libc::SYS_setresgid, *gid, *gid, *gid)).map(|_| ())
            }
            Step::SetUid { uid } => {
                check(libc::syscall(libc::SYS_setresuid, *uid, *uid, *uid)).map(|_| ())
            }
            Step::SetCaps {
                effective,
                permitted,
                inheritable,
            } => capset(*effective, *permitted, *inheritable),
            Step::Ambient { caps } => {
                for cap in 0..64u32 {
                    if caps & (1u64 << cap) != 0 {
                        ok(libc::prctl(
                            libc::PR_CAP_AMBIENT,
                            libc::PR_CAP_AMBIENT_RAISE as c_ulong,
                            cap as c_ulong,
                            0,
                            0,
                        ))?;
                    }
                }
                Ok(())
            }
            Step::NoNewPrivs => ok(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)),
            Step::Seccomp { flags, bpf, .. } => {
                let prog = libc::sock_fprog {
                    len: (bpf.len() / 8) as u16,
                    filter: bpf.as_ptr() as *mut libc::sock_filter,
                };
                let listener = u64::from(*flags) & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0;
                if listener {
                    if ctx.fds.shared.is_null() {
                        return Err(libc::EINVAL);
                    }
                    send_record(
                        ctx.fds.sync,
                        Record {
                            step: crate::MSG_SECCOMP,
                            errno: 0,
                        },
                    )?;
                }
                let fd = check(libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    *flags,
                    &prog as *const libc::sock_fprog,
                ))?;
                if listener {
                    use std::sync::atomic::Ordering;
                    let h = &*ctx.fds.shared;
                    h.fd.store(fd as c_int, Ordering::Release);
                    h.state.store(crate::HANDOFF_PUBLISHED, Ordering::Release);
                    // No syscall until the parent holds the fd: any one could be notified.
                    while h.state.load(Ordering::Acquire) != crate::HANDOFF_TAKEN {
                        std::hint::spin_loop();
                    }
                    // The agent holds it now; kept here, a process exec'd into the container
                    // could take it (pidfd_getfd) and answer its own notifications.
                    libc::close(fd as c_int);
                }
                Ok(())
            }
            Step::Umask { mask } => {
                libc::umask(*mask);
                Ok(())
            }
            Step::Ready => {
                // From here the container outlives `create`.
                libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0);
                // A report that cannot be sent (e.g. a filter already on refuses it) fails the
                // step: the parent then sees the child end instead of waiting forever.
                send_record(
                    ctx.fds.sync,
                    Record {
                        step: MSG_READY,
                        errno: 0,
                    },
                )
            }
            Step::WaitStart => loop {
                let mut b = [0u8; 1];
                let n = libc::read(ctx.fds.start, b.as_mut_ptr().cast(), 1);
                if n == 1 {
                    return Ok(());
                }
                if n == 0 {
                    return Err(libc::EPIPE);
                }
                if errno() != libc::EINTR {
                    return Err(errno());
                }
            },
            Step::CloseFds => {
                let first = 3 + ctx.fds.preserve;
                check(libc::syscall(
                    libc::SYS_close_range,
                    first,
                    u32::MAX,
                    libc::CLOSE_RANGE_CLOEXEC,
                ))
                .map(|_| ())
            }
            Step::Exec { .. } => {
                if ctx.exec_path.is_null() {
                    return Err(libc::ENOENT);
                }
                let envp = match &prepared.home {
                    Some(h) if ctx.home_set => h.envp.as_ptr(),
                    _ => prepared.envp.as_ptr(),
                };
                libc::execve(ctx.exec_path, prepared.argv.as_ptr(), envp);
                Err(errno())
            }
            Step::MkdirCwd { path } => {
                // Best effort: whatever stands in the way (a magic link, a read-only image) is
                // reported by `Chdir`, which names the cwd.
                if let Err(libc::ENOENT) = open_in_root(
                    ctx.rootfd,
                    path.bytes_with_nul(),
                    libc::O_PATH | libc::O_DIRECTORY,
                ) {
                    let _ = crate::fs::mkdir_missing(ctx.rootfd, path.bytes_with_nul());
                }
                Ok(())
            }
            Step::HomeFromPasswd { uid } => {
                let Some(h) = &prepared.home else {
                    return Ok(());
                };
                // SAFETY: this process is the buffer's only user (a copy made by clone), and
                // nothing else borrows it while it is filled in.
                let buf = &mut *h.buf.get();
                buf[..5].copy_from_slice(b"HOME=");
                let n = crate::passwd::home_of(ctx.rootfd, *uid, &mut buf[5..crate::HOME_ROOM - 1]);
                buf[5 + n] = 0;
                ctx.home_set = true;
                Ok(())
            }
        }
    }
}

fn open_rootfs(ctx: &mut Ctx<'_>, path: &CBuf) -> Result<(), i32> {
    // SAFETY: NUL-terminated path.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(errno());
    }
    ctx.rootfd = fd;
    Ok(())
}

fn pivot_root(ctx: &Ctx<'_>) -> Result<(), i32> {
    // SAFETY: plain syscalls on fds we own and static paths.
    unsafe {
        let old = Fd(libc::open(
            c"/".as_ptr(),
            libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
        ));
        if old.0 < 0 {
            return Err(errno());
        }
        ok(libc::fchdir(ctx.rootfd))?;
        check(libc::syscall(
            libc::SYS_pivot_root,
            c".".as_ptr(),
            c".".as_ptr(),
        ))?;
        ok(libc::fchdir(old.0))?;
        // Keep the unmount of the old root from propagating to the host.
        ok(libc::mount(
            null(),
            c".".as_ptr(),
            null(),
            libc::MS_SLAVE | libc::MS_REC,
            null(),
        ))?;
        ok(libc::umount2(c".".as_ptr(), libc::MNT_DETACH))?;
        ok(libc::chdir(c"/".as_ptr()))
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<(), i32> {
    const VERSION_3: u32 = 0x2008_0522;
    let header = CapHeader {
        version: VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and two data structs, as capset v3 expects.
    check(unsafe {
        libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) as c_long
    })
    .map(|_| ())
}

/// Opens the container's pty, sends the master to the parent and makes the pty the
/// controlling terminal and stdio.
fn terminal(ctx: &Ctx<'_>) -> Result<(), i32> {
    // SAFETY: plain syscalls; the cmsg buffer is a correctly aligned stack array.
    unsafe {
        let master = Fd(libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        ));
        if master.0 < 0 {
            return Err(errno());
        }
        let unlock: c_int = 0;
        ok(libc::ioctl(master.0, libc::TIOCSPTLCK, &unlock))?;
        let slave = Fd(libc::ioctl(
            master.0,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        ));
        if slave.0 < 0 {
            return Err(errno());
        }
        send_fd(ctx.fds.sync, master.0)?;
        drop(master);
        if libc::setsid() < 0 {
            return Err(errno());
        }
        ok(libc::ioctl(slave.0, libc::TIOCSCTTY, 0))?;
        for fd in 0..3 {
            ok(libc::dup2(slave.0, fd))?;
        }
        Ok(())
    }
}

/// Each of stdio that is a `/dev/null` (1:3) is replaced by the container's own `/dev/null`,
/// opened after `pivot_root` (so `/` is the container's), with the same access mode.
fn reopen_dev_null() -> Result<(), i32> {
    // SAFETY: plain syscalls on stdio and a NUL-terminated constant.
    unsafe {
        for fd in 0..3 {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) < 0
                || st.st_mode & libc::S_IFMT != libc::S_IFCHR
                || st.st_rdev != libc::makedev(1, 3)
            {
                continue;
            }
            // O_RDWR and O_NONBLOCK: an image's fifo there cannot block the set-up.
            let null = libc::open(
                c"/dev/null".as_ptr(),
                libc::O_RDWR
                    | libc::O_NONBLOCK
                    | libc::O_NOCTTY
                    | libc::O_NOFOLLOW
                    | libc::O_CLOEXEC,
            );
            if null < 0 {
                return Err(errno());
            }
            // Only the real device: an image's file or fifo there is no /dev/null.
            let mut nst: libc::stat = std::mem::zeroed();
            if libc::fstat(null, &mut nst) < 0
                || nst.st_mode & libc::S_IFMT != libc::S_IFCHR
                || nst.st_rdev != libc::makedev(1, 3)
            {
                libc::close(null);
                continue;
            }
            let r = libc::dup2(null, fd);
            libc::close(null);
            if r >= 0 {
                let fl = libc::fcntl(fd, libc::F_GETFL);
                if fl >= 0 {
                    libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
                }
            }
            if r < 0 {
                return Err(errno());
            }
        }
    }
    Ok(())
}

/// `/dev/console` inside the root: the existing entry if it is no symlink, else a new empty
/// file; then a detached bind of the pty on stdin moved onto it.
fn console(ctx: &Ctx<'_>) -> Result<(), i32> {
    let path = b"/dev/console\0";
    let target = match open_in_root(ctx.rootfd, path, libc::O_PATH | libc::O_NOFOLLOW) {
        Err(libc::ENOENT) => {
            let made = open_in_root(
                ctx.rootfd,
                path,
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            )?;
            drop(made);
            open_in_root(ctx.rootfd, path, libc::O_PATH | libc::O_NOFOLLOW)?
        }
        other => other?,
    };
    // SAFETY: an all-zero stat is a valid out-buffer for fstat on our fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(target.0, &mut st) } < 0 {
        return Err(errno());
    }
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK || st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return Err(libc::ELOOP);
    }
    if crate::fs::on_procfs(target.0)? {
        return Err(crate::E_INSIDE_PROC);
    }
    // SAFETY: open_tree of stdin (the pty) with an empty path.
    let tree = Fd(check(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            0,
            c"".as_ptr(),
            libc::OPEN_TREE_CLONE | libc::O_CLOEXEC as u32 | libc::AT_EMPTY_PATH as u32,
        )
    })? as c_int);
    move_onto(tree.0, target.0)
}

/// runc's stdio rule, with crun's care for devices: a pipe or file on fds 0–2 owned by
/// someone else is given to `uid` (its group stays: a mount may prefer another).
fn chown_stdio(uid: u32) {
    for fd in 0..3 {
        // SAFETY: fstat into a zeroed buffer, fchown on one of our own stdio fds.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) < 0 {
                continue;
            }
            let kind = st.st_mode & libc::S_IFMT;
            if kind == libc::S_IFCHR || kind == libc::S_IFBLK || st.st_uid == uid {
                continue;
            }
            // EPERM (an owner the user namespace does not map) and EROFS are not errors.
            let _ = libc::fchown(fd, uid, u32::MAX);
        }
    }
}

#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

fn send_fd(sock: c_int, fd: c_int) -> Result<(), i32> {
    let rec = Record {
        step: MSG_PTY,
        errno: 0,
    }
    .to_bytes();
    // SAFETY: the msghdr points at live stack buffers; CMSG_* are used as documented.
    unsafe {
        let mut iov = libc::iovec {
            iov_base: rec.as_ptr() as *mut _,
            iov_len: rec.len(),
        };
        let mut cbuf = CmsgBuf([0; 64]);
        let space = libc::CMSG_SPACE(std::mem::size_of::<c_int>() as u32) as usize;
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.0.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<c_int>() as u32) as _;
        std::ptr::copy_nonoverlapping(
            &fd as *const c_int as *const u8,
            libc::CMSG_DATA(cmsg),
            std::mem::size_of::<c_int>(),
        );
        if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) < 0 {
            return Err(errno());
        }
    }
    Ok(())
}

/// A bind mount made atomically: `open_tree` clones `source`, `mount_setattr` sets the recursive
/// and then the top-level attributes on the detached copy, `move_mount` attaches it on `target`.
///
/// # Safety
/// `source` must point to a NUL-terminated path and `target` be an open fd.
/// `lo` of the current network namespace up, keeping its other flags.
fn loopback_up() -> Result<(), i32> {
    // SAFETY: a socket of our own, an ifreq on the stack, ioctls that read and write it.
    unsafe {
        let s =
            check(libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) as c_long)?;
        let s = Fd(s as c_int);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        ifr.ifr_name[0] = b'l' as libc::c_char;
        ifr.ifr_name[1] = b'o' as libc::c_char;
        check(libc::ioctl(s.0, libc::SIOCGIFFLAGS, &mut ifr) as c_long)?;
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        check(libc::ioctl(s.0, libc::SIOCSIFFLAGS, &ifr) as c_long).map(|_| ())
    }
}

unsafe fn bind_tree(
    source: *const libc::c_char,
    target: c_int,
    (recursive, procfs_only): (bool, bool),
    (set, clear): (u64, u64),
    (rset, rclear): (u64, u64),
) -> Result<(), i32> {
    let tree = clone_source(source, recursive)?;
    attach_tree(tree, target, procfs_only, (set, clear), (rset, rclear))
}

/// `open_tree(source, OPEN_TREE_CLONE)`: a detached copy of the source's mount.
fn clone_source(source: *const libc::c_char, recursive: bool) -> Result<Fd, i32> {
    let rec = if recursive {
        libc::AT_RECURSIVE as u32
    } else {
        0
    };
    // SAFETY: a NUL-terminated plan buffer; the kernel returns a new fd or -1.
    let tree = check(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            source,
            libc::OPEN_TREE_CLONE | libc::O_CLOEXEC as u32 | rec,
        )
    })?;
    Ok(Fd(tree as c_int))
}

/// The attributes set on a detached copy, then the copy moved onto `target`.
fn attach_tree(
    tree: Fd,
    target: c_int,
    procfs_only: bool,
    (set, clear): (u64, u64),
    (rset, rclear): (u64, u64),
) -> Result<(), i32> {
    if procfs_only && !crate::fs::is_procfs_root(tree.0)? {
        return Err(crate::E_NOT_PROCFS);
    }
    if rset | rclear != 0 {
        mount_setattr(
            tree.0,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as u32 | libc::AT_RECURSIVE as u32,
            rset,
            rclear,
        )?;
    }
    if set | clear != 0 {
        mount_setattr(tree.0, c"".as_ptr(), libc::AT_EMPTY_PATH as u32, set, clear)?;
    }
    move_onto(tree.0, target)
}

/// `move_mount` of the detached mount `tree` onto the fd `target`.
fn move_onto(tree: c_int, target: c_int) -> Result<(), i32> {
    // SAFETY: move_mount of our fds with empty paths.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree,
            c"".as_ptr(),
            target,
            c"".as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
    .map(drop)
}

/// Moves the parent's detached mount `tree` onto `target`, then closes it.
fn move_tree(tree: c_int, target: c_int) -> Result<(), i32> {
    if tree < 0 {
        return Err(libc::EBADF);
    }
    // The tree's fd is ours and used once: closed however the move ends.
    let tree = Fd(tree);
    move_onto(tree.0, target)
}

/// The target of a parent's tree: made like the tree (a directory for a directory, else a file)
/// when missing.
fn target_fd_of_tree(ctx: &Ctx<'_>, dest: &CBuf, tree: c_int) -> Result<Fd, i32> {
    match open_in_root(ctx.rootfd, dest.bytes_with_nul(), libc::O_PATH) {
        Err(libc::ENOENT) => {}
        other => return other,
    }
    // SAFETY: an all-zero stat is a valid out-buffer for fstat on the tree's fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(tree, &mut st) } < 0 {
        return Err(errno());
    }
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        mkdir_missing(ctx.rootfd, dest.bytes_with_nul())?;
    } else {
        ensure_file(ctx.rootfd, dest.bytes_with_nul())?;
    }
    open_in_root(ctx.rootfd, dest.bytes_with_nul(), libc::O_PATH)
}

/// A readable fd of the directory an `O_PATH` fd names (for `getdents64`).
fn reopen_dir(fd: c_int) -> Result<Fd, i32> {
    // SAFETY: openat of "." relative to our fd.
    let d = unsafe {
        libc::openat(
            fd,
            c".".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if d < 0 { Err(errno()) } else { Ok(Fd(d)) }
}

/// Blocks until the parent sends its one byte on the sync socket (EPIPE if it went away).
fn wait_parent(sync: c_int) -> Result<(), i32> {
    let mut b = [0u8; 1];
    // SAFETY: a 1-byte stack buffer.
    let n = unsafe { libc::recv(sync, b.as_mut_ptr().cast(), 1, 0) };
    match n {
        1 => Ok(()),
        0 => Err(libc::EPIPE),
        _ => Err(errno()),
    }
}

/// `who` of `ioprio_set`: one process (`0`: the caller).
const IOPRIO_WHO_PROCESS: c_int = 1;

/// `struct sched_attr` of `SCHED_ATTR_SIZE_VER1`: the utilisation clamps, which the spec has
/// no values for, are reset (`-1`) when their flags ask for them.
#[repr(C)]
struct RawSchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

fn sched_setattr(a: &ferrun_plans::SchedAttr) -> Result<(), i32> {
    // SCHED_FLAG_UTIL_CLAMP_MIN | _MAX: only then the clamps (and the larger size, which
    // kernels before 5.3 refuse) are passed.
    const UTIL_CLAMP: u64 = 0x20 | 0x40;
    let clamps = a.flags & UTIL_CLAMP != 0;
    let raw = RawSchedAttr {
        size: if clamps {
            std::mem::size_of::<RawSchedAttr>() as u32
        } else {
            48
        },
        policy: a.policy,
        flags: a.flags,
        nice: a.nice,
        priority: a.priority,
        runtime: a.runtime,
        deadline: a.deadline,
        period: a.period,
        util_min: if clamps { u32::MAX } else { 0 },
        util_max: if clamps { u32::MAX } else { 0 },
    };
    // SAFETY: the kernel reads `size` bytes of our struct.
    check(unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &raw as *const RawSchedAttr, 0) })
        .map(drop)
}

/// `<pid>/task/<tid>/<attr>` with a NUL, in `buf`: this thread's attribute as the procfs
/// `procfd` itself names it (its `thread-self` link, read, not followed: the lookup follows no
/// symlink), so that the pid is that procfs's, whichever instance it is.
fn own_attr_path<'a>(procfd: c_int, buf: &'a mut [u8; 96], attr: &[u8]) -> Result<&'a [u8], i32> {
    const LINK_ROOM: usize = 48;
    // SAFETY: reading a link into our buffer, at most LINK_ROOM bytes.
    let n = unsafe {
        libc::readlinkat(
            procfd,
            c"thread-self".as_ptr(),
            buf.as_mut_ptr().cast(),
            LINK_ROOM,
        )
    };
    if n < 0 {
        return Err(errno());
    }
    let n = n as usize;
    if n >= LINK_ROOM || n + 1 + attr.len() + 1 > buf.len() {
        return Err(libc::ENAMETOOLONG);
    }
    buf[n] = b'/';
    buf[n + 1..n + 1 + attr.len()].copy_from_slice(attr);
    let end = n + 1 + attr.len();
    buf[end] = 0;
    Ok(&buf[..=end])
}

/// Writes the attribute the next `execve` takes: AppArmor's own file first (kernels since 5.1),
/// then the shared `attr/exec` that older ones and SELinux use.
fn lsm_exec(procfd: c_int, lsm: ferrun_plans::Lsm, value: &[u8]) -> Result<(), i32> {
    let mut buf = [0u8; 96];
    let fd = match lsm {
        ferrun_plans::Lsm::AppArmor => {
            let path = own_attr_path(procfd, &mut buf, b"attr/apparmor/exec")?;
            match open_in_procfs(procfd, path, libc::O_WRONLY) {
                Ok(fd) => fd,
                Err(libc::ENOENT) => {
                    let path = own_attr_path(procfd, &mut buf, b"attr/exec")?;
                    open_in_procfs(procfd, path, libc::O_WRONLY)?
                }
                Err(e) => return Err(e),
            }
        }
        ferrun_plans::Lsm::SELinux => {
            let path = own_attr_path(procfd, &mut buf, b"attr/exec")?;
            open_in_procfs(procfd, path, libc::O_WRONLY)?
        }
    };
    // SAFETY: writing our buffer to our fd.
    let n = unsafe { libc::write(fd.0, value.as_ptr().cast(), value.len()) };
    if n < 0 { Err(errno()) } else { Ok(()) }
}
