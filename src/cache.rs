//! The plan cache: plans stored by input hash under `<root>/@cache/plans/`, written atomically
//! and sealed with a checksum. A corrupt, changed, truncated or foreign-version entry is rebuilt,
//! never trusted. The cache is bounded: a plan only its own container can use (an engine's
//! bundle or config names the container) goes at `delete`, the oldest go past
//! [`MAX_ENTRIES`], and temporary files that a dead writer left are swept. Also owns the probe
//! of the host facts that the planner takes as input.

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
        // runc's tests: AppArmor's module says it is enabled and its securityfs is there;
        // SELinux's filesystem is mounted.
        apparmor: std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.trim() == "Y")
            && std::path::Path::new("/sys/kernel/security/apparmor").exists(),
        selinux: std::path::Path::new("/sys/fs/selinux/enforce").exists(),
        rootless: crate::host::rootless::detect(),
        setgroups_denied: std::fs::read_to_string("/proc/self/setgroups")
            .is_ok_and(|s| s.trim() == "deny"),
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
    /// Filled in from the template of configs of this shape (see `ferrun_planner::template`).
    TemplateHit,
    /// Planned now; the template of its shape was checked against it and stored.
    TemplateStored,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Hit => write!(f, "hit"),
            Origin::Stored => write!(f, "miss, stored"),
            Origin::Rebuilt(why) => write!(f, "rebuilt ({why})"),
            Origin::Uncached(why) => write!(f, "miss, not stored ({why})"),
            Origin::TemplateHit => write!(f, "hit (template)"),
            Origin::TemplateStored => write!(f, "miss, template stored"),
        }
    }
}

pub struct Loaded {
    pub plan: Plan,
    /// The config's bytes, as planned.
    pub config: Vec<u8>,
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
        sweep(&self.dir, "bpf");
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
                    config,
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
    let template =
        ferrun_planner::template::template(&config, bundle, ferrun_planner::READ_ANNOTATIONS);
    if let Some(t) = &template {
        let tinput = Input {
            config: &t.config,
            bundle: &t.bundle,
            ..input
        };
        let tkey = ferrun_planner::cache_key(&tinput);
        let tpath = dir.join(format!("{tkey}.tmpl"));
        // The values a template empties are never planned: the config must still be JSON.
        if serde_json::from_slice::<serde::de::IgnoredAny>(&config).is_ok()
            && let Ok(bytes) = std::fs::read(&tpath)
            && let Ok(plan) = Plan::decode_filled(&bytes, |b| t.fill(b))
            && plan.header.input_hash == tkey
        {
            return Ok(Loaded {
                plan,
                config,
                key: tkey,
                origin: Origin::TemplateHit,
                path: tpath,
                filters_reused: 0,
                filters_compiled: 0,
            });
        }
        let mut plan = ferrun_planner::plan(&input)?;
        // Stored only if it gives back exactly this config's plan.
        if let Ok(tplan) = ferrun_planner::plan(&tinput) {
            let mut same = tplan.clone();
            same.header.input_hash.clone_from(&plan.header.input_hash);
            let matches = match (same.body(), plan.body()) {
                (Some(mut body), Some(real)) => {
                    t.fill(&mut body);
                    body == real
                }
                _ => false,
            };
            if matches {
                sweep(&dir, "tmpl");
                if store(&dir, &tpath, &tplan.encode()).is_ok() {
                    // Listed as a later hit will be.
                    plan.header.input_hash.clone_from(&tkey);
                    return Ok(Loaded {
                        plan,
                        config,
                        key: tkey,
                        origin: Origin::TemplateStored,
                        path: tpath,
                        filters_reused: filters.reused.get(),
                        filters_compiled: filters.compiled.get(),
                    });
                }
            }
        }
        return stored(root, plan, config, key, path, stale, &filters);
    }
    let plan = ferrun_planner::plan(&input)?;
    stored(root, plan, config, key, path, stale, &filters)
}

/// A plan planned now, stored under its own key.
fn stored(
    root: &Path,
    plan: Plan,
    config: Vec<u8>,
    key: String,
    path: PathBuf,
    stale: Option<String>,
    filters: &FilterFiles,
) -> Result<Loaded> {
    let dir = root.join("@cache/plans");
    // Before the store: a full disk that refuses it still gets its stale files swept.
    sweep(&dir, "plan");
    let origin = match store(&dir, &path, &plan.encode()) {
        Ok(()) => match stale {
            Some(why) => Origin::Rebuilt(why),
            None => Origin::Stored,
        },
        Err(e) => Origin::Uncached(e.to_string()),
    };
    Ok(Loaded {
        plan,
        config,
        key,
        origin,
        path,
        filters_reused: filters.reused.get(),
        filters_compiled: filters.compiled.get(),
    })
}

impl Loaded {
    /// Whether no other container could use this plan: the bundle is a directory of the
    /// container's own, or the config names it (engines put the id in hostnames, cgroup paths
    /// and annotations). Such a plan goes with the container.
    pub fn private_to(&self, id: &str, bundle: &Path) -> bool {
        if matches!(self.origin, Origin::TemplateHit | Origin::TemplateStored) {
            return false;
        }
        let in_bundle = bundle.components().any(|c| c.as_os_str() == id);
        let named = id.len() >= 12 && self.config.windows(id.len()).any(|w| w == id.as_bytes());
        in_bundle || named
    }
}

/// Removes the cached plan `key`: its container, the only one that could use it, is gone.
pub fn forget(root: &Path, key: &str) {
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit()) {
        let _ = std::fs::remove_file(root.join("@cache/plans").join(format!("{key}.plan")));
    }
}

/// Entries one cache directory keeps; past that, the oldest quarter goes.
pub const MAX_ENTRIES: usize = 512;

fn store(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .ctx(|| format!("create {}", dir.display()))?;
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        // A full disk must not leave the half-written file behind.
        let _ = std::fs::remove_file(&tmp);
    }
    written.ctx(|| format!("store {}", path.display()))
}

/// On a miss, before a store: removes temporary files a writer left (killed mid-write), and the oldest
/// entries once the directory holds more than [`MAX_ENTRIES`]. Runs on a cache miss only, so a
/// hit never pays for it.
fn sweep(dir: &Path, ext: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut kept = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            if crate::host::files::stale(&e.path()) {
                let _ = std::fs::remove_file(e.path());
            }
        } else if name.ends_with(ext) {
            kept.push(e.path());
        }
    }
    if kept.len() <= MAX_ENTRIES {
        return;
    }
    let mut aged: Vec<(std::time::SystemTime, PathBuf)> = kept
        .into_iter()
        .map(|p| {
            let t = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (t, p)
        })
        .collect();
    aged.sort();
    let excess = aged.len() - MAX_ENTRIES * 3 / 4;
    for (_, p) in aged.into_iter().take(excess) {
        let _ = std::fs::remove_file(p);
    }
}
