//! Real busybox containers: what the container sees is what the config asked for.

mod common;

use common::{Bundle, cap_mask, status_field, wait_until};
use serde_json::{Value, json};

#[test]
fn run_returns_the_exit_code() {
    let mut b = Bundle::new(&["sh", "-c", "exit 7"]);
    assert_eq!(b.run("exit7").0, 7);
    // Not pid 1 (init ignores SIGKILL from inside its namespace): no pid namespace here.
    b.edit(|c| {
        c["process"]["args"] = json!(["sh", "-c", "kill -9 $$"]);
        c["linux"]["namespaces"]
            .as_array_mut()
            .expect("ns")
            .retain(|n| n["type"] != "pid");
    });
    assert_eq!(
        b.run("killed").0,
        128 + 9,
        "killed by a signal: 128 + signal"
    );
    assert!(
        b.leftover_state().is_empty(),
        "run deletes its container: {:?}",
        b.leftover_state()
    );
}

#[test]
fn hostname_domainname_and_pid_one() {
    let mut b = Bundle::new(&[]);
    b.edit(|c| {
        c["hostname"] = json!("box-1");
        c["domainname"] = json!("example.test");
    });
    let out = b.sh("hostname; cat /proc/sys/kernel/domainname; echo $$");
    assert_eq!(out, "box-1\nexample.test\n1\n");
}

#[test]
fn user_groups_cwd_env_and_umask() {
    let mut b = Bundle::new(&[]);
    b.edit(|c| {
        c["process"]["user"] =
            json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 6], "umask": 0o027});
        c["process"]["cwd"] = json!("/home/user");
        c["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz"]);
    });
    let out = b.sh("cat /proc/self/status; echo \"cwd=$(pwd) foo=$FOO umask=$(umask)\"");
    assert_eq!(status_field(&out, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(&out, "Gid"), "1001\t1001\t1001\t1001");
    assert_eq!(status_field(&out, "Groups"), "5 6");
    assert!(
        out.contains("cwd=/home/user foo=bar baz umask=0027"),
        "{out}"
    );
}

#[test]
fn capabilities_and_no_new_privileges() {
    let mut b = Bundle::new(&[]);
    let kept = ["CAP_KILL", "CAP_NET_RAW", "CAP_CHOWN"];
    b.edit(|c| {
        c["process"]["capabilities"] = json!({
            "bounding": kept, "effective": ["CAP_KILL"], "permitted": kept,
            "inheritable": ["CAP_NET_RAW"], "ambient": ["CAP_NET_RAW"]
        });
        c["process"]["noNewPrivileges"] = json!(true);
    });
    let out = b.sh("cat /proc/self/status");
    // The shell is exec'd by a root user: permitted and effective get the bounding set back
    // except where the kernel's rules for root say otherwise, so check the inherited sets
    // exactly and the bounding set, which exec cannot raise.
    assert_eq!(status_field(&out, "CapBnd"), cap_mask(&kept));
    assert_eq!(status_field(&out, "CapInh"), cap_mask(&["CAP_NET_RAW"]));
    assert_eq!(status_field(&out, "CapAmb"), cap_mask(&["CAP_NET_RAW"]));
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");

    // A non-root user keeps exactly the ambient set across exec.
    b.edit(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["noNewPrivileges"] = json!(false);
    });
    let out = b.sh("cat /proc/self/status");
    assert_eq!(status_field(&out, "CapEff"), cap_mask(&["CAP_NET_RAW"]));
    assert_eq!(status_field(&out, "CapPrm"), cap_mask(&["CAP_NET_RAW"]));
    assert_eq!(status_field(&out, "NoNewPrivs"), "0");
}

#[test]
fn rlimits_and_oom_score() {
    let mut b = Bundle::new(&[]);
    b.edit(|c| {
        c["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
        ]);
        c["process"]["oomScoreAdj"] = json!(345);
    });
    let out = b.sh("ulimit -n; ulimit -H -n; ulimit -c; cat /proc/self/oom_score_adj");
    assert_eq!(out, "123\n456\n0\n345\n");
}

fn mountinfo_line<'a>(mountinfo: &'a str, point: &str) -> &'a str {
    mountinfo
        .lines()
        .rev()
        .find(|l| l.split(' ').nth(4) == Some(point))
        .unwrap_or_else(|| panic!("no mount at {point} in\n{mountinfo}"))
}

#[test]
fn mounts_readonly_root_bind_options_and_propagation() {
    let host_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    std::fs::write(host_dir.path().join("file"), "from host").expect("write");
    let mut b = Bundle::new(&[]);
    b.edit(|c| {
        let mounts = c["mounts"].as_array_mut().expect("mounts");
        mounts.push(json!({"destination": "/data/ro", "type": "bind", "source": host_dir.path(), "options": ["rbind", "ro", "nosuid", "rprivate"]}));
        mounts.push(json!({"destination": "/data/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "noexec", "rshared"]}));
        mounts.push(json!({"destination": "/data/deep/er/point", "type": "tmpfs", "source": "tmpfs", "options": ["rro"]}));
    });
    let out = b.sh(
        "cat /proc/self/mountinfo; echo ---; cat /data/ro/file; echo; \
         touch /data/ro/x 2>&1 || echo ro-refused; touch /x 2>&1 || echo root-refused; \
         touch /data/scratch/ok && echo scratch-writable",
    );
    let (mi, rest) = out.split_once("---\n").expect("marker");
    let root = mountinfo_line(mi, "/");
    assert!(
        root.split(' ').nth(5).is_some_and(|o| o.starts_with("ro")),
        "root is read-only: {root}"
    );
    let ro = mountinfo_line(mi, "/data/ro");
    assert!(ro.contains(" ro,nosuid"), "bind is ro,nosuid: {ro}");
    assert!(
        !ro.contains("shared:") && !ro.contains("master:"),
        "rprivate: {ro}"
    );
    let scratch = mountinfo_line(mi, "/data/scratch");
    assert!(
        scratch.contains("noexec") && scratch.contains("shared:"),
        "rshared tmpfs: {scratch}"
    );
    assert!(
        mountinfo_line(mi, "/data/deep/er/point").contains(" ro,"),
        "rro"
    );
    assert!(rest.contains("from host"), "{rest}");
    assert!(
        rest.contains("ro-refused") && rest.contains("root-refused"),
        "{rest}"
    );
    assert!(rest.contains("scratch-writable"), "{rest}");
}

#[test]
fn masked_and_readonly_paths() {
    let mut b = Bundle::new(&[]);
    // /proc/kcore is absent on some kernels: a missing masked path is skipped, not an error.
    b.edit(|c| c["linux"]["maskedPaths"] = json!(["/proc/kcore", "/etc/passwd", "/proc/acpi"]));
    let out = b.sh("wc -c < /etc/passwd; ls /proc/acpi | wc -l; \
         echo x > /proc/sys/kernel/hostname 2>&1 && echo written || echo sys-refused; \
         grep -c ' /proc/sys ' /proc/self/mountinfo");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "0", "a file masked by /dev/null: {out}");
    assert_eq!(lines[1].trim(), "0", "acpi masked by an empty tmpfs: {out}");
    assert!(out.contains("sys-refused"), "{out}");
    assert!(!out.contains("written"), "{out}");
}

#[test]
fn devices_default_and_configured() {
    let mut b = Bundle::new(&[]);
    b.edit(|c| {
        c["linux"]["devices"] = json!([{"path": "/dev/fuse-like", "type": "c", "major": 1, "minor": 7, "fileMode": 0o640, "uid": 7, "gid": 8}]);
    });
    let out = b.sh(
        "for d in null zero full random urandom tty fuse-like; do stat -c '%n %F %t:%T %a %u:%g' /dev/$d; done; \
         readlink /dev/ptmx; readlink /dev/fd; readlink /dev/stdin; head -c 4 /dev/zero | wc -c; echo hi > /dev/null && echo null-ok",
    );
    for (name, dev) in [
        ("null", "1:3"),
        ("zero", "1:5"),
        ("full", "1:7"),
        ("random", "1:8"),
        ("urandom", "1:9"),
        ("tty", "5:0"),
    ] {
        let want = format!("/dev/{name} character special file {dev} 666 0:0");
        assert!(out.contains(&want), "missing {want:?} in {out}");
    }
    assert!(
        out.contains("/dev/fuse-like character special file 1:7 640 7:8"),
        "{out}"
    );
    assert!(
        out.contains("pts/ptmx\n/proc/self/fd\n/proc/self/fd/0\n"),
        "{out}"
    );
    assert!(out.contains("4\nnull-ok"), "{out}");
}

#[test]
fn sysctl_in_the_container_namespace() {
    let mut b = Bundle::new(&[]);
    b.edit(|c| {
        c["linux"]["sysctl"] = json!({"net.ipv4.ping_group_range": "0 0", "kernel.shmmni": "1234"});
        c["linux"]["readonlyPaths"] = json!([]);
    });
    let out = b.sh("cat /proc/sys/net/ipv4/ping_group_range /proc/sys/kernel/shmmni");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "1234"]
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/shmmni").expect("host shmmni");
    assert_ne!(host.trim(), "1234", "the host's value is untouched");
}

#[test]
fn user_namespace_with_mappings() {
    let mut b = Bundle::new(&[]);
    b.edit(|c| {
        common::user_namespace(c, 100000, 100000);
        // sysfs cannot be mounted fresh in a user namespace that does not own the network one.
        let mounts = c["mounts"].as_array_mut().expect("mounts");
        mounts.retain(|m| m["destination"] != "/sys" && m["destination"] != "/sys/fs/cgroup");
        c["linux"]["maskedPaths"] = json!(["/proc/kcore"]);
    });
    let out = b.sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c '%t:%T' /dev/null");
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        words,
        ["0", "100000", "65536", "0", "100000", "65536", "0", "1:3"],
        "{out}"
    );
}

#[test]
fn joins_a_namespace_by_path() {
    let mut a = Bundle::new(&["sleep", "30"]);
    a.edit(|c| c["hostname"] = json!("owner-of-uts"));
    let bundle = a.path().to_str().expect("utf-8").to_string();
    let out = a.ferrun(&[
        "run",
        "--detach",
        "--bundle",
        &bundle,
        "--pid-file",
        &format!("{bundle}/pid"),
        "holder",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = std::fs::read_to_string(format!("{bundle}/pid")).expect("pid file");
    assert!(
        !pid.ends_with('\n') && pid.parse::<i32>().is_ok(),
        "pid file is a bare decimal: {pid:?}"
    );

    let mut b = Bundle::new(&[]);
    b.edit(|c| {
        c["hostname"] = json!(null);
        for ns in c["linux"]["namespaces"].as_array_mut().expect("ns") {
            if ns["type"] == "uts" {
                ns["path"] = json!(format!("/proc/{pid}/ns/uts"));
            }
        }
    });
    let out = b.sh("hostname");
    assert_eq!(out, "owner-of-uts\n");
    let kill = a.ferrun(&["delete", "--force", "holder"]);
    assert!(
        kill.status.success(),
        "{}",
        String::from_utf8_lossy(&kill.stderr)
    );
}

#[test]
fn new_cgroup_and_time_namespaces() {
    let mut b = Bundle::new(&[]);
    b.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().expect("ns");
        ns.push(json!({"type": "cgroup"}));
        ns.push(json!({"type": "time"}));
    });
    let out = b.sh("readlink /proc/self/ns/cgroup; readlink /proc/self/ns/time; cat /proc/self/cgroup | tail -1");
    let lines: Vec<&str> = out.lines().collect();
    let host = |n: &str| {
        std::fs::read_link(format!("/proc/self/ns/{n}"))
            .expect("ns")
            .to_string_lossy()
            .into_owned()
    };
    assert_ne!(lines[0], host("cgroup"));
    assert_ne!(lines[1], host("time"));
    assert_eq!(
        lines[2], "0::/",
        "a new cgroup namespace is rooted at the container's cgroup"
    );
}

#[test]
fn no_pivot_uses_chroot() {
    let b = Bundle::new(&["sh", "-c", "test -d /bin && echo in-rootfs"]);
    let bundle = b.path().to_str().expect("utf-8");
    let out = b.ferrun(&["run", "--no-pivot", "--bundle", bundle, "np"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "in-rootfs\n");
}

#[test]
fn preserved_fds_pass_and_nothing_else_leaks() {
    use std::os::fd::AsRawFd;
    let b = Bundle::new(&[
        "sh",
        "-c",
        "echo via-fd3 >&3; ls /proc/self/fd | sort -n | tr '\\n' ' '",
    ]);
    let (reader, writer) = std::io::pipe().expect("pipe");
    // A stray, inheritable fd of the caller must not reach the container.
    let stray = std::fs::File::open("/dev/null").expect("open");
    // SAFETY: clearing FD_CLOEXEC on an fd we own.
    unsafe { libc::fcntl(stray.as_raw_fd(), libc::F_SETFD, 0) };
    let mut cmd = b.cmd(&[
        "run",
        "--preserve-fds",
        "1",
        "--bundle",
        b.path().to_str().expect("utf-8"),
        "fds",
    ]);
    let wfd = writer.as_raw_fd();
    // SAFETY: dup2 in the child before exec puts the pipe at fd 3.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            if libc::dup2(wfd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = common::output_via_files(cmd);
    drop(writer);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got = String::new();
    std::io::Read::read_to_string(&mut &reader, &mut got).expect("read");
    assert_eq!(got, "via-fd3\n");
    // ls's own directory fd shows up as the next number; nothing else may.
    let fds: Vec<u32> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|s| s.parse().expect("fd"))
        .collect();
    assert_eq!(&fds[..4], &[0, 1, 2, 3], "{fds:?}");
    assert!(fds.len() <= 5, "only stdio, fd 3 and ls's own fd: {fds:?}");
    drop(stray);
}

#[test]
fn podman_fixture_runs_as_a_real_container() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/config/podman-run.json");
    let mut b = Bundle::new(&[]);
    b.config = serde_json::from_slice(&std::fs::read(fixture).expect("fixture")).expect("json");
    let host_files = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    b.edit(|c| {
        c["root"]["path"] = json!(common::rootfs());
        c["process"]["args"] = json!([
            "sh",
            "-c",
            format!(
                "hostname; cat /etc/hosts; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; /probe {} -- {}; ulimit -n",
                syscalls::x86_64::Sysno::add_key.id(),
                syscalls::x86_64::Sysno::uselib.id()
            )
        ]);
        // This machine's hard limits are lower than podman's defaults.
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}]);
        for ns in c["linux"]["namespaces"].as_array_mut().expect("ns") {
            if ns["type"] == "network" {
                ns.as_object_mut().expect("obj").remove("path");
            }
        }
        // Its bind sources live on the machine that made it: point them at files of ours.
        for m in c["mounts"].as_array_mut().expect("mounts") {
            if m["type"] == "bind" {
                let name = m["destination"].as_str().expect("dest").replace('/', "_");
                let src = host_files.path().join(&name);
                if m["destination"] == "/dev/shm" {
                    std::fs::create_dir_all(&src).expect("mkdir");
                } else {
                    std::fs::write(&src, format!("content of {name}\n")).expect("write");
                }
                m["source"] = json!(src);
            }
        }
    });
    b.with_probe();
    let (code, out, err) = b.run("podman-like");
    // Calls the profile denies fail with its errnos: unlisted (default 38), and listed (1).
    assert!(out.contains("errno 38\nerrno 1\n"), "{out}");
    assert_eq!(code, 0, "stderr: {err}");
    assert!(
        out.starts_with("1af77eb82c82\ncontent of _etc_hosts\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "CapEff:\t{}",
            cap_mask(&[
                "CAP_CHOWN",
                "CAP_DAC_OVERRIDE",
                "CAP_FOWNER",
                "CAP_FSETID",
                "CAP_KILL",
                "CAP_NET_BIND_SERVICE",
                "CAP_SETFCAP",
                "CAP_SETGID",
                "CAP_SETPCAP",
                "CAP_SETUID",
                "CAP_SYS_CHROOT"
            ])
        )),
        "{out}"
    );
    assert!(
        out.contains("Seccomp:\t2\n"),
        "podman's profile is installed: {out}"
    );
    assert!(out.ends_with("1024\n"), "{out}");
}

#[test]
fn lifecycle_create_start_kill_delete() {
    let b = Bundle::new(&["sleep", "60"]);
    let bundle = b.path().to_str().expect("utf-8");
    let pid_file = b.path().join("pid");
    let out = b.ferrun(&[
        "create",
        "--bundle",
        bundle,
        "--pid-file",
        pid_file.to_str().expect("utf-8"),
        "life",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = |b: &Bundle| -> serde_json::Value {
        let out = b.ferrun(&["state", "life"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("state json")
    };
    let s = state(&b);
    let pid = std::fs::read_to_string(&pid_file).expect("pid file");
    assert_eq!(s["status"], "created");
    assert_eq!(s["id"], "life");
    assert_eq!(s["pid"].to_string(), pid);
    assert_eq!(s["bundle"], bundle);
    assert!(
        s["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1."))
    );
    // The container process waits for start without running the program.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    assert!(!cmdline.starts_with(b"sleep"), "not exec'd before start");

    // A second create of the same id is refused and leaves the first alone.
    let dup = b.ferrun(&["create", "--bundle", bundle, "life"]);
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    assert_eq!(state(&b)["status"], "created");

    // delete without --force refuses a container that is not stopped.
    assert!(!b.ferrun(&["delete", "life"]).status.success());

    let listed = b.ferrun(&["list", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("list json");
    assert_eq!(list[0]["id"], "life");

    assert!(b.ferrun(&["start", "life"]).status.success());
    assert!(wait_until(
        || std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep"))
    ));
    assert_eq!(state(&b)["status"], "running");
    assert!(
        !b.ferrun(&["start", "life"]).status.success(),
        "start only on created"
    );

    let kill = b.ferrun(&["kill", "life", "KILL"]);
    assert!(
        kill.status.success(),
        "{}",
        String::from_utf8_lossy(&kill.stderr)
    );
    assert!(wait_until(|| state(&b)["status"] == "stopped"));
    let again = b.ferrun(&["kill", "life", "9"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("container not running"));
    assert!(b.ferrun(&["delete", "life"]).status.success());
    let gone = b.ferrun(&["state", "life"]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("does not exist"));
    assert!(b.leftover_state().is_empty());
}

#[test]
fn delete_force_kills_a_running_container() {
    let b = Bundle::new(&["sleep", "60"]);
    let bundle = b.path().to_str().expect("utf-8");
    let pid_file = b.path().join("pid");
    let out = b.ferrun(&[
        "run",
        "-d",
        "--bundle",
        bundle,
        "--pid-file",
        pid_file.to_str().expect("utf-8"),
        "victim",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = std::fs::read_to_string(&pid_file).expect("pid");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let del = b.ferrun(&["delete", "--force", "victim"]);
    assert!(
        del.status.success(),
        "{}",
        String::from_utf8_lossy(&del.stderr)
    );
    assert!(b.leftover_state().is_empty());
    assert!(
        wait_until(|| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |s| s.contains(") Z "))
        }),
        "the container process is gone"
    );
}

#[test]
fn kill_all_signals_every_process_of_the_container() {
    let b = Bundle::new(&["sh", "-c", "sleep 60 & sleep 60 & wait"]);
    let bundle = b.path().to_str().expect("utf-8");
    let out = b.ferrun(&["run", "-d", "--bundle", bundle, "many"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = b.ferrun(&["kill", "--all", "many", "SIGKILL"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(wait_until(|| {
        let s = b.ferrun(&["state", "many"]);
        String::from_utf8_lossy(&s.stdout).contains("\"stopped\"")
    }));
    assert!(b.ferrun(&["delete", "many"]).status.success());
}

#[test]
fn mounts_keep_the_listed_order_and_recursive_atime() {
    let mut b = Bundle::new(&[]);
    b.edit(|c| {
        let mounts = c["mounts"].as_array_mut().expect("mounts");
        // Listed child first: the later tmpfs on the parent hides it, as the spec's order says.
        mounts.push(json!({"destination": "/data/a/b", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
        mounts.push(json!({"destination": "/data/a", "type": "tmpfs", "source": "tmpfs", "options": ["rnoatime", "rnodev"]}));
    });
    let out = b.sh(
        "test -e /data/a/b && echo visible || echo hidden; grep ' /data/a ' /proc/self/mountinfo",
    );
    assert!(out.starts_with("hidden\n"), "{out}");
    assert!(out.contains("noatime") && out.contains("nodev"), "{out}");
}

#[test]
fn rootfs_propagation() {
    for (prop, shared) in [("private", false), ("rshared", true), ("rslave", false)] {
        let mut b = Bundle::new(&[]);
        b.edit(|c| c["linux"]["rootfsPropagation"] = json!(prop));
        let out = b.sh("awk '$5 == \"/\"' /proc/self/mountinfo");
        assert_eq!(out.contains("shared:"), shared, "{prop}: {out}");
    }
}

#[test]
fn new_user_namespace_joins_another_containers_uts() {
    let mut a = Bundle::new(&["sleep", "30"]);
    a.edit(|c| c["hostname"] = json!("host-of-a"));
    let bundle = a.path().to_str().expect("utf-8").to_string();
    let pid_file = format!("{bundle}/pid");
    let o = a.ferrun(&[
        "run",
        "-d",
        "--bundle",
        &bundle,
        "--pid-file",
        &pid_file,
        "a",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pid = std::fs::read_to_string(&pid_file).expect("pid");
    let mut b = Bundle::new(&[]);
    b.edit(|c| {
        c["hostname"] = json!(null);
        let ns = c["linux"]["namespaces"].as_array_mut().expect("ns");
        for n in ns.iter_mut() {
            if n["type"] == "uts" {
                n["path"] = json!(format!("/proc/{pid}/ns/uts"));
            }
        }
        ns.push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
        c["mounts"]
            .as_array_mut()
            .expect("mounts")
            // Without sysfs, /sys/fs/cgroup would have to be made in a directory the new user
            // namespace does not own.
            .retain(|m| m["type"] != "sysfs" && m["type"] != "cgroup");
    });
    assert_eq!(
        b.sh("hostname; cat /proc/self/uid_map"),
        "host-of-a\n         0     300000      65536\n"
    );
    assert!(a.ferrun(&["delete", "-f", "a"]).status.success());
}

#[test]
fn the_container_process_runs_ferrun_from_a_read_only_image() {
    for own_pid_ns in [false, true] {
        let mut b = Bundle::new(&["sleep", "30"]);
        if !own_pid_ns {
            b.edit(|c| {
                c["linux"]["namespaces"]
                    .as_array_mut()
                    .expect("ns")
                    .retain(|n| n["type"] != "pid")
            });
        }
        let bundle = b.path().to_str().expect("utf-8").to_string();
        let pid_file = format!("{bundle}/pid");
        let o = b.ferrun(&[
            "create",
            "--bundle",
            &bundle,
            "--pid-file",
            &pid_file,
            "sealed",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let pid = std::fs::read_to_string(&pid_file).expect("pid");
        // The container process, waiting for start, still runs ferrun's image: from a read-only
        // mount (CVE-2019-5736), whichever pid namespace it has. The build's own binary is on
        // a writable filesystem, so this holds only because ferrun re-executed itself.
        let exe = std::ffi::CString::new(format!("/proc/{pid}/exe")).expect("path");
        // SAFETY: statvfs into a zeroed struct.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(exe.as_ptr(), &mut st) }, 0);
        assert_ne!(st.f_flag & libc::ST_RDONLY, 0, "own pid ns {own_pid_ns}");
        let bin = std::ffi::CString::new(common::ferrun_bin()).expect("path");
        let mut host: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(bin.as_ptr(), &mut host) }, 0);
        assert_eq!(host.f_flag & libc::ST_RDONLY, 0, "the test's premise");
        assert!(b.ferrun(&["delete", "-f", "sealed"]).status.success());
    }
}

#[test]
fn a_dangling_symlink_target_is_created_inside_the_rootfs() {
    // A private rootfs whose /etc/resolv.conf points at a file that does not exist (as images
    // made from systemd hosts have), and a /etc/escape pointing out of the rootfs.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let root = dir.path().join("rootfs");
    for d in ["bin", "etc", "proc", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox");
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).expect("sh");
    std::os::unix::fs::symlink("busybox", root.join("bin/cat")).expect("cat");
    std::os::unix::fs::symlink(
        "../run/resolve/stub-resolv.conf",
        root.join("etc/resolv.conf"),
    )
    .expect("link");
    std::os::unix::fs::symlink(
        "/../../../../tmp/ferrun-escape-target",
        root.join("etc/escape"),
    )
    .expect("link");
    let host = dir.path().join("resolv.conf");
    std::fs::write(&host, "nameserver 192.0.2.1\n").expect("write");
    let mut b = Bundle::new(&["sh", "-c", "cat /etc/resolv.conf; cat /etc/escape"]);
    b.edit(|c| {
        c["root"]["path"] = json!(root);
        c["root"]["readonly"] = json!(false);
        let mounts = c["mounts"].as_array_mut().expect("mounts");
        mounts.push(json!({"destination": "/etc/resolv.conf", "type": "bind", "source": host, "options": ["bind", "ro"]}));
        mounts.push(json!({"destination": "/etc/escape", "type": "bind", "source": host, "options": ["bind", "ro"]}));
    });
    let (code, out, err) = b.run("dangling");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "nameserver 192.0.2.1\nnameserver 192.0.2.1\n");
    assert!(
        root.join("run/resolve/stub-resolv.conf").exists(),
        "created inside the rootfs"
    );
    assert!(
        !std::path::Path::new("/tmp/ferrun-escape-target").exists(),
        "nothing created outside it"
    );
    assert!(
        root.join("tmp/ferrun-escape-target").exists(),
        "the absolute target is rooted at the rootfs"
    );
}

#[test]
fn tmpcopyup_fills_the_tmpfs_with_what_the_directory_held() {
    let mut b = Bundle::new(&[]);
    b.edit(|c| {
        c["root"]["readonly"] = json!(true);
        c["mounts"].as_array_mut().expect("mounts").push(json!({
            "destination": "/etc", "type": "tmpfs", "source": "tmpfs",
            "options": ["tmpcopyup", "nosuid", "mode=755"]
        }));
    });
    let out = b.sh(
        "cat /etc/passwd; stat -c '%a %U' /etc/passwd; echo new > /etc/extra && cat /etc/extra; \
         grep ' /etc ' /proc/mounts | cut -d' ' -f3",
    );
    let host = std::fs::read_to_string(common::rootfs().join("etc/passwd")).expect("passwd");
    assert_eq!(out, format!("{host}644 root\nnew\ntmpfs\n"));
    // The rootfs itself is untouched.
    assert!(!common::rootfs().join("etc/extra").exists());
}

#[test]
fn socket_activation_fds_reach_the_container() {
    let b = Bundle::new(&["sh", "-c", "echo $LISTEN_FDS $LISTEN_PID; cat <&3"]);
    let bundle = b.path().to_str().expect("utf-8").to_string();
    let file = b.path().join("socket-stand-in");
    std::fs::write(&file, "activated\n").expect("write");
    // LISTEN_PID must name ferrun itself: a shell sets it and execs ferrun with fd 3 open.
    let script = format!(
        "exec 3<{} && LISTEN_FDS=1 LISTEN_PID=$$ exec {} --root {} run --bundle {bundle} act",
        file.display(),
        common::ferrun_bin(),
        b.state_root().display()
    );
    let o = common::output_via_files({
        let mut c = std::process::Command::new("sh");
        c.args(["-c", &script]);
        c
    });
    assert!(o.status.success(), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1 1\nactivated\n");
}

#[test]
fn notify_socket_readiness_reaches_the_callers_socket() {
    let mut b = Bundle::new(&[]);
    b.with_probe();
    b.edit(|c| {
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "sleep 0.2; /probe notify STATUS=warming && /probe notify READY=1 && sleep 30"
        ])
    });
    let host = b.path().join("host-notify.sock");
    let listener = std::os::unix::net::UnixDatagram::bind(&host).expect("bind");
    listener
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    // Read as a service manager does, while start runs: a message's fds (the barrier's pipe)
    // are closed on receipt, which lets start return.
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while let Ok(n) = listener.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            let last = m == "BARRIER=1";
            got.push(m);
            if last {
                break;
            }
        }
        got
    });
    let bundle = b.path().to_str().expect("utf-8").to_string();
    let with_env = |args: &[&str]| {
        let mut c = b.cmd(args);
        c.env("NOTIFY_SOCKET", &host);
        common::output_via_files(c)
    };
    let o = with_env(&["create", "--bundle", &bundle, "ready"]);
    assert!(o.status.success(), "{o:?}");
    // start returns only once the program said READY=1: the message is already there. (Bounded:
    // a start that never returns fails the test instead of hanging it.)
    let mut start = b.cmd(&["start", "ready"]);
    start.env("NOTIFY_SOCKET", &host);
    let mut child = start.spawn().expect("start");
    let done = wait_until(|| child.try_wait().ok().flatten().is_some());
    if !done {
        let _ = child.kill();
    }
    let status = child.wait().expect("wait");
    assert!(done && status.success(), "start: {status:?}");
    let got = reader.join().expect("reader");
    let state: serde_json::Value =
        serde_json::from_slice(&b.ferrun(&["state", "ready"]).stdout).expect("state");
    // Only READY=1 is passed on, with the pid ferrun knows: nothing else the container says
    // reaches the caller's socket.
    assert_eq!(
        got,
        vec![
            format!("READY=1\nMAINPID={}", state["pid"]),
            "BARRIER=1".to_string()
        ]
    );
    assert!(b.ferrun(&["delete", "--force", "ready"]).status.success());
}

#[test]
fn tmpcopyup_copies_a_tree_and_can_be_read_only() {
    let mut b = Bundle::new(&[]);
    let tree = b.path().join("tree");
    std::fs::create_dir_all(tree.join("sub/deeper")).expect("dirs");
    std::fs::write(tree.join("sub/deeper/file"), "deep\n").expect("file");
    std::os::unix::fs::symlink("sub/deeper/file", tree.join("link")).expect("symlink");
    std::fs::write(tree.join("suid"), "").expect("suid");
    std::fs::set_permissions(
        tree.join("suid"),
        std::os::unix::fs::PermissionsExt::from_mode(0o4755),
    )
    .expect("chmod");
    let src = tree.to_str().expect("utf-8").to_string();
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().expect("mounts");
        m.push(
            json!({"destination": "/tree", "type": "bind", "source": src, "options": ["rbind"]}),
        );
        m.push(
            json!({"destination": "/tree", "type": "tmpfs", "source": "tmpfs",
                      "options": ["tmpcopyup", "ro"]}),
        );
    });
    let out = b.sh(
        "cat /tree/sub/deeper/file; readlink /tree/link; stat -c %a /tree/suid; \
         touch /tree/new 2>/dev/null && echo rw || echo ro",
    );
    assert_eq!(out, "deep\nsub/deeper/file\n4755\nro\n");
}

#[test]
fn loopback_is_up_in_a_new_network_namespace() {
    // runc and crun bring `lo` up (a new namespace's is down): programs that talk to
    // 127.0.0.1 depend on it.
    let mut b = Bundle::new(&["sh", "-c", "ip -o link show lo"]);
    let (code, out, err) = b.run("lo");
    assert_eq!(code, 0, "{out} {err}");
    let flags = out
        .split('<')
        .nth(1)
        .and_then(|r| r.split('>').next())
        .unwrap_or("");
    assert!(flags.split(',').any(|f| f == "UP"), "{out}");
    // Without a network namespace of its own, the host's lo is left alone (and is up anyway).
    b.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().expect("namespaces");
        ns.retain(|n| n["type"] != "network");
    });
    let listing = common::ok(&b.ferrun(&["plan", "--bundle", b.path().to_str().expect("utf-8")]));
    assert!(!listing.contains("bring lo up"), "{listing}");
}

#[test]
fn home_comes_from_the_containers_passwd_and_a_missing_cwd_is_made() {
    // No HOME in the env: root's home from the image's /etc/passwd.
    let mut b = Bundle::new(&[]);
    b.edit(|c| c["process"]["env"] = json!(["PATH=/bin"]));
    assert_eq!(b.sh("echo $HOME").trim(), "/root");
    // Another user's, from a passwd bound over the image's; a uid without an entry gets /.
    let passwd = b.path().join("passwd");
    std::fs::write(
        &passwd,
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:A User:/home/user:/bin/sh\n",
    )
    .expect("write passwd");
    b.edit(|c| {
        c["mounts"].as_array_mut().expect("mounts").push(json!({
            "destination": "/etc/passwd", "type": "bind",
            "source": passwd, "options": ["bind", "ro"]
        }));
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    assert_eq!(b.sh("echo $HOME").trim(), "/home/user");
    b.edit(|c| c["process"]["user"] = json!({"uid": 4242, "gid": 4242}));
    assert_eq!(b.sh("echo $HOME").trim(), "/");
    // A HOME the config gives is kept.
    b.edit(|c| c["process"]["env"] = json!(["PATH=/bin", "HOME=/elsewhere"]));
    assert_eq!(b.sh("echo $HOME").trim(), "/elsewhere");

    // A cwd the image lacks is made (with its parents), even under a read-only root. The
    // rootfs is shared: the directory is this run's own, and removed afterwards.
    let top = format!("cwd-test-{}", std::process::id());
    let made = common::rootfs().join(&top);
    assert!(!made.exists());
    b.edit(|c| {
        c["process"]["user"] = json!({"uid": 0, "gid": 0});
        c["process"]["cwd"] = json!(format!("/{top}/deep/dir"));
        c["root"]["readonly"] = json!(true);
    });
    let out = b.sh(&format!("pwd; stat -c %a /{top}/deep"));
    let _ = std::fs::remove_dir_all(&made);
    assert_eq!(out.trim(), format!("/{top}/deep/dir\n755"));
}

#[test]
fn stdio_files_are_given_to_the_containers_user() {
    // As runc: a process of uid 1000 can reopen its own stdout (here a file the caller made,
    // owned by root, mode 0644), e.g. through /dev/stdout.
    let mut b = Bundle::new(&[]);
    b.edit(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    let out = b.sh("stat -L -c %u /proc/self/fd/1; echo reopened >> /dev/stdout");
    assert!(out.contains("1000") && out.contains("reopened"), "{out}");
}

#[test]
fn delete_right_after_kill_9_finds_the_container_stopped() {
    // `kill` returns before the process is gone; engines delete at once. Each delete must
    // succeed and leave no cgroup behind (the race showed under the whole suite's load).
    let b = Bundle::new(&["sleep", "60"]);
    for i in 0..20 {
        let id = format!("k{i}");
        b.run_detached(&id, &[]);
        assert!(b.ferrun(&["kill", &id, "9"]).status.success());
        let o = b.ferrun(&["delete", &id]);
        assert!(
            o.status.success(),
            "try {i}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert!(b.leftover_state().is_empty());
    assert!(common::cgroup_dirs(&b.cgroup_path()).is_empty());
}

/// A veth pair on the host, removed when dropped (its peer goes with it).
struct Veth(String);

impl Veth {
    fn new(name: &str, peer: &str) -> Veth {
        let o = std::process::Command::new("ip")
            .args(["link", "add", name, "type", "veth", "peer", "name", peer])
            .output()
            .expect("ip link add (apt-get install iproute2)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        Veth(name.to_string())
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .output();
    }
}

fn host_has_link(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

#[test]
fn net_devices_move_into_the_container_renamed_with_their_addresses() {
    let pid = std::process::id() % 100_000;
    let (dev, peer) = (format!("frn{pid}"), format!("frp{pid}"));
    let veth = Veth::new(&dev, &peer);
    let ip = |args: &[&str]| {
        let o = std::process::Command::new("ip")
            .args(args)
            .output()
            .expect("ip");
        assert!(
            o.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    ip(&["addr", "add", "10.199.7.2/24", "dev", &dev]);
    let mut b = Bundle::new(&[]);
    // runc's default spec has a new network namespace.
    b.edit(|c| c["linux"]["netDevices"] = json!({ dev.clone(): {"name": "ctr0"} }));
    let out = b.sh("ip -o addr show dev ctr0; cat /sys/class/net/ctr0/flags");
    assert!(
        out.contains("10.199.7.2/24"),
        "the address came along: {out}"
    );
    let flags = out.lines().last().unwrap_or_default().trim();
    let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap_or(0);
    assert_eq!(flags & 1, 1, "set up: {out}");
    // The namespace is gone with the container: a virtual device goes with it.
    assert!(!host_has_link(&dev), "{dev} was moved, not copied");
    drop(veth);

    // A template name: the kernel picks the number.
    let (dev2, peer2) = (format!("frm{pid}"), format!("frq{pid}"));
    let veth2 = Veth::new(&dev2, &peer2);
    b.edit(|c| c["linux"]["netDevices"] = json!({ dev2.clone(): {"name": "tmpl%d"} }));
    let out = b.sh("ls /sys/class/net");
    assert!(out.split_whitespace().any(|n| n == "tmpl0"), "{out}");
    drop(veth2);

    // A device the host lacks, and a bad name, are refused by name and leave nothing.
    b.edit(|c| c["linux"]["netDevices"] = json!({"frnope0": {}}));
    let (code, _, err) = b.run("missing");
    assert_ne!(code, 0);
    assert!(err.contains("linux.netDevices.frnope0"), "{err}");
    b.edit(|c| c["linux"]["netDevices"] = json!({"a/b": {}}));
    let (code, _, err) = b.run("bad");
    assert_ne!(code, 0);
    assert!(err.contains("linux.netDevices.a/b"), "{err}");
    assert!(b.leftover_state().is_empty());
    assert!(common::cgroup_dirs(&b.cgroup_path()).is_empty());
}

#[test]
fn id_mapped_bind_mounts_show_the_mapped_owner() {
    let mut b = Bundle::new(&[]);
    let data = b.path().join("idmapped");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::write(data.join("f"), "x").expect("write");
    // On disk the file is root's; through the mount's map (0 -> 1000) it is 1000's.
    b.edit(|c| {
        c["mounts"].as_array_mut().expect("mounts").push(json!({
            "destination": "/mapped", "type": "bind", "source": data,
            "options": ["bind", "idmap"],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": 1001, "size": 1}],
        }));
    });
    assert_eq!(b.sh("stat -c %u:%g /mapped/f").trim(), "1000:1001");

    // The parent's copy of a shared mount is no peer of the host's: what the container mounts
    // under it stays in the container.
    let shared = b.path().join("shared");
    std::fs::create_dir_all(&shared).expect("mkdir");
    let sh = |cmd: &str| {
        let o = std::process::Command::new("sh")
            .args(["-c", cmd])
            .output()
            .expect("sh");
        assert!(
            o.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let shared_s = shared.to_str().expect("utf-8").to_string();
    sh(&format!(
        "mount -t tmpfs tmpfs {shared_s} && mount --make-shared {shared_s} && mkdir {shared_s}/sub"
    ));
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().expect("mounts");
        let last = m.len() - 1;
        m[last]["source"] = json!(shared);
        let caps = ["CAP_SYS_ADMIN"];
        c["process"]["capabilities"]["bounding"] = json!(caps);
        c["process"]["capabilities"]["effective"] = json!(caps);
        c["process"]["capabilities"]["permitted"] = json!(caps);
    });
    let out = b.sh("mount -t tmpfs none /mapped/sub && touch /mapped/sub/inside && echo mounted");
    let leaked = std::fs::read_dir(shared.join("sub"))
        .map(|d| d.count())
        .unwrap_or(0);
    sh(&format!("umount -l {shared_s}"));
    assert!(out.contains("mounted"), "{out}");
    assert_eq!(leaked, 0, "a mount made in the container reached the host");
    // Without maps, and without a user namespace to take them from: refused by name.
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().expect("mounts");
        let last = m.len() - 1;
        m[last]["uidMappings"] = Value::Null;
        m[last]["gidMappings"] = Value::Null;
    });
    let (code, _, err) = b.run("nomaps");
    assert_ne!(code, 0);
    assert!(err.contains("needs uidMappings and gidMappings"), "{err}");
    assert!(b.leftover_state().is_empty());
}

#[test]
fn in_a_user_namespace_sources_open_from_the_host_and_devices_are_made() {
    // A bind source under a root-only directory, which the container's root (host uid 100000)
    // cannot reach, and a device node the host does not have.
    let mut b = Bundle::new(&[]);
    let secret = b.path().join("secret");
    std::fs::create_dir_all(secret.join("sub")).expect("mkdir");
    std::fs::write(secret.join("sub/f"), "inside\n").expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::set_permissions(secret.join("sub"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    std::fs::set_permissions(secret.join("sub/f"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    assert!(!std::path::Path::new("/dev/ferrun-test-null").exists());
    b.edit(|c| {
        common::user_namespace(c, 100000, 100000);
        let mounts = c["mounts"].as_array_mut().expect("mounts");
        mounts.retain(|m| m["destination"] != "/sys" && m["destination"] != "/sys/fs/cgroup");
        mounts.push(json!({
            "destination": "/data", "type": "bind",
            "source": secret.join("sub"), "options": ["rbind", "ro"],
        }));
        c["linux"]["devices"] = json!([{
            "path": "/dev/ferrun-test-null", "type": "c", "major": 1, "minor": 3,
            "fileMode": 438, "uid": 0, "gid": 0,
        }]);
    });
    let out = b.sh("cat /data/f; stat -c '%t:%T %a %u' /dev/ferrun-test-null; echo x > /dev/ferrun-test-null && echo wrote");
    assert!(out.contains("inside"), "{out}");
    assert!(out.contains("1:3 666 0"), "{out}");
    assert!(out.contains("wrote"), "{out}");
}
