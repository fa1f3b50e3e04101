//! Path work inside the rootfs without allocating and without following a symlink out of it:
//! every lookup is `openat2(RESOLVE_IN_ROOT)` on the rootfs fd, and the kernel is then pointed at
//! the result as `/proc/self/fd/N`.

use crate::errno;
use libc::{c_char, c_int};

pub(crate) const PATH_MAX: usize = 4096;
const RESOLVE_NO_XDEV: u64 = 0x01;
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;
const RESOLVE_IN_ROOT: u64 = 0x10;
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// An fd that closes when dropped.
pub(crate) struct Fd(pub c_int);

impl Fd {
    /// Gives the fd up without closing it: its new holder closes it.
    pub(crate) fn into_raw(self) -> c_int {
        let fd = self.0;
        std::mem::forget(self);
        fd
    }

    /// Hands the fd over to an `OwnedFd`.
    pub(crate) fn into_owned(self) -> std::os::fd::OwnedFd {
        use std::os::fd::FromRawFd;
        // SAFETY: the fd was ours, and we gave our handle on it up.
        unsafe { std::os::fd::OwnedFd::from_raw_fd(self.into_raw()) }
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        if self.0 >= 0 {
            // SAFETY: we own the fd.
            unsafe { libc::close(self.0) };
        }
    }
}

/// Opens `path` (NUL-terminated) resolved inside `root`.
pub(crate) fn open_in_root(root: c_int, path: &[u8], flags: c_int) -> Result<Fd, i32> {
    open_how(root, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
}

/// Opens `rel` (NUL-terminated, relative) below the procfs `procfd`: no symlink followed, no
/// mount crossed, and the file checked to be on procfs.
pub(crate) fn open_in_procfs(procfd: c_int, rel: &[u8], flags: c_int) -> Result<Fd, i32> {
    let resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
    let fd = open_how(procfd, rel, flags, resolve)?;
    if !on_procfs(fd.0)? {
        return Err(crate::E_NOT_PROCFS);
    }
    Ok(fd)
}

pub(crate) fn on_procfs(fd: c_int) -> Result<bool, i32> {
    // SAFETY: an all-zero statfs is a valid out-buffer for fstatfs on our fd.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(fd, &mut st) } < 0 {
        return Err(errno());
    }
    Ok(st.f_type as i64 == PROC_SUPER_MAGIC)
}

/// Whether `fd` is the root of a procfs instance (inode 1).
pub(crate) fn is_procfs_root(fd: c_int) -> Result<bool, i32> {
    // SAFETY: an all-zero stat is a valid out-buffer for fstat on our fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(errno());
    }
    Ok(st.st_ino == 1 && on_procfs(fd)?)
}

/// A procfs of this process's own: a fresh instance (`fsopen`), else a detached clone of the
/// `/proc` mount (submounts included only where a user namespace locks them together; lookups
/// never cross into them). Nothing the container made can be mounted on either.
pub(crate) fn open_procfs() -> Result<Fd, i32> {
    const FSOPEN_CLOEXEC: u32 = 1;
    const FSCONFIG_CMD_CREATE: u32 = 6;
    const FSMOUNT_CLOEXEC: u32 = 1;
    const OPEN_TREE_CLONE: u32 = 1;
    let attrs = ferrun_plans::MOUNT_ATTR_NOSUID
        | ferrun_plans::MOUNT_ATTR_NODEV
        | ferrun_plans::MOUNT_ATTR_NOEXEC;
    // SAFETY: plain syscalls on static strings and fds we own.
    unsafe {
        let fs = Fd(libc::syscall(libc::SYS_fsopen, c"proc".as_ptr(), FSOPEN_CLOEXEC) as c_int);
        if fs.0 >= 0
            && libc::syscall(
                libc::SYS_fsconfig,
                fs.0,
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<c_char>(),
                std::ptr::null::<c_char>(),
                0,
            ) == 0
        {
            let m = Fd(libc::syscall(libc::SYS_fsmount, fs.0, FSMOUNT_CLOEXEC, attrs) as c_int);
            if m.0 >= 0 && on_procfs(m.0)? {
                return Ok(m);
            }
        }
        for recursive in [0, libc::AT_RECURSIVE as u32] {
            let m = Fd(libc::syscall(
                libc::SYS_open_tree,
                libc::AT_FDCWD,
                c"/proc".as_ptr(),
                OPEN_TREE_CLONE | libc::O_CLOEXEC as u32 | recursive,
            ) as c_int);
            if m.0 >= 0 {
                return if on_procfs(m.0)? {
                    Ok(m)
                } else {
                    Err(crate::E_NOT_PROCFS)
                };
            }
        }
        Err(errno())
    }
}

/// Opens a path relative to the working directory, never through a `/proc` magic link.
pub(crate) fn open_no_magic(path: &[u8], flags: c_int) -> Result<Fd, i32> {
    open_how(libc::AT_FDCWD, path, flags, RESOLVE_NO_MAGICLINKS)
}

fn open_how(dir: c_int, path: &[u8], flags: c_int, resolve: u64) -> Result<Fd, i32> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    let root = dir;
    // The kernel asks to retry when a rename raced the lookup; a bounded number of times.
    for _ in 0..64 {
        // SAFETY: path is NUL-terminated, how is a valid open_how.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root,
                path.as_ptr() as *const c_char,
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if r >= 0 {
            return Ok(Fd(r as c_int));
        }
        let e = errno();
        if e != libc::EAGAIN && e != libc::EINTR {
            return Err(e);
        }
    }
    Err(libc::EAGAIN)
}

/// `/proc/self/fd/N\0` in a stack buffer.
pub(crate) struct FdPath {
    buf: [u8; 32],
}

impl FdPath {
    pub fn new(fd: c_int) -> FdPath {
        let mut buf = [0u8; 32];
        let prefix = b"/proc/self/fd/";
        buf[..prefix.len()].copy_from_slice(prefix);
        let mut digits = [0u8; 12];
        let mut n = fd.unsigned_abs();
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for i in 0..len {
            buf[prefix.len() + i] = digits[len - 1 - i];
        }
        FdPath { buf }
    }

    pub fn ptr(&self) -> *const c_char {
        self.buf.as_ptr().cast()
    }
}

/// A NUL-terminated copy of a path in a stack buffer, to cut at its separators.
struct PathBuf {
    buf: [u8; PATH_MAX],
    len: usize,
}

impl PathBuf {
    fn new(path: &[u8]) -> Result<PathBuf, i32> {
        let bytes = path.strip_suffix(b"\0").unwrap_or(path);
        if bytes.len() >= PATH_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        let mut buf = [0u8; PATH_MAX];
        buf[..bytes.len()].copy_from_slice(bytes);
        Ok(PathBuf {
            buf,
            len: bytes.len(),
        })
    }
}

/// Creates every missing directory of `path` (NUL-terminated, absolute, known to be missing)
/// inside `root`. Usually only its last component is missing (its parent is in the image), so
/// that is tried first: one open and a mkdirat.
pub(crate) fn mkdir_missing(root: c_int, path: &[u8]) -> Result<(), i32> {
    with_parent(root, path, |dir, name| {
        // SAFETY: name is NUL-terminated.
        let r = unsafe { libc::mkdirat(dir, name, 0o755) };
        if r < 0 && errno() != libc::EEXIST {
            Err(errno())
        } else {
            Ok(())
        }
    })
}

/// Every component of `path` in turn, from the root: made a directory where nothing is there.
/// A loop, not a recursion: a path of thousands of components must not exhaust the stack.
fn mkdir_each(root: c_int, path: &[u8]) -> Result<(), i32> {
    let mut p = PathBuf::new(path)?;
    let len = p.len;
    let mut end = 1;
    while end <= len {
        if end == len || p.buf[end] == b'/' {
            let saved = p.buf[end];
            p.buf[end] = 0;
            let r = ensure_dir(root, &mut p, end);
            p.buf[end] = saved;
            r?;
        }
        end += 1;
    }
    Ok(())
}

/// Makes `p.buf[..end]` (NUL at `end`) a directory if nothing is there.
fn ensure_dir(root: c_int, p: &mut PathBuf, end: usize) -> Result<(), i32> {
    match open_in_root(root, &p.buf[..=end], libc::O_PATH) {
        Ok(_) => return Ok(()),
        Err(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    in_parent(root, &mut p.buf[..=end], |dir, name| {
        // SAFETY: name is NUL-terminated.
        let r = unsafe { libc::mkdirat(dir, name, 0o755) };
        if r < 0 && errno() != libc::EEXIST {
            Err(errno())
        } else {
            Ok(())
        }
    })
}

/// Where the last component of `path` (NUL-terminated) is: (its separator, its end), trailing
/// separators left out.
fn split_last(path: &[u8]) -> Result<(usize, usize), i32> {
    let nul = path.iter().position(|&b| b == 0).ok_or(libc::EINVAL)?;
    let mut end = nul;
    while end > 0 && path[end - 1] == b'/' {
        end -= 1;
    }
    let slash = path[..end]
        .iter()
        .rposition(|&b| b == b'/')
        .ok_or(libc::EINVAL)?;
    if slash + 1 >= end {
        return Err(libc::EINVAL);
    }
    Ok((slash, end))
}

/// Opens the directory before `path[slash]`, inside `root`.
fn open_parent(root: c_int, path: &mut [u8], slash: usize) -> Result<Fd, i32> {
    if slash == 0 {
        return open_in_root(root, b"/\0", libc::O_PATH | libc::O_DIRECTORY);
    }
    path[slash] = 0;
    let r = open_in_root(root, &path[..=slash], libc::O_PATH | libc::O_DIRECTORY);
    path[slash] = b'/';
    r
}

/// Opens the parent of `path` (NUL-terminated, inside `root`) and calls `f(parent fd, name)`.
/// `path` is cut at its last separator while `f` runs.
fn in_parent<T>(
    root: c_int,
    path: &mut [u8],
    f: impl FnOnce(c_int, *const c_char) -> Result<T, i32>,
) -> Result<T, i32> {
    let (slash, name_end) = split_last(path)?;
    let saved_end = path[name_end];
    path[name_end] = 0;
    let result = match open_parent(root, path, slash) {
        Ok(dir) => f(dir.0, path[slash + 1..].as_ptr().cast()),
        Err(e) => Err(e),
    };
    path[name_end] = saved_end;
    result
}

/// Ensures the parent directories of `path` exist, then runs `f(parent fd, name)`. The parent
/// is opened first; only if it is missing are the directories made, one by one.
pub(crate) fn with_parent<T>(
    root: c_int,
    path: &[u8],
    f: impl FnOnce(c_int, *const c_char) -> Result<T, i32>,
) -> Result<T, i32> {
    let mut p = PathBuf::new(path)?;
    let len = p.len;
    let buf = &mut p.buf[..=len];
    let (slash, name_end) = split_last(buf)?;
    buf[name_end] = 0;
    let dir = match open_parent(root, buf, slash) {
        Err(libc::ENOENT) if slash > 0 => {
            buf[slash] = 0;
            mkdir_each(root, &buf[..=slash])?;
            buf[slash] = b'/';
            open_parent(root, buf, slash)?
        }
        other => other?,
    };
    f(dir.0, buf[slash + 1..].as_ptr().cast())
}

/// Creates an empty regular file at `path` inside `root` if nothing is there.
pub(crate) fn ensure_file(root: c_int, path: &[u8]) -> Result<(), i32> {
    with_parent(root, path, |dir, name| {
        // O_EXCL: an existing entry (a FIFO or a device the image put there) is never opened;
        // O_NOFOLLOW: a dangling symlink is not followed out of the rootfs.
        let flags =
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW;
        // SAFETY: name is NUL-terminated.
        let fd = unsafe { libc::openat(dir, name, flags, 0o644) };
        if fd >= 0 {
            // SAFETY: we own fd.
            unsafe { libc::close(fd) };
            Ok(())
        } else {
            match errno() {
                libc::EEXIST | libc::ELOOP | libc::EISDIR => Ok(()),
                e => Err(e),
            }
        }
    })
}

/// Whether a host path is a directory (follows symlinks, as `mount --bind` does).
pub(crate) fn is_dir(path: &[u8]) -> Result<bool, i32> {
    // SAFETY: an all-zero stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: path is NUL-terminated.
    if unsafe { libc::stat(path.as_ptr().cast(), &mut st) } < 0 {
        return Err(errno());
    }
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// When `path` (NUL-terminated, inside `root`) ends in a symlink, writes the path its target
/// names into `out` (NUL-terminated; an absolute target is rooted at `root`, a relative one at the
/// link's directory) and returns its length. `None` when the last component is no symlink.
pub(crate) fn link_target(
    root: c_int,
    path: &[u8],
    out: &mut [u8; PATH_MAX],
) -> Result<Option<usize>, i32> {
    let mut p = PathBuf::new(path)?;
    let len = p.len;
    let Some(slash) = p.buf[..len].iter().rposition(|&b| b == b'/') else {
        return Ok(None);
    };
    let mut link = [0u8; PATH_MAX];
    let n = in_parent(root, &mut p.buf[..=len], |dir, name| {
        // SAFETY: name is NUL-terminated; link is a valid out-buffer.
        let n = unsafe { libc::readlinkat(dir, name, link.as_mut_ptr().cast(), PATH_MAX - 1) };
        if n < 0 { Err(errno()) } else { Ok(n as usize) }
    });
    let n = match n {
        Ok(n) => n,
        Err(libc::EINVAL) | Err(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    let target = &link[..n];
    let total = if target.first() == Some(&b'/') {
        if n >= PATH_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        out[..n].copy_from_slice(target);
        n
    } else {
        // The link's directory, then the target.
        let dir_len = slash.max(1);
        let total = dir_len + 1 + n;
        if total >= PATH_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        out[..dir_len].copy_from_slice(&p.buf[..dir_len]);
        out[dir_len] = b'/';
        out[dir_len + 1..total].copy_from_slice(target);
        total
    };
    out[total] = 0;
    Ok(Some(total))
}

/// Copies the tree under `src` into `dst` (both open directories): directories, regular files,
/// symlinks and special files, with their modes and owners; never following a symlink. Stack
/// buffers only; nested at most `depth` levels (deeper content is refused with ELOOP).
pub(crate) fn copy_tree(src: c_int, dst: c_int, depth: u32) -> Result<(), i32> {
    if depth == 0 {
        return Err(libc::ELOOP);
    }
    let mut buf = [0u8; 2048];
    loop {
        // SAFETY: getdents64 fills our stack buffer.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, src, buf.as_mut_ptr(), buf.len()) };
        if n < 0 {
            return Err(errno());
        }
        if n == 0 {
            return Ok(());
        }
        let mut off = 0usize;
        while off + 19 < n as usize {
            // struct linux_dirent64 { u64 ino; i64 off; u16 reclen; u8 type; char name[]; }
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            if reclen == 0 || off + reclen > n as usize {
                return Err(libc::EIO);
            }
            let name = &buf[off + 19..off + reclen];
            let Some(len) = name.iter().position(|b| *b == 0) else {
                return Err(libc::EIO);
            };
            let entry = &name[..len + 1];
            off += reclen;
            if entry == b".\0" || entry == b"..\0" || len == 0 {
                continue;
            }
            copy_entry(src, dst, entry, depth)?;
        }
    }
}

fn copy_entry(src: c_int, dst: c_int, name: &[u8], depth: u32) -> Result<(), i32> {
    let p = name.as_ptr() as *const c_char;
    // SAFETY: plain syscalls on our fds, a NUL-terminated name and stack buffers.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstatat(src, p, &mut st, libc::AT_SYMLINK_NOFOLLOW) < 0 {
            return Err(errno());
        }
        let mode = st.st_mode & 0o7777;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                if libc::mkdirat(dst, p, mode) < 0 && errno() != libc::EEXIST {
                    return Err(errno());
                }
                let from = Fd(libc::openat(
                    src,
                    p,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                ));
                let to = Fd(libc::openat(
                    dst,
                    p,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                ));
                if from.0 < 0 || to.0 < 0 {
                    return Err(errno());
                }
                copy_tree(from.0, to.0, depth - 1)?;
                libc::fchown(to.0, st.st_uid, st.st_gid);
                libc::fchmod(to.0, mode);
                Ok(())
            }
            libc::S_IFREG => {
                // O_NONBLOCK: a fifo swapped in after the stat must not block us.
                let from = Fd(libc::openat(
                    src,
                    p,
                    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
                ));
                if from.0 < 0 {
                    return Err(errno());
                }
                let mut now: libc::stat = std::mem::zeroed();
                if libc::fstat(from.0, &mut now) < 0 || now.st_mode & libc::S_IFMT != libc::S_IFREG
                {
                    return Err(libc::EIO);
                }
                let to = Fd(libc::openat(
                    dst,
                    p,
                    libc::O_WRONLY
                        | libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    mode as libc::c_uint,
                ));
                if to.0 < 0 {
                    return Err(errno());
                }
                let mut left = st.st_size as usize;
                while left > 0 {
                    let n = libc::sendfile(to.0, from.0, std::ptr::null_mut(), left.min(1 << 30));
                    if n < 0 {
                        return Err(errno());
                    }
                    if n == 0 {
                        break;
                    }
                    left -= n as usize;
                }
                // chown first: it clears set-id bits, which the chmod then restores.
                libc::fchown(to.0, st.st_uid, st.st_gid);
                libc::fchmod(to.0, mode);
                Ok(())
            }
            libc::S_IFLNK => {
                let mut target = [0u8; PATH_MAX];
                let n = libc::readlinkat(src, p, target.as_mut_ptr().cast(), PATH_MAX - 1);
                if n < 0 {
                    return Err(errno());
                }
                target[n as usize] = 0;
                if libc::symlinkat(target.as_ptr().cast(), dst, p) < 0 {
                    return Err(errno());
                }
                libc::fchownat(dst, p, st.st_uid, st.st_gid, libc::AT_SYMLINK_NOFOLLOW);
                Ok(())
            }
            _ => {
                if libc::mknodat(dst, p, st.st_mode, st.st_rdev) < 0 {
                    return Err(errno());
                }
                libc::fchownat(dst, p, st.st_uid, st.st_gid, libc::AT_SYMLINK_NOFOLLOW);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a forked child with a mount namespace of its own: a tmpfs over `/proc/sys/kernel`
    /// hides the real files from `/proc`, not from `open_procfs()`; lookups there follow no
    /// symlink, take no absolute path, and refuse what is not procfs.
    #[test]
    fn our_procfs_ignores_overmounts_and_follows_no_symlink() {
        // SAFETY: the child makes only syscalls and ends with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = (|| -> i32 {
                let null = std::ptr::null::<c_char>();
                // SAFETY: plain syscalls on static strings.
                unsafe {
                    if libc::unshare(libc::CLONE_NEWNS) != 0 {
                        return 10;
                    }
                    let rec = libc::MS_REC | libc::MS_PRIVATE;
                    if libc::mount(null, c"/".as_ptr(), null, rec, std::ptr::null()) != 0 {
                        return 11;
                    }
                    let (t, dir) = (c"tmpfs".as_ptr(), c"/proc/sys/kernel".as_ptr());
                    if libc::mount(t, dir, t, 0, std::ptr::null()) != 0 {
                        return 12;
                    }
                }
                let hostname = b"/proc/sys/kernel/hostname\0";
                if open_how(libc::AT_FDCWD, hostname, libc::O_RDONLY, 0).is_ok() {
                    return 13;
                }
                let Ok(p) = open_procfs() else { return 14 };
                if open_in_procfs(p.0, b"sys/kernel/hostname\0", libc::O_RDONLY).is_err() {
                    return 15;
                }
                if open_in_procfs(p.0, b"self/status\0", libc::O_RDONLY).err() != Some(libc::ELOOP)
                {
                    return 16;
                }
                if open_in_procfs(p.0, b"/etc/passwd\0", libc::O_RDONLY).is_ok() {
                    return 17;
                }
                let Ok(tmp) = open_how(libc::AT_FDCWD, b"/tmp\0", libc::O_PATH, 0) else {
                    return 18;
                };
                if open_in_procfs(tmp.0, b".\0", libc::O_PATH).err() != Some(crate::E_NOT_PROCFS) {
                    return 19;
                }
                0
            })();
            // SAFETY: ends the forked child at once.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: reaping our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "{status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "the step that failed");
    }
}
