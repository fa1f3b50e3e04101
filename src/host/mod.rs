//! Host plumbing that the lifecycle commands are built from: the sync protocol's fds, criu's
//! RPC, the console, signals, hooks, the notify socket, the sealed (read-only) binary, writes under
//! `/proc`, small files, and the process's own start-up (stdio, SIGPIPE). It may use only
//! `log`, `error` and the plans and executor crates; it knows nothing of containers' state.

pub mod console;
pub mod criu;
pub mod fd;
pub mod files;
pub mod hooks;
pub mod netdev;
pub mod notify;
pub mod procfs;
pub mod rootless;
pub mod sealed;
pub mod signals;
pub mod stdio;
pub mod trees;
