//! Cold compile of podman's seccomp profile: ferrun's compiler against libseccomp (as runc uses
//! it: the profile's ABIs, rules in config order, BPF exported). A benchmark, not a test:
//!   cargo run --release -p ferrun-planner --example seccomp_compile
#[path = "../tests/reference/mod.rs"]
mod reference;

use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/config/podman-run.json");
    let config = std::fs::read(path).expect("fixture");
    let profile = ferrun_planner::seccomp::load_profile(&config).expect("profile");
    let runs = 200;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut n_ours, mut n_theirs) = (0, 0);
    for _ in 0..runs {
        let t = Instant::now();
        let c = ferrun_planner::seccomp::compile(&profile, "x86_64").expect("compile");
        let bytes = ferrun_planner::seccomp::bpf::to_bytes(&c.insns);
        ours.push(t.elapsed());
        n_ours = bytes.len() / 8;
        let t = Instant::now();
        n_theirs = reference::libseccomp_bpf(&profile).len();
        theirs.push(t.elapsed());
    }
    let (a, b) = (median(ours), median(theirs));
    println!("podman profile, x86_64 + x86 + x32, median of {runs}:");
    println!(
        "  ferrun:     {:>8.1} µs  {n_ours} instructions",
        a.as_secs_f64() * 1e6
    );
    println!(
        "  libseccomp: {:>8.1} µs  {n_theirs} instructions",
        b.as_secs_f64() * 1e6
    );
    println!(
        "  ferrun/libseccomp: {:.3}",
        a.as_secs_f64() / b.as_secs_f64()
    );
}
