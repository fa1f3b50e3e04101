//! How long a pod takes to start through Kubernetes' path, per runtime handler: containerd
//! 1.6's CRI plugin (tests/cri's private node, cgroupfs, the pod network) asked for
//! `RunPodSandbox`, then `CreateContainer` and `StartContainer` of one container, as kubelet
//! asks. The handlers take turns, round by round, in one process against one containerd, so
//! that both meet the same daemon and machine. Prints each handler's median and mean and the
//! ratio of the medians. Run by bench/cri.sh (which builds the release ferrun).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/cri/mod.rs"]
mod cri;

use std::time::Duration;

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let node = cri::Node::start(std::path::Path::new("/tmp/ferrun-k8s-bench"), false, 10);
    let mut times: Vec<(&str, Vec<Duration>, Vec<Duration>)> = cri::HANDLERS
        .iter()
        .map(|h| (*h, Vec::new(), Vec::new()))
        .collect();
    // One round of each first, unmeasured: images unpacked, caches warm.
    for (h, _, _) in &times {
        cri::start_pod_timed(&node, h);
    }
    for _ in 0..rounds {
        for (h, sandbox, pod) in times.iter_mut() {
            let (s, p) = cri::start_pod_timed(&node, h);
            sandbox.push(s);
            pod.push(p);
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("| handler | sandbox median ms | sandbox + container median ms | mean ms |");
    println!("| --- | --- | --- | --- |");
    let mut medians = Vec::new();
    for (h, sandbox, pod) in times.iter_mut() {
        let mean = pod.iter().sum::<Duration>() / pod.len() as u32;
        let (s, p) = (median(sandbox), median(pod));
        medians.push(p);
        println!("| {h} | {:.1} | {:.1} | {:.1} |", ms(s), ms(p), ms(mean));
    }
    println!(
        "\n{rounds} rounds; ferrun / runc (sandbox + container, medians): {:.2}",
        ms(medians[0]) / ms(medians[1])
    );
}
