//! The OCI lifecycle, one file per command, as the runtime spec and runc name them: `create`,
//! `start`, `run`, `kill`, `delete`, `exec`, `pause`/`resume`, `ps`, `events`, `update`, `checkpoint`
//! and `restore` (with `criu`, what both tell criu of a container), and the informational ones
//! (`state`, `list`, `spec`, `features`, `plan`, `seccomp`). `launch` is the
//! parent side of a container start that `create` and `run` share, in the plan's phases.
//!
//! Commands may use the services below them (`cache`, `state`, `cgroups`, `host`) and each
//! other's shared parts (`common`); nothing below points back up.

pub mod checkpoint;
pub mod checks;
pub mod common;
pub mod create;
pub mod criu;
pub mod delete;
pub mod events;
pub mod exec;
pub mod failure;
pub mod info;
pub mod kill;
pub mod launch;
pub mod pause;
pub mod profile;
pub mod ps;
pub mod restore;
pub mod run;
pub mod start;
pub mod update;

pub use common::CreateOpts;
pub use create::create;
pub use delete::delete;
pub use kill::{kill, parse_signal};
pub use run::run;
pub use start::start;
