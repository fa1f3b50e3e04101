//! Shared by the integration tests: a busybox rootfs, bundles, and running the ferrun binary
//! with a private state root.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub fn ferrun_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferrun")
}

/// A busybox rootfs shared by every test (read-only in the configs). It lives under /tmp, mode
/// 0755 all the way: a user namespace's root (an unprivileged host uid) must reach it, which a
/// checkout in a 0700 directory would not allow. Built once, staged and renamed into place.
pub fn rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join("ferrun-test-rootfs");
        let root = base.join("rootfs");
        if root.join("bin/busybox").is_file() && root.join("home/user").is_dir() {
            return root;
        }
        let stage = tempfile::Builder::new()
            .prefix("ferrun-test-rootfs-")
            .tempdir_in(std::env::temp_dir())
            .expect("tempdir")
            .keep();
        let staged = stage.join("rootfs");
        let bin = staged.join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir bin");
        std::fs::copy("/bin/busybox", bin.join("busybox"))
            .expect("copy /bin/busybox (apt-get install busybox-static)");
        let list = Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .expect("busybox --list");
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" && !applet.is_empty() {
                let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
            }
        }
        for d in [
            "proc",
            "sys",
            "dev",
            "tmp",
            "etc",
            "root",
            "data",
            "home/user",
        ] {
            std::fs::create_dir_all(staged.join(d)).expect("mkdir");
        }
        std::fs::write(staged.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")
            .expect("passwd");
        std::fs::set_permissions(&stage, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        // Another test binary may have won the race: then its copy is used and ours dropped.
        if std::fs::rename(&stage, &base).is_err() {
            let _ = std::fs::remove_dir_all(&stage);
        }
        root
    })
}

/// Directories of `cgroup_path` (e.g. `/ferrun-test/x`) that exist in any hierarchy.
pub fn cgroup_dirs(cgroup_path: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    // A cgroup2-only host: the hierarchy is /sys/fs/cgroup itself.
    let direct = Path::new("/sys/fs/cgroup").join(cgroup_path.trim_start_matches('/'));
    if direct.is_dir() {
        out.push(direct);
    }
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in entries.flatten() {
            let d = e.path().join(cgroup_path.trim_start_matches('/'));
            if d.is_dir() {
                out.push(d);
            }
        }
    }
    out
}

/// The subdirectories (child cgroups) of `cgroup_path` in every hierarchy that has it.
pub fn child_cgroups(cgroup_path: &str) -> Vec<PathBuf> {
    cgroup_dirs(cgroup_path)
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|r| r.flatten().map(|e| e.path()).filter(|p| p.is_dir()))
        .collect()
}

/// The stdout of a command that must have succeeded (the test fails with its output otherwise).
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stdout {} stderr {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A bundle plus a private state root, both removed when dropped.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub config: Value,
}

impl Bundle {
    /// runc's default spec made non-interactive, on the shared busybox rootfs.
    pub fn new(args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("ferrun-test-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("tempdir");
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/config/runc-spec.json");
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(fixture).expect("fixture")).expect("json");
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        config["root"]["path"] = json!(rootfs());
        config["hostname"] = json!("ferrun-test");
        // Test cgroups live under a `ferrun-test` parent, one per bundle.
        let name = dir
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("bundle")
            .to_string();
        config["linux"]["cgroupsPath"] = json!(format!("/ferrun-test/{name}"));
        let mut b = Bundle { dir, config };
        b.save();
        b
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The bundle's `linux.cgroupsPath`.
    pub fn cgroup_path(&self) -> String {
        self.config["linux"]["cgroupsPath"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn state_root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn save(&mut self) {
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).expect("encode"),
        )
        .expect("write config.json");
    }

    /// Edits the config and saves it.
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) -> &mut Self {
        f(&mut self.config);
        self.save();
        self
    }

    /// `ferrun --root <state> ARGS`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(ferrun_bin());
        c.arg("--root")
            .arg(self.state_root())
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Runs ferrun to completion. Its output goes through files, not pipes: a container it
    /// leaves behind inherits its stdio and would hold a pipe open.
    pub fn ferrun(&self, args: &[&str]) -> Output {
        output_via_files(self.cmd(args))
    }

    /// `ferrun run --bundle <bundle> ID`: (exit code, stdout, stderr).
    pub fn run(&self, id: &str) -> (i32, String, String) {
        let bundle = self.path().to_str().expect("utf-8");
        let out = self.ferrun(&["run", "--bundle", bundle, id]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `ferrun run -d --pid-file … ID` with extra environment; fails the test unless it
    /// succeeds, and returns the container's host pid.
    pub fn run_detached(&self, id: &str, env: &[(&str, &str)]) -> i32 {
        let bundle = self.path().to_str().expect("utf-8").to_string();
        let pid_file = format!("{bundle}/{id}.pid");
        let mut c = self.cmd(&[
            "run",
            "-d",
            "--bundle",
            &bundle,
            "--pid-file",
            &pid_file,
            id,
        ]);
        c.envs(env.iter().copied());
        let o = output_via_files(c);
        assert!(
            o.status.success(),
            "run -d {id}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::fs::read_to_string(&pid_file)
            .expect("pid file")
            .parse()
            .expect("pid")
    }

    /// Runs `sh -c SCRIPT` in the container and returns stdout; fails the test on a non-zero exit.
    pub fn sh(&mut self, script: &str) -> String {
        self.edit(|c| c["process"]["args"] = json!(["sh", "-c", script]));
        let (code, out, err) = self.run("sh");
        assert_eq!(
            code, 0,
            "script {script:?} failed: stdout {out:?} stderr {err:?}"
        );
        out
    }

    /// Container ids that still have state.
    pub fn leftover_state(&self) -> Vec<String> {
        match std::fs::read_dir(self.state_root()) {
            Ok(d) => d
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('@'))
                .collect(),
            Err(_) => vec![],
        }
    }
}

/// Adds a new user namespace to `config`, mapping 65536 ids from `uid` and `gid` on the host.
pub fn user_namespace(config: &mut Value, uid: u64, gid: u64) {
    config["linux"]["namespaces"]
        .as_array_mut()
        .expect("ns")
        .push(json!({"type": "user"}));
    config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 65536}]);
    config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 65536}]);
}

/// The value of a `Key:\tvalue` line of /proc/<pid>/status output.
pub fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{key} missing from {status}"))
}

/// Capability names to the hex mask /proc/self/status shows.
pub fn cap_mask(names: &[&str]) -> String {
    let mut m = 0u64;
    for n in names {
        let bit = ferrun_plans::CAPABILITIES
            .iter()
            .position(|c| c == n)
            .expect("known cap");
        m |= 1 << bit;
    }
    format!("{m:016x}")
}

/// Waits (up to 5 s) until `cond` holds.
pub fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// `Command::output` through temporary files, so that a process that outlives the command
/// (a created container) does not keep the reader waiting.
pub fn output_via_files(mut cmd: Command) -> Output {
    let out = tempfile::tempfile().expect("tempfile");
    let err = tempfile::tempfile().expect("tempfile");
    cmd.stdout(out.try_clone().expect("clone"))
        .stderr(err.try_clone().expect("clone"));
    let status = cmd.status().expect("run");
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut v = Vec::new();
        f.rewind().expect("rewind");
        f.read_to_end(&mut v).expect("read");
        v
    };
    Output {
        status,
        stdout: read(out),
        stderr: read(err),
    }
}

/// tests/data/probe/probe.c built static (it runs in the busybox rootfs, bound at /probe).
pub fn probe() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/probe/probe.c");
        let out = tempfile::Builder::new()
            .prefix("ferrun-probe-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("tempdir")
            .keep()
            .join("probe");
        let st = Command::new("cc")
            .args(["-static", "-O1", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("run cc");
        assert!(
            st.success(),
            "cc -static probe.c (apt-get install gcc libc6-dev)"
        );
        out
    })
}

impl Bundle {
    /// Binds the probe into the container at /probe.
    pub fn with_probe(&mut self) -> &mut Self {
        let probe = probe().to_path_buf();
        self.edit(|c| {
            c["mounts"].as_array_mut().expect("mounts").push(json!({
                "destination": "/probe", "type": "bind", "source": probe, "options": ["bind", "ro"]
            }));
        })
    }
}

/// Accepts one connection on `listener` and returns the message and the fd riding with it
/// (a console socket's pty master, a seccomp listener).
pub fn accept_fd(listener: &std::os::unix::net::UnixListener) -> (Vec<u8>, std::os::fd::OwnedFd) {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::{AsRawFd, FromRawFd};
    let (conn, _) = listener.accept().expect("accept");
    let mut buf = vec![0u8; 8192];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .expect("recvmsg");
    let mut fd = None;
    for c in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the fd just arrived and is ours.
            fd = Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fds[0]) });
        }
    }
    let n = msg.bytes;
    buf.truncate(n);
    (buf, fd.expect("an fd came with the message"))
}

/// The ferrun binary copied where an unprivileged user can run it (the checkout may sit in a
/// 0700 directory): `/tmp/<dir>/ferrun`, root's, mode 0755, replaced by each test run.
pub fn ferrun_for_users(dir: &str) -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(dir);
        std::fs::create_dir_all(&base).expect("bin dir");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let staged = base.join(format!("ferrun.{}", std::process::id()));
        std::fs::copy(ferrun_bin(), &staged).expect("copy ferrun");
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let bin = base.join("ferrun");
        std::fs::rename(&staged, &bin).expect("rename");
        bin.to_string_lossy().into_owned()
    })
}

/// The shared busybox rootfs as a tar at `path`, for an engine's `import`.
pub fn rootfs_tar(path: &Path) {
    let t = Command::new("tar")
        .arg("-C")
        .arg(rootfs())
        .arg("-cf")
        .arg(path)
        .arg(".")
        .status()
        .expect("tar");
    assert!(t.success(), "tar of {}", rootfs().display());
}

/// `args` as `uid`:`gid` with no privilege at all and a login's clean environment plus `env`
/// (`NAME=value`), run in `home`.
pub fn as_user(uid: u32, gid: u32, home: &Path, env: &[String], args: &[&str]) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid",
        &uid.to_string(),
        "--regid",
        &gid.to_string(),
        "--init-groups",
        "--reset-env",
        "--",
        "env",
    ])
    .args(env)
    .args(args)
    .current_dir(home)
    .stdin(Stdio::null());
    c
}

/// A bundle directory `dir` owned by `uid`:`gid`, its config made there by `<runtime> spec
/// --rootless` (through `run`, which runs a command as that user), on the shared busybox rootfs,
/// running `args` without a terminal. Returns the config; the caller edits and saves it.
pub fn rootless_spec(
    run: impl Fn(&[&str]) -> Output,
    runtime: &str,
    dir: &Path,
    (uid, gid): (u32, u32),
    args: &[&str],
) -> Value {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("bundle dir");
    std::os::unix::fs::chown(dir, Some(uid), Some(gid)).expect("chown");
    let spec = run(&[
        "sh",
        "-c",
        &format!("cd {} && {runtime} spec --rootless", dir.display()),
    ]);
    assert!(spec.status.success(), "{runtime} spec --rootless: {spec:?}");
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).expect("config.json"))
            .expect("json");
    config["root"]["path"] = json!(rootfs());
    config["process"]["args"] = json!(args);
    // `spec` asks for a terminal; the tests read the output instead.
    config["process"]["terminal"] = json!(false);
    config
}

/// The busybox rootfs imported as `localhost/bb` into a user's rootless podman: the tarball is
/// written to `home`, handed to `uid`:`gid`, and imported through `run` (as that user).
pub fn podman_import_as(run: impl Fn(&[&str]) -> Output, home: &Path, (uid, gid): (u32, u32)) {
    let tar = home.join("busybox.tar");
    rootfs_tar(&tar);
    std::os::unix::fs::chown(&tar, Some(uid), Some(gid)).expect("chown");
    let o = run(&[
        "podman",
        "import",
        tar.to_str().expect("utf-8"),
        "localhost/bb",
    ]);
    assert!(o.status.success(), "podman import: {o:?}");
}

/// `sh -c script` as the test itself (root), its output captured.
pub fn host_sh(script: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .expect("sh")
}

/// A docker archive (`docker save`'s format: manifest.json, an image config, one layer) of the
/// shared busybox rootfs, tagged `name`, with `entrypoint` and `cmd`. containerd's `ctr import`,
/// `docker load` and buildah's `docker-archive:` all read it.
pub fn docker_archive(out: &Path, name: &str, entrypoint: &[&str], cmd: &[&str]) {
    use sha2::Digest;
    let dir = tempfile::Builder::new()
        .prefix("ferrun-test-archive-")
        .tempdir()
        .expect("tempdir");
    let layer = dir.path().join("layer.tar");
    rootfs_tar(&layer);
    let digest = sha2::Sha256::digest(std::fs::read(&layer).expect("layer"));
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Entrypoint": if entrypoint.is_empty() { Value::Null } else { json!(entrypoint) },
            "Cmd": if cmd.is_empty() { Value::Null } else { json!(cmd) },
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{hex}")]},
        "history": [{"created_by": "ferrun tests: the busybox rootfs"}],
    });
    std::fs::write(dir.path().join("config.json"), config.to_string()).expect("config");
    let manifest = json!([{
        "Config": "config.json",
        "RepoTags": [name],
        "Layers": ["layer.tar"],
    }]);
    std::fs::write(dir.path().join("manifest.json"), manifest.to_string()).expect("manifest");
    let t = Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .arg("-cf")
        .arg(out)
        .args(["manifest.json", "config.json", "layer.tar"])
        .status()
        .expect("tar");
    assert!(t.success(), "tar of the archive {}", out.display());
}
