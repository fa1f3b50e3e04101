//! OCI hooks on real containers: every phase runs, in order, with the state on its stdin, its
//! own args and env, in the namespaces the spec names; a failing or slow create hook fails the
//! create and leaves nothing behind.

mod common;

use common::{Bundle, cgroup_dirs, ok, wait_until};
use serde_json::{Value, json};

/// A hook that appends `<name> <its uts namespace>` to `log` and saves its stdin as
/// `<dir>/<name>.json`.
fn hook(name: &str, dir: &str) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("cat > {dir}/{name}.json; echo \"$PHASE $(readlink /proc/self/ns/uts)\" >> {dir}/log"), "ignored"],
        "env": [format!("PHASE={name}"), "PATH=/bin:/usr/bin"]
    })
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn every_phase_runs_in_order_with_the_state() {
    let mut b = Bundle::new(&["sh", "-c", "echo started > /ctl/started"]);
    let ctl = b.path().join("ctl");
    std::fs::create_dir_all(&ctl).expect("ctl");
    let host_dir = ctl.to_str().expect("utf-8").to_string();
    b.edit(|c| {
        c["hostname"] = json!("hooked");
        c["annotations"] = json!({"org.example.note": "hi"});
        c["mounts"].as_array_mut().expect("mounts").push(
            json!({"destination": "/ctl", "type": "bind", "source": host_dir, "options": ["rbind"]}),
        );
        c["hooks"] = json!({
            "prestart": [hook("prestart", &host_dir)],
            "createRuntime": [hook("createRuntime", &host_dir)],
            // Before pivot_root the container's mount namespace still shows the host's paths.
            "createContainer": [
                hook("createContainer", &host_dir),
                // The hook process itself, not only its children, is in the pid namespace.
                // (the shell's own NSpid: two numbers when it sits in a nested pid namespace).
                {"path": "/bin/sh", "args": ["sh", "-c", format!(
                    "while read -r k v; do [ \"$k\" = NSpid: ] && echo \"$v\"; done < /proc/self/status > {host_dir}/create-pid-ns; true")]}
            ],
            // After pivot_root: the container's /bin/sh, and its /ctl.
            "startContainer": [
                hook("startContainer", "/ctl"),
                // Its program comes from the image: it runs as a process of the container.
                {"path": "/bin/sh", "args": ["sh", "-c",
                    "grep CapEff /proc/self/status > /ctl/caps; readlink /proc/self/ns/pid >> /ctl/caps"]}
            ],
            "poststart": [hook("poststart", &host_dir)],
            "poststop": [hook("poststop", &host_dir)]
        });
    });
    let bundle = b.path().to_str().expect("utf-8").to_string();
    let o = b.ferrun(&["create", "--bundle", &bundle, "h"]);
    assert!(o.status.success(), "{o:?}");
    let state: Value = serde_json::from_str(&read(&ctl.join("createRuntime.json"))).expect("json");
    let uts = |pid: &str| {
        std::fs::read_link(format!("/proc/{pid}/ns/uts"))
            .expect("uts")
            .to_string_lossy()
            .into_owned()
    };
    let host_name = uts("self");
    let container = uts(&state["pid"].to_string());
    assert_ne!(host_name, container);
    let nspid = read(&ctl.join("create-pid-ns"));
    assert_eq!(nspid.split_whitespace().count(), 2, "{nspid:?}");
    assert_eq!(
        read(&ctl.join("log")),
        format!("prestart {host_name}\ncreateRuntime {host_name}\ncreateContainer {container}\n"),
        "create hooks: the runtime's namespaces, then the container's"
    );
    assert_eq!(state["id"], "h");
    assert_eq!(state["status"], "creating");
    assert_eq!(state["bundle"], bundle);
    assert_eq!(state["annotations"]["org.example.note"], "hi");
    assert!(state["pid"].as_i64() > Some(0));

    assert!(b.ferrun(&["start", "h"]).status.success());
    assert!(wait_until(|| read(&ctl.join("started")) == "started\n"));
    let log = read(&ctl.join("log"));
    assert!(
        log.contains(&format!(
            "createContainer {container}\nstartContainer {container}\npoststart {host_name}\n"
        )),
        "{log}"
    );
    let pid_ns = std::fs::read_link(format!("/proc/{}/ns/pid", state["pid"]))
        .expect("pid ns")
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        read(&ctl.join("caps")),
        format!(
            "CapEff:\t{}\n{pid_ns}\n",
            common::cap_mask(&["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
        ),
        "the container's capabilities and pid namespace, not ferrun's"
    );
    let started: Value =
        serde_json::from_str(&read(&ctl.join("startContainer.json"))).expect("json");
    assert_eq!(started["status"], "created");
    let post: Value = serde_json::from_str(&read(&ctl.join("poststart.json"))).expect("json");
    assert_eq!(post["status"], "running");

    assert!(wait_until(|| String::from_utf8_lossy(
        &b.ferrun(&["state", "h"]).stdout
    )
    .contains("stopped")));
    assert!(b.ferrun(&["delete", "h"]).status.success());
    assert!(read(&ctl.join("log")).ends_with(&format!("poststop {host_name}\n")));
    let stop: Value = serde_json::from_str(&read(&ctl.join("poststop.json"))).expect("json");
    assert_eq!(stop["status"], "stopped");
}

#[test]
fn a_failing_or_slow_create_hook_fails_create_and_leaves_nothing() {
    for (name, bad, says) in [
        (
            "fails",
            json!({"path": "/bin/sh", "args": ["sh", "-c", "echo no way >&2; exit 3"]}),
            "exit status 3: no way",
        ),
        (
            "slow",
            json!({"path": "/bin/sh", "args": ["sh", "-c", "sleep 10"], "timeout": 1}),
            "timed out after 1s",
        ),
    ] {
        let mut b = Bundle::new(&["true"]);
        let dir = b.path().to_str().expect("utf-8").to_string();
        b.edit(|c| {
            c["hooks"] = json!({
                "createRuntime": [bad],
                "poststop": [hook("poststop", &dir)]
            })
        });
        let o = b.ferrun(&["run", "--bundle", &dir, name]);
        assert!(!o.status.success(), "{name}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("hooks.createRuntime[0] /bin/sh") && err.contains(says),
            "{name}: {err}"
        );
        assert!(b.leftover_state().is_empty(), "{name}");
        assert!(cgroup_dirs(&b.cgroup_path()).is_empty(), "{name}");
        // The container existed: poststop ran for it.
        assert!(
            read(&b.path().join("log")).starts_with("poststop"),
            "{name}"
        );
    }
    // A hook path that does not exist is refused before anything is made.
    let mut b = Bundle::new(&["true"]);
    let dir = b.path().to_str().expect("utf-8").to_string();
    b.edit(|c| c["hooks"] = json!({"prestart": [{"path": "/no/such/hook"}]}));
    let o = b.ferrun(&["run", "--bundle", &dir, "missing"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("hooks.prestart[0].path"),
        "{o:?}"
    );
    assert!(b.leftover_state().is_empty());
}

#[test]
fn a_hook_without_env_inherits_the_runtimes_and_runs_in_the_bundle() {
    let mut b = Bundle::new(&["true"]);
    let out = b.path().join("hook.out");
    let script = format!(
        "echo \"path=$PATH\" > {0}; echo \"cwd=$(pwd)\" >> {0}; echo \"mark=$FERRUN_HOOK_MARK\" >> {0}; echo \"only=$ONLY\" >> {0}",
        out.display()
    );
    let env_out = b.path().join("hook-env.out");
    let with_env = format!(
        "echo \"mark=$FERRUN_HOOK_MARK only=$ONLY\" > {}",
        env_out.display()
    );
    b.edit(|c| {
        c["hooks"] = json!({
            "prestart": [{"path": "/bin/sh", "args": ["sh", "-c", script]}],
            "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", with_env], "env": ["ONLY=1"]}]
        });
    });
    let bundle = b.path().to_str().expect("utf-8").to_string();
    let mut cmd = b.cmd(&["run", "--bundle", &bundle, "envhook"]);
    cmd.env("FERRUN_HOOK_MARK", "from-the-runtime")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    let o = common::output_via_files(cmd);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = read(&out);
    // No `env`: the runtime's own environment, PATH included, in the bundle directory.
    assert!(
        got.contains("path=/usr/sbin:/usr/bin:/sbin:/bin\n"),
        "{got}"
    );
    assert!(got.contains("mark=from-the-runtime\n"), "{got}");
    assert!(got.contains(&format!("cwd={bundle}\n")), "{got}");
    // An `env`: exactly that, nothing of the runtime's.
    let got = read(&env_out);
    assert_eq!(got.trim(), "mark= only=1", "{got}");
}

#[test]
fn a_failing_poststart_hook_is_an_error_and_stops_the_container() {
    // Spec 1.3: the runtime generates an error, stops the container, and goes on to destroy it.
    let failing = json!({"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 4"]});
    let mut b = Bundle::new(&["sleep", "60"]);
    let dir = b.path().to_str().expect("utf-8").to_string();
    b.edit(|c| {
        c["hooks"] = json!({"poststart": [failing.clone()], "poststop": [hook("poststop", &dir)]})
    });
    let o = b.ferrun(&["run", "--bundle", &dir, "fg"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("hooks.poststart[0] /bin/sh") && err.contains("nope"),
        "{err}"
    );
    assert!(b.leftover_state().is_empty(), "run removed it");
    assert!(cgroup_dirs(&b.cgroup_path()).is_empty());
    assert!(read(&b.path().join("log")).starts_with("poststop"));

    std::fs::remove_file(b.path().join("log")).expect("rm log");
    ok(&b.ferrun(&["create", "--bundle", &dir, "two"]));
    let o = b.ferrun(&["start", "two"]);
    assert!(!o.status.success(), "start reports the failed hook");
    assert!(
        wait_until(|| {
            let st = ok(&b.ferrun(&["state", "two"]));
            st.contains("\"stopped\"")
        }),
        "the container was stopped"
    );
    ok(&b.ferrun(&["delete", "two"]));
    assert!(read(&b.path().join("log")).starts_with("poststop"));
    assert!(b.leftover_state().is_empty());
}

/// A container that joins another's namespaces (a pod's, as the CRI asks): the parent is in
/// them only for the clone, so its createRuntime hook runs in the runtime's pid, network, uts
/// and ipc namespaces (the spec: "in the runtime namespace"), and the container in the pod's.
#[test]
fn create_runtime_hooks_of_a_container_joining_namespaces_run_in_the_runtimes() {
    /// The pod's container goes even when an assertion fails.
    struct Pod(Bundle);
    impl Drop for Pod {
        fn drop(&mut self) {
            let _ = self.0.ferrun(&["delete", "--force", "pod"]);
        }
    }
    let pod = Pod(Bundle::new(&["sleep", "1000"]));
    let pod_pid = pod.0.run_detached("pod", &[]);
    let kinds = ["pid", "net", "uts", "ipc"];
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "for n in pid net uts ipc; do readlink /proc/self/ns/$n; done > /ctl/inside",
    ]);
    let ctl = b.path().join("ctl");
    std::fs::create_dir_all(&ctl).expect("ctl");
    let host_dir = ctl.to_str().expect("utf-8").to_string();
    b.edit(|c| {
        c["mounts"].as_array_mut().expect("mounts").push(
            json!({"destination": "/ctl", "type": "bind", "source": host_dir, "options": ["rbind"]}),
        );
        let ns = c["linux"]["namespaces"].as_array_mut().expect("ns");
        ns.retain(|n| !["pid", "network", "uts", "ipc"].contains(&n["type"].as_str().unwrap_or("")));
        for (kind, file) in [("pid", "pid"), ("network", "net"), ("uts", "uts"), ("ipc", "ipc")] {
            ns.push(json!({"type": kind, "path": format!("/proc/{pod_pid}/ns/{file}")}));
        }
        c["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c",
            format!("for n in pid_for_children pid net uts ipc; do readlink /proc/self/ns/$n; done > {host_dir}/hook")]}]});
    });
    let (code, out, err) = b.run("joined");
    assert_eq!(code, 0, "{out} {err}");
    let own = |pid: &str, kind: &str| {
        std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
            .expect("ns")
            .to_string_lossy()
            .into_owned()
    };
    let me = std::process::id().to_string();
    let hook = read(&ctl.join("hook"));
    let want: Vec<String> = std::iter::once(own(&me, "pid"))
        .chain(kinds.iter().map(|k| own(&me, k)))
        .collect();
    assert_eq!(
        hook.lines().collect::<Vec<_>>(),
        want,
        "the hook's namespaces"
    );
    let inside = read(&ctl.join("inside"));
    let want: Vec<String> = kinds.iter().map(|k| own(&pod_pid.to_string(), k)).collect();
    assert_eq!(inside.lines().collect::<Vec<_>>(), want, "the container's");
}
