//! Rootless in the guest, where delegation is real: an unprivileged user with subordinate ids
//! and a lingering systemd user manager (`user@<uid>.service`, which delegates memory and pids).
//! Its containers get their limits through a transient scope on the user's bus
//! (`--systemd-cgroup`), through a cgroup2 subtree chowned to the user (cgroupfs), and through
//! rootless podman's `--memory`; each is held at its limits, with ferrun, crun and runc alike.

use crate::common;
use crate::common::host_sh as sh;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

const USER: &str = "ferrun-vmrl";

pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

fn must(script: &str) -> String {
    let o = sh(script);
    assert!(o.status.success(), "{script}: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The user, made once per boot (the guest is thrown away afterwards): subordinate ids, and
/// lingering, so that its systemd user manager and bus run without a login.
pub fn user() -> &'static User {
    static U: OnceLock<User> = OnceLock::new();
    U.get_or_init(|| {
        must(&format!(
            "id {USER} >/dev/null 2>&1 || useradd -m -s /bin/sh {USER}; \
             sed -i '/^{USER}:/d' /etc/subuid /etc/subgid; \
             echo {USER}:200000:65536 >> /etc/subuid; echo {USER}:200000:65536 >> /etc/subgid; \
             loginctl enable-linger {USER}"
        ));
        let uid: u32 = must(&format!("id -u {USER}")).trim().parse().expect("uid");
        let gid: u32 = must(&format!("id -g {USER}")).trim().parse().expect("gid");
        let bus = PathBuf::from(format!("/run/user/{uid}/bus"));
        // The user manager starts under TCG in a few seconds.
        let t = std::time::Instant::now();
        while !bus.exists() {
            assert!(
                t.elapsed().as_secs() < 60,
                "no user bus at {}",
                bus.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        User {
            uid,
            gid,
            home: PathBuf::from(format!("/home/{USER}")),
        }
    })
}

impl User {
    pub fn cmd(&self, args: &[&str]) -> Command {
        let env = [
            format!("XDG_RUNTIME_DIR=/run/user/{}", self.uid),
            format!(
                "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/{}/bus",
                self.uid
            ),
        ];
        common::as_user(self.uid, self.gid, &self.home, &env, args)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        common::output_via_files(self.cmd(args))
    }

    /// `<rt> spec --rootless` in a directory of the user's, on the shared busybox rootfs, its
    /// process `sh -c script`, with `edit` applied.
    fn bundle(&self, rt: &str, name: &str, script: &str, edit: impl FnOnce(&mut Value)) -> String {
        let dir = self.home.join(name);
        let d = dir.to_str().expect("utf-8");
        let mut c = common::rootless_spec(
            |a| self.run(a),
            &bin(rt),
            &dir,
            (self.uid, self.gid),
            &["sh", "-c", script],
        );
        edit(&mut c);
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_vec(&c).expect("json"),
        )
        .expect("config");
        d.to_string()
    }
}

fn bin(rt: &str) -> String {
    match rt {
        "ferrun" => common::ferrun_for_users("ferrun-vm-rootless-bin").to_string(),
        "crun" => "/usr/bin/crun".into(),
        _ => "/usr/sbin/runc".into(),
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What the limits scenarios run: a fork bomb at `pids.max`, then the cgroup's own files read
/// at /sys/fs/cgroup (ferrun binds the container's cgroup there; crun's and runc's rootless
/// specs mount it in a cgroup namespace), and the cgroup's path.
const FELT: &str = "cg=/sys/fs/cgroup; \
    (i=0; while [ $i -lt 30 ]; do sleep 30 & i=$((i+1)); done) 2>/dev/null; \
    read cur < $cg/pids.current; kill -9 -1 2>/dev/null; wait; \
    echo cgroup=$(cut -d: -f3 /proc/self/cgroup); echo current=$cur; echo pids=$(cat $cg/pids.max); \
    echo memory=$(cat $cg/memory.max); echo refused=$(cat $cg/pids.events)";

fn value<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("{key} missing from {text}"))
        .trim()
}

/// Held at `pids.max` and given `memory.max`, read back in the cgroup `want` (crun's and runc's
/// rootless specs have a cgroup namespace: there the container's own cgroup is `/`).
fn check_felt(rt: &str, text: &str, want: &str) {
    let cg = value(text, "cgroup");
    if cg != "/" {
        assert_eq!(format!("/sys/fs/cgroup{cg}"), want, "{rt}: {text}");
    }
    assert_eq!(value(text, "pids"), "10", "{rt}: {text}");
    assert_eq!(value(text, "memory"), "67108864", "{rt}: {text}");
    let current: u32 = value(text, "current").parse().expect("pids.current");
    assert!(current <= 10, "{rt}: {text}");
    let refused: u32 = value(text, "refused")
        .trim_start_matches("max ")
        .parse()
        .expect("pids.events");
    assert!(refused > 0, "{rt}: no fork refused: {text}");
}

const LIMITS: &str = r#"{"memory": {"limit": 67108864}, "pids": {"limit": 10}}"#;

/// `--systemd-cgroup` as the user: a scope of the user's own systemd, below its manager.
pub fn systemd_delegation(rt: &str) {
    let u = user();
    let id = format!("deleg-{rt}");
    let b = u.bundle(rt, &id, FELT, |c| {
        c["linux"]["resources"] = serde_json::from_str(LIMITS).expect("limits");
        c["linux"]["cgroupsPath"] = json!(format!("user.slice:ferrun-test:{id}"));
    });
    let root = format!("{}/state-{rt}", u.home.display());
    let run = |bundle: &str, id: &str| {
        let rtb = bin(rt);
        u.run(&[
            &rtb,
            "--root",
            &root,
            "--systemd-cgroup",
            "run",
            "-b",
            bundle,
            id,
        ])
    };
    let o = run(&b, &id);
    assert!(o.status.success(), "{rt}: {o:?}");
    let manager = format!("/user.slice/user-{0}.slice/user@{0}.service", u.uid);
    let cg = format!("/sys/fs/cgroup{manager}/user.slice/ferrun-test-{id}.scope");
    check_felt(rt, &out(&o), &cg);
    // The memory limit is felt too: a hog is OOM-killed at 64 MiB.
    let hog = u.bundle(rt, &format!("{id}-hog"), "tail /dev/zero", |c| {
        c["linux"]["resources"] = serde_json::from_str(LIMITS).expect("limits");
        c["linux"]["cgroupsPath"] = json!(format!("user.slice:ferrun-test:{id}-hog"));
    });
    let o = run(&hog, &format!("{id}-hog"));
    assert_eq!(
        o.status.code(),
        Some(137),
        "{rt}: the hog was not killed: {o:?}"
    );
    // Nothing is left: the scopes are gone from the user's manager.
    let units = u.run(&[
        "systemctl",
        "--user",
        "list-units",
        "--all",
        "--plain",
        "--no-legend",
        "ferrun-test-*",
    ]);
    assert_eq!(out(&units).trim(), "", "{rt}: units left");
    assert!(!Path::new(&cg).exists(), "{rt}: {cg} left");
}

/// cgroupfs in a cgroup2 subtree root chowned to the user (what delegation amounts to), with
/// the user's shell already inside it: moving a process needs write access to the common
/// ancestor's `cgroup.procs`.
pub fn chowned_subtree(rt: &str) {
    let u = user();
    let base = Path::new("/sys/fs/cgroup/ferrun-test");
    let mine = base.join(format!("rootless-{rt}"));
    let shell = mine.join("shell");
    must(&format!(
        "mkdir -p {shell} && echo '+memory +pids' > /sys/fs/cgroup/cgroup.subtree_control && \
         echo '+memory +pids' > {base}/cgroup.subtree_control && \
         chown {uid}:{gid} {mine} {mine}/cgroup.procs {mine}/cgroup.threads \
         {mine}/cgroup.subtree_control {shell} {shell}/cgroup.procs",
        shell = shell.display(),
        base = base.display(),
        mine = mine.display(),
        uid = u.uid,
        gid = u.gid
    ));
    std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let id = format!("subtree-{rt}");
    let cgroups_path = format!("/ferrun-test/rootless-{rt}/{id}");
    let b = u.bundle(rt, &id, FELT, |c| {
        c["linux"]["resources"] = serde_json::from_str(LIMITS).expect("limits");
        c["linux"]["cgroupsPath"] = json!(cgroups_path);
    });
    let root = format!("{}/state-{rt}", u.home.display());
    // As root, the shell moves itself into the delegated subtree, then becomes the user.
    let inner = u.cmd(&[&bin(rt), "--root", &root, "run", "-b", &b, &id]);
    let argv: Vec<String> = std::iter::once(inner.get_program())
        .chain(inner.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let o = common::output_via_files({
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs && exec \"$@\"",
                shell.display()
            ))
            .arg("sh")
            .args(&argv)
            .current_dir(&u.home)
            .stdin(Stdio::null());
        c
    });
    assert!(o.status.success(), "{rt}: {o:?}");
    let cg = format!("/sys/fs/cgroup{cgroups_path}");
    check_felt(rt, &out(&o), &cg);
    assert!(!Path::new(&cg).exists(), "{rt}: {cg} left");
    std::fs::remove_dir(&shell).expect("rm shell cgroup");
    std::fs::remove_dir(&mine).expect("rm the user's subtree");
}

/// Rootless podman as the user, with podman's defaults here (the systemd cgroup manager on
/// the user's bus): `--memory` and `--pids-limit` land in the container's cgroup.
pub fn podman_memory(rt: &str) {
    let u = user();
    static IMPORTED: std::sync::Once = std::sync::Once::new();
    IMPORTED.call_once(|| {
        common::podman_import_as(|a| u.run(a), &u.home, (u.uid, u.gid));
        let info = u.run(&[
            "podman",
            "info",
            "--format",
            "{{.Host.CgroupManager}} {{.Host.Security.Rootless}}",
        ]);
        assert_eq!(
            out(&info).trim(),
            "systemd true",
            "rootless podman's defaults: {info:?}"
        );
    });
    let o = u.run(&[
        "podman",
        "--runtime",
        &bin(rt),
        "run",
        "--rm",
        "--memory",
        "64m",
        "--pids-limit",
        "10",
        "localhost/bb",
        "sh",
        "-c",
        "id -u; cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; cat /proc/self/cgroup; ip -4 addr show tap0 | grep -c inet",
    ]);
    assert!(o.status.success(), "{rt}: {o:?}");
    let text = out(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..3], ["0", "67108864", "10"], "{rt}: {text}");
    // The default rootless network here (slirp4netns's tap).
    assert_eq!(lines.last().copied(), Some("1"), "{rt}: {text}");
    let ps = u.run(&["podman", "ps", "-aq"]);
    assert_eq!(out(&ps).trim(), "", "{rt}: containers left");
}
