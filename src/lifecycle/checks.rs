//! What `create` checks on the live system before it makes anything: the rootfs, sysctls that
//! would change the caller's own namespaces, namespace files; and systemd socket activation
//! folded into the plan. Uses `host` and the plans crate only.

use crate::bail;
use crate::error::{Context, Result};
use ferrun_plans::{HostStep, Plan, Step};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Rootless, an rlimit cannot go above the caller's own hard limit (raising one needs
/// CAP_SYS_RESOURCE on the host): refused before anything is made, naming the limit.
pub(crate) fn check_rlimits(plan: &Plan) -> Result<()> {
    if !crate::host::rootless::detect() {
        return Ok(());
    }
    for step in &plan.steps {
        let Step::Rlimit { resource, hard, .. } = step else {
            continue;
        };
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a valid resource number from the plan and a local out-parameter.
        if unsafe { libc::getrlimit(*resource as _, &mut cur) } != 0 {
            continue;
        }
        if *hard > cur.rlim_max {
            let name = ferrun_plans::RLIMITS
                .get(*resource as usize)
                .copied()
                .unwrap_or("an rlimit");
            bail!(
                "process.rlimits: {name} hard {hard} is above your own hard limit {}: a \
                 rootless container cannot raise it (Operation not permitted)",
                cur.rlim_max
            );
        }
    }
    Ok(())
}

/// A sysctl changes the namespace it is written in: refused when a joined namespace is the
/// caller's own (the host's, for an engine), as runc refuses it.
pub(crate) fn check_sysctls(plan: &Plan) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    for h in &plan.before_clone {
        let HostStep::JoinBeforeClone { ns, path } = h else {
            continue;
        };
        let prefix: &[&str] = match ns {
            ferrun_plans::Namespace::Network => &["/proc/sys/net/"],
            ferrun_plans::Namespace::Ipc => &[
                "/proc/sys/kernel/msg",
                "/proc/sys/kernel/sem",
                "/proc/sys/kernel/shm",
                "/proc/sys/fs/mqueue/",
            ],
            ferrun_plans::Namespace::Uts => {
                &["/proc/sys/kernel/hostname", "/proc/sys/kernel/domainname"]
            }
            _ => continue,
        };
        let Some(key) = plan.steps.iter().find_map(|s| match s {
            Step::Sysctl { path, .. } if prefix.iter().any(|p| path.text().starts_with(p)) => {
                Some(path.text().into_owned())
            }
            _ => None,
        }) else {
            continue;
        };
        let own = format!("/proc/self/ns/{}", ns.proc_name());
        let same =
            |a: &std::fs::Metadata, b: &std::fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
        if let (Ok(joined), Ok(mine)) = (std::fs::metadata(&*path.text()), std::fs::metadata(&own))
            && same(&joined, &mine)
        {
            bail!(
                "linux.sysctl: {} would change the host: the {} namespace {} is the caller's own",
                key.trim_start_matches("/proc/sys/").replace('/', "."),
                ns.oci_name(),
                path.text()
            );
        }
    }
    Ok(())
}

/// The rootfs must be a directory, and a relative `root.path` must stay inside the bundle.
pub(crate) fn check_rootfs(plan: &Plan, bundle: &Path) -> Result<()> {
    let rootfs = Path::new(&plan.rootfs);
    let real = std::fs::canonicalize(rootfs).ctx(|| format!("root.path {}", rootfs.display()))?;
    if !real.is_dir() {
        bail!("root.path {}: not a directory", rootfs.display());
    }
    if rootfs.starts_with(bundle) && !real.starts_with(bundle) {
        bail!(
            "root.path {}: resolves to {}, outside the bundle {}",
            rootfs.display(),
            real.display(),
            bundle.display()
        );
    }
    Ok(())
}

/// Opens a namespace file named by `linux.namespaces[].path`: without blocking (a FIFO there
/// must not hang create), and only if it is a namespace of the kind asked for.
pub(crate) fn open_namespace(
    kind: ferrun_plans::Namespace,
    path: &ferrun_plans::CBuf,
) -> Result<std::fs::File> {
    const NSFS_MAGIC: libc::c_long = 0x6e73_6673;
    // _IO(0xb7, 0x3): the CLONE_NEW* flag of a namespace fd.
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    let what = || {
        format!(
            "linux.namespaces: {} namespace {}",
            kind.oci_name(),
            ferrun_plans::clip(&path.text(), 300)
        )
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&*path.text())
        .ctx(what)?;
    // SAFETY: fstatfs into a zeroed buffer, and an ioctl that only reads, on our fd.
    let (fs_type, ns_type) = unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        let r = libc::fstatfs(f.as_raw_fd(), &mut st);
        let t = libc::ioctl(f.as_raw_fd(), NS_GET_NSTYPE);
        (if r == 0 { st.f_type as libc::c_long } else { 0 }, t)
    };
    if fs_type != NSFS_MAGIC {
        bail!("{}: not a namespace file", what());
    }
    if ns_type >= 0 && ns_type as u64 != kind.clone_flag() {
        bail!("{}: a namespace of another kind", what());
    }
    Ok(f)
}

/// systemd socket activation, as runc passes it on: when ferrun itself was given `LISTEN_FDS`
/// (for its own pid), those fds (3 onwards) go into the container, before the `--preserve-fds`
/// ones, and its process gets `LISTEN_FDS=N` and `LISTEN_PID=1`. Returns N.
pub(crate) fn socket_activation(plan: &mut Plan) -> u32 {
    let n: u32 = match std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) if n > 0 => n,
        _ => return 0,
    };
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    if !ours {
        return 0;
    }
    for s in &mut plan.steps {
        if let Step::Exec { env, .. } = s {
            env.retain(|e| {
                !e.text().starts_with("LISTEN_FDS=") && !e.text().starts_with("LISTEN_PID=")
            });
            env.extend(ferrun_plans::CBuf::new(&format!("LISTEN_FDS={n}")));
            env.extend(ferrun_plans::CBuf::new("LISTEN_PID=1"));
        }
    }
    n
}
