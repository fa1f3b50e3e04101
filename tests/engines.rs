//! The engines' contract, driven through the real engines from Debian's packages: podman (with
//! conmon) and containerd's runc shim (`ctr`). Every scenario runs with ferrun and with runc
//! (`RUNTIMES`), so that a difference is ferrun's, not the harness's. The engines get a private
//! configuration: podman's containers.conf and storage.conf (vfs, cgroupfs, events in a file)
//! and a containerd daemon on its own socket and directories; a busybox image made with
//! `podman import` from the shared test rootfs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

const RUNTIMES: [&str; 2] = ["ferrun", "runc"];
const IMAGE: &str = "localhost/busybox";

fn base() -> &'static Path {
    Path::new("/tmp/ferrun-engines")
}

fn runtime_path(rt: &str) -> String {
    match rt {
        "ferrun" => common::ferrun_bin().to_string(),
        _ => "/usr/sbin/runc".to_string(),
    }
}

/// Writes the podman configuration and imports the image, once per test run.
fn podman_setup() -> &'static PathBuf {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        let conf = base().join("podman");
        std::fs::create_dir_all(&conf).expect("podman dir");
        // The machine's hard limits are below podman's default ulimits: none are asked for.
        let containers = format!(
            "[containers]\ndefault_ulimits = []\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             events_logfile_path = \"{dir}/events.log\"\n\
             runtime = \"ferrun\"\n\
             runtime_supports_json = [\"crun\", \"runc\", \"kata\", \"runsc\", \"krun\", \"ferrun\"]\n\
             [engine.runtimes]\nferrun = [\"{ferrun}\"]\nrunc = [\"/usr/sbin/runc\"]\n",
            dir = conf.display(),
            ferrun = common::ferrun_bin()
        );
        std::fs::write(conf.join("containers.conf"), containers).expect("containers.conf");
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/root\"\nrunroot = \"{0}/runroot\"\n",
            conf.display()
        );
        std::fs::write(conf.join("storage.conf"), storage).expect("storage.conf");
        let have = podman_raw(&conf, &["image", "exists", IMAGE]);
        if !have.status.success() {
            let tar = conf.join("busybox.tar");
            common::rootfs_tar(&tar);
            let o = podman_raw(&conf, &["import", tar.to_str().expect("utf-8"), IMAGE]);
            assert!(o.status.success(), "podman import: {o:?}");
        }
        conf
    })
}

fn podman_raw(conf: &Path, args: &[&str]) -> Output {
    Command::new("podman")
        .env("CONTAINERS_CONF", conf.join("containers.conf"))
        .env("CONTAINERS_STORAGE_CONF", conf.join("storage.conf"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("podman is installed (apt-get install podman)")
}

fn podman(rt: &str, args: &[&str]) -> Output {
    let mut all = vec!["--runtime", rt];
    all.extend_from_slice(args);
    podman_raw(podman_setup(), &all)
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(rt: &str, o: Output) -> String {
    assert!(
        o.status.success(),
        "{rt}: stdout {} stderr {}",
        out(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    out(&o)
}

#[test]
fn podman_run_exit_codes_and_options() {
    for rt in RUNTIMES {
        let run = |args: &[&str]| {
            let mut all = vec!["run", "--rm", "--network", "none"];
            all.extend_from_slice(args);
            podman(rt, &all)
        };
        assert_eq!(run(&[IMAGE, "true"]).status.code(), Some(0), "{rt}");
        assert_eq!(
            run(&[IMAGE, "sh", "-c", "exit 3"]).status.code(),
            Some(3),
            "{rt}"
        );
        let missing = run(&[IMAGE, "/no/such/program"]);
        assert_eq!(missing.status.code(), Some(127), "{rt}: {missing:?}");

        let s = ok(
            rt,
            run(&[
                "--read-only",
                IMAGE,
                "sh",
                "-c",
                "touch / 2>/dev/null && echo rw || echo ro; touch /tmp/x && echo tmp-rw",
            ]),
        );
        assert_eq!(s, "ro\ntmp-rw\n", "{rt}");
        assert_eq!(
            ok(rt, run(&["-u", "1000", IMAGE, "id", "-u"])),
            "1000\n",
            "{rt}"
        );
        let caps = ok(
            rt,
            run(&[
                "--cap-drop",
                "all",
                IMAGE,
                "grep",
                "CapEff",
                "/proc/self/status",
            ]),
        );
        assert_eq!(caps, "CapEff:\t0000000000000000\n", "{rt}");
        let lim = ok(
            rt,
            run(&[
                "--memory",
                "32m",
                "--pids-limit",
                "20",
                IMAGE,
                "sh",
                "-c",
                "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max",
            ]),
        );
        assert_eq!(lim, "33554432\n20\n", "{rt}");

        // --preserve-fds: fd 3 of podman reaches the container.
        let file = base().join(format!("preserved-{rt}"));
        std::fs::write(&file, "through fd 3\n").expect("write");
        let f = std::fs::File::open(&file).expect("open");
        let conf = podman_setup();
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", conf.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", conf.join("storage.conf"))
            .args([
                "--runtime",
                rt,
                "run",
                "--rm",
                "--network",
                "none",
                "--preserve-fds",
                "1",
                IMAGE,
                "sh",
                "-c",
                "cat <&3",
            ])
            .stdin(Stdio::null());
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
        // SAFETY: dup2 in the child before exec, onto fd 3.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut c, move || {
                // dup2 onto itself would keep close-on-exec: clear it instead.
                let r = if fd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, 3)
                };
                if r < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        assert_eq!(
            ok(rt, c.output().expect("podman")),
            "through fd 3\n",
            "{rt}"
        );

        // The default network: an address besides loopback.
        let net = ok(rt, podman(rt, &["run", "--rm", IMAGE, "ip", "-4", "addr"]));
        assert!(
            net.contains("eth0") || net.lines().filter(|l| l.contains("inet ")).count() > 1,
            "{rt}: {net}"
        );
    }
}

#[test]
fn podman_detached_exec_pause_update_top_kill_stop_rm() {
    for rt in RUNTIMES {
        let id = ok(
            rt,
            podman(
                rt,
                &[
                    "run",
                    "-d",
                    "--network",
                    "none",
                    IMAGE,
                    "sh",
                    "-c",
                    "trap 'echo got-usr1 > /tmp/usr1' USR1; while true; do sleep 0.1; done",
                ],
            ),
        );
        let id = id.trim().to_string();
        let e = podman(rt, &["exec", &id, "sh", "-c", "echo in-exec; exit 5"]);
        assert_eq!(e.status.code(), Some(5), "{rt}: {e:?}");
        assert_eq!(out(&e), "in-exec\n", "{rt}");

        // exec -it on a terminal: script(1) gives podman one.
        let conf = podman_setup();
        let inner = format!(
            "CONTAINERS_CONF={} CONTAINERS_STORAGE_CONF={} podman --runtime {rt} exec -it {id} sh -c 'tty; echo tty-ok'",
            conf.join("containers.conf").display(),
            conf.join("storage.conf").display()
        );
        let t = Command::new("script")
            .args(["-qec", &inner, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .expect("script");
        let text = out(&t);
        assert!(
            text.contains("/dev/pts/") && text.contains("tty-ok"),
            "{rt}: {text:?}"
        );

        ok(rt, podman(rt, &["pause", &id]));
        let st = ok(
            rt,
            podman(rt, &["inspect", "--format", "{{.State.Status}}", &id]),
        );
        assert_eq!(st.trim(), "paused", "{rt}");
        ok(rt, podman(rt, &["unpause", &id]));
        let st = ok(
            rt,
            podman(rt, &["inspect", "--format", "{{.State.Status}}", &id]),
        );
        assert_eq!(st.trim(), "running", "{rt}");

        ok(rt, podman(rt, &["kill", "-s", "USR1", &id]));
        assert!(
            common::wait_until(|| podman(rt, &["exec", &id, "cat", "/tmp/usr1"])
                .stdout
                .starts_with(b"got-usr1")),
            "{rt}: USR1 reached the container"
        );

        ok(rt, podman(rt, &["update", "--memory", "64m", &id]));
        let m = ok(
            rt,
            podman(
                rt,
                &[
                    "exec",
                    &id,
                    "cat",
                    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                ],
            ),
        );
        assert_eq!(m, "67108864\n", "{rt}");

        let top = ok(rt, podman(rt, &["top", &id]));
        assert!(
            top.contains("sleep") || top.contains("sh -c"),
            "{rt}: {top}"
        );

        ok(rt, podman(rt, &["stop", "-t", "2", &id]));
        let st = ok(
            rt,
            podman(rt, &["inspect", "--format", "{{.State.Status}}", &id]),
        );
        assert_eq!(st.trim(), "exited", "{rt}");
        ok(rt, podman(rt, &["rm", &id]));
        assert!(
            !podman(rt, &["container", "exists", &id]).status.success(),
            "{rt}"
        );
    }
}

/// A containerd daemon on private paths, stopped when dropped.
struct Containerd {
    daemon: std::process::Child,
    sock: PathBuf,
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

impl Containerd {
    fn start() -> Containerd {
        let dir = base().join("containerd");
        let _ = std::fs::remove_dir_all(dir.join("state"));
        std::fs::create_dir_all(&dir).expect("dir");
        let sock = dir.join("ctr.sock");
        let _ = std::fs::remove_file(&sock);
        let log = std::fs::File::create(dir.join("log")).expect("log");
        let daemon = Command::new("containerd")
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--address")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("containerd is installed (apt-get install containerd)");
        let c = Containerd { daemon, sock };
        assert!(
            common::wait_until(|| c.ctr(&["version"]).status.success()),
            "containerd up"
        );
        // The image, from podman's store.
        let tar = base().join("busybox-image.tar");
        let s = podman_raw(
            podman_setup(),
            &["save", "-o", tar.to_str().expect("utf-8"), IMAGE],
        );
        if !tar.exists() {
            panic!("podman save: {s:?}");
        }
        let o = c.ctr(&["images", "import", tar.to_str().expect("utf-8")]);
        assert!(o.status.success(), "ctr import: {o:?}");
        c
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("-a")
            .arg(&self.sock)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ctr")
    }
}

#[test]
fn containerd_run_and_task_exec() {
    let _ = podman_setup();
    let c = Containerd::start();
    let image = format!("{IMAGE}:latest");
    for rt in RUNTIMES {
        let bin = runtime_path(rt);
        let name = format!("once-{rt}");
        let o = c.ctr(&[
            "run",
            "--rm",
            "--runc-binary",
            &bin,
            &image,
            &name,
            "sh",
            "-c",
            "echo hello-ctr; exit 4",
        ]);
        assert_eq!(o.status.code(), Some(4), "{rt}: {o:?}");
        assert_eq!(out(&o), "hello-ctr\n", "{rt}");

        let name = format!("long-{rt}");
        ok(
            rt,
            c.ctr(&[
                "run",
                "-d",
                "--runc-binary",
                &bin,
                &image,
                &name,
                "sleep",
                "60",
            ]),
        );
        let e = c.ctr(&[
            "task",
            "exec",
            "--exec-id",
            "e1",
            &name,
            "sh",
            "-c",
            "echo in-exec; exit 6",
        ]);
        assert_eq!(e.status.code(), Some(6), "{rt}: {e:?}");
        assert_eq!(out(&e), "in-exec\n", "{rt}");
        let ps = ok(rt, c.ctr(&["task", "ps", &name]));
        assert!(ps.lines().count() >= 2, "{rt}: {ps}");
        ok(rt, c.ctr(&["task", "pause", &name]));
        assert!(ok(rt, c.ctr(&["task", "ls"])).contains("PAUSED"), "{rt}");
        ok(rt, c.ctr(&["task", "resume", &name]));
        ok(rt, c.ctr(&["task", "kill", "-s", "9", &name]));
        assert!(
            common::wait_until(|| c.ctr(&["task", "delete", &name]).status.success()),
            "{rt}"
        );
        ok(rt, c.ctr(&["container", "delete", &name]));
    }
}

#[test]
fn podman_runs_of_one_command_hit_a_plan_template() {
    // Each podman container's config has its own ids, netns uuid and creation annotation,
    // and podman lists four of its binds in map order (so at most 4! = 24 shapes). ferrun keys
    // its plan by a template of the config: 30 runs store at most 24 templates (so at least 6
    // hit one), and no container's own plan. A nonce in the env marks this test's entries
    // among those of the other tests in podman's runtime root.
    let nonce = format!(
        "FERRUN_TEMPLATE_TEST={}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let plans = Path::new("/run/ferrun/@cache/plans");
    let ours = || -> Vec<PathBuf> {
        std::fs::read_dir(plans)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        std::fs::read(p)
                            .is_ok_and(|b| b.windows(nonce.len()).any(|w| w == nonce.as_bytes()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let runs = 30;
    for i in 0..runs {
        let o = podman(
            "ferrun",
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "--env",
                &nonce,
                IMAGE,
                "true",
            ],
        );
        assert!(o.status.success(), "run {i}: {o:?}");
    }
    let entries = ours();
    for p in &entries {
        let _ = std::fs::remove_file(p);
    }
    assert!(
        entries
            .iter()
            .all(|p| p.extension().is_some_and(|e| e == "tmpl")),
        "{entries:?}"
    );
    assert!(
        !entries.is_empty() && entries.len() <= 24,
        "{} templates",
        entries.len()
    );
}
