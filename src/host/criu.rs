//! CRIU's RPC: `criu swrk <fd>` over a `SOCK_SEQPACKET` socket pair, the messages of criu's
//! `images/rpc.proto` that ferrun sends and reads (proto2, written with prost's derive: no
//! protoc at build time), and the conversation: a request, the notifications criu sends while
//! it works (each answered, some with an fd riding along), the response. The RPC, not the CLI:
//! only over it does criu hand back the master of a restored terminal (`orphan_pts_master`),
//! restore the tree as the caller's sibling (`rst_sibling`), take inherited fds by number, and
//! say when the namespaces are ready for the hooks. It may use only the leaves.

use crate::bail;
use crate::error::{Context, Error, Result};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExtMountMap {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, required, tag = "2")]
    pub val: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct JoinNamespace {
    #[prost(string, required, tag = "1")]
    pub ns: String,
    #[prost(string, required, tag = "2")]
    pub ns_file: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InheritFd {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(int32, required, tag = "2")]
    pub fd: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CgroupRoot {
    #[prost(string, optional, tag = "1")]
    pub ctrl: Option<String>,
    #[prost(string, required, tag = "2")]
    pub path: String,
}

/// `criu_cg_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum CgMode {
    Ignore = 0,
    CgNone = 1,
    Props = 2,
    Soft = 3,
    Full = 4,
    Strict = 5,
    Default = 6,
}

/// `criu_req_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum ReqType {
    Empty = 0,
    Dump = 1,
    Restore = 2,
    Check = 3,
    PreDump = 4,
    PageServer = 5,
    Notify = 6,
    CpuinfoDump = 7,
    CpuinfoCheck = 8,
    FeatureCheck = 9,
    Version = 10,
}

/// `criu_opts`: the fields ferrun sets.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Opts {
    #[prost(int32, required, tag = "1")]
    pub images_dir_fd: i32,
    #[prost(int32, optional, tag = "2")]
    pub pid: Option<i32>,
    #[prost(bool, optional, tag = "3")]
    pub leave_running: Option<bool>,
    #[prost(bool, optional, tag = "4")]
    pub ext_unix_sk: Option<bool>,
    #[prost(bool, optional, tag = "5")]
    pub tcp_established: Option<bool>,
    #[prost(bool, optional, tag = "6")]
    pub evasive_devices: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    pub shell_job: Option<bool>,
    #[prost(bool, optional, tag = "8")]
    pub file_locks: Option<bool>,
    #[prost(int32, optional, tag = "9")]
    pub log_level: Option<i32>,
    #[prost(string, optional, tag = "10")]
    pub log_file: Option<String>,
    #[prost(bool, optional, tag = "12")]
    pub notify_scripts: Option<bool>,
    #[prost(string, optional, tag = "13")]
    pub root: Option<String>,
    #[prost(string, optional, tag = "14")]
    pub parent_img: Option<String>,
    #[prost(bool, optional, tag = "15")]
    pub track_mem: Option<bool>,
    #[prost(int32, optional, tag = "17")]
    pub work_dir_fd: Option<i32>,
    #[prost(message, repeated, tag = "23")]
    pub ext_mnt: Vec<ExtMountMap>,
    #[prost(bool, optional, tag = "24")]
    pub manage_cgroups: Option<bool>,
    #[prost(message, repeated, tag = "25")]
    pub cg_root: Vec<CgroupRoot>,
    #[prost(bool, optional, tag = "26")]
    pub rst_sibling: Option<bool>,
    #[prost(message, repeated, tag = "27")]
    pub inherit_fd: Vec<InheritFd>,
    #[prost(enumeration = "CgMode", optional, tag = "34")]
    pub manage_cgroups_mode: Option<i32>,
    #[prost(string, repeated, tag = "37")]
    pub external: Vec<String>,
    #[prost(uint32, optional, tag = "38")]
    pub empty_ns: Option<u32>,
    #[prost(message, repeated, tag = "39")]
    pub join_ns: Vec<JoinNamespace>,
    #[prost(string, optional, tag = "44")]
    pub freeze_cgroup: Option<String>,
    #[prost(bool, optional, tag = "50")]
    pub orphan_pts_master: Option<bool>,
    #[prost(string, optional, tag = "51")]
    pub config_file: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Features {
    #[prost(bool, optional, tag = "1")]
    pub mem_track: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Req {
    #[prost(enumeration = "ReqType", required, tag = "1")]
    pub r#type: i32,
    #[prost(message, optional, tag = "2")]
    pub opts: Option<Opts>,
    #[prost(bool, optional, tag = "3")]
    pub notify_success: Option<bool>,
    #[prost(message, optional, tag = "5")]
    pub features: Option<Features>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RestoreResp {
    #[prost(int32, required, tag = "1")]
    pub pid: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Notify {
    #[prost(string, optional, tag = "1")]
    pub script: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub pid: Option<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Version {
    #[prost(int32, required, tag = "1")]
    pub major_number: i32,
    #[prost(int32, required, tag = "2")]
    pub minor_number: i32,
    #[prost(string, optional, tag = "3")]
    pub gitid: Option<String>,
    #[prost(int32, optional, tag = "4")]
    pub sublevel: Option<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Resp {
    #[prost(enumeration = "ReqType", required, tag = "1")]
    pub r#type: i32,
    #[prost(bool, required, tag = "2")]
    pub success: bool,
    #[prost(message, optional, tag = "4")]
    pub restore: Option<RestoreResp>,
    #[prost(message, optional, tag = "5")]
    pub notify: Option<Notify>,
    #[prost(int32, optional, tag = "7")]
    pub cr_errno: Option<i32>,
    #[prost(message, optional, tag = "8")]
    pub features: Option<Features>,
    #[prost(string, optional, tag = "9")]
    pub cr_errmsg: Option<String>,
    #[prost(message, optional, tag = "10")]
    pub version: Option<Version>,
}

/// What `Opts` calls the request kinds in errors.
fn verb(t: i32) -> &'static str {
    match ReqType::try_from(t) {
        Ok(ReqType::Dump) => "dump",
        Ok(ReqType::PreDump) => "pre-dump",
        Ok(ReqType::Restore) => "restore",
        Ok(ReqType::Version) => "version",
        Ok(ReqType::FeatureCheck) => "feature check",
        _ => "request",
    }
}

/// What a caller does with a notification: `(script, pid, fd riding along)`.
pub type OnNotify<'a> = dyn FnMut(&str, i32, Option<OwnedFd>) -> Result<()> + 'a;

/// A running `criu swrk`, its end of the socket pair, and the fds it was given.
pub struct Swrk {
    child: std::process::Child,
    sock: OwnedFd,
}

/// The fd numbers criu sees: the socket is 3, `pass[i]` is `4 + i` (what `inherit_fd` names).
pub const FIRST_PASSED_FD: i32 = 4;

/// Starts `criu swrk 3` with ferrun's stdio (a restore's init inherits it: the engine's pipes)
/// and `pass` as fds 4, 5, …
pub fn spawn(pass: &[&OwnedFd]) -> Result<Swrk> {
    let (ours, theirs) = crate::host::fd::seqpacket_pair()?;
    // Every source above the targets first, so that no dup2 below overwrites one not yet moved.
    let top = FIRST_PASSED_FD as u32 + pass.len() as u32 + 1;
    let theirs = crate::host::fd::above(theirs, top)?;
    let passed = pass
        .iter()
        .map(|f| {
            f.try_clone()
                .ctx(|| "dup an fd for criu".into())
                .and_then(|f| crate::host::fd::above(f, top))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut sources: Vec<RawFd> = vec![theirs.as_raw_fd()];
    sources.extend(passed.iter().map(|f| f.as_raw_fd()));
    let mut cmd = std::process::Command::new("criu");
    cmd.arg("swrk").arg("3");
    // SAFETY: only dup2, which is async-signal-safe, between fork and exec; dup2 clears
    // close-on-exec on the copy, and the sources (all above the targets) close at exec.
    unsafe {
        cmd.pre_exec(move || {
            for (i, src) in sources.iter().enumerate() {
                if libc::dup2(*src, 3 + i as libc::c_int) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // Nothing else of ferrun's (or of its caller's) reaches criu.
            let first = 3 + sources.len() as libc::c_uint;
            libc::syscall(
                libc::SYS_close_range,
                first,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error("criu not found in PATH: checkpoint and restore need it (package criu)".into())
        } else {
            Error(format!("start criu swrk: {e}"))
        }
    })?;
    drop(theirs);
    drop(passed);
    Ok(Swrk { child, sock: ours })
}

impl Swrk {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn send(&self, req: &Req) -> Result<()> {
        let bytes = prost::Message::encode_to_vec(req);
        nix::sys::socket::send(
            self.sock.as_raw_fd(),
            &bytes,
            nix::sys::socket::MsgFlags::empty(),
        )
        .ctx(|| "write to criu".into())?;
        Ok(())
    }

    /// One message from criu, and an fd riding with it.
    fn recv(&self) -> Result<(Resp, Option<OwnedFd>)> {
        use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
        use std::os::fd::FromRawFd;
        let mut buf = vec![0u8; 64 * 1024];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([RawFd; 4]);
        let (n, fd) = loop {
            match recvmsg::<()>(
                self.sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error(format!("read from criu: {e}"))),
                Ok(msg) => {
                    let mut fd = None;
                    for c in msg.cmsgs().into_iter().flatten() {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            for (i, raw) in fds.into_iter().enumerate() {
                                // SAFETY: fds received with the message are ours now.
                                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                                if i == 0 && fd.is_none() {
                                    fd = Some(owned);
                                }
                            }
                        }
                    }
                    break (msg.bytes, fd);
                }
            }
        };
        if n == 0 {
            bail!("criu closed its socket without an answer");
        }
        let resp = <Resp as prost::Message>::decode(&buf[..n])
            .map_err(|e| Error(format!("criu's answer: {e}")))?;
        Ok((resp, fd))
    }

    /// Sends `req` and answers each notification with `on_notify(script, pid, fd)` until the
    /// response. A notification handler's error stops criu (its answer says the script failed).
    pub fn call(&mut self, req: &Req, on_notify: &mut OnNotify<'_>) -> Result<Resp> {
        self.send(req)?;
        loop {
            let (resp, fd) = self.recv()?;
            if !resp.success {
                let mut why = format!("criu {} failed", verb(req.r#type));
                if let Some(m) = resp.cr_errmsg.as_deref().filter(|m| !m.is_empty()) {
                    why.push_str(&format!(": {m}"));
                }
                if let Some(e) = resp.cr_errno.filter(|e| *e != 0) {
                    why.push_str(&format!(" ({})", crate::error::errno_text(e)));
                }
                return Err(Error(why));
            }
            if resp.r#type != ReqType::Notify as i32 {
                return Ok(resp);
            }
            let n = resp.notify.clone().unwrap_or_default();
            let script = n.script.unwrap_or_default();
            let handled = on_notify(&script, n.pid.unwrap_or(0), fd);
            self.send(&Req {
                r#type: ReqType::Notify as i32,
                notify_success: Some(handled.is_ok()),
                ..Default::default()
            })?;
            if let Err(e) = handled {
                // criu undoes its work now: it is let finish (its answer, then its exit), so
                // that nothing half-restored is left waiting on it.
                while let Ok((r, _)) = self.recv() {
                    if r.r#type != ReqType::Notify as i32 {
                        break;
                    }
                    let _ = self.send(&Req {
                        r#type: ReqType::Notify as i32,
                        notify_success: Some(false),
                        ..Default::default()
                    });
                }
                let _ = nix::sys::socket::shutdown(
                    self.sock.as_raw_fd(),
                    nix::sys::socket::Shutdown::Write,
                );
                let _ = self.child.wait();
                return Err(Error(format!("{script}: {}", e.0)));
            }
        }
    }

    /// Closes ferrun's end and waits for criu; `Ok(true)` when it exited 0.
    pub fn finish(mut self) -> Result<bool> {
        let _ =
            nix::sys::socket::shutdown(self.sock.as_raw_fd(), nix::sys::socket::Shutdown::Write);
        let st = self.child.wait().ctx(|| "wait for criu".into())?;
        Ok(st.success())
    }
}

impl Drop for Swrk {
    fn drop(&mut self) {
        // A conversation cut short: criu must not outlive it (it would hold the tree frozen).
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// criu's version as `(major, minor, sublevel)` through the VERSION request; `None` without a
/// criu that answers.
pub fn version() -> Option<(i32, i32, i32)> {
    let mut s = spawn(&[]).ok()?;
    let resp = s
        .call(
            &Req {
                r#type: ReqType::Version as i32,
                ..Default::default()
            },
            &mut |_, _, _| Ok(()),
        )
        .ok()?;
    let _ = s.finish();
    let v = resp.version?;
    Some((v.major_number, v.minor_number, v.sublevel.unwrap_or(0)))
}

/// Whether criu and the kernel can track memory changes (`--pre-dump`, `--parent-path`).
pub fn tracks_memory() -> Result<bool> {
    let mut s = spawn(&[])?;
    let resp = s.call(
        &Req {
            r#type: ReqType::FeatureCheck as i32,
            features: Some(Features {
                mem_track: Some(true),
            }),
            ..Default::default()
        },
        &mut |_, _, _| Ok(()),
    )?;
    let _ = s.finish();
    Ok(resp.features.and_then(|f| f.mem_track).unwrap_or(false))
}

/// The lines of criu's log that say what went wrong (those with `Error`, each with the line
/// before it), at most a dozen, for the message of a failed dump or restore.
pub fn log_errors(log: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(log) else {
        return String::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<&str> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.contains("Error") {
            if i > 0 && !out.last().is_some_and(|p| std::ptr::eq(*p, lines[i - 1])) {
                out.push(lines[i - 1]);
            }
            out.push(l);
        }
    }
    let keep = out.len().saturating_sub(12);
    out[keep..]
        .iter()
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join("\n  ")
}
