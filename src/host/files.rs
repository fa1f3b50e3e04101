//! Small files the runtime writes or sweeps: the pid file, written atomically, and the age test
//! for temporaries a killed writer left.

use crate::error::{Context, Result};
use std::io::Write;
use std::path::Path;

/// Writes the pid file atomically: the decimal pid, no newline.
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // A fresh name, created exclusively: never written through something already there.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(".ferrun-pid-{}-{nanos}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .ctx(|| format!("write pid file {}", tmp.display()))?;
    f.write_all(pid.to_string().as_bytes())
        .ctx(|| format!("write pid file {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, path).ctx(|| format!("write pid file {}", path.display()))
}

/// A temporary file or directory its writer left: older than a minute. A writer holds one for
/// microseconds; the age, unlike a pid, means the same in every pid namespace sharing the root.
pub fn stale(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > std::time::Duration::from_secs(60))
}
