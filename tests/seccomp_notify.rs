//! Seccomp user notification: the listener fd reaches the agent at `listenerPath` with the
//! container process state, and a profile that notifies the very calls a runtime uses to hand
//! the fd over (sendmsg, sendto, write, futex) still starts: no deadlock.

mod common;

use common::Bundle;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;

/// What the agent saw.
struct Seen {
    state: Value,
    calls: BTreeMap<String, usize>,
}

fn syscall_name(nr: i32) -> String {
    syscalls::x86_64::Sysno::new(nr as usize)
        .map_or_else(|| nr.to_string(), |s| s.name().to_string())
}

/// The agent: takes the listener fd, answers `mkdir`/`mkdirat` with EOPNOTSUPP and lets every
/// other notified call through, until the container is gone.
fn agent(listener: UnixListener) -> Seen {
    let (message, fd) = common::accept_fd(&listener);
    let state: Value = serde_json::from_slice(&message).expect("state JSON");
    let mut calls = BTreeMap::new();
    loop {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 10_000) } <= 0 || p.revents & libc::POLLHUP != 0 {
            break;
        }
        // SAFETY: zeroed structs are valid for the notify ioctls.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) } < 0 {
            // ENOENT: the caller went away while we waited; not fatal.
            continue;
        }
        let name = syscall_name(req.data.nr);
        *calls.entry(name.clone()).or_insert(0) += 1;
        let mut resp: libc::seccomp_notif_resp = unsafe { std::mem::zeroed() };
        resp.id = req.id;
        if name == "mkdir" || name == "mkdirat" {
            resp.error = -libc::EOPNOTSUPP;
        } else {
            resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32;
        }
        // SAFETY: a response for the request we just read.
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    }
    Seen { state, calls }
}

fn notify_profile(socket: &std::path::Path) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": socket,
        "listenerMetadata": "agent-metadata",
        "syscalls": [{
            "names": ["mkdir", "mkdirat", "sendmsg", "sendto", "write", "futex"],
            "action": "SCMP_ACT_NOTIFY"
        }]
    })
}

#[test]
fn listener_reaches_the_agent_and_notified_calls_do_not_deadlock() {
    for nnp in [true, false] {
        for via_create in [true, false] {
            let mut b = Bundle::new(&["sh", "-c", "mkdir /dev/shm/x 2>&1; echo done"]);
            let socket = b.path().join("agent.sock");
            let profile = notify_profile(&socket);
            b.edit(|c| {
                c["linux"]["seccomp"] = profile;
                c["process"]["noNewPrivileges"] = json!(nnp);
            });
            let listener = UnixListener::bind(&socket).expect("bind");
            let agent = std::thread::spawn(move || agent(listener));
            let bundle = b.path().to_str().expect("utf-8").to_string();
            let out_file = b.path().join("out");
            let (code, out) = if via_create {
                let o = b.ferrun(&["create", "--bundle", &bundle, "notify"]);
                assert!(
                    o.status.success(),
                    "nnp={nnp}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                // The agent holds the listener now: the created container keeps no copy of it
                // that a process exec'd into it could take and answer itself.
                let st: Value =
                    serde_json::from_slice(&b.ferrun(&["state", "notify"]).stdout).expect("state");
                let pid = st["pid"].as_i64().expect("pid");
                let held: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
                    .expect("fds")
                    .flatten()
                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                    .map(|t| t.to_string_lossy().into_owned())
                    .collect();
                assert!(
                    !held.iter().any(|t| t.contains("seccomp")),
                    "nnp={nnp}: {held:?}"
                );
                assert!(b.ferrun(&["start", "notify"]).status.success());
                // The container writes to create's stdout, a file here: wait for it to finish.
                assert!(common::wait_until(|| String::from_utf8_lossy(
                    &b.ferrun(&["state", "notify"]).stdout
                )
                .contains("stopped")));
                let _ = &out_file;
                let o = b.ferrun(&["delete", "notify"]);
                assert!(o.status.success());
                (0, String::new())
            } else {
                let (code, out, err) = b.run("notify");
                assert_eq!(code, 0, "nnp={nnp}: {err}");
                (code, out)
            };
            let seen = agent.join().expect("agent");
            assert_eq!(code, 0);
            assert_eq!(seen.state["fds"], json!(["seccompFd"]));
            assert_eq!(seen.state["metadata"], "agent-metadata");
            assert_eq!(seen.state["state"]["id"], "notify");
            assert!(seen.state["pid"].as_i64().is_some_and(|p| p > 0));
            assert!(
                seen.calls
                    .get("mkdir")
                    .or(seen.calls.get("mkdirat"))
                    .is_some(),
                "nnp={nnp}: {:?}",
                seen.calls
            );
            assert!(
                seen.calls.contains_key("write"),
                "the shell's echo was notified: {:?}",
                seen.calls
            );
            if !via_create {
                assert!(
                    out.contains("Operation not supported"),
                    "the agent's errno: {out}"
                );
                assert!(out.ends_with("done\n"), "{out}");
            }
            // The filter goes on before the container reports ready: that report (sendto) was
            // notified too, and answered, while create waited for it.
            assert!(
                seen.calls.contains_key("sendto"),
                "nnp={nnp}: {:?}",
                seen.calls
            );
        }
    }
}

#[test]
fn notify_needs_a_listener_path() {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]});
    });
    let (code, _, err) = b.run("nolistener");
    assert_eq!(code, 1);
    assert!(err.contains("linux.seccomp.listenerPath"), "{err}");

    // An agent that is not there: create fails cleanly, leaving nothing.
    let socket = b.path().join("nobody.sock");
    let profile = notify_profile(&socket);
    b.edit(|c| c["linux"]["seccomp"] = profile);
    let (code, _, err) = b.run("noagent");
    assert_eq!(code, 1);
    assert!(err.contains("connect to"), "{err}");
    assert!(b.leftover_state().is_empty());
}

#[test]
fn tsync_with_a_listener_still_starts() {
    let mut b = Bundle::new(&["sh", "-c", "mkdir /dev/shm/x 2>&1; echo done"]);
    let socket = b.path().join("agent.sock");
    let mut profile = notify_profile(&socket);
    profile["flags"] = json!(["SECCOMP_FILTER_FLAG_TSYNC"]);
    b.edit(|c| c["linux"]["seccomp"] = profile);
    let listener = UnixListener::bind(&socket).expect("bind");
    let agent = std::thread::spawn(move || agent(listener));
    let (code, out, err) = b.run("tsync");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Operation not supported"), "{out}");
    assert!(agent.join().expect("agent").calls.contains_key("write"));
}

#[test]
fn a_listener_path_without_a_notify_rule_is_ignored() {
    // The spec: "If the SCMP_ACT_NOTIFY action is not used this value is ignored" (runc ignores
    // it too; crun connects anyway). The container runs and nothing connects.
    let mut b = Bundle::new(&["sh", "-c", "mkdir /tmp/x 2>&1; true"]);
    let sock = b.path().join("agent.sock");
    let listener = UnixListener::bind(&sock).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    b.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        })
    });
    let (code, out, err) = b.run("no-notify");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Operation not permitted"),
        "the filter applies: {out}"
    );
    assert_eq!(
        listener.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "no connection reached the listener path"
    );
}
