//! The entry point. ferrun takes glibc's `main` itself instead of std's runtime start-up, which
//! would cost every exec (ferrun runs twice per container: see `host::sealed`) a read of
//! `/proc/self/maps` and a signal stack for its stack-overflow message. What of that start-up
//! matters is kept: stdio fds 0–2 are made to exist (so a file opened later can never become
//! stdout), and SIGPIPE is ignored, so a closed pipe is an error, not a silent death.
#![no_main]

#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    ferrun::host::stdio::sanitize();
    // std::process::exit flushes stdout, as returning from std's main would.
    std::process::exit(ferrun::cli::main());
}
