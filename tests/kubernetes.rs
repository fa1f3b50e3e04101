//! Kubernetes' path to ferrun on this host (cgroup v1, cgroupfs driver): kubelet's CRI calls to
//! containerd 1.6, whose runc shim runs the `ferrun` handler, as a RuntimeClass picks it. Each
//! scenario runs with the `ferrun` handler and with `runc`, so that a difference is ferrun's,
//! not the harness's. The systemd driver on cgroup v2 is the VM's (tests/vm/guest.rs).

mod common;
mod cri;

use cri::{Network, Node};
use std::path::Path;

/// One containerd per handler, each with its own paths and pod network, so that the two tests
/// may run at once.
fn node(handler: &str) -> Node {
    let net = match handler {
        "ferrun" => 8,
        _ => 9,
    };
    Node::start(Path::new(&format!("/tmp/ferrun-k8s-{handler}")), false, net)
}

fn pods(handler: &str) {
    let node = node(handler);
    for network in [Network::Pod, Network::Host] {
        let s = cri::pod_scenario(&node, handler, network);
        println!(
            "{handler} {network:?} network: sandbox + first container started in {:.1} ms",
            s.sandbox_and_container.as_secs_f64() * 1e3
        );
    }
}

#[test]
fn cri_pods_with_the_ferrun_handler() {
    pods("ferrun");
}

#[test]
fn cri_pods_with_the_runc_handler() {
    pods("runc");
}
