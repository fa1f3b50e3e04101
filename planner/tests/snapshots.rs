//! Snapshots of the planner: the listing of every fixture config, and the error of every broken
//! variant. Host facts and the bundle path are fixed so that the snapshots hold nothing of the
//! machine; the input hash (which includes the ferrun version) is redacted.

use ferrun_planner::{HostFacts, Input, Options, plan};
use ferrun_plans::CgroupLayout;
use ferrun_plans::cgroups::{Unified, V1Hierarchy};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn host() -> HostFacts {
    host_on(v1_layout())
}

fn host_on(cgroups: CgroupLayout) -> HostFacts {
    HostFacts {
        apparmor: false,
        selinux: false,
        rootless: false,
        setgroups_denied: false,
        arch: "x86_64".into(),
        last_cap: 40,
        uid: 0,
        gid: 0,
        cgroups,
    }
}

/// A cgroup v1 host with every controller, cpu and cpuacct co-mounted.
fn v1_layout() -> CgroupLayout {
    let h = |c: &[&str], m: &str| V1Hierarchy {
        controllers: c.iter().map(|s| s.to_string()).collect(),
        mount: format!("/sys/fs/cgroup/{m}"),
    };
    CgroupLayout {
        v1: vec![
            h(&["cpu", "cpuacct"], "cpu,cpuacct"),
            h(&["cpuset"], "cpuset"),
            h(&["memory"], "memory"),
            h(&["devices"], "devices"),
            h(&["freezer"], "freezer"),
            h(&["blkio"], "blkio"),
            h(&["pids"], "pids"),
            h(&["hugetlb"], "hugetlb"),
            h(&["net_cls", "net_prio"], "net_cls,net_prio"),
            h(&["rdma"], "rdma"),
            h(&["name=systemd"], "systemd"),
        ],
        unified: None,
    }
}

/// A cgroup2-only host with the usual controllers delegated.
fn v2_layout() -> CgroupLayout {
    CgroupLayout {
        v1: vec![],
        unified: Some(Unified {
            mount: "/sys/fs/cgroup".into(),
            controllers: [
                "cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }),
    }
}

/// This machine's kind: v1 controllers plus a cgroup2 mount holding hugetlb.
fn hybrid_layout() -> CgroupLayout {
    let mut l = v1_layout();
    l.v1.retain(|h| !h.controllers.iter().any(|c| c == "hugetlb" || c == "rdma"));
    l.unified = Some(Unified {
        mount: "/sys/fs/cgroup/unified".into(),
        controllers: vec!["hugetlb".into()],
    });
    l
}

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(rel)
}

fn plan_bytes(
    config: &[u8],
    options: Options,
) -> Result<ferrun_plans::Plan, ferrun_planner::PlanError> {
    plan_on(config, options, host())
}

fn plan_on(
    config: &[u8],
    options: Options,
    host: HostFacts,
) -> Result<ferrun_plans::Plan, ferrun_planner::PlanError> {
    plan(&Input {
        config,
        bundle: Path::new("/bundle"),
        host: &host,
        options,
        seccomp_cache: None,
    })
}

fn redacted(listing: &str) -> String {
    listing
        .lines()
        .map(|l| match l.find(" inputs ") {
            Some(i) if l.starts_with("plan format") => format!("{} inputs [hash]", &l[..i]),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("../../snapshots");
    s.set_prepend_module_to_snapshot(false);
    s
}

#[test]
fn fixture_listings() {
    let dir = data("config");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|e| {
            e.expect("entry")
                .file_name()
                .into_string()
                .expect("utf-8 name")
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), 7, "every fixture config is planned");
    for name in names {
        let bytes = std::fs::read(dir.join(&name)).expect("read fixture");
        let p = plan_bytes(&bytes, Options::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        settings().bind(|| {
            insta::assert_snapshot!(
                format!("plan-{}", name.trim_end_matches(".json")),
                redacted(&p.to_string())
            )
        });
    }
}

#[test]
fn no_pivot_listing_uses_chroot() {
    let bytes = std::fs::read(data("config/runc-spec.json")).expect("read");
    let p = plan_bytes(
        &bytes,
        Options {
            no_pivot: true,
            ..Options::default()
        },
    )
    .expect("plan");
    let listing = p.to_string();
    assert!(listing.contains("chroot into the rootfs"), "{listing}");
    assert!(!listing.contains("pivot_root"), "{listing}");
}

#[test]
fn planning_is_deterministic_and_round_trips() {
    for name in [
        "podman-run.json",
        "podman-run-privileged.json",
        "runc-spec-rootless.json",
    ] {
        let bytes = std::fs::read(data(&format!("config/{name}"))).expect("read");
        let a = plan_bytes(&bytes, Options::default()).expect("plan");
        let b = plan_bytes(&bytes, Options::default()).expect("plan");
        assert_eq!(a.encode(), b.encode(), "{name}: same inputs, same bytes");
        assert_eq!(ferrun_plans::Plan::decode(&a.encode()).expect("decode"), a);
    }
}

#[test]
fn podman_fixture_joins_its_netns_plans_seccomp_and_lists_unplanned_sections() {
    let bytes = std::fs::read(data("config/podman-run.json")).expect("read");
    let p = plan_bytes(&bytes, Options::default()).expect("plan");
    let listing = p.to_string();
    // Joined by the parent before clone, so that a new user namespace could not get in the way.
    assert!(
        listing.contains("setns network namespace /run/netns/netns-bef65a0d-70e4-7a35-4877-d45995782186 before clone"),
        "{listing}"
    );
    assert!(!listing.contains("setns slot"), "{listing}");
    assert!(!ferrun_plans::clone_flag_names(p.clone_flags).contains("NEWNET"));
    let fields: Vec<_> = p.not_planned.iter().map(|n| n.field.as_str()).collect();
    assert!(listing.contains("seccomp filter "), "{listing}");
    assert!(!fields.contains(&"linux.seccomp"), "seccomp is planned now");
    for f in ["linux.resources", "linux.cgroupsPath", "mounts[10]"] {
        assert!(!fields.contains(&f), "{f} is planned now: {fields:?}");
    }
}

/// A config that sets every resource.
fn every_resource() -> Vec<u8> {
    variant(&[
        ("/linux/cgroupsPath", json!("/ferrun-test/every")),
        (
            "/linux/resources",
            json!({
                "devices": [
                    {"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "r"},
                    {"allow": false, "type": "b", "major": 8, "access": "w"}
                ],
                "memory": {"limit": 268435456, "reservation": 134217728, "swap": 536870912,
                           "kernel": 67108864, "kernelTCP": 16777216, "swappiness": 10,
                           "disableOOMKiller": true, "useHierarchy": true},
                "cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 10000,
                        "realtimeRuntime": 950000, "realtimePeriod": 1000000,
                        "cpus": "0-1", "mems": "0", "idle": 0},
                "pids": {"limit": 64},
                "blockIO": {"weight": 500, "leafWeight": 300,
                            "weightDevice": [{"major": 8, "minor": 0, "weight": 200}],
                            "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                            "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 524288}],
                            "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
                            "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 50}]},
                "hugepageLimits": [{"pageSize": "2MB", "limit": 1073741824}],
                "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
                "rdma": {"mlx5_0": {"hcaHandles": 3, "hcaObjects": 10000}}
            }),
        ),
    ])
}

/// The cgroup part of a listing: the path, the hierarchies and every cgroup step.
fn cgroup_lines(p: &ferrun_plans::Plan) -> String {
    let mut out = String::new();
    let mut in_header = false;
    for l in p.to_string().lines() {
        if l.starts_with("cgroup path") {
            in_header = true;
        } else if !l.starts_with("      ") {
            in_header = false;
        }
        if in_header || l.contains("cgroup") || l.contains("clone3") {
            out.push_str(l);
            out.push('\n');
        }
    }
    for w in &p.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

#[test]
fn cgroup_writes_on_v1_v2_and_hybrid() {
    let mut cases: Vec<(String, Vec<u8>)> = vec![("every-resource".into(), every_resource())];
    for name in [
        "podman-run",
        "podman-run-tty-limits",
        "podman-run-privileged",
    ] {
        cases.push((
            name.into(),
            std::fs::read(data(&format!("config/{name}.json"))).expect("read"),
        ));
    }
    for (layout_name, layout) in [
        ("v1", v1_layout()),
        ("v2", v2_layout()),
        ("hybrid", hybrid_layout()),
    ] {
        for (name, bytes) in &cases {
            let mut bytes = bytes.clone();
            if layout_name != "v1" && name == "every-resource" {
                // net_cls/net_prio and rdma have no cgroup2 files on these hosts.
                let mut v: Value = serde_json::from_slice(&bytes).expect("json");
                let r = v.pointer_mut("/linux/resources").expect("resources");
                r.as_object_mut().expect("object").remove("rdma");
                if layout_name == "hybrid" {
                    r.as_object_mut().expect("object").remove("network");
                }
                bytes = serde_json::to_vec(&v).expect("encode");
            }
            let p = plan_on(&bytes, Options::default(), host_on(layout.clone()))
                .unwrap_or_else(|e| panic!("{name} on {layout_name}: {e}"));
            settings().bind(|| {
                insta::assert_snapshot!(format!("cgroups-{layout_name}-{name}"), cgroup_lines(&p))
            });
        }
    }
}

#[test]
fn cgroup_namespace_is_made_once_the_process_is_placed() {
    let bytes = variant(&[("/linux/namespaces/5", json!({"type": "cgroup"}))]);
    let p = plan_on(&bytes, Options::default(), host_on(hybrid_layout())).expect("plan");
    let listing = p.to_string();
    assert!(
        !ferrun_plans::clone_flag_names(p.clone_flags).contains("NEWCGROUP"),
        "{listing}"
    );
    // The process writes itself into its v1 cgroups first, then makes the namespace.
    let join = listing.rfind("join own cgroup of").expect(&listing);
    let unshare = listing.find("unshare CLONE_NEWCGROUP").expect(&listing);
    assert!(join < unshare, "{listing}");
    assert!(!listing.contains("wait for the parent"), "{listing}");
    // On a cgroup2-only host the clone is born in place: no wait is needed.
    let p = plan_on(&bytes, Options::default(), host_on(v2_layout())).expect("plan");
    let listing = p.to_string();
    assert!(!listing.contains("wait for the parent"), "{listing}");
    assert!(listing.contains("unshare CLONE_NEWCGROUP"), "{listing}");
    assert!(listing.contains("cloned into #0"), "{listing}");
}

#[test]
fn systemd_cgroups_path_maps_to_the_slice_tree() {
    let bytes = variant(&[("/linux/cgroupsPath", json!("machine-web.slice:ferrun:abc"))]);
    let p = plan_on(
        &bytes,
        Options {
            systemd_cgroup: true,
            ..Options::default()
        },
        host_on(v2_layout()),
    )
    .expect("plan");
    assert!(
        p.to_string()
            .contains("cgroup path /machine.slice/machine-web.slice/ferrun-abc.scope"),
        "{p}"
    );
}

#[test]
fn systemd_driver_asks_for_a_scope_after_clone() {
    let systemd = Options {
        systemd_cgroup: true,
        ..Options::default()
    };
    let mut v: Value = serde_json::from_slice(
        &std::fs::read(data("config/podman-run-tty-limits.json")).expect("read"),
    )
    .expect("json");
    v["linux"]["cgroupsPath"] = json!("machine.slice:libpod:abc");
    let bytes = serde_json::to_vec(&v).expect("encode");
    let p = plan_on(&bytes, systemd, host_on(v2_layout())).expect("plan");
    let listing = p.to_string();
    // Not born in the cgroup (systemd makes it once the pid exists): placed, limited, released.
    assert!(!listing.contains("cloned into"), "{listing}");
    let after = listing.find("parent, after clone:").expect(&listing);
    let scope = listing.find("StartTransientUnit").expect(&listing);
    let release = listing
        .find("release the container process")
        .expect(&listing);
    let wait = listing.find("wait for the parent").expect(&listing);
    assert!(
        after < scope && scope < release && release < wait,
        "{listing}"
    );
    settings().bind(|| {
        insta::assert_snapshot!("cgroups-v2-systemd-podman-run-tty-limits", cgroup_lines(&p))
    });
    // systemd delegates one cgroup2 tree: on v1 or hybrid hosts the driver is refused by name.
    let e = plan_on(&bytes, systemd, host_on(hybrid_layout())).expect_err("hybrid");
    assert!(e.to_string().contains("linux.cgroupsPath"), "{e}");
    assert!(e.to_string().contains("cgroup v1"), "{e}");
}

/// Applies `(JSON pointer, new value)` edits to a copy of runc's default spec; `Value::Null`
/// removes the field.
fn variant(edits: &[(&str, Value)]) -> Vec<u8> {
    variant_of(
        &std::fs::read(data("config/runc-spec.json")).expect("read"),
        edits,
    )
}

/// `base` with JSON-pointer edits applied (a null value removes the key).
fn variant_of(base: &[u8], edits: &[(&str, Value)]) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(base).expect("json");
    for (ptr, new) in edits {
        let (parent, key) = ptr.rsplit_once('/').expect("pointer");
        let target = v
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("no {parent}"));
        match (target, new) {
            (Value::Object(m), Value::Null) => {
                m.remove(key);
            }
            (Value::Object(m), new) => {
                m.insert(key.to_string(), new.clone());
            }
            (Value::Array(a), new) => {
                let i: usize = key.parse().expect("index");
                if i < a.len() {
                    a[i] = new.clone();
                } else {
                    a.push(new.clone());
                }
            }
            _ => panic!("cannot edit {ptr}"),
        }
    }
    serde_json::to_vec(&v).expect("encode")
}

#[test]
fn broken_variants_name_the_field() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "unparsable-json",
            b"{\"ociVersion\": \"1.0.2\",".to_vec(),
            "",
        ),
        (
            "future-oci-version",
            variant(&[("/ociVersion", json!("2.0.0"))]),
            "ociVersion",
        ),
        ("missing-root", variant(&[("/root", Value::Null)]), "root"),
        (
            "missing-process",
            variant(&[("/process", Value::Null)]),
            "process",
        ),
        (
            "relative-mount-destination",
            variant(&[("/mounts/0/destination", json!("proc"))]),
            "mounts[0].destination",
        ),
        (
            "mount-on-root",
            variant(&[("/mounts/1/destination", json!("/tmp/.."))]),
            "mounts[1].destination",
        ),
        (
            "bind-without-source",
            variant(&[(
                "/mounts/7",
                json!({"destination": "/data", "options": ["rbind"]}),
            )]),
            "mounts[7].source",
        ),
        (
            "mount-without-type",
            variant(&[("/mounts/7", json!({"destination": "/data", "source": "x"}))]),
            "mounts[7].type",
        ),
        (
            "idmap-mount",
            variant(&[(
                "/mounts/7",
                json!({"destination": "/d", "source": "/d", "options": ["bind", "idmap"]}),
            )]),
            "mounts[7]",
        ),
        (
            "unknown-capability",
            variant(&[("/process/capabilities/bounding/1", json!("CAP_FOO"))]),
            "process.capabilities.bounding[1]",
        ),
        (
            "relative-cwd",
            variant(&[("/process/cwd", json!("home"))]),
            "process.cwd",
        ),
        (
            "empty-args",
            variant(&[("/process/args", json!([]))]),
            "process.args",
        ),
        (
            "nul-in-arg",
            variant(&[("/process/args", json!(["sh", "a\u{0}b"]))]),
            "process.args[1]",
        ),
        (
            "env-without-equals",
            variant(&[("/process/env/1", json!("TERM"))]),
            "process.env[1]",
        ),
        (
            "unknown-namespace",
            variant(&[("/linux/namespaces/0/type", json!("foo"))]),
            "linux.namespaces[0].type",
        ),
        (
            "duplicate-namespace",
            variant(&[("/linux/namespaces/5", json!({"type": "pid"}))]),
            "linux.namespaces[5]",
        ),
        (
            "relative-namespace-path",
            variant(&[("/linux/namespaces/1/path", json!("netns"))]),
            "linux.namespaces[1].path",
        ),
        (
            "no-mount-namespace",
            variant(&[("/linux/namespaces/4", json!({"type": "cgroup"}))]),
            "linux.namespaces",
        ),
        (
            "sysctl-without-namespace",
            variant(&[
                ("/linux/namespaces/1", json!({"type": "cgroup"})),
                ("/linux/sysctl", json!({"net.ipv4.ip_forward": "1"})),
            ]),
            "linux.sysctl.\"net.ipv4.ip_forward\"",
        ),
        (
            "sysctl-not-namespaced",
            variant(&[("/linux/sysctl", json!({"vm.swappiness": "10"}))]),
            "linux.sysctl.\"vm.swappiness\"",
        ),
        (
            "sysctl-traversal",
            variant(&[("/linux/sysctl", json!({"net/../../vm/x": "1"}))]),
            "linux.sysctl.\"net/../../vm/x\"",
        ),
        (
            "unknown-rlimit",
            variant(&[("/process/rlimits/0/type", json!("RLIMIT_FOO"))]),
            "process.rlimits[0].type",
        ),
        (
            "rlimit-soft-above-hard",
            variant(&[("/process/rlimits/0/soft", json!(4096))]),
            "process.rlimits[0]",
        ),
        (
            "duplicate-rlimit",
            variant(&[(
                "/process/rlimits/1",
                json!({"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}),
            )]),
            "process.rlimits[1].type",
        ),
        (
            "hostname-without-uts",
            variant(&[("/linux/namespaces/3", json!({"type": "cgroup"}))]),
            "hostname",
        ),
        (
            "maps-without-user-namespace",
            variant(&[(
                "/linux/uidMappings",
                json!([{"containerID": 0, "hostID": 1000, "size": 1}]),
            )]),
            "linux.uidMappings",
        ),
        (
            "zero-size-id-map",
            variant(&[
                ("/linux/namespaces/5", json!({"type": "user"})),
                (
                    "/linux/gidMappings",
                    json!([{"containerID": 0, "hostID": 0, "size": 0}]),
                ),
            ]),
            "linux.gidMappings[0].size",
        ),
        (
            "oom-score-out-of-range",
            variant(&[("/process/oomScoreAdj", json!(2000))]),
            "process.oomScoreAdj",
        ),
        (
            "bad-rootfs-propagation",
            variant(&[("/linux/rootfsPropagation", json!("sideways"))]),
            "linux.rootfsPropagation",
        ),
        (
            "relative-masked-path",
            variant(&[("/linux/maskedPaths/0", json!("proc/kcore"))]),
            "linux.maskedPaths[0]",
        ),
        (
            "cgroup-path-climbs",
            variant(&[("/linux/cgroupsPath", json!("/ferrun-test/../escape"))]),
            "linux.cgroupsPath",
        ),
        (
            "negative-memory-limit",
            variant(&[("/linux/resources/memory", json!({"limit": -5}))]),
            "linux.resources.memory.limit",
        ),
        (
            "unknown-device-rule-type",
            variant(&[(
                "/linux/resources/devices/1",
                json!({"allow": true, "type": "x", "access": "r"}),
            )]),
            "linux.resources.devices[1].type",
        ),
        (
            "bad-device-access",
            variant(&[(
                "/linux/resources/devices/1",
                json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rx"}),
            )]),
            "linux.resources.devices[1].access",
        ),
        (
            "quota-without-period",
            variant(&[("/linux/resources/cpu", json!({"quota": 20000}))]),
            "linux.resources.cpu.quota",
        ),
        (
            "negative-cpu-shares",
            variant(&[("/linux/resources/cpu", json!({"shares": -2}))]),
            "linux.resources.cpu.shares",
        ),
        (
            "bad-cpuset",
            variant(&[("/linux/resources/cpu", json!({"cpus": "0-a"}))]),
            "linux.resources.cpu.cpus",
        ),
        (
            "swappiness-above-100",
            variant(&[("/linux/resources/memory", json!({"swappiness": 200}))]),
            "linux.resources.memory.swappiness",
        ),
        (
            "swap-below-memory",
            variant(&[(
                "/linux/resources/memory",
                json!({"limit": 1048576, "swap": 4096}),
            )]),
            "linux.resources.memory.swap",
        ),
        (
            "bad-hugepage-size",
            variant(&[(
                "/linux/resources/hugepageLimits",
                json!([{"pageSize": "2 megs", "limit": 1}]),
            )]),
            "linux.resources.hugepageLimits[0].pageSize",
        ),
        (
            "hook-relative-path",
            variant(&[("/hooks", json!({"createRuntime": [{"path": "bin/hook"}]}))]),
            "hooks.createRuntime[0].path",
        ),
        (
            "hook-zero-timeout",
            variant(&[(
                "/hooks",
                json!({"poststop": [{"path": "/bin/true", "timeout": 0}]}),
            )]),
            "hooks.poststop[0].timeout",
        ),
        (
            "device-type-all",
            variant(&[("/linux/devices", json!([{"path": "/dev/x", "type": "a"}]))]),
            "linux.devices[0].type",
        ),
        (
            "relative-device-path",
            variant(&[(
                "/linux/devices",
                json!([{"path": "dev/x", "type": "c", "major": 1, "minor": 3}]),
            )]),
            "linux.devices[0].path",
        ),
        (
            "intel-rdt",
            variant(&[("/linux/intelRdt", json!({"closID": "guaranteed_group"}))]),
            "linux.intelRdt",
        ),
        (
            "time-offsets-of-a-joined-time-namespace",
            variant(&[
                (
                    "/linux/namespaces/9",
                    json!({"type": "time", "path": "/proc/1/ns/time"}),
                ),
                ("/linux/timeOffsets", json!({"boottime": {"secs": 5}})),
            ]),
            "linux.timeOffsets",
        ),
        (
            "scheduler-deadline-runtime-over-deadline",
            variant(&[(
                "/process/scheduler",
                json!({"policy": "SCHED_DEADLINE", "runtime": 20000, "deadline": 10000}),
            )]),
            "process.scheduler.runtime",
        ),
        (
            "memory-policy-local-with-nodes",
            variant(&[(
                "/linux/memoryPolicy",
                json!({"mode": "MPOL_LOCAL", "nodes": "1"}),
            )]),
            "linux.memoryPolicy.nodes",
        ),
    ];
    assert!(cases.len() >= 15);
    for (name, config, field) in cases {
        let e = match plan_bytes(&config, Options::default()) {
            Ok(_) => panic!("{name}: planned a broken config"),
            Err(e) => e,
        };
        assert_eq!(e.field, field, "{name}: {e}");
        assert!(!e.problem.is_empty(), "{name}");
        settings().bind(|| insta::assert_snapshot!(format!("error-{name}"), e.to_string()));
    }
}

#[test]
fn seccomp_disassembly_of_the_podman_profile() {
    let config = std::fs::read(data("config/podman-run.json")).expect("read");
    let profile = ferrun_planner::seccomp::load_profile(&config).expect("profile");
    let compiled = ferrun_planner::seccomp::compile(&profile, "x86_64").expect("compile");
    let dump = ferrun_planner::seccomp::dump(&compiled);
    assert!(
        dump.contains("# x86_64") && dump.contains("# x86\n"),
        "both ABI sections are named"
    );
    settings().bind(|| insta::assert_snapshot!("seccomp-dump-podman-run", dump));
}

#[test]
fn broken_seccomp_profiles_name_the_rule() {
    let base = |rules: Value| json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": rules});
    let cases: Vec<(&str, Value)> = vec![
        (
            "empty-names",
            base(json!([{"names": [], "action": "SCMP_ACT_ALLOW"}])),
        ),
        (
            "unknown-action",
            base(json!([{"names": ["read"], "action": "SCMP_ACT_MAYBE"}])),
        ),
        (
            "unknown-default-action",
            json!({"defaultAction": "SCMP_ACT_NOPE"}),
        ),
        (
            "unknown-operator",
            base(
                json!([{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]),
            ),
        ),
        (
            "arg-index-too-high",
            base(
                json!([{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]),
            ),
        ),
        (
            "errno-too-large",
            base(json!([{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}])),
        ),
        (
            "negative-errno",
            json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}),
        ),
        (
            "unknown-arch",
            json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_Z80"]}),
        ),
        (
            "unknown-flag",
            json!({"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_FAST"]}),
        ),
        (
            "notify-without-listener-path",
            base(json!([{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}])),
        ),
    ];
    for (name, profile) in cases {
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(data("config/runc-spec.json")).expect("read"))
                .expect("json");
        config["linux"]["seccomp"] = profile;
        let bytes = serde_json::to_vec(&config).expect("encode");
        let e = plan_bytes(&bytes, Options::default())
            .err()
            .unwrap_or_else(|| panic!("{name}: planned"));
        assert!(e.field.starts_with("linux.seccomp"), "{name}: {e}");
        settings().bind(|| insta::assert_snapshot!(format!("seccomp-error-{name}"), e.to_string()));
    }
}

#[test]
fn unknown_syscalls_are_skipped_with_a_warning_unless_the_annotation_refuses_them() {
    let profile = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read", "no_such_call"], "action": "SCMP_ACT_ALLOW"}]});
    let bytes = variant(&[("/linux/seccomp", profile.clone())]);
    let p = plan_bytes(&bytes, Options::default()).expect("a newer profile still plans");
    assert!(
        p.warnings.contains(
            &"linux.seccomp.syscalls[0].names[1]: unknown syscall \"no_such_call\" skipped"
                .to_string()
        ),
        "{:?}",
        p.warnings
    );
    let known_only = variant(&[(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}),
    )]);
    let filter = |p: &ferrun_plans::Plan| {
        p.steps
            .iter()
            .find_map(|s| match s {
                ferrun_plans::Step::Seccomp { hash, .. } => Some(hash.clone()),
                _ => None,
            })
            .expect("filter")
    };
    let q = plan_bytes(&known_only, Options::default()).expect("plan");
    assert_eq!(
        filter(&p),
        filter(&q),
        "the unknown name is left out, nothing else"
    );

    let refused = variant_of(
        &bytes,
        &[(
            "/annotations",
            json!({"run.oci.seccomp_fail_unknown_syscall": "1"}),
        )],
    );
    let e = plan_bytes(&refused, Options::default()).expect_err("refused");
    assert_eq!(e.field, "linux.seccomp.syscalls[0].names[1]");
    settings().bind(|| insta::assert_snapshot!("seccomp-error-unknown-syscall", e.to_string()));
}

/// `plan_exec` of `process` into a container of `config` on the hybrid layout.
fn exec_plan_on_hybrid(
    config: &[u8],
    process: &[u8],
) -> Result<ferrun_plans::Plan, ferrun_planner::PlanError> {
    let host = host_on(hybrid_layout());
    let input = Input {
        config,
        bundle: Path::new("/bundle"),
        host: &host,
        options: Options::default(),
        seccomp_cache: None,
    };
    ferrun_planner::plan_exec(&input, process)
}

#[test]
fn exec_plan_of_the_podman_fixture() {
    let bytes = std::fs::read(data("config/podman-run.json")).expect("read");
    let host = host_on(hybrid_layout());
    let input = Input {
        config: &bytes,
        bundle: Path::new("/bundle"),
        host: &host,
        options: Options::default(),
        seccomp_cache: None,
    };
    let process = json!({
        "args": ["sh", "-c", "id"], "cwd": "/", "env": ["PATH=/bin"],
        "user": {"uid": 1000, "gid": 1000}, "noNewPrivileges": true
    });
    let p = ferrun_planner::plan_exec(&input, process.to_string().as_bytes()).expect("plan");
    let listing = redacted(&p.to_string());
    // Namespaces through the container's pidfd, cgroups joined, no mount or pivot of its own.
    assert!(listing.contains("setns container pidfd"), "{listing}");
    assert!(
        !listing.contains("pivot_root") && !listing.contains("mount "),
        "{listing}"
    );
    settings().bind(|| insta::assert_snapshot!("exec-podman-run", listing));
    let bad = ferrun_planner::plan_exec(
        &input,
        br#"{"args": [], "cwd": "/", "user": {"uid": 0, "gid": 0}}"#,
    );
    assert_eq!(bad.map_err(|e| e.field), Err("process.args".to_string()));
}

#[test]
fn lsm_profiles_and_labels_are_steps_before_privileges_go() {
    let mut host = host();
    host.apparmor = true;
    host.selinux = true;
    let bytes = variant(&[
        ("/process/apparmorProfile", json!("ferrun-test")),
        (
            "/process/selinuxLabel",
            json!("system_u:system_r:container_t:s0:c1,c2"),
        ),
        (
            "/linux/mountLabel",
            json!("system_u:object_r:container_file_t:s0:c1,c2"),
        ),
        ("/process/noNewPrivileges", json!(true)),
    ]);
    let p = plan_on(&bytes, Options::default(), host).expect("plan");
    let listing = p.to_string();
    let procfs = listing.find("open a procfs of our own").expect(&listing);
    let aa = listing
        .find("AppArmor: write \"exec ferrun-test\" to thread-self/attr/apparmor/exec")
        .expect(&listing);
    let se = listing
        .find("SELinux: write \"system_u:system_r:container_t:s0:c1,c2\" to thread-self/attr/exec")
        .expect(&listing);
    let uid = listing.find("setresuid").expect(&listing);
    let nnp = listing.find("PR_SET_NO_NEW_PRIVS").expect(&listing);
    assert!(procfs < aa && aa < se && se < uid && uid < nnp, "{listing}");
    // The mount label rides on the filesystems made for the container, not on binds or proc.
    assert!(
        listing.contains("type tmpfs flags MS_NOSUID|MS_STRICTATIME data \"mode=755,size=65536k,context=\\\"system_u:object_r:container_file_t:s0:c1,c2\\\"\""),
        "{listing}"
    );
    assert!(listing.contains("type devpts"), "{listing}");
    assert!(
        !listing.contains("type proc flags 0 data \"context"),
        "{listing}"
    );
}

/// An unprivileged caller (uid 1001) on this machine's kind.
fn rootless_host() -> HostFacts {
    HostFacts {
        rootless: true,
        uid: 1001,
        gid: 1001,
        ..host_on(hybrid_layout())
    }
}

#[test]
fn rootless_listings() {
    // runc's rootless spec: a map of the caller's own ids, written by ferrun itself (setgroups
    // denied first, so no setgroups step), the child dumpable until they are written, and a
    // cgroup that is skipped when it is not delegated.
    // The fixture was made as root: its maps name uid 0, here they name the caller's.
    let bytes = variant_of(
        &std::fs::read(data("config/runc-spec-rootless.json")).expect("read"),
        &[
            (
                "/linux/uidMappings",
                json!([{"containerID": 0, "hostID": 1001, "size": 1}]),
            ),
            (
                "/linux/gidMappings",
                json!([{"containerID": 0, "hostID": 1001, "size": 1}]),
            ),
        ],
    );
    let own = plan_on(&bytes, Options::default(), rootless_host()).expect("plan");
    let listing = own.to_string();
    let at = |needle: &str| {
        listing
            .find(needle)
            .unwrap_or_else(|| panic!("{needle}: {listing}"))
    };
    assert!(at("write /proc/<pid>/setgroups \"deny\"") < at("write /proc/<pid>/gid_map"));
    assert!(at("wait for the parent (id maps)") < at("prctl PR_SET_DUMPABLE 0"));
    assert!(!listing.contains("setgroups []"), "{listing}");
    assert!(
        listing.contains("rootless: skipped if not delegated"),
        "{listing}"
    );
    // Wider maps go through newuidmap/newgidmap, and setgroups stays allowed.
    let wide = variant_of(
        &bytes,
        &[
            (
                "/linux/uidMappings",
                json!([{"containerID": 0, "hostID": 1001, "size": 1},
                       {"containerID": 1, "hostID": 100000, "size": 65536}]),
            ),
            (
                "/linux/gidMappings",
                json!([{"containerID": 0, "hostID": 1001, "size": 1},
                       {"containerID": 1, "hostID": 100000, "size": 65536}]),
            ),
            ("/process/user/additionalGids", json!([5])),
        ],
    );
    let wide = plan_on(&wide, Options::default(), rootless_host()).expect("plan");
    let wide_listing = wide.to_string();
    assert!(
        wide_listing.contains("newuidmap <pid> 0 1001 1 1 100000 65536"),
        "{wide_listing}"
    );
    assert!(wide_listing.contains("newgidmap <pid>"), "{wide_listing}");
    assert!(
        !wide_listing.contains("setgroups \"deny\""),
        "{wide_listing}"
    );
    assert!(wide_listing.contains("setgroups [5]"), "{wide_listing}");
    // Groups cannot be set once setgroups is denied: refused, naming the field.
    let groups = variant_of(&bytes, &[("/process/user/additionalGids", json!([5]))]);
    let e = plan_on(&groups, Options::default(), rootless_host()).expect_err("refused");
    assert_eq!(e.field, "process.user.additionalGids", "{e}");
    // Resources make the cgroup required: no longer optional.
    let limited = variant_of(
        &bytes,
        &[("/linux/resources", json!({"pids": {"limit": 10}}))],
    );
    let limited = plan_on(&limited, Options::default(), rootless_host()).expect("plan");
    assert!(!limited.to_string().contains("skipped if not delegated"));
    // podman's rootless config under its own user namespace: no user namespace in the config,
    // yet no mknod (devices are bound) and sysfs stays a mount (podman's netns is its own).
    let podman = std::fs::read(data("config/podman-run.json")).expect("read");
    let podman = plan_on(&podman, Options::default(), rootless_host()).expect("plan");
    let podman_listing = podman.to_string();
    assert!(!podman_listing.contains("mknod"), "{podman_listing}");
    assert!(podman_listing.contains("bind device /dev/null on /dev/null attrs NOSUID|NOEXEC"));
    assert!(podman_listing.contains("type sysfs"), "{podman_listing}");
    // --systemd-cgroup rootless: an empty slice is the user manager's user.slice (runc's).
    let scoped = variant_of(&bytes, &[("/linux/cgroupsPath", json!(":ferrun:r1"))]);
    let on_v2 = HostFacts {
        cgroups: v2_layout(),
        ..rootless_host()
    };
    let scoped = plan_on(
        &scoped,
        Options {
            systemd_cgroup: true,
            ..Options::default()
        },
        on_v2,
    )
    .expect("plan");
    assert!(
        scoped
            .to_string()
            .contains("systemd scope ferrun-r1.scope in user.slice"),
        "{scoped}"
    );
    settings().bind(|| {
        insta::assert_snapshot!("plan-runc-spec-rootless-as-user", redacted(&listing));
        insta::assert_snapshot!("plan-podman-run-rootless", redacted(&podman_listing));
    });
}

#[test]
fn sysfs_in_a_user_namespace_without_its_own_network_namespace_is_a_readonly_bind() {
    let bytes = std::fs::read(data("config/runc-spec.json")).expect("read");
    let userns = variant_of(
        &bytes,
        &[
            (
                "/linux/namespaces",
                json!([{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "user"}]),
            ),
            (
                "/linux/uidMappings",
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
            ),
            (
                "/linux/gidMappings",
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
            ),
        ],
    );
    let listing = plan_bytes(&userns, Options::default())
        .expect("plan")
        .to_string();
    assert!(
        listing.contains("bind recursively /sys on /sys set RDONLY|NOSUID|NODEV|NOEXEC"),
        "{listing}"
    );
    assert!(!listing.contains("type sysfs"), "{listing}");
    // With a network namespace of its own, sysfs is mounted.
    let own_net = variant_of(
        &userns,
        &[(
            "/linux/namespaces",
            json!([{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "user"},
                   {"type": "network"}]),
        )],
    );
    let listing = plan_bytes(&own_net, Options::default())
        .expect("plan")
        .to_string();
    assert!(listing.contains("type sysfs"), "{listing}");
}

#[test]
fn process_attributes_time_offsets_and_a_pids_limit_of_zero_are_steps() {
    let bytes = variant(&[
        (
            "/process/scheduler",
            json!({"policy": "SCHED_FIFO", "priority": 10, "flags": ["SCHED_FLAG_RESET_ON_FORK"]}),
        ),
        (
            "/process/ioPriority",
            json!({"class": "IOPRIO_CLASS_BE", "priority": 6}),
        ),
        ("/linux/personality", json!({"domain": "LINUX32"})),
        (
            "/linux/memoryPolicy",
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0-3,7", "flags": ["MPOL_F_STATIC_NODES"]}),
        ),
        ("/linux/namespaces/9", json!({"type": "time"})),
        (
            "/linux/timeOffsets",
            json!({"monotonic": {"secs": -5, "nanosecs": 500}, "boottime": {"secs": 86400}}),
        ),
        ("/linux/resources/pids", json!({"limit": 0})),
        (
            "/linux/netDevices",
            json!({"eth9": {"name": "ctr0"}, "eth8": {}}),
        ),
    ]);
    let p = plan_on(&bytes, Options::default(), host_on(hybrid_layout())).expect("plan");
    let listing = redacted(&p.to_string());
    // Only the fixture's ambient capabilities, which the kernel would refuse, are left out.
    let left_out: Vec<&str> = p.not_planned.iter().map(|n| n.field.as_str()).collect();
    assert_eq!(left_out, ["process.capabilities.ambient"]);
    assert!(
        !ferrun_plans::clone_flag_names(p.clone_flags).contains("NEWTIME"),
        "the parent makes the time namespace: {listing}"
    );
    settings().bind(|| insta::assert_snapshot!("process-attributes", listing));

    let process = json!({
        "args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
        "execCPUAffinity": {"initial": "0", "final": "1-2"},
        "scheduler": {"policy": "SCHED_BATCH", "nice": 3}
    });
    let p = exec_plan_on_hybrid(&bytes, process.to_string().as_bytes()).expect("plan");
    let listing = redacted(&p.to_string());
    assert!(
        listing.contains("SCHED_BATCH"),
        "exec's own scheduler wins: {listing}"
    );
    settings().bind(|| insta::assert_snapshot!("exec-process-attributes", listing));
}

#[test]
fn id_mapped_and_user_namespace_binds_are_opened_by_the_parent() {
    let bytes = variant(&[
        ("/linux/namespaces/9", json!({"type": "user"})),
        (
            "/linux/uidMappings",
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
        ),
        (
            "/linux/gidMappings",
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
        ),
        (
            "/mounts/7",
            json!({"destination": "/d", "source": "/d", "options": ["rbind", "ridmap"]}),
        ),
        (
            "/mounts/8",
            json!({"destination": "/e", "source": "/e", "options": ["bind"],
                   "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                   "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}),
        ),
        (
            "/linux/devices",
            json!([{"path": "/dev/foo", "type": "c", "major": 1, "minor": 3, "uid": 0, "gid": 0}]),
        ),
    ]);
    let p = plan_bytes(&bytes, Options::default()).expect("plan");
    let listing = redacted(&p.to_string());
    assert!(
        listing.contains("bind recursively /d on /d (opened by the parent, recursively id-mapped uid [0 100000 65536] gid [0 100000 65536])"),
        "{listing}"
    );
    assert!(listing.contains("id-mapped uid [0 1000 1]"), "{listing}");
    assert!(
        listing.contains("attach the parent's Char 1:3 mode 0666 owner 100000:100000 on /dev/foo"),
        "{listing}"
    );
    settings().bind(|| insta::assert_snapshot!("user-namespace-parent-mounts", listing));
}
