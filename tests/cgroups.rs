//! cgroups on this hybrid host, with real containers: v1 resources written, read back and felt;
//! the cgroup2 paths (CLONE_INTO_CGROUP, freeze, kill, procs, the device program) on the unified
//! mount with `FERRUN_CGROUP_LAYOUT=v2`; update, pause/resume, ps, events; and clean-up.

mod common;

use common::ok;

use common::{Bundle, cgroup_dirs, wait_until};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Output;

fn v1(controller: &str, b: &Bundle, file: &str) -> String {
    let p = PathBuf::from("/sys/fs/cgroup")
        .join(controller)
        .join(b.cgroup_path().trim_start_matches('/'))
        .join(file);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

fn unified(b: &Bundle) -> PathBuf {
    PathBuf::from("/sys/fs/cgroup/unified").join(b.cgroup_path().trim_start_matches('/'))
}

/// `ferrun ARGS` with the layout forced to `layout` (None: probed).
fn ferrun_on(b: &Bundle, layout: Option<&str>, args: &[&str]) -> Output {
    let mut c = b.cmd(args);
    if let Some(l) = layout {
        c.env("FERRUN_CGROUP_LAYOUT", l);
    }
    common::output_via_files(c)
}

/// Starts `script` detached; returns the container's pid.
fn start_detached(b: &mut Bundle, layout: Option<&str>, id: &str, script: &str) -> i32 {
    b.edit(|c| c["process"]["args"] = json!(["sh", "-c", script]));
    let env: Vec<(&str, &str)> = layout
        .map(|l| ("FERRUN_CGROUP_LAYOUT", l))
        .into_iter()
        .collect();
    b.run_detached(id, &env)
}

/// The number a container's counting loop last wrote to `ctl/count` (0 before the first).
fn counter(ctl: &std::path::Path) -> u64 {
    std::fs::read_to_string(ctl.join("count"))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0)
}

/// A directory of the bundle bound at /ctl in the container, for the test to talk to it.
fn with_ctl(b: &mut Bundle) -> PathBuf {
    let ctl = b.path().join("ctl");
    std::fs::create_dir_all(&ctl).expect("ctl");
    let src = ctl.to_str().expect("utf-8").to_string();
    b.edit(|c| {
        c["mounts"].as_array_mut().expect("mounts").push(
            json!({"destination": "/ctl", "type": "bind", "source": src, "options": ["rbind", "rw"]}),
        )
    });
    ctl
}

fn state(b: &Bundle, id: &str) -> Value {
    serde_json::from_str(&ok(&b.ferrun(&["state", id]))).expect("state json")
}

fn assert_gone(b: &Bundle) {
    let left = cgroup_dirs(&b.cgroup_path());
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
    assert!(b.leftover_state().is_empty(), "{:?}", b.leftover_state());
}

#[test]
fn v1_resources_are_written_read_back_and_felt() {
    let mut b = Bundle::new(&[]);
    b.edit(|c| {
        c["linux"]["resources"] = json!({
            "devices": [{"allow": false, "access": "rwm"}],
            "memory": {"limit": 67108864, "swap": 67108864, "reservation": 33554432, "swappiness": 10},
            "cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 12},
            "blockIO": {"throttleReadBpsDevice": [{"major": 7, "minor": 0, "rate": 1048576}]}
        });
    });
    // Read back inside the container through its read-only /sys/fs/cgroup, then a fork bomb
    // that the pids limit stops.
    let out = b.sh(
        "cd /sys/fs/cgroup; cat memory/memory.limit_in_bytes memory/memory.memsw.limit_in_bytes \
         memory/memory.soft_limit_in_bytes memory/memory.swappiness cpu/cpu.shares \
         cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us cpuset/cpuset.cpus pids/pids.max; \
         head -c1 blkio/blkio.throttle.read_bps_device; echo; \
         (for i in $(seq 1 30); do sleep 3 & done) 2>/dev/null; cat pids/pids.current; \
         grep -c . devices/devices.list; kill -9 -1 2>/dev/null; true",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..9],
        &[
            "67108864", "67108864", "33554432", "10", "512", "20000", "100000", "0", "12"
        ],
        "{out}"
    );
    assert_eq!(lines[9], "7", "{out}");
    let current: u32 = lines[10].parse().expect("pids.current");
    assert!(current <= 12, "the pids limit held: {current} processes");
    let rules: u32 = lines[11].parse().expect("devices.list lines");
    assert!(
        (5..=15).contains(&rules),
        "deny-all plus the default devices, not a*:* ({rules})"
    );
    assert_gone(&b);
}

#[test]
fn device_rules_refuse_a_denied_device_on_v1_and_v2() {
    for layout in [None, Some("v2")] {
        let mut b = Bundle::new(&[]);
        b.edit(|c| {
            // /dev/fuse's numbers under another name (opening it needs no capability): made by
            // the runtime, refused by the rules.
            c["linux"]["devices"] =
                json!([{"path": "/dev/denied", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666}]);
            c["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
            c["process"]["args"] = json!(["sh", "-c",
                "(exec 3</dev/denied) 2>&1; echo denied=$?; head -c1 /dev/zero | wc -c; echo > /dev/null; echo null=$?"]);
        });
        let bundle = b.path().to_str().expect("utf-8").to_string();
        let o = ferrun_on(&b, layout, &["run", "--bundle", &bundle, "dev"]);
        let out = ok(&o);
        assert!(
            out.contains("Operation not permitted") && out.contains("denied=1"),
            "{layout:?}: {out}"
        );
        assert!(
            out.contains("null=0") && out.contains("\n1\n"),
            "{layout:?}: {out}"
        );
        // The control: allowed by a rule, the same node reads, so the rules are what refused
        // it (not the runner's own device cgroup).
        b.edit(|c| {
            c["linux"]["resources"]["devices"]
                .as_array_mut()
                .expect("devices")
                .push(json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "r"}))
        });
        let out = ok(&ferrun_on(&b, layout, &["run", "--bundle", &bundle, "dev"]));
        assert!(out.contains("denied=0"), "{layout:?}: {out}");
        // No resources at all: still deny-all but the defaults, as runc does.
        b.edit(|c| {
            c["linux"]
                .as_object_mut()
                .expect("linux")
                .remove("resources");
        });
        let out = ok(&ferrun_on(&b, layout, &["run", "--bundle", &bundle, "dev"]));
        assert!(
            out.contains("Operation not permitted") && out.contains("null=0"),
            "{layout:?}: {out}"
        );
        assert_gone(&b);
    }
}

#[test]
fn cgroup2_clone_into_freeze_procs_kill_and_delete_on_the_unified_mount() {
    let mut b = Bundle::new(&["true"]);
    let ctl = with_ctl(&mut b);
    let bundle = b.path().to_str().expect("utf-8").to_string();
    // Born in its cgroup: the plan has no join step for cgroup2.
    let plan = ok(&ferrun_on(&b, Some("v2"), &["plan", "--bundle", &bundle]));
    assert!(plan.contains("cloned into #0"), "{plan}");
    assert!(!plan.contains("join own cgroup"), "{plan}");
    // No pid namespace: kill --all must reach the background children through the cgroup.
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .expect("ns")
            .retain(|n| n["type"] != "pid")
    });
    let pid = start_detached(
        &mut b,
        Some("v2"),
        "v2",
        "sleep 60 & sleep 60 & i=0; while true; do i=$((i+1)); echo $i > /ctl/count; done",
    );
    let dir = unified(&b);
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).expect("procs");
    assert!(procs.lines().any(|l| l == pid.to_string()), "{procs}");
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    assert_eq!(
        own.lines().last().unwrap_or(""),
        format!("0::{}", b.cgroup_path())
    );

    let ps_json = || -> Vec<i32> {
        serde_json::from_str(&ok(&b.ferrun(&["ps", "--format", "json", "v2"]))).expect("json")
    };
    // The two background sleeps may still be forking.
    assert!(wait_until(|| ps_json().len() >= 3), "{:?}", ps_json());
    let ps = ps_json();
    assert!(ps.contains(&pid), "{ps:?}");
    let table = ok(&b.ferrun(&["ps", "v2"]));
    assert!(table.starts_with("UID") || table.contains("PID"), "{table}");
    assert_eq!(table.lines().count(), ps.len() + 1, "{table}");

    let count = || counter(&ctl);
    assert!(wait_until(|| count() > 0));
    ok(&b.ferrun(&["pause", "v2"]));
    assert_eq!(state(&b, "v2")["status"], "paused");
    assert_eq!(
        std::fs::read_to_string(dir.join("cgroup.freeze"))
            .expect("freeze")
            .trim(),
        "1"
    );
    let frozen = count();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(count(), frozen, "a paused container does not count");
    let again = b.ferrun(&["pause", "v2"]);
    assert!(!again.status.success(), "pausing a paused container fails");
    ok(&b.ferrun(&["resume", "v2"]));
    assert_eq!(state(&b, "v2")["status"], "running");
    assert!(wait_until(|| count() > frozen + 10), "counting again");

    // kill --all: cgroup.kill takes every process, not only init.
    ok(&b.ferrun(&["kill", "--all", "v2", "KILL"]));
    assert!(wait_until(|| std::fs::read_to_string(
        dir.join("cgroup.procs")
    )
    .is_ok_and(|s| s.trim().is_empty())));
    ok(&b.ferrun(&["delete", "v2"]));
    assert_gone(&b);
}

#[test]
fn v1_pause_update_and_stats_of_a_running_container() {
    let mut b = Bundle::new(&[]);
    let ctl = with_ctl(&mut b);
    b.edit(|c| {
        c["linux"]["resources"] = json!({"memory": {"limit": 134217728}, "pids": {"limit": 50}})
    });
    start_detached(
        &mut b,
        None,
        "c1",
        "i=0; while true; do i=$((i+1)); echo $i > /ctl/count; done",
    );
    let count = || counter(&ctl);
    assert!(wait_until(|| count() > 0));
    ok(&b.ferrun(&["pause", "c1"]));
    assert_eq!(v1("freezer", &b, "freezer.state"), "FROZEN");
    assert_eq!(state(&b, "c1")["status"], "paused");
    let frozen = count();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(count(), frozen);
    ok(&b.ferrun(&["resume", "c1"]));
    assert!(wait_until(|| count() > frozen + 10));

    // runc's flags, then a resources document on stdin.
    ok(&b.ferrun(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--pids-limit",
        "7",
        "--cpu-share",
        "256",
        "c1",
    ]));
    assert_eq!(v1("memory", &b, "memory.limit_in_bytes"), "67108864");
    assert_eq!(v1("memory", &b, "memory.memsw.limit_in_bytes"), "134217728");
    assert_eq!(v1("pids", &b, "pids.max"), "7");
    assert_eq!(v1("cpu", &b, "cpu.shares"), "256");
    let mut c = b.cmd(&["update", "--resources", "-", "c1"]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    std::io::Write::write_all(
        child.stdin.as_mut().expect("stdin"),
        br#"{"pids": {"limit": 9}, "memory": {"limit": 268435456, "swap": 268435456}}"#,
    )
    .expect("write");
    drop(child.stdin.take());
    ok(&child.wait_with_output().expect("wait"));
    assert_eq!(v1("pids", &b, "pids.max"), "9");
    assert_eq!(v1("memory", &b, "memory.limit_in_bytes"), "268435456");
    // A quota alone keeps the period; a bad value names the field and changes nothing.
    ok(&b.ferrun(&["update", "--cpu-quota", "50000", "c1"]));
    assert_eq!(v1("cpu", &b, "cpu.cfs_quota_us"), "50000");
    assert_eq!(v1("cpu", &b, "cpu.cfs_period_us"), "100000");
    let bad = b.ferrun(&["update", "--cpu-idle", "5", "c1"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("update.cpu.idle"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert_eq!(v1("cpu", &b, "cpu.cfs_quota_us"), "50000");
    // runc's "leave alone" zeros change nothing.
    let mut z = b.cmd(&["update", "--resources", "-", "c1"]);
    z.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = z.spawn().expect("spawn");
    std::io::Write::write_all(
        child.stdin.as_mut().expect("stdin"),
        br#"{"cpu": {"shares": 0, "quota": 0, "period": 0, "cpus": "", "mems": ""}, "blockIO": {"weight": 0}}"#,
    )
    .expect("write");
    drop(child.stdin.take());
    ok(&child.wait_with_output().expect("wait"));
    assert_eq!(v1("cpu", &b, "cpu.shares"), "256");
    assert_eq!(v1("cpu", &b, "cpu.cfs_quota_us"), "50000");

    let stats: Value =
        serde_json::from_str(&ok(&b.ferrun(&["events", "--stats", "c1"]))).expect("json");
    assert_eq!(stats["type"], "stats");
    assert_eq!(stats["id"], "c1");
    assert_eq!(stats["data"]["pids"]["limit"], 9);
    assert!(
        stats["data"]["pids"]["current"].as_u64() >= Some(1),
        "{stats}"
    );
    assert_eq!(stats["data"]["memory"]["usage"]["limit"], 268435456);
    assert!(
        stats["data"]["cpu"]["usage"]["total"].as_u64() > Some(0),
        "{stats}"
    );

    // A paused container can be killed: SIGKILL thaws it so the signal lands.
    ok(&b.ferrun(&["pause", "c1"]));
    assert_eq!(state(&b, "c1")["status"], "paused");
    ok(&b.ferrun(&["kill", "c1", "KILL"]));
    assert!(wait_until(|| state(&b, "c1")["status"] == "stopped"));
    ok(&b.ferrun(&["delete", "c1"]));
    assert_gone(&b);
    start_detached(&mut b, None, "c1", "sleep 60");

    // kill -9 of the container's init, then a plain delete still removes the cgroups.
    let s = state(&b, "c1");
    let pid = s["pid"].as_i64().expect("pid") as i32;
    // SAFETY: killing the container's init.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(wait_until(|| state(&b, "c1")["status"] == "stopped"));
    ok(&b.ferrun(&["delete", "c1"]));
    assert_gone(&b);
}

#[test]
fn an_oom_kill_is_reported_by_events() {
    let mut b = Bundle::new(&[]);
    let ctl = with_ctl(&mut b);
    b.edit(|c| c["linux"]["resources"] = json!({"memory": {"limit": 16777216, "swap": 16777216}}));
    // Waits for the go-ahead, then grows a shell variable past the limit.
    start_detached(
        &mut b,
        None,
        "oom",
        "while [ ! -e /ctl/go ]; do sleep 0.05; done; (x=$(head -c 50000000 /dev/zero | tr '\\0' a)); sleep 60",
    );
    let mut events = b.cmd(&["events", "--interval", "200ms", "oom"]);
    events.stdout(std::process::Stdio::piped());
    let mut child = events.spawn().expect("events");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).expect("first event");
    assert!(line.contains("\"type\":\"stats\""), "{line}");
    std::fs::write(ctl.join("go"), "").expect("go");
    let mut saw_oom = false;
    for _ in 0..200 {
        line.clear();
        if std::io::BufRead::read_line(&mut out, &mut line).unwrap_or(0) == 0 {
            break;
        }
        if line.contains("\"type\":\"oom\"") {
            assert_eq!(
                serde_json::from_str::<Value>(&line).expect("json"),
                json!({"type": "oom", "id": "oom"})
            );
            saw_oom = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    // The kernel reports the OOM as it starts; the kill follows.
    let kills = |b: &Bundle| {
        v1("memory", b, "memory.oom_control")
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let killed = wait_until(|| kills(&b) >= 1);
    let control = v1("memory", &b, "memory.oom_control");
    ok(&b.ferrun(&["delete", "--force", "oom"]));
    assert!(saw_oom, "no oom event");
    assert!(killed, "{control}");
    assert_gone(&b);
}

#[test]
fn killed_ferrun_mid_create_leaves_nothing_after_delete() {
    let mut b = Bundle::new(&["sleep", "30"]);
    b.edit(|c| c["linux"]["resources"] = json!({"pids": {"limit": 20}}));
    let bundle = b.path().to_str().expect("utf-8").to_string();
    let mut interrupted = 0;
    for i in 0..24u64 {
        let id = format!("k{i}");
        let mut c = b.cmd(&["create", "--bundle", &bundle, &id]);
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = c.spawn().expect("spawn");
        std::thread::sleep(std::time::Duration::from_micros(250 * i));
        let _ = child.kill();
        let status = child.wait().expect("wait");
        if !status.success() {
            interrupted += 1;
        }
        // Whatever state the kill left, delete --force cleans it all up.
        let _ = b.ferrun(&["delete", "--force", &id]);
        assert_gone(&b);
    }
    assert!(interrupted > 0, "no create was interrupted");
}

#[test]
fn a_resource_the_kernel_refuses_fails_create_and_leaves_nothing() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["linux"]["resources"] = json!({"cpu": {"cpus": "99"}}));
    let bundle = b.path().to_str().expect("utf-8").to_string();
    let o = b.ferrun(&["create", "--bundle", &bundle, "bad"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("linux.resources.cpu.cpus"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_gone(&b);
    // A cgroup that already holds processes is refused, and is not removed.
    let mut a = Bundle::new(&["sleep", "30"]);
    start_detached(&mut a, None, "owner", "sleep 30");
    let mut c = Bundle::new(&["true"]);
    let taken = a.cgroup_path();
    c.edit(|cfg| cfg["linux"]["cgroupsPath"] = json!(taken));
    let cb = c.path().to_str().expect("utf-8").to_string();
    let o = c.ferrun(&["run", "--bundle", &cb, "intruder"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already holds processes"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!cgroup_dirs(&a.cgroup_path()).is_empty());
    // Asked to share it, a second container joins; its forced delete kills only its own.
    c.edit(|cfg| {
        cfg["annotations"] = json!({"ferrun.cgroup.shared": "true"});
        cfg["process"]["args"] = json!(["sleep", "30"]);
    });
    let o = c.ferrun(&["run", "-d", "--bundle", &cb, "guest"]);
    ok(&o);
    ok(&c.ferrun(&["delete", "--force", "guest"]));
    assert_eq!(state(&a, "owner")["status"], "running");
    assert!(
        !cgroup_dirs(&a.cgroup_path()).is_empty(),
        "not ours to remove"
    );
    ok(&a.ferrun(&["delete", "--force", "owner"]));
    assert_gone(&a);
}

#[test]
fn kill_all_of_a_stopped_container_reaches_what_outlived_its_init() {
    // No pid namespace of its own (a pod's shared one): the sleeper outlives the init.
    let mut b = Bundle::new(&["sh", "-c", "sleep 1000 & exit 0"]);
    b.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().expect("ns");
        ns.retain(|n| n["type"] != "pid");
    });
    let init = b.run_detached("orphan", &[]);
    let status = |b: &Bundle| {
        let s: Value = serde_json::from_str(&ok(&b.ferrun(&["state", "orphan"]))).expect("state");
        s["status"].as_str().unwrap_or_default().to_string()
    };
    assert!(
        wait_until(|| status(&b) == "stopped"),
        "init {init} lives on"
    );
    let procs = || std::fs::read_to_string(unified(&b).join("cgroup.procs")).unwrap_or_default();
    assert!(!procs().trim().is_empty(), "the sleeper is gone already");
    // runc's behaviour, which containerd's shim relies on: not an error, and they die.
    ok(&b.ferrun(&["kill", "--all", "orphan", "KILL"]));
    assert!(
        wait_until(|| procs().trim().is_empty()),
        "left: {}",
        procs()
    );
    // Without --all a stopped container is still refused.
    assert!(!b.ferrun(&["kill", "orphan", "KILL"]).status.success());
    ok(&b.ferrun(&["delete", "orphan"]));
    assert!(cgroup_dirs(&b.cgroup_path()).is_empty());
}

#[test]
fn delete_force_of_a_container_an_ancestor_froze_kills_it_and_leaves_the_ancestor_frozen() {
    // v1's freezer holds even SIGKILL: a parent cgroup someone froze used to make delete
    // --force wait 10 s and fail. The test's own parent, under ferrun-test, is the one frozen.
    let mut b = Bundle::new(&["sleep", "60"]);
    let parent = b.cgroup_path();
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(format!("{parent}/ctr")));
    b.run_detached("frozen", &[]);
    let freezer = PathBuf::from(format!("/sys/fs/cgroup/freezer{parent}"));
    std::fs::write(freezer.join("freezer.state"), "FROZEN").expect("freeze the parent");
    assert!(wait_until(|| {
        std::fs::read_to_string(freezer.join("ctr/freezer.state"))
            .is_ok_and(|s| s.trim() == "FROZEN")
    }));
    let o = b.ferrun(&["delete", "--force", "frozen"]);
    let parent_state = std::fs::read_to_string(freezer.join("freezer.state")).unwrap_or_default();
    std::fs::write(freezer.join("freezer.state"), "THAWED").expect("thaw the parent");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        parent_state.trim(),
        "FROZEN",
        "someone else's freezer is left as it was"
    );
    assert!(b.leftover_state().is_empty());
    assert!(!freezer.join("ctr").exists());

    // Paused by ferrun, then its ancestor frozen too.
    b.run_detached("both", &[]);
    ok(&b.ferrun(&["pause", "both"]));
    std::fs::write(freezer.join("freezer.state"), "FROZEN").expect("freeze the parent");
    let o = b.ferrun(&["delete", "--force", "both"]);
    std::fs::write(freezer.join("freezer.state"), "THAWED").expect("thaw the parent");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(b.leftover_state().is_empty());
    for d in cgroup_dirs(&parent) {
        let _ = std::fs::remove_dir(d);
    }
    assert!(cgroup_dirs(&parent).is_empty());
}
