//! The plan cache: plans stored by input hash under `<root>/@cache/plans/`, written atomically. A
//! corrupt, truncated or foreign-version entry is rebuilt, never trusted. Also owns the probe of
//! the host facts that the planner takes as input.

use crate::error::{Context, Result};
use ferrun_planner::{HostFacts, Input, Options};
use ferrun_plans::Plan;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Probes what the planner needs to know about this machine.
pub fn host_facts() -> HostFacts {
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    // SAFETY: geteuid/getegid cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    HostFacts {
        arch: std::env::consts::ARCH.to_string(),
        last_cap,
        uid,
        gid,
        cgroups: crate::cgroups::probe_layout(),
    }
}

/// How a plan was obtained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Read from the cache.
    Hit,
    /// Planned now and stored.
    Stored,
    /// Planned now; the cache entry was unusable (the reason) and was replaced.
    Rebuilt(String),
    /// Planned now; the cache could not be written (the reason).
    Uncached(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Hit => write!(f, "hit"),
            Origin::Stored => write!(f, "miss, stored"),
            Origin::Rebuilt(why) => write!(f, "rebuilt ({why})"),
            Origin::Uncached(why) => write!(f, "miss, not stored ({why})"),
        }
    }
}

pub struct Loaded {
    pub plan: Plan,
    pub key: String,
    pub origin: Origin,
    pub path: PathBuf,
    /// Seccomp filters reused from the filter cache and compiled, while planning.
    pub filters_reused: u32,
    pub filters_compiled: u32,
}

/// Compiled seccomp filters under `<root>/@cache/seccomp/`, shared by every config with the same
/// profile: a config that misses the plan cache (each podman container has its own) still
/// skips the compilation.
pub struct FilterFiles {
    dir: PathBuf,
    reused: std::cell::Cell<u32>,
    compiled: std::cell::Cell<u32>,
}

impl FilterFiles {
    pub fn new(root: &Path) -> FilterFiles {
        FilterFiles {
            dir: root.join("@cache/seccomp"),
            reused: 0.into(),
            compiled: 0.into(),
        }
    }
}

impl ferrun_planner::seccomp::FilterCache for FilterFiles {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join(format!("{key}.bpf"))).ok()
    }

    fn put(&self, key: &str, bytes: &[u8]) {
        let _ = store(&self.dir, &self.dir.join(format!("{key}.bpf")), bytes);
    }

    fn reused(&self, reused: bool) {
        let count = if reused { &self.reused } else { &self.compiled };
        count.set(count.get() + 1);
    }
}

/// Reads `config.json` from the bundle.
pub fn read_config(bundle: &Path) -> Result<Vec<u8>> {
    let path = bundle.join("config.json");
    std::fs::read(&path).ctx(|| format!("bundle {}: read config.json", bundle.display()))
}

/// The plan for a bundle: from the cache when its inputs are unchanged, else planned and stored.
/// `config` names another file than the bundle's `config.json` (crun's `--config`).
pub fn load_or_plan(
    root: &Path,
    bundle: &Path,
    config: Option<&Path>,
    options: Options,
) -> Result<Loaded> {
    let config = match config {
        Some(path) => std::fs::read(path).ctx(|| format!("--config {}", path.display()))?,
        None => read_config(bundle)?,
    };
    let host = host_facts();
    let filters = FilterFiles::new(root);
    let input = Input {
        seccomp_cache: Some(&filters),
        config: &config,
        bundle,
        host: &host,
        options,
    };
    let key = ferrun_planner::cache_key(&input);
    let dir = root.join("@cache/plans");
    let path = dir.join(format!("{key}.plan"));
    let stale = match std::fs::read(&path) {
        Ok(bytes) => match Plan::decode(&bytes) {
            Ok(plan) if plan.header.input_hash == key => {
                return Ok(Loaded {
                    plan,
                    key,
                    origin: Origin::Hit,
                    path,
                    filters_reused: 0,
                    filters_compiled: 0,
                });
            }
            Ok(_) => Some("its inputs differ".to_string()),
            Err(e) => Some(e.to_string()),
        },
        Err(_) => None,
    };
    let plan = ferrun_planner::plan(&input)?;
    let origin = match store(&dir, &path, &plan.encode()) {
        Ok(()) => match stale {
            Some(why) => Origin::Rebuilt(why),
            None => Origin::Stored,
        },
        Err(e) => Origin::Uncached(e.to_string()),
    };
    Ok(Loaded {
        plan,
        key,
        origin,
        path,
        filters_reused: filters.reused.get(),
        filters_compiled: filters.compiled.get(),
    })
}

fn store(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .ctx(|| format!("create {}", dir.display()))?;
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
    f.write_all(bytes)
        .ctx(|| format!("write {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, path).ctx(|| format!("rename to {}", path.display()))
}
