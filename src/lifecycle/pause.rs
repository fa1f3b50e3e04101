//! `ferrun pause` and `ferrun resume`: freeze and thaw every process of the container.

use super::common::live;
use crate::bail;
use crate::error::Result;
use crate::state::{Status, Store};

/// `ferrun pause`: freeze every process of a created or running container.
pub fn pause(store: &Store, id: &str) -> Result<()> {
    let (_, status, c) = live(store, id, "pause")?;
    if !matches!(status, Status::Running | Status::Created) {
        bail!(
            "cannot pause container {id}: container not running (it is {})",
            status.as_str()
        );
    }
    c.set_frozen(true)
}

/// `ferrun resume`: thaw a paused container.
pub fn resume(store: &Store, id: &str) -> Result<()> {
    let (_, status, c) = live(store, id, "resume")?;
    if status != Status::Paused {
        bail!(
            "cannot resume container {id}: container not paused (it is {})",
            status.as_str()
        );
    }
    c.set_frozen(false)
}
