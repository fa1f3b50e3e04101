//! Protection of the runtime binary (CVE-2019-5736). Until it execs the program, the container
//! process runs ferrun's own image; a process of the container that opens `/proc/<pid>/exe`
//! could later write through it to the host binary. That needs a second container process in
//! the same pid namespace during set-up, which only a joined (or the host's) pid namespace
//! allows: then ferrun first re-executes itself from a sealed memfd copy, whose image cannot be
//! written. A new pid namespace, the common case, pays nothing.

use crate::error::{Context, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Whether this process already runs from a sealed copy.
pub fn running_sealed() -> bool {
    std::fs::read_link("/proc/self/exe")
        .is_ok_and(|p| p.to_string_lossy().starts_with("/memfd:ferrun"))
}

/// Re-executes the current command from a sealed memfd copy of the binary; returns only on
/// failure.
pub fn reexec() -> Result<()> {
    // SAFETY: memfd_create with a static name; the fd is ours.
    let fd = unsafe {
        libc::memfd_create(
            c"ferrun".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
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
            memfd.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(std::io::Error::last_os_error()).ctx(|| "re-execute from the sealed copy".into())
}
