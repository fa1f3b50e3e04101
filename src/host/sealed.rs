//! Protection of the runtime binary (CVE-2019-5736). Until it execs the program, the container
//! process runs ferrun's own image, and a program whose shebang names `/proc/self/exe` runs it
//! on; a process of the container that opens `/proc/<pid>/exe` could later write through it to
//! the host binary. So `create`, `run` and `exec` first re-execute ferrun from a read-only image:
//! a detached read-only bind of the binary (no copy), or, where the mount API is missing, a
//! sealed memfd copy. On x86_64 root's bind re-exec is usually done already, at the ELF entry
//! (`ferrun_entry` in main.rs): then [`protected`] holds and nothing happens here.

use crate::error::{Context, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Whether this process already runs from a sealed copy.
pub fn running_sealed() -> bool {
    std::fs::read_link("/proc/self/exe")
        .is_ok_and(|p| p.to_string_lossy().starts_with("/memfd:ferrun"))
}

/// Whether this process runs from an image nothing can write through: a sealed copy, or a
/// read-only mount (the bind [`reexec`] makes, or a binary on a read-only filesystem).
pub fn protected() -> bool {
    if running_sealed() {
        return true;
    }
    // SAFETY: statvfs into a zeroed struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statvfs(c"/proc/self/exe".as_ptr(), &mut st) };
    (r == 0 && st.f_flag & libc::ST_RDONLY != 0) || out_of_reach_rootless()
}

/// Rootless, a binary owned by the host's root (uid 0, or the overflow uid where root is not
/// mapped) with no group or other write bit (nor an ACL's, which would show in the group
/// bits) cannot be written by any id a container of ours runs as: they are the caller's and
/// its subordinate ids, none of them the owner, none with privilege over an unmapped inode. So
/// no copy or bind is needed (the re-exec costs a rootless caller a memfd copy).
fn out_of_reach_rootless() -> bool {
    if !super::rootless::detect() {
        return false;
    }
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::metadata("/proc/self/exe") else {
        return false;
    };
    let overflow = std::fs::read_to_string("/proc/sys/kernel/overflowuid")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(65534);
    // SAFETY: geteuid cannot fail; faccessat on a static path, as the effective ids.
    let (euid, writable) = unsafe {
        (
            libc::geteuid(),
            libc::faccessat(
                libc::AT_FDCWD,
                c"/proc/self/exe".as_ptr(),
                libc::W_OK,
                libc::AT_EACCESS,
            ) == 0,
        )
    };
    (m.uid() == 0 || m.uid() == overflow) && m.uid() != euid && m.mode() & 0o022 == 0 && !writable
}

/// Re-executes the current command from a read-only bind of the binary: a detached mount
/// (`open_tree`) made read-only (`mount_setattr`) and run with `execveat`, so that
/// `/proc/<pid>/exe` of a container process reopened for writing meets EROFS. Nothing is copied;
/// kernels without the mount API get the sealed memfd copy instead. Returns only on failure.
pub fn reexec() -> Result<()> {
    // SAFETY: plain syscalls on a static path and our own fd.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c"/proc/self/exe".as_ptr(),
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC,
        )
    };
    if tree >= 0 {
        // SAFETY: fresh fd.
        let tree = unsafe { OwnedFd::from_raw_fd(tree as i32) };
        let attr = libc::mount_attr {
            attr_set: libc::MOUNT_ATTR_RDONLY,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        // SAFETY: mount_setattr on our detached mount with a valid attr struct.
        let r = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                tree.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_EMPTY_PATH,
                &attr as *const libc::mount_attr,
                std::mem::size_of::<libc::mount_attr>(),
            )
        };
        if r == 0 {
            exec_fd(&tree);
        }
    }
    reexec_sealed()
}

/// Re-executes the current command from a sealed memfd copy of the binary; returns only on
/// failure.
fn reexec_sealed() -> Result<()> {
    // MFD_EXEC: where vm.memfd_noexec is set, a memfd is otherwise sealed against exec;
    // kernels before 6.3 do not know the flag.
    const MFD_EXEC: libc::c_uint = 0x10;
    // SAFETY: memfd_create with a static name; the fd is ours.
    let mut fd = unsafe {
        libc::memfd_create(
            c"ferrun".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING | MFD_EXEC,
        )
    };
    if fd < 0 && crate::errno() == libc::EINVAL {
        // SAFETY: as above, without the flag.
        fd = unsafe {
            libc::memfd_create(
                c"ferrun".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
    }
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "memfd_create".into());
    }
    // SAFETY: fresh fd.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut src = std::fs::File::open("/proc/self/exe").ctx(|| "open /proc/self/exe".into())?;
    let mut dst = std::fs::File::from(memfd.try_clone().ctx(|| "dup memfd".into())?);
    std::io::copy(&mut src, &mut dst).ctx(|| "copy the ferrun binary".into())?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on our memfd.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "seal the ferrun copy".into());
    }
    exec_fd(&memfd);
    Err(std::io::Error::last_os_error()).ctx(|| "re-execute from the sealed copy".into())
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)` with this process's arguments and
/// environment; returns only on failure.
fn exec_fd(fd: &OwnedFd) {
    let args: Vec<CString> = std::env::args_os()
        .filter_map(|a| CString::new(a.into_encoded_bytes()).ok())
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: NULL-terminated arrays of C strings that outlive the call.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
}
