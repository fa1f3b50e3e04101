//! Kubernetes' path to a runtime, without kubelet: a containerd daemon on private paths whose CRI
//! plugin has a `ferrun` and a `runc` runtime handler (the runc shim v2 with `BinaryName`, as a
//! RuntimeClass names it), driven through the CRI v1 gRPC API (`k8s-cri`'s generated client over
//! tonic). Images come from the shared busybox rootfs as docker archives, imported into the
//! `k8s.io` namespace; nothing is pulled. The pod network is a CNI bridge of the test's own.
//!
//! Used by tests/kubernetes.rs (cgroupfs, this host) and the VM's guest (systemd, cgroup v2).
#![allow(dead_code)]

use crate::common;
pub use k8s_cri::v1 as api;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use tonic::transport::Channel;

pub const HANDLERS: [&str; 2] = ["ferrun", "runc"];
pub const IMAGE: &str = "localhost/ferrun-test/busybox:latest";
pub const PAUSE: &str = "localhost/ferrun-test/pause:busybox";

/// A containerd with the CRI plugin, stopped (and its bridge deleted) when dropped.
pub struct Node {
    pub dir: PathBuf,
    pub sock: PathBuf,
    pub systemd: bool,
    /// The pod network's bridge and /24 (`10.199.N`): the node's own, deleted with it.
    pub bridge: String,
    pub subnet: String,
    pub net: u8,
    /// The pods' cgroup parents, which kubelet would remove (a failed scenario's too).
    parents: std::sync::Mutex<Vec<String>>,
    daemon: Child,
    rt: tokio::runtime::Runtime,
    chan: Channel,
}

impl Drop for Node {
    fn drop(&mut self) {
        // A failed scenario leaves its pod: it goes here, as kubelet would remove it.
        self.clear_pods();
        let parents = self.parents.lock().map(|p| p.clone()).unwrap_or_default();
        for p in parents {
            remove_parent(self.systemd, &p);
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

/// Where the runc shim keeps each handler's runtime state (`--root`), per containerd namespace.
pub fn runtime_root(dir: &Path, handler: &str) -> PathBuf {
    dir.join("runtime-root").join(handler)
}

/// The handler's binary: ferrun's from this build (or `FERRUN_CRI_BIN`, the benchmark's
/// release build), runc's from Debian.
fn runtime_binary(handler: &str) -> String {
    match handler {
        "ferrun" => {
            std::env::var("FERRUN_CRI_BIN").unwrap_or_else(|_| common::ferrun_bin().to_string())
        }
        _ => "/usr/sbin/runc".to_string(),
    }
}

/// containerd 1.6's config (version 2): private paths, the two handlers, the pause image made
/// here, and `restrict_oom_score_adj` (this VM's root lacks CAP_SYS_RESOURCE, and the CRI's
/// sandbox gets -998 otherwise).
fn config(dir: &Path, systemd: bool) -> String {
    let mut c = format!(
        "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
         [grpc]\naddress = \"{d}/containerd.sock\"\n\
         [ttrpc]\naddress = \"{d}/containerd.sock.ttrpc\"\n\
         [plugins.\"io.containerd.grpc.v1.cri\"]\n\
         sandbox_image = \"{PAUSE}\"\nrestrict_oom_score_adj = true\n\
         stream_server_address = \"127.0.0.1\"\nstream_server_port = \"0\"\n\
         [plugins.\"io.containerd.grpc.v1.cri\".cni]\n\
         bin_dir = \"/usr/lib/cni\"\nconf_dir = \"{d}/cni\"\n\
         [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n\
         default_runtime_name = \"runc\"\nsnapshotter = \"overlayfs\"\n",
        d = dir.display()
    );
    for h in HANDLERS {
        c.push_str(&format!(
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{h}]\n\
             runtime_type = \"io.containerd.runc.v2\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{h}.options]\n\
             BinaryName = \"{bin}\"\nRoot = \"{root}\"\nSystemdCgroup = {systemd}\n",
            bin = runtime_binary(h),
            root = runtime_root(dir, h).display()
        ));
    }
    c
}

/// The pod network: a bridge with host-local addresses, both the test's own.
fn cni_config(dir: &Path, bridge: &str, subnet: &str) -> Value {
    json!({
        "cniVersion": "0.4.0",
        "name": "ferrun-test",
        "plugins": [{
            "type": "bridge",
            "bridge": bridge,
            "isGateway": true,
            "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": format!("{subnet}.0/24")}]],
                "dataDir": dir.join("ipam"),
            }
        }]
    })
}

impl Node {
    /// Starts containerd under `dir`, with pod network `net`
    /// (its bridge `ferrun-cniN`, 10.199.N.0/24), and imports the images.
    pub fn start(dir: &Path, systemd: bool, net: u8) -> Node {
        let bridge = format!("ferrun-cni{net}");
        let subnet = format!("10.199.{net}");
        std::fs::create_dir_all(dir.join("cni")).expect("cni dir");
        std::fs::write(
            dir.join("cni/10-ferrun-test.conflist"),
            cni_config(dir, &bridge, &subnet).to_string(),
        )
        .expect("cni conf");
        std::fs::write(dir.join("config.toml"), config(dir, systemd)).expect("config.toml");
        let sock = dir.join("containerd.sock");
        let _ = std::fs::remove_file(&sock);
        let log = std::fs::File::create(dir.join("containerd.log")).expect("log");
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("containerd is installed (apt-get install containerd)");
        // Killed if this fails before the node owns it.
        struct Daemon(Option<Child>);
        impl Drop for Daemon {
            fn drop(&mut self) {
                if let Some(c) = &mut self.0 {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
        let mut daemon = Daemon(Some(daemon));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let path = sock.clone();
        let mut chan = None;
        for _ in 0..500 {
            if path.exists() {
                let p = path.clone();
                let connected = rt.block_on(async move {
                    // A call that hangs fails, with the daemon's log (a guest is slow: generous).
                    tonic::transport::Endpoint::from_static("http://[::]")
                        .timeout(std::time::Duration::from_secs(60))
                        .connect_with_connector(tower::service_fn(
                            move |_: tonic::transport::Uri| {
                                let p = p.clone();
                                async move {
                                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                                        tokio::net::UnixStream::connect(p).await?,
                                    ))
                                }
                            },
                        ))
                        .await
                });
                if let Ok(c) = connected {
                    chan = Some(c);
                    break;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let chan = chan.unwrap_or_else(|| {
            panic!(
                "containerd did not answer on {}: {}",
                sock.display(),
                std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
            )
        });
        let node = Node {
            dir: dir.to_path_buf(),
            sock,
            systemd,
            bridge,
            subnet,
            net,
            parents: Default::default(),
            daemon: daemon.0.take().expect("the daemon"),
            rt,
            chan,
        };
        // The CRI plugin is up once it answers Version.
        assert!(
            common::wait_until(|| node.try_version().is_ok()),
            "the CRI plugin did not answer"
        );
        // What a killed earlier run left, containerd still knows (its state is kept for this).
        node.clear_pods();
        node.import(IMAGE, &["sh"]);
        node.import(
            PAUSE,
            &[
                "sh",
                "-c",
                "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait; done",
            ],
        );
        node
    }

    /// Stops and removes every pod sandbox (and so its containers) the node has.
    fn clear_pods(&self) {
        let pods = self.try_call(|mut c| async move {
            c.list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
                .await
        });
        for p in pods.map(|r| r.items).unwrap_or_default() {
            let id = p.id;
            let (a, b) = (id.clone(), id.clone());
            let _ = self.try_call(|mut c| async move {
                c.stop_pod_sandbox(api::StopPodSandboxRequest { pod_sandbox_id: a })
                    .await
            });
            let _ = self.try_call(|mut c| async move {
                c.remove_pod_sandbox(api::RemovePodSandboxRequest { pod_sandbox_id: b })
                    .await
            });
        }
    }

    fn try_version(&self) -> Result<api::VersionResponse, tonic::Status> {
        let ch = self.chan.clone();
        self.rt
            .block_on(async move {
                RuntimeServiceClient::new(ch)
                    .version(api::VersionRequest {
                        version: "v1".into(),
                    })
                    .await
            })
            .map(|r| r.into_inner())
    }

    /// A docker archive of the busybox rootfs with `entrypoint`, imported into `k8s.io`.
    fn import(&self, name: &str, entrypoint: &[&str]) {
        let tar = self
            .dir
            .join(format!("{}.tar", name.replace(['/', ':'], "_")));
        common::docker_archive(&tar, name, entrypoint, &[]);
        eprintln!("cri: importing {name}");
        let o = self.ctr(&["images", "import", &tar.to_string_lossy()]);
        assert!(o.status.success(), "ctr import {name}: {o:?}");
        let st = self.images(|c| async move {
            let mut c = c;
            c.image_status(api::ImageStatusRequest {
                image: Some(api::ImageSpec {
                    image: name.to_string(),
                    ..Default::default()
                }),
                verbose: false,
            })
            .await
        });
        assert!(st.image.is_some(), "the CRI does not see {name}");
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("-a")
            .arg(&self.sock)
            .args(["-n", "k8s.io"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ctr")
    }

    /// A RuntimeService call, blocking; the gRPC status on failure.
    pub fn try_call<T, F>(
        &self,
        f: impl FnOnce(RuntimeServiceClient<Channel>) -> F,
    ) -> Result<T, tonic::Status>
    where
        F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let client = RuntimeServiceClient::new(self.chan.clone());
        self.rt.block_on(f(client)).map(|r| r.into_inner())
    }

    /// A RuntimeService call that must succeed; its failure shows the daemon's last words.
    pub fn call<T, F>(&self, what: &str, f: impl FnOnce(RuntimeServiceClient<Channel>) -> F) -> T
    where
        F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let t = std::time::Instant::now();
        let r = self.try_call(f);
        eprintln!(
            "cri: {what} {:?} in {:.0?}",
            r.as_ref().map(|_| ()).map_err(|s| s.code()),
            t.elapsed()
        );
        r.unwrap_or_else(|s| {
            panic!(
                "{what}: {} {}\n{}\n{}",
                s.code(),
                s.message(),
                self.log_tail(),
                self.diagnostics()
            )
        })
    }

    /// What the node's processes are doing, and what the runtimes logged (the shim's
    /// `log.json` per container), for a call that failed.
    pub fn diagnostics(&self) -> String {
        let sh = |script: &str| {
            let o = Command::new("sh").args(["-c", script]).output();
            o.map(|o| {
                format!(
                    "$ {script}\n{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_default()
        };
        let state = self.dir.join("state/io.containerd.runtime.v2.task/k8s.io");
        [
            sh("ps -eo pid,ppid,stat,wchan:24,args | grep -v ' \\[' | tail -40"),
            sh("for p in $(pgrep -f 'ferrun|runc'); do echo \"== $p $(tr '\\0' ' ' < /proc/$p/cmdline)\"; cat /proc/$p/stack 2>/dev/null | head -12; done"),
            sh(&format!("tail -n 5 {}/*/log.json", state.display())),
            sh("for p in $(pgrep -f ' create --bundle'); do echo \"== strace $p\"; timeout 3 strace -f -tt -p $p 2>&1 | head -40; done"),
            sh(&format!("for c in {}/*/config.json; do echo \"== $c\"; cat $c; echo; done | cut -c1-3000", state.display())),
            sh("journalctl -n 30 --no-pager 2>/dev/null | cut -c1-300"),
        ]
        .join("\n")
    }

    /// The last lines of containerd's log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn images<T, F>(&self, f: impl FnOnce(ImageServiceClient<Channel>) -> F) -> T
    where
        F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let client = ImageServiceClient::new(self.chan.clone());
        self.rt
            .block_on(f(client))
            .unwrap_or_else(|s| panic!("image service: {} {}", s.code(), s.message()))
            .into_inner()
    }

    // The calls a kubelet makes, one wrapper each.

    pub fn run_pod(&self, config: &api::PodSandboxConfig, handler: &str) -> String {
        let req = api::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.to_string(),
        };
        self.call("RunPodSandbox", |mut c| async move {
            c.run_pod_sandbox(req).await
        })
        .pod_sandbox_id
    }

    pub fn pod_status(&self, id: &str) -> api::PodSandboxStatusResponse {
        let req = api::PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: true,
        };
        self.call("PodSandboxStatus", |mut c| async move {
            c.pod_sandbox_status(req).await
        })
    }

    pub fn create(
        &self,
        pod: &str,
        config: api::ContainerConfig,
        sandbox: &api::PodSandboxConfig,
    ) -> String {
        let req = api::CreateContainerRequest {
            pod_sandbox_id: pod.to_string(),
            config: Some(config),
            sandbox_config: Some(sandbox.clone()),
        };
        self.call("CreateContainer", |mut c| async move {
            c.create_container(req).await
        })
        .container_id
    }

    pub fn start_container(&self, id: &str) {
        let req = api::StartContainerRequest {
            container_id: id.to_string(),
        };
        self.call("StartContainer", |mut c| async move {
            c.start_container(req).await
        });
    }

    pub fn status(&self, id: &str) -> api::ContainerStatusResponse {
        let req = api::ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: true,
        };
        self.call("ContainerStatus", |mut c| async move {
            c.container_status(req).await
        })
    }

    /// The container's state (`api::ContainerState` as i32) and exit code.
    pub fn state(&self, id: &str) -> (i32, i32) {
        let s = self.status(id).status.expect("status");
        (s.state, s.exit_code)
    }

    /// Waits (up to 10 s) until the container has exited; its exit code.
    pub fn wait_exited(&self, id: &str) -> i32 {
        for _ in 0..1000 {
            let (state, code) = self.state(id);
            if state == api::ContainerState::ContainerExited as i32 {
                return code;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("{id} did not exit: {:?}", self.status(id))
    }

    pub fn exec_sync(&self, id: &str, cmd: &[&str]) -> api::ExecSyncResponse {
        let req = api::ExecSyncRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 20,
        };
        self.call("ExecSync", |mut c| async move { c.exec_sync(req).await })
    }

    /// ExecSync's stdout, with exit code 0 required.
    pub fn sh(&self, id: &str, script: &str) -> String {
        let r = self.exec_sync(id, &["sh", "-c", script]);
        assert_eq!(
            r.exit_code,
            0,
            "{script}: stdout {} stderr {}",
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        );
        String::from_utf8_lossy(&r.stdout).into_owned()
    }

    pub fn exec_url(&self, id: &str, cmd: &[&str]) -> String {
        let req = api::ExecRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            tty: false,
            stdin: true,
            stdout: true,
            stderr: true,
        };
        self.call("Exec", |mut c| async move { c.exec(req).await })
            .url
    }

    pub fn update(&self, id: &str, linux: api::LinuxContainerResources) {
        let req = api::UpdateContainerResourcesRequest {
            container_id: id.to_string(),
            linux: Some(linux),
            ..Default::default()
        };
        self.call("UpdateContainerResources", |mut c| async move {
            c.update_container_resources(req).await
        });
    }

    pub fn stop_container(&self, id: &str, timeout: i64) {
        let req = api::StopContainerRequest {
            container_id: id.to_string(),
            timeout,
        };
        self.call("StopContainer", |mut c| async move {
            c.stop_container(req).await
        });
    }

    pub fn remove_container(&self, id: &str) {
        let req = api::RemoveContainerRequest {
            container_id: id.to_string(),
        };
        self.call("RemoveContainer", |mut c| async move {
            c.remove_container(req).await
        });
    }

    pub fn stop_pod(&self, id: &str) {
        let req = api::StopPodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.call("StopPodSandbox", |mut c| async move {
            c.stop_pod_sandbox(req).await
        });
    }

    pub fn remove_pod(&self, id: &str) {
        let req = api::RemovePodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.call("RemovePodSandbox", |mut c| async move {
            c.remove_pod_sandbox(req).await
        });
    }
}

/// The pod's network: its own (a CNI bridge address) or the node's.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Network {
    Pod,
    Host,
}

/// How kubelet names a pod's cgroup parent: a cgroupfs path, or (systemd driver) a slice whose
/// name nests it (`a-b-c.slice` is in `a.slice/a-b.slice`), with the uid's dashes as
/// underscores. Each node has a `kubepods` of its own (nodes may run at once).
pub fn pod_cgroup_parent(node: &Node, uid: &str) -> String {
    if node.systemd {
        format!(
            "ferrun-test-kubepods{}-pod{}.slice",
            node.net,
            uid.replace('-', "_")
        )
    } else {
        format!("/ferrun-test/kubepods{}/pod{uid}", node.net)
    }
}

/// The cgroup directory (below the hierarchy's root) a pod's parent names.
pub fn parent_dir(parent: &str) -> String {
    match parent.strip_suffix(".slice") {
        Some(name) => {
            let parts: Vec<&str> = name.split('-').collect();
            (1..=parts.len())
                .map(|n| format!("{}.slice", parts[..n].join("-")))
                .collect::<Vec<_>>()
                .join("/")
        }
        None => parent.trim_start_matches('/').to_string(),
    }
}

fn container(name: &str, script: &str) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: IMAGE.into(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into(), script.into()],
        log_path: format!("{name}.log"),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(api::LinuxContainerResources {
                memory_limit_in_bytes: 128 << 20,
                cpu_period: 100_000,
                cpu_quota: 200_000,
                cpu_shares: 1024,
                ..Default::default()
            }),
            security_context: Some(api::LinuxContainerSecurityContext {
                namespace_options: Some(api::NamespaceOption {
                    pid: api::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// `<runtime> --root <root> state <id>` of the handler that ran it: the proof that the handler's
/// runtime, not the default one, holds the container.
pub fn runtime_state(dir: &Path, handler: &str, id: &str) -> Value {
    let o = Command::new(runtime_binary(handler))
        .arg("--root")
        .arg(runtime_root(dir, handler).join("k8s.io"))
        .args(["state", id])
        .stdin(Stdio::null())
        .output()
        .expect("runtime state");
    assert!(
        o.status.success(),
        "{handler} state {id}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("state json")
}

/// A running container's host pid, and the runtime's state it came from.
fn pid_of(dir: &Path, handler: &str, id: &str) -> (i32, Value) {
    let s = runtime_state(dir, handler, id);
    assert_eq!(s["status"], json!("running"), "{handler} {id}: {s}");
    (s["pid"].as_i64().expect("pid") as i32, s)
}

/// A pod uid shaped as kubelet's (a uuid), and its cgroup parent, registered for clean-up.
fn new_pod(node: &Node) -> (String, String) {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let uid = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (n >> 32) as u32,
        std::process::id() & 0xffff,
        (n >> 12) & 0xfff,
        n & 0xfff,
        n & 0xffff_ffff_ffff
    );
    let parent = pod_cgroup_parent(node, &uid);
    if let Ok(mut p) = node.parents.lock() {
        p.push(parent.clone());
    }
    (uid, parent)
}

fn ns(pid: i32, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap_or_else(|e| panic!("ns {kind} of {pid}: {e}"))
        .to_string_lossy()
        .into_owned()
}

/// A cgroup file of a process: `v1` in the controller's hierarchy, or `v2` in the unified one.
fn cgroup_file(pid: i32, controller: &str, v1: &str, v2: &str) -> String {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let path = if unified {
        Path::new("/sys/fs/cgroup")
            .join(
                cg.lines()
                    .find_map(|l| l.strip_prefix("0::/"))
                    .expect("0::"),
            )
            .join(v2)
    } else {
        let (hier, rel) = cg
            .lines()
            .find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctrls, rel) = (f.next()?, f.next()?, f.next()?);
                ctrls
                    .split(',')
                    .any(|c| c == controller)
                    .then(|| (ctrls.to_string(), rel.trim_start_matches('/').to_string()))
            })
            .unwrap_or_else(|| panic!("{controller} in {cg}"));
        Path::new("/sys/fs/cgroup").join(hier).join(rel).join(v1)
    };
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// What one pod took to start: RunPodSandbox, then CreateContainer and StartContainer of its
/// first container.
pub struct Started {
    pub sandbox_and_container: std::time::Duration,
}

/// A pod as kubelet drives it, with `handler` (a RuntimeClass's handler): its sandbox, three
/// containers sharing its namespaces (a server, a one-shot that exits 7, one that ignores
/// SIGTERM), ExecSync, streaming Exec, a resource update, stops with grace periods, removal,
/// and then nothing of it left on the node.
pub fn pod_scenario(node: &Node, handler: &str, network: Network) -> Started {
    let (uid, parent) = new_pod(node);
    let log_dir = node.dir.join("logs").join(&uid);
    std::fs::create_dir_all(&log_dir).expect("log dir");
    let log_dir_s = log_dir.to_string_lossy().into_owned();
    let net_mode = match network {
        Network::Pod => api::NamespaceMode::Pod,
        Network::Host => api::NamespaceMode::Node,
    };
    let sandbox = api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: format!("pod-{uid}"),
            uid: uid.clone(),
            namespace: "ferrun-test".into(),
            attempt: 0,
        }),
        hostname: if network == Network::Pod {
            "ferrun-pod".into()
        } else {
            String::new()
        },
        log_directory: log_dir_s.clone(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: parent.clone(),
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(api::NamespaceOption {
                    network: net_mode as i32,
                    pid: api::NamespaceMode::Pod as i32,
                    ipc: api::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };

    let t0 = std::time::Instant::now();
    let pod = node.run_pod(&sandbox, handler);
    let server = node.create(
        &pod,
        container(
            "server",
            "trap 'echo got-term; exit 0' TERM; echo a-was-here > /dev/shm/marker; \
             echo started; while :; do sleep 1; done",
        ),
        &sandbox,
    );
    node.start_container(&server);
    let started = Started {
        sandbox_and_container: t0.elapsed(),
    };

    // The sandbox: ready, under the handler's runtime, with the pod's address.
    let st = node.pod_status(&pod);
    let status = st.status.clone().expect("pod status");
    assert_eq!(
        status.state,
        api::PodSandboxState::SandboxReady as i32,
        "{st:?}"
    );
    assert_eq!(status.runtime_handler, handler);
    let (pod_pid, pod_state) = pid_of(&node.dir, handler, &pod);
    // The sandbox's network namespace, as containerd pinned it (pod network only).
    let bundle = pod_state["bundle"].as_str().expect("bundle").to_string();
    let spec: Value = serde_json::from_slice(
        &std::fs::read(Path::new(&bundle).join("config.json")).expect("sandbox config"),
    )
    .expect("sandbox config json");
    let netns = spec["linux"]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["type"] == json!("network"))
        .and_then(|n| n["path"].as_str())
        .map(String::from);
    assert_eq!(netns.is_some(), network == Network::Pod, "{spec}");
    let (server_pid, _) = pid_of(&node.dir, handler, &server);
    // The container's cgroup is where kubelet's parent says: a directory under it (cgroupfs),
    // or a scope systemd runs in the pod's slice.
    let cg = std::fs::read_to_string(format!("/proc/{server_pid}/cgroup")).expect("cgroup");
    if node.systemd {
        let scope = format!("cri-containerd-{server}.scope");
        assert!(
            cg.contains(&format!("/{}/{scope}", parent_dir(&parent))),
            "{cg}"
        );
        let active = Command::new("systemctl")
            .args(["is-active", &scope])
            .output()
            .expect("systemctl");
        assert_eq!(String::from_utf8_lossy(&active.stdout).trim(), "active");
    } else {
        assert!(cg.contains(&format!(":memory:{parent}/{server}\n")), "{cg}");
    }
    let ip = status.network.map(|n| n.ip).unwrap_or_default();
    let host_net = ns(std::process::id() as i32, "net");
    match network {
        Network::Pod => {
            assert!(
                ip.starts_with(&format!("{}.", node.subnet)),
                "pod ip {ip:?}"
            );
            assert_ne!(ns(pod_pid, "net"), host_net, "the pod has its own network");
            let addr = node.sh(&server, "ip -4 addr show eth0");
            assert!(addr.contains(&format!("{ip}/24")), "{addr}");
            assert_eq!(node.sh(&server, "hostname").trim(), "ferrun-pod");
        }
        Network::Host => assert_eq!(ns(pod_pid, "net"), host_net, "host network"),
    }

    let stubborn = node.create(
        &pod,
        container(
            "stubborn",
            "trap '' TERM; echo ignoring; while :; do sleep 1; done",
        ),
        &sandbox,
    );
    node.start_container(&stubborn);
    let (stubborn_pid, _) = pid_of(&node.dir, handler, &stubborn);
    // The pod's namespaces, shared; each container's mounts its own.
    for kind in ["net", "ipc", "uts", "pid"] {
        assert_eq!(ns(server_pid, kind), ns(pod_pid, kind), "server {kind}");
        assert_eq!(ns(stubborn_pid, kind), ns(pod_pid, kind), "stubborn {kind}");
    }
    assert_ne!(ns(server_pid, "mnt"), ns(pod_pid, "mnt"));
    assert_ne!(ns(server_pid, "mnt"), ns(stubborn_pid, "mnt"));
    // One pid namespace: the pause process is there, and so is the other container.
    let ps = node.sh(&server, "ps -o pid,args");
    assert!(
        ps.contains("sleep 3600"),
        "pause not in the pod's pids: {ps}"
    );
    assert!(ps.contains("ignoring") || ps.contains("trap ''"), "{ps}");

    // ExecSync: output and exit code.
    let r = node.exec_sync(&server, &["sh", "-c", "echo hi; echo err >&2; exit 3"]);
    assert_eq!(
        (r.exit_code, r.stdout.as_slice(), r.stderr.as_slice()),
        (3, &b"hi\n"[..], &b"err\n"[..])
    );
    // Streaming Exec: stdin in, stdout and stderr apart, and the exit code.
    let url = node.exec_url(
        &server,
        &[
            "sh",
            "-c",
            "read line; echo got:$line; echo to-err >&2; exit 5",
        ],
    );
    let (out, err, exit) = stream_exec(&url, b"hello\n");
    assert_eq!(String::from_utf8_lossy(&out), "got:hello\n");
    assert_eq!(String::from_utf8_lossy(&err), "to-err\n");
    assert_eq!(exit["reason"], json!("NonZeroExitCode"), "{exit}");
    assert_eq!(
        exit["details"]["causes"][0]["message"],
        json!("5"),
        "{exit}"
    );
    let url = node.exec_url(&server, &["true"]);
    let (_, _, exit) = stream_exec(&url, b"");
    assert_eq!(exit["status"], json!("Success"), "{exit}");

    // A missing binary fails the exec itself, and the runtime's message names it.
    let req = api::ExecSyncRequest {
        container_id: server.clone(),
        cmd: vec!["/no/such/binary".into()],
        timeout: 20,
    };
    let err = node
        .try_call(|mut c| async move { c.exec_sync(req).await })
        .expect_err("exec of a missing binary");
    assert!(
        err.message().contains("/no/such/binary") && err.message().contains("no such file"),
        "{}",
        err.message()
    );

    // A one-shot container: its exit code, its log, the pod's shm and hostname.
    let oneshot = node.create(
        &pod,
        container(
            "oneshot",
            "echo out-b; cat /dev/shm/marker; echo err-b >&2; exit 7",
        ),
        &sandbox,
    );
    node.start_container(&oneshot);
    assert_eq!(node.wait_exited(&oneshot), 7);
    let log = std::fs::read_to_string(log_dir.join("oneshot.log")).expect("oneshot log");
    for line in [" stdout F out-b", " stdout F a-was-here", " stderr F err-b"] {
        assert!(log.contains(line), "{line:?} not in {log}");
    }

    // The limits CreateContainer asked for, then UpdateContainerResources'.
    let mem = || cgroup_file(server_pid, "memory", "memory.limit_in_bytes", "memory.max");
    let cpu = || {
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        if v2 {
            cgroup_file(server_pid, "cpu", "", "cpu.max")
        } else {
            cgroup_file(server_pid, "cpu", "cpu.cfs_quota_us", "")
        }
    };
    assert_eq!(mem(), (128u64 << 20).to_string());
    assert!(cpu().starts_with("200000"), "{}", cpu());
    node.update(
        &server,
        api::LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 512,
            ..Default::default()
        },
    );
    assert_eq!(mem(), (64u64 << 20).to_string());
    assert!(cpu().starts_with("50000"), "{}", cpu());

    // StopContainer: SIGTERM and the grace period, then SIGKILL.
    node.stop_container(&server, 10);
    assert_eq!(node.wait_exited(&server), 0, "the server's TERM trap");
    let log = std::fs::read_to_string(log_dir.join("server.log")).expect("server log");
    assert!(log.contains(" stdout F got-term"), "{log}");
    node.stop_container(&stubborn, 1);
    assert_eq!(node.wait_exited(&stubborn), 137, "killed after its grace");

    let ids = [pod.clone(), server, stubborn, oneshot];
    for c in &ids[1..] {
        node.remove_container(c);
        let gone = node.try_call(|mut cl| {
            let c = c.clone();
            async move {
                cl.container_status(api::ContainerStatusRequest {
                    container_id: c,
                    verbose: false,
                })
                .await
            }
        });
        assert_eq!(
            gone.map(|_| ()).map_err(|s| s.code()),
            Err(tonic::Code::NotFound)
        );
    }
    node.stop_pod(&pod);
    node.remove_pod(&pod);
    nothing_left(node, handler, &parent, &ids);
    if let Some(netns) = netns {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let name = Path::new(&netns)
            .file_name()
            .expect("name")
            .to_string_lossy();
        assert!(!mounts.contains(name.as_ref()), "{netns} still mounted");
        assert!(!Path::new(&netns).exists(), "{netns} left");
    }
    started
}

/// After RemovePodSandbox: no runtime state, cgroup, mount or process of the pod's, and then
/// the pod's cgroup parent goes too (kubelet's part).
fn nothing_left(node: &Node, handler: &str, parent: &str, ids: &[String]) {
    let root = runtime_root(&node.dir, handler).join("k8s.io");
    // ferrun's plan cache stays (`@cache`, its templates shared by configs of one shape), but
    // no plan only these containers could use.
    let list = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "@cache")
                    .collect()
            })
            .unwrap_or_default()
    };
    let left = list(&root);
    assert!(
        left.is_empty(),
        "{handler} left in {}: {left:?}",
        root.display()
    );
    let mut plans = list(&root.join("@cache/plans"));
    plans.retain(|p| !p.ends_with(".tmpl"));
    assert!(plans.is_empty(), "{handler} left plans: {plans:?}");
    let mentions = |text: &str| ids.iter().any(|id| text.contains(id.as_str()));
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mounts: Vec<&str> = mountinfo.lines().filter(|l| mentions(l)).collect();
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    let procs = || -> Vec<String> {
        std::fs::read_dir("/proc")
            .expect("/proc")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| mentions(c))
            .collect()
    };
    assert!(
        common::wait_until(|| procs().is_empty()),
        "processes left: {:?}",
        procs()
    );
    // The pod's cgroup holds nothing any more; then it goes, as kubelet removes it.
    let dir = parent_dir(parent);
    let children = common::child_cgroups(&dir);
    assert!(children.is_empty(), "{dir} holds {children:?}");
    remove_parent(node.systemd, parent);
    assert!(common::cgroup_dirs(&dir).is_empty(), "{dir} left");
}

/// kubelet's part: the pod's slice stopped (and the test's kubepods slice), or its cgroupfs
/// directories (and `kubepods`, once no other pod is in it) removed.
fn remove_parent(systemd: bool, parent: &str) {
    if systemd {
        // `…-kubepodsN-pod<uid>.slice` is in `…-kubepodsN.slice`.
        let kubepods = parent
            .trim_end_matches(".slice")
            .rsplit_once('-')
            .map(|(up, _)| format!("{up}.slice"))
            .unwrap_or_default();
        let _ = Command::new("systemctl")
            .args(["stop", parent, &kubepods])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        return;
    }
    for d in common::cgroup_dirs(&parent_dir(parent)) {
        let _ = std::fs::remove_dir(&d);
        if let Some(up) = d.parent() {
            let _ = std::fs::remove_dir(up);
        }
    }
}

/// Streaming Exec as `kubectl exec` makes it: the URL the CRI's `Exec` returned, opened as a
/// WebSocket with kubelet's `v4.channel.k8s.io` protocol. Each frame's first byte is its
/// channel: 0 stdin (written here), 1 stdout, 2 stderr, 3 the exit's `Status` (JSON).
/// (stdout, stderr, status).
pub fn stream_exec(url: &str, stdin: &[u8]) -> (Vec<u8>, Vec<u8>, Value) {
    use tungstenite::Message;
    use tungstenite::client::IntoClientRequest;
    let ws_url = url.replacen("http://", "ws://", 1);
    let mut req = ws_url.as_str().into_client_request().expect("exec url");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        tungstenite::http::HeaderValue::from_static("v4.channel.k8s.io"),
    );
    let (mut ws, resp) = tungstenite::connect(req).unwrap_or_else(|e| panic!("{ws_url}: {e}"));
    assert_eq!(
        resp.headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok()),
        Some("v4.channel.k8s.io")
    );
    let mut frame = vec![0u8];
    frame.extend_from_slice(stdin);
    ws.send(Message::Binary(frame.into())).expect("stdin");
    let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), Value::Null);
    loop {
        match ws.read() {
            Ok(Message::Binary(b)) if b.len() > 1 => match b[0] {
                1 => out.extend_from_slice(&b[1..]),
                2 => err.extend_from_slice(&b[1..]),
                3 => status = serde_json::from_slice(&b[1..]).expect("status json"),
                _ => {}
            },
            Ok(Message::Close(_)) => break,
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => break,
            Err(tungstenite::Error::Protocol(_)) if status != Value::Null => break,
            Err(e) => panic!("exec stream: {e}"),
        }
    }
    (out, err, status)
}

/// One pod with `handler`, kubelet's way, on the pod network: (RunPodSandbox's time, the time
/// until its first container has started); then it is stopped and removed, untimed.
pub fn start_pod_timed(node: &Node, handler: &str) -> (std::time::Duration, std::time::Duration) {
    let (uid, parent) = new_pod(node);
    let sandbox = api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: format!("bench-{handler}"),
            uid: uid.clone(),
            namespace: "ferrun-test".into(),
            attempt: 0,
        }),
        hostname: "bench".into(),
        log_directory: node.dir.join("logs").to_string_lossy().into_owned(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: parent.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let t0 = std::time::Instant::now();
    let pod = node.run_pod(&sandbox, handler);
    let sandbox_time = t0.elapsed();
    let c = node.create(&pod, container("app", "sleep 1000"), &sandbox);
    node.start_container(&c);
    let total = t0.elapsed();
    node.stop_pod(&pod);
    node.remove_pod(&pod);
    remove_parent(node.systemd, &parent);
    (sandbox_time, total)
}
