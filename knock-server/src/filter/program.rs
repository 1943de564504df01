//! The filter as a classic BPF program, the kind `SO_ATTACH_FILTER` takes.
//!
//! The program has one shape whatever the doors: find the IP header (behind zero to two VLAN
//! tags on Ethernet; the kernel has already moved the outer tag of a tagged frame to the
//! packet's metadata, so tags left in the frame are inner ones), then per family the
//! destination among the hosts, the protocol, and the destination port among the ranges. The
//! offset of the IP header is kept in the index register X, so the code after the link layer
//! exists once, not once per VLAN variant as libpcap's would. It is written to accept exactly
//! what libpcap's compilation of [`Filter::pcap`] accepts; the tests hold it to that.
//!
//! Jumps are resolved by a small assembler: conditional jumps reach at most 255 instructions
//! ahead, so every block ends with its own accept and reject, and a jump to "accept" or
//! "reject" goes to the nearest one ahead.

use std::net::IpAddr;

use super::{Filter, IPV6_EXTENSION_HEADERS};

/// One instruction, laid out as the kernel's `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    /// Operation (`BPF_*` bits).
    pub code: u16,
    /// Instructions to skip when a conditional jump is taken.
    pub jt: u8,
    /// Instructions to skip when it is not.
    pub jf: u8,
    /// The operand.
    pub k: u32,
}

/// Where the IP header starts in the packets the kernel filter sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// An Ethernet header, the EtherType at byte 12, with up to two VLAN tags in the frame.
    Ethernet,
    /// The IP header at this offset, told apart by the version in its first nibble: Linux
    /// cooked captures (`any`: the socket sees packets from the network header on) and bare
    /// IP links (tun, WireGuard) at 0, BSD loopback at 4.
    Ip(u32),
}

/// Why no program could be made (never for a filter `build` made; a guard all the same).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    /// A conditional jump would skip more than 255 instructions.
    #[error("a jump in the capture filter would skip {0} instructions (at most 255)")]
    JumpTooFar(usize),
    /// Longer than the kernel takes.
    #[error("the capture filter has {0} instructions, more than the kernel's {max}", max = super::BPF_MAXINSNS)]
    TooLong(usize),
}

// The opcodes used (linux/bpf_common.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const ADD: u16 = 0x00;
const AND: u16 = 0x50;
const LSH: u16 = 0x60;
const RSH: u16 = 0x70;
const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const JGT: u16 = 0x20;
const JGE: u16 = 0x30;
const JSET: u16 = 0x40;
const K: u16 = 0x00;
const X: u16 = 0x08;
const TAX: u16 = 0x00;

/// EtherTypes of a VLAN tag, as libpcap's `vlan` tests them.
const VLAN_TPIDS: [u32; 3] = [0x8100, 0x88a8, 0x9100];
const ETHERTYPE_IPV4: u32 = 0x0800;
const ETHERTYPE_IPV6: u32 = 0x86dd;
const TCP: u32 = 6;
const UDP: u32 = 17;

/// Where a jump goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    /// The next instruction.
    Next,
    /// A label set with [`Asm::label`].
    Label(usize),
    /// The nearest `ret` that accepts, ahead.
    Accept,
    /// The nearest `ret` that rejects, ahead.
    Reject,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Plain(u16, u32),
    Jump(u16, u32, To, To),
    Always(To),
    Ret(bool),
}

/// Instructions with symbolic jumps.
#[derive(Debug, Default)]
struct Asm {
    ops: Vec<Op>,
    /// Per label, the instruction it names.
    labels: Vec<usize>,
}

impl Asm {
    fn op(&mut self, code: u16, k: u32) {
        self.ops.push(Op::Plain(code, k));
    }

    fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.ops.push(Op::Jump(JMP | code | K, k, jt, jf));
    }

    fn always(&mut self, to: To) {
        self.ops.push(Op::Always(to));
    }

    /// A new label, not yet placed.
    fn new_label(&mut self) -> To {
        self.labels.push(usize::MAX);
        To::Label(self.labels.len() - 1)
    }

    /// Places `label` at the next instruction.
    fn label(&mut self, label: To) {
        if let To::Label(i) = label {
            self.labels[i] = self.ops.len();
        }
    }

    /// An accept and a reject for the jumps of the block that ends here.
    fn end_block(&mut self) {
        self.ops.push(Op::Ret(true));
        self.ops.push(Op::Ret(false));
    }

    /// `A == value` for each value in turn, jumping to its target; none: `otherwise`.
    fn dispatch(&mut self, cases: &[(u32, To)], otherwise: To) {
        for (i, &(value, to)) in cases.iter().enumerate() {
            let last = i + 1 == cases.len();
            self.jump(JEQ, value, to, if last { otherwise } else { To::Next });
        }
        if cases.is_empty() {
            self.always(otherwise);
        }
    }

    fn target(&self, at: usize, to: To) -> usize {
        match to {
            To::Next => at + 1,
            To::Label(l) => self.labels[l],
            To::Accept | To::Reject => {
                let accept = to == To::Accept;
                (at + 1..self.ops.len())
                    .find(|&j| matches!(self.ops[j], Op::Ret(a) if a == accept))
                    .unwrap_or(usize::MAX)
            }
        }
    }

    fn finish(self, snaplen: u32) -> Result<Vec<Insn>, ProgramError> {
        if self.ops.len() > super::BPF_MAXINSNS {
            return Err(ProgramError::TooLong(self.ops.len()));
        }
        let skip = |at: usize, to: To| -> Result<usize, ProgramError> {
            let target = self.target(at, to);
            target
                .checked_sub(at + 1)
                .filter(|_| target < self.ops.len())
                .ok_or(ProgramError::JumpTooFar(usize::MAX))
        };
        let short = |n: usize| u8::try_from(n).map_err(|_| ProgramError::JumpTooFar(n));
        let mut out = Vec::with_capacity(self.ops.len());
        for (at, &op) in self.ops.iter().enumerate() {
            let (code, jt, jf, k) = match op {
                Op::Plain(code, k) => (code, 0, 0, k),
                Op::Jump(code, k, jt, jf) => {
                    (code, short(skip(at, jt)?)?, short(skip(at, jf)?)?, k)
                }
                Op::Always(to) => {
                    let n =
                        u32::try_from(skip(at, to)?).map_err(|_| ProgramError::JumpTooFar(0))?;
                    (JMP | JA, 0, 0, n)
                }
                Op::Ret(accept) => (RET | K, 0, 0, if accept { snaplen } else { 0 }),
            };
            out.push(Insn { code, jt, jf, k });
        }
        Ok(out)
    }
}

/// The program for `filter`; see the module documentation.
pub(super) fn generate(
    filter: &Filter,
    framing: Framing,
    snaplen: u32,
) -> Result<Vec<Insn>, ProgramError> {
    let mut asm = Asm::default();
    if filter.matches_nothing() {
        asm.ops.push(Op::Ret(false));
        return asm.finish(snaplen);
    }
    let (v4, v6) = (asm.new_label(), asm.new_label());
    let v6_or_reject = if filter.ipv4_only { To::Reject } else { v6 };
    match framing {
        Framing::Ethernet => ethernet(&mut asm, v4, v6_or_reject),
        Framing::Ip(at) => {
            asm.op(LD | B | ABS, at);
            asm.op(ALU | RSH | K, 4);
            asm.op(LDX | W | IMM, at);
            asm.dispatch(&[(4, v4), (6, v6_or_reject)], To::Reject);
        }
    }
    asm.end_block();
    asm.label(v4);
    ipv4(&mut asm, filter);
    asm.end_block();
    if !filter.ipv4_only {
        asm.label(v6);
        ipv6(&mut asm, filter);
        asm.end_block();
    }
    asm.finish(snaplen)
}

/// The EtherType in A and the IP header's offset in X, behind zero, one or two VLAN tags
/// (libpcap's `(F) or (vlan and ((F) or (vlan and (F))))`), then on to the family.
fn ethernet(asm: &mut Asm, v4: To, v6: To) {
    let l3 = asm.new_label();
    let mut at = 12;
    for _ in 0..2 {
        let tagged = asm.new_label();
        asm.op(LD | H | ABS, at);
        let tags: Vec<(u32, To)> = VLAN_TPIDS.iter().map(|&t| (t, tagged)).collect();
        asm.dispatch(&tags, To::Next);
        asm.op(LDX | W | IMM, at + 2);
        asm.always(l3);
        asm.label(tagged);
        at += 4;
    }
    asm.op(LD | H | ABS, at);
    asm.op(LDX | W | IMM, at + 2);
    asm.label(l3);
    asm.dispatch(&[(ETHERTYPE_IPV4, v4), (ETHERTYPE_IPV6, v6)], To::Reject);
}

/// IPv4 at X: destination, protocol, first fragment, port.
fn ipv4(asm: &mut Asm, filter: &Filter) {
    if let Some(hosts) = &filter.hosts {
        let matched = asm.new_label();
        let words: Vec<(u32, To)> = hosts
            .iter()
            .filter_map(|h| match h {
                IpAddr::V4(a) => Some((u32::from(*a), matched)),
                IpAddr::V6(_) => None,
            })
            .collect();
        asm.op(LD | W | IND, 16);
        asm.dispatch(&words, To::Reject);
        asm.label(matched);
    }
    let (tcp, udp) = (asm.new_label(), asm.new_label());
    asm.op(LD | B | IND, 9);
    asm.dispatch(&protocols(filter, tcp, udp), To::Reject);
    for (label, ranges) in [(tcp, &filter.tcp), (udp, &filter.udp)] {
        if ranges.is_empty() {
            continue;
        }
        asm.label(label);
        // Only a first fragment (offset 0) has the transport header.
        asm.op(LD | H | IND, 6);
        asm.jump(JSET, 0x1fff, To::Reject, To::Next);
        // X += 4 * IHL: the transport header.
        asm.op(LD | B | IND, 0);
        asm.op(ALU | AND | K, 0xf);
        asm.op(ALU | LSH | K, 2);
        asm.op(ALU | ADD | X, 0);
        asm.op(MISC | TAX, 0);
        asm.op(LD | H | IND, 2);
        port_ranges(asm, ranges);
    }
}

/// IPv6 at X: destination, next header (a transport or an extension header), port.
fn ipv6(asm: &mut Asm, filter: &Filter) {
    if let Some(hosts) = &filter.hosts {
        let matched = asm.new_label();
        let v6: Vec<[u8; 16]> = hosts
            .iter()
            .filter_map(|h| match h {
                IpAddr::V6(a) => Some(a.octets()),
                IpAddr::V4(_) => None,
            })
            .collect();
        for (i, octets) in v6.iter().enumerate() {
            let next_host = if i + 1 == v6.len() {
                To::Reject
            } else {
                asm.new_label()
            };
            for (w, chunk) in octets.chunks_exact(4).enumerate() {
                let word = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                let last = w == 3;
                asm.op(LD | W | IND, 24 + 4 * w as u32);
                asm.jump(JEQ, word, if last { matched } else { To::Next }, next_host);
            }
            asm.label(next_host);
        }
        if v6.is_empty() {
            asm.always(To::Reject);
        }
        asm.label(matched);
    }
    let (tcp, udp) = (asm.new_label(), asm.new_label());
    asm.op(LD | B | IND, 6);
    let mut cases = protocols(filter, tcp, udp);
    cases.extend(
        IPV6_EXTENSION_HEADERS
            .iter()
            .map(|&n| (u32::from(n), To::Accept)),
    );
    asm.dispatch(&cases, To::Reject);
    for (label, ranges) in [(tcp, &filter.tcp), (udp, &filter.udp)] {
        if ranges.is_empty() {
            continue;
        }
        asm.label(label);
        asm.op(LD | H | IND, 40 + 2);
        port_ranges(asm, ranges);
    }
}

/// The protocols that have knocks, as dispatch cases.
fn protocols(filter: &Filter, tcp: To, udp: To) -> Vec<(u32, To)> {
    let mut cases = Vec::with_capacity(2);
    if !filter.tcp.is_empty() {
        cases.push((TCP, tcp));
    }
    if !filter.udp.is_empty() {
        cases.push((UDP, udp));
    }
    cases
}

/// Accepts when A is in one of `ranges` (sorted, disjoint): below a range's start, it is
/// below every later one too.
fn port_ranges(asm: &mut Asm, ranges: &[(u16, u16)]) {
    for (i, &(lo, hi)) in ranges.iter().enumerate() {
        let beyond = if i + 1 == ranges.len() {
            To::Reject
        } else {
            To::Next
        };
        if lo == hi {
            asm.jump(JEQ, u32::from(lo), To::Accept, beyond);
        } else {
            asm.jump(JGE, u32::from(lo), To::Next, To::Reject);
            asm.jump(JGT, u32::from(hi), beyond, To::Accept);
        }
    }
}
