//! The executor allocates nothing after `clone`: a guard allocator, armed in the child before the
//! first step, ends the child with exit code 99 on any allocation. A full plan (mounts, devices,
//! pivot_root, masked paths, a user, capabilities, rlimits, the pty) replays and execs a shell
//! that exits 42, so 42 proves the replay allocated nothing (execve replaces the allocator).

mod common;

use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

static ARMED: AtomicBool = AtomicBool::new(false);

struct Guard;

fn refuse() -> ! {
    // SAFETY: write + _exit allocate nothing.
    unsafe {
        let msg = b"allocation after clone\n";
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(99)
    }
}

// SAFETY: delegates to System; only adds a check.
unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            refuse();
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::Relaxed) {
            refuse();
        }
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            refuse();
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Guard = Guard;

fn arm() {
    ARMED.store(true, Ordering::Relaxed);
}

fn run_armed(b: &common::Bundle, id: &str) -> i32 {
    let store = ferrun::state::Store::new(&b.state_root());
    let opts = ferrun::lifecycle::CreateOpts {
        id: id.into(),
        bundle: b.path().to_path_buf(),
        ..Default::default()
    };
    match ferrun::lifecycle::run(&store, &opts, false, Some(&arm)) {
        Ok(code) => code,
        Err(e) => panic!("{id}: {e}"),
    }
}

#[test]
fn a_full_replay_allocates_nothing() {
    let mut b = common::Bundle::new(&["sh", "-c", "exit 42"]);
    b.edit(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 11]});
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}]);
        c["process"]["oomScoreAdj"] = json!(10);
        c["process"]["capabilities"]["ambient"] = json!([]);
        c["linux"]["sysctl"] = json!({"kernel.shmmni": "2048"});
        c["linux"]["devices"] = json!([{"path": "/dev/extra", "type": "c", "major": 1, "minor": 3}]);
        c["mounts"].as_array_mut().expect("mounts").push(
            json!({"destination": "/data/t", "type": "tmpfs", "source": "tmpfs", "options": ["rro", "rprivate", "nosuid"]}),
        );
        // tmpcopyup: a directory tree copied with stack buffers only.
        c["mounts"].as_array_mut().expect("mounts").push(
            json!({"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]}),
        );
        // A bind with attributes: open_tree, mount_setattr and move_mount on the way.
        c["mounts"].as_array_mut().expect("mounts").push(
            json!({"destination": "/data/b", "type": "bind", "source": "/etc", "options": ["rbind", "ro", "nosuid", "rnodev"]}),
        );
    });
    assert_eq!(
        run_armed(&b, "full"),
        42,
        "the child allocated after clone (exit 99) or failed"
    );

    // And with a new user namespace: id maps, the parent's release, devices bound from the host.
    b.edit(|c| {
        common::user_namespace(c, 200000, 200000);
        c["mounts"]
            .as_array_mut()
            .expect("mounts")
            .retain(|m| m["type"] != "sysfs" && m["type"] != "cgroup");
        c["linux"]["maskedPaths"] = json!(["/proc/acpi"]);
        c["linux"]["sysctl"] = json!({});
        // In a user namespace devices are bound from the host, which has no /dev/extra.
        c["linux"]["devices"] = json!([]);
    });
    assert_eq!(run_armed(&b, "userns"), 42);
}

#[test]
fn the_guard_catches_an_allocation() {
    // The guard itself works: armed in a forked child, one allocation ends it with 99.
    // SAFETY: fork in a test; the child only allocates and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        arm();
        let v: Vec<u8> = Vec::with_capacity(64);
        std::hint::black_box(&v);
        // SAFETY: ends the child.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waiting for our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status));
    assert_eq!(libc::WEXITSTATUS(status), 99);
}
