//! The OCI state document: what `ferrun state` and `list --format json` print, and what hooks read
//! on their stdin (runc's field set).

use super::{State, Status};
use serde::Serialize;

/// The OCI state as `ferrun state` prints it (runc's field set).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: &'a str,
    pub bundle: &'a str,
    pub rootfs: &'a str,
    pub created: &'a str,
    pub owner: &'a str,
}

pub fn oci_state_json(s: &State, status: Status, pretty: bool) -> String {
    let o = OciState {
        oci_version: crate::OCI_VERSION,
        id: &s.id,
        pid: if status == Status::Stopped { 0 } else { s.pid },
        status: status.as_str(),
        bundle: &s.bundle,
        rootfs: &s.rootfs,
        created: &s.created,
        owner: &s.owner,
    };
    let r = if pretty {
        serde_json::to_string_pretty(&o)
    } else {
        serde_json::to_string(&o)
    };
    r.unwrap_or_default()
}
