//! The informational commands: `state`, `list`, `spec`, `features`, `plan` and `seccomp`
//! (compile, dump, check a profile). They change nothing of a container.

use crate::OCI_VERSION;
use crate::bail;
use crate::cache;
use crate::error::{Context, Result};
use crate::state::Store;
use crate::state::oci::oci_state_json;
use ferrun_planner::Options;
use serde_json::json;
use std::path::Path;

/// `ferrun list`: runc's table, or `--format json`, or ids only with `--quiet`.
pub fn list(store: &Store, format: &str, quiet: bool) -> Result<String> {
    let mut rows = Vec::new();
    let mut unreadable = Vec::new();
    for id in store.ids()? {
        match store.load(&id) {
            Ok(s) => {
                let status = store.status(&s);
                rows.push((s, status));
            }
            // Deleted meanwhile.
            Err(_) if !store.dir(&id).exists() => {}
            Err(e) => {
                // Shown, never hidden: it may still run (runc warns the same way).
                crate::log::warn(&format!("load container {id}: {}", e.0));
                unreadable.push(id);
            }
        }
    }
    if quiet {
        let mut ids: Vec<&str> = rows.iter().map(|(s, _)| s.id.as_str()).collect();
        ids.extend(unreadable.iter().map(String::as_str));
        ids.sort_unstable();
        return Ok(ids.iter().map(|id| format!("{id}\n")).collect());
    }
    match format {
        "json" => {
            let items: Vec<serde_json::Value> = rows
                .iter()
                .map(|(s, st)| {
                    serde_json::from_str(&oci_state_json(s, *st, false)).unwrap_or_default()
                })
                .collect();
            Ok(format!("{}\n", serde_json::Value::Array(items)))
        }
        "table" => {
            let mut table =
                vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
            for (s, st) in &rows {
                let pid = if *st == crate::state::Status::Stopped {
                    0
                } else {
                    s.pid
                };
                table.push([
                    s.id.clone(),
                    pid.to_string(),
                    st.as_str().to_string(),
                    s.bundle.clone(),
                    s.created.clone(),
                    if s.owner.is_empty() {
                        "root".into()
                    } else {
                        s.owner.clone()
                    },
                ]);
            }
            for id in &unreadable {
                table.push([id, "0", "unknown", "", "", ""].map(String::from));
            }
            let widths: Vec<usize> = (0..6)
                .map(|c| table.iter().map(|r| r[c].len()).max().unwrap_or(0))
                .collect();
            let mut out = String::new();
            for r in &table {
                for (c, cell) in r.iter().enumerate() {
                    if c == 5 {
                        out.push_str(cell);
                    } else {
                        out.push_str(&format!("{cell:<w$}", w = widths[c] + 3));
                    }
                }
                out.push('\n');
            }
            Ok(out)
        }
        other => bail!("invalid --format {other:?}: use table or json"),
    }
}

/// `ferrun spec`: a starting `config.json` (runc's defaults), rootless with `--rootless`.
pub fn spec(bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("{} exists: remove it first", path.display());
    }
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut devpts = vec![
        "nosuid",
        "noexec",
        "newinstance",
        "ptmxmode=0666",
        "mode=0620",
    ];
    if !rootless {
        devpts.push("gid=5");
    }
    let sys = if rootless {
        json!({"destination": "/sys", "type": "none", "source": "/sys",
               "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
    } else {
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]})
    };
    let mut namespaces = vec![json!({"type": "pid"})];
    if !rootless {
        namespaces.push(json!({"type": "network"}));
    }
    namespaces.extend([
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ]);
    let mut linux = json!({
        "namespaces": namespaces,
        "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
            "/sys/firmware", "/proc/scsi"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    });
    if rootless {
        if let Some(a) = linux["namespaces"].as_array_mut() {
            a.push(json!({"type": "user"}));
        }
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    } else {
        linux["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
    }
    let spec = json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "ferrun",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": devpts},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            sys,
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": linux
    });
    let text = serde_json::to_string_pretty(&spec).unwrap_or_default();
    std::fs::write(&path, text + "\n").ctx(|| format!("write {}", path.display()))
}

/// `ferrun features`: what this build really supports (OCI features document).
pub fn features() -> String {
    let caps: Vec<&str> = ferrun_plans::CAPABILITIES.to_vec();
    let mut annotations = serde_json::Map::new();
    annotations.insert(
        "run.ferrun.version".into(),
        env!("CARGO_PKG_VERSION").into(),
    );
    // Checkpoint and restore are there only with a criu that answers (as runc's annotation).
    let criu = criu_version();
    annotations.insert(
        "run.ferrun.checkpoint.enabled".into(),
        criu.is_some().to_string().into(),
    );
    if let Some(v) = criu {
        annotations.insert("run.ferrun.criu.version".into(), v.into());
    }
    let v = json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ferrun_planner::MOUNT_OPTIONS,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": false, "rdma": true},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"],
                "knownFlags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
            },
            "apparmor": {"enabled": true},
            "selinux": {"enabled": true},
            "intelRdt": {"enabled": false},
            "memoryPolicy": {
                "modes": ferrun_plans::MEMPOLICY_MODES,
                "flags": ferrun_plans::MEMPOLICY_FLAGS.map(|(name, _)| name)
            },
            "netDevices": {"enabled": true},
            "mountExtensions": {"idmap": {"enabled": true}}
        },
        "annotations": annotations
    });
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}

/// The version of the criu on `PATH` that answers its RPC, as `major.minor.sublevel`.
pub fn criu_version() -> Option<String> {
    crate::host::criu::version().map(|(a, b, c)| format!("{a}.{b}.{c}"))
}

/// `ferrun plan`: compile (or fetch from the cache) and print the plan.
pub fn plan(
    store: &Store,
    bundle: &Path,
    format: &str,
    no_pivot: bool,
    systemd_cgroup: bool,
) -> Result<String> {
    let bundle = std::fs::canonicalize(bundle).ctx(|| format!("bundle {}", bundle.display()))?;
    let loaded = cache::load_or_plan(
        &store.root,
        &bundle,
        None,
        Options {
            no_pivot,
            systemd_cgroup,
        },
    )?;
    match format {
        "text" => {
            let mut out = format!(
                "{}cache: {} {}\n",
                loaded.plan,
                loaded.origin,
                loaded.path.display()
            );
            if loaded.filters_reused + loaded.filters_compiled > 0 {
                out.push_str(&format!(
                    "seccomp filter cache: {} reused, {} compiled\n",
                    loaded.filters_reused, loaded.filters_compiled
                ));
            }
            Ok(out)
        }
        "json" => {
            let listing = loaded.plan.to_string();
            let v = json!({
                "key": loaded.key,
                "cache": loaded.origin.to_string(),
                "path": loaded.path,
                "steps": loaded.plan.steps.len(),
                "listing": listing.lines().collect::<Vec<_>>(),
                "notPlanned": loaded.plan.not_planned.iter()
                    .map(|n| json!({"field": n.field, "why": n.why})).collect::<Vec<_>>(),
                "warnings": loaded.plan.warnings,
            });
            Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n")
        }
        other => bail!("invalid --format {other:?}: use text or json"),
    }
}

fn compile_profile(
    path: &Path,
    arch: Option<&str>,
) -> Result<(ferrun_planner::seccomp::Compiled, String)> {
    let bytes = std::fs::read(path).ctx(|| format!("read {}", path.display()))?;
    let profile = ferrun_planner::seccomp::load_profile(&bytes)
        .map_err(|e| crate::error::Error(format!("{}: {e}", path.display())))?;
    let host = arch.map_or_else(|| std::env::consts::ARCH.to_string(), str::to_string);
    let compiled = ferrun_planner::seccomp::compile(&profile, &host)
        .map_err(|e| crate::error::Error(format!("{}: {e}", path.display())))?;
    Ok((compiled, host))
}

fn parse_arg(s: &str) -> Result<u64> {
    let parsed = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse::<u64>(),
    };
    parsed.map_err(|_| crate::error::Error(format!("argument {s:?}: not a number")))
}

/// `ferrun seccomp compile|dump|check`.
/// What `ferrun seccomp` is asked; PROFILE is a `linux.seccomp` object or a whole config.
pub enum SeccompQuery<'a> {
    /// The profile's BPF, to `out` or stdout.
    Compile {
        profile: &'a Path,
        arch: Option<&'a str>,
        out: Option<&'a Path>,
    },
    /// Its disassembly.
    Dump {
        profile: &'a Path,
        arch: Option<&'a str>,
    },
    /// The action a call gets.
    Check {
        profile: &'a Path,
        syscall: &'a str,
        args: &'a [String],
        arch: Option<&'a str>,
    },
}

pub fn seccomp(query: SeccompQuery<'_>) -> Result<i32> {
    use SeccompQuery as C;
    use std::io::Write;
    match query {
        C::Compile { profile, arch, out } => {
            let (c, _) = compile_profile(profile, arch)?;
            let bytes = ferrun_planner::seccomp::bpf::to_bytes(&c.insns);
            match out {
                Some(p) => std::fs::write(p, &bytes).ctx(|| format!("write {}", p.display()))?,
                None => std::io::stdout()
                    .write_all(&bytes)
                    .ctx(|| "write stdout".into())?,
            }
        }
        C::Dump { profile, arch } => {
            let (c, _) = compile_profile(profile, arch)?;
            print!("{}", ferrun_planner::seccomp::dump(&c));
        }
        C::Check {
            profile,
            syscall,
            args,
            arch,
        } => {
            let host_arch = match arch {
                Some("x86") | Some("x32") => Some("x86_64"),
                Some("arm") => Some("aarch64"),
                other => other,
            };
            let (c, host) = compile_profile(profile, host_arch)?;
            let args: Vec<u64> = args.iter().map(|a| parse_arg(a)).collect::<Result<_>>()?;
            let verdict = ferrun_planner::seccomp::check(&c, &host, arch, syscall, &args)
                .map_err(crate::error::Error)?;
            println!("{}", ferrun_planner::seccomp::bpf::action_name(verdict));
        }
    }
    Ok(0)
}

/// `ferrun state`'s JSON.
pub fn state_json(store: &Store, id: &str) -> Result<String> {
    let s = store.load(id)?;
    let status = store.status(&s);
    Ok(oci_state_json(&s, status, true))
}
