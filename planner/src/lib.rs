//! The planner: `config.json` → a validated [`Plan`].
//!
//! Pure: it reads nothing from the live system. What it needs to know about the host comes in as
//! [`HostFacts`], which the runtime probes once and which is part of the cache key
//! ([`cache_key`]). Same inputs, same plan. Every validation error names the JSON path of the
//! field at fault.

mod attributes;
pub mod cgroups;
mod mounts;
mod process;
pub mod seccomp;
pub mod template;

pub use mounts::OPTION_NAMES as MOUNT_OPTIONS;

use ferrun_plans::{
    CBuf, FORMAT_VERSION, Header, HostStep, IdMapKind, Namespace, NotPlanned, Plan, Step,
};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Lets a container join an existing cgroup that already holds processes.
pub const SHARED_CGROUP_ANNOTATION: &str = "ferrun.cgroup.shared";
/// Every annotation the planner reads; a template (see [`template`]) may empty the others.
pub const READ_ANNOTATIONS: &[&str] = &[
    SHARED_CGROUP_ANNOTATION,
    process::KEEP_GROUPS_ANNOTATION,
    seccomp::FAIL_UNKNOWN_SYSCALL_ANNOTATION,
];

/// What the planner needs to know about the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFacts {
    /// `std::env::consts::ARCH`.
    pub arch: String,
    /// `/proc/sys/kernel/cap_last_cap`.
    pub last_cap: u8,
    /// The runtime's effective uid and gid: a new user namespace without id mappings maps
    /// them to root, as crun does.
    pub uid: u32,
    pub gid: u32,
    /// The cgroup hierarchies mounted on the host.
    pub cgroups: ferrun_plans::CgroupLayout,
    /// AppArmor is enabled (`/sys/module/apparmor/parameters/enabled` is `Y`).
    pub apparmor: bool,
    /// SELinux is enabled (selinuxfs is mounted).
    pub selinux: bool,
    /// Rootless: the effective uid is not 0, or it is 0 only in a user namespace that does not
    /// map every id (runc's and crun's rule).
    pub rootless: bool,
    /// The caller's own user namespace denies setgroups (`/proc/self/setgroups` is `deny`, as
    /// under `unshare -r`): every namespace made below it does too.
    pub setgroups_denied: bool,
}

/// Runtime options that change the plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `--no-pivot`: chroot instead of pivot_root.
    pub no_pivot: bool,
    /// `--systemd-cgroup`: `linux.cgroupsPath` is `slice:prefix:name`.
    pub systemd_cgroup: bool,
}

/// Everything a plan is made from.
pub struct Input<'a> {
    /// The bytes of `config.json`.
    pub config: &'a [u8],
    /// Absolute bundle directory (relative paths in the config are relative to it).
    pub bundle: &'a Path,
    pub host: &'a HostFacts,
    pub options: Options,
    /// Compiled seccomp filters by key ([`seccomp::cache_key`]); the plan is the same with or
    /// without it.
    pub seccomp_cache: Option<&'a dyn seccomp::FilterCache>,
}

/// A config the planner refuses: `field: problem`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError {
    /// JSON path of the field, e.g. `mounts[3].destination`; empty for the document itself.
    pub field: String,
    pub problem: String,
}

impl fmt::Display for PlanError {
    /// Cut short: a field's name or the value it echoes can be megabytes long.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let problem = ferrun_plans::clip(&self.problem, 600);
        if self.field.is_empty() {
            write!(f, "config.json: {problem}")
        } else {
            let field = ferrun_plans::clip(&self.field, 300);
            write!(f, "config.json: {field}: {problem}")
        }
    }
}

impl std::error::Error for PlanError {}

pub(crate) fn err<T>(field: impl Into<String>, problem: impl Into<String>) -> Result<T, PlanError> {
    Err(PlanError {
        field: field.into(),
        problem: problem.into(),
    })
}

/// A string as a kernel buffer; a NUL inside is the field's fault.
pub(crate) fn cbuf(field: &str, s: &str) -> Result<CBuf, PlanError> {
    CBuf::new(s).ok_or_else(|| PlanError {
        field: field.into(),
        problem: "must not contain a NUL byte".into(),
    })
}

/// The cache key: a hash of everything the plan depends on.
pub fn cache_key(input: &Input<'_>) -> String {
    ferrun_plans::content_hash(&[
        input.config,
        input.bundle.as_os_str().as_encoded_bytes(),
        input.host.arch.as_bytes(),
        &[
            input.host.last_cap,
            u8::from(input.options.no_pivot),
            u8::from(input.options.systemd_cgroup),
            u8::from(input.host.apparmor),
            u8::from(input.host.selinux),
            u8::from(input.host.rootless),
            u8::from(input.host.setgroups_denied),
        ],
        format!("{:?}", input.host.cgroups).as_bytes(),
        &input.host.uid.to_le_bytes(),
        &input.host.gid.to_le_bytes(),
        env!("CARGO_PKG_VERSION").as_bytes(),
        &FORMAT_VERSION.to_le_bytes(),
        &seccomp::COMPILER_REVISION.to_le_bytes(),
    ])
}

/// Parses `config.json`, naming the path of a field that does not parse.
pub fn parse(config: &[u8]) -> Result<Spec, PlanError> {
    // The legacy single `name` of a seccomp rule needs a look at the JSON before oci-spec, which
    // knows only `names`; configs without the word pay nothing for it.
    if config.windows(6).any(|w| w == b"\"name\"")
        || config_has_spec_sched_flag(config)
        || config.windows(6).any(|w| w == b"\"pids\"")
    {
        let mut v: serde_json::Value =
            serde_json::from_slice(config).map_err(|e| json_error(String::new(), e))?;
        if let Some(seccomp) = v.pointer_mut("/linux/seccomp") {
            seccomp::lift_legacy_names(seccomp);
        }
        if let Some(process) = v.get_mut("process") {
            spell_sched_flags_for_oci_spec(process);
        }
        if let Some(resources) = v.pointer_mut("/linux/resources") {
            drop_pids_without_limit(resources);
        }
        return serde_path_to_error::deserialize(v).map_err(|e| {
            let field = e.path().to_string();
            json_error(field, e.into_inner())
        });
    }
    let de = &mut serde_json::Deserializer::from_slice(config);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        json_error(field, e.into_inner())
    })
}

/// The spec's name of the reset-on-fork scheduler flag, which oci-spec spells without `FLAG_`.
const SPEC_RESET_ON_FORK: &str = "SCHED_FLAG_RESET_ON_FORK";

fn config_has_spec_sched_flag(config: &[u8]) -> bool {
    config
        .windows(SPEC_RESET_ON_FORK.len())
        .any(|w| w == SPEC_RESET_ON_FORK.as_bytes())
}

/// `process.scheduler.flags` as oci-spec reads them (the spec's spelling of reset-on-fork is
/// refused by oci-spec 0.10).
fn spell_sched_flags_for_oci_spec(process: &mut serde_json::Value) {
    let Some(flags) = process
        .pointer_mut("/scheduler/flags")
        .and_then(|f| f.as_array_mut())
    else {
        return;
    };
    for f in flags {
        if f.as_str() == Some(SPEC_RESET_ON_FORK) {
            *f = "SCHED_RESET_ON_FORK".into();
        }
    }
}

/// `pids` without a `limit` leaves the limit alone (spec 1.3: the limit is optional), where
/// oci-spec would read it as a limit of 0.
pub fn drop_pids_without_limit(resources: &mut serde_json::Value) {
    if let Some(r) = resources.as_object_mut()
        && r.get("pids")
            .is_some_and(|p| p.is_null() || p.get("limit").is_none_or(|l| l.is_null()))
    {
        r.remove("pids");
    }
}

/// `field: problem` for a JSON or oci-spec error, in words a user can act on.
fn json_error(field: String, inner: serde_json::Error) -> PlanError {
    let mut problem = inner.to_string();
    // serde lists every valid variant; the field name says enough.
    if let Some(cut) = problem.find(", expected one of") {
        problem.truncate(cut);
    }
    if let Some(cut) = problem.find(" at line ") {
        if inner.is_syntax() || inner.is_eof() {
            problem = format!("invalid JSON: {problem}");
        } else {
            problem.truncate(cut);
        }
    }
    if let Some(rest) = problem.strip_prefix("no variant for ") {
        // oci-spec's wording for an unknown capability.
        let name = rest.split(' ').next().unwrap_or(rest);
        problem = format!("unknown capability {name:?}");
    }
    let field = if field == "." || field == "?" {
        String::new()
    } else {
        field
    };
    PlanError { field, problem }
}

/// Lexically cleans an absolute path: no `.`, `..` or repeated separators. `..` cannot climb
/// above `/`, so the result stays inside whatever root it is later resolved in.
pub(crate) fn clean_abs(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str().unwrap_or("")),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

/// Builds the plan.
/// `process.consoleSize`, clamped to what a `winsize` holds.
fn console_size(p: &oci_spec::runtime::Process) -> Option<(u16, u16)> {
    p.console_size().as_ref().map(|b| {
        let clamp = |v: u64| u16::try_from(v).unwrap_or(u16::MAX);
        (clamp(b.height()), clamp(b.width()))
    })
}

/// Plans `exec` of `process` (a `process` object, as `exec --process` reads it) into the
/// running container whose `config.json` is `input.config`; `input.host.cgroups` is the
/// container's own cgroup layout.
pub fn plan_exec(input: &Input<'_>, process: &[u8]) -> Result<Plan, PlanError> {
    let spec = parse(input.config)?;
    let mut value: serde_json::Value =
        serde_json::from_slice(process).map_err(|e| json_error("process".into(), e))?;
    spell_sched_flags_for_oci_spec(&mut value);
    let process: oci_spec::runtime::Process =
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            PlanError {
                field: if path == "." {
                    "process".into()
                } else {
                    format!("process.{path}")
                },
                problem: e.into_inner().to_string(),
            }
        })?;
    Planner::new(input, &spec)?.build_exec(&process)
}

pub fn plan(input: &Input<'_>) -> Result<Plan, PlanError> {
    let spec = parse(input.config)?;
    Planner::new(input, &spec)?.build()
}

struct Planner<'a> {
    input: &'a Input<'a>,
    spec: &'a Spec,
    /// Namespace kind → `Some(path)` when joined, `None` when new.
    namespaces: BTreeMap<Namespace, Option<String>>,
    before_clone: Vec<HostStep>,
    after_clone: Vec<HostStep>,
    steps: Vec<Step>,
    not_planned: Vec<NotPlanned>,
    warnings: Vec<String>,
    seccomp_listener: Option<ferrun_plans::Listener>,
    /// New namespaces made by `unshare` after joining a user namespace, not by `clone`.
    deferred_flags: u64,
    cgroups: Option<ferrun_plans::Cgroups>,
}

impl<'a> Planner<'a> {
    fn new(input: &'a Input<'a>, spec: &'a Spec) -> Result<Self, PlanError> {
        let version = spec.version();
        if !version.starts_with("1.") {
            return err(
                "ociVersion",
                format!("unsupported version {version:?}, want 1.x"),
            );
        }
        Ok(Planner {
            input,
            spec,
            namespaces: BTreeMap::new(),
            before_clone: vec![],
            after_clone: vec![],
            steps: vec![],
            not_planned: vec![],
            warnings: vec![],
            seccomp_listener: None,
            deferred_flags: 0,
            cgroups: None,
        })
    }

    fn not_planned(&mut self, field: &str, why: &str) {
        self.not_planned.push(NotPlanned {
            field: field.into(),
            why: why.into(),
        });
    }

    pub(crate) fn has_ns(&self, ns: Namespace) -> bool {
        self.namespaces.contains_key(&ns)
    }

    pub(crate) fn new_ns(&self, ns: Namespace) -> bool {
        matches!(self.namespaces.get(&ns), Some(None))
    }

    /// An unprivileged caller's new user namespace that maps only the caller's own gid: its
    /// `setgroups` is denied (the kernel's price for the gid map), so no groups can be set.
    pub(crate) fn setgroups_denied(&self) -> bool {
        let host = self.input.host;
        // A namespace inherits its parent's deny: then no process of ours may set groups.
        if host.setgroups_denied {
            return true;
        }
        if host.uid == 0 || !self.new_ns(Namespace::User) {
            return false;
        }
        let gid = self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.gid_mappings().clone())
            .unwrap_or_default();
        gid.is_empty() || (gid.len() == 1 && gid[0].host_id() == host.gid && gid[0].size() == 1)
    }

    /// `exec`: a process entering the running container. Its namespaces are joined through
    /// the container's pidfd (pid, time, net, ipc and uts by the parent before clone; user,
    /// mount and cgroup by the process, the cgroup one once it is in the container's cgroup), its
    /// cgroups by clone (cgroup2) and by the process itself (v1); then the process part as for
    /// `create`.
    fn build_exec(mut self, process: &oci_spec::runtime::Process) -> Result<Plan, PlanError> {
        self.namespaces()?;
        let listed = |p: &Self, pred: &dyn Fn(Namespace) -> bool| {
            p.namespaces
                .keys()
                .filter(|ns| pred(**ns))
                .fold(0, |acc, ns| acc | ns.clone_flag())
        };
        // The cgroup namespace is joined by the process once it is in the container's cgroup:
        // `CLONE_INTO_CGROUP` is checked against the caller's cgroup namespace.
        let before = listed(&self, &|ns| {
            ns.joined_before_clone() && ns != Namespace::Cgroup
        });
        let inside = listed(&self, &|ns| {
            !ns.joined_before_clone() || ns == Namespace::Cgroup
        });
        if before != 0 {
            self.before_clone
                .push(HostStep::JoinContainer { flags: before });
        }
        self.steps.push(Step::NotDumpable);
        let layout = &self.input.host.cgroups;
        let hierarchies = layout.hierarchies();
        let clone_into = layout.unified.as_ref().map(|_| layout.v1.len() as u8);
        for h in 0..hierarchies.len() as u8 {
            if Some(h) != clone_into {
                self.steps.push(Step::JoinCgroup { hierarchy: h });
            }
        }
        self.exec_cpu_affinity(process)?;
        if !hierarchies.is_empty() {
            self.cgroups = Some(ferrun_plans::Cgroups {
                path: ferrun_plans::CgroupPath::Container,
                hierarchies,
                clone_into,
                v2_controllers: vec![],
                shared: true,
                systemd: None,
                optional: false,
            });
        }
        self.steps.push(Step::SetNsContainer { flags: inside });
        self.steps.push(Step::OpenRoot);
        let terminal = process.terminal().unwrap_or(false);
        if terminal {
            self.steps.push(Step::Terminal);
        }
        process::plan_process(&mut self, process)?;
        Ok(Plan {
            header: Header {
                format: FORMAT_VERSION,
                input_hash: cache_key(self.input),
                arch: self.input.host.arch.clone(),
            },
            before_clone: self.before_clone,
            clone_flags: 0,
            after_clone: self.after_clone,
            steps: self.steps,
            rootfs: String::new(),
            terminal,
            console_size: console_size(process),
            cgroups: self.cgroups,
            seccomp_listener: self.seccomp_listener,
            hooks: ferrun_plans::Hooks::default(),
            not_planned: self.not_planned,
            warnings: self.warnings,
        })
    }

    /// `process.execCPUAffinity` of an exec'd process: the parent runs on the initial CPUs
    /// when it clones, the process moves to the final ones once it is in the container's
    /// cgroups; without a final set the kernel's stays (the spec's rule).
    fn exec_cpu_affinity(&mut self, process: &oci_spec::runtime::Process) -> Result<(), PlanError> {
        let Some(a) = process.exec_cpu_affinity() else {
            return Ok(());
        };
        let field = "process.execCPUAffinity";
        if let Some(list) = a.initial().as_deref().filter(|l| !l.trim().is_empty()) {
            let cpus = attributes::cpu_mask(&format!("{field}.initial"), list)?;
            self.before_clone.push(HostStep::CpuAffinity { cpus });
        }
        if let Some(list) = a
            .cpu_affinity_final()
            .as_deref()
            .filter(|l| !l.trim().is_empty())
        {
            let cpus = attributes::cpu_mask(&format!("{field}.final"), list)?;
            self.steps.push(Step::CpuAffinity { cpus });
        }
        Ok(())
    }

    fn build(mut self) -> Result<Plan, PlanError> {
        self.refuse_unsupported()?;
        let rootfs = self.rootfs()?;
        let process = self.spec.process().as_ref().ok_or_else(|| PlanError {
            field: "process".into(),
            problem: "required to create a container".into(),
        })?;
        self.namespaces()?;
        // A rootless caller may open the child's id map files (and newuidmap may check its
        // owner) only while the child is dumpable: then it gives that up once they are written.
        let late_dumpable = self.input.host.rootless && self.new_ns(Namespace::User);
        if !late_dumpable {
            self.steps.push(Step::NotDumpable);
        }
        self.join_and_map()?;
        self.time_offsets()?;
        self.net_devices()?;
        if self.new_ns(Namespace::Network) {
            // Every namespace exists by now (a deferred one was unshared above).
            self.steps.push(Step::LoopbackUp);
        }
        if late_dumpable {
            let at = self
                .steps
                .iter()
                .position(|s| matches!(s, Step::WaitParent))
                .map_or(0, |i| i + 1);
            self.steps.insert(at, Step::NotDumpable);
        }
        self.cgroups()?;

        let mounts = mounts::plan_mounts(&self)?;
        let propagation = mounts::root_propagation(self.spec)?;
        // Always recursive slave first: a non-recursive type on / alone would leave the rootfs's
        // parent shared (mounts leak to the host, or pivot_root refuses). The requested type is
        // applied to the new / after pivot.
        self.steps.push(Step::RootPropagation {
            flags: libc::MS_REC | libc::MS_SLAVE,
        });
        self.steps.push(Step::BindRootfs {
            path: cbuf("root.path", &rootfs)?,
        });
        self.steps.extend(mounts.steps);
        self.devices(mounts.dev_is_bind)?;
        // Before pivot, resolved inside the rootfs with the host's /proc to reach the targets:
        // after pivot, /proc would be whatever the container mounted there (or none).
        self.sysctls()?;
        self.paths()?;
        let hooks = self.hooks()?;
        if !(hooks.prestart.is_empty()
            && hooks.create_runtime.is_empty()
            && hooks.create_container.is_empty())
        {
            self.steps.push(Step::AwaitHooks);
        }
        self.steps.push(if self.input.options.no_pivot {
            Step::Chroot
        } else {
            Step::PivotRoot
        });
        self.steps.push(Step::ReopenDevNull);
        // runc makes a missing cwd, before / may become read-only.
        let cwd = process.cwd().to_str().unwrap_or("");
        if cwd.starts_with('/') && clean_abs(cwd) != "/" {
            self.steps.push(Step::MkdirCwd {
                path: cbuf("process.cwd", &clean_abs(cwd))?,
            });
        }
        if let Some(flags) = propagation {
            self.steps.push(Step::Propagation {
                dest: cbuf("", "/")?,
                flags,
            });
        }
        self.uts()?;
        // The console before / may go read-only: /dev/console may have to be made.
        let terminal = process.terminal().unwrap_or(false);
        if terminal {
            self.steps.push(Step::Terminal);
            self.steps.push(Step::Console);
        } else {
            self.steps.push(Step::NewSession);
        }
        if self
            .spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false)
        {
            self.steps.push(Step::ReadonlyRoot);
        }
        process::plan_process(&mut self, process)?;
        self.unplanned_sections();
        let from_parent = self.steps.iter().any(|s| {
            matches!(
                s,
                Step::BindMount {
                    from: ferrun_plans::BindFrom::Parent { .. }
                        | ferrun_plans::BindFrom::ChildElseParent,
                    ..
                } | Step::AttachDevice { .. }
            )
        });
        if from_parent {
            self.before_clone.push(HostStep::OpenMountTrees);
        }

        let plan = Plan {
            header: Header {
                format: FORMAT_VERSION,
                input_hash: cache_key(self.input),
                arch: self.input.host.arch.clone(),
            },
            before_clone: self.before_clone,
            clone_flags: self
                .namespaces
                .iter()
                .filter(|(_, path)| path.is_none())
                .fold(0, |acc, (ns, _)| acc | ns.clone_flag())
                & !self.deferred_flags,
            after_clone: self.after_clone,
            steps: self.steps,
            rootfs,
            terminal,
            console_size: console_size(process),
            cgroups: self.cgroups,
            seccomp_listener: self.seccomp_listener,
            hooks,
            not_planned: self.not_planned,
            warnings: self.warnings,
        };
        Ok(plan)
    }

    /// `linux.timeOffsets`: the parent makes the new time namespace and writes its offsets
    /// before clone, since one a process is born in by `clone` is frozen without them.
    fn time_offsets(&mut self) -> Result<(), PlanError> {
        let field = "linux.timeOffsets";
        let Some(offsets) = self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.time_offsets().as_ref())
        else {
            return Ok(());
        };
        if offsets.is_empty() {
            return Ok(());
        }
        if !self.new_ns(Namespace::Time) {
            return err(
                field,
                "time offsets need a new time namespace in linux.namespaces",
            );
        }
        let mut keys: Vec<_> = offsets.iter().collect();
        keys.sort_by_key(|(k, _)| k.as_str());
        let mut text = String::new();
        for (clock, o) in keys {
            if clock != "monotonic" && clock != "boottime" {
                return err(
                    format!("{field}.{}", ferrun_plans::clip(clock, 100)),
                    "only the monotonic and boottime clocks have offsets",
                );
            }
            let nanos = o.nanosecs().unwrap_or(0);
            if nanos >= 1_000_000_000 {
                return err(
                    format!("{field}.{clock}.nanosecs"),
                    format!("{nanos} is not below one second"),
                );
            }
            text.push_str(&format!("{clock} {} {nanos}\n", o.secs().unwrap_or(0)));
        }
        self.deferred_flags |= Namespace::Time.clone_flag();
        self.before_clone.push(HostStep::TimeNamespace {
            offsets: cbuf(field, &text)?,
        });
        self.after_clone.insert(0, HostStep::LeaveTimeNamespace);
        Ok(())
    }

    fn rootfs(&self) -> Result<String, PlanError> {
        let root = self.spec.root().as_ref().ok_or_else(|| PlanError {
            field: "root".into(),
            problem: "required".into(),
        })?;
        let path = root.path();
        if path.as_os_str().is_empty() {
            return err("root.path", "must not be empty");
        }
        let full: PathBuf = if path.is_absolute() {
            path.clone()
        } else {
            self.input.bundle.join(path)
        };
        let s = full.to_str().ok_or_else(|| PlanError {
            field: "root.path".into(),
            problem: "must be valid UTF-8".into(),
        })?;
        let clean = clean_abs(s);
        // A relative root is the bundle's: `..` may not lead out of it (the runtime judges
        // symlinks the same way once it can resolve them).
        if !path.is_absolute() && !Path::new(&clean).starts_with(self.input.bundle) {
            return err(
                "root.path",
                format!(
                    "{} leads to {clean}, outside the bundle {}",
                    ferrun_plans::clip(&path.to_string_lossy(), 200),
                    self.input.bundle.display()
                ),
            );
        }
        Ok(clean)
    }

    fn namespaces(&mut self) -> Result<(), PlanError> {
        let list = self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone());
        for (i, ns) in list.unwrap_or_default().iter().enumerate() {
            let field = format!("linux.namespaces[{i}]");
            let kind = match ns.typ() {
                LinuxNamespaceType::Mount => Namespace::Mount,
                LinuxNamespaceType::Cgroup => Namespace::Cgroup,
                LinuxNamespaceType::Uts => Namespace::Uts,
                LinuxNamespaceType::Ipc => Namespace::Ipc,
                LinuxNamespaceType::User => Namespace::User,
                LinuxNamespaceType::Pid => Namespace::Pid,
                LinuxNamespaceType::Network => Namespace::Network,
                LinuxNamespaceType::Time => Namespace::Time,
            };
            if self.namespaces.contains_key(&kind) {
                return err(field, format!("duplicate {:?} namespace", kind.oci_name()));
            }
            let path = match ns.path() {
                Some(p) if !p.as_os_str().is_empty() => {
                    let s = p.to_str().unwrap_or("");
                    if !p.is_absolute() {
                        return err(format!("{field}.path"), "must be absolute");
                    }
                    Some(s.to_string())
                }
                _ => None,
            };
            self.namespaces.insert(kind, path);
        }
        if !self.has_ns(Namespace::Mount) {
            return err(
                "linux.namespaces",
                "a mount namespace is required (ferrun never mounts in the host's)",
            );
        }
        let linux = self.spec.linux().as_ref();
        let has_maps = linux.is_some_and(|l| {
            l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
                || l.gid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        });
        if has_maps && !self.new_ns(Namespace::User) {
            return err("linux.uidMappings", "id mappings need a new user namespace");
        }
        Ok(())
    }

    /// `hooks`, checked: absolute paths, positive timeouts, no NUL.
    fn hooks(&self) -> Result<ferrun_plans::Hooks, PlanError> {
        let mut out = ferrun_plans::Hooks {
            container_ns: self
                .namespaces
                .keys()
                .fold(0, |acc, ns| acc | ns.clone_flag()),
            ..Default::default()
        };
        let Some(h) = self.spec.hooks() else {
            return Ok(out);
        };
        let mut annotations: Vec<(String, String)> = self
            .spec
            .annotations()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        annotations.sort();
        out.annotations = annotations;
        type Phase<'h> = (
            &'static str,
            &'h Option<Vec<oci_spec::runtime::Hook>>,
            &'h mut Vec<ferrun_plans::Hook>,
        );
        let phases: [Phase<'_>; 6] = [
            ("prestart", h.prestart(), &mut out.prestart),
            ("createRuntime", h.create_runtime(), &mut out.create_runtime),
            (
                "createContainer",
                h.create_container(),
                &mut out.create_container,
            ),
            (
                "startContainer",
                h.start_container(),
                &mut out.start_container,
            ),
            ("poststart", h.poststart(), &mut out.poststart),
            ("poststop", h.poststop(), &mut out.poststop),
        ];
        for (name, list, dest) in phases {
            for (i, hook) in list.iter().flatten().enumerate() {
                let field = format!("hooks.{name}[{i}]");
                let path = hook.path().to_str().unwrap_or("");
                if !path.starts_with('/') {
                    return err(
                        format!("{field}.path"),
                        format!("{path:?} must be absolute"),
                    );
                }
                let text = |f: &str, s: &str| cbuf(f, s).map(|_| s.to_string());
                let args = match hook.args() {
                    Some(a) if !a.is_empty() => a
                        .iter()
                        .enumerate()
                        .map(|(j, s)| text(&format!("{field}.args[{j}]"), s))
                        .collect::<Result<Vec<_>, _>>()?,
                    _ => vec![path.to_string()],
                };
                let env = match hook.env() {
                    None => None,
                    Some(list) => Some(
                        list.iter()
                            .enumerate()
                            .map(|(j, s)| text(&format!("{field}.env[{j}]"), s))
                            .collect::<Result<Vec<_>, _>>()?,
                    ),
                };
                let timeout = match hook.timeout() {
                    None => None,
                    Some(t) if t > 0 && t <= i64::from(u32::MAX) => Some(t as u32),
                    Some(t) => {
                        return err(
                            format!("{field}.timeout"),
                            format!("{t} must be above 0 seconds"),
                        );
                    }
                };
                dest.push(ferrun_plans::Hook {
                    path: text(&format!("{field}.path"), path)?,
                    args,
                    env,
                    timeout,
                });
            }
        }
        Ok(out)
    }

    /// The container's cgroups: created and limited before clone, joined by clone (cgroup2) or
    /// by the container process's first steps (v1). A new cgroup namespace is made once the process is in place, so that
    /// its root is the container's cgroup.
    fn cgroups(&mut self) -> Result<(), PlanError> {
        let layout = &self.input.host.cgroups;
        let linux = self.spec.linux().as_ref();
        if layout.mode() == ferrun_plans::cgroups::CgroupMode::None {
            // No hierarchy mounted, or cgroups disabled (`--cgroup-manager disabled`).
            if linux.is_some_and(|l| l.resources().is_some()) {
                self.warnings.push(
                    "linux.resources: no cgroup hierarchy to apply it with: not applied".into(),
                );
            }
            return Ok(());
        }
        let raw_path = linux
            .and_then(|l| l.cgroups_path().as_ref())
            .and_then(|p| p.to_str());
        let systemd = self.input.options.systemd_cgroup;
        // runc's default slice for a rootless caller's scope is its manager's user.slice.
        let rootless_slice = raw_path
            .filter(|r| systemd && self.input.host.rootless && r.starts_with(':'))
            .map(|r| format!("user.slice{r}"));
        let raw_path = rootless_slice.as_deref().or(raw_path);
        let path = cgroups::cgroup_path(raw_path, systemd)?;
        // Without `linux.resources` the device rules still apply: deny all but the defaults.
        let none = oci_spec::runtime::LinuxResources::default();
        let res = linux.and_then(|l| l.resources().as_ref()).unwrap_or(&none);
        let mut applied = cgroups::resources(res, layout, "linux.resources", true)?;
        if self.input.host.rootless {
            // Loading a device program (or writing devices.allow) needs privilege on the host;
            // a rootless container cannot make device nodes anyway, and gets only the host's
            // nodes bound, which the caller may already open. runc and crun skip it too.
            applied.device_program = None;
            applied
                .writes
                .retain(|w| w.field != "linux.resources.devices");
            self.not_planned.push(NotPlanned {
                field: "linux.resources.devices".into(),
                why: "rootless: no device cgroup (it needs privilege; no device node can be \
                      made in the container, and only the host's are bound)"
                    .into(),
            });
        }
        let hierarchies = layout.hierarchies();
        let scope = if systemd {
            Some(self.systemd_scope(raw_path, &applied.writes)?)
        } else {
            None
        };
        // systemd makes the scope only once it has the container's pid: then the process is
        // cloned in the caller's cgroup, placed by systemd and limited before it is released.
        let clone_into = match scope {
            Some(_) => None,
            None => layout.unified.as_ref().map(|_| layout.v1.len() as u8),
        };
        let mut host = vec![if scope.is_some() {
            HostStep::StartScope
        } else {
            HostStep::CgroupCreate
        }];
        // A pids limit of 0 refuses every fork, the clone into the cgroup included: it is
        // written once the container process is in its cgroups (a move is never refused) and
        // before it is released, as runc, which moves its init in, honours it.
        let (no_forks, writes): (Vec<_>, Vec<_>) = applied
            .writes
            .into_iter()
            .partition(|w| w.file == "pids.max" && w.value == "0");
        host.extend(writes.into_iter().map(HostStep::CgroupWrite));
        if let Some((hierarchy, program)) = applied.device_program {
            host.push(HostStep::CgroupDevices { hierarchy, program });
        }
        let no_forks = no_forks.into_iter().map(HostStep::CgroupWrite);
        if scope.is_some() {
            host.extend(no_forks);
        } else if no_forks.len() != 0 {
            self.release_after(no_forks.collect());
        }
        if scope.is_some() {
            self.release_after(host);
        } else {
            self.before_clone.extend(host);
        }
        self.warnings.extend(applied.warnings);
        // The container process joins its v1 cgroups itself, first thing after clone.
        let joins: Vec<Step> = (0..hierarchies.len() as u8)
            .filter(|h| Some(*h) != clone_into && scope.is_none())
            .map(|hierarchy| Step::JoinCgroup { hierarchy })
            .collect();
        let at = self.steps.len().min(1);
        self.steps.splice(at..at, joins);
        if self.new_ns(Namespace::Cgroup) {
            let flag = Namespace::Cgroup.clone_flag();
            // An unshare made earlier (after joining a user namespace) must not take it.
            for s in &mut self.steps {
                if let Step::Unshare { flags } = s {
                    *flags &= !flag;
                }
            }
            self.steps
                .retain(|s| !matches!(s, Step::Unshare { flags: 0 }));
            self.deferred_flags |= flag;
            self.steps.push(Step::Unshare { flags: flag });
        }
        self.cgroups = Some(ferrun_plans::Cgroups {
            path,
            hierarchies,
            clone_into,
            v2_controllers: applied.v2_controllers,
            shared: self
                .spec
                .annotations()
                .as_ref()
                .and_then(|a| a.get(SHARED_CGROUP_ANNOTATION))
                .is_some_and(|v| v == "true"),
            // runc's rule: only a cgroup nobody named, for no resources, may be done without.
            optional: self.input.host.rootless
                && scope.is_none()
                && raw_path.is_none_or(str::is_empty)
                && !asks_for_resources(res),
            systemd: scope,
        });
        Ok(())
    }

    /// Host steps after clone, before the container process is released (which it then waits
    /// for, if it did not already).
    fn release_after(&mut self, host: Vec<HostStep>) {
        match self
            .after_clone
            .iter()
            .position(|h| matches!(h, HostStep::Release))
        {
            Some(at) => {
                self.after_clone.splice(at..at, host);
            }
            None => {
                self.after_clone.extend(host);
                self.after_clone.push(HostStep::Release);
                self.steps.push(Step::WaitParent);
            }
        }
    }

    /// `--systemd-cgroup`: the scope for `slice:prefix:name`, on a host whose cgroups systemd
    /// can delegate (one cgroup2 hierarchy).
    fn systemd_scope(
        &self,
        raw_path: Option<&str>,
        writes: &[ferrun_plans::CgroupWrite],
    ) -> Result<ferrun_plans::cgroups::SystemdScope, PlanError> {
        let field = "linux.cgroupsPath";
        let layout = &self.input.host.cgroups;
        let Some(raw) = raw_path.filter(|p| !p.is_empty()) else {
            return err(
                field,
                "--systemd-cgroup needs a path of the form slice:prefix:name",
            );
        };
        if layout.unified.is_none() || !layout.v1.is_empty() {
            return err(
                field,
                "--systemd-cgroup: ferrun asks systemd for scopes on a pure cgroup v2 host only, \
                 and this host mounts cgroup v1 hierarchies; use the cgroupfs manager",
            );
        }
        let (slice, unit) = cgroups::systemd_unit(raw)?;
        if unit.ends_with(".slice") {
            return err(
                field,
                format!(
                    "{raw:?}: a container in a slice unit of its own is not supported; name a scope"
                ),
            );
        }
        Ok(ferrun_plans::cgroups::SystemdScope {
            slice,
            unit,
            properties: cgroups::unit_properties(writes, 0),
        })
    }

    fn join_and_map(&mut self) -> Result<(), PlanError> {
        let mut slot = 0u8;
        let ns_index = |kind: Namespace| {
            let list = self
                .spec
                .linux()
                .as_ref()
                .and_then(|l| l.namespaces().as_ref());
            list.and_then(|l| {
                l.iter()
                    .position(|n| format!("{:?}", n.typ()).eq_ignore_ascii_case(kind.oci_name()))
            })
            .unwrap_or(0)
        };
        for kind in Namespace::ALL {
            let Some(Some(path)) = self.namespaces.get(&kind) else {
                continue;
            };
            let field = format!("linux.namespaces[{}].path", ns_index(kind));
            let path = cbuf(&field, path)?;
            if kind.joined_before_clone() {
                self.before_clone
                    .push(HostStep::JoinBeforeClone { ns: kind, path });
            } else {
                self.before_clone.push(HostStep::OpenNamespace {
                    slot,
                    ns: kind,
                    path,
                });
                self.steps.push(Step::SetNs { slot, ns: kind });
                slot += 1;
                if kind == Namespace::User {
                    // New namespaces must belong to the joined user namespace: made after it is
                    // joined (pid and time still come with clone, owned by the caller's).
                    self.steps.push(Step::BecomeNsRoot);
                    self.deferred_flags = self
                        .namespaces
                        .iter()
                        .filter(|(ns, path)| {
                            path.is_none() && !matches!(ns, Namespace::Pid | Namespace::Time)
                        })
                        .fold(0, |acc, (ns, _)| acc | ns.clone_flag());
                    if self.deferred_flags != 0 {
                        self.steps.push(Step::Unshare {
                            flags: self.deferred_flags,
                        });
                    }
                }
            }
        }
        if self.new_ns(Namespace::User) {
            let linux = self.spec.linux().as_ref();
            let uid = linux
                .and_then(|l| l.uid_mappings().clone())
                .unwrap_or_default();
            let gid = linux
                .and_then(|l| l.gid_mappings().clone())
                .unwrap_or_default();
            let host = self.input.host;
            // Without privilege the kernel takes only a map of the caller's own id (and a gid
            // map only once setgroups is denied); anything wider goes through the setuid
            // helpers, which check /etc/subuid and /etc/subgid. Root in a partial user
            // namespace (`podman unshare`) has CAP_SETUID over it and writes its maps itself.
            let unprivileged = host.uid != 0;
            let own_only = |maps: &[LinuxIdMapping], id: u32| {
                maps.is_empty()
                    || (maps.len() == 1 && maps[0].host_id() == id && maps[0].size() == 1)
            };
            let uid_helper = unprivileged && !own_only(&uid, host.uid);
            let gid_helper = unprivileged && !own_only(&gid, host.gid);
            let uid = id_map("linux.uidMappings", &uid, host.uid)?;
            let gid = id_map("linux.gidMappings", &gid, host.gid)?;
            let step = |helper: bool, kind: IdMapKind, map: CBuf| {
                if helper {
                    HostStep::IdMapHelper { kind, map }
                } else {
                    HostStep::WriteIdMap { kind, map }
                }
            };
            self.after_clone.push(step(uid_helper, IdMapKind::Uid, uid));
            if self.setgroups_denied() {
                self.after_clone.push(HostStep::DenySetgroups);
            }
            self.after_clone.push(step(gid_helper, IdMapKind::Gid, gid));
            self.after_clone.push(HostStep::Release);
            self.steps.push(Step::WaitParent);
            self.steps.push(Step::BecomeNsRoot);
        }
        Ok(())
    }

    fn devices(&mut self, dev_is_bind: bool) -> Result<(), PlanError> {
        // mknod needs CAP_MKNOD on the host: in a user namespace, or run rootless (already in
        // one, as under rootless podman), the host's nodes are bound instead.
        let in_userns = self.has_ns(Namespace::User) || self.input.host.rootless;
        let mut devices: Vec<(String, ferrun_plans::DevKind, u32, u32, u32, u32, u32)> = Vec::new();
        if !dev_is_bind {
            for (name, major, minor) in [
                ("null", 1, 3),
                ("zero", 1, 5),
                ("full", 1, 7),
                ("random", 1, 8),
                ("urandom", 1, 9),
                ("tty", 5, 0),
            ] {
                devices.push((
                    format!("/dev/{name}"),
                    ferrun_plans::DevKind::Char,
                    major,
                    minor,
                    0o666,
                    0,
                    0,
                ));
            }
        }
        let list = self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.devices().clone())
            .unwrap_or_default();
        for (i, d) in list.iter().enumerate() {
            use oci_spec::runtime::LinuxDeviceType as T;
            let field = format!("linux.devices[{i}]");
            let path = d.path().to_str().unwrap_or("");
            if !path.starts_with('/') {
                return err(format!("{field}.path"), "must be absolute");
            }
            let path = clean_abs(path);
            if path == "/" {
                return err(format!("{field}.path"), "must not be /");
            }
            if path == "/proc" || path.starts_with("/proc/") {
                return err(
                    format!("{field}.path"),
                    format!("{} is inside /proc", ferrun_plans::clip(&path, 200)),
                );
            }
            let kind = match d.typ() {
                T::C | T::U => ferrun_plans::DevKind::Char,
                T::B => ferrun_plans::DevKind::Block,
                T::P => ferrun_plans::DevKind::Fifo,
                T::A => {
                    return err(
                        format!("{field}.type"),
                        "\"a\" is for cgroup rules, not a device node",
                    );
                }
            };
            let (major, minor) = match kind {
                ferrun_plans::DevKind::Fifo => (0, 0),
                _ => match (d.major(), d.minor()) {
                    (maj, min) if maj >= 0 && min >= 0 => (maj as u32, min as u32),
                    _ => {
                        return err(
                            format!("{field}.major"),
                            "major and minor must not be negative",
                        );
                    }
                },
            };
            let mode = d.file_mode().unwrap_or(0o666) & 0o7777;
            process::check_id(&format!("{field}.uid"), d.uid().unwrap_or(0))?;
            process::check_id(&format!("{field}.gid"), d.gid().unwrap_or(0))?;
            let entry = (
                path,
                kind,
                major,
                minor,
                mode,
                d.uid().unwrap_or(0),
                d.gid().unwrap_or(0),
            );
            devices.retain(|e| e.0 != entry.0);
            devices.push(entry);
        }
        if dev_is_bind {
            // /dev comes from elsewhere (often the host's): nothing is created in it, as runc.
            devices.clear();
        }
        // Root making a new user namespace creates the nodes itself, on the host's side.
        let parent_makes = self.new_ns(Namespace::User) && !self.input.host.rootless;
        let linux = self.spec.linux().as_ref();
        let uid_maps = linux
            .and_then(|l| l.uid_mappings().clone())
            .unwrap_or_default();
        let gid_maps = linux
            .and_then(|l| l.gid_mappings().clone())
            .unwrap_or_default();
        let host_id = |maps: &[LinuxIdMapping], id: u32| {
            if maps.is_empty() {
                // No maps: the runtime's own id is the container's root.
                return if id == 0 { Some(0) } else { None };
            }
            maps.iter().find_map(|m| {
                (id >= m.container_id() && id - m.container_id() < m.size())
                    .then(|| m.host_id().checked_add(id - m.container_id()))
                    .flatten()
            })
        };
        for (path, kind, major, minor, mode, uid, gid) in devices {
            let dest = cbuf("linux.devices", &path)?;
            let node = ferrun_plans::DeviceNode {
                dest,
                kind,
                major,
                minor,
                mode,
                uid,
                gid,
            };
            if parent_makes {
                // An id the namespace does not map shows as the overflow id: owned by root.
                self.steps
                    .push(Step::AttachDevice(ferrun_plans::DeviceNode {
                        uid: host_id(&uid_maps, uid).unwrap_or(0),
                        gid: host_id(&gid_maps, gid).unwrap_or(0),
                        ..node
                    }));
            } else if in_userns {
                let source = node.dest.clone();
                self.steps.push(Step::BindDevice {
                    source,
                    dest: node.dest,
                });
            } else {
                self.steps.push(Step::MkNod(node));
            }
        }
        if !dev_is_bind {
            for (link, target) in [
                ("/dev/fd", "/proc/self/fd"),
                ("/dev/stdin", "/proc/self/fd/0"),
                ("/dev/stdout", "/proc/self/fd/1"),
                ("/dev/stderr", "/proc/self/fd/2"),
                ("/dev/ptmx", "pts/ptmx"),
            ] {
                self.steps.push(Step::Symlink {
                    target: cbuf("", target)?,
                    link: cbuf("", link)?,
                });
            }
        }
        Ok(())
    }

    fn uts(&mut self) -> Result<(), PlanError> {
        for (field, value) in [
            ("hostname", self.spec.hostname()),
            ("domainname", self.spec.domainname()),
        ] {
            let Some(name) = value.as_deref() else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            if !self.has_ns(Namespace::Uts) {
                return err(field, "needs a uts namespace in linux.namespaces");
            }
            if name.len() > 64 {
                return err(field, "longer than 64 bytes");
            }
            let name = cbuf(field, name)?;
            self.steps.push(if field == "hostname" {
                Step::Hostname { name }
            } else {
                Step::Domainname { name }
            });
        }
        Ok(())
    }

    fn sysctls(&mut self) -> Result<(), PlanError> {
        let map = self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.sysctl().clone())
            .unwrap_or_default();
        let mut keys: Vec<_> = map.iter().collect();
        keys.sort();
        if !keys.is_empty() {
            // The writes go through a procfs of the container process's own.
            self.steps.push(Step::OpenProcfs);
        }
        for (key, value) in keys {
            let field = format!("linux.sysctl.{:?}", ferrun_plans::clip(key, 200));
            let rel = key.replace('.', "/");
            if key.is_empty()
                || rel.starts_with('/')
                || rel.split('/').any(|c| c.is_empty() || c == "..")
            {
                return err(field, "not a sysctl name");
            }
            const IPC: &[&str] = &[
                "kernel.msgmax",
                "kernel.msgmnb",
                "kernel.msgmni",
                "kernel.sem",
                "kernel.shmall",
                "kernel.shmmax",
                "kernel.shmmni",
                "kernel.shm_rmid_forced",
            ];
            let needs = if IPC.contains(&key.as_str()) || key.starts_with("fs.mqueue.") {
                Namespace::Ipc
            } else if key.starts_with("net.") {
                Namespace::Network
            } else if key == "kernel.hostname" || key == "kernel.domainname" {
                Namespace::Uts
            } else {
                return err(field, "not namespaced: it would change the host");
            };
            if !self.has_ns(needs) {
                return err(
                    field,
                    format!("needs a {} namespace in linux.namespaces", needs.oci_name()),
                );
            }
            self.steps.push(Step::Sysctl {
                path: cbuf(&field, &format!("/proc/sys/{rel}"))?,
                value: cbuf(&field, value)?,
            });
        }
        Ok(())
    }

    fn paths(&mut self) -> Result<(), PlanError> {
        let linux = self.spec.linux().as_ref();
        let ro = linux
            .and_then(|l| l.readonly_paths().clone())
            .unwrap_or_default();
        let masked = linux
            .and_then(|l| l.masked_paths().clone())
            .unwrap_or_default();
        for (i, p) in ro.iter().enumerate() {
            let field = format!("linux.readonlyPaths[{i}]");
            if !p.starts_with('/') {
                return err(field, "must be absolute");
            }
            self.steps.push(Step::ReadonlyPath {
                path: cbuf(&field, &clean_abs(p))?,
            });
        }
        for (i, p) in masked.iter().enumerate() {
            let field = format!("linux.maskedPaths[{i}]");
            if !p.starts_with('/') {
                return err(field, "must be absolute");
            }
            self.steps.push(Step::MaskPath {
                path: cbuf(&field, &clean_abs(p))?,
            });
        }
        Ok(())
    }

    /// Sections owned by other parts of ferrun that are not planned yet: listed, never dropped.
    fn unplanned_sections(&mut self) {
        let spec = self.spec;
        if self.cgroups.is_none() {
            for i in mounts::cgroup_mounts(spec) {
                self.not_planned(
                    &format!("mounts[{i}]"),
                    "the host has no cgroup hierarchy to show: skipped",
                );
            }
        }
    }

    /// Sections ferrun cannot apply: refused, since a container without them would run with
    /// less than it asked for.
    fn refuse_unsupported(&self) -> Result<(), PlanError> {
        let Some(linux) = self.spec.linux() else {
            return Ok(());
        };
        if linux.intel_rdt().is_some() {
            return err(
                "linux.intelRdt",
                "Intel RDT (resctrl) is not supported by ferrun: refused rather than ignored",
            );
        }
        Ok(())
    }

    /// `linux.netDevices`, checked as runc checks it: valid interface names, a network
    /// namespace of the container's own, not rootless.
    fn net_devices(&mut self) -> Result<(), PlanError> {
        let Some(devices) = self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.net_devices().as_ref())
        else {
            return Ok(());
        };
        if devices.is_empty() {
            return Ok(());
        }
        let field = "linux.netDevices";
        if !self.has_ns(Namespace::Network) {
            return err(field, "moving network devices needs a network namespace");
        }
        if self.input.host.rootless {
            return err(
                field,
                "network devices cannot be moved by a rootless runtime",
            );
        }
        if self.deferred_flags & Namespace::Network.clone_flag() != 0 {
            // Made by the process after it joins a user namespace: the parent cannot tell
            // when it exists.
            return err(
                field,
                "a new network namespace under a joined user namespace cannot receive devices",
            );
        }
        let valid = |n: &str| {
            !n.is_empty()
                && n.len() < 16
                && n != "."
                && n != ".."
                && !n.contains(['/', ':'])
                && !n.chars().any(|c| c.is_whitespace() || c.is_control())
        };
        let mut list: Vec<_> = devices.iter().collect();
        list.sort_by_key(|(k, _)| k.as_str());
        let mut moves = Vec::new();
        for (host, dev) in list {
            let at = format!("{field}.{}", ferrun_plans::clip(host, 100));
            if !valid(host) {
                return err(at, "not a network interface name");
            }
            let name = dev
                .name()
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(host);
            if !valid(name) {
                return err(format!("{at}.name"), "not a network interface name");
            }
            moves.push((cbuf(&at, host)?, cbuf(&at, name)?));
        }
        let step = HostStep::NetDevices { devices: moves };
        if self.new_ns(Namespace::Network) {
            self.release_after(vec![step]);
        } else {
            // Before the parent joins the namespace: the device is in the runtime's own.
            let at = self
                .before_clone
                .iter()
                .position(|h| {
                    matches!(
                        h,
                        HostStep::JoinBeforeClone {
                            ns: Namespace::Network,
                            ..
                        }
                    )
                })
                .unwrap_or(0);
            self.before_clone.insert(at, step);
        }
        Ok(())
    }
}

/// Whether a cgroup is needed for more than the default device rules.
fn asks_for_resources(r: &oci_spec::runtime::LinuxResources) -> bool {
    r.memory().is_some()
        || r.cpu().is_some()
        || r.pids().is_some()
        || r.block_io().is_some()
        || r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
        || r.network().is_some()
        || r.rdma().as_ref().is_some_and(|h| !h.is_empty())
        || r.unified().as_ref().is_some_and(|h| !h.is_empty())
}

/// The text of an id map file; no mappings means the runtime's own id as root.
pub(crate) fn id_map(field: &str, maps: &[LinuxIdMapping], own_id: u32) -> Result<CBuf, PlanError> {
    if maps.is_empty() {
        return cbuf(field, &format!("0 {own_id} 1\n"));
    }
    let mut s = String::new();
    for (i, m) in maps.iter().enumerate() {
        if m.size() == 0 {
            return err(format!("{field}[{i}].size"), "must be at least 1");
        }
        // A range may not reach (uid_t)-1, the kernel's "no change".
        for (name, first) in [("containerID", m.container_id()), ("hostID", m.host_id())] {
            if u64::from(first) + u64::from(m.size()) > u64::from(u32::MAX) {
                return err(
                    format!("{field}[{i}]"),
                    format!(
                        "{name} {first} size {} reaches 4294967295, which is no id",
                        m.size()
                    ),
                );
            }
        }
        s.push_str(&format!(
            "{} {} {}\n",
            m.container_id(),
            m.host_id(),
            m.size()
        ));
    }
    cbuf(field, &s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_abs_cannot_climb() {
        assert_eq!(clean_abs("/a/../../b/./c//d"), "/b/c/d");
        assert_eq!(clean_abs("/../.."), "/");
    }
}
