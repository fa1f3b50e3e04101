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
        "ociVersion": crate::OCI_VERSION,
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
    // A hook without an `env` inherits ferrun's environment (and so `PATH`), as under runc
    // and crun; one with an `env` gets exactly that.
    if let Some(env) = &h.env {
        cmd.env_clear()
            .envs(env.iter().filter_map(|e| e.split_once('=')));
    }
    // The bundle is the hooks' working directory, as runc's (which runs from it).
    if let Some(bundle) = serde_json::from_str::<serde_json::Value>(state)
        .ok()
        .and_then(|s| s["bundle"].as_str().map(String::from))
        .filter(|b| std::path::Path::new(b).is_dir())
    {
        cmd.current_dir(bundle);
    }
    // SAFETY: close_range and setns are async-signal-safe; the closure touches only copied
    // integers. No fd of ferrun's (preserved or activation fds) reaches the hook.
    unsafe {
        cmd.pre_exec(move || {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            let Some((pidfd, flags)) = ns else {
                return Ok(());
            };
            if libc::setns(pidfd, flags as libc::c_int) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // In a user namespace: its root, as the container's own set-up runs.
            if flags & libc::CLONE_NEWUSER as u64 != 0
                && (libc::setresgid(0, 0, 0) < 0 || libc::setresuid(0, 0, 0) < 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            // A pid namespace takes children only: the hook runs as a child, this process waits
            // for it (and takes it along if killed).
            if flags & libc::CLONE_NEWPID as u64 != 0 {
                let pid = libc::fork();
                if pid < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if pid > 0 {
                    // The waiter holds no fd: pipe ends left here would keep the hook's stdin
                    // open (no EOF) and its output unfinished.
                    libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
                    let mut status = 0;
                    while libc::waitpid(pid, &mut status, 0) < 0 {
                        if *libc::__errno_location() != libc::EINTR {
                            libc::_exit(127);
                        }
                    }
                    let code = if libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status)
                    } else {
                        128 + libc::WTERMSIG(status)
                    };
                    libc::_exit(code);
                }
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                );
                // The waiter died before that took effect: its parent is outside our pid
                // namespace, so getppid() reads 0 while it lives.
                if libc::getppid() != 0 {
                    libc::_exit(1);
                }
            }
            Ok(())
        });
    }
    wait_hook(cmd, state, h.timeout, || {})
}

/// Spawns `cmd` with `state` on its stdin, drains its output while it runs, and waits for it
/// (at most `timeout` seconds, after which `on_timeout` runs and it is killed).
fn wait_hook(
    mut cmd: Command,
    state: &str,
    timeout: Option<u32>,
    on_timeout: impl Fn(),
) -> std::result::Result<(), String> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| crate::error::errno_text(e.raw_os_error().unwrap_or(libc::EIO)))?;
    // Threads, so that a hook that does not read its stdin, or writes a lot, cannot block us.
    // The kernel may refuse one (a joined pid namespace ferrun could not leave): an error, and
    // the hook is killed, rather than a panic.
    let stdin = child.stdin.take();
    let stdout = child
        .stdout
        .take()
        .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>);
    let stderr = child
        .stderr
        .take()
        .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>);
    let mut refused = |e: std::io::Error| {
        let _ = child.kill();
        let _ = child.wait();
        format!("start a thread for its stdio: {e}")
    };
    let input = match stdin {
        Some(mut stdin) => {
            let state = state.to_string();
            let writer = std::thread::Builder::new().spawn(move || {
                let _ = stdin.write_all(state.as_bytes());
            });
            Some(writer.map_err(&mut refused)?)
        }
        None => None,
    };
    let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
        r.map(|mut r| {
            std::thread::Builder::new().spawn(move || {
                let mut all = Vec::new();
                let _ = r.read_to_end(&mut all);
                all
            })
        })
        .transpose()
    };
    let out = drain(stdout).map_err(&mut refused)?;
    let err = drain(stderr).map_err(&mut refused)?;
    let deadline =
        timeout.map(|t| std::time::Instant::now() + std::time::Duration::from_secs(u64::from(t)));
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => return Err(format!("wait: {e}")),
        }
        if deadline.is_some_and(|d| std::time::Instant::now() > d) {
            on_timeout();
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {}s", timeout.unwrap_or(0)));
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    // A background process of the hook may hold its output open: read what came within a
    // second of its exit, then stop waiting for EOF.
    let grace = std::time::Instant::now() + std::time::Duration::from_secs(1);
    fn finished<T>(t: &std::thread::JoinHandle<T>, grace: std::time::Instant) -> bool {
        while !t.is_finished() && std::time::Instant::now() < grace {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        t.is_finished()
    }
    if let Some(t) = input.filter(|t| finished(t, grace)) {
        let _ = t.join();
    }
    if let Some(t) = out.filter(|t| finished(t, grace)) {
        let _ = t.join();
    }
    let stderr = err
        .filter(|t| finished(t, grace))
        .and_then(|t| t.join().ok())
        .unwrap_or_default();
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
    let text = String::from_utf8_lossy(&stderr);
    if let Some(last) = text.trim().lines().last() {
        msg.push_str(&format!(": {last}"));
    }
    Err(msg)
}

/// `startContainer` hooks: their program comes from the container's image, so each runs as a
/// process of the container, with everything `ferrun exec` gives one (its namespaces, cgroups,
/// user, capabilities, `no_new_privs` and seccomp filter), never as ferrun's own child on the host.
pub fn run_start_container(
    list: &[Hook],
    state: &str,
    root: &std::path::Path,
    id: &str,
    process: &serde_json::Value,
) -> Result<()> {
    for (i, h) in list.iter().enumerate() {
        let mut p = process.clone();
        let mut args = vec![h.path.clone()];
        args.extend(h.args.iter().skip(1).cloned());
        p["args"] = serde_json::json!(args);
        // Without an `env` of its own, the container process's (already in `p`).
        if let Some(env) = &h.env {
            p["env"] = serde_json::json!(env);
        }
        p["terminal"] = serde_json::json!(false);
        let dir = root.join(id);
        let file = dir.join(format!(".hook-{i}.json"));
        let pid_file = dir.join(format!(".hook-{i}.pid"));
        let fail =
            |e: String| crate::error::Error(format!("hooks.startContainer[{i}] {}: {e}", h.path));
        std::fs::write(&file, p.to_string()).map_err(|e| fail(e.to_string()))?;
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg("--root")
            .arg(root)
            .arg("exec")
            .arg("--pid-file")
            .arg(&pid_file)
            .arg("--process")
            .arg(&file)
            .arg(id);
        let r = wait_hook(cmd, state, h.timeout, || {
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
            {
                // SAFETY: killing the hook's process, which ferrun exec started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        let _ = std::fs::remove_file(&file);
        let _ = std::fs::remove_file(&pid_file);
        r.map_err(fail)?;
    }
    Ok(())
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
