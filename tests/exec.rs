//! `ferrun exec` on real containers: the new process is in the container's namespaces and
//! cgroups, gets the user, environment, capabilities and seccomp filter it is given, returns its
//! exit code, and detaches with a pid file or a pty on a console socket.

mod common;

use common::ok;

use common::{Bundle, wait_until};
use serde_json::{Value, json};
use std::os::fd::AsRawFd;

/// A running container (`sleep 60`); returns its host pid.
fn running(b: &mut Bundle, id: &str) -> i32 {
    b.edit(|c| c["process"]["args"] = json!(["sleep", "60"]));
    b.run_detached(id, &[])
}

fn ns(pid: i32, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .expect("ns link")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn exec_enters_the_container_and_returns_the_exit_code() {
    let mut b = Bundle::new(&[]);
    b.edit(|c| c["hostname"] = json!("exec-host"));
    let init = running(&mut b, "e");
    let o = b.ferrun(&[
        "exec",
        "e",
        "sh",
        "-c",
        "hostname; echo pid=$$; readlink /proc/1/exe; exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7), "{o:?}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("exec-host\n"), "{out}");
    // Its own pid namespace view: not pid 1, and pid 1 is the container's sleep.
    assert!(!out.contains("pid=1\n"), "{out}");
    assert!(
        out.contains("/bin/busybox") || out.contains("sleep"),
        "{out}"
    );

    // Detached: the pid file names a process in every namespace and cgroup of the init.
    let pid_file = b.path().join("exec.pid");
    ok(&b.ferrun(&[
        "exec",
        "--detach",
        "--pid-file",
        pid_file.to_str().expect("utf-8"),
        "e",
        "sleep",
        "30",
    ]));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .parse()
        .expect("decimal, no newline");
    for kind in ["pid", "net", "ipc", "uts", "mnt", "cgroup"] {
        assert_eq!(ns(pid, kind), ns(init, kind), "{kind} namespace");
    }
    let cgroups = |p: i32| std::fs::read_to_string(format!("/proc/{p}/cgroup")).expect("cgroup");
    assert_eq!(cgroups(pid), cgroups(init));
    let ps: Vec<i32> =
        serde_json::from_str(&ok(&b.ferrun(&["ps", "--format", "json", "e"]))).expect("json");
    assert!(ps.contains(&pid) && ps.contains(&init), "{ps:?}");
    ok(&b.ferrun(&["delete", "--force", "e"]));
    assert!(wait_until(|| !std::path::Path::new(&format!(
        "/proc/{pid}"
    ))
    .exists()
        || std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.contains(") Z"))));
    assert!(b.leftover_state().is_empty());
}

#[test]
fn exec_flags_and_process_json_set_user_env_cwd_and_caps() {
    let mut b = Bundle::new(&[]);
    running(&mut b, "f");
    let out = ok(&b.ferrun(&[
        "exec",
        "--user",
        "1000:1001",
        "--additional-gids",
        "10",
        "--env",
        "GREETING=hi",
        "--cwd",
        "/tmp",
        "f",
        "sh",
        "-c",
        "id -u; id -g; id -G; echo $GREETING; pwd; grep NoNewPrivs /proc/self/status",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..5],
        &["1000", "1001", "1001 10", "hi", "/tmp"],
        "{out}"
    );
    assert!(
        lines[5].ends_with('1'),
        "runc's spec sets noNewPrivileges: {out}"
    );

    // --env replaces a variable the container already has (runc's spec sets TERM=xterm).
    assert!(
        b.config["process"]["env"]
            .to_string()
            .contains("TERM=xterm")
    );
    let out = ok(&b.ferrun(&[
        "exec",
        "--env",
        "TERM=replaced",
        "f",
        "sh",
        "-c",
        "echo $TERM; env | grep -c ^TERM=",
    ]));
    assert_eq!(out, "replaced\n1\n", "{out}");

    // A process document: its args, env and capabilities, nothing from the config.
    let process = json!({
        "args": ["sh", "-c", "echo $ONLY; grep CapEff /proc/self/status"],
        "env": ["PATH=/bin:/usr/bin", "ONLY=from-json"],
        "cwd": "/",
        "user": {"uid": 0, "gid": 0},
        "capabilities": {"bounding": ["CAP_NET_RAW"], "effective": ["CAP_NET_RAW"],
                         "permitted": ["CAP_NET_RAW"]}
    });
    let pf = b.path().join("process.json");
    std::fs::write(&pf, process.to_string()).expect("write");
    let out = ok(&b.ferrun(&["exec", "--process", pf.to_str().expect("utf-8"), "f"]));
    assert_eq!(
        out,
        format!(
            "from-json\nCapEff:\t{}\n",
            common::cap_mask(&["CAP_NET_RAW"])
        )
    );

    // A bad process names its field; a missing program says so in runc's words.
    std::fs::write(
        &pf,
        r#"{"args": ["sh"], "cwd": "relative", "user": {"uid": 0, "gid": 0}}"#,
    )
    .expect("write");
    let o = b.ferrun(&["exec", "--process", pf.to_str().expect("utf-8"), "f"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("process.cwd"),
        "{o:?}"
    );
    let o = b.ferrun(&["exec", "f", "no-such-program"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("executable file not found in $PATH"),
        "{o:?}"
    );
    ok(&b.ferrun(&["delete", "--force", "f"]));
}

#[test]
fn exec_gets_the_containers_seccomp_filter() {
    let mut b = Bundle::new(&[]);
    b.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        })
    });
    running(&mut b, "s");
    let o = b.ferrun(&[
        "exec",
        "s",
        "sh",
        "-c",
        "grep '^Seccomp:' /proc/self/status; mkdir /tmp/x",
    ]);
    assert!(!o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Operation not permitted"),
        "{o:?}"
    );
    ok(&b.ferrun(&["delete", "--force", "s"]));
}

#[test]
fn exec_with_a_pty_on_the_console_socket() {
    let mut b = Bundle::new(&[]);
    running(&mut b, "t");
    let sock = b.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    let receiver = std::thread::spawn(move || common::accept_fd(&listener).1);
    ok(&b.ferrun(&[
        "exec",
        "--tty",
        "--detach",
        "--console-socket",
        sock.to_str().expect("utf-8"),
        "t",
        "sh",
        "-c",
        "tty; test -t 0 && echo stdin-is-a-tty",
    ]));
    let master = receiver.join().expect("receiver");
    let _ = master.as_raw_fd();
    let mut out = Vec::new();
    let mut f = std::fs::File::from(master);
    let _ = std::io::Read::read_to_end(&mut f, &mut out);
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert!(out.contains("stdin-is-a-tty"), "{out:?}");
    ok(&b.ferrun(&["delete", "--force", "t"]));
}

#[test]
fn exec_refuses_a_stopped_or_paused_container() {
    let mut b = Bundle::new(&["true"]);
    let bundle = b.path().to_str().expect("utf-8").to_string();
    ok(&b.ferrun(&["run", "-d", "--bundle", &bundle, "gone"]));
    assert!(wait_until(|| {
        let s: Value =
            serde_json::from_slice(&b.ferrun(&["state", "gone"]).stdout).unwrap_or_default();
        s["status"] == "stopped"
    }));
    let o = b.ferrun(&["exec", "gone", "true"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("container not running"),
        "{o:?}"
    );
    ok(&b.ferrun(&["delete", "gone"]));

    running(&mut b, "p");
    ok(&b.ferrun(&["pause", "p"]));
    let o = b.ferrun(&["exec", "p", "true"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("paused"),
        "{o:?}"
    );
    ok(&b.ferrun(&["resume", "p"]));
    ok(&b.ferrun(&["exec", "p", "true"]));
    ok(&b.ferrun(&["delete", "--force", "p"]));
    assert!(b.leftover_state().is_empty());
}

#[test]
fn exec_tty_on_the_callers_terminal() {
    let mut b = Bundle::new(&[]);
    running(&mut b, "pt");
    // script(1) gives ferrun a terminal; exec -t proxies it to the process's own pty.
    let inner = format!(
        "{} --root {} exec -t pt sh -c 'tty; echo done'",
        common::ferrun_bin(),
        b.state_root().display()
    );
    let o = std::process::Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{o:?}");
    assert!(
        text.contains("/dev/pts/") && text.contains("done"),
        "{text:?}"
    );
    ok(&b.ferrun(&["delete", "--force", "pt"]));
}
