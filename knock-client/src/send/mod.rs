//! Putting hits on the wire.
//!
//! TCP hits go out one of two ways, chosen once per run by [`Sender::new`]:
//! - raw ([`raw`], Linux with root or CAP_NET_RAW): crafted SYNs; the hits of one knock share
//!   source port and sequence number, exactly like the kernel's retransmissions of a telnet to a
//!   filtered port, so a server sees one connection attempt knocking N times;
//! - connect ([`connect`], everywhere, unprivileged): a non-blocking connect whose socket is
//!   closed as soon as the SYN is out; each hit is a new attempt with its own source port.
//!
//! UDP hits are datagrams ([`udp`]).

pub mod connect;
#[cfg(target_os = "linux")]
pub mod raw;
pub mod udp;

use std::io;
use std::net::SocketAddr;

use knock_proto::Proto;
#[cfg(target_os = "linux")]
use rand::rngs::SmallRng;
#[cfg(target_os = "linux")]
use rand::{Rng as _, SeedableRng as _};

use crate::plan::Hit;
use crate::rotating::Sealing;

/// How TCP hits are sent.
enum TcpWay {
    /// Crafted SYNs on a raw socket, the connection attempt in progress: (attempt index,
    /// source port, sequence number), and where new ones come from.
    #[cfg(target_os = "linux")]
    Raw {
        syn: raw::RawSyn,
        attempt: Option<(usize, u16, u32)>,
        rng: SmallRng,
    },
    /// Abandoned connection attempts; `why` says why not raw.
    Connect { why: String },
}

/// Sends the hits of one plan to one address.
pub struct Sender {
    dst: SocketAddr,
    tcp: TcpWay,
    /// For a sealed rotating door: each SYN's sequence number is its seal.
    sealing: Option<Sealing>,
}

impl Sender {
    /// A sender for `dst` (its port is ignored). With `tcp`, tries the raw way first and falls
    /// back to connect when a raw socket cannot be had (typically: not privileged).
    pub fn new(dst: SocketAddr, tcp: bool) -> Sender {
        Sender {
            dst,
            sealing: None,
            tcp: if tcp {
                tcp_way(dst)
            } else {
                TcpWay::Connect {
                    why: "no TCP hits".to_owned(),
                }
            },
        }
    }

    /// Seals every TCP hit for a sealed rotating door; refuses, saying how to fix it, when SYNs
    /// cannot be crafted (only raw SYNs can carry a chosen sequence number).
    pub fn seal(&mut self, sealing: Sealing) -> anyhow::Result<()> {
        // Off Linux, connecting is the only way (the pattern always matches there).
        #[cfg_attr(not(target_os = "linux"), allow(irrefutable_let_patterns))]
        if let TcpWay::Connect { why } = &self.tcp {
            anyhow::bail!("{}", unsealable(&sealing.door.name, why));
        }
        self.sealing = Some(sealing);
        Ok(())
    }

    /// Whether the hits of one knock are byte-identical packets, which a capture that drops
    /// copies of one packet (knock-server on `any`) counts once unless they come apart in
    /// time: raw SYNs over IPv6. Over IPv4 the connected raw socket gives each its own IP ID;
    /// connect and UDP hits each have their own source port.
    pub fn identical_repeats(&self) -> bool {
        match &self.tcp {
            #[cfg(target_os = "linux")]
            TcpWay::Raw { .. } => self.dst.is_ipv6(),
            TcpWay::Connect { .. } => false,
        }
    }

    /// One line saying how TCP hits are sent, for `-v`.
    pub fn describe(&self) -> String {
        match &self.tcp {
            #[cfg(target_os = "linux")]
            TcpWay::Raw { .. } => "tcp hits: raw SYNs (the hits of one port share source port and \
                               sequence number)"
                .to_owned(),
            TcpWay::Connect { why } => {
                format!("tcp hits: abandoned connect() attempts ({why})")
            }
        }
    }

    /// Sends one hit.
    pub fn send(&mut self, hit: Hit) -> io::Result<()> {
        let mut to = self.dst;
        to.set_port(hit.knock.port.get());
        match (hit.knock.proto, &mut self.tcp) {
            (Proto::Udp, _) => udp::datagram(to),
            #[cfg(target_os = "linux")]
            (Proto::Tcp, TcpWay::Raw { syn, attempt, rng }) => {
                let (src_port, seq) = match *attempt {
                    Some((attempt, port, seq)) if attempt == hit.attempt => (port, seq),
                    _ => {
                        // A new connection attempt: what a kernel would pick for a new socket,
                        // or, for a sealed door, the seal as its sequence number.
                        let seq = match &self.sealing {
                            Some(s) => s.door.seq(
                                s.step,
                                u8::try_from(hit.attempt).unwrap_or(u8::MAX),
                                hit.knock.port,
                                s.nonce,
                                syn.source(),
                            ),
                            None => rng.random(),
                        };
                        let fresh = (rng.random_range(32768..=60999), seq);
                        *attempt = Some((hit.attempt, fresh.0, fresh.1));
                        fresh
                    }
                };
                syn.send(to.port(), src_port, seq)
            }
            (Proto::Tcp, TcpWay::Connect { .. }) => connect::syn(to),
        }
    }
}

/// Why a sealed door cannot be knocked without raw SYNs, and how to allow them.
fn unsealable(door: &str, why: &str) -> String {
    let fix = if cfg!(target_os = "linux") {
        "run knock as root, or allow it raw sockets once: \
         sudo setcap cap_net_raw+ep $(command -v knock)"
    } else {
        "knock crafts raw SYNs on Linux only: knock from Linux, or ask the server's admin for \
         `sealed = false` on this door (then put `sealed = false` in the profile too)"
    };
    format!(
        "door `{door}` is sealed: each knock must carry a MAC in its TCP sequence number, and \
         only a raw socket can set one ({why}); {fix}"
    )
}

#[cfg(target_os = "linux")]
fn tcp_way(dst: SocketAddr) -> TcpWay {
    match raw::RawSyn::open(dst) {
        // A port and a sequence number per attempt, like a kernel's: nothing secret. A small
        // generator seeded once from the OS is enough; rand's thread-local ChaCha would cost a
        // CPU feature probe (CPUID traps to the hypervisor in a VM) and a reseed per run.
        Ok(syn) => TcpWay::Raw {
            syn,
            attempt: None,
            rng: SmallRng::from_os_rng(),
        },
        Err(e) => {
            tracing::debug!("no raw socket, falling back to connect: {e}");
            let why = if e.kind() == io::ErrorKind::PermissionDenied {
                "no raw socket without root or CAP_NET_RAW".to_owned()
            } else {
                format!("no raw socket: {e}")
            };
            TcpWay::Connect { why }
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn tcp_way(_dst: SocketAddr) -> TcpWay {
    TcpWay::Connect {
        why: "raw SYNs are only crafted on Linux".to_owned(),
    }
}
