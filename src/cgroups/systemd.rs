//! The systemd cgroup driver's half that talks to systemd: a transient scope started with the
//! container's pid (`Delegate=yes`, the resources systemd has properties for), its properties
//! changed by `update`, and the scope stopped at `delete`, all over the system bus with zbus, a
//! pure-Rust D-Bus client. A unit is known by its `InvocationID` as well as its name, so that
//! ferrun never stops or kills a later unit that took the same name. Nothing here runs for the
//! cgroupfs manager.

use crate::error::{Error, Result};
use ferrun_plans::cgroups::{SystemdScope, UnitProperty, UnitValue};
use futures_lite::StreamExt;
use std::time::Duration;
use zbus::zvariant::{OwnedObjectPath, Value};

/// How long a job (start or stop of a scope) may take.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_blocking = false
)]
trait Manager {
    fn subscribe(&self) -> zbus::Result<()>;

    fn start_transient_unit(
        &self,
        name: &str,
        mode: &str,
        properties: &[(&str, Value<'_>)],
        aux: &[(&str, &[(&str, Value<'_>)])],
    ) -> zbus::Result<OwnedObjectPath>;

    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;

    fn get_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;

    fn set_unit_properties(
        &self,
        name: &str,
        runtime: bool,
        properties: &[(&str, Value<'_>)],
    ) -> zbus::Result<()>;

    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;

    /// The manager's own cgroup: `/` for the system's, `…/user@<uid>.service` for a user's.
    #[zbus(property)]
    fn control_group(&self) -> zbus::Result<String>;

    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

/// True when systemd is PID 1 (the check runc and crun make).
pub fn running() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
}

async fn connect(what: &str) -> Result<ManagerProxy<'static>> {
    if !running() {
        return Err(Error(format!(
            "{what}: systemd is not running on this host (no /run/systemd/system); \
             the systemd cgroup manager needs it (use the cgroupfs manager)"
        )));
    }
    let conn = if crate::host::rootless::detect() {
        // A rootless caller's scopes are its own systemd's, on its user bus. In a user
        // namespace (rootless podman) the bus knows the caller by its uid outside.
        let address = "your user bus (DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus)";
        zbus::connection::Builder::session()
            .map_err(|e| Error(format!("{what}: {address}: {e}")))?
            .user_id(host_uid())
            .build()
            .await
            .map_err(|e| Error(format!("{what}: connect to {address}: {e}")))?
    } else {
        zbus::Connection::system()
            .await
            .map_err(|e| Error(format!("{what}: connect to the system bus: {e}")))?
    };
    ManagerProxy::new(&conn)
        .await
        .map_err(|e| Error(format!("{what}: systemd's manager on the bus: {e}")))
}

/// The effective uid as the initial user namespace sees it (`/proc/self/uid_map`).
fn host_uid() -> u32 {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    for line in map.lines() {
        let f: Vec<u64> = line
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        if let [inside, outside, count] = f[..]
            && (inside..inside + count).contains(&u64::from(euid))
        {
            return (outside + u64::from(euid) - inside) as u32;
        }
    }
    euid
}

/// The cgroup of the systemd that makes the scopes (a user's manager lives below
/// `user@<uid>.service`), relative to the cgroup2 mount.
pub fn manager_cgroup() -> Result<String> {
    async_io::block_on(async {
        let m = connect("--systemd-cgroup").await?;
        m.control_group()
            .await
            .map_err(|e| Error(format!("--systemd-cgroup: the manager's ControlGroup: {e}")))
    })
}

fn value(v: &UnitValue) -> Value<'static> {
    match v {
        UnitValue::U64(n) => Value::from(*n),
        UnitValue::Bool(b) => Value::from(*b),
        UnitValue::Bytes(b) => Value::from(b.clone()),
    }
}

fn is_error(e: &zbus::Error, name: &str) -> bool {
    matches!(e, zbus::Error::MethodError(n, _, _) if n.as_str() == name)
}

/// A failed start: the error, and the invocation of a unit this call made anyway (a job that
/// failed after the unit was created), which the caller must stop.
pub struct StartFailed {
    pub error: Error,
    pub made: Option<String>,
}

/// Starts `scope` with `pid` in it and waits for the job; returns the unit's invocation id.
pub fn start_scope(
    scope: &SystemdScope,
    pid: i32,
    id: &str,
) -> std::result::Result<String, StartFailed> {
    let what = format!("systemd scope {}", scope.unit);
    async_io::block_on(async {
        let failed = |error| StartFailed { error, made: None };
        let m = connect(&what).await.map_err(failed)?;
        let description = format!("ferrun container {id}");
        let mut props: Vec<(&str, Value<'_>)> = vec![
            ("Description", Value::from(description.as_str())),
            ("Slice", Value::from(scope.slice.as_str())),
            ("Delegate", Value::from(true)),
            // Started at once, with no ordering on other units (runc's choice for scopes).
            ("DefaultDependencies", Value::from(false)),
            ("PIDs", Value::from(vec![pid as u32])),
            ("MemoryAccounting", Value::from(true)),
            ("CPUAccounting", Value::from(true)),
            ("IOAccounting", Value::from(true)),
            ("TasksAccounting", Value::from(true)),
        ];
        props.extend(
            scope
                .properties
                .iter()
                .map(|p| (p.name.as_str(), value(&p.value))),
        );
        let start = || {
            run_job(&m, || {
                m.start_transient_unit(&scope.unit, "replace", &props, &[])
            })
        };
        let r = match start().await {
            // A failed unit of that name, which systemd keeps until it is reset, is no one's:
            // reset it and try once more.
            Err(JobError::Call(e)) if is_error(&e, "org.freedesktop.systemd1.UnitExists") => {
                if unit_active(&m, &scope.unit).await {
                    Err(JobError::Call(e))
                } else {
                    let _ = m.reset_failed_unit(&scope.unit).await;
                    start().await
                }
            }
            r => r,
        };
        match r {
            Ok(()) => match invocation(&m, &scope.unit).await {
                Ok(Some(inv)) => Ok(inv),
                Ok(None) => Err(failed(Error(format!(
                    "{what}: started, but it is gone already (did the container process die?)"
                )))),
                Err(e) => Err(failed(Error(format!("{what}: its invocation id: {e}")))),
            },
            // The unit was made; its job failed: it is ours to stop.
            Err(e @ (JobError::Result(_) | JobError::Timeout | JobError::Closed)) => {
                Err(StartFailed {
                    made: invocation(&m, &scope.unit).await.ok().flatten(),
                    error: e.into_error(&what, "start"),
                })
            }
            Err(e) => Err(failed(e.into_error(&what, "start"))),
        }
    })
}

/// Stops the scope (killing what is left in it) and waits, if it is still the unit that
/// `invocation` names: true when it was. A unit that is gone, or that is another one by now,
/// is left alone.
pub fn stop_scope(unit: &str, invocation_id: &str) -> Result<bool> {
    let what = format!("systemd scope {unit}");
    async_io::block_on(async {
        let m = connect(&what).await?;
        if !is_current_on(&m, &what, unit, invocation_id).await? {
            crate::log::debug(&format!(
                "{what}: gone, or another unit by now: not stopped"
            ));
            return Ok(false);
        }
        let r = run_job(&m, || m.stop_unit(unit, "replace")).await;
        let _ = m.reset_failed_unit(unit).await;
        match r {
            Ok(()) => Ok(true),
            Err(JobError::Call(e)) if is_error(&e, "org.freedesktop.systemd1.NoSuchUnit") => {
                Ok(false)
            }
            Err(e) => Err(e.into_error(&what, "stop")),
        }
    })
}

/// Whether the unit `invocation_id` names is still the live one of that name. An error (the
/// bus unreachable, access refused) is not a "no": the caller keeps its state for a retry.
pub fn is_current(unit: &str, invocation_id: &str) -> Result<bool> {
    let what = format!("systemd scope {unit}");
    async_io::block_on(async {
        let m = connect(&what).await?;
        is_current_on(&m, &what, unit, invocation_id).await
    })
}

async fn is_current_on(
    m: &ManagerProxy<'_>,
    what: &str,
    unit: &str,
    invocation_id: &str,
) -> Result<bool> {
    let live = invocation(m, unit)
        .await
        .map_err(|e| Error(format!("{what}: {e}")))?;
    Ok(live.as_deref() == Some(invocation_id))
}

/// `update`: the new resources as runtime properties of the scope.
pub fn set_properties(unit: &str, properties: &[UnitProperty]) -> Result<()> {
    if properties.is_empty() {
        return Ok(());
    }
    let what = format!("systemd scope {unit}");
    async_io::block_on(async {
        let m = connect(&what).await?;
        let props: Vec<(&str, Value<'_>)> = properties
            .iter()
            .map(|p| (p.name.as_str(), value(&p.value)))
            .collect();
        m.set_unit_properties(unit, true, &props)
            .await
            .map_err(|e| Error(format!("{what}: set properties: {e}")))
    })
}

/// The unit's object, or None when systemd has no such unit loaded.
async fn unit_proxy<'a>(m: &ManagerProxy<'a>, unit: &str) -> zbus::Result<Option<zbus::Proxy<'a>>> {
    let path = match m.get_unit(unit).await {
        Ok(p) => p,
        Err(e) if is_error(&e, "org.freedesktop.systemd1.NoSuchUnit") => return Ok(None),
        Err(e) => return Err(e),
    };
    zbus::Proxy::new(
        m.inner().connection(),
        "org.freedesktop.systemd1",
        path,
        "org.freedesktop.systemd1.Unit",
    )
    .await
    .map(Some)
}

/// The unit's `InvocationID` in hex, or None when no such unit is loaded.
async fn invocation(m: &ManagerProxy<'_>, unit: &str) -> zbus::Result<Option<String>> {
    let Some(p) = unit_proxy(m, unit).await? else {
        return Ok(None);
    };
    let id: Vec<u8> = p.get_property("InvocationID").await?;
    if id.is_empty() {
        return Ok(None);
    }
    Ok(Some(id.iter().map(|b| format!("{b:02x}")).collect()))
}

async fn unit_active(m: &ManagerProxy<'_>, unit: &str) -> bool {
    let Ok(Some(p)) = unit_proxy(m, unit).await else {
        return false;
    };
    let state: String = p.get_property("ActiveState").await.unwrap_or_default();
    matches!(
        state.as_str(),
        "active" | "activating" | "deactivating" | "reloading"
    )
}

enum JobError {
    Call(zbus::Error),
    Result(String),
    Timeout,
    Closed,
}

impl JobError {
    fn into_error(self, what: &str, verb: &str) -> Error {
        match self {
            JobError::Call(e) => Error(format!("{what}: {verb}: {e}")),
            JobError::Result(r) => Error(format!("{what}: {verb}: the job ended {r:?}")),
            JobError::Timeout => Error(format!(
                "{what}: {verb}: the job did not finish in {} s",
                JOB_TIMEOUT.as_secs()
            )),
            JobError::Closed => Error(format!(
                "{what}: {verb}: the bus closed before the job ended"
            )),
        }
    }
}

/// Calls `enqueue` (which returns a job's path) and waits for that job's `JobRemoved`. The
/// signal is subscribed to before the call, so that a quick job cannot be missed.
async fn run_job<F, Fut>(m: &ManagerProxy<'_>, enqueue: F) -> std::result::Result<(), JobError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = zbus::Result<OwnedObjectPath>>,
{
    // A second Subscribe on one connection (the UnitExists retry) is refused as such.
    match m.subscribe().await {
        Err(e) if !is_error(&e, "org.freedesktop.systemd1.AlreadySubscribed") => {
            return Err(JobError::Call(e));
        }
        _ => {}
    }
    let mut signals = m.receive_job_removed().await.map_err(JobError::Call)?;
    let job = enqueue().await.map_err(JobError::Call)?;
    let wait = async {
        while let Some(s) = signals.next().await {
            if let Ok(a) = s.args()
                && a.job == job
            {
                return if a.result == "done" {
                    Ok(())
                } else {
                    Err(JobError::Result(a.result.clone()))
                };
            }
        }
        Err(JobError::Closed)
    };
    let timeout = async {
        async_io::Timer::after(JOB_TIMEOUT).await;
        Err(JobError::Timeout)
    };
    futures_lite::future::or(wait, timeout).await
}
