//! `ferrun create`: set the container up and leave it waiting for `start`.

use super::common::CreateOpts;
use super::launch::{Mode, launch};
use crate::error::Result;
use crate::host::files::write_pid_file;
use crate::state::Store;

/// `ferrun create`: set the container up and leave it waiting for `start`.
pub fn create(store: &Store, opts: &CreateOpts) -> Result<()> {
    let mut l = launch(store, opts, Mode::Create, None)?;
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, l.child.pid)?;
    }
    l.guard.armed = false;
    // SAFETY: our pidfd; the process stays, it is only the handle that goes.
    unsafe { libc::close(l.child.pidfd) };
    Ok(())
}
