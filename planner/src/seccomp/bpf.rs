//! Classic BPF for seccomp: instructions, an assembler with labels that turns out-of-range
//! conditional jumps into `ja` trampolines, a disassembler, and an interpreter (used by
//! `ferrun seccomp check` and the tests to evaluate a compiled filter).

use std::fmt;

/// One `struct sock_filter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

pub const LD_W_ABS: u16 = 0x20;
pub const ALU_AND_K: u16 = 0x54;
pub const JMP_JA: u16 = 0x05;
pub const JMP_JEQ_K: u16 = 0x15;
pub const JMP_JGT_K: u16 = 0x25;
pub const JMP_JGE_K: u16 = 0x35;
pub const RET_K: u16 = 0x06;

/// `struct seccomp_data` offsets.
pub const OFF_NR: u32 = 0;
pub const OFF_ARCH: u32 = 4;
pub fn off_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}
pub fn off_arg_hi(i: u32) -> u32 {
    16 + 8 * i + 4
}

/// Serializes a program as the kernel reads it (little-endian `sock_filter`s).
pub fn to_bytes(prog: &[Insn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prog.len() * 8);
    for i in prog {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}

/// Parses the kernel form back; `None` when the length is not a multiple of 8.
pub fn from_bytes(bytes: &[u8]) -> Option<Vec<Insn>> {
    if !bytes.len().is_multiple_of(8) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|c| Insn {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

pub type Label = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    Eq,
    Gt,
    Ge,
}

#[derive(Clone, Debug)]
enum Op {
    Ld(u32),
    And(u32),
    Ret(u32),
    Jmp {
        cond: Cond,
        k: u32,
        t: Label,
        f: Label,
    },
    Ja(Label),
    Here(Label),
}

/// Builds a program with symbolic jumps.
#[derive(Default)]
pub struct Asm {
    ops: Vec<Op>,
    labels: usize,
}

impl Asm {
    pub fn label(&mut self) -> Label {
        self.labels += 1;
        self.labels - 1
    }
    pub fn here(&mut self, l: Label) {
        self.ops.push(Op::Here(l));
    }
    pub fn ld(&mut self, off: u32) {
        self.ops.push(Op::Ld(off));
    }
    pub fn and(&mut self, k: u32) {
        self.ops.push(Op::And(k));
    }
    pub fn ret(&mut self, k: u32) {
        self.ops.push(Op::Ret(k));
    }
    pub fn jmp(&mut self, cond: Cond, k: u32, t: Label, f: Label) {
        self.ops.push(Op::Jmp { cond, k, t, f });
    }
    pub fn ja(&mut self, l: Label) {
        self.ops.push(Op::Ja(l));
    }

    /// Resolves labels. A conditional jump can reach 255 instructions ahead; a farther target is
    /// reached through a `ja` placed right after the jump.
    /// The program, and the position of every label.
    pub fn finish(mut self) -> Result<(Vec<Insn>, Vec<usize>), String> {
        loop {
            let mut pos = vec![usize::MAX; self.labels];
            let mut pc = 0;
            for op in &self.ops {
                match op {
                    Op::Here(l) => pos[*l] = pc,
                    _ => pc += 1,
                }
            }
            let mut out = Vec::with_capacity(pc);
            let mut far: Option<usize> = None;
            let mut pc = 0usize;
            for (idx, op) in self.ops.iter().enumerate() {
                let insn = match *op {
                    Op::Here(_) => continue,
                    Op::Ld(k) => Insn {
                        code: LD_W_ABS,
                        jt: 0,
                        jf: 0,
                        k,
                    },
                    Op::And(k) => Insn {
                        code: ALU_AND_K,
                        jt: 0,
                        jf: 0,
                        k,
                    },
                    Op::Ret(k) => Insn {
                        code: RET_K,
                        jt: 0,
                        jf: 0,
                        k,
                    },
                    Op::Ja(l) => {
                        let target = pos[l];
                        if target == usize::MAX || target <= pc {
                            return Err(format!("bad jump to label {l}"));
                        }
                        Insn {
                            code: JMP_JA,
                            jt: 0,
                            jf: 0,
                            k: (target - pc - 1) as u32,
                        }
                    }
                    Op::Jmp { cond, k, t, f } => {
                        let (tp, fp) = (pos[t], pos[f]);
                        if tp == usize::MAX || fp == usize::MAX || tp <= pc || fp <= pc {
                            return Err(format!("bad jump to label {t} or {f}"));
                        }
                        let (dt, df) = (tp - pc - 1, fp - pc - 1);
                        if dt > 255 || df > 255 {
                            far = Some(idx);
                            break;
                        }
                        let code = match cond {
                            Cond::Eq => JMP_JEQ_K,
                            Cond::Gt => JMP_JGT_K,
                            Cond::Ge => JMP_JGE_K,
                        };
                        Insn {
                            code,
                            jt: dt as u8,
                            jf: df as u8,
                            k,
                        }
                    }
                };
                out.push(insn);
                pc += 1;
            }
            match far {
                None => {
                    if out.len() > 4096 {
                        return Err(format!(
                            "{} instructions, the kernel takes at most 4096",
                            out.len()
                        ));
                    }
                    return Ok((out, pos));
                }
                Some(idx) => {
                    // jmp → (L1: ja t) / (L2: ja f): both sides 0 or 1 ahead, `ja` reaches anywhere.
                    let Op::Jmp { cond, k, t, f } = self.ops[idx] else {
                        return Err("internal: far jump is not a jump".into());
                    };
                    let (l1, l2) = (self.label(), self.label());
                    self.ops[idx] = Op::Jmp {
                        cond,
                        k,
                        t: l1,
                        f: l2,
                    };
                    self.ops.splice(
                        idx + 1..idx + 1,
                        [Op::Here(l1), Op::Ja(t), Op::Here(l2), Op::Ja(f)],
                    );
                }
            }
        }
    }
}

/// seccomp return actions.
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const RET_KILL_THREAD: u32 = 0x0000_0000;
pub const RET_TRAP: u32 = 0x0003_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const RET_TRACE: u32 = 0x7ff0_0000;
pub const RET_LOG: u32 = 0x7ffc_0000;
pub const RET_ALLOW: u32 = 0x7fff_0000;

/// `ERRNO(1)`, `ALLOW`, … for a return value.
pub fn action_name(k: u32) -> String {
    let data = k & 0xffff;
    match k & 0xffff_0000 {
        RET_KILL_PROCESS => "KILL_PROCESS".into(),
        RET_KILL_THREAD => "KILL_THREAD".into(),
        RET_TRAP => "TRAP".into(),
        RET_ERRNO => format!("ERRNO({data})"),
        RET_USER_NOTIF => "NOTIFY".into(),
        RET_TRACE => format!("TRACE({data})"),
        RET_LOG => "LOG".into(),
        RET_ALLOW => "ALLOW".into(),
        _ => format!("{k:#x}"),
    }
}

/// `struct seccomp_data`, for the interpreter.
#[derive(Clone, Copy, Debug, Default)]
pub struct Data {
    pub nr: i32,
    pub arch: u32,
    pub ip: u64,
    pub args: [u64; 6],
}

impl Data {
    fn word(&self, off: u32) -> Option<u32> {
        Some(match off {
            0 => self.nr as u32,
            4 => self.arch,
            8 => self.ip as u32,
            12 => (self.ip >> 32) as u32,
            o if (16..64).contains(&o) && o % 4 == 0 => {
                let a = self.args[((o - 16) / 8) as usize];
                if (o - 16) % 8 == 0 {
                    a as u32
                } else {
                    (a >> 32) as u32
                }
            }
            _ => return None,
        })
    }
}

/// Runs a filter on `data` as the kernel would; `Err` for a program the kernel would refuse
/// (only the instructions our compiler emits are understood).
pub fn run(prog: &[Insn], data: &Data) -> Result<u32, String> {
    let mut a: u32 = 0;
    let mut pc = 0usize;
    while let Some(i) = prog.get(pc) {
        pc += 1;
        match i.code {
            LD_W_ABS => {
                a = data
                    .word(i.k)
                    .ok_or_else(|| format!("bad load offset {}", i.k))?
            }
            ALU_AND_K => a &= i.k,
            RET_K => return Ok(i.k),
            JMP_JA => pc += i.k as usize,
            JMP_JEQ_K | JMP_JGT_K | JMP_JGE_K => {
                let taken = match i.code {
                    JMP_JEQ_K => a == i.k,
                    JMP_JGT_K => a > i.k,
                    _ => a >= i.k,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            // The rest of classic BPF, as libseccomp emits it.
            0x00 => a = i.k, // ld #k
            0x45 => pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf }), // jset
            0x04 => a = a.wrapping_add(i.k), // add #k
            0x14 => a = a.wrapping_sub(i.k), // sub #k
            0x44 => a |= i.k, // or #k
            0x16 => return Ok(a), // ret a
            c => return Err(format!("instruction {c:#x} not understood")),
        }
    }
    Err("ran off the end of the program".into())
}

/// The checks the kernel makes on a classic program, for the instructions our compiler emits:
/// 1..=4096 instructions, known opcodes, aligned loads inside `seccomp_data`, every jump inside
/// the program, and a `ret` at the end.
pub fn validate(prog: &[Insn]) -> bool {
    if prog.is_empty() || prog.len() > 4096 || prog.last().map(|i| i.code) != Some(RET_K) {
        return false;
    }
    prog.iter().enumerate().all(|(pc, i)| {
        let inside = |off: usize| pc + 1 + off < prog.len();
        match i.code {
            LD_W_ABS => i.k % 4 == 0 && i.k < 64,
            ALU_AND_K | RET_K => true,
            JMP_JA => inside(i.k as usize),
            JMP_JEQ_K | JMP_JGT_K | JMP_JGE_K => {
                inside(usize::from(i.jt)) && inside(usize::from(i.jf))
            }
            _ => false,
        }
    })
}

/// One line per instruction.
pub struct Disasm<'a>(pub &'a [Insn]);

impl fmt::Display for Disasm<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (pc, i) in self.0.iter().enumerate() {
            let t = pc + 1 + usize::from(i.jt);
            let e = pc + 1 + usize::from(i.jf);
            match i.code {
                LD_W_ABS => {
                    let what = match i.k {
                        0 => "nr".to_string(),
                        4 => "arch".to_string(),
                        o if o >= 16 => format!(
                            "args[{}].{}",
                            (o - 16) / 8,
                            if (o - 16) % 8 == 0 { "lo" } else { "hi" }
                        ),
                        o => format!("[{o}]"),
                    };
                    writeln!(f, "{pc:4}  ld   {what}")?
                }
                ALU_AND_K => writeln!(f, "{pc:4}  and  {:#x}", i.k)?,
                RET_K => writeln!(f, "{pc:4}  ret  {}", action_name(i.k))?,
                JMP_JA => writeln!(f, "{pc:4}  ja   {}", pc + 1 + i.k as usize)?,
                JMP_JEQ_K => writeln!(f, "{pc:4}  jeq  {:#x} ? {t} : {e}", i.k)?,
                JMP_JGT_K => writeln!(f, "{pc:4}  jgt  {:#x} ? {t} : {e}", i.k)?,
                JMP_JGE_K => writeln!(f, "{pc:4}  jge  {:#x} ? {t} : {e}", i.k)?,
                c => writeln!(f, "{pc:4}  op {c:#x} {} {} {:#x}", i.jt, i.jf, i.k)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_refuses_what_the_kernel_refuses() {
        let ret = Insn {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: RET_ALLOW,
        };
        let ld = |k| Insn {
            code: LD_W_ABS,
            jt: 0,
            jf: 0,
            k,
        };
        assert!(validate(&[ld(0), ret]));
        assert!(!validate(&[]), "empty");
        assert!(!validate(&[ld(0)]), "no ret at the end");
        assert!(!validate(&[ld(2), ret]), "unaligned load");
        assert!(!validate(&[ld(64), ret]), "load past seccomp_data");
        assert!(
            !validate(&[
                Insn {
                    code: JMP_JA,
                    jt: 0,
                    jf: 0,
                    k: 5
                },
                ret
            ]),
            "jump out"
        );
        assert!(
            !validate(&[
                Insn {
                    code: JMP_JEQ_K,
                    jt: 0,
                    jf: 1,
                    k: 0
                },
                ret
            ]),
            "jf out"
        );
        assert!(
            !validate(&[
                Insn {
                    code: 0x99,
                    jt: 0,
                    jf: 0,
                    k: 0
                },
                ret
            ]),
            "unknown opcode"
        );
        assert!(!validate(&vec![ret; 4097]), "too long");
        // A decoded all-zero payload (ld #0 … with no ret) is refused.
        assert!(!validate(&from_bytes(&[0u8; 64]).expect("whole")));
    }
}
