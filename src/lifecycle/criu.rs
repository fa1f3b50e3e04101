//! What `checkpoint` and `restore` tell criu about a container, read off its plan (which knows
//! every mount it made): the flags both commands share, the mounts criu must treat as external
//! (binds of host paths, the cgroup directories bound in, masked files, bound devices), the
//! namespaces joined by path, the stdio an engine's pipes stand for, and where criu logs. runc
//! describes a container to criu the same way; the plan, not the config, is the source here.

use crate::bail;
use crate::error::{Context, Error, Result};
use crate::host::criu::{CgMode, ExtMountMap, Opts};
use ferrun_plans::{HostStep, Namespace, Plan, Step};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Flags `checkpoint` and `restore` share, as runc spells them.
#[derive(Clone, Debug, Default)]
pub struct CriuFlags {
    pub image_path: Option<PathBuf>,
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub manage_cgroups_mode: Option<String>,
}

/// The images' file naming the init's stdio at dump time, read back at restore (runc's name).
pub const DESCRIPTORS: &str = "descriptors.json";

/// runc's default image directory: `checkpoint` under the current one.
pub fn image_dir(flags: &CriuFlags) -> PathBuf {
    flags
        .image_path
        .clone()
        .unwrap_or_else(|| PathBuf::from("checkpoint"))
}

fn cg_mode(mode: Option<&str>) -> Result<CgMode> {
    Ok(match mode.unwrap_or("") {
        "" => CgMode::Default,
        "soft" => CgMode::Soft,
        "full" => CgMode::Full,
        "strict" => CgMode::Strict,
        "ignore" => CgMode::Ignore,
        other => bail!("--manage-cgroups-mode {other}: expected soft, full, strict or ignore"),
    })
}

/// A directory criu writes into, made if missing and opened.
pub fn open_dir(path: &Path, what: &str) -> Result<OwnedFd> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).ctx(|| format!("{what} {}", path.display())),
    }
    let f = std::fs::File::open(path).ctx(|| format!("{what} {}", path.display()))?;
    if !f.metadata().is_ok_and(|m| m.is_dir()) {
        bail!("{what} {}: not a directory", path.display());
    }
    Ok(OwnedFd::from(f))
}

/// `--work-path`, made if missing and opened, when given.
pub fn open_work(flags: &CriuFlags) -> Result<Option<OwnedFd>> {
    flags
        .work_path
        .as_deref()
        .map(|p| open_dir(p, "--work-path"))
        .transpose()
}

/// The options every request of a command carries; `log` is criu's log file in the work
/// directory (the image directory without one).
pub fn base_opts(
    flags: &CriuFlags,
    images: &OwnedFd,
    work: Option<&OwnedFd>,
    log: &str,
) -> Result<Opts> {
    Ok(Opts {
        images_dir_fd: images.as_raw_fd(),
        work_dir_fd: work.map(|w| w.as_raw_fd()),
        log_level: Some(4),
        log_file: Some(log.into()),
        manage_cgroups: Some(true),
        manage_cgroups_mode: Some(cg_mode(flags.manage_cgroups_mode.as_deref())? as i32),
        notify_scripts: Some(true),
        shell_job: Some(flags.shell_job),
        tcp_established: Some(flags.tcp_established),
        ext_unix_sk: Some(flags.ext_unix_sk),
        file_locks: Some(flags.file_locks),
        // The pty's master is the engine's, outside the tree: criu makes a new pair at restore
        // and hands its master over.
        orphan_pts_master: Some(true),
        // runc's choice, at dump and at restore: the network namespace's devices and settings
        // are the engine's to make (criu makes it empty); a joined one is external anyway.
        empty_ns: Some(libc::CLONE_NEWNET as u32),
        // Settings an administrator gives criu for ferrun's containers (missing: none).
        config_file: Some("/etc/criu/ferrun.conf".into()),
        ..Default::default()
    })
}

/// Where criu's log of this request is.
pub fn log_path(flags: &CriuFlags, log: &str) -> PathBuf {
    flags
        .work_path
        .clone()
        .unwrap_or_else(|| image_dir(flags))
        .join(log)
}

/// A mount point as criu sees it: the plan's destination with the rootfs's own symlinks
/// resolved (as the set-up resolved them), relative to the rootfs.
fn in_rootfs(root: Option<&OwnedFd>, rootfs: &str, dest: &str) -> String {
    let resolved = root.and_then(|r| {
        let c = CString::new(dest).ok()?;
        let fd = ferrun_executor::open_in_root(
            r.as_raw_fd(),
            &c,
            libc::O_PATH | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
        .ok()?;
        let full = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
        let rel = full.strip_prefix(rootfs).ok()?;
        Some(Path::new("/").join(rel).to_string_lossy().into_owned())
    });
    resolved.unwrap_or_else(|| dest.to_string())
}

fn open_rootfs(rootfs: &str) -> Option<OwnedFd> {
    std::fs::File::open(rootfs).ok().map(OwnedFd::from)
}

/// One mount criu does not dump but is told of: where it sits in the container, and what
/// restore binds there.
pub struct External {
    pub dest: String,
    /// The host path restore binds (`None` for a masked file: the host's `/dev/null`).
    pub source: Option<String>,
    /// A directory (else a file), for a mount point made at restore.
    pub dir: bool,
}

/// The container's external mounts from its plan: binds of host paths and devices, the
/// cgroup directories bound in (`cgroup_dirs`, per hierarchy: the container's, which restore
/// makes anew), masked files (`masked_file` says whether a masked path is a file now: a missing
/// or directory one is no bind).
pub fn externals(
    plan: &Plan,
    cgroup_dirs: &[PathBuf],
    masked_file: &dyn Fn(&str) -> bool,
) -> Vec<External> {
    let root = open_rootfs(&plan.rootfs);
    let at = |dest: &ferrun_plans::CBuf| in_rootfs(root.as_ref(), &plan.rootfs, &dest.text());
    let mut out = Vec::new();
    for s in &plan.steps {
        match s {
            Step::BindMount { source, dest, .. } => {
                let source = source.text().into_owned();
                let dir = std::fs::metadata(&source).map_or(true, |m| m.is_dir());
                out.push(External {
                    dest: at(dest),
                    source: Some(source),
                    dir,
                })
            }
            Step::CgroupBind {
                hierarchy, dest, ..
            } => out.push(External {
                dest: at(dest),
                source: cgroup_dirs
                    .get(usize::from(*hierarchy))
                    .map(|d| d.to_string_lossy().into_owned()),
                dir: true,
            }),
            Step::BindDevice { source, dest } => out.push(External {
                dest: at(dest),
                source: Some(source.text().into_owned()),
                dir: false,
            }),
            Step::AttachDevice(node) => out.push(External {
                dest: at(&node.dest),
                source: Some(node.dest.text().into_owned()),
                dir: false,
            }),
            Step::MaskPath { path } if masked_file(&path.text()) => out.push(External {
                dest: path.text().into_owned(),
                source: None,
                dir: false,
            }),
            _ => {}
        }
    }
    out
}

/// The name a masked file's mount has in the images, and the host file restore binds for it.
const DEV_NULL: &str = "/dev/null";

/// Dump: each external mount is named by its destination (a masked file as `/dev/null`).
pub fn dump_mounts(ext: &[External]) -> Vec<ExtMountMap> {
    ext.iter()
        .map(|e| ExtMountMap {
            key: e.dest.clone(),
            val: if e.source.is_some() {
                e.dest.clone()
            } else {
                DEV_NULL.into()
            },
        })
        .collect()
}

/// Restore: each name to the host path it binds now.
pub fn restore_mounts(ext: &[External]) -> Vec<ExtMountMap> {
    let mut out: Vec<ExtMountMap> = ext
        .iter()
        .filter_map(|e| {
            e.source.as_ref().map(|s| ExtMountMap {
                key: e.dest.clone(),
                val: s.clone(),
            })
        })
        .collect();
    if ext.iter().any(|e| e.source.is_none()) {
        out.push(ExtMountMap {
            key: DEV_NULL.into(),
            val: DEV_NULL.into(),
        });
    }
    out
}

/// The namespaces the plan joins by path, with the path.
pub fn joined_namespaces(plan: &Plan) -> Vec<(Namespace, String)> {
    plan.before_clone
        .iter()
        .filter_map(|h| match h {
            HostStep::JoinBeforeClone { ns, path } | HostStep::OpenNamespace { ns, path, .. } => {
                Some((*ns, path.text().into_owned()))
            }
            _ => None,
        })
        .collect()
}

/// The key criu knows a joined network or pid namespace by, at dump and at restore (runc's).
pub fn external_ns_key(ns: Namespace) -> Option<&'static str> {
    match ns {
        Namespace::Network => Some("extRootNetNS"),
        Namespace::Pid => Some("extRootPidNS"),
        _ => None,
    }
}

/// Dump: a joined network or pid namespace is external (`net[<inode>]:extRootNetNS`); criu
/// expects it to be there at restore. The inode is the init's own namespace's.
pub fn dump_external_namespaces(plan: &Plan, pid: i32) -> Result<Vec<String>> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for (ns, _) in joined_namespaces(plan) {
        let Some(key) = external_ns_key(ns) else {
            continue;
        };
        let p = format!("/proc/{pid}/ns/{}", ns.proc_name());
        let ino = std::fs::metadata(&p).ctx(|| p.clone())?.ino();
        out.push(format!("{}[{ino}]:{key}", ns.proc_name()));
    }
    Ok(out)
}

/// The init's stdio as `/proc/<pid>/fd/{0,1,2}` name it (`pipe:[…]` for an engine's pipes).
pub fn stdio_descriptors(pid: i32) -> Vec<String> {
    (0..3)
        .map(|fd| {
            std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect()
}

/// `--parent-path`: relative to the image directory, and a directory there (runc's rule).
pub fn check_parent(images: &Path, parent: &str) -> Result<()> {
    if Path::new(parent).is_absolute() {
        bail!("--parent-path {parent}: must be relative to the image path");
    }
    let real = images.join(parent);
    match std::fs::metadata(&real) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!(
            "--parent-path {parent}: {} is not a directory",
            real.display()
        ),
        Err(e) => Err(Error(format!(
            "--parent-path {parent}: {}: {}",
            real.display(),
            crate::error::errno_text(e.raw_os_error().unwrap_or(libc::EIO))
        ))),
    }
}
