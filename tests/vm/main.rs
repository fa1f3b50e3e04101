//! The VM test bed: a Debian 12 guest with systemd as PID 1 on pure cgroup v2 (kernel 6.1),
//! booted under qemu for every run. On the host this binary builds or reuses the guest disk,
//! boots it (`boot.sh`) with the checkout shared read-only at the same path, and reads back what
//! the guest reported. In the guest (`FERRUN_VM_GUEST=1`, set by the script the guest runs) the
//! same binary runs the scenarios of `guest.rs`, one result line each. A guest that cannot
//! boot, a scenario that fails and a result that never comes are all failures.
//!
//! `harness = false`: the scenarios need one boot between them, not one each.

mod checkpoint;
#[path = "../common/mod.rs"]
mod common;
#[path = "../cri/mod.rs"]
mod cri;
mod guest;
mod rootless;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The whole boot, scenarios included, may take this long (TCG is slow).
const TIMEOUT_SECS: u32 = 1800;

fn main() {
    if std::env::var_os("FERRUN_VM_GUEST").is_some() {
        guest::main();
        return;
    }
    let passed = host();
    std::process::exit(if passed { 0 } else { 1 });
}

/// The boots, each with the LSM it enables: AppArmor (Debian's default) for every scenario but
/// SELinux's, then SELinux (permissive) for those. Reported in libtest's summary form (CI adds
/// them up).
fn host() -> bool {
    let (mut passed, mut failed) = (0, 0);
    for lsm in ["apparmor", "selinux"] {
        let (p, f) = boot(lsm);
        passed += p;
        failed += f;
    }
    println!(
        "test result: {}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    let _ = std::io::stdout().flush();
    failed == 0 && passed > 0
}

/// One boot: (scenarios passed, failed), a boot that fails or never reports counting as a
/// failure.
fn boot(lsm: &str) -> (u32, u32) {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let exe = std::env::current_exe().expect("current_exe");
    for p in [&tmp, &exe, &PathBuf::from(common::ferrun_bin())] {
        assert!(
            p.starts_with(&src),
            "{} is outside {}: the guest sees only the checkout",
            p.display(),
            src.display()
        );
    }
    let ctl = tempfile::Builder::new()
        .prefix("ferrun-vm-")
        .tempdir_in(&tmp)
        .expect("ctl dir");
    std::fs::write(ctl.path().join("run"), guest_script(&src, &tmp, &exe, lsm))
        .expect("run script");
    let boot = Command::new("bash")
        .arg(src.join("tests/vm/boot.sh"))
        .arg(ctl.path())
        .arg(&src)
        .arg(TIMEOUT_SECS.to_string())
        .arg(lsm)
        .status()
        .expect("run tests/vm/boot.sh");
    let read = |f: &str| std::fs::read_to_string(ctl.path().join(f)).unwrap_or_default();
    // The last run's logs stay for a look afterwards.
    let last = tmp.join(format!("vm-last-{lsm}"));
    let _ = std::fs::remove_dir_all(&last);
    if std::fs::create_dir_all(&last).is_ok() {
        for f in ["results", "guest.log", "serial.log"] {
            let _ = std::fs::copy(ctl.path().join(f), last.join(f));
        }
    }
    let results = read("results");
    let (mut passed, mut failed) = (0, 0);
    let mut done = false;
    for line in results.lines() {
        println!("{}", line.replace('\u{1}', "\n    "));
        if line.starts_with("ok ") {
            passed += 1;
        } else if line.starts_with("FAIL ") {
            failed += 1;
        } else if let Some(t) = line.strip_prefix("done ") {
            println!("phase tests-{lsm} {t}");
            done = true;
        }
    }
    // Each boot has scenarios of its own, unless a filter picked others.
    if passed + failed == 0 && std::env::var_os("FERRUN_VM_ONLY").is_none() {
        eprintln!("the {lsm} boot ran no scenario");
        failed += 1;
    }
    if !boot.success() || !done || failed > 0 {
        let log = read("guest.log");
        let tail: Vec<&str> = log.lines().rev().take(80).collect();
        eprintln!("--- guest log, {lsm} boot (last lines) ---");
        for l in tail.iter().rev() {
            eprintln!("{l}");
        }
        if !boot.success() {
            eprintln!("the {lsm} VM did not boot and power off cleanly");
            failed += 1;
        } else if !done {
            eprintln!("the {lsm} guest never reported that its scenarios ended");
            failed += 1;
        }
    }
    (passed, failed)
}

/// What the guest runs at boot: the checkout mounted where it is on the host (so the paths
/// compiled into the test binary hold), a tmpfs for the tests' scratch space, then this binary.
fn guest_script(src: &Path, tmp: &Path, exe: &Path, lsm: &str) -> String {
    format!(
        r#"#!/bin/sh
exec > /run/ferrun-vm/guest.log 2>&1
set -x
mkdir -p '{src}'
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 src '{src}' || exit 1
mount -t tmpfs -o mode=0755 tmpfs '{tmp}' || exit 1
export FERRUN_VM_GUEST=1 FERRUN_VM_RESULTS=/run/ferrun-vm/results PATH=/usr/sbin:/usr/bin:/sbin:/bin
export FERRUN_VM_ONLY='{only}' FERRUN_VM_LSM='{lsm}'
cd /
'{exe}'
echo "exit $?" >> /run/ferrun-vm/guest.log
sync
"#,
        src = src.display(),
        tmp = tmp.display(),
        exe = exe.display(),
        only = std::env::var("FERRUN_VM_ONLY").unwrap_or_default().replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '_' && c != ',',
            ""
        )
    )
}
