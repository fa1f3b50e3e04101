//! Loading and attaching the cgroup2 device program with the `bpf` syscall.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// `union bpf_attr`, as bytes: each command fills the fields it reads.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn call(&mut self, cmd: libc::c_long) -> std::io::Result<libc::c_long> {
        // SAFETY: the attr buffer is as large as the kernel reads for these commands.
        let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, self.0.as_mut_ptr(), self.0.len()) };
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }
}

fn text(e: std::io::Error) -> String {
    crate::error::errno_text(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Loads `program` and attaches it to `dir`; programs attached there before are detached
/// afterwards, so the cgroup is never without a filter.
pub fn attach_device_program(dir: &Path, program: &[u8]) -> Result<(), String> {
    let cg =
        std::fs::File::open(dir).map_err(|e| format!("open {}: {}", dir.display(), text(e)))?;
    let old = attached(cg.as_raw_fd());
    let license = c"Apache";
    let mut load = Attr::new();
    load.u32(0, BPF_PROG_TYPE_CGROUP_DEVICE)
        .u32(4, (program.len() / 8) as u32)
        .u64(8, program.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64);
    let prog = match load.call(BPF_PROG_LOAD) {
        Ok(fd) => fd,
        Err(e) => {
            // Again with the verifier's log, only to explain the refusal.
            let mut log = vec![0u8; 1 << 16];
            load.u32(24, 1)
                .u32(28, log.len() as u32)
                .u64(32, log.as_mut_ptr() as u64);
            let _ = load.call(BPF_PROG_LOAD);
            let verifier = String::from_utf8_lossy(&log);
            let last = verifier
                .trim_end_matches('\0')
                .trim()
                .lines()
                .last()
                .unwrap_or("")
                .to_string();
            return Err(format!("load the device program: {}: {last}", text(e)));
        }
    };
    // SAFETY: a fresh fd from the kernel.
    let prog = unsafe { OwnedFd::from_raw_fd(prog as i32) };
    Attr::new()
        .u32(0, cg.as_raw_fd() as u32)
        .u32(4, prog.as_raw_fd() as u32)
        .u32(8, BPF_CGROUP_DEVICE)
        .u32(12, BPF_F_ALLOW_MULTI)
        .call(BPF_PROG_ATTACH)
        .map_err(|e| {
            format!(
                "attach the device program to {}: {}",
                dir.display(),
                text(e)
            )
        })?;
    for id in old {
        let Ok(fd) = Attr::new().u32(0, id).call(BPF_PROG_GET_FD_BY_ID) else {
            continue;
        };
        // SAFETY: a fresh fd from the kernel.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Attr::new()
            .u32(0, cg.as_raw_fd() as u32)
            .u32(4, fd.as_raw_fd() as u32)
            .u32(8, BPF_CGROUP_DEVICE)
            .call(BPF_PROG_DETACH)
            .map_err(|e| format!("detach the old device program: {}", text(e)))?;
    }
    Ok(())
}

/// Ids of the device programs attached to a cgroup.
pub fn attached(cg: i32) -> Vec<u32> {
    let mut ids = [0u32; 64];
    let mut q = Attr::new();
    q.u32(0, cg as u32)
        .u32(4, BPF_CGROUP_DEVICE)
        .u64(16, ids.as_mut_ptr() as u64)
        .u32(24, ids.len() as u32);
    if q.call(BPF_PROG_QUERY).is_err() {
        return vec![];
    }
    let n = u32::from_ne_bytes([q.0[24], q.0[25], q.0[26], q.0[27]]) as usize;
    ids[..n.min(ids.len())].to_vec()
}
