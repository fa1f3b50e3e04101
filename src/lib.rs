//! ferrun, the runtime: the OCI lifecycle, the state store, the plan cache, logging and the
//! runc-compatible command line. Set-up syscalls are never built here: the planner plans them
//! and the executor replays them (see docs/DESIGN.md).
//!
//! Rooms, each using only those listed after it (tests/layout.rs checks it):
//! `cli` → `lifecycle` → `cache` → `state` → `cgroups` → `host` → `log`, `error` and this root.

pub mod cli;
pub mod lifecycle;

pub mod cache;
pub mod cgroups;
pub mod host;
pub mod state;

pub mod error;
pub mod log;

/// The runtime spec version ferrun reports in states and features.
pub const OCI_VERSION: &str = "1.3.0";

/// The calling thread's errno.
pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}
