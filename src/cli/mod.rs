//! The runc-compatible command line: clap's structs and the dispatch to one lifecycle function
//! per command, after the re-exec from a read-only image (`host::sealed`). It may use every room
//! below it; none of them uses it.

use crate::error::{Context, Result};
use crate::lifecycle::info::SeccompQuery;
use crate::lifecycle::{self, CreateOpts};
use crate::log;
use crate::state::Store;
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "ferrun",
    about = "A fast OCI container runtime",
    disable_version_flag = true
)]
pub struct Cli {
    /// Directory for container state: /run/ferrun, or $XDG_RUNTIME_DIR/ferrun when rootless.
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Log file for errors and debug output.
    #[arg(long, global = true)]
    pub log: Option<String>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    pub log_format: String,
    /// Debug output.
    #[arg(long, global = true)]
    pub debug: bool,
    /// linux.cgroupsPath is systemd's slice:prefix:name (mapped to the cgroupfs path systemd
    /// uses; no D-Bus).
    #[arg(long = "systemd-cgroup", global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub systemd_cgroup: Option<String>,
    /// crun's cgroup manager: cgroupfs, systemd (as --systemd-cgroup) or disabled (no
    /// cgroups at all).
    #[arg(long = "cgroup-manager", global = true)]
    pub cgroup_manager: Option<String>,
    /// Time every step of a run, create or exec, and print the plan listing with durations
    /// (and the phases' totals) on stderr: `text` or `json`.
    #[arg(long = "profile", global = true, num_args = 0..=1, require_equals = true, default_missing_value = "text", value_name = "text|json")]
    pub timing: Option<String>,
    /// Print the version.
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The container id.
    pub id: String,
    /// The bundle directory (holding config.json).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container process's pid here.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the pty master to (terminal: true).
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// chroot instead of pivot_root.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Accepted for runc compatibility: ferrun creates no session keyring.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass this many fds after stdio into the container.
    #[arg(long = "preserve-fds", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=65536))]
    pub preserve_fds: u32,
    /// Use this config file instead of the bundle's config.json (crun).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// The flags `checkpoint` and `restore` share with runc's.
#[derive(Args, Debug)]
pub struct CriuArgs {
    /// Directory of criu's image files (default: ./checkpoint).
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Directory for criu's work files and log (default: the image path).
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// Allow open TCP connections.
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow shell jobs (a session or process group outside the container).
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Handle file locks.
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// cgroups mode: soft, full, strict or ignore (default: soft).
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
}

impl CriuArgs {
    fn flags(&self) -> lifecycle::criu::CriuFlags {
        lifecycle::criu::CriuFlags {
            image_path: self.image_path.clone(),
            work_path: self.work_path.clone(),
            tcp_established: self.tcp_established,
            ext_unix_sk: self.ext_unix_sk,
            shell_job: self.shell_job,
            file_locks: self.file_locks,
            manage_cgroups_mode: self.manage_cgroups_mode.clone(),
        }
    }
}

impl Cli {
    fn systemd(&self) -> bool {
        self.systemd_cgroup.as_deref().is_some_and(|v| v != "false")
            || self.cgroup_manager.as_deref() == Some("systemd")
    }
}

impl CreateArgs {
    fn opts(&self, systemd_cgroup: bool) -> CreateOpts {
        CreateOpts {
            id: self.id.clone(),
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            no_pivot: self.no_pivot,
            preserve_fds: self.preserve_fds,
            systemd_cgroup,
            config: self.config.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container, leaving it waiting for start.
    Create(CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Print a container's state (OCI JSON).
    State { id: String },
    /// Send a signal to a container's process.
    Kill {
        id: String,
        /// Signal name or number.
        #[arg(default_value = "SIGTERM")]
        signal: String,
        /// Signal every process of the container.
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a container.
    Delete {
        id: String,
        /// Kill it first if it is running.
        #[arg(short, long)]
        force: bool,
    },
    /// Create and start a container; wait for it unless --detach.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once started.
        #[arg(short, long)]
        detach: bool,
        /// Accepted for crun compatibility: the container is deleted after it exits unless detached.
        #[arg(long)]
        keep: bool,
    },
    /// List containers.
    List {
        /// table or json.
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Ids only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write a starting config.json.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// For a user without privileges.
        #[arg(long)]
        rootless: bool,
    },
    /// Print what this runtime supports (OCI features JSON).
    Features,
    /// Run a new process in a running container.
    Exec(Box<ExecArgs>),
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// List a container's processes; arguments after the id go to ps(1).
    Ps {
        /// table or json.
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Print resource usage and OOM events of a container.
    Events {
        id: String,
        /// One stats event, then exit.
        #[arg(long)]
        stats: bool,
        /// How often to print stats (e.g. 5s, 500ms).
        #[arg(long, default_value = "5s")]
        interval: String,
    },
    /// Change the resource limits of a container.
    Update(Box<UpdateArgs>),
    /// Compile, inspect and query seccomp profiles.
    Seccomp {
        #[command(subcommand)]
        command: SeccompCommand,
    },
    /// Checkpoint a running container with criu.
    Checkpoint {
        id: String,
        #[command(flatten)]
        criu: CriuArgs,
        /// Image directory of a previous pre-dump, relative to --image-path.
        #[arg(long = "parent-path")]
        parent_path: Option<String>,
        /// Leave the container running after the checkpoint.
        #[arg(long = "leave-running")]
        leave_running: bool,
        /// Dump only the memory, leaving the container running (for a later --parent-path).
        #[arg(long = "pre-dump")]
        pre_dump: bool,
    },
    /// Restore a container from a checkpoint.
    Restore {
        id: String,
        #[command(flatten)]
        criu: CriuArgs,
        /// The bundle directory (holding config.json).
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// Return once restored.
        #[arg(short, long)]
        detach: bool,
        /// Write the restored process's pid here.
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        /// Unix socket to send the restored terminal's pty master to.
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        /// Accepted for runc compatibility: criu restores the root as it was dumped.
        #[arg(long = "no-pivot")]
        no_pivot: bool,
        /// Accepted for runc compatibility: ferrun creates no session keyring.
        #[arg(long = "no-new-keyring")]
        no_new_keyring: bool,
        /// An LSM profile for the restored process: not supported (refused).
        #[arg(long = "lsm-profile")]
        lsm_profile: Option<String>,
        /// An LSM mount context: not supported (refused).
        #[arg(long = "lsm-mount-context")]
        lsm_mount_context: Option<String>,
    },
    /// Compile a bundle's config.json to a plan, cache it, and print it.
    Plan {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// text or json.
        #[arg(long, default_value = "text")]
        format: String,
        /// Write the output here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Plan for chroot instead of pivot_root.
        #[arg(long = "no-pivot")]
        no_pivot: bool,
    },
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    pub id: String,
    /// The command and its arguments (unless --process).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// A process JSON file (the `process` object of config.json).
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Return once the process runs.
    #[arg(short, long)]
    pub detach: bool,
    /// Give the process a pty.
    #[arg(short, long)]
    pub tty: bool,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(long)]
    pub cwd: Option<String>,
    /// KEY=VALUE, added to the container's environment.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// UID[:GID].
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(short = 'g', long = "additional-gids", value_delimiter = ',')]
    pub additional_gids: Vec<u32>,
    /// A capability to add (repeatable).
    #[arg(short, long)]
    pub cap: Vec<String>,
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// The AppArmor profile for the process (instead of the container's).
    #[arg(long)]
    pub apparmor: Option<String>,
    /// The SELinux label for the process (instead of the container's).
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    #[arg(long = "preserve-fds", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=65536))]
    pub preserve_fds: u32,
    /// Exec even if the container is paused (crun).
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// crun: a sub-cgroup of the container to run in (not supported: refused).
    #[arg(long)]
    pub cgroup: Option<String>,
}

impl ExecArgs {
    fn opts(&self) -> crate::lifecycle::exec::ExecOpts {
        crate::lifecycle::exec::ExecOpts {
            id: self.id.clone(),
            process: self.process.clone(),
            args: self.command.clone(),
            pid_file: self.pid_file.clone(),
            detach: self.detach,
            tty: self.tty,
            console_socket: self.console_socket.clone(),
            cwd: self.cwd.clone(),
            env: self.env.clone(),
            user: self.user.clone(),
            additional_gids: self.additional_gids.clone(),
            caps: self.cap.clone(),
            no_new_privs: self.no_new_privs,
            apparmor: self.apparmor.clone(),
            process_label: self.process_label.clone(),
            preserve_fds: self.preserve_fds,
            ignore_paused: self.ignore_paused,
        }
    }
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    pub id: String,
    /// A linux.resources JSON file, or - for stdin; the other flags are then ignored.
    #[arg(short, long)]
    pub resources: Option<String>,
    /// Memory limit (bytes, or with a k/m/g suffix; -1 for none).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long = "kernel-memory", allow_hyphen_values = true, hide = true)]
    pub kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp", allow_hyphen_values = true, hide = true)]
    pub kernel_memory_tcp: Option<String>,
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-burst")]
    pub cpu_burst: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    #[arg(long = "cpu-idle")]
    pub cpu_idle: Option<i64>,
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
}

impl UpdateArgs {
    fn flags(&self) -> crate::lifecycle::update::UpdateFlags {
        crate::lifecycle::update::UpdateFlags {
            resources: self.resources.clone(),
            memory: self.memory.clone(),
            memory_reservation: self.memory_reservation.clone(),
            memory_swap: self.memory_swap.clone(),
            kernel_memory: self.kernel_memory.clone(),
            kernel_memory_tcp: self.kernel_memory_tcp.clone(),
            cpu_share: self.cpu_share,
            cpu_period: self.cpu_period,
            cpu_quota: self.cpu_quota,
            cpu_burst: self.cpu_burst,
            cpu_rt_period: self.cpu_rt_period,
            cpu_rt_runtime: self.cpu_rt_runtime,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            cpu_idle: self.cpu_idle,
            pids_limit: self.pids_limit,
            blkio_weight: self.blkio_weight,
        }
    }
}

/// `ferrun seccomp …`. PROFILE is a `linux.seccomp` object or a whole config.json.
#[derive(Subcommand, Debug)]
pub enum SeccompCommand {
    /// Compile a profile to BPF (the kernel's sock_filter array).
    Compile {
        profile: PathBuf,
        /// Host arch to compile for: x86_64 or aarch64 (default: this machine's).
        #[arg(long)]
        arch: Option<String>,
        /// Write the BPF here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Disassemble a profile's compiled filter, syscalls named.
    Dump {
        profile: PathBuf,
        #[arg(long)]
        arch: Option<String>,
    },
    /// Which action a call gets, evaluated on the compiled BPF.
    Check {
        profile: PathBuf,
        /// Syscall name or number.
        syscall: String,
        /// Up to six arguments, decimal or 0x-hex.
        args: Vec<String>,
        /// ABI of the calling process: x86_64, x86, x32, aarch64, arm (default: native).
        #[arg(long)]
        arch: Option<String>,
    },
}

impl SeccompCommand {
    fn query(&self) -> SeccompQuery<'_> {
        match self {
            SeccompCommand::Compile { profile, arch, out } => SeccompQuery::Compile {
                profile,
                arch: arch.as_deref(),
                out: out.as_deref(),
            },
            SeccompCommand::Dump { profile, arch } => SeccompQuery::Dump {
                profile,
                arch: arch.as_deref(),
            },
            SeccompCommand::Check {
                profile,
                syscall,
                args,
                arch,
            } => SeccompQuery::Check {
                profile,
                syscall,
                args,
                arch: arch.as_deref(),
            },
        }
    }
}

fn print(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    // A container process runs ferrun's image until it execs its program (and a program whose
    // shebang is /proc/self/exe would run it on): before anything else, commands that start
    // one re-execute from a read-only image, so that nothing in a container can write the
    // host's binary (CVE-2019-5736). A stray match (an id named "run") costs one exec, no more.
    // A profile starts here, before the re-exec: the child process is told when.
    if std::env::args_os()
        .skip(1)
        .any(|a| a.to_str().is_some_and(|a| a.starts_with("--profile")))
        && std::env::var_os(lifecycle::profile::T0_ENV).is_none()
    {
        // SAFETY: single-threaded here, before anything reads the environment.
        unsafe {
            std::env::set_var(
                lifecycle::profile::T0_ENV,
                ferrun_executor::now_ns().to_string(),
            )
        };
    }
    let starts = std::env::args_os()
        .skip(1)
        .any(|a| matches!(a.to_str(), Some("create" | "run" | "exec")));
    if starts
        && !crate::host::sealed::protected()
        && let Err(e) = crate::host::sealed::reexec()
    {
        eprintln!("ferrun: {}", e.0);
        return 1;
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    let format = match cli.log_format.as_str() {
        "json" => log::Format::Json,
        "text" => log::Format::Text,
        other => {
            eprintln!("ferrun: invalid --log-format {other:?}: use text or json");
            return 1;
        }
    };
    log::init(cli.log.clone(), format, cli.debug);
    if let Some(p) = &cli.timing {
        if p != "text" && p != "json" {
            eprintln!("ferrun: invalid --profile {p:?}: use text or json");
            return 1;
        }
        let t0 = std::env::var(lifecycle::profile::T0_ENV)
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(ferrun_executor::now_ns);
        lifecycle::profile::start(p == "json", t0);
        lifecycle::profile::mark("start-up (exec, arguments)");
    }
    let code = match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            log::error(&e.0);
            1
        }
    };
    if let Some(r) = lifecycle::profile::report() {
        eprint!("{r}");
    }
    code
}

fn dispatch(cli: &Cli) -> Result<i32> {
    if cli.version {
        // runc's shape (podman shows it in `podman info`), with crun's features line.
        let criu = lifecycle::info::criu_version();
        print(&format!(
            "ferrun version {}\ncommit: {}\nspec: {}\ncriu: {}\n+SECCOMP +EBPF +CGROUPV1 +CGROUPV2 +HOOKS +SYSTEMD +SELINUX +APPARMOR{}\n",
            env!("CARGO_PKG_VERSION"),
            option_env!("FERRUN_COMMIT").unwrap_or("unknown"),
            crate::OCI_VERSION,
            criu.as_deref()
                .map_or("not found: no checkpoint or restore".into(), |v| format!(
                    "{v}: checkpoint and restore"
                )),
            if criu.is_some() { " +CRIU" } else { "" }
        ));
        return Ok(0);
    }
    match cli.cgroup_manager.as_deref() {
        None | Some("cgroupfs") | Some("systemd") => {}
        Some("disabled") => {
            // SAFETY: single-threaded here, before anything reads the environment.
            unsafe { std::env::set_var(crate::cgroups::LAYOUT_ENV, "none") };
        }
        Some(other) => {
            crate::bail!("invalid --cgroup-manager {other:?}: use cgroupfs, systemd or disabled")
        }
    }
    let Some(command) = &cli.command else {
        print("ferrun: no command given; see ferrun --help\n");
        return Ok(1);
    };
    let root = match &cli.root {
        Some(r) => r.clone(),
        None => match crate::host::rootless::default_root(crate::host::rootless::detect()) {
            Ok(r) => r,
            // These two never touch the state root.
            Err(_) if matches!(command, Command::Spec { .. } | Command::Features) => {
                PathBuf::from(crate::host::rootless::DEFAULT_ROOT)
            }
            Err(e) => return Err(crate::error::Error(e)),
        },
    };
    let store = Store::new(&root);
    match command {
        Command::Create(a) => lifecycle::create(&store, &a.opts(cli.systemd())).map(|_| 0),
        Command::Start { id } => lifecycle::start(&store, id).map(|_| 0),
        Command::State { id } => {
            print(&(lifecycle::info::state_json(&store, id)? + "\n"));
            Ok(0)
        }
        Command::Kill { id, signal, all } => lifecycle::kill(&store, id, signal, *all).map(|_| 0),
        Command::Delete { id, force } => lifecycle::delete(&store, id, *force).map(|_| 0),
        Command::Run { create, detach, .. } => {
            lifecycle::run(&store, &create.opts(cli.systemd()), *detach, None)
        }
        Command::List { format, quiet } => {
            print(&crate::lifecycle::info::list(&store, format, *quiet)?);
            Ok(0)
        }
        Command::Spec { bundle, rootless } => {
            crate::lifecycle::info::spec(bundle, *rootless).map(|_| 0)
        }
        Command::Features => {
            print(&crate::lifecycle::info::features());
            Ok(0)
        }
        Command::Seccomp { command } => crate::lifecycle::info::seccomp(command.query()),
        Command::Exec(a) => {
            if let Some(c) = &a.cgroup {
                crate::bail!(
                    "exec --cgroup {c}: sub-cgroups are not supported; the process joins the container's cgroup"
                );
            }
            crate::lifecycle::exec::exec(&store, &a.opts())
        }
        Command::Pause { id } => crate::lifecycle::pause::pause(&store, id).map(|_| 0),
        Command::Resume { id } => crate::lifecycle::pause::resume(&store, id).map(|_| 0),
        Command::Ps {
            format,
            id,
            ps_args,
        } => {
            print(&crate::lifecycle::ps::ps(&store, id, format, ps_args)?);
            Ok(0)
        }
        Command::Events {
            id,
            stats,
            interval,
        } => {
            let every = parse_duration(interval)?;
            crate::lifecycle::events::events(&store, id, *stats, every).map(|_| 0)
        }
        Command::Update(a) => {
            crate::lifecycle::update::update(&store, &a.id, &a.flags()).map(|_| 0)
        }
        Command::Checkpoint {
            id,
            criu,
            parent_path,
            leave_running,
            pre_dump,
        } => {
            let o = lifecycle::checkpoint::CheckpointOpts {
                flags: criu.flags(),
                parent_path: parent_path.clone(),
                leave_running: *leave_running,
                pre_dump: *pre_dump,
            };
            lifecycle::checkpoint::checkpoint(&store, id, &o).map(|_| 0)
        }
        Command::Restore {
            id,
            criu,
            bundle,
            detach,
            pid_file,
            console_socket,
            no_pivot,
            no_new_keyring: _,
            lsm_profile,
            lsm_mount_context,
        } => {
            if let Some(p) = lsm_profile.as_ref().or(lsm_mount_context.as_ref()) {
                crate::bail!(
                    "restore --lsm-profile/--lsm-mount-context {p}: not supported; the restored \
                     process keeps the labels it was dumped with"
                );
            }
            let o = lifecycle::restore::RestoreOpts {
                create: CreateOpts {
                    id: id.clone(),
                    bundle: bundle.clone(),
                    pid_file: pid_file.clone(),
                    console_socket: console_socket.clone(),
                    no_pivot: *no_pivot,
                    systemd_cgroup: cli.systemd(),
                    ..Default::default()
                },
                flags: criu.flags(),
                detach: *detach,
            };
            lifecycle::restore::restore(&store, &o)
        }
        Command::Plan {
            bundle,
            format,
            out,
            no_pivot,
        } => {
            let text =
                crate::lifecycle::info::plan(&store, bundle, format, *no_pivot, cli.systemd())?;
            match out {
                Some(path) => {
                    std::fs::write(path, text).ctx(|| format!("write {}", path.display()))?
                }
                None => print(&text),
            }
            Ok(0)
        }
    }
}

/// `5s`, `500ms`, `1m`, `2h`, or plain seconds.
fn parse_duration(s: &str) -> Result<std::time::Duration> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| crate::error::Error(format!("invalid --interval {s:?}")))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(crate::error::Error(format!("invalid --interval {s:?}"))),
    };
    std::time::Duration::try_from_secs_f64(secs)
        .map_err(|_| crate::error::Error(format!("invalid --interval {s:?}")))
}
