//! The state store: one directory per container under the root (`/run/ferrun/<id>/`) holding
//! `state.json` (written atomically) and, while the container is `created`, `exec.fifo`, which
//! `start` writes to release the container process. A directory appears with its state in it
//! (claimed by rename). It may use `cgroups` (a state holds its cgroups), `host` and the leaves.

pub mod oci;

use crate::bail;
use crate::error::{Context, Error, Result};
use crate::host::files::stale;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Where `restore` binds the rootfs for criu, in the container's directory.
pub const CRIU_ROOT: &str = "criu-root";

/// What ferrun keeps about a container.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub pid: i32,
    /// Start time of `pid` (field 22 of `/proc/<pid>/stat`), to tell a reused pid apart.
    pub pid_start: u64,
    pub bundle: String,
    pub rootfs: String,
    pub created: String,
    pub owner: String,
    /// Plan cache key the container was made from.
    pub plan: String,
    /// No other container could use that plan: it goes with this one.
    #[serde(default)]
    pub plan_private: bool,
    /// The container's cgroups; saved before they are made, so that a create killed half-way
    /// can still be cleaned up by `delete`.
    #[serde(default)]
    pub cgroup: Option<crate::cgroups::Cgroup>,
    /// The config's hooks, for `start` and `delete`; absent when there are none.
    #[serde(default)]
    pub hooks: Option<ferrun_plans::Hooks>,
    /// The caller's `NOTIFY_SOCKET`, which `start` forwards the container's READY=1 to.
    #[serde(default)]
    pub notify: Option<String>,
    /// crun's `--config`: the config file the container was made from, when not the bundle's.
    #[serde(default)]
    pub config: Option<String>,
}

/// OCI container status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// A container id: letters, digits, `_ + - .`, not `.` or `..`; no `/` or control characters.
pub fn check_id(id: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "_+-.".contains(c);
    if id.is_empty() || id == "." || id == ".." || id.len() > 1024 || !id.chars().all(ok_char) {
        bail!("invalid container id {id:?}: use letters, digits and _ + - . only");
    }
    Ok(())
}

/// The state directory tree.
#[derive(Clone, Debug)]
pub struct Store {
    pub root: PathBuf,
}

impl Store {
    pub fn new(root: &Path) -> Store {
        Store {
            root: root.to_path_buf(),
        }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub fn fifo(&self, id: &str) -> PathBuf {
        self.dir(id).join("exec.fifo")
    }

    fn ensure_root(&self) -> Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .ctx(|| format!("create state root {}", self.root.display()))
    }

    /// Claims the container's id: its directory appears with `state.json` already in it (made
    /// under a staging name, then renamed into place), so a directory without a readable state
    /// always means a state lost or damaged, never a claim under way. Fails if the id is taken.
    pub fn claim(&self, s: &State) -> Result<PathBuf> {
        check_id(&s.id)?;
        self.ensure_root()?;
        let dir = self.dir(&s.id);
        if dir.exists() {
            bail!("container with id {} already exists", s.id);
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        // `@` is in no container id: `ids()` never takes a staging directory for a container.
        let stage = self
            .root
            .join(format!("@claim-{}-{nanos}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&stage)
            .ctx(|| format!("create {}", stage.display()))?;
        let staged = serde_json::to_vec(s)
            .map_err(|e| Error(format!("encode state: {e}")))
            .and_then(|bytes| {
                std::fs::write(stage.join("state.json"), bytes)
                    .ctx(|| format!("write state of {}", s.id))
            })
            .and_then(|()| match std::fs::rename(&stage, &dir) {
                Ok(()) => Ok(()),
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY | libc::EEXIST)) => {
                    Err(Error(format!("container with id {} already exists", s.id)))
                }
                Err(e) => Err(e).ctx(|| format!("create {}", dir.display())),
            });
        if staged.is_err() {
            let _ = std::fs::remove_dir_all(&stage);
        }
        staged.map(|()| dir)
    }

    /// Writes `state.json` atomically.
    pub fn save(&self, s: &State) -> Result<()> {
        let dir = self.dir(&s.id);
        let tmp = dir.join(".state.json.tmp");
        let bytes = serde_json::to_vec(s).map_err(|e| Error(format!("encode state: {e}")))?;
        std::fs::write(&tmp, bytes).ctx(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join("state.json")).ctx(|| format!("write state of {}", s.id))
    }

    /// Reads a container's state; an unknown id is an error that says "does not exist".
    pub fn load(&self, id: &str) -> Result<State> {
        check_id(id)?;
        let path = self.dir(id).join("state.json");
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                Error(format!(
                    "container {id}: corrupt state {}: {}",
                    path.display(),
                    ferrun_plans::clip(&e.to_string(), 200)
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("container {id} does not exist")
            }
            Err(e) => Err(e).ctx(|| format!("read {}", path.display())),
        }
    }

    /// For a container whose state could not be read (`why`): `Ok` when it has no directory
    /// (nothing to remove), else an error that keeps it: its process and cgroups may still
    /// exist, and nothing is removed on a guess.
    pub fn check_unreadable(&self, id: &str, why: &Error) -> Result<()> {
        let dir = self.dir(id);
        if !dir.exists() {
            return Ok(());
        }
        bail!(
            "{}: not deleted, since its process and cgroups may still exist: stop them, then remove {}",
            why.0,
            dir.display()
        )
    }

    /// Every container id with a state directory; stale staging directories of claims are
    /// removed on the way.
    pub fn ids(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(e).ctx(|| format!("read {}", self.root.display())),
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("@claim-") {
                // A claim whose create was killed before the rename.
                if stale(&e.path()) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
                continue;
            }
            // `@cache` holds the plan and filter caches; `@` is never in a container id.
            if !name.starts_with('@') && e.file_type().is_ok_and(|t| t.is_dir()) {
                ids.push(name);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// The container's status, from its process and its fifo.
    pub fn status(&self, s: &State) -> Status {
        if s.pid <= 0 {
            // Saved before the process existed: a create under way, or one killed half-way
            // (which `delete --force` cleans up).
            return Status::Creating;
        }
        if !process_alive(s.pid, s.pid_start) {
            return Status::Stopped;
        }
        if s.cgroup.as_ref().is_some_and(|c| c.is_frozen()) {
            return Status::Paused;
        }
        if self.fifo(&s.id).exists() {
            Status::Created
        } else {
            Status::Running
        }
    }

    /// Removes the container's directory.
    pub fn remove(&self, id: &str) -> Result<()> {
        let dir = self.dir(id);
        // Usually a real directory holding only state.json: three syscalls, where
        // remove_dir_all makes ten. A symlink (never followed) or anything else inside (an
        // exec fifo, a notify socket) takes the long way.
        if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            let _ = std::fs::remove_file(dir.join("state.json"));
            if std::fs::remove_dir(&dir).is_ok() {
                return Ok(());
            }
        }
        // A restore killed half-way leaves the rootfs bound here for criu: unbound first, so
        // that removing the directory never walks into the container's files.
        let criu_root = dir.join(CRIU_ROOT);
        if criu_root.exists() {
            let _ = nix::mount::umount2(&criu_root, nix::mount::MntFlags::MNT_DETACH);
            if std::fs::remove_dir(&criu_root).is_err() && criu_root.exists() {
                bail!(
                    "remove {}: {} is still there (a mount?)",
                    dir.display(),
                    criu_root.display()
                );
            }
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx(|| format!("remove {}", dir.display())),
        }
    }
}

/// Field 22 (starttime) and field 3 (state) of `/proc/<pid>/stat`.
pub fn proc_stat(pid: i32) -> Option<(u64, char)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((start, state))
}

/// The process exists, is not a zombie, and is the one we started.
pub fn process_alive(pid: i32, start: u64) -> bool {
    matches!(proc_stat(pid), Some((st, state)) if st == start && state != 'Z' && state != 'X')
}
