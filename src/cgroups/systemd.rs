//! The systemd cgroup driver's half that talks to systemd: a transient scope started with the
//! container's pid (`Delegate=yes`, the resources systemd has properties for), its properties
//! changed by `update`, and the scope stopped at `delete`. Over the system bus with zbus, a
//! pure-Rust D-Bus client; nothing here runs for the cgroupfs manager.

use crate::error::{Error, Result};
use ferrun_plans::cgroups::{SystemdScope, UnitProperty, UnitValue};
use std::time::Duration;
use zbus::zvariant::{OwnedObjectPath, Value};

/// How long a job (start or stop of a scope) may take.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_async = false,
    blocking_name = "Manager"
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

    fn set_unit_properties(
        &self,
        name: &str,
        runtime: bool,
        properties: &[(&str, Value<'_>)],
    ) -> zbus::Result<()>;

    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;

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

fn connect(what: &str) -> Result<Manager<'static>> {
    if !running() {
        return Err(Error(format!(
            "{what}: systemd is not running on this host (no /run/systemd/system); \
             the systemd cgroup manager needs it (use the cgroupfs manager)"
        )));
    }
    let conn = zbus::blocking::Connection::system()
        .map_err(|e| Error(format!("{what}: connect to the system bus: {e}")))?;
    Manager::new(&conn).map_err(|e| Error(format!("{what}: systemd's manager on the bus: {e}")))
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

/// Starts `scope` with `pid` in it and waits for the job. The container's resources go in as
/// properties; systemd then owns the cgroup and delegates it.
pub fn start_scope(scope: &SystemdScope, pid: i32, id: &str) -> Result<()> {
    let what = format!("systemd scope {}", scope.unit);
    let m = connect(&what)?;
    let description = format!("ferrun container {id}");
    let pids = vec![pid as u32];
    let mut props: Vec<(&str, Value<'_>)> = vec![
        ("Description", Value::from(description.as_str())),
        ("Slice", Value::from(scope.slice.as_str())),
        ("Delegate", Value::from(true)),
        // A scope ordered after nothing is started at once, even during shutdown (runc's choice).
        ("DefaultDependencies", Value::from(false)),
        ("PIDs", Value::from(pids)),
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
        run_job(&m, &what, || {
            m.start_transient_unit(&scope.unit, "replace", &props, &[])
        })
    };
    match start() {
        // A failed unit of the same name is only a leftover: systemd keeps it until reset.
        Err(JobError::Call(e)) if is_error(&e, "org.freedesktop.systemd1.UnitExists") => {
            let _ = m.reset_failed_unit(&scope.unit);
            start().map_err(|e| e.into_error(&what, "start"))
        }
        r => r.map_err(|e| e.into_error(&what, "start")),
    }
}

/// Stops the scope (killing what is left in it) and waits; a unit already gone is no error.
pub fn stop_scope(unit: &str) -> Result<()> {
    let what = format!("systemd scope {unit}");
    let m = connect(&what)?;
    let r = run_job(&m, &what, || m.stop_unit(unit, "replace"));
    let _ = m.reset_failed_unit(unit);
    match r {
        Ok(()) => Ok(()),
        Err(JobError::Call(e)) if is_error(&e, "org.freedesktop.systemd1.NoSuchUnit") => Ok(()),
        // "done" for a stop; a scope that died meanwhile reports other results that still mean
        // it is gone.
        Err(JobError::Result(r)) if r == "canceled" || r == "failed" => Ok(()),
        Err(e) => Err(e.into_error(&what, "stop")),
    }
}

/// `update`: the new resources as runtime properties of the scope.
pub fn set_properties(unit: &str, properties: &[UnitProperty]) -> Result<()> {
    if properties.is_empty() {
        return Ok(());
    }
    let what = format!("systemd scope {unit}");
    let m = connect(&what)?;
    let props: Vec<(&str, Value<'_>)> = properties
        .iter()
        .map(|p| (p.name.as_str(), value(&p.value)))
        .collect();
    m.set_unit_properties(unit, true, &props)
        .map_err(|e| Error(format!("{what}: set properties: {e}")))
}

enum JobError {
    Call(zbus::Error),
    Result(String),
    Timeout,
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
        }
    }
}

/// Calls `enqueue` (which returns a job's path) and waits for that job's `JobRemoved`. The
/// signal is subscribed to before the call, so that a quick job cannot be missed.
fn run_job(
    m: &Manager<'_>,
    what: &str,
    enqueue: impl FnOnce() -> zbus::Result<OwnedObjectPath>,
) -> std::result::Result<(), JobError> {
    m.subscribe().map_err(JobError::Call)?;
    let signals = m.receive_job_removed().map_err(JobError::Call)?;
    let (tx, rx) = std::sync::mpsc::channel();
    // The blocking iterator has no timeout of its own: it runs on a thread, read with one.
    let reader = std::thread::Builder::new()
        .name("ferrun-dbus-jobs".into())
        .spawn(move || {
            for s in signals {
                if let Ok(a) = s.args()
                    && tx.send((a.job.clone(), a.result.clone())).is_err()
                {
                    return;
                }
            }
        });
    if reader.is_err() {
        crate::log::debug(&format!("{what}: no thread to wait on the job"));
    }
    let job = enqueue().map_err(JobError::Call)?;
    let deadline = std::time::Instant::now() + JOB_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok((path, result)) if path == job => {
                return if result == "done" {
                    Ok(())
                } else {
                    Err(JobError::Result(result))
                };
            }
            Ok(_) => {}
            Err(_) => return Err(JobError::Timeout),
        }
    }
}
