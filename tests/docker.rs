//! Docker 20.10 (Debian's docker.io) drives ferrun: a private dockerd (its own data and exec
//! roots and socket, no iptables, no bridge) with ferrun added as a runtime, as `daemon.json`'s
//! `runtimes` adds it. Every scenario runs with `--runtime ferrun` and `--runtime runc`, so
//! that a difference is ferrun's, not the harness's. Container cgroups go under
//! `/ferrun-test/docker-<runtime>` (`--cgroup-parent`).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

const IMAGE: &str = "ferrun-test/busybox";

/// A dockerd on private paths, stopped when dropped.
struct Dockerd {
    dir: PathBuf,
    daemon: Child,
    runtime: &'static str,
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // A failed scenario's containers go first, as the daemon would leave them running.
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        // SIGTERM: dockerd stops its containerd and unmounts its layers.
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.daemon.id() as i32, libc::SIGTERM) };
        let _ = self.daemon.wait();
        for d in common::cgroup_dirs(&self.cgroup_parent()) {
            let _ = std::fs::remove_dir(d);
        }
    }
}

impl Dockerd {
    fn start(runtime: &'static str) -> Dockerd {
        let dir = PathBuf::from(format!("/tmp/ferrun-docker-{runtime}"));
        std::fs::create_dir_all(&dir).expect("dir");
        let _ = std::fs::remove_file(dir.join("docker.sock"));
        let log = std::fs::File::create(dir.join("dockerd.log")).expect("log");
        let daemon = Command::new("/usr/sbin/dockerd")
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--host")
            .arg(format!("unix://{}/docker.sock", dir.display()))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .args([
                "--iptables=false",
                "--ip-forward=false",
                "--ip-masq=false",
                "--bridge=none",
            ])
            .arg(format!("--cgroup-parent=/ferrun-test/docker-{runtime}"))
            .arg(format!("--add-runtime=ferrun={}", common::ferrun_bin()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd is installed (apt-get install docker.io)");
        let d = Dockerd {
            dir,
            daemon,
            runtime,
        };
        let up = (0..3000).any(|_| {
            if d.docker(&["version"]).status.success() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            false
        });
        assert!(
            up,
            "dockerd did not come up: {}",
            std::fs::read_to_string(d.dir.join("dockerd.log")).unwrap_or_default()
        );
        if !d.docker(&["image", "inspect", IMAGE]).status.success() {
            let tar = d.dir.join("busybox.tar");
            common::rootfs_tar(&tar);
            d.ok(&[
                "import",
                "--change",
                r#"CMD ["sh"]"#,
                &tar.to_string_lossy(),
                IMAGE,
            ]);
        }
        d
    }

    fn cgroup_parent(&self) -> String {
        format!("/ferrun-test/docker-{}", self.runtime)
    }

    /// Debian's docker client (the one this daemon's API matches), on the private socket.
    fn docker(&self, args: &[&str]) -> Output {
        let mut c = Command::new("/usr/bin/docker");
        c.arg("--host")
            .arg(format!("unix://{}/docker.sock", self.dir.display()))
            .args(args)
            .stdin(Stdio::null());
        common::output_via_files(c)
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "{} docker {args:?}: stdout {} stderr {}",
            self.runtime,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `docker run --rm --runtime <runtime> [opts] IMAGE sh -c script`.
    fn run(&self, opts: &[&str], script: &str) -> Output {
        self.run_argv(opts, &["sh", "-c", script])
    }

    /// `docker run --rm --runtime <runtime> IMAGE program`.
    fn run_program(&self, program: &str) -> Output {
        self.run_argv(&[], &[program])
    }

    /// `docker run -d --runtime <runtime> [opts] IMAGE sh -c script`: the container's id.
    fn run_detached(&self, opts: &[&str], script: &str) -> String {
        let mut args = vec!["run", "-d", "--network", "none", "--runtime", self.runtime];
        args.extend_from_slice(opts);
        args.extend_from_slice(&[IMAGE, "sh", "-c", script]);
        self.ok(&args).trim().to_string()
    }

    fn run_argv(&self, opts: &[&str], argv: &[&str]) -> Output {
        let mut args = vec![
            "run",
            "--rm",
            "--network",
            "none",
            "--runtime",
            self.runtime,
        ];
        args.extend_from_slice(opts);
        args.push(IMAGE);
        args.extend_from_slice(argv);
        self.docker(&args)
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The capability sets' masks from a container's /proc/self/status.
fn cap(status: &str, set: &str) -> u64 {
    u64::from_str_radix(common::status_field(status, set), 16).expect("cap hex")
}

fn scenarios(runtime: &'static str) {
    let d = Dockerd::start(runtime);

    // run --rm: exit codes, as docker reports them.
    let o = d.run(&[], "echo hello; echo oops >&2; exit 3");
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert_eq!(stdout(&o), "hello\n");
    assert_eq!(stderr(&o), "oops\n");
    let o = d.run(&[], "exit 255");
    assert_eq!(o.status.code(), Some(255), "{o:?}");
    let o = d.run_program("/no/such/binary");
    assert_eq!(o.status.code(), Some(127), "{o:?}");
    assert!(stderr(&o).contains("/no/such/binary"), "{}", stderr(&o));
    let o = d.run_program("/etc/passwd");
    assert_eq!(o.status.code(), Some(126), "not executable: {o:?}");

    // Docker's defaults: its seccomp profile (filter mode) and its 14 capabilities.
    let st = stdout(&d.run(&[], "cat /proc/self/status"));
    assert_eq!(common::status_field(&st, "Seccomp"), "2", "{st}");
    let defaults = cap(&st, "CapBnd");
    assert_eq!(defaults.count_ones(), 14, "{defaults:x}");
    assert_eq!(cap(&st, "CapEff"), defaults);

    // --cap-drop: gone from every set, and felt.
    let o = d.run(
        &["--cap-drop", "CHOWN", "--cap-drop", "NET_RAW"],
        "grep ^Cap /proc/self/status; chown 1 /etc/passwd",
    );
    assert_ne!(o.status.code(), Some(0), "chown without CAP_CHOWN: {o:?}");
    let st = stdout(&o);
    let dropped = (1u64 << 0) | (1u64 << 13);
    assert_eq!(cap(&st, "CapBnd"), defaults & !dropped, "{st}");
    assert_eq!(cap(&st, "CapEff"), defaults & !dropped, "{st}");
    assert!(stderr(&o).contains("Operation not permitted"), "{o:?}");

    // -u: the user, and no capability left to it.
    let st = stdout(&d.run(&["-u", "1000:1001"], "id; grep ^CapEff /proc/self/status"));
    assert!(st.contains("uid=1000 gid=1001"), "{st}");
    assert_eq!(cap(&st, "CapEff"), 0, "{st}");

    // --read-only: the root refuses writes, /dev/shm still takes them.
    let o = d.run(&["--read-only"], "touch /dev/shm/ok && touch /oops");
    assert_ne!(o.status.code(), Some(0), "{o:?}");
    assert!(stderr(&o).contains("Read-only file system"), "{o:?}");
    let o = d.run(&[], "touch /fine && echo wrote");
    assert_eq!(stdout(&o), "wrote\n", "{o:?}");

    // --memory: the cgroup's limit, read inside and on the host.
    let o = d.run(
        &["--memory", "64m"],
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
    );
    assert_eq!(stdout(&o).trim(), (64u64 << 20).to_string(), "{o:?}");

    // -d, exec, stop (SIGTERM, then the grace period), rm.
    let id = d.run_detached(
        &["--memory", "48m"],
        "trap 'echo got-term; exit 0' TERM; echo up; while :; do sleep 1; done",
    );
    let info = d.ok(&[
        "inspect",
        "--format",
        "{{.HostConfig.Runtime}} {{.State.Pid}}",
        &id,
    ]);
    let (rt, pid) = info.trim().split_once(' ').expect("runtime pid");
    assert_eq!(rt, runtime);
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    let mem = cg
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
        .expect("memory cgroup");
    assert_eq!(mem, format!("{}/{id}", d.cgroup_parent()), "{cg}");
    let limit =
        std::fs::read_to_string(format!("/sys/fs/cgroup/memory{mem}/memory.limit_in_bytes"))
            .expect("limit");
    assert_eq!(limit.trim(), (48u64 << 20).to_string());
    let o = d.docker(&["exec", &id, "sh", "-c", "echo in-exec; exit 4"]);
    assert_eq!((o.status.code(), stdout(&o)), (Some(4), "in-exec\n".into()));
    let o = d.docker(&["exec", "-u", "1000", &id, "id", "-u"]);
    assert_eq!(stdout(&o).trim(), "1000", "{o:?}");
    // The runtime's own state says which runtime holds it. Docker 20.10's shim keeps every
    // runtime's under `runtime-runc`; ferrun's state is not runc's, nor runc's ferrun's.
    let root = d.dir.join("exec/runtime-runc/moby");
    let bin = match runtime {
        "ferrun" => common::ferrun_bin(),
        _ => "/usr/sbin/runc",
    };
    let o = Command::new(bin)
        .arg("--root")
        .arg(&root)
        .args(["state", &id])
        .output()
        .expect("state");
    assert!(o.status.success(), "{runtime} state {id}: {o:?}");
    let state: serde_json::Value = serde_json::from_slice(&o.stdout).expect("state json");
    assert_eq!(state["status"], "running", "{state}");
    assert_eq!(state["pid"].to_string(), pid);
    d.ok(&["stop", "-t", "10", &id]);
    let st = d.ok(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}}",
        &id,
    ]);
    assert_eq!(st.trim(), "exited 0", "the TERM trap");
    let logs = d.docker(&["logs", &id]);
    assert_eq!(stdout(&logs), "up\ngot-term\n");
    // A process that ignores SIGTERM is killed once the grace period is over.
    let stubborn = d.run_detached(&[], "trap '' TERM; while :; do sleep 1; done");
    d.ok(&["stop", "-t", "1", &stubborn]);
    let st = d.ok(&["inspect", "--format", "{{.State.ExitCode}}", &stubborn]);
    assert_eq!(st.trim(), "137");
    d.ok(&["rm", &id, &stubborn]);
    assert!(!d.docker(&["inspect", &id]).status.success());

    // Nothing left: no runtime state, no container cgroup, no mount of theirs.
    let left: Vec<_> = std::fs::read_dir(&root)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "@cache")
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{}: {left:?}", root.display());
    let kids = common::child_cgroups(&d.cgroup_parent());
    assert!(kids.is_empty(), "container cgroups left: {kids:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(&id) && !mounts.contains(&stubborn),
        "a container's mount is left"
    );
}

#[test]
fn docker_with_ferrun() {
    scenarios("ferrun");
}

#[test]
fn docker_with_runc() {
    scenarios("runc");
}
