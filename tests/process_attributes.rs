//! What the kernel keeps for a process across execve, set from the config: the scheduler, the
//! I/O priority, the personality, the NUMA memory policy, time namespace offsets, exec's CPU
//! affinity and a pids limit of 0. Each is read back from inside a real container.

mod common;

use common::{Bundle, ok};
use serde_json::json;

/// Fields of `/proc/<pid>/stat` by their number in proc(5) (1-based), after the `(comm)`.
fn stat_field(stat: &str, n: usize) -> i64 {
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after
        .split_whitespace()
        .nth(n - 3)
        .and_then(|v| v.parse().ok())
        .unwrap_or(i64::MIN)
}

const NICE: usize = 19;
const RT_PRIORITY: usize = 40;
const POLICY: usize = 41;

#[test]
fn scheduler_policy_nice_and_reset_on_fork() {
    let mut b = Bundle::new(&[]);
    b.edit(|c| {
        c["process"]["scheduler"] = json!({
            "policy": "SCHED_OTHER",
            "nice": -5,
            "flags": ["SCHED_FLAG_RESET_ON_FORK"],
        })
    });
    // The shell's own line (read by a builtin) and a child's (cat, forked after the flag).
    let out = b.sh("read l < /proc/$$/stat; echo \"$l\"; cat /proc/self/stat; true");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(stat_field(lines[0], NICE), -5, "{out}");
    assert_eq!(
        stat_field(lines[1], NICE),
        0,
        "reset on fork gives a child nice 0: {out}"
    );

    b.edit(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7}));
    let out = b.sh("cat /proc/self/stat");
    assert_eq!(stat_field(&out, POLICY), 3, "SCHED_BATCH: {out}");
    assert_eq!(stat_field(&out, NICE), 7, "{out}");

    // SCHED_FIFO needs a realtime budget in the v1 cpu hierarchy (RT group scheduling): the
    // test parent gets one, and the container a share of it.
    let parent = std::path::Path::new("/sys/fs/cgroup/cpu/ferrun-test");
    let rt_group = std::path::Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists();
    if rt_group {
        std::fs::create_dir_all(parent).expect("mkdir the test parent in cpu");
        std::fs::write(parent.join("cpu.rt_runtime_us"), "100000").expect("parent rt budget");
        b.edit(|c| {
            c["linux"]["resources"]["cpu"] =
                json!({"realtimePeriod": 1000000, "realtimeRuntime": 10000})
        });
    }
    b.edit(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 10}));
    let out = b.sh("read l < /proc/$$/stat; echo \"$l\"");
    assert_eq!(stat_field(&out, POLICY), 1, "SCHED_FIFO: {out}");
    assert_eq!(stat_field(&out, RT_PRIORITY), 10, "{out}");
}

#[test]
fn scheduler_values_the_kernel_would_refuse_are_refused_by_field() {
    let mut b = Bundle::new(&["true"]);
    for (sched, field) in [
        (
            json!({"policy": "SCHED_OTHER", "priority": 3}),
            "process.scheduler.priority",
        ),
        (
            json!({"policy": "SCHED_FIFO", "priority": 0}),
            "process.scheduler.priority",
        ),
        (
            json!({"policy": "SCHED_OTHER", "nice": 40}),
            "process.scheduler.nice",
        ),
        (
            json!({"policy": "SCHED_BATCH", "runtime": 5000}),
            "process.scheduler",
        ),
        (
            json!({"policy": "SCHED_DEADLINE", "runtime": 5000}),
            "process.scheduler.deadline",
        ),
        (json!({"policy": "SCHED_ISO"}), "process.scheduler.policy"),
        (
            json!({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_NOPE"]}),
            "process.scheduler.flags",
        ),
    ] {
        b.edit(|c| c["process"]["scheduler"] = sched.clone());
        let (code, _, err) = b.run("bad");
        assert_ne!(code, 0, "{sched} was accepted");
        assert!(err.contains(field), "{sched}: {err}");
        assert!(b.leftover_state().is_empty(), "{sched} left state behind");
    }
}

#[test]
fn io_priority_is_set() {
    let mut b = Bundle::new(&[]);
    b.edit(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0}));
    let out = b.sh("ionice -p $$");
    assert!(out.contains("idle"), "{out}");
    b.edit(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6}));
    let out = b.sh("ionice -p $$");
    assert!(out.contains("best-effort") && out.contains('6'), "{out}");
    b.edit(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 9}));
    let (code, _, err) = b.run("bad");
    assert_ne!(code, 0);
    assert!(err.contains("process.ioPriority.priority"), "{err}");
}

#[test]
fn personality_linux32() {
    let mut b = Bundle::new(&[]);
    let native = b.sh("uname -m");
    b.edit(|c| c["linux"]["personality"] = json!({"domain": "LINUX32"}));
    let out = b.sh("uname -m; cat /proc/self/personality");
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(
        lines[0],
        native.trim(),
        "LINUX32 reports a 32-bit machine: {out}"
    );
    assert_eq!(lines[1], "00000008", "{out}");
    b.edit(|c| c["linux"]["personality"] = json!({"domain": "LINUX"}));
    assert_eq!(b.sh("cat /proc/self/personality").trim(), "00000000");
}

#[test]
fn memory_policy_is_set_and_bad_ones_are_refused() {
    let mut b = Bundle::new(&[]);
    b.edit(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"}));
    let out = b.sh("grep -m1 ' bind:0' /proc/self/numa_maps");
    assert!(out.contains("bind:0"), "{out}");
    b.edit(|c| {
        c["linux"]["memoryPolicy"] =
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]})
    });
    let out = b.sh("grep -m1 interleave /proc/self/numa_maps");
    assert!(out.contains("interleave=static:0"), "{out}");
    b.edit(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_LOCAL"}));
    let out = b.sh("grep -c ' local ' /proc/self/numa_maps");
    assert!(out.trim().parse::<u32>().unwrap_or(0) > 0, "{out}");

    for (policy, field) in [
        (json!({"mode": "MPOL_BIND"}), "linux.memoryPolicy.nodes"),
        (
            json!({"mode": "MPOL_DEFAULT", "nodes": "0"}),
            "linux.memoryPolicy.nodes",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0-x"}),
            "linux.memoryPolicy.nodes",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0",
                   "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}),
            "linux.memoryPolicy.flags",
        ),
        (json!({"mode": "MPOL_NOPE"}), "linux.memoryPolicy.mode"),
    ] {
        b.edit(|c| c["linux"]["memoryPolicy"] = policy.clone());
        let (code, _, err) = b.run("bad");
        assert_ne!(code, 0, "{policy} was accepted");
        assert!(err.contains(field), "{policy}: {err}");
        assert!(b.leftover_state().is_empty());
    }
}

#[test]
fn time_namespace_offsets() {
    let mut b = Bundle::new(&[]);
    let year = 365 * 24 * 3600;
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .expect("ns")
            .push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({
            "boottime": {"secs": year, "nanosecs": 0},
            "monotonic": {"secs": -5, "nanosecs": 500},
        });
    });
    let out = b.sh("cat /proc/uptime; cat /proc/self/timens_offsets");
    let uptime: f64 = out
        .split_whitespace()
        .next()
        .and_then(|u| u.parse().ok())
        .unwrap_or(0.0);
    assert!(uptime >= year as f64, "boottime offset: {out}");
    assert!(out.contains("monotonic") && out.contains("-5"), "{out}");
    // ferrun itself went back to its own time namespace: a hook it runs is not born in the
    // container's.
    let host_time = std::fs::read_link("/proc/self/ns/time").expect("ns");
    let marker = b.path().join("hook-time-ns");
    let script = format!("readlink /proc/self/ns/time > {}", marker.display());
    b.edit(|c| {
        c["hooks"] = json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]})
    });
    b.sh("true");
    let hook_ns = std::fs::read_to_string(&marker).expect("the hook ran");
    assert_eq!(hook_ns.trim(), host_time.to_string_lossy());

    // Offsets without a new time namespace, or for a clock without one, are refused.
    b.edit(|c| {
        c["hooks"] = json!({});
        c["linux"]["timeOffsets"] = json!({"realtime": {"secs": 1}});
    });
    let (code, _, err) = b.run("bad");
    assert_ne!(code, 0);
    assert!(err.contains("linux.timeOffsets.realtime"), "{err}");
    b.edit(|c| {
        c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 1}});
        c["linux"]["namespaces"]
            .as_array_mut()
            .expect("ns")
            .retain(|n| n["type"] != "time");
    });
    let (code, _, err) = b.run("bad");
    assert_ne!(code, 0);
    assert!(err.contains("linux.timeOffsets"), "{err}");
    assert!(b.leftover_state().is_empty());
}

#[test]
fn exec_cpu_affinity_final_applies_to_exec_only() {
    let mut b = Bundle::new(&["sleep", "60"]);
    b.edit(|c| c["process"]["execCPUAffinity"] = json!({"initial": "0", "final": "1"}));
    let bundle = b.path().to_str().expect("utf-8").to_string();
    ok(&b.ferrun(&["run", "-d", "--bundle", &bundle, "aff"]));
    let init = ok(&b.ferrun(&["exec", "aff", "cat", "/proc/1/status"]));
    let own = ok(&b.ferrun(&["exec", "aff", "cat", "/proc/self/status"]));
    let cpus = |s: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    assert_eq!(cpus(&own), "1", "exec's final CPU set: {own}");
    assert_ne!(cpus(&init), "1", "the init is not an exec: {init}");
    // An exec'd process's own setting wins over the container's.
    let process = json!({
        "args": ["cat", "/proc/self/status"], "cwd": "/", "env": ["PATH=/bin"],
        "user": {"uid": 0, "gid": 0},
        "execCPUAffinity": {"final": "0"},
    });
    let pfile = b.path().join("process.json");
    std::fs::write(&pfile, process.to_string()).expect("write process.json");
    let own = ok(&b.ferrun(&["exec", "--process", pfile.to_str().expect("utf-8"), "aff"]));
    assert_eq!(cpus(&own), "0", "{own}");
    ok(&b.ferrun(&["delete", "--force", "aff"]));
}

#[test]
fn pids_limit_zero_is_a_limit_and_a_missing_limit_is_none() {
    let mut b = Bundle::new(&[]);
    // The shell runs (it is in its cgroup before the limit is written) but may not fork.
    let script = "read m < /sys/fs/cgroup/pids/pids.max; echo max=$m; /bin/true; echo forked";
    b.edit(|c| c["linux"]["resources"]["pids"] = json!({"limit": 0}));
    b.edit(|c| c["process"]["args"] = json!(["sh", "-c", script]));
    let (code, out, err) = b.run("zero");
    assert!(out.contains("max=0") && !out.contains("forked"), "{out}");
    assert!(code != 0 && err.contains("can't fork"), "{code} {err}");
    // Without a limit, none is written (spec 1.3), where it used to read as 0.
    b.edit(|c| c["linux"]["resources"]["pids"] = json!({}));
    let out = b.sh(script);
    assert!(out.contains("max=max") && out.contains("forked"), "{out}");
    b.edit(|c| c["linux"]["resources"]["pids"] = json!({"limit": -1}));
    let out = b.sh(script);
    assert!(out.contains("max=max") && out.contains("forked"), "{out}");
}
