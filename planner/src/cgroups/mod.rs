//! `linux.cgroupsPath` and `linux.resources` → the cgroup part of a plan: which hierarchies the
//! container joins, where, and every file write that applies a resource, for the host's layout
//! (v1, v2 or hybrid). `ferrun update` uses [`resources`] on its own.

mod devices;
mod systemd;

pub use devices::{DeviceRule, default_rules, device_program, v1_lines};
pub use systemd::unit_properties;

use crate::{PlanError, err};
use ferrun_plans::cgroups::CgroupMode;
use ferrun_plans::{CgroupLayout, CgroupPath, CgroupWrite};
use oci_spec::runtime::LinuxResources;

/// What applying a `linux.resources` takes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// In order; hierarchy indices are into `layout.hierarchies()`.
    pub writes: Vec<CgroupWrite>,
    /// The cgroup2 device program (`struct bpf_insn` bytes), when devices are ruled on v2.
    pub device_program: Option<(u8, Vec<u8>)>,
    /// Controllers the cgroup2 ancestors must delegate.
    pub v2_controllers: Vec<String>,
    /// Settings the host's cgroup version has no file for (ignored, as runc does).
    pub warnings: Vec<String>,
}

/// Where a controller's files are on this host.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    V1(u8),
    V2(u8),
}

struct Builder<'a> {
    layout: &'a CgroupLayout,
    prefix: &'a str,
    out: Applied,
}

impl Builder<'_> {
    fn unified(&self) -> Option<u8> {
        self.layout
            .unified
            .as_ref()
            .map(|_| self.layout.v1.len() as u8)
    }

    /// The hierarchy for `controller`: its v1 hierarchy, else cgroup2 if it is bound there.
    fn place(&mut self, controller: &str, field: &str) -> Result<Place, PlanError> {
        if let Some(i) = self.layout.v1_index(controller) {
            return Ok(Place::V1(i as u8));
        }
        if let Some(u) = self.unified()
            && self.layout.on_v2(controller)
        {
            if !self.out.v2_controllers.iter().any(|c| c == controller) {
                self.out.v2_controllers.push(controller.into());
            }
            return Ok(Place::V2(u));
        }
        err(
            self.field(field),
            format!("the host has no {controller} cgroup controller to apply it with"),
        )
    }

    fn field(&self, f: &str) -> String {
        format!("{}.{f}", self.prefix)
    }

    fn write(&mut self, h: u8, file: &str, value: String, field: &str) {
        let field = self.field(field);
        self.out.writes.push(CgroupWrite {
            hierarchy: h,
            file: file.into(),
            value,
            field,
        });
    }

    fn ignored(&mut self, field: &str, why: &str) {
        let f = self.field(field);
        self.out.warnings.push(format!("{f}: {why}: ignored"));
    }
}

/// `-1` (or any negative) → `max`, as cgroup2 spells "no limit".
fn v2_num(n: i64) -> String {
    if n < 0 { "max".into() } else { n.to_string() }
}

/// cpu.shares → cpu.weight, the curve runc ≥ 1.4 and crun ≥ 1.23 use (1024 → 100).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exp = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    (10f64.powf(exp).ceil() as u64).clamp(1, 10_000)
}

/// blkio weight (10..1000) → io.weight (1..10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w).saturating_sub(10)) * 9999 / 990
}

/// A cpuset list such as `0-3,7`: digits, commas and ranges only.
fn check_cpu_list(field: &str, s: &str) -> Result<(), PlanError> {
    let ok = !s.trim().is_empty()
        && s.trim().split(',').all(|part| {
            let mut it = part.splitn(2, '-');
            let a = it.next().unwrap_or("");
            let b = it.next();
            let num = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
            num(a) && b.is_none_or(num)
        });
    if ok {
        Ok(())
    } else {
        err(field, format!("{s:?} is not a list like 0-3,7"))
    }
}

/// `2MB`, `1GB`, `64KB`: a hugepage size as the kernel names its files.
fn check_page_size(field: &str, s: &str) -> Result<(), PlanError> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    if digits.is_empty()
        || !digits.bytes().all(|c| c.is_ascii_digit())
        || !matches!(unit, "KB" | "MB" | "GB" | "TB")
    {
        return err(field, format!("{s:?} is not a page size like 2MB or 1GB"));
    }
    Ok(())
}

fn check_dev(field: &str, major: i64, minor: i64) -> Result<(), PlanError> {
    if major < 0 || minor < 0 || major > u32::MAX.into() || minor > u32::MAX.into() {
        return err(
            field,
            format!("{major}:{minor} is not a device number (must be 0 or more)"),
        );
    }
    Ok(())
}

/// Every write (and the device program) that applies `res` on `layout`. `prefix` is the field
/// path of `res` in error messages (`linux.resources`, or `--resources` for `update`).
/// `with_defaults` is for create: device rules (deny-all, the config's, then the defaults every
/// container may use, as runc does) and a quota only with its period. `update` passes false: it
/// leaves device rules alone and may change a quota alone.
pub fn resources(
    res: &LinuxResources,
    layout: &CgroupLayout,
    prefix: &str,
    with_defaults: bool,
) -> Result<Applied, PlanError> {
    let mut b = Builder {
        layout,
        prefix,
        out: Applied::default(),
    };
    let v2_only = layout.mode() == CgroupMode::V2;

    if let Some(cpu) = res.cpu() {
        // runc reads 0 and "" as "leave alone" throughout.
        for (v, f) in [(cpu.cpus(), "cpus"), (cpu.mems(), "mems")] {
            if let Some(v) = v.as_ref().filter(|v| !v.trim().is_empty()) {
                let field = format!("cpu.{f}");
                check_cpu_list(&b.field(&field), v)?;
                let (Place::V1(h) | Place::V2(h)) = b.place("cpuset", &field)?;
                b.write(h, &format!("cpuset.{f}"), v.trim().into(), &field);
            }
        }
    }
    devices::plan(&mut b, res, with_defaults)?;
    if let Some(m) = res.memory() {
        memory(&mut b, m)?;
    }
    if let Some(cpu) = res.cpu() {
        let nz = |v: Option<u64>| v.filter(|v| *v != 0);
        let nzi = |v: Option<i64>| v.filter(|v| *v != 0);
        let (shares, quota, period) = (nz(cpu.shares()), nzi(cpu.quota()), nz(cpu.period()));
        let (rt_period, rt_runtime) = (nz(cpu.realtime_period()), nzi(cpu.realtime_runtime()));
        if let Some(q) = quota
            && q > 0
            && period.is_none()
            && with_defaults
        {
            return err(b.field("cpu.quota"), "needs cpu.period to go with it");
        }
        if let Some(q) = cpu.quota()
            && q < -1
        {
            return err(
                b.field("cpu.quota"),
                format!("{q} is negative (-1 means no limit)"),
            );
        }
        if let Some(p) = period
            && !(1000..=1_000_000).contains(&p)
        {
            return err(
                b.field("cpu.period"),
                format!("{p} is outside 1000..1000000 microseconds"),
            );
        }
        if let Some(i) = cpu.idle()
            && !(0..=1).contains(&i)
        {
            return err(b.field("cpu.idle"), format!("{i} must be 0 or 1"));
        }
        let any = shares.is_some()
            || quota.is_some()
            || period.is_some()
            || cpu.burst().is_some()
            || cpu.idle().is_some()
            || rt_period.is_some()
            || rt_runtime.is_some();
        if any {
            match b.place("cpu", "cpu")? {
                Place::V1(h) => {
                    if let Some(p) = rt_period {
                        b.write(h, "cpu.rt_period_us", p.to_string(), "cpu.realtimePeriod");
                    }
                    if let Some(r) = rt_runtime {
                        b.write(h, "cpu.rt_runtime_us", r.to_string(), "cpu.realtimeRuntime");
                    }
                    if let Some(s) = shares {
                        b.write(h, "cpu.shares", s.to_string(), "cpu.shares");
                    }
                    if let Some(p) = period {
                        b.write(h, "cpu.cfs_period_us", p.to_string(), "cpu.period");
                    }
                    if let Some(q) = quota {
                        b.write(h, "cpu.cfs_quota_us", q.to_string(), "cpu.quota");
                    }
                    if let Some(v) = cpu.burst() {
                        b.write(h, "cpu.cfs_burst_us", v.to_string(), "cpu.burst");
                    }
                    if let Some(i) = cpu.idle() {
                        b.write(h, "cpu.idle", i.to_string(), "cpu.idle");
                    }
                }
                Place::V2(h) => {
                    if let Some(s) = shares {
                        let w = shares_to_weight(s);
                        b.write(h, "cpu.weight", w.to_string(), "cpu.shares");
                    }
                    // cpu.max is "QUOTA [PERIOD]": a period alone keeps the quota (`update`
                    // fills the current one in).
                    match (quota, period) {
                        (Some(q), Some(p)) if q > 0 => {
                            b.write(h, "cpu.max", format!("{q} {p}"), "cpu.quota")
                        }
                        (Some(q), None) if q > 0 => {
                            b.write(h, "cpu.max", q.to_string(), "cpu.quota")
                        }
                        (Some(_), Some(p)) => {
                            b.write(h, "cpu.max", format!("max {p}"), "cpu.quota")
                        }
                        (Some(_), None) => b.write(h, "cpu.max", "max".into(), "cpu.quota"),
                        (None, Some(p)) => {
                            b.write(h, "cpu.max", format!("<keep> {p}"), "cpu.period")
                        }
                        (None, None) => {}
                    }
                    if let Some(v) = cpu.burst() {
                        b.write(h, "cpu.max.burst", v.to_string(), "cpu.burst");
                    }
                    if let Some(i) = cpu.idle() {
                        b.write(h, "cpu.idle", i.to_string(), "cpu.idle");
                    }
                    if rt_period.is_some() || rt_runtime.is_some() {
                        b.ignored("cpu.realtimeRuntime", "cgroup v2 has no realtime budget");
                    }
                }
            }
        }
    }
    if let Some(p) = res.pids() {
        let (Place::V1(h) | Place::V2(h)) = b.place("pids", "pids.limit")?;
        // Spec 1.3 and runc 1.4: -1 (any negative) is no limit, 0 is a limit of 0.
        let v = match p.limit() {
            n if n < 0 => "max".into(),
            n => n.to_string(),
        };
        b.write(h, "pids.max", v, "pids.limit");
    }
    if let Some(io) = res.block_io() {
        block_io(&mut b, io)?;
    }
    for (i, l) in res.hugepage_limits().iter().flatten().enumerate() {
        let field = format!("hugepageLimits[{i}]");
        check_page_size(&b.field(&format!("{field}.pageSize")), l.page_size())?;
        let size = l.page_size();
        match b.place("hugetlb", &field)? {
            Place::V1(h) => {
                b.write(
                    h,
                    &format!("hugetlb.{size}.limit_in_bytes"),
                    l.limit().to_string(),
                    &field,
                );
                b.write(
                    h,
                    &format!("hugetlb.{size}.rsvd.limit_in_bytes"),
                    l.limit().to_string(),
                    &field,
                );
            }
            Place::V2(h) => {
                b.write(h, &format!("hugetlb.{size}.max"), v2_num(l.limit()), &field);
                b.write(
                    h,
                    &format!("hugetlb.{size}.rsvd.max"),
                    v2_num(l.limit()),
                    &field,
                );
            }
        }
    }
    if let Some(n) = res.network() {
        if let Some(c) = n.class_id() {
            match b.place("net_cls", "network.classID") {
                Ok(Place::V1(h)) => b.write(h, "net_cls.classid", c.to_string(), "network.classID"),
                _ if v2_only => b.ignored("network.classID", "cgroup v2 has no net_cls"),
                Ok(Place::V2(_)) => {}
                Err(e) => return Err(e),
            }
        }
        for (i, p) in n.priorities().iter().flatten().enumerate() {
            let field = format!("network.priorities[{i}]");
            if p.name().is_empty() || p.name().contains(char::is_whitespace) {
                return err(
                    b.field(&format!("{field}.name")),
                    "must be an interface name",
                );
            }
            match b.place("net_prio", &field) {
                Ok(Place::V1(h)) => b.write(
                    h,
                    "net_prio.ifpriomap",
                    format!("{} {}", p.name(), p.priority()),
                    &field,
                ),
                _ if v2_only => b.ignored(&field, "cgroup v2 has no net_prio"),
                Ok(Place::V2(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    if let Some(rdma) = res.rdma() {
        let mut devs: Vec<_> = rdma.iter().collect();
        devs.sort_by(|a, b| a.0.cmp(b.0));
        for (dev, r) in devs {
            let field = format!("rdma.{dev}");
            if dev.is_empty() || dev.contains(char::is_whitespace) {
                return err(b.field(&field), "must be a device name");
            }
            let mut v = dev.clone();
            if let Some(h) = r.hca_handles() {
                v.push_str(&format!(" hca_handle={h}"));
            }
            if let Some(o) = r.hca_objects() {
                v.push_str(&format!(" hca_object={o}"));
            }
            let (Place::V1(h) | Place::V2(h)) = b.place("rdma", &field)?;
            b.write(h, "rdma.max", v, &field);
        }
    }
    if let Some(u) = res.unified() {
        let Some(h) = b.unified() else {
            return err(b.field("unified"), "the host has no cgroup2 hierarchy");
        };
        let mut keys: Vec<_> = u.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in keys {
            let field = format!("unified.{k}");
            let Some((controller, _)) = k.split_once('.') else {
                return err(b.field(&field), "is not a cgroup2 file name");
            };
            if k.contains('/')
                || k.starts_with('.')
                || matches!(
                    k.as_str(),
                    "cgroup.procs"
                        | "cgroup.threads"
                        | "cgroup.subtree_control"
                        | "cgroup.kill"
                        | "cgroup.freeze"
                )
            {
                return err(b.field(&field), "is not a file ferrun may set");
            }
            if controller != "cgroup" && !layout.on_v2(controller) {
                return err(
                    b.field(&field),
                    format!("the host's cgroup2 hierarchy has no {controller} controller"),
                );
            }
            if controller != "cgroup" && !b.out.v2_controllers.iter().any(|c| c == controller) {
                b.out.v2_controllers.push(controller.into());
            }
            b.write(h, k, v.clone(), &field);
        }
    }
    Ok(b.out)
}

fn memory(b: &mut Builder<'_>, m: &oci_spec::runtime::LinuxMemory) -> Result<(), PlanError> {
    for (v, f) in [
        (m.limit(), "memory.limit"),
        (m.reservation(), "memory.reservation"),
        (m.swap(), "memory.swap"),
        (m.kernel(), "memory.kernel"),
        (m.kernel_tcp(), "memory.kernelTCP"),
    ] {
        if let Some(v) = v
            && v < -1
        {
            return err(b.field(f), format!("{v} is negative (-1 means no limit)"));
        }
    }
    if let Some(s) = m.swappiness()
        && s > 100
    {
        return err(b.field("memory.swappiness"), format!("{s} is above 100"));
    }
    if let (Some(l), Some(s)) = (m.limit(), m.swap())
        && l > 0
        && s > 0
        && s < l
    {
        return err(
            b.field("memory.swap"),
            format!("{s} is below memory.limit {l} (swap counts memory plus swap)"),
        );
    }
    let any = m.limit().is_some()
        || m.reservation().is_some_and(|r| r != 0)
        || m.swap().is_some()
        || m.kernel().is_some()
        || m.kernel_tcp().is_some()
        || m.swappiness().is_some()
        || m.disable_oom_killer().is_some()
        || m.use_hierarchy().is_some();
    if !any {
        return Ok(());
    }
    match b.place("memory", "memory")? {
        Place::V1(h) => {
            if let Some(l) = m.limit().filter(|l| *l != 0) {
                b.write(h, "memory.limit_in_bytes", l.to_string(), "memory.limit");
            }
            if let Some(s) = m.swap().filter(|s| *s != 0) {
                b.write(
                    h,
                    "memory.memsw.limit_in_bytes",
                    s.to_string(),
                    "memory.swap",
                );
            }
            if let Some(r) = m.reservation().filter(|r| *r != 0) {
                b.write(
                    h,
                    "memory.soft_limit_in_bytes",
                    r.to_string(),
                    "memory.reservation",
                );
            }
            if m.kernel().is_some() || m.kernel_tcp().is_some() {
                // Deprecated by the kernel (refused or gone since 5.16), ignored by runc.
                b.ignored(
                    "memory.kernel",
                    "kernel memory limits are deprecated by Linux",
                );
            }
            if let Some(s) = m.swappiness() {
                b.write(h, "memory.swappiness", s.to_string(), "memory.swappiness");
            }
            if m.disable_oom_killer() == Some(true) {
                b.write(
                    h,
                    "memory.oom_control",
                    "1".into(),
                    "memory.disableOOMKiller",
                );
            }
            // Kernels since 5.x only accept 1 (hierarchy is always on); 0 is refused there.
            if let Some(u) = m.use_hierarchy() {
                b.write(
                    h,
                    "memory.use_hierarchy",
                    u8::from(u).to_string(),
                    "memory.useHierarchy",
                );
            }
        }
        Place::V2(h) => {
            // runc's conversion: memory+swap → swap alone; 0 is unset, -1 unlimited.
            let mem = m.limit().unwrap_or(0);
            let swap = m.swap().unwrap_or(0);
            let v = match (mem, swap) {
                (-1, 0) if m.limit().is_some() => Some("max".to_string()),
                (_, -1) => Some("max".to_string()),
                (_, 0) => None,
                (-1, s) => Some(s.to_string()),
                (0, _) => {
                    return err(
                        b.field("memory.swap"),
                        "needs memory.limit: cgroup v2 limits swap apart from memory",
                    );
                }
                (l, s) => Some((s - l).to_string()),
            };
            if let Some(v) = v {
                b.write(h, "memory.swap.max", v, "memory.swap");
            }
            if let Some(l) = m.limit().filter(|l| *l != 0) {
                b.write(h, "memory.max", v2_num(l), "memory.limit");
            }
            if let Some(r) = m.reservation().filter(|r| *r != 0) {
                b.write(h, "memory.low", v2_num(r), "memory.reservation");
            }
            if m.kernel().is_some() || m.kernel_tcp().is_some() {
                b.ignored("memory.kernel", "cgroup v2 has no kernel memory limit");
            }
            if m.swappiness().is_some() {
                b.ignored("memory.swappiness", "cgroup v2 has no swappiness");
            }
            if m.disable_oom_killer() == Some(true) {
                b.ignored(
                    "memory.disableOOMKiller",
                    "cgroup v2 cannot disable the OOM killer",
                );
            }
        }
    }
    Ok(())
}

fn block_io(b: &mut Builder<'_>, io: &oci_spec::runtime::LinuxBlockIo) -> Result<(), PlanError> {
    for (w, f) in [
        (io.weight(), "blockIO.weight"),
        (io.leaf_weight(), "blockIO.leafWeight"),
    ] {
        if let Some(w) = w
            && w != 0
            && !(10..=1000).contains(&w)
        {
            return err(b.field(f), format!("{w} is outside 10..1000"));
        }
    }
    let throttles = [
        (
            io.throttle_read_bps_device(),
            "throttleReadBpsDevice",
            "read_bps_device",
            "rbps",
        ),
        (
            io.throttle_write_bps_device(),
            "throttleWriteBpsDevice",
            "write_bps_device",
            "wbps",
        ),
        (
            io.throttle_read_iops_device(),
            "throttleReadIOPSDevice",
            "read_iops_device",
            "riops",
        ),
        (
            io.throttle_write_iops_device(),
            "throttleWriteIOPSDevice",
            "write_iops_device",
            "wiops",
        ),
    ];
    let weights = io.weight_device().clone().unwrap_or_default();
    let any = io.weight().is_some_and(|w| w != 0)
        || io.leaf_weight().is_some_and(|w| w != 0)
        || !weights.is_empty()
        || throttles
            .iter()
            .any(|t| t.0.as_ref().is_some_and(|v| !v.is_empty()));
    if !any {
        return Ok(());
    }
    let place = match b.place("blkio", "blockIO") {
        Ok(p) => p,
        Err(_) => b.place("io", "blockIO")?,
    };
    for (i, d) in weights.iter().enumerate() {
        let field = format!("blockIO.weightDevice[{i}]");
        check_dev(&b.field(&field), d.major(), d.minor())?;
        if let Some(w) = d.weight()
            && !(10..=1000).contains(&w)
        {
            return err(
                b.field(&format!("{field}.weight")),
                format!("{w} is outside 10..1000"),
            );
        }
    }
    match place {
        Place::V1(h) => {
            if let Some(w) = io.weight().filter(|w| *w != 0) {
                b.write(h, "blkio.weight", w.to_string(), "blockIO.weight");
            }
            if let Some(w) = io.leaf_weight().filter(|w| *w != 0) {
                b.write(h, "blkio.leaf_weight", w.to_string(), "blockIO.leafWeight");
            }
            for (i, d) in weights.iter().enumerate() {
                let field = format!("blockIO.weightDevice[{i}]");
                if let Some(w) = d.weight() {
                    b.write(
                        h,
                        "blkio.weight_device",
                        format!("{}:{} {w}", d.major(), d.minor()),
                        &field,
                    );
                }
                if let Some(w) = d.leaf_weight() {
                    b.write(
                        h,
                        "blkio.leaf_weight_device",
                        format!("{}:{} {w}", d.major(), d.minor()),
                        &field,
                    );
                }
            }
            for (list, name, file, _) in &throttles {
                for (i, d) in list.iter().flatten().enumerate() {
                    let field = format!("blockIO.{name}[{i}]");
                    check_dev(&b.field(&field), d.major(), d.minor())?;
                    b.write(
                        h,
                        &format!("blkio.throttle.{file}"),
                        format!("{}:{} {}", d.major(), d.minor(), d.rate()),
                        &field,
                    );
                }
            }
        }
        Place::V2(h) => {
            if let Some(w) = io.weight().filter(|w| *w != 0) {
                b.write(
                    h,
                    "io.weight",
                    format!("default {}", blkio_to_io_weight(w)),
                    "blockIO.weight",
                );
            }
            if io.leaf_weight().is_some_and(|w| w != 0) {
                b.ignored("blockIO.leafWeight", "cgroup v2 has no leaf weight");
            }
            for (i, d) in weights.iter().enumerate() {
                let field = format!("blockIO.weightDevice[{i}]");
                if let Some(w) = d.weight() {
                    b.write(
                        h,
                        "io.weight",
                        format!("{}:{} {}", d.major(), d.minor(), blkio_to_io_weight(w)),
                        &field,
                    );
                }
            }
            for (list, name, _, key) in &throttles {
                for (i, d) in list.iter().flatten().enumerate() {
                    let field = format!("blockIO.{name}[{i}]");
                    check_dev(&b.field(&field), d.major(), d.minor())?;
                    b.write(
                        h,
                        "io.max",
                        format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()),
                        &field,
                    );
                }
            }
        }
    }
    Ok(())
}

/// Parses a `linux.resources` object (what `ferrun update --resources` reads), naming the
/// field that does not parse.
pub fn parse_resources(json: &[u8], what: &str) -> Result<LinuxResources, PlanError> {
    let mut value: serde_json::Value = serde_json::from_slice(json).map_err(|e| PlanError {
        field: what.to_string(),
        problem: format!("invalid JSON: {e}"),
    })?;
    crate::drop_pids_without_limit(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            what.to_string()
        } else {
            format!("{what}.{path}")
        };
        PlanError {
            field,
            problem: e.into_inner().to_string(),
        }
    })
}

/// Checks `linux.cgroupsPath` and turns it into a [`CgroupPath`]. With `systemd`, the
/// `slice:prefix:name` form is mapped to the cgroupfs path systemd gives that unit.
pub fn cgroup_path(path: Option<&str>, systemd: bool) -> Result<CgroupPath, PlanError> {
    let field = "linux.cgroupsPath";
    let Some(raw) = path.filter(|p| !p.is_empty()) else {
        return Ok(CgroupPath::Default);
    };
    if raw.bytes().any(|c| c == 0 || c.is_ascii_control()) {
        return err(field, "must not contain control characters");
    }
    let raw = if systemd {
        let (slice, unit) = systemd_unit(raw)?;
        let expanded = expand_slice(&slice).unwrap_or_default();
        format!("{expanded}/{unit}")
    } else {
        raw.to_string()
    };
    let parts: Vec<&str> = raw
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.contains(&"..") {
        return err(field, format!("{raw:?} must not contain .."));
    }
    if parts.is_empty() {
        return err(
            field,
            format!("{raw:?} names the root cgroup, which is not the container's to manage"),
        );
    }
    let clean = parts.join("/");
    Ok(if raw.starts_with('/') {
        CgroupPath::Absolute(format!("/{clean}"))
    } else {
        CgroupPath::Relative(clean)
    })
}

/// `slice:prefix:name` → the slice and the unit systemd makes: `<prefix>-<name>.scope` (or
/// `<name>` when it is itself a slice). Its cgroup is `/<expanded slice>/<unit>`.
pub fn systemd_unit(raw: &str) -> Result<(String, String), PlanError> {
    let field = "linux.cgroupsPath";
    let parts: Vec<&str> = raw.split(':').collect();
    let [slice, prefix, name] = parts.as_slice() else {
        return err(
            field,
            format!("{raw:?}: --systemd-cgroup wants the form slice:prefix:name"),
        );
    };
    if name.is_empty() {
        return err(field, format!("{raw:?}: the name part is empty"));
    }
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    if expand_slice(slice).is_none() {
        return err(
            field,
            format!("{slice:?} is not a systemd slice name (like machine-foo.slice)"),
        );
    }
    let unit = if name.ends_with(".slice") {
        if expand_slice(name).is_none() {
            return err(field, format!("{name:?} is not a systemd slice name"));
        }
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    // systemd's unit name rules: a refusal at StartTransientUnit would come too late. A name
    // systemd would escape in its cgroup (`cpu.scope` → `_cpu.scope`) is refused too: its
    // cgroup would not be where this path says.
    let expanded = expand_slice(slice).unwrap_or_default();
    for part in expanded.split('/').chain([unit.as_str()]) {
        if systemd_escapes(part) {
            return err(
                field,
                format!("{part:?}: systemd would rename its cgroup; choose another name"),
            );
        }
    }
    for name in [slice, unit.as_str()] {
        if name.len() > 255 {
            return err(
                field,
                format!("{name:?} is longer than systemd's 255 bytes"),
            );
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || ":_.-\\".contains(*c)))
        {
            return err(
                field,
                format!("{name:?}: systemd does not allow {c:?} in a unit name"),
            );
        }
    }
    Ok((slice.to_string(), unit))
}

/// True when systemd's `cg_escape` would prefix the cgroup name with `_`.
fn systemd_escapes(name: &str) -> bool {
    const CONTROLLERS: [&str; 15] = [
        "cpu",
        "cpuacct",
        "cpuset",
        "io",
        "blkio",
        "memory",
        "devices",
        "freezer",
        "net_cls",
        "perf_event",
        "net_prio",
        "hugetlb",
        "pids",
        "rdma",
        "misc",
    ];
    name.starts_with('_')
        || name.starts_with('.')
        || name.starts_with("cgroup.")
        || matches!(name, "notify_on_release" | "release_agent" | "tasks")
        || name
            .rsplit_once('.')
            .is_some_and(|(stem, _)| CONTROLLERS.contains(&stem))
}

/// `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice`; `-.slice` → the root.
fn expand_slice(slice: &str) -> Option<String> {
    let base = slice.strip_suffix(".slice")?;
    if slice.contains('/') {
        return None;
    }
    if base == "-" {
        return Some(String::new());
    }
    let mut out = String::new();
    let mut prefix = String::new();
    for comp in base.split('-') {
        if comp.is_empty() {
            return None;
        }
        out.push('/');
        out.push_str(&prefix);
        out.push_str(comp);
        out.push_str(".slice");
        prefix.push_str(comp);
        prefix.push('-');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_map_to_weights_like_runc() {
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 0);
        assert!(shares_to_weight(512) < 100 && shares_to_weight(2048) > 100);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
    }

    #[test]
    fn systemd_paths() {
        let p = |s| cgroup_path(Some(s), true);
        assert_eq!(
            p("machine-foo.slice:libpod:abc"),
            Ok(CgroupPath::Absolute(
                "/machine.slice/machine-foo.slice/libpod-abc.scope".into()
            ))
        );
        assert_eq!(
            p(":ferrun:x"),
            Ok(CgroupPath::Absolute("/system.slice/ferrun-x.scope".into()))
        );
        assert_eq!(
            p("-.slice:p:inner.slice"),
            Ok(CgroupPath::Absolute("/inner.slice".into()))
        );
        assert!(p("a--b.slice:p:x").is_err());
        assert!(p("/abs/path").is_err());
        // Names systemd would refuse at StartTransientUnit are refused at planning.
        let e = p("machine.slice:ferrun:bad name").expect_err("space");
        assert!(e.to_string().contains("' '"), "{e}");
        let long = format!("machine.slice:p:{}", "x".repeat(260));
        assert!(cgroup_path(Some(&long), true).is_err());
        // A template or an escaped cgroup name would not be the scope this path names.
        assert!(p("machine.slice:p:x@").is_err());
        assert!(p("machine.slice::cpu").is_err());
        assert!(p("cpu.slice:p:x").is_err());
        assert!(p("machine.slice:libpod:0123456789abcdef").is_ok());
    }

    #[test]
    fn paths_are_checked() {
        assert_eq!(
            cgroup_path(Some("/a//b/./c/"), false),
            Ok(CgroupPath::Absolute("/a/b/c".into()))
        );
        assert_eq!(
            cgroup_path(Some("a/b"), false),
            Ok(CgroupPath::Relative("a/b".into()))
        );
        assert!(cgroup_path(Some("/a/../b"), false).is_err());
        assert!(cgroup_path(Some("/"), false).is_err());
        assert_eq!(cgroup_path(None, false), Ok(CgroupPath::Default));
    }
}
