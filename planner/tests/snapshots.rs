//! Snapshots of the planner: the listing of every fixture config, and the error of every broken
//! variant. Host facts and the bundle path are fixed so that the snapshots hold nothing of the
//! machine; the input hash (which includes the ferrun version) is redacted.

use ferrun_planner::{HostFacts, Input, Options, plan};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn host() -> HostFacts {
    HostFacts {
        arch: "x86_64".into(),
        last_cap: 40,
        uid: 0,
        gid: 0,
    }
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
    let host = host();
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
    let p = plan_bytes(&bytes, Options { no_pivot: true }).expect("plan");
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
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
}

/// Applies `(JSON pointer, new value)` edits to a copy of runc's default spec; `Value::Null`
/// removes the field.
fn variant(edits: &[(&str, Value)]) -> Vec<u8> {
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(data("config/runc-spec.json")).expect("read"))
            .expect("json");
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
            "mounts[7].options[1]",
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
            "unknown-syscall",
            base(json!([{"names": ["read", "no_such_call"], "action": "SCMP_ACT_ALLOW"}])),
        ),
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
