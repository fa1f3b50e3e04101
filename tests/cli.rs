//! The command-line contract: plan and its cache, features, spec, version, the console socket.

mod common;

use common::Bundle;
use serde_json::{Value, json};

fn text(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn plan_is_cached_reused_and_rebuilt() {
    let b = Bundle::new(&["true"]);
    let bundle = &b.path().to_str().expect("utf-8").to_string();
    let (out, err) = text(&b.ferrun(&["plan", "--bundle", bundle]));
    assert!(
        out.contains("container process:") && out.contains("execve argv [\"true\"]"),
        "{out}{err}"
    );
    let cache_line = out.lines().last().expect("cache line");
    assert!(
        cache_line.starts_with("cache: miss, stored "),
        "{cache_line}"
    );
    let plan_file = cache_line.rsplit(' ').next().expect("path").to_string();
    assert!(std::path::Path::new(&plan_file).starts_with(b.state_root().join("@cache/plans")));

    let (out, _) = text(&b.ferrun(&["plan", "--bundle", bundle]));
    assert!(
        out.lines().last().expect("line").starts_with("cache: hit "),
        "{out}"
    );

    // A truncated entry is rebuilt, not trusted.
    let bytes = std::fs::read(&plan_file).expect("plan file");
    std::fs::write(&plan_file, &bytes[..bytes.len() / 2]).expect("truncate");
    let (out, _) = text(&b.ferrun(&["plan", "--bundle", bundle]));
    assert!(
        out.contains("cache: rebuilt (its bytes do not match their checksum)"),
        "{out}"
    );
    assert_eq!(std::fs::read(&plan_file).expect("rewritten"), bytes);

    // So is an entry that still decodes but had a byte changed: the hostname, here.
    let mut edited = bytes.clone();
    let at = edited
        .windows(11)
        .position(|w| w == b"ferrun-test")
        .expect("the hostname in the plan");
    edited[at + 8] = b'E';
    std::fs::write(&plan_file, &edited).expect("write");
    let mut shown = b.ferrun(&["run", "--bundle", bundle, "edited"]);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    shown = b.ferrun(&["plan", "--bundle", bundle]);
    let (out, _) = text(&shown);
    assert!(out.contains("sethostname \"ferrun-test\""), "{out}");
    assert_eq!(std::fs::read(&plan_file).expect("rewritten"), bytes);

    // So is an entry of another format version.
    let mut foreign = bytes.clone();
    foreign[8] = 99;
    std::fs::write(&plan_file, &foreign).expect("write");
    let (out, _) = text(&b.ferrun(&["plan", "--bundle", bundle]));
    assert!(out.contains("cache: rebuilt (plan format 99"), "{out}");

    // A changed config is a different entry.
    let mut b2 = b;
    b2.edit(|c| c["hostname"] = json!("other"));
    let (out, _) = text(&b2.ferrun(&["plan", "--bundle", bundle]));
    assert!(out.contains("cache: miss, stored"), "{out}");
    assert!(out.contains("sethostname \"other\""), "{out}");

    // run uses the cached plan: it works, and adds no entry.
    let entries = || {
        std::fs::read_dir(b2.state_root().join("@cache/plans"))
            .expect("dir")
            .count()
    };
    let before = entries();
    assert_eq!(b2.run("cached").0, 0);
    assert_eq!(entries(), before);
}

#[test]
fn plan_json_and_out_file() {
    let b = Bundle::new(&["true"]);
    let bundle = b.path().to_str().expect("utf-8");
    let out_file = b.path().join("plan.json");
    let o = b.ferrun(&[
        "plan",
        "--bundle",
        bundle,
        "--format",
        "json",
        "--out",
        out_file.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(
        o.stdout.is_empty(),
        "--out writes the file instead of stdout"
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&out_file).expect("out")).expect("json");
    assert_eq!(v["key"].as_str().map(str::len), Some(64));
    assert!(v["listing"].as_array().is_some_and(|l| {
        l.iter()
            .any(|s| s.as_str().is_some_and(|s| s.contains("pivot_root")))
    }));
    // runc's spec has a cgroup mount and device rules: both planned now.
    let fields: Vec<&str> = v["notPlanned"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|n| n["field"].as_str())
        .collect();
    assert!(
        !fields.contains(&"mounts[6]") && !fields.contains(&"linux.resources"),
        "{fields:?}"
    );
    assert!(v["listing"].as_array().is_some_and(|l| {
        l.iter().any(|s| {
            s.as_str()
                .is_some_and(|s| s.contains("cgroup: write \"a\" to devices.deny"))
        })
    }));
}

#[test]
fn features_spec_and_version() {
    let b = Bundle::new(&["true"]);
    let (out, _) = text(&b.ferrun(&["features"]));
    let f: Value = serde_json::from_str(&out).expect("features json");
    assert_eq!(f["ociVersionMin"], "1.0.0");
    let opts: Vec<&str> = f["mountOptions"]
        .as_array()
        .expect("opts")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(opts.contains(&"rro") && opts.contains(&"rbind") && opts.contains(&"nosymfollow"));
    let ns: Vec<&str> = f["linux"]["namespaces"]
        .as_array()
        .expect("ns")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(ns.len(), 8);
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    assert_eq!(
        f["linux"]["seccomp"]["actions"].as_array().map(Vec::len),
        Some(9)
    );
    assert_eq!(f["linux"]["cgroup"]["v1"], true);
    assert_eq!(f["linux"]["cgroup"]["v2"], true);
    assert_eq!(f["ociVersionMax"], "1.3.0");
    assert_eq!(
        f["linux"]["memoryPolicy"]["modes"].as_array().map(Vec::len),
        Some(7)
    );
    assert_eq!(
        f["linux"]["memoryPolicy"]["flags"][0],
        "MPOL_F_NUMA_BALANCING"
    );

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let d = dir.path().to_str().expect("utf-8");
    assert!(b.ferrun(&["spec", "--bundle", d]).status.success());
    let again = b.ferrun(&["spec", "--bundle", d]);
    assert!(!again.status.success(), "spec refuses to overwrite");
    let spec: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).expect("config"))
            .expect("json");
    assert_eq!(spec["process"]["args"], json!(["sh"]));
    // The generated spec plans, with the busybox rootfs next to it.
    std::os::unix::fs::symlink(common::rootfs(), dir.path().join("rootfs")).expect("symlink");
    let o = b.ferrun(&["plan", "--bundle", d]);
    assert!(o.status.success(), "{:?}", text(&o));

    let rootless = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let r = rootless.path().to_str().expect("utf-8");
    assert!(
        b.ferrun(&["spec", "--rootless", "--bundle", r])
            .status
            .success()
    );
    let spec: Value = serde_json::from_slice(
        &std::fs::read(rootless.path().join("config.json")).expect("config"),
    )
    .expect("json");
    assert!(
        spec["linux"]["namespaces"]
            .as_array()
            .expect("ns")
            .iter()
            .any(|n| n["type"] == "user")
    );
    assert_eq!(spec["linux"]["uidMappings"][0]["size"], 1);

    let (out, _) = text(&b.ferrun(&["--version"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!("ferrun version {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(lines[1].starts_with("commit: "));
    assert!(lines[2].starts_with("spec: 1."));
    let features = lines
        .iter()
        .find(|l| l.starts_with('+'))
        .expect("features line");
    assert!(
        features.contains("+SECCOMP") && features.contains("+HOOKS"),
        "{out}"
    );
    let f: Value = serde_json::from_str(&text(&b.ferrun(&["features"])).0).expect("json");
    assert_eq!(f["hooks"].as_array().map(Vec::len), Some(6));
}

#[test]
fn signals_are_parsed_like_runc() {
    for (s, n) in [
        ("KILL", 9),
        ("SIGKILL", 9),
        ("kill", 9),
        ("9", 9),
        ("TERM", 15),
        ("SIGUSR1", 10),
    ] {
        assert_eq!(ferrun::lifecycle::parse_signal(s).expect(s), n, "{s}");
    }
    for bad in ["0", "65", "NOPE", ""] {
        assert!(ferrun::lifecycle::parse_signal(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn terminal_with_console_socket() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "tty; test -t 0 && echo stdin-is-a-tty; stty size",
    ]);
    b.edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["consoleSize"] = json!({"height": 33, "width": 101});
    });
    let bundle = b.path().to_str().expect("utf-8").to_string();

    // Without a socket, create refuses.
    let o = b.ferrun(&["create", "--bundle", &bundle, "tty0"]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("--console-socket"), "{:?}", text(&o));
    assert!(b.leftover_state().is_empty());

    let sock = b.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    let receiver = std::thread::spawn(move || common::accept_fd(&listener).1);
    let o = b.ferrun(&[
        "create",
        "--bundle",
        &bundle,
        "--console-socket",
        sock.to_str().expect("utf-8"),
        "tty1",
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    // consoleSize is on the pty before it is handed over.
    let master = receiver.join().expect("receiver");
    assert!(b.ferrun(&["start", "tty1"]).status.success());
    let mut out = Vec::new();
    let mut f = std::fs::File::from(master);
    // Reading the master ends with EIO once the container's side is closed.
    let _ = std::io::Read::read_to_end(&mut f, &mut out);
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("/dev/pts/0"), "{out:?}");
    assert!(out.contains("stdin-is-a-tty"), "{out:?}");
    assert!(out.contains("33 101"), "{out:?}");
    assert!(common::wait_until(|| String::from_utf8_lossy(
        &b.ferrun(&["state", "tty1"]).stdout
    )
    .contains("stopped")));
    assert!(b.ferrun(&["delete", "tty1"]).status.success());
}

#[test]
fn seccomp_filters_are_shared_between_configs() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/config/podman-run.json");
    let podman: Value =
        serde_json::from_slice(&std::fs::read(fixture).expect("fixture")).expect("json");
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["linux"]["seccomp"] = podman["linux"]["seccomp"].clone());
    let bundle = &b.path().to_str().expect("utf-8").to_string();
    let (out, err) = text(&b.ferrun(&["plan", "--bundle", bundle]));
    assert!(
        out.contains("seccomp filter cache: 0 reused, 1 compiled"),
        "{out}{err}"
    );
    // Another config with the same profile misses the plan cache but reuses the filter.
    b.edit(|c| c["hostname"] = json!("another"));
    let (out, _) = text(&b.ferrun(&["plan", "--bundle", bundle]));
    assert!(out.contains("cache: miss, stored"), "{out}");
    assert!(
        out.contains("seccomp filter cache: 1 reused, 0 compiled"),
        "{out}"
    );
    // A corrupt filter entry is compiled again, not trusted.
    let dir = b.state_root().join("@cache/seccomp");
    for e in std::fs::read_dir(&dir).expect("dir").flatten() {
        std::fs::write(e.path(), b"junk").expect("corrupt");
    }
    b.edit(|c| c["hostname"] = json!("third"));
    let (out, _) = text(&b.ferrun(&["plan", "--bundle", bundle]));
    assert!(
        out.contains("seccomp filter cache: 0 reused, 1 compiled"),
        "{out}"
    );
    assert_eq!(b.run("shared").0, 0);
}

#[test]
fn run_uses_the_callers_terminal() {
    // `script` (util-linux) gives ferrun a real terminal of 40x120 as its stdin and stdout.
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "tty; stty size; test -t 0 && echo stdin-tty; \
         echo console=$(stat -c %t:%T /dev/console) pty=$(stat -L -c %t:%T /proc/self/fd/0)",
    ]);
    b.edit(|c| c["process"]["terminal"] = json!(true));
    let cmd = format!(
        "stty rows 40 cols 120; {} --root {} run --bundle {} tty",
        common::ferrun_bin(),
        b.state_root().display(),
        b.path().display()
    );
    let o = common::output_via_files({
        let mut c = std::process::Command::new("script");
        c.args(["-q", "-e", "-c", &cmd, "/dev/null"]);
        c
    });
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("/dev/pts/0"),
        "the container has its own pty: {out:?}"
    );
    assert!(out.contains("40 120"), "with the caller's size: {out:?}");
    assert!(out.contains("stdin-tty"), "{out:?}");
    // /dev/console is the container's pty, as under runc and crun.
    let line = out
        .lines()
        .find(|l| l.starts_with("console="))
        .unwrap_or_default();
    let (console, pty) = line
        .trim()
        .trim_start_matches("console=")
        .split_once(" pty=")
        .unwrap_or_default();
    assert!(!console.is_empty() && console == pty, "{out:?}");
    assert!(b.leftover_state().is_empty());
}

#[test]
fn crun_flags_config_and_cgroup_manager() {
    let b = Bundle::new(&[
        "sh",
        "-c",
        "echo from-$NAME; cat /proc/self/cgroup | grep -c ferrun-test || true",
    ]);
    let bundle = b.path().to_str().expect("utf-8").to_string();
    // --config names another file than the bundle's config.json.
    let mut other = b.config.clone();
    other["process"]["env"] = json!(["PATH=/bin", "NAME=other"]);
    let other_path = b.path().join("other.json");
    std::fs::write(&other_path, other.to_string()).expect("write");
    let o = b.ferrun(&[
        "run",
        "--config",
        other_path.to_str().expect("utf-8"),
        "--bundle",
        &bundle,
        "cfg",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "from-other");
    assert_ne!(lines[1], "0", "in its own cgroups: {out}");
    // --cgroup-manager disabled: no cgroup is made or joined.
    let o = b.ferrun(&[
        "--cgroup-manager",
        "disabled",
        "run",
        "--bundle",
        &bundle,
        "nocg",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(out.lines().nth(1), Some("0"), "{out}");
    let o = b.ferrun(&["--cgroup-manager", "bogus", "run", "--bundle", &bundle, "x"]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("--cgroup-manager"));
}

#[test]
fn profile_times_every_step_and_the_phases_add_up() {
    let b = Bundle::new(&["true"]);
    let bundle = b.path().to_str().expect("utf-8").to_string();
    let started = std::time::Instant::now();
    let o = b.ferrun(&["run", "--profile=json", "--bundle", &bundle, "prof"]);
    let wall = started.elapsed().as_secs_f64() * 1000.0;
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let doc: serde_json::Value = serde_json::from_str(err.trim()).expect("one JSON document");
    // Every step of the plan has a duration: the host's and the container process's.
    let plan = common::ok(&b.ferrun(&["plan", "--format", "json", "--bundle", &bundle]));
    let plan: serde_json::Value = serde_json::from_str(&plan).expect("plan json");
    // The numbered lines of the listing: host steps, clone3, container steps.
    let listed = plan["listing"]
        .as_array()
        .expect("listing")
        .iter()
        .filter_map(Value::as_str)
        .filter(|l| {
            let t = l.trim_start();
            t.split("  ")
                .next()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .count();
    let steps = doc["steps"].as_array().expect("steps");
    let numbers: Vec<u64> = steps.iter().filter_map(|s| s["step"].as_u64()).collect();
    assert_eq!(numbers, (1..=listed as u64).collect::<Vec<_>>(), "{doc}");
    for s in steps {
        assert!(s["ms"].as_f64().is_some_and(|m| m >= 0.0), "{s}");
    }
    // The phases are the whole run, from ferrun's start (before its re-exec) to its end.
    let phases: f64 = doc["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .filter_map(|p| p["ms"].as_f64())
        .sum();
    let total = doc["total_ms"].as_f64().expect("total");
    assert!(
        (phases - total).abs() <= total * 0.01 + 0.01,
        "{phases} vs {total}"
    );
    assert!(
        total > 0.0 && total <= wall,
        "ferrun's own {total} ms within the {wall} ms seen here"
    );
    // The text form: the listing with durations, then the phases.
    let o = b.ferrun(&["run", "--profile", "--bundle", &bundle, "prof"]);
    let (_, err) = text(&o);
    assert!(err.starts_with("profile (ms):\n"), "{err}");
    assert!(err.contains("execve argv [\"true\"]"), "{err}");
    assert!(
        err.contains("phases:\n") && err.contains(" total "),
        "{err}"
    );
    let o = b.ferrun(&["run", "--profile=yaml", "--bundle", &bundle, "prof"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn engine_configs_of_one_shape_share_a_plan_template() {
    // Engines write a config per container that differs only in ids, uuids and a timestamp
    // annotation: the second container's plan is the first one's template, filled in.
    let b = Bundle::new(&["true"]);
    let root = b.state_root();
    let container = |id: &str, uuid: &str, created: &str| -> std::path::PathBuf {
        let data = b.path().join(id).join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        std::fs::write(data.join("f"), id).expect("data file");
        let mut c = b.config.clone();
        c["process"]["args"] = json!(["sh", "-c", "hostname; cat /mnt/f; echo; echo $HOSTNAME"]);
        c["process"]["env"]
            .as_array_mut()
            .expect("env")
            .push(json!(format!("HOSTNAME={}", &id[..12])));
        c["hostname"] = json!(&id[..12]);
        c["linux"]["cgroupsPath"] = json!(format!("/ferrun-test/libpod-{id}"));
        c["annotations"] = json!({"io.kubernetes.cri-o.Created": created, "x.y": uuid});
        c["mounts"].as_array_mut().expect("mounts").push(json!({
            "destination": "/mnt", "type": "bind", "source": data, "options": ["rbind", "ro"]
        }));
        let bundle = b.path().join(id).join("userdata");
        std::fs::create_dir_all(&bundle).expect("bundle");
        std::fs::write(bundle.join("config.json"), c.to_string()).expect("config");
        bundle
    };
    let ferrun = |root: &std::path::Path, args: &[&str]| {
        let mut c = std::process::Command::new(common::ferrun_bin());
        c.arg("--root").arg(root).args(args);
        common::output_via_files(c)
    };
    let id1 = "1af77eb82c825a59142e48fe10b3b59ae254e7402b097a719cfec487581948e4";
    let id2 = "0dd4e7f60a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f607182930a4b";
    let b1 = container(
        id1,
        "bef65a0d-70e4-7a35-4877-d45995782186",
        "2026-11-29T00:17:29Z",
    );
    let b2 = container(
        id2,
        "00c0ffee-1111-2222-3333-444444444444",
        "2026-12-01T10:00:00Z",
    );
    let plan = |root: &std::path::Path, bundle: &std::path::Path| {
        text(&ferrun(
            root,
            &["plan", "--bundle", bundle.to_str().expect("utf-8")],
        ))
        .0
    };
    let first = plan(&root, &b1);
    assert!(first.contains("cache: miss, template stored"), "{first}");
    let second = plan(&root, &b2);
    assert!(second.contains("cache: hit (template)"), "{second}");
    // The filled template lists what planning the second config afresh lists.
    let fresh = plan(&b.path().join("fresh-root"), &b2);
    let body = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("cache:") && !l.starts_with("seccomp filter cache"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(body(&second), body(&fresh));
    assert!(second.contains(&format!("libpod-{id2}")) && !second.contains(id1));
    // And it runs: the hostname, the bind's source and the env are the second container's.
    let o = ferrun(
        &root,
        &["run", "--bundle", b2.to_str().expect("utf-8"), "tmpl2"],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert_eq!(out, format!("{}\n{id2}\n{}\n", &id2[..12], &id2[..12]));
    // One template, kept after the container went (it is not the container's own plan).
    let names: Vec<String> = std::fs::read_dir(root.join("@cache/plans"))
        .expect("plans")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].ends_with(".tmpl"), "{names:?}");
    assert!(common::cgroup_dirs(&format!("/ferrun-test/libpod-{id2}")).is_empty());
}

/// Without criu on `PATH`, `--version` and `features` say there is no checkpoint, and
/// `checkpoint` refuses clearly with the container left running; bad restores name what is
/// wrong and leave nothing behind. (criu's own work is tested in the VM, where it runs.)
#[test]
fn checkpoint_and_restore_without_criu_and_with_bad_input() {
    let mut b = Bundle::new(&["sleep", "100"]);
    let no_criu = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let without = |args: &[&str]| {
        let mut c = b.cmd(args);
        c.env("PATH", no_criu.path());
        common::output_via_files(c)
    };
    let (out, _) = text(&without(&["--version"]));
    assert!(
        out.contains("criu: not found") && !out.contains("+CRIU"),
        "{out}"
    );
    let f: Value = serde_json::from_str(&text(&without(&["features"])).0).expect("json");
    assert_eq!(
        f["annotations"]["run.ferrun.checkpoint.enabled"], "false",
        "{f}"
    );

    // podman probes `checkpoint --help`: it must succeed, with runc's flags.
    let help = b.ferrun(&["checkpoint", "--help"]);
    let (out, _) = text(&help);
    assert!(help.status.success(), "{out}");
    for flag in [
        "--image-path",
        "--work-path",
        "--parent-path",
        "--leave-running",
        "--tcp-established",
        "--ext-unix-sk",
        "--shell-job",
        "--file-locks",
        "--pre-dump",
        "--manage-cgroups-mode",
    ] {
        assert!(out.contains(flag), "checkpoint --help lacks {flag}: {out}");
    }
    let (out, _) = text(&b.ferrun(&["restore", "--help"]));
    for flag in [
        "--bundle",
        "--detach",
        "--pid-file",
        "--console-socket",
        "--no-pivot",
        "--image-path",
    ] {
        assert!(out.contains(flag), "restore --help lacks {flag}: {out}");
    }

    let (_, err) = text(&b.ferrun(&["checkpoint", "nosuch"]));
    assert!(
        err.contains("nosuch") && err.contains("does not exist"),
        "{err}"
    );

    let bundle = b.path().to_str().expect("utf-8").to_string();
    b.run_detached("cp", &[]);
    let img = b.path().join("img").to_string_lossy().into_owned();
    let o = without(&["checkpoint", "--image-path", &img, "cp"]);
    let (_, err) = text(&o);
    assert!(
        !o.status.success() && err.contains("criu not found"),
        "{err}"
    );
    let o = b.ferrun(&[
        "checkpoint",
        "--manage-cgroups-mode",
        "bogus",
        "--image-path",
        &img,
        "cp",
    ]);
    let (_, err) = text(&o);
    assert!(
        !o.status.success() && err.contains("--manage-cgroups-mode bogus"),
        "{err}"
    );
    let st: Value = serde_json::from_str(&text(&b.ferrun(&["state", "cp"])).0).expect("state");
    assert_eq!(st["status"], "running", "{st}");
    assert!(b.ferrun(&["delete", "--force", "cp"]).status.success());

    let cgroups = common::cgroup_dirs(&b.cgroup_path());
    let missing = b
        .path()
        .join("no-such-images")
        .to_string_lossy()
        .into_owned();
    let o = b.ferrun(&[
        "restore",
        "-d",
        "--bundle",
        &bundle,
        "--image-path",
        &missing,
        "r1",
    ]);
    let (_, err) = text(&o);
    assert!(
        !o.status.success() && err.contains("--image-path") && err.contains("no-such-images"),
        "{err}"
    );
    let empty = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let e = empty.path().to_str().expect("utf-8");
    let refused = |b: &Bundle, id: &str, want: &str| {
        let o = b.ferrun(&["restore", "-d", "--bundle", &bundle, "--image-path", e, id]);
        let (_, err) = text(&o);
        assert!(!o.status.success() && err.contains(want), "{want}: {err}");
    };
    refused(&b, "r2", "descriptors.json");
    b.edit(|c| c["process"]["terminal"] = json!(true));
    refused(&b, "r3", "--console-socket");
    assert!(b.leftover_state().is_empty(), "{:?}", b.leftover_state());
    for d in cgroups {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}
