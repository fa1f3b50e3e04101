//! Attacks on the runtime and the host through configs, images and the state root, each as the
//! reproduction it was found with (issue #9), and the CVE classes that already held, kept
//! tested: every case asserts what the host keeps.

mod common;

use common::{Bundle, ok};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// A copy of the shared busybox rootfs that a test may change (symlinks an image could hold).
fn private_rootfs(b: &Bundle) -> PathBuf {
    let root = b.path().join("image");
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(common::rootfs())
        .arg(&root)
        .status()
        .expect("cp");
    assert!(st.success());
    root
}

fn host_mounts() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .count()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `create` fails with one line that holds `want`, and leaves no state and no host mount.
fn refused(b: &Bundle, want: &str) {
    let before = host_mounts();
    let bundle = b.path().to_str().expect("utf-8");
    let o = b.ferrun(&["create", "--bundle", bundle, "bad"]);
    let err = stderr(&o);
    if o.status.success() {
        // Not refused: remove it before failing, so that nothing outlives the test.
        let _ = b.ferrun(&["delete", "--force", "bad"]);
    }
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(want), "want {want:?} in {err:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(b.leftover_state().is_empty(), "{:?}", b.leftover_state());
    assert!(common::cgroup_dirs(&b.cgroup_path()).is_empty());
    assert_eq!(host_mounts(), before, "a mount was left on the host");
}

/// Deletes a container when dropped, also when an assertion fails first: nothing outlives a test.
struct Deleted<'a>(&'a Bundle, &'a str);

impl Drop for Deleted<'_> {
    fn drop(&mut self) {
        let _ = self.0.ferrun(&["delete", "--force", self.1]);
    }
}

fn push_mount(c: &mut Value, m: Value) {
    c["mounts"].as_array_mut().expect("mounts").push(m);
}

/// An image whose /data is a symlink to `target`, and a tmpfs volume mounted at /data.
fn tmpfs_on_data_linked_to(target: &str) -> Bundle {
    let mut b = Bundle::new(&["true"]);
    let root = private_rootfs(&b);
    std::fs::remove_dir_all(root.join("data")).expect("rmdir");
    std::os::unix::fs::symlink(target, root.join("data")).expect("symlink");
    b.edit(|c| {
        c["root"]["path"] = json!(root);
        push_mount(
            c,
            json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs"}),
        );
    });
    b
}

fn printk_burst() -> String {
    std::fs::read_to_string("/proc/sys/kernel/printk_ratelimit_burst").expect("host sysctl")
}

#[test]
fn a_namespaced_sysctl_cannot_reach_a_host_sysctl_and_nothing_is_mounted_inside_proc() {
    let host_before = printk_burst();
    let sysctl = json!({"net.ipv4.ping_group_range": "11"});
    // A host directory whose ping_group_range points at a host-wide sysctl.
    let fake = |b: &Bundle| {
        let fake = b.path().join("fake");
        std::fs::create_dir(&fake).expect("mkdir");
        std::os::unix::fs::symlink(
            "/proc/sys/kernel/printk_ratelimit_burst",
            fake.join("ping_group_range"),
        )
        .expect("symlink");
        fake
    };

    // 1. The fake directory bound over /proc/sys/net/ipv4.
    let mut b = Bundle::new(&["true"]);
    let dir = fake(&b);
    b.edit(|c| {
        c["linux"]["sysctl"] = sysctl.clone();
        push_mount(
            c,
            json!({"destination": "/proc/sys/net/ipv4", "type": "bind", "source": dir, "options": ["bind"]}),
        );
    });
    refused(
        &b,
        "/proc/sys/net/ipv4 cannot be mounted because it is inside /proc",
    );

    // 2. A tmpfs over /proc/sys/kernel.
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        push_mount(
            c,
            json!({"destination": "/proc/sys/kernel", "type": "tmpfs", "source": "tmpfs"}),
        )
    });
    refused(
        &b,
        "/proc/sys/kernel cannot be mounted because it is inside /proc",
    );

    // 3. No mount into /proc in the config: the image has /data2 -> /proc/sys/net/ipv4, and a
    //    volume is mounted at /data2 (podman sets ping_group_range by default).
    let mut b = Bundle::new(&["true"]);
    let root = private_rootfs(&b);
    std::os::unix::fs::symlink("/proc/sys/net/ipv4", root.join("data2")).expect("symlink");
    let dir = fake(&b);
    b.edit(|c| {
        c["root"]["path"] = json!(root);
        c["linux"]["sysctl"] = sysctl.clone();
        push_mount(
            c,
            json!({"destination": "/data2", "type": "bind", "source": dir, "options": ["bind"]}),
        );
    });
    refused(&b, "it resolves inside /proc");

    // 4. The same through /data -> /proc/sys/kernel with a tmpfs volume.
    refused(
        &tmpfs_on_data_linked_to("/proc/sys/kernel"),
        "it resolves inside /proc",
    );

    // 5. A bind of another directory onto /proc itself, by absolute path and relative to the
    //    bundle ("proc" is no /proc), while a bind of a real procfs root works.
    let mut b = Bundle::new(&["true"]);
    let dir = fake(&b);
    b.edit(|c| {
        push_mount(
            c,
            json!({"destination": "/proc", "type": "bind", "source": dir, "options": ["rbind"]}),
        )
    });
    refused(&b, "the file reached is not on procfs");
    let mut b = Bundle::new(&["true"]);
    std::fs::create_dir(b.path().join("proc")).expect("mkdir");
    b.edit(|c| {
        push_mount(
            c,
            json!({"destination": "/proc", "type": "bind", "source": "proc", "options": ["rbind"]}),
        )
    });
    refused(&b, "the file reached is not on procfs");
    let mut b = Bundle::new(&[]);
    b.edit(|c| {
        let mounts = c["mounts"].as_array_mut().expect("mounts");
        mounts.retain(|m| m["destination"] != "/proc");
        mounts.insert(
            0,
            json!({"destination": "/proc", "type": "bind", "source": "/proc", "options": ["rbind"]}),
        );
        c["linux"]["namespaces"]
            .as_array_mut()
            .expect("ns")
            .retain(|n| n["type"] != "pid");
    });
    assert_eq!(b.sh("test -e /proc/self/stat && echo procfs"), "procfs\n");

    // 6. A tmpfs over /proc itself, and one reaching the procfs through /data -> /proc.
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        push_mount(
            c,
            json!({"destination": "/proc", "type": "tmpfs", "source": "tmpfs"}),
        )
    });
    refused(
        &b,
        "/proc takes a proc mount or a bind of a procfs, nothing else",
    );
    refused(
        &tmpfs_on_data_linked_to("/proc"),
        "it resolves inside /proc",
    );

    // 7. A device node inside /proc (a bind of the host's file in a user namespace).
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["linux"]["devices"] =
            json!([{"path": "/proc/sys/kernel/core_pattern", "type": "c", "major": 1, "minor": 3}])
    });
    refused(
        &b,
        "linux.devices[0].path: /proc/sys/kernel/core_pattern is inside /proc",
    );

    assert_eq!(
        printk_burst(),
        host_before,
        "the host's sysctl is untouched"
    );

    // What lxcfs does stays allowed: a file bound over /proc/cpuinfo and /proc/uptime, and the
    // sysctl itself lands in the container's own network namespace.
    let mut b = Bundle::new(&[]);
    let info = b.path().join("cpuinfo");
    std::fs::write(&info, "fake cpuinfo\n").expect("write");
    b.edit(|c| {
        c["linux"]["sysctl"] = json!({"net.ipv4.ping_group_range": "0 0"});
        push_mount(
            c,
            json!({"destination": "/proc/cpuinfo", "type": "bind", "source": info, "options": ["bind", "ro"]}),
        );
        push_mount(
            c,
            json!({"destination": "/proc/uptime", "type": "bind", "source": info, "options": ["bind", "ro"]}),
        );
    });
    let out = b.sh("cat /proc/cpuinfo /proc/uptime /proc/sys/net/ipv4/ping_group_range");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["fake", "cpuinfo", "fake", "cpuinfo", "0", "0"]
    );
    // Without a proc mount, the image's own /proc/sys holds a decoy: the write still reaches
    // the container's network namespace, through a procfs of the container process's own, and
    // the decoy is left alone (the container mounts proc itself to look).
    let mut d = Bundle::new(&[]);
    let root = private_rootfs(&d);
    let decoy = root.join("proc/sys/net/ipv4/ping_group_range");
    std::fs::create_dir_all(decoy.parent().expect("dir")).expect("mkdir");
    std::fs::write(&decoy, "decoy\n").expect("write");
    d.edit(|c| {
        c["root"]["path"] = json!(root);
        c["root"]["readonly"] = json!(false);
        c["linux"]["sysctl"] = json!({"net.ipv4.ping_group_range": "0 0"});
        c["linux"]["readonlyPaths"] = json!([]);
        c["mounts"]
            .as_array_mut()
            .expect("mounts")
            .retain(|m| m["destination"] != "/proc");
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .expect("caps")
                .push(json!("CAP_SYS_ADMIN"));
        }
    });
    let out = d.sh("mount -t proc proc /proc && cat /proc/sys/net/ipv4/ping_group_range");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "0"]);
    assert_eq!(std::fs::read_to_string(&decoy).expect("decoy"), "decoy\n");

    // The plan writes the sysctl through a procfs of the container process's own.
    let plan = ok(&b.ferrun(&["plan", "--bundle", b.path().to_str().expect("utf-8")]));
    let open = plan
        .find("open a procfs of our own")
        .expect("the procfs step");
    let write = plan
        .find("sysctl /proc/sys/net/ipv4/ping_group_range")
        .expect("sysctl");
    assert!(open < write, "{plan}");
}

#[test]
fn uid_and_gid_minus_one_are_refused_from_the_config_and_from_exec() {
    let minus_one = 4_294_967_295u64;
    for (field, edit) in [
        ("process.user.uid", json!({"uid": minus_one, "gid": 0})),
        ("process.user.gid", json!({"uid": 0, "gid": minus_one})),
        (
            "process.user.additionalGids[1]",
            json!({"uid": 0, "gid": 0, "additionalGids": [1, minus_one]}),
        ),
    ] {
        let mut b = Bundle::new(&["id"]);
        b.edit(|c| c["process"]["user"] = edit.clone());
        refused(
            &b,
            &format!("{field}: 4294967295: uids and gids must be in range 0-2147483647"),
        );
    }
    let mut b = Bundle::new(&["id"]);
    b.edit(|c| {
        c["linux"]["devices"] =
            json!([{"path": "/dev/x", "type": "c", "major": 1, "minor": 3, "uid": minus_one}])
    });
    refused(&b, "linux.devices[0].uid: 4294967295: uids and gids");
    let mut b = Bundle::new(&["id"]);
    b.edit(|c| common::user_namespace(c, 4_294_901_760, 100000));
    refused(
        &b,
        "linux.uidMappings[0]: hostID 4294901760 size 65536 reaches 4294967295",
    );

    // exec --user -1:-1 into a container with a user namespace (0 -> 100000): it would run as
    // the caller, host root.
    let mut b = Bundle::new(&["sleep", "30"]);
    b.edit(|c| {
        common::user_namespace(c, 100000, 100000);
    });
    b.run_detached("u", &[]);
    let _u = Deleted(&b, "u");
    for args in [
        &["exec", "--user", "4294967295:4294967295", "u", "id"][..],
        &["exec", "--user", "0:4294967295", "u", "id"][..],
        &["exec", "--additional-gids", "4294967295", "u", "id"][..],
    ] {
        let o = b.ferrun(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("uids and gids must be in range 0-2147483647"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    let o = b.ferrun(&["exec", "--user", "1000:1000", "u", "id", "-u"]);
    assert_eq!(ok(&o).trim(), "1000", "a valid user still works");
    assert!(b.ferrun(&["delete", "-f", "u"]).status.success());
}

/// `(fd, what it names)` of every fd a process holds.
fn fds_of(pid: i32) -> Vec<(u32, String)> {
    let mut out: Vec<(u32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((n, target.to_string_lossy().into_owned()))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_created_container_holds_no_host_fd_until_start() {
    let mut b = Bundle::new(&["sleep", "30"]);
    b.edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .expect("caps")
                .push(json!("CAP_SYS_PTRACE"));
        }
    });
    let bundle = b.path().to_str().expect("utf-8").to_string();
    let pid_file = format!("{bundle}/pid");
    let root = b.state_root();
    // The caller holds the host's / as an inheritable fd 6, as a careless engine might.
    let script = format!(
        "exec 6</; exec {} --root {} create --bundle {bundle} --pid-file {pid_file} fd1",
        common::ferrun_bin(),
        root.display()
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script]).stdin(std::process::Stdio::null());
    let o = common::output_via_files(cmd);
    let _fd1 = Deleted(&b, "fd1");
    assert!(o.status.success(), "{}", stderr(&o));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid")
        .parse()
        .expect("pid");
    let fds = fds_of(pid);
    let fifo = root.join("fd1/exec.fifo").to_string_lossy().into_owned();
    for (n, what) in &fds {
        let allowed = *n <= 2 || *what == fifo || what.starts_with("socket:[");
        assert!(
            allowed,
            "fd {n} -> {what} held by the created init: {fds:?}"
        );
    }
    let above_stdio: Vec<&String> = fds.iter().filter(|(n, _)| *n > 2).map(|(_, w)| w).collect();
    assert_eq!(
        above_stdio.len(),
        2,
        "the fifo and the sync socket only: {fds:?}"
    );
    assert_eq!(
        above_stdio
            .iter()
            .filter(|w| w.starts_with("socket:["))
            .count(),
        1,
        "{fds:?}"
    );
    // What `exec` into the created container can reach through init's fds: nothing of the host.
    let o = b.ferrun(&["exec", "fd1", "ls", "/proc/1/fd/6/"]);
    assert!(
        !o.status.success(),
        "fd 6 reached: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = b.ferrun(&["exec", "fd1", "sh", "-c", "ls /proc/1/fd | wc -l"]);
    let n: usize = ok(&o).trim().parse().expect("count");
    assert_eq!(n, 5, "stdio, the fifo and the sync socket");
    // A gap in the preserved range (fd 4 of --preserve-fds 2 is not open) is where the
    // container process's own rootfs and procfs fds land: they are closed all the same.
    let mut g = Bundle::new(&["sleep", "30"]);
    g.edit(|c| c["linux"]["sysctl"] = json!({"net.ipv4.ping_group_range": "0 0"}));
    let gbundle = g.path().to_str().expect("utf-8").to_string();
    let gpid_file = format!("{gbundle}/pid");
    let script = format!(
        "exec 3</dev/null 6</; exec {} --root {} create --preserve-fds 2 --bundle {gbundle} \
         --pid-file {gpid_file} gap",
        common::ferrun_bin(),
        g.state_root().display()
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script]).stdin(std::process::Stdio::null());
    let o = common::output_via_files(cmd);
    let _gap = Deleted(&g, "gap");
    assert!(o.status.success(), "{}", stderr(&o));
    let gpid: i32 = std::fs::read_to_string(&gpid_file)
        .expect("pid")
        .parse()
        .expect("pid");
    let held = fds_of(gpid);
    let gfifo = g
        .state_root()
        .join("gap/exec.fifo")
        .to_string_lossy()
        .into_owned();
    let extra: Vec<&(u32, String)> = held
        .iter()
        .filter(|(n, w)| *n > 3 && *w != gfifo && !w.starts_with("socket:["))
        .collect();
    assert!(extra.is_empty(), "held in the gap: {held:?}");
    assert_eq!(
        held.iter().find(|(n, _)| *n == 3).map(|(_, w)| w.as_str()),
        Some("/dev/null")
    );
    assert!(g.ferrun(&["delete", "-f", "gap"]).status.success());
    // start still works: the fifo and the sync socket were kept.
    assert!(b.ferrun(&["start", "fd1"]).status.success());
    let st = ok(&b.ferrun(&["state", "fd1"]));
    assert!(st.contains("\"running\""), "{st}");
    assert!(b.ferrun(&["delete", "-f", "fd1"]).status.success());
}

#[test]
fn delete_force_of_a_paused_container_thaws_and_kills_it() {
    let b = Bundle::new(&["sleep", "60"]);
    let pid = b.run_detached("paused", &[]);
    let _paused = Deleted(&b, "paused");
    assert!(ok(&b.ferrun(&["pause", "paused"])).is_empty());
    assert!(ok(&b.ferrun(&["state", "paused"])).contains("\"paused\""));
    let o = b.ferrun(&["delete", "--force", "paused"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(b.leftover_state().is_empty());
    assert!(common::wait_until(
        || !Path::new(&format!("/proc/{pid}")).exists()
    ));
    assert!(common::cgroup_dirs(&b.cgroup_path()).is_empty());
}

#[test]
fn a_corrupt_state_is_shown_and_never_deleted_on_a_guess() {
    let b = Bundle::new(&["sleep", "60"]);
    type Damage = fn(&Path);
    let damages: [(&str, Damage); 3] = [
        ("truncated", |p| {
            let bytes = std::fs::read(p).expect("state");
            std::fs::write(p, &bytes[..bytes.len() / 3]).expect("write");
        }),
        ("random bytes", |p| {
            std::fs::write(p, [0x8fu8, 0x00, 0x13, 0xfe, 0x7b, 0x22]).expect("write")
        }),
        ("removed", |p| std::fs::remove_file(p).expect("rm")),
    ];
    for (name, damage) in damages {
        let pid = b.run_detached("c", &[]);
        let state = b.state_root().join("c/state.json");
        let good = std::fs::read(&state).expect("state");
        damage(&state);
        let o = b.ferrun(&["list"]);
        assert!(o.status.success(), "{name}");
        let table = String::from_utf8_lossy(&o.stdout);
        let row = table.lines().find(|l| l.starts_with("c ")).unwrap_or("");
        assert!(row.contains("unknown"), "{name}: listed: {table}");
        assert!(
            stderr(&o).contains("load container c"),
            "{name}: {}",
            stderr(&o)
        );
        assert!(ok(&b.ferrun(&["list", "-q"])).lines().any(|l| l == "c"));
        let o = b.ferrun(&["delete", "--force", "c"]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains("not deleted"), "{name}: {}", stderr(&o));
        assert!(b.state_root().join("c").is_dir(), "{name}: the state stays");
        assert!(
            Path::new(&format!("/proc/{pid}")).exists(),
            "{name}: it still runs"
        );
        std::fs::write(&state, good).expect("restore");
        assert!(b.ferrun(&["delete", "--force", "c"]).status.success());
        assert!(common::wait_until(
            || !Path::new(&format!("/proc/{pid}")).exists()
        ));
    }
    assert!(common::cgroup_dirs(&b.cgroup_path()).is_empty());
}

#[test]
fn a_changed_cached_seccomp_filter_is_rebuilt_not_installed() {
    let mut b = Bundle::new(&["sh", "-c", "mkdir /tmp/x 2>&1; echo done"]);
    b.edit(|c| {
        c["root"]["readonly"] = json!(false);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
        });
        push_mount(c, json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
    });
    let (code, out, err) = b.run("f1");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Function not implemented"), "{out}");
    // Turn every RET ERRNO(38) of the cached filter into RET ALLOW.
    let dir = b.state_root().join("@cache/seccomp");
    let file = std::fs::read_dir(&dir)
        .expect("filter cache")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "bpf"))
        .expect("a cached filter");
    let mut bytes = std::fs::read(&file).expect("read");
    let errno38 = 0x0005_0026u32.to_le_bytes();
    let allow = 0x7fff_0000u32.to_le_bytes();
    let mut changed = 0;
    for i in 0..bytes.len().saturating_sub(8) {
        // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }, BPF_RET|BPF_K = 0x06.
        if bytes[i..i + 2] == [0x06, 0x00] && bytes[i + 4..i + 8] == errno38 {
            bytes[i + 4..i + 8].copy_from_slice(&allow);
            changed += 1;
        }
    }
    assert!(changed > 0, "found the filter's ERRNO(38)");
    std::fs::write(&file, &bytes).expect("write");
    // Another config (a plan cache miss) with the same profile: the filter cache is consulted.
    b.edit(|c| c["hostname"] = json!("other"));
    let (code, out, err) = b.run("f2");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Function not implemented"),
        "still refused: {out}"
    );
    assert_ne!(std::fs::read(&file).expect("read"), bytes, "rewritten");
}

#[test]
fn a_cgroups_path_the_kernel_cannot_name_is_refused_before_anything_is_made() {
    let mut b = Bundle::new(&["true"]);
    let base = b.cgroup_path();
    let long = format!("{base}/{}", "a/".repeat(2100));
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(long));
    refused(&b, "too long for the kernel's PATH_MAX (4096)");
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(format!("{base}/{}", "n".repeat(300))));
    refused(&b, "is longer than 255 bytes");
    // Just under PATH_MAX is still too long: the cgroup's own files would not fit.
    let mount = "/sys/fs/cgroup/memory";
    let room = 4096 - 20 - mount.len() - base.len() - 1;
    let name = "b/".repeat(room / 2);
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(format!("{base}/{}", name.trim_end_matches('/'))));
    refused(&b, "too long for the kernel's PATH_MAX (4096)");
}

#[test]
fn the_plan_cache_sweeps_dead_temporaries_stays_bounded_and_drops_private_plans() {
    let mut b = Bundle::new(&["true"]);
    let bundle = b.path().to_str().expect("utf-8").to_string();
    let plans = b.state_root().join("@cache/plans");
    std::fs::create_dir_all(&plans).expect("mkdir");
    // A writer killed mid-write (pid 2^22 - 1 is above pid_max's default and never alive here).
    let stale = plans.join(".4194303.tmp");
    std::fs::write(&stale, b"half a plan").expect("write");
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let set_old = |p: &Path| {
        std::fs::File::open(p)
            .and_then(|f| f.set_modified(old))
            .expect("mtime")
    };
    set_old(&stale);
    // A fresh one may belong to a writer at work: it stays.
    let fresh = plans.join(".4194302.tmp");
    std::fs::write(&fresh, b"being written").expect("write");
    // A claim whose create was killed before it was renamed into place.
    let claim = b.state_root().join("@claim-4194303-1");
    std::fs::create_dir(&claim).expect("mkdir");
    std::fs::write(claim.join("state.json"), b"{}").expect("write");
    set_old(&claim);
    // Many configs' worth of entries, the oldest first.
    for i in 0..600 {
        let p = plans.join(format!("{i:064x}.plan"));
        std::fs::write(&p, b"old").expect("write");
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + i);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_modified(t))
            .expect("mtime");
    }
    let (code, _, err) = b.run("sweep");
    assert_eq!(code, 0, "{err}");
    assert!(!stale.exists(), "the dead writer's file is swept");
    assert!(fresh.exists(), "a fresh one stays");
    std::fs::remove_file(&fresh).expect("rm");
    assert!(claim.exists());
    assert!(b.ferrun(&["list"]).status.success());
    assert!(!claim.exists(), "list sweeps a stale claim");
    let count = std::fs::read_dir(&plans).expect("dir").count();
    assert!(count <= ferrun::cache::MAX_ENTRIES, "{count} entries");
    assert!(
        !plans.join(format!("{:064x}.plan", 0)).exists(),
        "the oldest went"
    );
    assert!(
        plans.join(format!("{:064x}.plan", 599)).exists(),
        "the newest stayed"
    );

    // A plan that cannot be stored (its name is taken by a directory) leaves no temporary.
    b.edit(|c| c["hostname"] = json!("blocked"));
    let key = |b: &Bundle| {
        let out = ok(&b.ferrun(&["plan", "--bundle", &bundle]));
        let line = out.lines().last().expect("cache line").to_string();
        PathBuf::from(line.rsplit(' ').next().expect("path"))
    };
    let path = key(&b);
    std::fs::remove_file(&path).expect("rm");
    std::fs::create_dir(&path).expect("mkdir");
    let (code, _, err) = b.run("blocked");
    assert_eq!(code, 0, "{err}");
    let temporaries: Vec<_> = std::fs::read_dir(&plans)
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(temporaries.is_empty(), "{temporaries:?}");

    // A bundle of the container's own (as engines make them): its plan goes with it.
    let own = b.path().join("c0ffee");
    std::fs::create_dir(&own).expect("mkdir");
    std::fs::write(
        own.join("config.json"),
        serde_json::to_vec(&b.config).expect("json"),
    )
    .expect("write");
    let own_str = own.to_str().expect("utf-8");
    let o = b.ferrun(&["run", "--bundle", own_str, "c0ffee"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let private = ok(&b.ferrun(&["plan", "--bundle", own_str]));
    assert!(
        private.contains("cache: miss, stored"),
        "removed at delete: {private}"
    );
    // A shared bundle's plan stays for the next container.
    b.edit(|c| c["hostname"] = json!("shared"));
    assert_eq!(b.run("s1").0, 0);
    let shared = ok(&b.ferrun(&["plan", "--bundle", &bundle]));
    assert!(shared.contains("cache: hit"), "{shared}");
}

#[test]
fn a_deny_everything_seccomp_profile_is_a_clear_error() {
    for nnp in [true, false] {
        let mut b = Bundle::new(&["true"]);
        b.edit(|c| {
            c["process"]["noNewPrivileges"] = json!(nnp);
            c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": null});
        });
        let (code, _, err) = b.run("deny");
        assert_eq!(code, 1, "nnp {nnp}: {err}");
        assert!(
            err.contains("under the seccomp filter of step"),
            "nnp {nnp}: {err}"
        );
        assert!(
            err.contains("Operation not permitted") || err.contains("operation not permitted"),
            "{err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(!err.contains("wait status"), "{err}");
        assert!(b.leftover_state().is_empty());
        assert!(common::cgroup_dirs(&b.cgroup_path()).is_empty());
    }
    // A killing default action installed early (no no_new_privs) is named with its signal.
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["process"]["noNewPrivileges"] = json!(false);
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": null});
    });
    let (code, _, err) = b.run("kill");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("killed by SIGSYS at step"), "{err}");
    assert!(err.contains("the seccomp filter of step"), "{err}");
    assert!(b.leftover_state().is_empty());
}

#[test]
fn errors_that_echo_a_value_cut_it_short() {
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "unknown syscall",
            Box::new(|c: &mut Value| {
                c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x".repeat(2 << 20)], "action": "SCMP_ACT_ERRNO"}]});
                c["annotations"] = json!({"run.oci.seccomp_fail_unknown_syscall": "1"});
            }),
        ),
        (
            "relative cwd",
            Box::new(|c: &mut Value| c["process"]["cwd"] = json!("x".repeat(2 << 20))),
        ),
        (
            "a cwd that does not exist",
            Box::new(|c: &mut Value| {
                c["process"]["cwd"] = json!(format!("/{}", "y/".repeat(1 << 20)))
            }),
        ),
        (
            "setgroups past NGROUPS_MAX",
            Box::new(|c: &mut Value| {
                c["process"]["user"]["additionalGids"] = json!((0..70_000).collect::<Vec<u32>>())
            }),
        ),
        (
            "a sysctl name",
            Box::new(|c: &mut Value| {
                c["linux"]["sysctl"] = json!({ format!("kernel.{}", "z".repeat(2 << 20)): "1" })
            }),
        ),
    ];
    for (name, edit) in cases {
        let mut b = Bundle::new(&["true"]);
        b.edit(|c| edit(c));
        let bundle = b.path().to_str().expect("utf-8");
        let o = b.ferrun(&["create", "--bundle", bundle, "long"]);
        let err = stderr(&o);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{name}: {}",
            &err[..err.len().min(300)]
        );
        assert!(
            err.len() < 5000,
            "{name}: {} bytes: {}",
            err.len(),
            &err[..300]
        );
        assert!(
            err.contains("bytes)"),
            "{name}: says how long it was: {err}"
        );
        assert!(b.leftover_state().is_empty());
    }
}

#[test]
fn cve_2019_5736_the_runtime_binary_is_read_only_under_run_and_exec() {
    // While `run` and `exec` wait for their container process, that process (and anything
    // in the container that reaches /proc/<ferrun>/exe) sees ferrun's image on a read-only
    // mount, never the writable host binary.
    let ro = |pid: u32| {
        let exe = std::ffi::CString::new(format!("/proc/{pid}/exe")).expect("path");
        // SAFETY: statvfs into a zeroed struct.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::statvfs(exe.as_ptr(), &mut st) };
        r == 0 && st.f_flag & libc::ST_RDONLY != 0
    };
    let b = Bundle::new(&["sleep", "30"]);
    let bundle = b.path().to_str().expect("utf-8").to_string();
    let mut child = b
        .cmd(&["run", "--bundle", &bundle, "r"])
        .spawn()
        .expect("run");
    assert!(
        common::wait_until(|| ro(child.id())),
        "ferrun run runs from a read-only image"
    );
    assert!(common::wait_until(|| {
        b.ferrun(&["state", "r"]).status.success()
            && ok(&b.ferrun(&["state", "r"])).contains("running")
    }));
    let mut e = b.cmd(&["exec", "r", "sleep", "20"]).spawn().expect("exec");
    assert!(
        common::wait_until(|| ro(e.id())),
        "ferrun exec runs from a read-only image"
    );
    // The host's binary itself is writable: the read-only image is the protection.
    let bin = std::ffi::CString::new(common::ferrun_bin()).expect("path");
    // SAFETY: statvfs into a zeroed struct.
    let mut host: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(bin.as_ptr(), &mut host) }, 0);
    assert_eq!(host.f_flag & libc::ST_RDONLY, 0, "the test's premise");
    assert!(b.ferrun(&["kill", "r", "KILL"]).status.success());
    let _ = e.wait();
    let _ = child.wait();
    let _ = b.ferrun(&["delete", "-f", "r"]);
}

#[test]
fn cve_2024_21626_a_cwd_through_a_leaked_fd_is_refused() {
    for cwd in ["/proc/self/cwd", "/proc/self/fd/7", "/proc/1/cwd"] {
        let mut b = Bundle::new(&["true"]);
        b.edit(|c| c["process"]["cwd"] = json!(cwd));
        let bundle = b.path().to_str().expect("utf-8");
        let o = b.ferrun(&["run", "--bundle", bundle, "cwd"]);
        assert_eq!(o.status.code(), Some(1), "{cwd}");
        assert!(
            stderr(&o).contains(&format!("chdir {cwd}")),
            "{cwd}: {}",
            stderr(&o)
        );
        assert!(b.leftover_state().is_empty());
    }
}

#[test]
fn cve_2021_30465_a_mount_target_swapped_for_a_symlink_stays_inside_the_rootfs() {
    // A volume whose entry `x` flips between a directory and a symlink to /etc while containers
    // mount a tmpfs at /vol/x. Whichever way the race goes, the tmpfs lands inside the
    // container's root: in the volume (named x or, once exchanged, l), or on the rootfs's own
    // /etc. Landing anywhere else (the host's /etc of the container's mount namespace) would
    // leave it on neither.
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "grep -qE ' /vol/(x|l) ' /proc/self/mountinfo && echo vol; \
         grep -q ' /etc ' /proc/self/mountinfo && echo etc; true",
    ]);
    let vol = b.path().join("vol");
    std::fs::create_dir(&vol).expect("mkdir");
    std::fs::create_dir(vol.join("x")).expect("mkdir");
    std::os::unix::fs::symlink("/etc", vol.join("l")).expect("symlink");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (vol, stop) = (vol.clone(), stop.clone());
        std::thread::spawn(move || {
            let l = vol.join("l");
            let (x, other) = (
                std::ffi::CString::new(vol.join("x").to_string_lossy().as_bytes()).expect("c"),
                std::ffi::CString::new(l.to_string_lossy().as_bytes()).expect("c"),
            );
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // SAFETY: renameat2 of two paths we made.
                unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        x.as_ptr(),
                        libc::AT_FDCWD,
                        other.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
            }
        })
    };
    b.edit(|c| {
        c["root"]["readonly"] = json!(false);
        push_mount(
            c,
            json!({"destination": "/vol", "type": "bind", "source": vol, "options": ["rbind"]}),
        );
        push_mount(
            c,
            json!({"destination": "/vol/x", "type": "tmpfs", "source": "tmpfs"}),
        );
    });
    let mut landed = std::collections::BTreeMap::new();
    for i in 0..40 {
        let (code, out, err) = b.run(&format!("race{i}"));
        if code != 0 {
            // A clean failure of a lost race is no escape; an unclean one would show here.
            assert_eq!(err.trim_end().lines().count(), 1, "{err}");
            continue;
        }
        let place = out.trim().to_string();
        assert!(
            place == "vol" || place == "etc",
            "run {i}: the tmpfs is not inside the container: {out:?}"
        );
        *landed.entry(place).or_insert(0) += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().expect("flipper");
    assert!(!landed.is_empty(), "no run succeeded");
    assert!(b.leftover_state().is_empty());
}

#[test]
fn cve_2025_31133_a_mask_never_binds_a_fake_dev_null() {
    // /dev comes from a bind of a directory whose `null` is a symlink to a host-wide sysctl,
    // then a plain file: masking /proc/keys with it would expose or redirect the host's file.
    for fake in ["symlink", "file"] {
        let mut b = Bundle::new(&["true"]);
        let dev = b.path().join("dev");
        std::fs::create_dir(&dev).expect("mkdir");
        if fake == "symlink" {
            std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", dev.join("null"))
                .expect("symlink");
        } else {
            std::fs::write(dev.join("null"), "").expect("write");
        }
        b.edit(|c| {
            let mounts = c["mounts"].as_array_mut().expect("mounts");
            mounts.retain(|m| m["destination"] != "/dev");
            mounts.push(
                json!({"destination": "/dev", "type": "bind", "source": dev, "options": ["rbind"]}),
            );
            c["linux"]["maskedPaths"] = json!(["/proc/keys"]);
        });
        refused(&b, "mask /proc/keys: No such device");
    }
}

#[test]
fn cve_2025_52565_image_dev_symlinks_cannot_lead_dev_out() {
    let core = std::fs::read_to_string("/proc/sys/kernel/core_pattern").expect("host");
    // /dev -> /proc/sys/kernel: the tmpfs and the device nodes would land in procfs.
    let mut b = Bundle::new(&["true"]);
    let root = private_rootfs(&b);
    std::fs::remove_dir_all(root.join("dev")).expect("rmdir");
    std::os::unix::fs::symlink("/proc/sys/kernel", root.join("dev")).expect("symlink");
    b.edit(|c| c["root"]["path"] = json!(root));
    refused(&b, "it resolves inside /proc");
    // /dev -> ../../../../etc: rooted at the rootfs, so /dev is made inside it.
    let mut b = Bundle::new(&["sh", "-c", "ls /dev/null && readlink /dev"]);
    let root = private_rootfs(&b);
    std::fs::remove_dir_all(root.join("dev")).expect("rmdir");
    std::os::unix::fs::symlink("../../../../etc", root.join("dev")).expect("symlink");
    b.edit(|c| {
        c["root"]["path"] = json!(root);
        c["root"]["readonly"] = json!(false);
    });
    let (code, out, err) = b.run("dev");
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("/dev/null"), "{out}");
    assert!(
        !Path::new("/etc/null").exists(),
        "nothing made in the host's /etc"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").expect("host"),
        core
    );
}

#[test]
fn proc_and_sysfs_on_a_symlink_in_the_rootfs_are_refused() {
    // CVE-2019-16884's class: an image whose /proc (or /sys) is a link would have procfs mounted
    // where the link points, e.g. over a directory an LSM profile does not cover.
    for (name, dest) in [("proc", "proc"), ("sysfs", "sys")] {
        let mut b = Bundle::new(&["true"]);
        let root = private_rootfs(&b);
        let link = root.join(dest);
        std::fs::remove_dir(&link).expect("rmdir");
        std::fs::create_dir_all(root.join("elsewhere")).expect("mkdir");
        std::os::unix::fs::symlink("elsewhere", &link).expect("symlink");
        b.edit(|c| c["root"]["path"] = json!(root));
        let (code, _, err) = b.run(name);
        assert_ne!(code, 0, "{name} was mounted through a symlink");
        assert!(err.contains("ordinary directory"), "{name}: {err}");
        assert!(b.leftover_state().is_empty());
    }
}

#[test]
fn dev_console_is_never_bound_through_a_symlink_in_the_image() {
    // CVE-2025-52565's class: with /dev from the image, a /dev/console link must not aim the
    // pty's bind at another file.
    let mut b = Bundle::new(&["true"]);
    let root = private_rootfs(&b);
    std::os::unix::fs::symlink("../etc/target", root.join("dev/console")).expect("symlink");
    b.edit(|c| {
        c["root"]["path"] = json!(root);
        c["process"]["terminal"] = json!(true);
        c["mounts"]
            .as_array_mut()
            .expect("mounts")
            .retain(|m| m["destination"] != "/dev");
    });
    let sock = b.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    let receiver = std::thread::spawn(move || common::accept_fd(&listener));
    let bundle = b.path().to_str().expect("utf-8");
    let o = b.ferrun(&[
        "create",
        "--bundle",
        bundle,
        "--console-socket",
        sock.to_str().expect("utf-8"),
        "console",
    ]);
    let err = stderr(&o);
    assert!(
        !o.status.success(),
        "create bound the console through a link"
    );
    assert!(err.contains("/dev/console"), "{err}");
    assert!(b.leftover_state().is_empty());
    drop(receiver);
}
