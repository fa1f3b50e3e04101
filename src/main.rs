//! The entry point. ferrun takes glibc's `main` itself instead of std's runtime start-up, which
//! would cost every exec (ferrun runs twice per container: see `host::sealed`) a read of
//! `/proc/self/maps` and a signal stack for its stack-overflow message. What of that start-up
//! matters is kept: stdio fds 0–2 are made to exist (so a file opened later can never become
//! stdout), and SIGPIPE is ignored, so a closed pipe is an error, not a silent death.
//!
//! On x86_64 the ELF entry is `ferrun_entry` (build.rs), which runs before glibc's `_start`:
//! before the image relocates itself and before anything but the stack exists. When root runs
//! `create`, `run` or `exec` from a writable image, it re-executes the same command from a
//! read-only detached bind of the binary right there (`host::sealed` explains why), so the
//! first, throw-away process costs an exec, six syscalls and a few page faults instead of a
//! whole start-up.
//! Anything it does not handle (rootless, no mount API) falls through to `_start`, and
//! `host::sealed` decides as before.
#![no_main]

#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    ferrun::host::stdio::sanitize();
    // std::process::exit flushes stdout, as returning from std's main would.
    std::process::exit(ferrun::cli::main());
}

#[cfg(all(
    target_arch = "x86_64",
    target_pointer_width = "64",
    target_os = "linux"
))]
mod entry {
    //! Code that runs before relocation: no statics holding pointers, no libc (its TLS is not
    //! set up, its memcpy is an unresolved IFUNC), no allocation, no panic; raw syscalls only.
    //! Builds that read `fs:` or need markers early (stack protectors, sanitizers, CET) would
    //! break it.

    // The kernel starts us with rsp at argc and rdx holding a function for atexit (0 when
    // static). Both are handed to `_start` exactly as they came.
    std::arch::global_asm!(
        ".globl ferrun_entry",
        ".type ferrun_entry,@function",
        "ferrun_entry:",
        ".cfi_startproc",
        ".cfi_undefined rip",
        "mov r12, rdx",
        "mov r13, rsp",
        "mov rdi, rsp",
        "and rsp, -16",
        "call {pre}",
        "mov rsp, r13",
        "mov rdx, r12",
        "jmp _start",
        ".cfi_endproc",
        ".size ferrun_entry, .-ferrun_entry",
        pre = sym pre_start,
    );

    unsafe fn syscall(
        n: libc::c_long,
        a0: usize,
        a1: usize,
        a2: usize,
        a3: usize,
        a4: usize,
    ) -> isize {
        let ret: isize;
        // SAFETY: the caller passes a syscall's number and arguments.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") n as isize => ret,
                in("rdi") a0,
                in("rsi") a1,
                in("rdx") a2,
                in("r10") a3,
                in("r8") a4,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }

    /// Whether the NUL-terminated `s` is `word` (which ends in NUL). Raw reads and
    /// `wrapping_add`: in a debug build, `ptr::add` and `read_volatile` check their
    /// preconditions through code that needs the relocations not yet made.
    unsafe fn is(s: *const u8, word: &[u8]) -> bool {
        let mut i = 0;
        while i < word.len() {
            // SAFETY: s is a NUL-terminated argv string; we stop at its NUL or a mismatch.
            let c = unsafe { *s.wrapping_add(i) };
            if c != word[i] {
                return false;
            }
            if c == 0 {
                return true;
            }
            i += 1;
        }
        false
    }

    unsafe extern "C" fn pre_start(sp: *const usize) {
        use libc::{
            AT_EMPTY_PATH, AT_FDCWD, MOUNT_ATTR_RDONLY, OPEN_TREE_CLOEXEC, OPEN_TREE_CLONE,
            ST_RDONLY, SYS_close, SYS_execveat, SYS_geteuid, SYS_mount_setattr, SYS_open_tree,
            SYS_stat, SYS_statfs,
        };
        // The initial user namespace's inode number (PROC_USER_INIT_INO), fixed by the kernel.
        const INIT_USER_NS_INO: u64 = 0xEFFF_FFFD;
        // SAFETY: the System V start-up stack: argc, argv[argc] and a NULL, then envp.
        unsafe {
            let argc = *sp;
            let argv = sp.wrapping_add(1) as *const *const u8;
            let envp = argv.wrapping_add(argc + 1);
            let mut starts = false;
            let mut i = 1;
            while i < argc {
                let a = *argv.wrapping_add(i);
                if is(a, b"create\0") || is(a, b"run\0") || is(a, b"exec\0") {
                    starts = true;
                    break;
                }
                i += 1;
            }
            // Rootless callers (another uid, or root of a user namespace: rootless podman) are
            // judged by host::sealed (out of reach, or a memfd copy).
            if !starts || syscall(SYS_geteuid, 0, 0, 0, 0, 0) != 0 {
                return;
            }
            // struct stat is 144 bytes; st_ino is its second word. The kernel fills it.
            let userns = b"/proc/self/ns/user\0";
            let mut ns = std::mem::MaybeUninit::<[u64; 18]>::uninit();
            let ns_ptr = ns.as_mut_ptr() as usize;
            if syscall(SYS_stat, userns.as_ptr() as usize, ns_ptr, 0, 0, 0) != 0
                || (*ns.as_ptr())[1] != INIT_USER_NS_INO
            {
                return;
            }
            let exe = b"/proc/self/exe\0";
            // struct statfs is 120 bytes; f_flags is its eleventh word. Unknown (the call
            // refused): no re-exec here, or each image would re-execute the next.
            let mut st = std::mem::MaybeUninit::<[u64; 15]>::uninit();
            let st_ptr = st.as_mut_ptr() as usize;
            if syscall(SYS_statfs, exe.as_ptr() as usize, st_ptr, 0, 0, 0) != 0
                || (*st.as_ptr())[10] & ST_RDONLY != 0
            {
                return;
            }
            let fd = syscall(
                SYS_open_tree,
                AT_FDCWD as usize,
                exe.as_ptr() as usize,
                (OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC) as usize,
                0,
                0,
            );
            if fd < 0 {
                return;
            }
            // Set field by field: a struct copied from a constant could become a call to
            // memcpy, an IFUNC not resolved yet.
            let mut attr = libc::mount_attr {
                attr_set: 0,
                attr_clr: 0,
                propagation: 0,
                userns_fd: 0,
            };
            attr.attr_set = MOUNT_ATTR_RDONLY;
            let empty = b"\0";
            let attr_ptr = &attr as *const libc::mount_attr as usize;
            if syscall(
                SYS_mount_setattr,
                fd as usize,
                empty.as_ptr() as usize,
                AT_EMPTY_PATH as usize,
                attr_ptr,
                std::mem::size_of::<libc::mount_attr>(),
            ) == 0
            {
                // Returns only on failure.
                syscall(
                    SYS_execveat,
                    fd as usize,
                    empty.as_ptr() as usize,
                    argv as usize,
                    envp as usize,
                    AT_EMPTY_PATH as usize,
                );
            }
            syscall(SYS_close, fd as usize, 0, 0, 0, 0);
        }
    }
}
