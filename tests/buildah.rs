//! buildah drives ferrun: `buildah bud --runtime <runtime>` builds a Containerfile whose `RUN`
//! steps run in containers, from a local image (a docker archive of the busybox rootfs; nothing
//! is pulled), in private storage. With ferrun and with runc, so that a difference is ferrun's.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BASE: &str = "localhost/ferrun-test/busybox:latest";

struct Buildah {
    dir: PathBuf,
    runtime: &'static str,
}

impl Buildah {
    fn new(runtime: &'static str) -> Buildah {
        let dir = PathBuf::from(format!("/tmp/ferrun-buildah-{runtime}"));
        let _ = std::fs::remove_dir_all(dir.join("runtime-root"));
        std::fs::create_dir_all(dir.join("runtime-root")).expect("dir");
        let b = Buildah { dir, runtime };
        // What a failed earlier run left.
        let _ = b.buildah(&["rm", "--all"]);
        if !b
            .buildah(&["inspect", "--type", "image", BASE])
            .status
            .success()
        {
            let tar = b.dir.join("busybox.tar");
            common::docker_archive(&tar, BASE, &[], &["sh"]);
            b.ok(&["pull", &format!("docker-archive:{}", tar.display())]);
        }
        b
    }

    fn bin(&self) -> &'static str {
        match self.runtime {
            "ferrun" => common::ferrun_bin(),
            _ => "/usr/sbin/runc",
        }
    }

    /// buildah on private storage; the runtime's state under our own `--root`, so that what
    /// it leaves (and whose it is) can be read.
    fn buildah(&self, args: &[&str]) -> Output {
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .stdin(Stdio::null());
        common::output_via_files(c)
    }

    fn runtime_args(&self) -> Vec<String> {
        vec![
            "--runtime".into(),
            self.bin().into(),
            "--runtime-flag".into(),
            format!("root={}", self.dir.join("runtime-root").display()),
            "--isolation".into(),
            "oci".into(),
        ]
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.buildah(args);
        assert!(
            o.status.success(),
            "{} buildah {args:?}: stdout {} stderr {}",
            self.runtime,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `buildah bud` of a Containerfile in a fresh context directory.
    fn bud(&self, tag: &str, containerfile: &str) -> Output {
        let ctx = self
            .dir
            .join(format!("ctx-{}", tag.replace(['/', ':'], "_")));
        std::fs::create_dir_all(&ctx).expect("ctx");
        std::fs::write(ctx.join("Containerfile"), containerfile).expect("Containerfile");
        let mut args: Vec<String> = vec!["bud".into()];
        args.extend(self.runtime_args());
        // The RUN containers' cgroups, under the tests' parent.
        let parent = format!("--cgroup-parent=/ferrun-test/buildah-{}", self.runtime);
        args.extend(
            [
                parent.as_str(),
                "--network",
                "none",
                "--pull=false",
                "-t",
                tag,
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        args.push(ctx.to_string_lossy().into_owned());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.buildah(&refs)
    }
}

/// The runtime's state root: ferrun's plan cache (proof that ferrun ran) and nothing else.
fn state_left(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn build(runtime: &'static str) {
    let b = Buildah::new(runtime);
    let tag = format!("localhost/ferrun-test/built-{runtime}");
    let o = b.bud(
        &tag,
        &format!(
            "FROM {BASE}\n\
             RUN echo built > /built && id -u >> /built\n\
             RUN grep -q built /built && echo second >> /built && \
                 grep Seccomp: /proc/self/status && cat /proc/self/cgroup\n\
             USER 1000\n\
             RUN id -u > /tmp/user || echo refused-as-1000\n"
        ),
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{runtime} bud: {out} {o:?}");
    assert!(out.contains("STEP 5/5"), "{out}");
    // The RUN step's cgroup is the one asked for, under the tests' parent.
    let cg = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        format!("0::/ferrun-test/buildah-{runtime}")
    } else {
        format!(":memory:/ferrun-test/buildah-{runtime}")
    };
    assert!(out.contains(&cg), "{cg} not in {out}");
    // buildah's default seccomp profile holds in a RUN step.
    assert!(out.contains("Seccomp:\t2"), "{out}");
    // After USER 1000 the RUN is uid 1000, whom the rootfs's 0755 root-owned /tmp refuses.
    assert!(out.contains("refused-as-1000"), "{out}");

    // What the RUN steps wrote is in the image.
    let ctr = b.ok(&["from", "--pull=false", &tag]).trim().to_string();
    let mut args: Vec<String> = vec!["run".into()];
    args.extend(b.runtime_args());
    args.extend([ctr.clone(), "--".into(), "cat".into(), "/built".into()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(b.ok(&refs), "built\n0\nsecond\n");
    b.ok(&["rm", &ctr]);

    // A failing RUN fails the build, with the step's exit status.
    let o = b.bud(
        "localhost/ferrun-test/broken",
        &format!("FROM {BASE}\nRUN echo before; exit 3\nRUN echo never\n"),
    );
    assert!(!o.status.success(), "{o:?}");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(all.contains("exit status 3"), "{all}");
    assert!(!all.contains("never"), "{all}");

    // Nothing of the build's containers is left in the runtime's state: only ferrun's cache.
    let left = state_left(&b.dir.join("runtime-root"));
    match runtime {
        "ferrun" => assert_eq!(left, ["@cache"], "ferrun ran, and left no state"),
        _ => assert!(left.is_empty(), "{left:?}"),
    }
    b.ok(&["rmi", &tag]);
    let containers = b.ok(&["containers", "-q"]);
    assert!(containers.trim().is_empty(), "{containers}");
    // buildah makes `--cgroup-parent` the RUN container's own cgroup: gone with it.
    let left = common::cgroup_dirs(&format!("/ferrun-test/buildah-{runtime}"));
    for d in &left {
        let _ = std::fs::remove_dir(d);
    }
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn buildah_bud_with_ferrun() {
    build("ferrun");
}

#[test]
fn buildah_bud_with_runc() {
    build("runc");
}
