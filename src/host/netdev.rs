//! `linux.netDevices` (spec 1.3): a host interface moved into the container's network namespace
//! under its new name (one `RTM_NEWLINK`, so the move and the rename are one step), its
//! permanent addresses of global scope given back there, and set up, as runc does. Netlink
//! messages through netlink-packet-route. Nothing is moved back at delete: the kernel returns a
//! physical device when the namespace goes, and destroys a virtual one (the spec's rule).

use crate::error::{Error, Result};
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{
    AddressAttribute, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use std::os::fd::{AsFd, AsRawFd};

/// Where the devices go: a namespace file, or the namespace of a process (by its host pid, with
/// its pidfd to enter it).
pub enum Target<'a> {
    File(&'a std::fs::File),
    Process { pid: i32, pidfd: i32 },
}

/// Moves each `(host name, container name)` device into `target`.
pub fn move_devices(devices: &[(String, String)], target: Target<'_>) -> Result<()> {
    for (host, name) in devices {
        move_one(host, name, &target).map_err(|e| {
            Error(format!(
                "linux.netDevices.{host}: move it into the container as {name}: {}",
                e.0
            ))
        })?;
    }
    Ok(())
}

fn move_one(host: &str, name: &str, target: &Target<'_>) -> Result<()> {
    let rtnl = Rtnl::open()?;
    let index = if_index(host)
        .ok_or_else(|| Error("no such device in the runtime's network namespace".into()))?;
    let addresses = rtnl.permanent_global_addresses(index)?;
    // A template (`eth%d`) names no device until the kernel picks the number: the move uses a
    // name of its own, found inside, and the rename to the template comes after.
    let template = name.contains('%');
    let moved_as = if template {
        format!("frn{index}")
    } else {
        name.to_string()
    };
    let mut link = LinkMessage::default();
    link.header.index = index;
    link.attributes
        .push(LinkAttribute::IfName(moved_as.clone()));
    link.attributes.push(match target {
        Target::File(f) => LinkAttribute::NetNsFd(f.as_raw_fd()),
        Target::Process { pid, .. } => LinkAttribute::NetNsPid(*pid as u32),
    });
    rtnl.request(RouteNetlinkMessage::SetLink(link), 0)?;
    // The rest is done from inside: the thread enters the namespace, then comes back.
    let own = std::fs::File::open("/proc/thread-self/ns/net")
        .map_err(|e| Error(format!("open our own network namespace: {e}")))?;
    let enter = match target {
        Target::File(f) => f.as_raw_fd(),
        Target::Process { pidfd, .. } => *pidfd,
    };
    // SAFETY: setns on fds we hold, this thread only.
    if unsafe { libc::setns(enter, libc::CLONE_NEWNET) } != 0 {
        return Err(Error(format!(
            "enter its network namespace: {}",
            std::io::Error::last_os_error()
        )));
    }
    let inside = (|| {
        let rtnl = Rtnl::open()?;
        let index = if_index(&moved_as)
            .ok_or_else(|| Error(format!("{name} is not in the container after the move")))?;
        if template {
            let mut rename = LinkMessage::default();
            rename.header.index = index;
            rename
                .attributes
                .push(LinkAttribute::IfName(name.to_string()));
            rtnl.request(RouteNetlinkMessage::SetLink(rename), 0)?;
        }
        for mut a in addresses {
            a.header.index = index;
            rtnl.request(
                RouteNetlinkMessage::NewAddress(a),
                NLM_F_CREATE | NLM_F_EXCL,
            )?;
        }
        let mut up = LinkMessage::default();
        up.header.index = index;
        up.header.flags = LinkFlags::Up;
        up.header.change_mask = LinkFlags::Up;
        rtnl.request(RouteNetlinkMessage::SetLink(up), 0)
    })();
    // SAFETY: back into the namespace we came from, through our fd.
    if unsafe { libc::setns(own.as_fd().as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(Error(format!(
            "return to our own network namespace: {}",
            std::io::Error::last_os_error()
        )));
    }
    inside
}

fn if_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a NUL-terminated name.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// A route netlink socket in the calling thread's network namespace.
struct Rtnl(Socket);

impl Rtnl {
    fn open() -> Result<Rtnl> {
        let io = |e: std::io::Error| Error(format!("netlink: {e}"));
        let mut s = Socket::new(NETLINK_ROUTE).map_err(io)?;
        s.bind_auto().map_err(io)?;
        s.connect(&SocketAddr::new(0, 0)).map_err(io)?;
        Ok(Rtnl(s))
    }

    fn send(&self, msg: RouteNetlinkMessage, flags: u16) -> Result<()> {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = 1;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.0
            .send(&buf, 0)
            .map_err(|e| Error(format!("netlink send: {e}")))?;
        Ok(())
    }

    /// The replies to one request, until its ACK, error or end of dump.
    fn replies(&self) -> Result<Vec<RouteNetlinkMessage>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = self
                .0
                .recv(&mut &mut buf[..], 0)
                .map_err(|e| Error(format!("netlink receive: {e}")))?;
            let mut at = 0;
            while at < n {
                let msg: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&buf[at..n])
                        .map_err(|e| Error(format!("netlink reply: {e}")))?;
                let len = msg.header.length as usize;
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(code) => Err(Error(
                                std::io::Error::from_raw_os_error(-code.get()).to_string(),
                            )),
                        };
                    }
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    _ => {}
                }
                if len == 0 {
                    break;
                }
                at += len;
            }
        }
    }

    /// A request answered by an ACK (or an error).
    fn request(&self, msg: RouteNetlinkMessage, flags: u16) -> Result<()> {
        self.send(msg, NLM_F_ACK | flags)?;
        self.replies().map(drop)
    }

    /// The addresses a move would flush that the spec says to keep: permanent, global scope.
    fn permanent_global_addresses(&self, index: u32) -> Result<Vec<AddressMessage>> {
        self.send(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        )?;
        let mut keep = Vec::new();
        for m in self.replies()? {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            let permanent = a.header.flags.contains(AddressHeaderFlags::Permanent)
                || a.attributes.iter().any(|at| {
                    matches!(at, AddressAttribute::Flags(f)
                        if f.contains(netlink_packet_route::address::AddressFlags::Permanent))
                });
            if a.header.index != index || a.header.scope != AddressScope::Universe || !permanent {
                continue;
            }
            let mut copy = AddressMessage::default();
            copy.header = a.header.clone();
            copy.attributes = a
                .attributes
                .iter()
                .filter(|at| {
                    matches!(
                        at,
                        AddressAttribute::Address(_)
                            | AddressAttribute::Local(_)
                            | AddressAttribute::Broadcast(_)
                    )
                })
                .cloned()
                .collect();
            keep.push(copy);
        }
        Ok(keep)
    }
}
