//! Where the container process ends up, and signals to `run`. One test function: this binary's
//! process is a child subreaper, like conmon or containerd's shim.

mod common;

use common::{Bundle, wait_until};
use serde_json::json;

fn ppid(pid: i32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

#[test]
fn container_is_the_callers_child_and_run_forwards_signals() {
    // SAFETY: marks this process as a subreaper.
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
        0
    );

    // After create returns, no ferrun process stands between the caller and the container.
    let b = Bundle::new(&["sleep", "60"]);
    let bundle = b.path().to_str().expect("utf-8").to_string();
    let pid_file = b.path().join("pid");
    let o = b.ferrun(&[
        "create",
        "--bundle",
        &bundle,
        "--pid-file",
        pid_file.to_str().expect("utf-8"),
        "tree",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid")
        .parse()
        .expect("decimal");
    assert_eq!(
        ppid(pid),
        Some(std::process::id()),
        "the container process is our child"
    );
    assert!(b.ferrun(&["delete", "--force", "tree"]).status.success());
    // SAFETY: reaping the killed container, which is our child.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };

    // run forwards SIGTERM to the container, whose handler decides the exit code.
    let mut b = Bundle::new(&[]);
    let host_dir = b.path().to_path_buf();
    b.edit(|c| {
        c["process"]["args"] = json!(["sh", "-c", "trap 'exit 42' TERM; echo ready > /tmp/ready; while true; do sleep 0.05; done"]);
        c["root"]["readonly"] = json!(false);
        c["mounts"].as_array_mut().expect("mounts").push(json!({"destination": "/tmp", "type": "bind", "source": host_dir, "options": ["rbind"]}));
    });
    let bundle = b.path().to_str().expect("utf-8").to_string();
    let mut child = b
        .cmd(&["run", "--bundle", &bundle, "sig"])
        .spawn()
        .expect("spawn run");
    assert!(
        wait_until(|| b.path().join("ready").exists()),
        "container started"
    );
    // SAFETY: signalling the ferrun process we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    assert_eq!(
        status.code(),
        Some(42),
        "the container's trap ran and its code came back"
    );
    assert!(b.leftover_state().is_empty());
}
