//! The runtime's writes under `/proc` (a child's id maps and `oom_score_adj`): through a procfs
//! that ferrun opened itself, resolved without following a symlink or crossing a mount, and
//! checked to be on procfs. Uses only libc.

use crate::error::{Context, Result};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const PROC_SUPER_MAGIC: libc::c_long = 0x9fa0;
/// The root directory of every procfs instance.
const PROC_ROOT_INO: u64 = 1;

/// A procfs root of ferrun's own.
pub struct ProcFs(OwnedFd);

fn on_procfs(fd: RawFd) -> std::io::Result<bool> {
    // SAFETY: fstatfs into a zeroed out-buffer on our fd.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(fd, &mut st) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_type as libc::c_long == PROC_SUPER_MAGIC)
}

fn is_proc_root(fd: &OwnedFd) -> bool {
    use std::os::unix::fs::MetadataExt;
    let file = std::mem::ManuallyDrop::new(
        // SAFETY: borrowed for one fstat; ManuallyDrop keeps it from being closed.
        unsafe { std::fs::File::from_raw_fd(fd.as_raw_fd()) },
    );
    on_procfs(fd.as_raw_fd()).unwrap_or(false)
        && file.metadata().is_ok_and(|m| m.ino() == PROC_ROOT_INO)
}

fn fresh(fd: libc::c_long) -> Option<OwnedFd> {
    // SAFETY: a non-negative return is a new fd we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

impl ProcFs {
    /// A detached clone of the `/proc` mount (no submount comes with it), else a new procfs
    /// instance, else `/proc` itself where ferrun may do neither (lookups then still refuse to
    /// cross a mount). The root is checked to be a procfs root.
    pub fn open() -> Result<ProcFs> {
        const OPEN_TREE_CLONE: u32 = 1;
        // SAFETY: plain syscalls on static strings.
        let tree = unsafe {
            libc::syscall(
                libc::SYS_open_tree,
                libc::AT_FDCWD,
                c"/proc".as_ptr(),
                OPEN_TREE_CLONE | libc::O_CLOEXEC as u32,
            )
        };
        let fd = fresh(tree).or_else(new_instance).or_else(|| {
            // SAFETY: open of a static path.
            fresh(unsafe {
                libc::open(
                    c"/proc".as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                )
            } as libc::c_long)
        });
        match fd {
            Some(fd) if is_proc_root(&fd) => Ok(ProcFs(fd)),
            Some(_) => crate::bail!("/proc is not a procfs root"),
            None => Err(std::io::Error::last_os_error()).ctx(|| "open /proc".into()),
        }
    }

    /// Writes `bytes` to `rel` (e.g. `1234/uid_map`) in one `write`.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        let what = || format!("write /proc/{rel}");
        let mut f = self.open_file(rel).ctx(what)?;
        f.write_all(bytes).ctx(what)
    }

    fn open_file(&self, rel: &str) -> std::io::Result<std::fs::File> {
        const RESOLVE_NO_XDEV: u64 = 0x01;
        const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
        const RESOLVE_NO_SYMLINKS: u64 = 0x04;
        const RESOLVE_BENEATH: u64 = 0x08;
        #[repr(C)]
        struct OpenHow {
            flags: u64,
            mode: u64,
            resolve: u64,
        }
        let path = std::ffi::CString::new(rel)
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        let how = OpenHow {
            flags: (libc::O_WRONLY | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve: RESOLVE_BENEATH
                | RESOLVE_NO_SYMLINKS
                | RESOLVE_NO_MAGICLINKS
                | RESOLVE_NO_XDEV,
        };
        // SAFETY: openat2 with a NUL-terminated path and a valid open_how.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.0.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        let fd = fresh(fd).ok_or_else(std::io::Error::last_os_error)?;
        if !on_procfs(fd.as_raw_fd())? {
            return Err(std::io::Error::other("not on procfs"));
        }
        Ok(std::fs::File::from(fd))
    }
}

/// `fsopen("proc")` → `fsmount`: a procfs instance nothing else has seen.
fn new_instance() -> Option<OwnedFd> {
    const FSOPEN_CLOEXEC: u32 = 1;
    const FSCONFIG_CMD_CREATE: u32 = 6;
    const FSMOUNT_CLOEXEC: u32 = 1;
    // SAFETY: plain syscalls on a static string and fds we own.
    unsafe {
        let fs = fresh(libc::syscall(
            libc::SYS_fsopen,
            c"proc".as_ptr(),
            FSOPEN_CLOEXEC,
        ))?;
        let null = std::ptr::null::<libc::c_char>();
        if libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            null,
            null,
            0,
        ) < 0
        {
            return None;
        }
        fresh(libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            0,
        ))
    }
}
