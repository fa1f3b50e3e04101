//! The detached mounts a container takes from its parent (`HostStep::OpenMountTrees`), opened
//! on the host's side before clone: bind sources (`open_tree`, with their attributes and, for
//! an id-mapped mount, `MOUNT_ATTR_IDMAP` with a user namespace of the mount's maps) and the
//! device nodes of a new user namespace (`mknod` on a tmpfs, then `open_tree` of each node).
//! The container process inherits the fds and only moves each tree into place.
//!
//! The work is done in a private copy of the parent's mount namespace, left before clone: the
//! copies belong to no peer group of the host's (nothing the container mounts under them
//! propagates back), and the tmpfs is attached there, since kernels before 6.15 clone only
//! from attached mounts.

use crate::error::{Error, Result};
use ferrun_plans::{BindFrom, IdMap, Plan, Step};
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The trees, and per container step the fd of its own (-1 for none).
pub struct Trees {
    pub fds: Vec<OwnedFd>,
    pub by_step: Vec<RawFd>,
}

/// Opens every tree the plan's steps take from the parent, each above `min_fd`.
pub fn open(plan: &Plan, min_fd: u32) -> Result<Trees> {
    let private = PrivateMounts::enter()?;
    let trees = open_in(plan, min_fd)?;
    private.leave()?;
    Ok(trees)
}

fn open_in(plan: &Plan, min_fd: u32) -> Result<Trees> {
    let mut trees = Trees {
        fds: Vec::new(),
        by_step: vec![-1; plan.steps.len()],
    };
    let mut userns: HashMap<(Vec<u8>, Vec<u8>), OwnedFd> = HashMap::new();
    let mut devices: Option<OwnedFd> = None;
    for (i, step) in plan.steps.iter().enumerate() {
        let tree = match step {
            Step::BindMount {
                source,
                recursive,
                set,
                clear,
                rset,
                rclear,
                from: from @ (BindFrom::Parent { .. } | BindFrom::ChildElseParent),
                ..
            } => {
                let idmap = match from {
                    BindFrom::Parent { idmap } => Some(idmap),
                    _ => None,
                };
                let what = || format!("bind {}", source.text());
                let source_path = std::ffi::CStr::from_bytes_with_nul(source.bytes_with_nul())
                    .map_err(|_| Error(format!("{}: not one C string", what())))?;
                let tree = match open_tree(libc::AT_FDCWD, source_path, *recursive) {
                    Ok(t) => t,
                    // Only a fallback: the container process reports what is wrong.
                    Err(_) if idmap.is_none() => continue,
                    Err(e) => {
                        return Err(Error(format!(
                            "{}: open it from the host's side: {e}",
                            what()
                        )));
                    }
                };
                if let Some(m) = idmap {
                    let key = (m.uid_map.bytes().to_vec(), m.gid_map.bytes().to_vec());
                    if !userns.contains_key(&key) {
                        userns.insert(key.clone(), user_namespace(m)?);
                    }
                    let ns = userns.get(&key).map_or(-1, |f| f.as_raw_fd());
                    setattr(&tree, m.recursive, MOUNT_ATTR_IDMAP, 0, ns).map_err(|e| {
                        let hint = if e.raw_os_error() == Some(libc::EINVAL) {
                            " (does this filesystem support id-mapped mounts?)"
                        } else {
                            ""
                        };
                        Error(format!("{}: id-map it: {e}{hint}", what()))
                    })?;
                }
                if rset | rclear != 0 {
                    setattr(&tree, true, *rset, *rclear, 0)
                        .map_err(|e| Error(format!("{}: {e}", what())))?;
                }
                if set | clear != 0 {
                    setattr(&tree, false, *set, *clear, 0)
                        .map_err(|e| Error(format!("{}: {e}", what())))?;
                }
                tree
            }
            Step::AttachDevice(n) => {
                let what = || format!("linux.devices: {}", n.dest.text());
                if devices.is_none() {
                    devices = Some(attached_tmpfs().map_err(|e| {
                        Error(format!("{}: a tmpfs for the device nodes: {e}", what()))
                    })?);
                }
                let dir = devices.as_ref().map_or(-1, |d| d.as_raw_fd());
                let name = CString::new(i.to_string()).map_err(|_| Error("name".into()))?;
                // SAFETY: plain syscalls on our tmpfs with a NUL-terminated name.
                let made = unsafe {
                    libc::mknodat(
                        dir,
                        name.as_ptr(),
                        n.kind.mode_bits() | (n.mode & 0o7777),
                        libc::makedev(n.major, n.minor),
                    ) == 0
                        && libc::fchownat(dir, name.as_ptr(), n.uid, n.gid, 0) == 0
                        && libc::fchmodat(dir, name.as_ptr(), n.mode & 0o7777, 0) == 0
                };
                if !made {
                    return Err(Error(format!(
                        "{}: make the node: {}",
                        what(),
                        std::io::Error::last_os_error()
                    )));
                }
                let tree =
                    open_tree(dir, &name, false).map_err(|e| Error(format!("{}: {e}", what())))?;
                // A node of the container's own, yet nothing on it may run or gain privilege.
                setattr(
                    &tree,
                    false,
                    ferrun_plans::MOUNT_ATTR_NOSUID | ferrun_plans::MOUNT_ATTR_NOEXEC,
                    0,
                    0,
                )
                .map_err(|e| Error(format!("{}: {e}", what())))?;
                tree
            }
            _ => continue,
        };
        let tree = crate::host::fd::above(tree, min_fd)?;
        trees.by_step[i] = tree.as_raw_fd();
        trees.fds.push(tree);
    }
    Ok(trees)
}

/// The parent in a copy of its mount namespace (its mounts slaves of the host's: nothing made
/// here or under the copies propagates back) until `leave`; then back in its own, with the
/// root and the directory it had.
struct PrivateMounts {
    own: std::fs::File,
    root: std::fs::File,
    cwd: std::fs::File,
    left: bool,
}

fn open_dir(path: &str) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(path)
}

impl PrivateMounts {
    fn enter() -> Result<PrivateMounts> {
        let err = |what: &str, e: std::io::Error| Error(format!("{what}: {e}"));
        let own = std::fs::File::open("/proc/thread-self/ns/mnt")
            .map_err(|e| err("open our mount namespace", e))?;
        let root = open_dir("/").map_err(|e| err("open our root", e))?;
        let cwd = open_dir(".").map_err(|e| err("open our working directory", e))?;
        // SAFETY: setns, unshare and mount take plain values.
        unsafe {
            // setns into a mount namespace needs a root and cwd of this thread's own (a
            // process embedding the runtime may have threads); and the way back needs
            // CAP_SYS_CHROOT as well: tried before leaving, in place.
            if libc::unshare(libc::CLONE_FS) != 0
                || libc::setns(own.as_raw_fd(), libc::CLONE_NEWNS) != 0
                || libc::fchdir(cwd.as_raw_fd()) != 0
            {
                return Err(err(
                    "rejoin our own mount namespace",
                    std::io::Error::last_os_error(),
                ));
            }
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(err(
                    "a private mount namespace",
                    std::io::Error::last_os_error(),
                ));
            }
            let back = PrivateMounts {
                own,
                root,
                cwd,
                left: false,
            };
            if libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_SLAVE,
                std::ptr::null(),
            ) != 0
            {
                return Err(err("make it a slave", std::io::Error::last_os_error()));
            }
            Ok(back)
        }
    }

    /// Back in our own namespace, root and directory.
    fn leave(mut self) -> Result<()> {
        self.left = true;
        self.restore()
            .map_err(|e| Error(format!("return to our own mount namespace: {e}")))
    }

    fn restore(&self) -> std::io::Result<()> {
        // SAFETY: setns, fchdir and chroot through fds we hold.
        unsafe {
            if libc::setns(self.own.as_raw_fd(), libc::CLONE_NEWNS) != 0
                || libc::fchdir(self.root.as_raw_fd()) != 0
                || libc::chroot(c".".as_ptr()) != 0
                || libc::fchdir(self.cwd.as_raw_fd()) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

impl Drop for PrivateMounts {
    fn drop(&mut self) {
        // An error path: nothing may go on in the copy (it would clone the container from it).
        if !self.left && self.restore().is_err() {
            crate::log::warn("could not return to our own mount namespace: giving up");
            std::process::abort();
        }
    }
}

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `open_tree(OPEN_TREE_CLONE)` of `path` below `dir`: a detached copy of its mount.
fn open_tree(dir: RawFd, path: &std::ffi::CStr, recursive: bool) -> std::io::Result<OwnedFd> {
    let rec = if recursive {
        libc::AT_RECURSIVE as u32
    } else {
        0
    };
    // SAFETY: a NUL-terminated path; the kernel returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dir,
            path.as_ptr(),
            libc::OPEN_TREE_CLONE | libc::O_CLOEXEC as u32 | rec,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn setattr(
    tree: &OwnedFd,
    recursive: bool,
    set: u64,
    clear: u64,
    userns: RawFd,
) -> std::io::Result<()> {
    let attr = libc::mount_attr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: if userns >= 0 { userns as u64 } else { 0 },
    };
    let flags = libc::AT_EMPTY_PATH as u32
        | if recursive {
            libc::AT_RECURSIVE as u32
        } else {
            0
        };
    // SAFETY: mount_setattr on our fd with a valid mount_attr of its size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A tmpfs of our own (`fsopen`, `fsmount`), attached over `/tmp` of the private mount
/// namespace, opened as the directory the device nodes are made in.
fn attached_tmpfs() -> std::io::Result<OwnedFd> {
    let mnt = detached_tmpfs()?;
    // SAFETY: move_mount of our fd onto a path of the private namespace, then an open.
    unsafe {
        if libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c"/tmp".as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        let dir = libc::open(
            c"/tmp".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        );
        if dir < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(dir))
    }
}

fn detached_tmpfs() -> std::io::Result<OwnedFd> {
    const FSCONFIG_SET_STRING: u32 = 1;
    const FSCONFIG_CMD_CREATE: u32 = 6;
    // SAFETY: the new mount API on our own fds and NUL-terminated constants.
    unsafe {
        // FSOPEN_CLOEXEC and FSMOUNT_CLOEXEC are both 1.
        let fs = libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), 1u32);
        if fs < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fs = OwnedFd::from_raw_fd(fs as RawFd);
        let set = libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            c"mode".as_ptr(),
            c"700".as_ptr(),
            0,
        );
        let made = libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        );
        if set < 0 || made < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mnt = libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), 1u32, 0);
        if mnt < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(mnt as RawFd))
    }
}

/// A user namespace with `m`'s maps, for `MOUNT_ATTR_IDMAP`: a forked helper unshares it and
/// waits while its maps are written through ferrun's procfs and the namespace is opened, then
/// exits.
fn user_namespace(m: &IdMap) -> Result<OwnedFd> {
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error(format!("pipe: {e}")))
    };
    let (ready_r, ready_w) = pipe()?;
    let (done_r, done_w) = pipe()?;
    // SAFETY: before clone the runtime has one thread; the child makes only raw syscalls.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error(format!(
            "fork the id map helper: {}",
            std::io::Error::last_os_error()
        )));
    }
    if pid == 0 {
        // SAFETY: async-signal-safe calls only, then _exit.
        unsafe {
            let ok: u8 = u8::from(libc::unshare(libc::CLONE_NEWUSER) == 0);
            libc::write(ready_w.as_raw_fd(), (&ok as *const u8).cast(), 1);
            let mut b = 0u8;
            libc::close(done_w.as_raw_fd());
            libc::read(done_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    drop(ready_w);
    drop(done_r);
    let result = (|| {
        let mut ok = [0u8];
        let n = nix::unistd::read(&ready_r, &mut ok).unwrap_or(0);
        if n != 1 || ok[0] != 1 {
            return Err(Error(
                "the id map helper could not make a user namespace".into(),
            ));
        }
        let proc = crate::host::procfs::ProcFs::open()?;
        proc.write(&format!("{pid}/uid_map"), m.uid_map.bytes())?;
        proc.write(&format!("{pid}/gid_map"), m.gid_map.bytes())?;
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/user"))
            .map_err(|e| Error(format!("open the id map's user namespace: {e}")))?;
        Ok(OwnedFd::from(ns))
    })();
    drop(done_w);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    result
}
