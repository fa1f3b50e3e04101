//! Rootless on this machine: ferrun and runc run by an unprivileged user the tests create (with
//! subordinate id ranges in /etc/subuid and /etc/subgid) and remove, and rootless podman driven
//! by that user. Nothing is delegated here (cgroup v1), so ferrun skips cgroups when none are
//! asked for and refuses when resources are; everything else must work, and every scenario
//! runs with runc too, so that a difference is ferrun's. Each test has a user of its own.

mod common;

use common::host_sh as sh;
use serde_json::{Value, json};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

/// /etc/passwd, /etc/subuid and /etc/subgid are edited one test at a time.
static ACCOUNTS: Mutex<()> = Mutex::new(());

struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
    runtime_dir: PathBuf,
    /// Its subordinate range: `sub..sub + 65536`.
    sub: u32,
}

fn without_user(file: &str, name: &str) {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let kept: String = text
        .lines()
        .filter(|l| l.split(':').next() != Some(name))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(file, kept).expect("write subordinate ids");
}

impl TestUser {
    fn new(name: &str, sub: u32) -> TestUser {
        let _g = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        // A user left by a killed run goes first.
        let _ = sh(&format!(
            "pkill -KILL -u {name} 2>/dev/null; sleep 0.2; userdel -r -f {name} 2>/dev/null"
        ));
        let o = sh(&format!(
            "useradd -m -s /bin/sh -G audio {name} && id -u {name} && id -g {name}"
        ));
        assert!(o.status.success(), "useradd {name}: {o:?}");
        let ids: Vec<u32> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        let (uid, gid) = (ids[0], ids[1]);
        // useradd may have given it a range of its own: ours replaces it.
        for file in ["/etc/subuid", "/etc/subgid"] {
            without_user(file, name);
            let mut text = std::fs::read_to_string(file).unwrap_or_default();
            text.push_str(&format!("{name}:{sub}:65536\n"));
            std::fs::write(file, text).expect("subordinate ids");
        }
        let runtime_dir = PathBuf::from(format!("/run/user/{uid}"));
        let _ = std::fs::remove_dir_all(&runtime_dir);
        std::fs::create_dir_all(&runtime_dir).expect("runtime dir");
        std::os::unix::fs::chown(&runtime_dir, Some(uid), Some(gid)).expect("chown");
        std::fs::set_permissions(&runtime_dir, std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        TestUser {
            name: name.into(),
            uid,
            gid,
            home: PathBuf::from(format!("/home/{name}")),
            runtime_dir,
            sub,
        }
    }

    /// `args` as this user, with a login's environment and no privilege at all.
    fn cmd(&self, args: &[&str]) -> Command {
        let env = [format!("XDG_RUNTIME_DIR={}", self.runtime_dir.display())];
        common::as_user(self.uid, self.gid, &self.home, &env, args)
    }

    fn run(&self, args: &[&str]) -> Output {
        common::output_via_files(self.cmd(args))
    }

    /// A bundle the user owns, on the shared busybox rootfs, from `<rt> spec --rootless`.
    fn bundle(&self, rt: &str, name: &str, args: &[&str]) -> RootlessBundle {
        let dir = self.home.join(name);
        let config =
            common::rootless_spec(|a| self.run(a), bin(rt), &dir, (self.uid, self.gid), args);
        let b = RootlessBundle { dir, config };
        b.save();
        b
    }

    /// Mounts of the host's namespace under the user's home or runtime directory.
    fn mounts(&self) -> Vec<String> {
        let home = self.home.to_string_lossy().into_owned();
        let run = self.runtime_dir.to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&home) || l.contains(&run))
            .map(str::to_string)
            .collect()
    }

    fn processes(&self) -> Vec<String> {
        // Zombies are dead: a detached container's init is reaped by whoever adopted it.
        let o = sh(&format!("ps -o pid=,stat=,args= -u {}", self.uid));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|st| !st.starts_with('Z'))
            })
            .map(str::to_string)
            .collect()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _g = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let _ = sh(&format!(
            "pkill -KILL -u {0}; pkill -KILL -U {1}-{2} 2>/dev/null; sleep 0.2; userdel -r -f {3}",
            self.uid,
            self.sub,
            self.sub + 65535,
            self.name
        ));
        let _ = std::fs::remove_dir_all(&self.runtime_dir);
        for file in ["/etc/subuid", "/etc/subgid"] {
            without_user(file, &self.name);
        }
    }
}

struct RootlessBundle {
    dir: PathBuf,
    config: Value,
}

impl RootlessBundle {
    fn save(&self) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).expect("encode"),
        )
        .expect("write config.json");
    }

    fn edit(&mut self, f: impl FnOnce(&mut Value)) {
        f(&mut self.config);
        self.save();
    }

    fn path(&self) -> &str {
        self.dir.to_str().expect("utf-8")
    }
}

fn bin(rt: &str) -> &'static str {
    match rt {
        "ferrun" => common::ferrun_for_users("ferrun-rootless-bin"),
        _ => "/usr/sbin/runc",
    }
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The runtime's default state root for a rootless caller.
fn default_root(u: &TestUser, rt: &str) -> PathBuf {
    u.runtime_dir.join(rt)
}

#[test]
fn rootless_run_exec_and_lifecycle_with_the_default_root() {
    let u = TestUser::new("ferrun-rl1", 300_000);
    for rt in ["ferrun", "runc"] {
        // `spec --rootless` runs as it is: root inside, the caller's uid outside.
        let b = u.bundle(
            rt,
            &format!("run-{rt}"),
            &["sh", "-c", "id -u; cat /proc/self/uid_map; exit 3"],
        );
        let o = u.run(&[bin(rt), "run", "-b", b.path(), &format!("r-{rt}")]);
        assert_eq!(o.status.code(), Some(3), "{rt}: {o:?}");
        let out = text(&o);
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("0"), "{rt}: {out}");
        let map: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
        assert_eq!(map, ["0", &u.uid.to_string(), "1"], "{rt}: {out}");
        // Without --root the state goes under $XDG_RUNTIME_DIR/<runtime>.
        let mut d = u.bundle(rt, &format!("detached-{rt}"), &["sleep", "100"]);
        // A raised oom score (allowed without privilege) reaches the exec'd process too.
        d.edit(|c| c["process"]["oomScoreAdj"] = json!(500));
        let id = format!("d-{rt}");
        let o = u.run(&[bin(rt), "run", "-d", "-b", d.path(), &id]);
        assert!(o.status.success(), "{rt} run -d: {o:?}");
        let dir = default_root(&u, rt).join(&id);
        assert!(dir.is_dir(), "{rt}: no state at {}", dir.display());
        assert_eq!(std::fs::metadata(&dir).expect("state").uid(), u.uid);
        let state = u.run(&[bin(rt), "state", &id]);
        let v: Value = serde_json::from_slice(&state.stdout).expect("state json");
        assert_eq!(v["status"], "running", "{rt}: {v}");
        // exec joins the container's user namespace from outside it.
        let e = u.run(&[
            bin(rt),
            "exec",
            &id,
            "sh",
            "-c",
            "id -u; tr '\\000' ' ' < /proc/1/cmdline; echo; cat /proc/self/oom_score_adj; exit 4",
        ]);
        assert_eq!(e.status.code(), Some(4), "{rt} exec: {e:?}");
        assert_eq!(text(&e), "0\nsleep 100 \n500\n", "{rt} exec");
        let k = u.run(&[bin(rt), "kill", &id, "KILL"]);
        assert!(k.status.success(), "{rt} kill: {k:?}");
        assert!(common::wait_until(|| {
            let s = u.run(&[bin(rt), "state", &id]);
            text(&s).contains("\"stopped\"")
        }));
        let del = u.run(&[bin(rt), "delete", &id]);
        assert!(del.status.success(), "{rt} delete: {del:?}");
        assert!(!dir.exists(), "{rt}: state left at {}", dir.display());
    }
    assert!(u.processes().is_empty(), "left: {:?}", u.processes());
    assert!(u.mounts().is_empty(), "mounts left: {:?}", u.mounts());
}

#[test]
fn rootless_maps_beyond_the_own_id_go_through_newuidmap() {
    let u = TestUser::new("ferrun-rl2", 400_000);
    for rt in ["ferrun", "runc"] {
        let mut b = u.bundle(
            rt,
            &format!("wide-{rt}"),
            &[
                "sh",
                "-c",
                "id; cat /proc/self/uid_map /proc/self/gid_map; grep ' /dev/null ' /proc/self/mountinfo",
            ],
        );
        let (uid, sub) = (u.uid, u.sub);
        b.edit(|c| {
            for (key, own) in [("uidMappings", uid), ("gidMappings", u.gid)] {
                c["linux"][key] = json!([
                    {"containerID": 0, "hostID": own, "size": 1},
                    {"containerID": 1, "hostID": sub, "size": 65536}
                ]);
            }
            // runc 1.1 refuses any additional group when rootless ("cannot set any additional
            // groups in a rootless container"), even with newgidmap; ferrun sets them.
            c["process"]["user"] = if rt == "ferrun" {
                json!({"uid": 1000, "gid": 1000, "additionalGids": [5]})
            } else {
                json!({"uid": 1000, "gid": 1000})
            };
        });
        let o = u.run(&[
            bin(rt),
            "--root",
            &format!("{}/state", b.path()),
            "run",
            "-b",
            b.path(),
            "w",
        ]);
        assert!(o.status.success(), "{rt}: {o:?}");
        let out = text(&o);
        let want_id = if rt == "ferrun" {
            "uid=1000 gid=1000 groups=5\n"
        } else {
            "uid=1000 gid=1000"
        };
        assert!(out.starts_with(want_id), "{rt}: {out}");
        let maps: Vec<Vec<String>> = out
            .lines()
            .skip(1)
            .take(4)
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect();
        let want = |own: u32| {
            vec![
                vec!["0".to_string(), own.to_string(), "1".to_string()],
                vec!["1".to_string(), sub.to_string(), "65536".to_string()],
            ]
        };
        assert_eq!(maps[..2], want(uid)[..], "{rt}: {out}");
        assert_eq!(maps[2..], want(u.gid)[..], "{rt}: {out}");
        // The host's /dev/null is bound (no mknod without privilege); ferrun's bind can run
        // nothing (nosuid, noexec), as the spec issue asks and crun does.
        let null = out.lines().last().unwrap_or("");
        assert!(null.contains(" /dev/null "), "{rt}: {out}");
        if rt == "ferrun" {
            assert!(null.contains("nosuid") && null.contains("noexec"), "{null}");
        }
    }
}

#[test]
fn rootless_refusals_name_the_field_and_leave_nothing() {
    let u = TestUser::new("ferrun-rl3", 500_000);
    let root = u.home.join("state");
    let root = root.to_str().expect("utf-8");
    // Resources cannot be applied without a delegated cgroup: refused (runc's rule).
    let mut b = u.bundle("ferrun", "limits", &["true"]);
    b.edit(|c| c["linux"]["resources"] = json!({"pids": {"limit": 20}}));
    let o = u.run(&[bin("ferrun"), "--root", root, "run", "-b", b.path(), "lim"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let e = err(&o);
    assert!(
        e.contains("not delegated") && e.contains("linux.resources"),
        "{e}"
    );
    assert!(!Path::new(root).join("lim").exists());
    let r = u.run(&[
        bin("runc"),
        "--root",
        &format!("{root}-runc"),
        "run",
        "-b",
        b.path(),
        "lim",
    ]);
    assert!(
        !r.status.success() && err(&r).contains("could not join or create cgroup"),
        "runc applies no limits it cannot: {r:?}"
    );
    // Without resources the container runs, outside any cgroup of its own, with a warning.
    let mut plain = u.bundle("ferrun", "plain", &["cat", "/proc/self/cgroup"]);
    plain.edit(|_| {});
    let o = u.run(&[
        bin("ferrun"),
        "--root",
        root,
        "run",
        "-b",
        plain.path(),
        "plain",
    ]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        err(&o).contains("rootless: no cgroup for plain"),
        "{}",
        err(&o)
    );
    assert!(!text(&o).contains("/plain"), "{}", text(&o));
    // ferrun's default path is `<own cgroup>/<id>`, the caller's (this test's) cgroup.
    let own = std::fs::read_to_string("/proc/self/cgroup").expect("own cgroups");
    for line in own.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrl), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let mount = match ctrl {
            "" => "unified".to_string(),
            c => c
                .trim_start_matches("name=")
                .split(',')
                .next()
                .unwrap_or(c)
                .to_string(),
        };
        let dir = Path::new("/sys/fs/cgroup")
            .join(mount)
            .join(path.trim_start_matches('/'))
            .join("plain");
        assert!(!dir.exists(), "{} was made", dir.display());
    }
    // Below `unshare -r` (root in a namespace mapping only the caller, setgroups denied, as
    // under `podman unshare`), a config without a user namespace runs: no setgroups is tried.
    let mut under = u.bundle(
        "ferrun",
        "unshare",
        &["sh", "-c", "id -u; cat /proc/self/setgroups"],
    );
    under.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().expect("namespaces");
        ns.retain(|n| n["type"] != "user");
        let l = c["linux"].as_object_mut().expect("linux");
        l.remove("uidMappings");
        l.remove("gidMappings");
    });
    let o = u.run(&[
        "unshare",
        "-r",
        bin("ferrun"),
        "--root",
        root,
        "run",
        "-b",
        under.path(),
        "un",
    ]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(text(&o), "0\ndeny\n");
    // An rlimit above the caller's hard limit: EPERM, said before anything is made.
    let mut rl = u.bundle("ferrun", "rlimit", &["true"]);
    rl.edit(|c| {
        c["process"]["rlimits"] =
            json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1_099_511_627_776u64}]);
    });
    let o = u.run(&[bin("ferrun"), "--root", root, "run", "-b", rl.path(), "rl"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let e = err(&o);
    assert!(
        e.contains("process.rlimits: RLIMIT_NOFILE") && e.contains("Operation not permitted"),
        "{e}"
    );
    // Supplementary groups with a map of the own gid only: setgroups is denied, so refused.
    let mut g = u.bundle("ferrun", "groups", &["true"]);
    g.edit(|c| c["process"]["user"]["additionalGids"] = json!([5]));
    let o = u.run(&[bin("ferrun"), "--root", root, "run", "-b", g.path(), "g"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        err(&o).contains("process.user.additionalGids"),
        "{}",
        err(&o)
    );
    // Without XDG_RUNTIME_DIR, /run/user/<uid> when it is the caller's; without that either,
    // told what to set.
    let no_xdg = || {
        Command::new("setpriv")
            .args([
                "--reuid",
                &u.uid.to_string(),
                "--regid",
                &u.gid.to_string(),
                "--init-groups",
                "--reset-env",
                "--",
                bin("ferrun"),
                "list",
                "-q",
            ])
            .current_dir("/")
            .output()
            .expect("setpriv")
    };
    let o = no_xdg();
    assert!(o.status.success(), "{o:?}");
    std::fs::remove_dir_all(&u.runtime_dir).expect("rm runtime dir");
    let o = no_xdg();
    std::fs::create_dir_all(&u.runtime_dir).expect("runtime dir");
    std::os::unix::fs::chown(&u.runtime_dir, Some(u.uid), Some(u.gid)).expect("chown");
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(err(&o).contains("XDG_RUNTIME_DIR"), "{}", err(&o));
    let left: Vec<_> = std::fs::read_dir(root)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('@'))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "state left: {left:?}");
    assert!(u.processes().is_empty(), "left: {:?}", u.processes());
}

/// Rootless podman as the user, with its own configuration (vfs, cgroupfs, events in a file)
/// and the busybox image imported into the user's store.
fn podman_user(u: &TestUser) {
    let conf = u.home.join(".config/containers");
    std::fs::create_dir_all(&conf).expect("conf");
    std::fs::write(
        conf.join("containers.conf"),
        format!(
            "[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n[engine.runtimes]\nferrun = [\"{}\"]\n",
            bin("ferrun")
        ),
    )
    .expect("containers.conf");
    std::fs::write(conf.join("storage.conf"), "[storage]\ndriver = \"vfs\"\n").expect("storage");
    let _ = sh(&format!(
        "chown -R {0}:{1} {2}/.config",
        u.uid,
        u.gid,
        u.home.display()
    ));
    common::podman_import_as(|a| u.run(a), &u.home, (u.uid, u.gid));
}

/// Debian makes /dev/net/tun 0666; this machine has it 0600, which keeps slirp4netns (the
/// rootless network) from opening it. Restored when dropped.
struct TunOpen(u32);

impl TunOpen {
    fn new() -> TunOpen {
        let mode = std::fs::metadata("/dev/net/tun")
            .expect("/dev/net/tun")
            .mode()
            & 0o7777;
        std::fs::set_permissions("/dev/net/tun", std::fs::Permissions::from_mode(0o666))
            .expect("chmod tun");
        TunOpen(mode)
    }
}

impl Drop for TunOpen {
    fn drop(&mut self) {
        if self.0 != 0o666 {
            let _ =
                std::fs::set_permissions("/dev/net/tun", std::fs::Permissions::from_mode(self.0));
        }
    }
}

#[test]
fn rootless_podman_end_to_end() {
    let u = TestUser::new("ferrun-rl4", 600_000);
    let _tun = TunOpen::new();
    podman_user(&u);
    let podman = |rt: &str, args: &[&str]| {
        let mut all = vec!["podman", "--runtime", rt];
        all.extend_from_slice(args);
        u.run(&all)
    };
    for rt in ["ferrun", "runc"] {
        let o = podman(
            rt,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "localhost/bb",
                "sh",
                "-c",
                "id -u; exit 7",
            ],
        );
        assert_eq!(o.status.code(), Some(7), "{rt}: {o:?}");
        assert_eq!(text(&o), "0\n", "{rt}");
        // run -d, exec with its exit code, stop, rm.
        let o = podman(
            rt,
            &[
                "run",
                "-d",
                "--network",
                "none",
                "localhost/bb",
                "sleep",
                "100",
            ],
        );
        assert!(o.status.success(), "{rt} run -d: {o:?}");
        let id = text(&o).trim().to_string();
        let e = podman(rt, &["exec", &id, "sh", "-c", "echo in-exec; exit 5"]);
        assert_eq!(e.status.code(), Some(5), "{rt} exec: {e:?}");
        assert_eq!(text(&e), "in-exec\n", "{rt}");
        let s = podman(rt, &["stop", "-t", "1", &id]);
        assert!(s.status.success(), "{rt} stop: {s:?}");
        let r = podman(rt, &["rm", &id]);
        assert!(r.status.success(), "{rt} rm: {r:?}");
        // --userns keep-id: the user's own uid inside.
        let o = podman(
            rt,
            &[
                "run",
                "--rm",
                "--userns",
                "keep-id",
                "--network",
                "none",
                "localhost/bb",
                "id",
                "-u",
            ],
        );
        assert_eq!(text(&o).trim(), u.uid.to_string(), "{rt}: {o:?}");
        // The default rootless network: slirp4netns's tap device and address.
        let o = podman(
            rt,
            &[
                "run",
                "--rm",
                "localhost/bb",
                "ip",
                "-4",
                "addr",
                "show",
                "tap0",
            ],
        );
        assert!(o.status.success(), "{rt} network: {o:?}");
        assert!(
            text(&o).contains("inet 10.0.2.100/24"),
            "{rt}: {}",
            text(&o)
        );
    }
    // --group-add keep-groups (crun's run.oci.keep_original_groups): the user's supplementary
    // group (audio, unmapped inside, so shown as the overflow gid) stays. runc 1.1 does not know
    // the annotation and sets no groups.
    let groups = |rt: &str| {
        let o = podman(
            rt,
            &[
                "run",
                "--rm",
                "--group-add",
                "keep-groups",
                "--network",
                "none",
                "localhost/bb",
                "sh",
                "-c",
                "grep Groups /proc/self/status",
            ],
        );
        assert!(o.status.success(), "{rt} keep-groups: {o:?}");
        text(&o)
    };
    let ferrun_groups = groups("ferrun");
    assert!(ferrun_groups.contains("65534"), "{ferrun_groups}");
    assert!(!groups("runc").contains("65534"));
    let left = podman("ferrun", &["ps", "-aq"]);
    assert_eq!(text(&left), "", "containers left");
    assert!(u.mounts().is_empty(), "mounts left: {:?}", u.mounts());
    let _ = u.run(&["podman", "system", "migrate"]);
}

#[test]
fn rootless_cve_2019_5736_no_id_of_the_container_can_write_the_runtime() {
    let u = TestUser::new("ferrun-rl5", 700_000);
    // A binary the user owns is copied (sealed memfd) before the container starts; the
    // installed one, root's and not writable by the user's ids, runs as it is.
    let own = u.home.join("ferrun");
    std::fs::copy(bin("ferrun"), &own).expect("copy ferrun");
    std::os::unix::fs::chown(&own, Some(u.uid), Some(u.gid)).expect("chown");
    for (binary, copied) in [
        (bin("ferrun").to_string(), false),
        (own.display().to_string(), true),
    ] {
        let b = u.bundle("ferrun", "exe", &["sleep", "30"]);
        let root = format!("{}/state", u.home.display());
        let mut run = u
            .cmd(&[&binary, "--root", &root, "run", "-b", b.path(), "exe"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run");
        let pid = run.id();
        assert!(common::wait_until(|| {
            text(&u.run(&[&binary, "--root", &root, "state", "exe"])).contains("running")
        }));
        let image = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
        assert_eq!(
            image.to_string_lossy().starts_with("/memfd:ferrun"),
            copied,
            "{binary}: runs from {}",
            image.display()
        );
        // The user's ids (the container's root among them) cannot open it for writing.
        let w = u.run(&["sh", "-c", &format!(": >> /proc/{pid}/exe")]);
        assert!(
            !w.status.success(),
            "{binary}: /proc/{pid}/exe is writable: {w:?}"
        );
        let _ = u.run(&[&binary, "--root", &root, "kill", "exe", "KILL"]);
        let _ = run.wait();
        let _ = u.run(&[&binary, "--root", &root, "delete", "-f", "exe"]);
    }
}
