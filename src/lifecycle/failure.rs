//! A container process's failure in words: the failed step's listing line and errno (with runc's
//! wording where engines match on it), and why a process died during set-up without saying so.

use crate::cgroups::Cgroup;
use crate::error::errno_text;
use ferrun_executor::{Record, SharedPage};
use ferrun_plans::{Plan, Step};

/// `step 12 mount ... on /proc: Operation not permitted`, with runc's words where engines
/// match on them.
pub fn render_failure(plan: &Plan, r: Record) -> String {
    let Some(step) = plan.steps.get(r.step as usize) else {
        return format!(
            "container process failed after its last step: {}",
            errno_text(r.errno)
        );
    };
    if let Step::ResolveExec { name, .. } = step {
        let text = name.text();
        let name = ferrun_plans::clip(&text, 300);
        return match r.errno {
            libc::ENOENT if name.contains('/') => {
                format!("exec: {name:?}: stat {name}: no such file or directory")
            }
            libc::ENOENT => format!("exec: {name:?}: executable file not found in $PATH"),
            libc::EACCES => format!("exec: {name:?}: permission denied"),
            e => format!("exec: {name:?}: {}", errno_text(e)),
        };
    }
    if let Step::Exec { argv, .. } = step {
        let name = argv
            .first()
            .map(|a| ferrun_plans::clip(&a.text(), 300).into_owned())
            .unwrap_or_default();
        return format!("exec {name:?}: {}", errno_text(r.errno).to_lowercase());
    }
    let why = match r.errno {
        ferrun_executor::E_INSIDE_PROC => {
            "it resolves inside /proc (through a symlink or an earlier mount), \
             where nothing may be mounted"
                .to_string()
        }
        ferrun_executor::E_NOT_PROCFS => "the file reached is not on procfs".to_string(),
        ferrun_executor::E_NOT_ORDINARY_DIR => {
            "proc and sysfs must be mounted on an ordinary directory, and the rootfs has a \
             symlink or a non-directory there"
                .to_string()
        }
        e => errno_text(e),
    };
    format!(
        "step {} {}: {why}",
        plan.step_number(r.step as usize),
        ferrun_plans::clip(&step.to_string(), 400)
    )
}

/// The listing number of the last seccomp filter installed before step `index`.
pub(crate) fn filter_before(plan: &Plan, index: usize) -> Option<usize> {
    plan.steps
        .iter()
        .take(index)
        .rposition(|s| matches!(s, Step::Seccomp { .. }))
        .map(|i| plan.step_number(i))
}

/// A failure the child could only leave on the shared page: a seccomp filter refused its report.
pub(crate) fn failure_under_filter(plan: &Plan, r: Record) -> String {
    let mut msg = render_failure(plan, r);
    if let Some(n) = filter_before(plan, r.step as usize) {
        msg.push_str(&format!(
            " (under the seccomp filter of step {n}, which also refused ferrun's report: \
             linux.seccomp must allow what the runtime calls after it)"
        ));
    }
    msg
}

/// Why a container process ended during set-up without a record on the socket: its failure
/// from the shared page, else the signal (or exit) and the likely cause.
pub(crate) fn describe_death(
    plan: &Plan,
    page: &SharedPage,
    status: i32,
    (cgroup, oom_before): (Option<&Cgroup>, u64),
) -> String {
    let progress = page.progress();
    if let Some(r) = progress.failure {
        return failure_under_filter(plan, r);
    }
    let at = progress
        .at
        .map(|i| i as usize)
        .and_then(|i| plan.steps.get(i).map(|s| (i, s)));
    let where_ = match at {
        Some((i, s)) => format!(
            " at step {} {}",
            plan.step_number(i),
            ferrun_plans::clip(&s.to_string(), 200)
        ),
        None => String::new(),
    };
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        let name = nix::sys::signal::Signal::try_from(sig)
            .map_or_else(|_| format!("signal {sig}"), |s| s.as_str().to_string());
        let filter = at.and_then(|(i, _)| filter_before(plan, i + 1));
        let cause = if sig == libc::SIGKILL && cgroup.is_some_and(|c| c.oom_kills() > oom_before) {
            ": the OOM killer (linux.resources.memory.limit too low?)".to_string()
        } else if sig == libc::SIGSYS
            && let Some(n) = filter
        {
            format!(
                ": the seccomp filter of step {n} refused a call \
                 (linux.seccomp: its defaultAction or a rule kills)"
            )
        } else if let Some(n) = filter {
            format!(" (under the seccomp filter of step {n})")
        } else {
            String::new()
        };
        format!("container process was killed by {name}{where_} during set-up{cause}")
    } else {
        format!(
            "container process exited with status {}{where_} during set-up",
            libc::WEXITSTATUS(status)
        )
    }
}
