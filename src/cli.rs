//! The runc-compatible command line.

use crate::container::{self, CreateOpts};
use crate::error::{Context, Result};
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
    /// Directory for container state.
    #[arg(long, global = true, default_value = "/run/ferrun")]
    pub root: PathBuf,
    /// Log file for errors and debug output.
    #[arg(long, global = true)]
    pub log: Option<String>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    pub log_format: String,
    /// Debug output.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Accepted for runc compatibility; cgroups are not managed yet.
    #[arg(long = "systemd-cgroup", global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub systemd_cgroup: Option<String>,
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
}

impl CreateArgs {
    fn opts(&self) -> CreateOpts {
        CreateOpts {
            id: self.id.clone(),
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            no_pivot: self.no_pivot,
            preserve_fds: self.preserve_fds,
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
    /// Compile, inspect and query seccomp profiles.
    Seccomp {
        #[command(subcommand)]
        command: SeccompCommand,
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

fn print(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
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
    match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            log::error(&e.0);
            1
        }
    }
}

fn dispatch(cli: &Cli) -> Result<i32> {
    if cli.version {
        print(&format!(
            "ferrun version {}\nspec: {}\n",
            env!("CARGO_PKG_VERSION"),
            crate::state::OCI_VERSION
        ));
        return Ok(0);
    }
    let store = Store::new(&cli.root);
    let Some(command) = &cli.command else {
        print("ferrun: no command given; see ferrun --help\n");
        return Ok(1);
    };
    match command {
        Command::Create(a) => container::create(&store, &a.opts()).map(|_| 0),
        Command::Start { id } => container::start(&store, id).map(|_| 0),
        Command::State { id } => {
            print(&(container::state_json(&store, id)? + "\n"));
            Ok(0)
        }
        Command::Kill { id, signal, all } => container::kill(&store, id, signal, *all).map(|_| 0),
        Command::Delete { id, force } => container::delete(&store, id, *force).map(|_| 0),
        Command::Run { create, detach, .. } => {
            container::run(&store, &create.opts(), *detach, None)
        }
        Command::List { format, quiet } => {
            print(&crate::commands::list(&store, format, *quiet)?);
            Ok(0)
        }
        Command::Spec { bundle, rootless } => crate::commands::spec(bundle, *rootless).map(|_| 0),
        Command::Features => {
            print(&crate::commands::features());
            Ok(0)
        }
        Command::Seccomp { command } => crate::commands::seccomp(command),
        Command::Plan {
            bundle,
            format,
            out,
            no_pivot,
        } => {
            let text = crate::commands::plan(&store, bundle, format, *no_pivot)?;
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
