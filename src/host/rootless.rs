//! Whether ferrun runs rootless, and where a rootless ferrun keeps its state.
//!
//! The rule is runc's and crun's: rootless means the effective uid is not 0, or it is 0 only
//! inside a user namespace whose uid map is not the full identity (`podman unshare`). A
//! rootless ferrun cannot write `/run`, so its default root is `$XDG_RUNTIME_DIR/ferrun`.

use std::path::PathBuf;

/// The root used when `--root` is not given and ferrun is not rootless.
pub const DEFAULT_ROOT: &str = "/run/ferrun";

/// Rootless: the effective uid is not 0, or ferrun is root only in a partial user namespace.
/// Probed once per process: a command never changes its own ids or user namespace.
pub fn detect() -> bool {
    static ROOTLESS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOTLESS.get_or_init(|| {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return true;
        }
        // The initial user namespace maps every id to itself; anything else is a namespace
        // someone made, and (unless it maps the full range) root there is not root.
        std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| !is_full_map(&m))
    })
}

fn is_full_map(map: &str) -> bool {
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

/// The state root without `--root`: `/run/ferrun` for root; for a rootless caller
/// `$XDG_RUNTIME_DIR/ferrun`, or `/run/user/<euid>/ferrun` when that directory is the caller's.
pub fn default_root(rootless: bool) -> Result<PathBuf, String> {
    if !rootless {
        return Ok(PathBuf::from(DEFAULT_ROOT));
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if !dir.is_absolute() {
            return Err(format!(
                "rootless: XDG_RUNTIME_DIR {} is not an absolute path: fix it or pass --root",
                dir.display()
            ));
        }
        return Ok(dir.join("ferrun"));
    }
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    let run_user = PathBuf::from(format!("/run/user/{euid}"));
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(&run_user) {
        Ok(m) if m.is_dir() && m.uid() == euid && m.mode() & 0o022 == 0 => {
            Ok(run_user.join("ferrun"))
        }
        _ => Err(format!(
            "rootless: XDG_RUNTIME_DIR is not set and {} is not yours alone: set \
             XDG_RUNTIME_DIR or pass --root",
            run_user.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_identity_over_every_id_is_the_initial_namespace() {
        assert!(is_full_map("         0          0 4294967295\n"));
        assert!(!is_full_map("         0       1001          1\n"));
        assert!(!is_full_map("0 0 4294967295\n1 1 1\n"));
        assert!(!is_full_map("0 100000 65536\n"));
    }
}
