//! `process`: rlimits, oom score, cwd, the program lookup, user and groups, the five capability
//! sets, `noNewPrivileges`, umask, env and args — in the order the runtime spec requires.

use crate::{PlanError, Planner, cbuf, err};
use ferrun_plans::{CAPABILITIES, CBuf, HostStep, RLIMITS, Step};
use oci_spec::runtime::{Capabilities, PosixRlimitType, Process};

/// The `PATH` used when the container's env has none (runc's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn rlimit_number(t: PosixRlimitType) -> u32 {
    // oci-spec's names match the kernel's, e.g. RlimitNofile → RLIMIT_NOFILE.
    let name = format!("{t:?}");
    let upper = format!(
        "RLIMIT_{}",
        name.trim_start_matches("Rlimit").to_uppercase()
    );
    RLIMITS
        .iter()
        .position(|n| *n == upper)
        .map_or(u32::MAX, |i| i as u32)
}

/// crun's annotation: keep the caller's supplementary groups (no setgroups).
pub const KEEP_GROUPS_ANNOTATION: &str = "run.oci.keep_original_groups";

/// The largest uid or gid a config may name: `(uid_t)-1` means "no change" to the kernel, so a
/// process asking for it would keep the runtime's own identity (runc's range).
pub(crate) const MAX_ID: u32 = 2_147_483_647;

/// Refuses an id outside 0..=[`MAX_ID`].
pub(crate) fn check_id(field: &str, id: u32) -> Result<(), PlanError> {
    if id > MAX_ID {
        return err(
            field,
            format!("{id}: uids and gids must be in range 0-{MAX_ID}"),
        );
    }
    Ok(())
}

/// `process.apparmorProfile` and `process.selinuxLabel`: the attribute the final `execve` takes,
/// set while every capability is still held and before `no_new_privs` and the filter (under
/// which AppArmor would refuse the transition). A profile or label for an LSM the host does not
/// run is refused: the container would otherwise run unconfined without a word (runc refuses
/// too).
fn lsm_exec(p: &mut Planner<'_>, process: &Process) -> Result<(), PlanError> {
    let wanted = [
        (
            "process.apparmorProfile",
            ferrun_plans::Lsm::AppArmor,
            process.apparmor_profile().as_deref(),
            p.input.host.apparmor,
            "AppArmor",
        ),
        (
            "process.selinuxLabel",
            ferrun_plans::Lsm::SELinux,
            process.selinux_label().as_deref(),
            p.input.host.selinux,
            "SELinux",
        ),
    ];
    for (field, lsm, value, enabled, name) in wanted {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        if !enabled {
            return err(
                field,
                format!(
                    "{:?} cannot be applied: {name} is not enabled on this host",
                    ferrun_plans::clip(value, 200)
                ),
            );
        }
        if value.len() > 4000 || value.chars().any(|c| c.is_control()) {
            return err(field, "must be one line of at most 4000 bytes");
        }
        if !p.steps.iter().any(|s| matches!(s, Step::OpenProcfs)) {
            // Before the rlimits: a low RLIMIT_NOFILE must not keep the procfs from opening.
            let at = p
                .steps
                .iter()
                .position(|s| matches!(s, Step::Rlimit { .. }))
                .unwrap_or(p.steps.len());
            p.steps.insert(at, Step::OpenProcfs);
        }
        let value = match lsm {
            ferrun_plans::Lsm::AppArmor => format!("exec {value}"),
            ferrun_plans::Lsm::SELinux => value.to_string(),
        };
        p.steps.push(Step::LsmExec {
            lsm,
            value: cbuf(field, &value)?,
        });
    }
    Ok(())
}

pub(crate) fn plan_process(p: &mut Planner<'_>, process: &Process) -> Result<(), PlanError> {
    // rlimits and the oom score first: raising either needs capabilities dropped below.
    let mut seen = Vec::new();
    for (i, r) in process
        .rlimits()
        .clone()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let field = format!("process.rlimits[{i}]");
        let resource = rlimit_number(r.typ());
        if resource == u32::MAX {
            return err(format!("{field}.type"), "unknown to this kernel");
        }
        if seen.contains(&resource) {
            return err(
                format!("{field}.type"),
                format!("duplicate {}", RLIMITS[resource as usize]),
            );
        }
        seen.push(resource);
        if r.soft() > r.hard() {
            return err(
                field,
                format!("soft limit {} exceeds hard limit {}", r.soft(), r.hard()),
            );
        }
        p.steps.push(Step::Rlimit {
            resource,
            soft: r.soft(),
            hard: r.hard(),
        });
    }
    // The kernel keeps these across execve; set while every capability is still held. An
    // exec'd process has its own (`exec` without --process copies the container's).
    if let Some(s) = process.scheduler() {
        p.steps.push(crate::attributes::scheduler(s)?);
    }
    if let Some(io) = process.io_priority() {
        p.steps
            .push(crate::attributes::io_priority(io.class(), io.priority())?);
    }
    let linux = p.spec.linux().as_ref();
    if let Some(persona) = linux.and_then(|l| l.personality().as_ref()) {
        let step = crate::attributes::personality(persona, &mut p.warnings);
        p.steps.push(step);
    }
    if let Some(m) = linux.and_then(|l| l.memory_policy().as_ref()) {
        p.steps.push(crate::attributes::memory_policy(m)?);
    }
    if let Some(score) = process.oom_score_adj() {
        if !(-1000..=1000).contains(&score) {
            return err(
                "process.oomScoreAdj",
                format!("{score} is outside -1000..1000"),
            );
        }
        // Written by the parent, before it releases the id maps (if any).
        let at = p
            .after_clone
            .iter()
            .position(|h| *h == HostStep::Release)
            .unwrap_or(p.after_clone.len());
        let value = cbuf("", &score.to_string())?;
        p.after_clone.insert(at, HostStep::OomScoreAdj { value });
    }

    let cwd = process.cwd().to_str().unwrap_or("");
    if !cwd.starts_with('/') {
        return err("process.cwd", format!("{cwd:?} must be an absolute path"));
    }
    p.steps.push(Step::Chdir {
        path: cbuf("process.cwd", cwd)?,
    });

    let env = process.env().clone().unwrap_or_default();
    let mut env_bufs = Vec::with_capacity(env.len());
    for (i, e) in env.iter().enumerate() {
        if !e.contains('=') || e.starts_with('=') {
            return err(
                format!("process.env[{i}]"),
                format!("{e:?} is not NAME=value"),
            );
        }
        env_bufs.push(cbuf(&format!("process.env[{i}]"), e)?);
    }
    let args = process.args().clone().unwrap_or_default();
    let Some(program) = args.first().filter(|a| !a.is_empty()) else {
        return err("process.args", "must name a program");
    };
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let candidates: Vec<CBuf> = if program.contains('/') {
        vec![cbuf("process.args[0]", program)?]
    } else {
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| {
                cbuf(
                    "process.env PATH",
                    &format!("{}/{program}", d.trim_end_matches('/')),
                )
            })
            .collect::<Result<_, _>>()?
    };
    if candidates.is_empty() {
        return err(
            "process.env",
            format!("PATH has no absolute directory to find {program:?} in"),
        );
    }
    p.steps.push(Step::ResolveExec {
        name: cbuf("process.args[0]", program)?,
        candidates,
    });

    let user = process.user();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        p.steps.push(Step::HomeFromPasswd { uid: user.uid() });
    }
    p.steps.push(Step::Umask {
        mask: user.umask().unwrap_or(0o022) & 0o777,
    });

    let caps = process.capabilities().clone().unwrap_or_default();
    let mask = |p: &mut Planner<'_>, set: &Option<Capabilities>, field: &str| -> u64 {
        let mut m = 0u64;
        let mut names: Vec<String> = set.iter().flatten().map(|c| format!("CAP_{c}")).collect();
        names.sort();
        for name in names {
            match CAPABILITIES.iter().position(|n| *n == name) {
                Some(bit) if bit <= usize::from(p.input.host.last_cap) => m |= 1 << bit,
                _ => p.warnings.push(format!(
                    "{field}: {name} is newer than this kernel (last capability {}), dropped",
                    p.input.host.last_cap
                )),
            }
        }
        m
    };
    let bounding = mask(p, caps.bounding(), "process.capabilities.bounding");
    let effective = mask(p, caps.effective(), "process.capabilities.effective");
    let permitted = mask(p, caps.permitted(), "process.capabilities.permitted");
    let inheritable = mask(p, caps.inheritable(), "process.capabilities.inheritable");
    let ambient = mask(p, caps.ambient(), "process.capabilities.ambient");
    // The kernel refuses an ambient capability that is not both permitted and inheritable;
    // runc warns and goes on, and its own default spec relies on that.
    // runc's own default spec asks for that, so it is listed, not warned about at each start.
    let unraisable = ambient & !(permitted & inheritable);
    if unraisable != 0 {
        p.not_planned.push(ferrun_plans::NotPlanned {
            field: "process.capabilities.ambient".into(),
            why: format!(
                "{} not both permitted and inheritable: not raised (the kernel refuses it)",
                ferrun_plans::cap_names(unraisable)
            ),
        });
    }
    let ambient = ambient & permitted & inheritable;
    let nnp = process.no_new_privileges().unwrap_or(false);
    let (filter, notify) = match seccomp_step(p)? {
        Some((step, notify)) => (Some(step), notify),
        None => (None, false),
    };
    // What the container process holds of the host's (the caller's fds, the rootfs, cgroup
    // and namespace fds) goes before it waits for `start`, and before any filter could refuse
    // close_range.
    lsm_exec(p, process)?;
    let mut strays_closed = false;
    if let Some(filter) = &filter
        && !nnp
    {
        // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it while every
        // capability is still held (runc does the same). Marking fds close-on-exec first keeps
        // close_range out of the profile's way; the fds in use stay open until execve.
        p.steps.push(Step::CloseStrayFds);
        strays_closed = true;
        p.steps.push(Step::CloseFds);
        p.steps.push(filter.clone());
    }
    p.steps.push(Step::DropBounding {
        keep: bounding,
        last_cap: p.input.host.last_cap,
    });
    p.steps.push(Step::KeepCaps { on: true });
    let gids = user.additional_gids().clone().unwrap_or_default();
    for (i, g) in gids.iter().enumerate() {
        check_id(&format!("process.user.additionalGids[{i}]"), *g)?;
    }
    check_id("process.user.gid", user.gid())?;
    check_id("process.user.uid", user.uid())?;
    let keep_groups = p
        .spec
        .annotations()
        .as_ref()
        .is_some_and(|a| a.contains_key(KEEP_GROUPS_ANNOTATION));
    if keep_groups {
        // podman's `--group-add keep-groups`: the caller's supplementary groups stay, so
        // setgroups is not called at all (crun's rule).
    } else if p.setgroups_denied() {
        if !gids.is_empty() {
            return err(
                "process.user.additionalGids",
                "setgroups is denied in this container's user namespace (rootless with only \
                 your own gid mapped, or below a namespace that denies it), so no groups can \
                 be set: map more gids (newgidmap) or drop them",
            );
        }
    } else {
        p.steps.push(Step::SetGroups { gids });
    }
    if user.uid() != 0 {
        p.steps.push(Step::ChownStdio { uid: user.uid() });
    }
    p.steps.push(Step::SetGid { gid: user.gid() });
    p.steps.push(Step::SetUid { uid: user.uid() });
    p.steps.push(Step::KeepCaps { on: false });
    p.steps.push(Step::SetCaps {
        effective,
        permitted,
        inheritable,
    });
    if ambient != 0 {
        p.steps.push(Step::Ambient { caps: ambient });
    }
    if nnp {
        p.steps.push(Step::NoNewPrivs);
    }
    match &filter {
        // A listener is handed over by `create`, so the filter goes on before the container
        // reports ready (runc does the same); what it notifies from then on, the agent answers.
        Some(filter) if nnp && notify => {
            p.steps.push(Step::CloseStrayFds);
            strays_closed = true;
            p.steps.push(Step::CloseFds);
            p.steps.push(filter.clone());
        }
        _ => {}
    }
    if !strays_closed {
        p.steps.push(Step::CloseStrayFds);
    }
    p.steps.push(Step::Ready);
    p.steps.push(Step::WaitStart);
    match filter {
        // As close to execve as possible: only execve runs under the filter.
        Some(filter) if nnp && !notify => {
            p.steps.push(Step::CloseFds);
            p.steps.push(filter);
        }
        Some(_) => {}
        None => p.steps.push(Step::CloseFds),
    }
    let argv = args
        .iter()
        .enumerate()
        .map(|(i, a)| cbuf(&format!("process.args[{i}]"), a))
        .collect::<Result<_, _>>()?;
    p.steps.push(Step::Exec {
        argv,
        env: env_bufs,
    });
    Ok(())
}

/// The `Seccomp` step for `linux.seccomp`, if any, and whether it has a listener.
fn seccomp_step(p: &mut Planner<'_>) -> Result<Option<(Step, bool)>, PlanError> {
    let Some(s) = p.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(None);
    };
    let unknown = crate::seccomp::unknown_syscalls(s);
    let fail_unknown = p
        .spec
        .annotations()
        .as_ref()
        .is_some_and(|a| a.contains_key(crate::seccomp::FAIL_UNKNOWN_SYSCALL_ANNOTATION));
    for (field, name) in unknown {
        if fail_unknown {
            return err(
                field,
                format!(
                    "unknown syscall {:?} (refused: {} is set)",
                    ferrun_plans::clip(&name, 100),
                    crate::seccomp::FAIL_UNKNOWN_SYSCALL_ANNOTATION
                ),
            );
        }
        p.warnings.push(format!(
            "{field}: unknown syscall {:?} skipped",
            ferrun_plans::clip(&name, 100)
        ));
    }
    let compiled = crate::seccomp::compile_cached(s, &p.input.host.arch, p.input.seccomp_cache)?;
    if compiled.notify {
        let path = s
            .listener_path()
            .as_ref()
            .and_then(|p| p.to_str())
            .unwrap_or("");
        if !path.starts_with('/') {
            return err(
                "linux.seccomp.listenerPath",
                "SCMP_ACT_NOTIFY needs an absolute listenerPath to send the listener fd to",
            );
        }
        p.seccomp_listener = Some(ferrun_plans::Listener {
            path: path.to_string(),
            metadata: s.listener_metadata().clone().unwrap_or_default(),
        });
    }
    let bpf = crate::seccomp::bpf::to_bytes(&compiled.insns);
    let hash = ferrun_plans::content_hash(&[&bpf]);
    Ok(Some((
        Step::Seccomp {
            flags: compiled.flags,
            bpf,
            hash,
        },
        compiled.notify,
    )))
}
