//! Bad input: a one-line error naming the problem, a non-zero exit, and nothing left behind —
//! no state dir, no mount on the host, no process. One test function, so that this binary's
//! process can be a child subreaper and see every process a failed create might orphan.

mod common;

use common::Bundle;
use serde_json::json;

/// Children of this process that are still around (zombies are reaped here).
fn live_children() -> Vec<i32> {
    loop {
        // SAFETY: reaping any child without blocking.
        let r = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if r <= 0 {
            break;
        }
    }
    let me = std::process::id();
    let mut kids = Vec::new();
    for e in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
            let ppid: u32 = rest
                .split(' ')
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            if ppid == me {
                kids.push(pid);
            }
        }
    }
    kids
}

fn host_mounts() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .count()
}

#[test]
fn bad_input_is_refused_cleanly() {
    // SAFETY: marks this process as a subreaper for orphans of its descendants.
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
        0
    );
    let mounts_before = host_mounts();

    type Edit = Box<dyn Fn(&mut Bundle)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "missing bundle",
            Box::new(|b: &mut Bundle| {
                std::fs::remove_file(b.path().join("config.json")).expect("rm");
            }),
            "read config.json: No such file or directory",
        ),
        (
            "unparsable json",
            Box::new(|b: &mut Bundle| {
                std::fs::write(b.path().join("config.json"), "{\"ociVersion\": ").expect("write");
            }),
            "invalid JSON",
        ),
        (
            "invalid field",
            Box::new(|b: &mut Bundle| {
                b.edit(|c| c["mounts"][0]["destination"] = json!("proc"));
            }),
            "mounts[0].destination: must be absolute",
        ),
        // No LSM runs on this project's machines: a profile or label is refused, never dropped.
        (
            "an AppArmor profile without AppArmor",
            Box::new(|b: &mut Bundle| {
                b.edit(|c| c["process"]["apparmorProfile"] = json!("ferrun-test"));
            }),
            "process.apparmorProfile: \"ferrun-test\" cannot be applied: AppArmor is not enabled on this host",
        ),
        (
            "an SELinux label without SELinux",
            Box::new(|b: &mut Bundle| {
                b.edit(|c| {
                    c["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0")
                });
            }),
            "process.selinuxLabel: \"system_u:system_r:container_t:s0\" cannot be applied: SELinux is not enabled",
        ),
        (
            "an SELinux mount label without SELinux",
            Box::new(|b: &mut Bundle| {
                b.edit(|c| {
                    c["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0")
                });
            }),
            "linux.mountLabel: \"system_u:object_r:container_file_t:s0\" cannot be applied: SELinux is not enabled",
        ),
        (
            "unknown capability",
            Box::new(|b: &mut Bundle| {
                b.edit(|c| c["process"]["capabilities"]["bounding"][0] = json!("CAP_NOPE"));
            }),
            "unknown capability \"CAP_NOPE\"",
        ),
        (
            "rootfs symlink out of the bundle",
            Box::new(|b: &mut Bundle| {
                std::os::unix::fs::symlink("/etc", b.path().join("rootfs")).expect("symlink");
                b.edit(|c| c["root"]["path"] = json!("rootfs"));
            }),
            "outside the bundle",
        ),
        (
            "missing rootfs",
            Box::new(|b: &mut Bundle| {
                b.edit(|c| c["root"]["path"] = json!("no-such-rootfs"));
            }),
            "root.path",
        ),
        (
            "args[0] does not exist",
            Box::new(|b: &mut Bundle| {
                b.edit(|c| c["process"]["args"] = json!(["no-such-program"]));
            }),
            "exec: \"no-such-program\": executable file not found in $PATH",
        ),
        (
            "args[0] path does not exist",
            Box::new(|b: &mut Bundle| {
                b.edit(|c| c["process"]["args"] = json!(["/bin/nope"]));
            }),
            "no such file or directory",
        ),
        (
            "a mount the kernel refuses",
            Box::new(|b: &mut Bundle| {
                b.edit(|c| {
                    c["mounts"]
                        .as_array_mut()
                        .expect("mounts")
                        .push(json!({"destination": "/data", "type": "no-such-fs", "source": "x"}))
                });
            }),
            "type no-such-fs flags 0 data NULL: No such device",
        ),
        (
            "a cwd through a /proc magic link",
            Box::new(|b: &mut Bundle| {
                b.edit(|c| c["process"]["cwd"] = json!("/proc/self/cwd"));
            }),
            "chdir /proc/self/cwd: Too many levels of symbolic links",
        ),
        (
            "a sysctl in the host's own network namespace",
            Box::new(|b: &mut Bundle| {
                b.edit(|c| {
                    c["linux"]["namespaces"][1]["path"] = json!("/proc/self/ns/net");
                    c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
                });
            }),
            "linux.sysctl: net.ipv4.ip_forward would change the host",
        ),
        (
            "a relative root.path out of the bundle",
            Box::new(|b: &mut Bundle| {
                // A real rootfs beside the bundle, which a create would otherwise use.
                let name = format!(
                    "{}-outside",
                    b.path().file_name().and_then(|n| n.to_str()).expect("name")
                );
                let beside = b.path().with_file_name(&name);
                if !beside.exists() {
                    std::os::unix::fs::symlink(common::rootfs(), &beside).expect("symlink");
                }
                b.edit(|c| c["root"]["path"] = json!(format!("../{name}")));
            }),
            "leads to",
        ),
        (
            "a namespace path that is a FIFO",
            Box::new(|b: &mut Bundle| {
                let fifo = b.path().join("ns-fifo");
                nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
                    .expect("mkfifo");
                b.edit(|c| c["linux"]["namespaces"][1]["path"] = json!(fifo));
            }),
            "ns-fifo: not a namespace file",
        ),
        (
            "a namespace path that is a plain file",
            Box::new(|b: &mut Bundle| {
                let file = b.path().join("config.json");
                b.edit(|c| c["linux"]["namespaces"][1]["path"] = json!(file));
            }),
            "config.json: not a namespace file",
        ),
        (
            "a namespace path of another kind",
            Box::new(|b: &mut Bundle| {
                b.edit(|c| c["linux"]["namespaces"][1]["path"] = json!("/proc/self/ns/uts"));
            }),
            "network namespace /proc/self/ns/uts: a namespace of another kind",
        ),
        (
            "a namespace path that does not exist",
            Box::new(|b: &mut Bundle| {
                b.edit(|c| c["linux"]["namespaces"][1]["path"] = json!("/run/netns/nope"));
            }),
            "network namespace /run/netns/nope: No such file or directory",
        ),
    ];
    for (name, edit, want) in cases {
        let mut b = Bundle::new(&["true"]);
        edit(&mut b);
        let bundle = b.path().to_str().expect("utf-8").to_string();
        for cmd in ["create", "run"] {
            let out = b.ferrun(&[cmd, "--bundle", &bundle, "bad"]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{name} ({cmd}): {err}");
            assert!(
                err.contains(want),
                "{name} ({cmd}): want {want:?} in {err:?}"
            );
            assert_eq!(
                err.trim_end().lines().count(),
                1,
                "{name}: one line: {err:?}"
            );
            assert!(
                b.leftover_state().is_empty(),
                "{name} ({cmd}): state left: {:?}",
                b.leftover_state()
            );
            assert!(
                common::wait_until(|| live_children().is_empty()),
                "{name} ({cmd}): processes left: {:?}",
                live_children()
            );
            assert_eq!(
                host_mounts(),
                mounts_before,
                "{name} ({cmd}): a mount was left on the host"
            );
        }
    }

    // The same with --log-format json: exactly one JSON object in the log file, with the message.
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["process"]["cwd"] = json!("relative"));
    let log = b.path().join("log.json");
    let bundle = b.path().to_str().expect("utf-8").to_string();
    let out = b.ferrun(&[
        "--log",
        log.to_str().expect("utf-8"),
        "--log-format",
        "json",
        "create",
        "--bundle",
        &bundle,
        "bad",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&log).expect("log file");
    assert_eq!(text.lines().count(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("one JSON object");
    assert_eq!(v["level"], "error");
    assert!(
        v["msg"].as_str().is_some_and(|m| m.contains("process.cwd")),
        "{v}"
    );
    assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{v}");
    assert!(b.leftover_state().is_empty());

    // Invalid container ids are refused before anything is made.
    for id in ["../escape", "a/b", "..", "bad\nid"] {
        let out = b.ferrun(&["create", "--bundle", &bundle, id]);
        assert_eq!(out.status.code(), Some(1), "{id:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("invalid container id"),
            "{id:?}"
        );
    }
    assert!(!b.path().join("escape").exists());
}
