//! ferrun, the runtime: the OCI lifecycle, the state store, the plan cache, logging and the
//! runc-compatible command line. Set-up syscalls are never built here: the planner plans them
//! and the executor replays them (see DESIGN.md).

pub mod cache;
pub mod cgroups;
pub mod cli;
pub mod commands;
pub mod console;
pub mod container;
pub mod error;
pub mod exec;
pub mod hooks;
pub mod log;
pub mod manage;
pub mod notify;
pub mod procfs;
pub mod sealed;
pub mod state;

/// The calling thread's errno.
pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}
