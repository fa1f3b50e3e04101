//! The runtime's writes under `/proc` (a child's id maps and `oom_score_adj`): through a procfs
//! that ferrun opened itself, resolved without following a symlink or crossing a mount, and
//! checked to be on procfs. The executor's procfs functions do the work: the container process
//! writes its sysctls the same way.

use crate::error::{Context, Result};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

/// A procfs root of ferrun's own.
pub struct ProcFs(OwnedFd);

impl ProcFs {
    /// A new procfs instance, else a detached clone of the `/proc` mount, else `/proc` itself
    /// where ferrun may make neither (its lookups still refuse to cross a mount). The root is
    /// checked to be a procfs root.
    pub fn open() -> Result<ProcFs> {
        let fd = match ferrun_executor::open_procfs() {
            Ok(fd) => fd,
            Err(_) => std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)
                .open("/proc")
                .map(OwnedFd::from)
                .ctx(|| "open /proc".into())?,
        };
        if !ferrun_executor::is_procfs_root(fd.as_raw_fd()).unwrap_or(false) {
            crate::bail!("/proc is not a procfs root");
        }
        Ok(ProcFs(fd))
    }

    /// [`ProcFs::write`] that reports only the errno (`E_NOT_PROCFS` off procfs): for a helper
    /// process that passes it on.
    pub fn write_errno(&self, rel: &str, bytes: &[u8]) -> std::result::Result<(), i32> {
        let path = std::ffi::CString::new(rel).map_err(|_| libc::EINVAL)?;
        let fd = ferrun_executor::open_in_procfs(self.0.as_raw_fd(), &path, libc::O_WRONLY)?;
        let mut f = std::fs::File::from(fd);
        f.write_all(bytes)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
    }

    /// Writes `bytes` to `rel` (e.g. `1234/uid_map`) in one `write`.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        let what = || format!("write /proc/{rel}");
        let path = std::ffi::CString::new(rel)
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
            .ctx(what)?;
        let fd = ferrun_executor::open_in_procfs(self.0.as_raw_fd(), &path, libc::O_WRONLY)
            .map_err(|e| match e {
                ferrun_executor::E_NOT_PROCFS => std::io::Error::other("not on procfs"),
                e => std::io::Error::from_raw_os_error(e),
            })
            .ctx(what)?;
        std::fs::File::from(fd).write_all(bytes).ctx(what)
    }
}
