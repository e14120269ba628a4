//! The pod's device cgroup: its processes may open (and make) only the standard devices
//! stage1 gives every app, plus those the pod was given on purpose (`--device`, a host
//! volume that is a device node, Nomad's `devices`).
//!
//! On cgroup v1 that is the devices controller's `devices.deny` and `devices.allow` files. On
//! v2 there are no such files: the kernel asks a `BPF_PROG_TYPE_CGROUP_DEVICE` program
//! attached to the cgroup, for every open and mknod of a device node. The program is written
//! here instruction by instruction (a dozen instructions per rule) and loaded with bpf(2),
//! so that stage1 stays libc-only. The facts it rests on (the context's layout, the access
//! and type bits, the command and attach numbers) are the kernel's UAPI,
//! `include/uapi/linux/bpf.h`.

use crate::error::{Error, Result};
use layout::plan::DeviceRule;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// What every pod may use: the devices of its /dev (see mounts.rs) and its terminals, as
/// rkt's stage1 allowed them. Nothing may be made with mknod.
pub fn standard() -> Vec<DeviceRule> {
    let c = |major, minor: Option<u32>| DeviceRule {
        kind: 'c',
        major,
        minor,
        access: "rw".into(),
    };
    vec![
        c(1, Some(3)), // /dev/null
        c(1, Some(5)), // /dev/zero
        c(1, Some(7)), // /dev/full
        c(1, Some(8)), // /dev/random
        c(1, Some(9)), // /dev/urandom
        c(5, Some(0)), // /dev/tty
        c(5, Some(2)), // /dev/ptmx (the host's; the pod's own is /dev/pts/ptmx below)
        c(136, None),  // /dev/pts/*, the pod's terminals
    ]
}

/// v1: everything denied, then each rule allowed, in `dir` of the devices hierarchy (before
/// any process joins it or any child is made, which inherit its list).
pub fn apply_v1(dir: &std::path::Path, rules: &[DeviceRule]) -> Result<()> {
    crate::cgroup::write(&dir.join("devices.deny"), "a")?;
    for r in rules {
        crate::cgroup::write(&dir.join("devices.allow"), &r.to_line())?;
    }
    Ok(())
}

/// v2: loads the program for `rules` and attaches it to the cgroup directory `dir`. The
/// attachment keeps the program alive for the cgroup's life; no descendant may attach one
/// of its own (no BPF_F_ALLOW_* flag), so nothing in the pod can widen it.
pub fn apply_v2(dir: &std::path::Path, rules: &[DeviceRule]) -> Result<()> {
    let prog = load(&program(rules)).map_err(|e| e.context("the pod's device filter"))?;
    let cgroup = crate::sys::open_dir(dir)?;
    attach(&cgroup, &prog).map_err(|e| Error::at("attaching the pod's device filter to", dir, e))
}

// The context the kernel passes (struct bpf_cgroup_dev_ctx): access_type (the access bits
// shifted left 16, or'ed with the device type), major, minor; each a u32.
const CTX_ACCESS_TYPE: i16 = 0;
const CTX_MAJOR: i16 = 4;
const CTX_MINOR: i16 = 8;
// BPF_DEVCG_DEV_*, BPF_DEVCG_ACC_*.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    /// dst in the low nibble, src in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

// Opcodes: class | operation | source.
const LDX_MEM_W: u8 = 0x01 | 0x60; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x04 | 0x50; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x04 | 0x70; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_X: u8 = 0x04 | 0xb0 | 0x08; // BPF_ALU | BPF_MOV | BPF_X
const ALU64_MOV_K: u8 = 0x07 | 0xb0; // BPF_ALU64 | BPF_MOV | BPF_K
const JMP_JNE_K: u8 = 0x05 | 0x50; // BPF_JMP | BPF_JNE | BPF_K
const JMP_EXIT: u8 = 0x05 | 0x90; // BPF_JMP | BPF_EXIT

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// The filter: r2 = device type, r3 = requested access, r4 = major, r5 = minor; each rule a
/// block that jumps to the next one on any mismatch and returns 1 (allow) when all match;
/// 0 (deny, EPERM to the caller) after the last.
pub fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, CTX_ACCESS_TYPE, 0),
        insn(ALU32_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, CTX_ACCESS_TYPE, 0),
        insn(ALU32_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, CTX_MAJOR, 0),
        insn(LDX_MEM_W, 5, 1, CTX_MINOR, 0),
    ];
    for r in rules {
        p.extend(rule_block(r));
    }
    p.push(insn(ALU64_MOV_K, 0, 0, 0, 0));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

/// One rule's block. A jump's offset counts the instructions after it: each check skips
/// what is left of the block.
fn rule_block(r: &DeviceRule) -> Vec<Insn> {
    let kind = if r.kind == 'b' { DEV_BLOCK } else { DEV_CHAR };
    let allowed = r.access.chars().fold(0, |acc, c| {
        acc | match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        }
    });
    // Checks as (register, value): the type, then (r1 = the access bits not allowed) none,
    // then the numbers.
    let mut checks: Vec<Vec<(u8, i32)>> = vec![vec![(2, kind)]];
    let mut body = vec![
        insn(ALU32_MOV_X, 1, 3, 0, 0),
        insn(ALU32_AND_K, 1, 0, 0, !allowed & 0x7),
    ];
    checks.push(vec![(1, 0)]);
    checks.push(vec![(4, r.major as i32)]);
    if let Some(m) = r.minor {
        checks.push(vec![(5, m as i32)]);
    }
    // Layout: JNE type; MOV; AND; JNE access; JNE major; [JNE minor]; MOV r0 1; EXIT.
    let len = 1 + body.len() + (checks.len() - 1) + 2;
    let mut out = Vec::with_capacity(len);
    for (i, check) in checks.iter().enumerate() {
        let (reg, value) = check[0];
        if i == 1 {
            out.append(&mut body);
        }
        let after = len - out.len() - 1;
        out.push(insn(JMP_JNE_K, reg, 0, after as i16, value));
    }
    out.push(insn(ALU64_MOV_K, 0, 0, 0, 1));
    out.push(insn(JMP_EXIT, 0, 0, 0, 0));
    out
}

// bpf(2) commands, the program type and the attach type.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;

/// union bpf_attr as BPF_PROG_LOAD reads it, up to expected_attach_type.
#[repr(C)]
#[derive(Default)]
struct LoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// union bpf_attr as BPF_PROG_ATTACH reads it.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: attr is a repr(C) prefix of union bpf_attr for `cmd`, with its size; the
    // kernel reads no further than that size and treats what it lacks as zero.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Loads the program; on failure loads it again with the verifier's log, for the message.
fn load(prog: &[Insn]) -> Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..11].copy_from_slice(b"rkt_devices");
    let attr = |log: &mut [u8]| LoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        prog_name: name,
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr(&mut [])) {
        // SAFETY: a new descriptor the kernel gave us.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => {
            let mut log = vec![0u8; 16384];
            let _ = bpf(BPF_PROG_LOAD, &mut attr(&mut log));
            let text = String::from_utf8_lossy(&log);
            let text = text.trim_end_matches('\0').trim();
            Err(Error::os(
                format!(
                    "loading the BPF program (bpf(2) BPF_PROG_LOAD; the verifier said: {text})"
                ),
                e,
            ))
        }
    }
}

fn attach(cgroup: &OwnedFd, prog: &OwnedFd) -> std::io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program as the kernel would, for one request: enough of an interpreter for
    /// the instructions [`program`] emits.
    fn run(p: &[Insn], kind: i32, access: i32, major: u32, minor: u32) -> u64 {
        let ctx = [((access as u32) << 16) | kind as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = ctx[i.off as usize / 4] as u64,
                ALU32_AND_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                ALU32_RSH_K => r[dst] = (r[dst] as u32 >> i.imm) as u64,
                ALU32_MOV_X => r[dst] = r[src] as u32 as u64,
                ALU64_MOV_K => r[dst] = i.imm as i64 as u64,
                JMP_JNE_K => {
                    if r[dst] != i.imm as i64 as u64 {
                        pc += i.off as usize;
                    }
                }
                JMP_EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn the_program_allows_exactly_its_rules() {
        let mut rules = standard();
        rules.push(DeviceRule::parse("b 7:0 r").unwrap());
        let p = program(&rules);
        assert_eq!(
            run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3),
            1,
            "/dev/null rw"
        );
        assert_eq!(run(&p, DEV_CHAR, ACC_MKNOD, 1, 3), 0, "no mknod");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 136, 42), 1, "any pts");
        assert_eq!(
            run(&p, DEV_BLOCK, ACC_READ, 7, 0),
            1,
            "the loop device, read"
        );
        assert_eq!(run(&p, DEV_BLOCK, ACC_WRITE, 7, 0), 0, "not written");
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 0), 0, "a disk");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 7, 0), 0, "the type counts");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 1), 0, "/dev/mem");
        assert_eq!(run(&program(&[]), DEV_CHAR, ACC_READ, 1, 3), 0);
    }
}
