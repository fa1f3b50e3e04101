//! `linux.resources.devices`: the v1 allow/deny writes, or the cgroup2 device program.
//!
//! At create, the list starts with an implicit deny-all (a container sees no device it was not
//! given, even with no rules in its config, as runc does), then the config's rules in order, then
//! the devices every container may use (null, zero, tty, pts, …), which therefore always win.
//! Rules read as v1 reads them: a rule for all devices (`a`) resets the default to allow or deny
//! everything, later rules carve exceptions. On cgroup2 the same list becomes a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program that tries the rules last to first: the last rule that
//! matches decides, and a request no rule matches is refused.

use super::Builder;
use crate::{PlanError, err};
use ferrun_plans::cgroups::{
    DEVCG_ACC_MKNOD, DEVCG_ACC_READ, DEVCG_ACC_WRITE, DEVCG_DEV_BLOCK, DEVCG_DEV_CHAR,
};
use oci_spec::runtime::{LinuxDeviceType, LinuxResources};

/// One device rule, normalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    /// `a`, `b` or `c`.
    pub kind: char,
    /// `None` is `*`.
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// `DEVCG_ACC_*` bits.
    pub access: u32,
}

const RWM: u32 = DEVCG_ACC_READ | DEVCG_ACC_WRITE | DEVCG_ACC_MKNOD;

/// The devices every container may use (runc's list): mknod of any node, the standard
/// character devices, pseudo-terminals and `/dev/net/tun`.
pub fn default_rules() -> Vec<DeviceRule> {
    let c = |major, minor: Option<u32>, access| DeviceRule {
        allow: true,
        kind: 'c',
        major,
        minor,
        access,
    };
    vec![
        c(None, None, DEVCG_ACC_MKNOD),
        DeviceRule {
            allow: true,
            kind: 'b',
            major: None,
            minor: None,
            access: DEVCG_ACC_MKNOD,
        },
        c(Some(1), Some(3), RWM),
        c(Some(1), Some(8), RWM),
        c(Some(1), Some(7), RWM),
        c(Some(5), Some(0), RWM),
        c(Some(1), Some(5), RWM),
        c(Some(1), Some(9), RWM),
        c(Some(136), None, RWM),
        c(Some(5), Some(2), RWM),
        c(Some(10), Some(200), RWM),
    ]
}

fn access_bits(field: &str, s: &str) -> Result<u32, PlanError> {
    let mut bits = 0;
    for ch in s.chars() {
        bits |= match ch {
            'r' => DEVCG_ACC_READ,
            'w' => DEVCG_ACC_WRITE,
            'm' => DEVCG_ACC_MKNOD,
            _ => return err(field, format!("{s:?}: access is made of r, w and m")),
        };
    }
    Ok(if bits == 0 { RWM } else { bits })
}

fn number(field: &str, n: Option<i64>) -> Result<Option<u32>, PlanError> {
    match n {
        None | Some(-1) => Ok(None),
        Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(Some(n as u32)),
        Some(n) => err(field, format!("{n} is not a device number (-1 means any)")),
    }
}

/// The config's rules, checked and normalised.
pub fn rules(res: &LinuxResources, prefix: &str) -> Result<Vec<DeviceRule>, PlanError> {
    let mut out = Vec::new();
    for (i, d) in res.devices().iter().flatten().enumerate() {
        let field = format!("{prefix}.devices[{i}]");
        let kind = match d.typ() {
            None | Some(LinuxDeviceType::A) => 'a',
            Some(LinuxDeviceType::B) => 'b',
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
            Some(LinuxDeviceType::P) => {
                return err(
                    format!("{field}.type"),
                    "\"p\" (a fifo) is not a device the cgroup rules know: use a, b or c",
                );
            }
        };
        out.push(DeviceRule {
            allow: d.allow(),
            kind,
            major: number(&format!("{field}.major"), d.major())?,
            minor: number(&format!("{field}.minor"), d.minor())?,
            access: access_bits(
                &format!("{field}.access"),
                d.access().as_deref().unwrap_or("rwm"),
            )?,
        });
    }
    Ok(out)
}

pub(super) fn plan(
    b: &mut Builder<'_>,
    res: &LinuxResources,
    with_defaults: bool,
) -> Result<(), PlanError> {
    if !with_defaults {
        // `update` leaves device rules alone, as runc does.
        return Ok(());
    }
    let mut list = vec![DeviceRule {
        allow: false,
        kind: 'a',
        major: None,
        minor: None,
        access: RWM,
    }];
    list.extend(rules(res, b.prefix)?);
    list.extend(default_rules());
    if let Some(i) = b.layout.v1_index("devices") {
        for (file, line) in v1_lines(&list) {
            b.write(i as u8, file, line, "devices");
        }
        return Ok(());
    }
    match b.unified() {
        Some(h) => {
            b.out.device_program = Some((h, device_program(&list)));
            Ok(())
        }
        None => err(
            b.field("devices"),
            "the host has neither a devices cgroup nor cgroup2 to enforce the rules with",
        ),
    }
}

/// The v1 writes: `devices.allow` / `devices.deny` lines such as `c 1:3 rwm` or `a`.
pub fn v1_lines(rules: &[DeviceRule]) -> Vec<(&'static str, String)> {
    rules
        .iter()
        .map(|r| {
            let file = if r.allow {
                "devices.allow"
            } else {
                "devices.deny"
            };
            if r.kind == 'a' {
                return (file, "a".to_string());
            }
            let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
            let mut acc = String::new();
            for (bit, ch) in [
                (DEVCG_ACC_READ, 'r'),
                (DEVCG_ACC_WRITE, 'w'),
                (DEVCG_ACC_MKNOD, 'm'),
            ] {
                if r.access & bit != 0 {
                    acc.push(ch);
                }
            }
            (
                file,
                format!("{} {}:{} {acc}", r.kind, num(r.major), num(r.minor)),
            )
        })
        .collect()
}

/// One `struct bpf_insn`.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = (src << 4) | (dst & 0xf);
    b[2..4].copy_from_slice(&off.to_le_bytes());
    b[4..].copy_from_slice(&imm.to_le_bytes());
    b
}

const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const MOV64_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// A `BPF_PROG_TYPE_CGROUP_DEVICE` program for `rules`: returns 1 (allow) or 0 (deny) for
/// `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`.
pub fn device_program(rules: &[DeviceRule]) -> Vec<u8> {
    let mut prog: Vec<[u8; 8]> = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND32_K, 2, 0, 0, 0xffff), // r2 = device type
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16), // r3 = requested access
        insn(LDX_W, 4, 1, 4, 0),    // r4 = major
        insn(LDX_W, 5, 1, 8, 0),    // r5 = minor
    ];
    for r in rules.iter().rev() {
        // Jumps hold a placeholder offset until the block's length is known.
        let mut block: Vec<([u8; 8], bool)> = Vec::new();
        if r.kind != 'a' {
            let t = if r.kind == 'b' {
                DEVCG_DEV_BLOCK
            } else {
                DEVCG_DEV_CHAR
            };
            block.push((insn(JNE_K, 2, 0, 0, t as i32), true));
            if let Some(m) = r.major {
                block.push((insn(JNE_K, 4, 0, 0, m as i32), true));
            }
            if let Some(m) = r.minor {
                block.push((insn(JNE_K, 5, 0, 0, m as i32), true));
            }
        }
        block.push((insn(MOV64_X, 1, 3, 0, 0), false));
        if r.allow {
            // Allowed only if every requested bit is in the rule's access.
            block.push((insn(AND32_K, 1, 0, 0, (!r.access & RWM) as i32), false));
            block.push((insn(JNE_K, 1, 0, 0, 0), true));
        } else {
            // Denied if any requested bit is in the rule's access.
            block.push((insn(AND32_K, 1, 0, 0, r.access as i32), false));
            block.push((insn(JEQ_K, 1, 0, 0, 0), true));
        }
        block.push((insn(MOV64_K, 0, 0, 0, i32::from(r.allow)), false));
        block.push((insn(EXIT, 0, 0, 0, 0), false));
        let n = block.len();
        for (j, (ins, jump)) in block.iter_mut().enumerate() {
            if *jump {
                ins[2..4].copy_from_slice(&((n - j - 1) as i16).to_le_bytes());
            }
        }
        prog.extend(block.into_iter().map(|(i, _)| i));
    }
    // No rule matched: refused (the list starts from deny-all).
    prog.push(insn(MOV64_K, 0, 0, 0, 0));
    prog.push(insn(EXIT, 0, 0, 0, 0));
    prog.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program the way the kernel would, on one request.
    fn eval(prog: &[u8], kind: u32, access: u32, major: u32, minor: u32) -> u64 {
        let mut r = [0u64; 11];
        let ctx = [(access << 16) | kind, major, minor];
        let mut pc = 0usize;
        loop {
            let i = &prog[pc * 8..pc * 8 + 8];
            let (code, dst, src) = (i[0], usize::from(i[1] & 0xf), usize::from(i[1] >> 4));
            let off = i16::from_le_bytes([i[2], i[3]]) as isize;
            let imm = i32::from_le_bytes([i[4], i[5], i[6], i[7]]) as i64 as u64;
            pc += 1;
            match code {
                LDX_W => r[dst] = u64::from(ctx[(off as usize) / 4]),
                AND32_K => r[dst] = (r[dst] & imm) & 0xffff_ffff,
                RSH32_K => r[dst] = (r[dst] & 0xffff_ffff) >> imm,
                MOV64_X => r[dst] = r[src],
                MOV64_K => r[dst] = imm,
                JNE_K if r[dst] != imm => pc = (pc as isize + off) as usize,
                JEQ_K if r[dst] == imm => pc = (pc as isize + off) as usize,
                JNE_K | JEQ_K => {}
                EXIT => return r[0],
                _ => panic!("unknown opcode {code:#x}"),
            }
        }
    }

    fn rule(allow: bool, kind: char, major: Option<u32>, minor: Option<u32>, a: u32) -> DeviceRule {
        DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: a,
        }
    }

    #[test]
    fn deny_all_then_defaults() {
        let mut list = vec![rule(false, 'a', None, None, RWM)];
        list.extend(default_rules());
        let p = device_program(&list);
        let c = DEVCG_DEV_CHAR;
        assert_eq!(
            eval(&p, c, DEVCG_ACC_READ | DEVCG_ACC_WRITE, 1, 3),
            1,
            "/dev/null"
        );
        assert_eq!(eval(&p, c, DEVCG_ACC_READ, 136, 7), 1, "a pts");
        assert_eq!(eval(&p, c, DEVCG_ACC_READ, 1, 11), 0, "/dev/kmsg");
        assert_eq!(
            eval(&p, DEVCG_DEV_BLOCK, DEVCG_ACC_READ, 8, 0),
            0,
            "/dev/sda"
        );
        assert_eq!(eval(&p, DEVCG_DEV_BLOCK, DEVCG_ACC_MKNOD, 8, 0), 1, "mknod");
    }

    #[test]
    fn partial_access_and_order() {
        let list = vec![
            rule(false, 'a', None, None, RWM),
            rule(true, 'c', Some(1), Some(11), DEVCG_ACC_READ),
        ];
        let p = device_program(&list);
        let c = DEVCG_DEV_CHAR;
        assert_eq!(eval(&p, c, DEVCG_ACC_READ, 1, 11), 1);
        assert_eq!(eval(&p, c, DEVCG_ACC_READ | DEVCG_ACC_WRITE, 1, 11), 0);
        // Allow all, then deny writes to one device.
        let list = vec![
            rule(true, 'a', None, None, RWM),
            rule(false, 'c', Some(1), Some(3), DEVCG_ACC_WRITE),
        ];
        let p = device_program(&list);
        assert_eq!(eval(&p, c, DEVCG_ACC_READ, 1, 3), 1);
        assert_eq!(eval(&p, c, DEVCG_ACC_READ | DEVCG_ACC_WRITE, 1, 3), 0);
        assert_eq!(eval(&p, DEVCG_DEV_BLOCK, RWM, 8, 0), 1);
    }

    #[test]
    fn v1_lines_read_like_the_kernel_wants() {
        let mut list = vec![rule(false, 'a', None, None, RWM)];
        list.extend(default_rules().into_iter().take(3));
        assert_eq!(
            v1_lines(&list),
            vec![
                ("devices.deny", "a".to_string()),
                ("devices.allow", "c *:* m".to_string()),
                ("devices.allow", "b *:* m".to_string()),
                ("devices.allow", "c 1:3 rwm".to_string()),
            ]
        );
    }
}
