//! Checkpoint and restore through criu, in the guest (Debian's criu 3.17 works on its 6.1
//! kernel, not on the host's): a counter that goes on counting after a restore, under its own
//! id and under a new one, a second checkpoint of a restored container, `--leave-running`
//! with `--pre-dump` and `--parent-path`, a terminal handed over through console sockets,
//! podman's `container checkpoint --export` and `restore --import`, and a failed checkpoint
//! that leaves its container running. Each runs with ferrun and with runc; the times of
//! checkpoint and restore are noted for both.

use crate::common::{self, Bundle, ok};
use crate::guest::text;
use serde_json::{Value, json};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Counts in a tmpfs of the container's (criu keeps a tmpfs's files in its images), with the
/// container's own `/dev/null` as stdio unless the scenario wants the runtime's.
const COUNTER: &str = "i=0; while :; do i=$((i+1)); echo $i > /dev/shm/count; sleep 0.1; done";

fn quiet(script: &str) -> String {
    format!("exec </dev/null >/dev/null 2>&1; {script}")
}

/// One runtime with a state root of the scenario's own.
struct Rt {
    bin: String,
    root: PathBuf,
    name: &'static str,
}

impl Rt {
    fn new(name: &'static str, b: &Bundle) -> Rt {
        Rt {
            bin: crate::guest::runtime_bin(name),
            root: b.state_root(),
            name,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn out(&self, args: &[&str]) -> Output {
        common::output_via_files(self.cmd(args))
    }

    fn must(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(o.status.success(), "{} {args:?}: {}", self.name, text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `must`, timed in milliseconds; ferrun's phases (`--profile`) are noted.
    fn timed(&self, args: &[&str]) -> f64 {
        let mut all = args.to_vec();
        if self.name == "ferrun" {
            all.insert(0, "--profile");
        }
        let t = Instant::now();
        let o = self.out(&all);
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        assert!(o.status.success(), "{} {args:?}: {}", self.name, text(&o));
        if self.name == "ferrun" {
            let phases = String::from_utf8_lossy(&o.stderr);
            crate::guest::note(&phases.split_whitespace().collect::<Vec<_>>().join(" "));
        }
        ms
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.must(&["state", id])).expect("state json")
    }

    /// The counter; a read between its truncation and its write finds it empty: read again.
    fn count(&self, id: &str) -> u64 {
        let mut out = String::new();
        for _ in 0..10 {
            out = self.must(&["exec", id, "cat", "/dev/shm/count"]);
            if let Ok(n) = out.trim().parse() {
                return n;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        panic!("{}: count {out:?}", self.name)
    }

    /// Waits until the counter of `id` passes `n`, and returns it.
    fn count_past(&self, id: &str, n: u64) -> u64 {
        let t = Instant::now();
        loop {
            let c = self.count(id);
            if c > n {
                return c;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "{}: {id}'s counter stays at {c}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn delete(&self, id: &str) {
        let _ = self.out(&["delete", "--force", id]);
    }
}

/// Deletes the scenario's containers however it ends.
struct Gone<'a>(&'a Rt, Vec<String>);

impl Drop for Gone<'_> {
    fn drop(&mut self) {
        for id in &self.1 {
            self.0.delete(id);
        }
    }
}

fn dir(b: &Bundle, name: &str) -> String {
    b.path().join(name).to_string_lossy().into_owned()
}

/// Counter → checkpoint → restore (same id) → counts on; checkpoint again → restore under a new
/// id → counts on; exec, state, kill and delete on it.
pub fn counter_continues(rt: &'static str) {
    // criu's first run on a boot probes the kernel (and caches it in /run/criu.kdat): done
    // before the timed runs, so that neither runtime pays for it.
    let _ = crate::guest::run_quiet("criu", &["check"]);
    let b = crate::guest::cgroupns_bundle(&quiet(COUNTER));
    let r = Rt::new(rt, &b);
    let bundle = b.path().to_string_lossy().into_owned();
    let (id, id2) = (format!("cr-{rt}"), format!("cr-{rt}-new"));
    let _gone = Gone(&r, vec![id.clone(), id2.clone()]);
    r.must(&["run", "-d", "--bundle", &bundle, &id]);
    let before = r.count_past(&id, 5);
    let (img, work) = (dir(&b, "img1"), dir(&b, "work1"));
    let dump_ms = r.timed(&[
        "checkpoint",
        "--image-path",
        &img,
        "--work-path",
        &work,
        &id,
    ]);
    assert!(
        Path::new(&img).join("inventory.img").exists(),
        "{rt}: no images"
    );
    crate::guest::note(&format!(
        "{rt}: criu's slowest steps: {}",
        slowest(&format!("{work}/dump.log"))
    ));
    // The dumped container is gone, as in runc.
    let st = r.out(&["state", &id]);
    assert!(
        !st.status.success(),
        "{rt}: {id} still there: {}",
        text(&st)
    );
    let restore_ms = r.timed(&[
        "restore",
        "-d",
        "--bundle",
        &bundle,
        "--image-path",
        &img,
        "--work-path",
        &work,
        &id,
    ]);
    let s = r.state(&id);
    assert_eq!(s["status"], json!("running"), "{rt}: {s}");
    let after = r.count(&id);
    assert!(
        after >= before,
        "{rt}: counted {before}, then {after} after restore"
    );
    // criu restores into a time namespace of its own; ferrun's exec'd process joins it too.
    // (Debian's runc 1.1 does not: its exec'd process keeps the host's clocks; later runc
    // joins it.)
    let init = r.state(&id)["pid"].as_i64().expect("pid");
    let init_time = std::fs::read_link(format!("/proc/{init}/ns/time")).expect("init's time ns");
    let exec_time = r.must(&["exec", &id, "readlink", "/proc/self/ns/time"]);
    if rt == "ferrun" {
        assert_eq!(
            exec_time.trim(),
            init_time.to_string_lossy(),
            "{rt}: exec's time namespace"
        );
    } else {
        crate::guest::note(&format!(
            "{rt}: exec's time namespace {} , the restored init's {}",
            exec_time.trim(),
            init_time.display()
        ));
    }
    r.count_past(&id, after);

    // A second checkpoint of the restored container, restored under a new id.
    let (img2, work2) = (dir(&b, "img2"), dir(&b, "work2"));
    let before2 = r.count(&id);
    r.must(&[
        "checkpoint",
        "--image-path",
        &img2,
        "--work-path",
        &work2,
        &id,
    ]);
    r.must(&[
        "restore",
        "-d",
        "--bundle",
        &bundle,
        "--image-path",
        &img2,
        "--work-path",
        &work2,
        &id2,
    ]);
    let s = r.state(&id2);
    assert_eq!(s["status"], json!("running"), "{rt}: {s}");
    assert_eq!(s["id"], json!(id2), "{rt}: {s}");
    let pid = s["pid"].as_i64().expect("pid");
    assert!(pid > 0, "{rt}: {s}");
    let after2 = r.count_past(&id2, before2);
    assert!(after2 > before2, "{rt}: {before2} then {after2}");
    r.must(&["kill", &id2, "KILL"]);
    assert!(
        common::wait_until(|| r.state(&id2)["status"] == json!("stopped")),
        "{rt}: {id2} did not stop"
    );
    r.must(&["delete", &id2]);
    crate::guest::note(&format!(
        "{rt}: checkpoint {dump_ms:.0} ms, restore {restore_ms:.0} ms (counter {before} → {after})"
    ));
}

/// `--pre-dump`, then the dump with `--parent-path` and `--leave-running`: the original runs on;
/// a restore of the final images under a new id counts on from the dump.
pub fn leave_running_and_pre_dump(rt: &'static str) {
    let b = crate::guest::cgroupns_bundle(&quiet(COUNTER));
    let r = Rt::new(rt, &b);
    let bundle = b.path().to_string_lossy().into_owned();
    let (id, id2) = (format!("lr-{rt}"), format!("lr-{rt}-copy"));
    let _gone = Gone(&r, vec![id.clone(), id2.clone()]);
    r.must(&["run", "-d", "--bundle", &bundle, &id]);
    r.count_past(&id, 3);
    let base = dir(&b, "cp");
    std::fs::create_dir_all(&base).expect("image base");
    let (pre, fin) = (format!("{base}/pre"), format!("{base}/final"));
    r.must(&["checkpoint", "--pre-dump", "--image-path", &pre, &id]);
    assert!(has_pagemap(&pre), "{rt}: the pre-dump wrote no pages");
    let running = r.state(&id);
    assert_eq!(
        running["status"],
        json!("running"),
        "{rt}: after pre-dump {running}"
    );
    let at_dump = r.count_past(&id, 0);
    r.must(&[
        "checkpoint",
        "--leave-running",
        "--parent-path",
        "../pre",
        "--image-path",
        &fin,
        &id,
    ]);
    assert!(
        Path::new(&fin).join("parent").exists(),
        "{rt}: the dump names no parent"
    );
    let s = r.state(&id);
    assert_eq!(
        s["status"],
        json!("running"),
        "{rt}: after --leave-running {s}"
    );
    r.count_past(&id, at_dump);
    r.must(&["delete", "--force", &id]);
    r.must(&[
        "restore",
        "-d",
        "--bundle",
        &bundle,
        "--image-path",
        &fin,
        &id2,
    ]);
    let after = r.count(&id2);
    assert!(
        after >= at_dump,
        "{rt}: dumped at ≥{at_dump}, restored at {after}"
    );
    r.count_past(&id2, after);
}

fn has_pagemap(dir: &str) -> bool {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("pagemap"))
        })
        .unwrap_or(false)
}

/// Reads what the pty shows until `want` says yes (or 30 s pass).
fn read_pty(master: &std::os::fd::OwnedFd, want: impl Fn(&str) -> bool) -> String {
    use std::os::fd::AsRawFd;
    let mut seen = String::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) && !want(&seen) {
        let mut p = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 500) } <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        // SAFETY: reading into our buffer.
        let n = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n as usize]));
    }
    seen
}

/// Runs `args` with `--console-socket` on a new socket named `name` in the bundle, which must
/// succeed, and returns the pty master that came over it.
fn with_console(r: &Rt, b: &Bundle, name: &str, args: &[&str]) -> std::os::fd::OwnedFd {
    let sock = b.path().join(name);
    let listener = UnixListener::bind(&sock).expect("console socket");
    let sock = sock.to_string_lossy().into_owned();
    let (verb, rest) = args.split_first().expect("a command");
    let mut all = vec![*verb, "--console-socket", &sock];
    all.extend_from_slice(rest);
    let cmd = r.cmd(&all);
    let t = std::thread::spawn(move || common::output_via_files(cmd));
    let (_, master) = common::accept_fd(&listener);
    let o = t.join().expect("runtime");
    assert!(o.status.success(), "{} {verb}: {}", r.name, text(&o));
    master
}

/// The last `tick N` a pty showed.
fn last_tick(s: &str) -> u64 {
    s.lines()
        .filter_map(|l| l.trim().strip_prefix("tick "))
        .filter_map(|n| n.trim().parse().ok())
        .next_back()
        .unwrap_or(0)
}

/// A container with a terminal: its pty's master goes to a console socket at run, and the
/// restored one's (a new pair criu makes) to another at restore; the ticks go on there.
pub fn terminal_through_console_socket(rt: &'static str) {
    let mut b = crate::guest::cgroupns_bundle(
        "i=0; while :; do i=$((i+1)); echo $i > /dev/shm/count; echo tick $i; sleep 0.1; done",
    );
    b.edit(|c| c["process"]["terminal"] = json!(true));
    let r = Rt::new(rt, &b);
    let bundle = b.path().to_string_lossy().into_owned();
    let id = format!("tty-{rt}");
    let _gone = Gone(&r, vec![id.clone()]);
    let master1 = with_console(
        &r,
        &b,
        "console1.sock",
        &["run", "-d", "--bundle", &bundle, &id],
    );
    let seen = read_pty(&master1, |s| last_tick(s) >= 5);
    let before = last_tick(&seen);
    assert!(before >= 5, "{rt}: the pty showed {seen:?}");
    let img = dir(&b, "img");
    r.must(&["checkpoint", "--image-path", &img, &id]);
    drop(master1);
    let master2 = with_console(
        &r,
        &b,
        "console2.sock",
        &[
            "restore",
            "-d",
            "--bundle",
            &bundle,
            "--image-path",
            &img,
            &id,
        ],
    );
    let seen = read_pty(&master2, |s| last_tick(s) > before + 3);
    let after = last_tick(&seen);
    assert!(
        after > before,
        "{rt}: ticked to {before}, then showed {seen:?}"
    );
    assert_eq!(r.state(&id)["status"], json!("running"));
}

/// A container whose stdout is one end of a unix socket pair the host holds: criu refuses an
/// external socket without `--ext-unix-sk`; the container runs on and the error says why.
pub fn failed_checkpoint_leaves_it_running(rt: &'static str) {
    let b = crate::guest::cgroupns_bundle(&format!("exec </dev/null 2>/dev/null; {COUNTER}"));
    let r = Rt::new(rt, &b);
    let bundle = b.path().to_string_lossy().into_owned();
    let id = format!("fail-{rt}");
    let _gone = Gone(&r, vec![id.clone()]);
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let mut c = r.cmd(&["run", "-d", "--bundle", &bundle, &id]);
    c.stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)));
    let st = c.status().expect("run");
    assert!(st.success(), "{rt}: run -d");
    let before = r.count_past(&id, 3);
    let img = dir(&b, "img");
    let o = r.out(&["checkpoint", "--image-path", &img, &id]);
    assert!(
        !o.status.success(),
        "{rt}: checkpoint of an external socket passed"
    );
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    if rt == "ferrun" {
        assert!(
            err.contains("unix") && err.contains("is running"),
            "ferrun's error says neither the socket nor the state: {err}"
        );
    }
    assert_eq!(r.state(&id)["status"], json!("running"), "{rt}: {err}");
    r.count_past(&id, before);
    drop(ours);
}

/// podman's `container checkpoint --export` and `container restore --import` with the
/// runtime: the imported container counts on from where the export left it.
pub fn podman_export_import(rt: &'static str) {
    crate::guest::podman_setup();
    let name = format!("crpod-{rt}");
    let tar = format!("/tmp/{name}.tar.gz");
    let podman = |args: &[&str]| crate::guest::podman(rt, args);
    let _ = podman(&["rm", "-f", &name]);
    ok(&podman(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        crate::guest::IMAGE,
        "sh",
        "-c",
        COUNTER,
    ]));
    let count = || -> u64 {
        let o = podman(&["exec", &name, "cat", "/dev/shm/count"]);
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let t = Instant::now();
    while count() < 5 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{rt}: podman's counter stays"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let before = count();
    let t = Instant::now();
    let o = podman(&["container", "checkpoint", "--export", &tar, &name]);
    let dump_ms = t.elapsed().as_secs_f64() * 1000.0;
    assert!(
        o.status.success(),
        "{rt}: checkpoint --export: {}",
        text(&o)
    );
    ok(&podman(&["rm", "-f", &name]));
    let t = Instant::now();
    let o = podman(&["container", "restore", "--import", &tar]);
    let restore_ms = t.elapsed().as_secs_f64() * 1000.0;
    assert!(o.status.success(), "{rt}: restore --import: {}", text(&o));
    let state = ok(&podman(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.OCIRuntime}}",
        &name,
    ]));
    assert!(state.starts_with("running"), "{rt}: {state}");
    let after = count();
    assert!(
        after >= before,
        "{rt}: exported at {before}, imported at {after}"
    );
    let t = Instant::now();
    while count() <= after {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{rt}: the imported counter stays"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    ok(&podman(&["rm", "-f", &name]));
    let _ = std::fs::remove_file(&tar);
    crate::guest::note(&format!(
        "podman with {rt}: checkpoint --export {dump_ms:.0} ms, restore --import {restore_ms:.0} ms"
    ));
}

/// The three lines of a criu log that came longest after the line before them.
fn slowest(log: &str) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut prev = 0.0;
    let mut gaps: Vec<(f64, String)> = Vec::new();
    for l in text.lines() {
        let Some(t) = l
            .trim_start()
            .strip_prefix('(')
            .and_then(|r| r.split(')').next())
            .and_then(|t| t.trim().parse::<f64>().ok())
        else {
            continue;
        };
        gaps.push((t - prev, l.chars().take(120).collect()));
        prev = t;
    }
    gaps.sort_by(|a, b| b.0.total_cmp(&a.0));
    gaps.iter()
        .take(3)
        .map(|(g, l)| format!("+{:.0} ms {l}", g * 1000.0))
        .collect::<Vec<_>>()
        .join(" | ")
}
