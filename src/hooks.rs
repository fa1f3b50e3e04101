//! OCI hooks: each a program run with the container's state JSON on its stdin, its own argv and
//! environment, killed after its timeout. `createContainer` and `startContainer` hooks run in
//! the container's namespaces (joined through its pidfd between fork and exec); the others in
//! ferrun's.

use crate::bail;
use crate::error::Result;
use ferrun_plans::{Hook, Hooks};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// The state a hook reads on its stdin.
pub fn state(hooks: &Hooks, id: &str, status: &str, pid: i32, bundle: &str) -> String {
    let annotations: serde_json::Map<String, serde_json::Value> = hooks
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
        .collect();
    serde_json::json!({
        "ociVersion": crate::state::OCI_VERSION,
        "id": id,
        "status": status,
        "pid": pid,
        "bundle": bundle,
        "annotations": annotations,
    })
    .to_string()
}

/// Runs `list` in order; the first failure is the error (naming the phase and the hook).
/// `ns` is `(pidfd, CLONE_NEW* flags)` of the namespaces to run in.
pub fn run(phase: &str, list: &[Hook], state: &str, ns: Option<(i32, u64)>) -> Result<()> {
    for (i, h) in list.iter().enumerate() {
        run_one(h, state, ns)
            .map_err(|e| crate::error::Error(format!("hooks.{phase}[{i}] {}: {}", h.path, e)))?;
    }
    Ok(())
}

/// As [`run`], but a failure is only a warning (poststart, poststop).
pub fn run_warn(phase: &str, list: &[Hook], state: &str) {
    for (i, h) in list.iter().enumerate() {
        if let Err(e) = run_one(h, state, None) {
            crate::log::warn(&format!("hooks.{phase}[{i}] {}: {e}", h.path));
        }
    }
}

fn run_one(h: &Hook, state: &str, ns: Option<(i32, u64)>) -> std::result::Result<(), String> {
    let mut cmd = Command::new(&h.path);
    if let Some((first, rest)) = h.args.split_first() {
        cmd.arg0(first).args(rest);
    }
    cmd.env_clear()
        .envs(h.env.iter().filter_map(|e| e.split_once('=')))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((pidfd, flags)) = ns {
        // SAFETY: setns is async-signal-safe; the closure touches only copied integers.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(pidfd, flags as libc::c_int) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| crate::error::errno_text(e.raw_os_error().unwrap_or(libc::EIO)))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is not a failure.
        let _ = stdin.write_all(state.as_bytes());
    }
    let deadline = h
        .timeout
        .map(|t| std::time::Instant::now() + std::time::Duration::from_secs(u64::from(t)));
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => return Err(format!("wait: {e}")),
        }
        if deadline.is_some_and(|d| std::time::Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {}s", h.timeout.unwrap_or(0)));
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    let out = child.wait_with_output().map_err(|e| format!("wait: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let mut msg = match status.code() {
        Some(c) => format!("exit status {c}"),
        None => format!(
            "killed by signal {}",
            std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
        ),
    };
    let text = String::from_utf8_lossy(&out.stderr);
    let text = text.trim();
    if !text.is_empty() {
        msg.push_str(&format!(": {}", text.lines().last().unwrap_or("")));
    }
    Err(msg)
}

/// Checks that every hook path exists before anything is created (a typo fails fast).
pub fn check(hooks: &Hooks) -> Result<()> {
    for (phase, list) in hooks.phases() {
        for (i, h) in list.iter().enumerate() {
            // createContainer/startContainer paths resolve in the container: not checkable here.
            if matches!(phase, "startContainer") {
                continue;
            }
            if !std::path::Path::new(&h.path).exists() {
                bail!("hooks.{phase}[{i}].path: {} does not exist", h.path);
            }
        }
    }
    Ok(())
}
