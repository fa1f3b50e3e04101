//! `ferrun checkpoint`: a running (or paused) container's process tree dumped by criu into
//! `--image-path`, described to it from the container's plan (`criu.rs`); then, unless
//! `--leave-running` or `--pre-dump`, the container is deleted as runc does. A failed dump
//! leaves the container running (criu thaws what it froze) and says why, quoting criu's log.

use super::criu::{
    CriuFlags, DESCRIPTORS, base_opts, check_parent, dump_external_namespaces, dump_mounts,
    externals, image_dir, log_path, open_dir, open_work, stdio_descriptors,
};
use crate::bail;
use crate::cache;
use crate::error::{Context, Error, Result};
use crate::host::criu::{Req, ReqType, log_errors, spawn, tracks_memory};
use crate::state::{Status, Store};
use std::path::Path;

/// `checkpoint`'s own flags, beside those `restore` shares.
#[derive(Clone, Debug, Default)]
pub struct CheckpointOpts {
    pub flags: CriuFlags,
    pub parent_path: Option<String>,
    pub leave_running: bool,
    pub pre_dump: bool,
}

const LOG: &str = "dump.log";

/// `ferrun checkpoint`.
pub fn checkpoint(store: &Store, id: &str, o: &CheckpointOpts) -> Result<()> {
    if crate::host::rootless::detect() {
        bail!("checkpoint needs root: criu cannot dump a rootless container");
    }
    let s = store.load(id)?;
    match store.status(&s) {
        Status::Running | Status::Paused => {}
        other => bail!(
            "container {id} cannot be checkpointed: it is {}",
            other.as_str()
        ),
    }
    let systemd = s.cgroup.as_ref().is_some_and(|c| c.systemd_unit.is_some());
    let loaded = cache::load_or_plan(
        &store.root,
        Path::new(&s.bundle),
        s.config.as_deref().map(Path::new),
        ferrun_planner::Options {
            no_pivot: false,
            systemd_cgroup: systemd,
        },
    )?;
    let plan = loaded.plan;
    super::profile::mark("state, plan");
    let images_path = image_dir(&o.flags);
    let images = open_dir(&images_path, "--image-path")?;
    let work = open_work(&o.flags)?;
    if let Some(p) = &o.parent_path {
        check_parent(&images_path, p)?;
    }
    let mut opts = base_opts(&o.flags, &images, work.as_ref(), LOG)?;
    opts.pid = Some(s.pid);
    opts.root = Some(s.rootfs.clone());
    opts.leave_running = Some(o.leave_running || o.pre_dump);
    opts.external = dump_external_namespaces(&plan, s.pid)?;
    // The cgroup freezer stops the tree at once (else criu stops each task with ptrace).
    if let Some(c) = &s.cgroup {
        let freezer = c
            .hierarchies
            .iter()
            .position(|h| !h.v2 && h.name.split(',').any(|n| n == "freezer"))
            .and_then(|i| c.dirs.get(i).cloned())
            .or_else(|| c.v2_dir().map(Path::to_path_buf));
        opts.freeze_cgroup = freezer.map(|p| p.to_string_lossy().into_owned());
    }
    if let Some(p) = &o.parent_path {
        opts.parent_img = Some(p.clone());
        opts.track_mem = Some(true);
    }
    let kind = if o.pre_dump {
        if !tracks_memory()? {
            bail!("--pre-dump: criu or the kernel cannot track memory changes (soft-dirty bits)");
        }
        ReqType::PreDump
    } else {
        let dirs = s
            .cgroup
            .as_ref()
            .map(|c| c.dirs.clone())
            .unwrap_or_default();
        let pid = s.pid;
        let masked_file = |path: &str| {
            std::fs::metadata(format!("/proc/{pid}/root{path}")).is_ok_and(|m| !m.is_dir())
        };
        opts.ext_mnt = dump_mounts(&externals(&plan, &dirs, &masked_file));
        let fds = serde_json::to_vec(&stdio_descriptors(s.pid))
            .map_err(|e| Error(format!("encode {DESCRIPTORS}: {e}")))?;
        let path = images_path.join(DESCRIPTORS);
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .and_then(|mut f| f.write_all(&fds))
                .ctx(|| format!("write {}", path.display()))?;
        }
        ReqType::Dump
    };
    let req = Req {
        r#type: kind as i32,
        opts: Some(opts),
        ..Default::default()
    };
    let mut criu = spawn(&[])?;
    let called = criu.call(&req, &mut |_, _, _| Ok(()));
    super::profile::mark("criu: the dump");
    if let Err(e) = called {
        drop(criu);
        let log = log_path(&o.flags, LOG);
        let quoted = log_errors(&log);
        let state = match store.load(id).map(|s| store.status(&s)) {
            Ok(st) => format!("container {id} is {}", st.as_str()),
            Err(_) => format!("container {id}'s state is gone"),
        };
        return Err(Error(format!(
            "checkpoint {id}: {}; {state}; criu's log {}:\n  {quoted}",
            e.0,
            log.display()
        )));
    }
    // A pre-dump's criu waits for more requests: closing the socket ends it, not a failure.
    let clean = criu.finish()?;
    super::profile::mark("criu: its exit");
    if !clean && kind != ReqType::PreDump {
        bail!(
            "checkpoint {id}: criu exited with an error after the dump (see {})",
            log_path(&o.flags, LOG).display()
        );
    }
    if !o.leave_running && !o.pre_dump {
        // The tree is gone (criu killed it after the dump): the container goes too, as in runc.
        super::delete::delete(store, id, true)?;
        super::profile::mark("delete");
    }
    Ok(())
}
