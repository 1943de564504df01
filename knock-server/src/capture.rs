//! Packet capture on its own thread.
//!
//! The capture thread only reads packets, decodes them and hands each possible knock to the
//! engine over a bounded channel with `try_send`: it never waits on the engine, on commands
//! or on logging. When the engine falls behind, hits are dropped and counted rather than
//! queued without bound. The kernel BPF filter does most of the dropping before any copy.
//! The one exception is `-v`, where each hit is printed as it is handed over (as knockd -v
//! prints each packet), with its source port and TCP sequence number: a retransmitted SYN
//! repeats both, a new connection attempt does not.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Context as _, bail};
use knock_proto::wire::{self, LinkType, Skip};
use knock_proto::{Timestamp, wire::Hit};

use crate::engine::Msg;

/// Enough for Ethernet, two VLAN tags, IPv6 with a few extension headers and a TCP header;
/// we never look at payloads.
const SNAPLEN: i32 = 256;
/// libpcap's read timeout, where it applies; `Running` wakes the thread explicitly anyway.
const POLL_MS: i32 = 100;

/// The daemon's monotonic clock: milliseconds since start.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// A clock whose epoch is now.
    pub fn start() -> Clock {
        Clock(Instant::now())
    }

    /// A clock whose epoch was `epoch` (tests: a clock that started a while ago).
    pub fn since(epoch: Instant) -> Clock {
        Clock(epoch)
    }

    /// Now, on this clock.
    pub fn now(&self) -> Timestamp {
        Timestamp::from_millis(u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// How long from now until `t` (zero if past).
    pub fn until(&self, t: Timestamp) -> std::time::Duration {
        t.saturating_since(self.now())
    }
}

/// Counters the capture thread keeps and the engine reports.
#[derive(Debug, Default)]
pub struct Counters {
    /// Packets decoded into hits and handed over.
    pub hits: AtomicU64,
    /// Hits dropped because the engine's queue was full.
    pub queue_full: AtomicU64,
    /// The same packet seen again on another device (bridge, VLAN) and counted once.
    pub duplicates: AtomicU64,
    /// Packets the filter let through that were not knocks, by reason (index: `Skip as usize`).
    pub skipped: [AtomicU64; 16],
}

impl Counters {
    fn skip(&self, why: Skip) {
        if let Some(c) = self.skipped.get(why as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes and resets the counts: (hits, queue_full, duplicates, skipped by reason).
    pub fn take(&self) -> (u64, u64, u64, Vec<(Skip, u64)>) {
        let skipped = Skip::ALL
            .iter()
            .filter_map(|&s| {
                let n = self.skipped.get(s as usize)?.swap(0, Ordering::Relaxed);
                (n > 0).then_some((s, n))
            })
            .collect();
        (
            self.hits.swap(0, Ordering::Relaxed),
            self.queue_full.swap(0, Ordering::Relaxed),
            self.duplicates.swap(0, Ordering::Relaxed),
            skipped,
        )
    }
}

/// An open capture, not yet running.
pub struct Opened {
    cap: pcap::Capture<pcap::Active>,
    link: LinkType,
    /// The interface name.
    pub interface: String,
}

impl Opened {
    /// Whether the link type is Ethernet (so VLAN variants belong in the filter).
    pub fn is_ethernet(&self) -> bool {
        self.link == LinkType::Ethernet
    }

    /// Applies a BPF filter now (used before the thread starts, so the first packet is
    /// already filtered, and to validate a filter before committing to it).
    pub fn set_filter(&mut self, filter: &str) -> anyhow::Result<()> {
        self.cap
            .filter(filter, true)
            .with_context(|| format!("cannot compile the capture filter `{filter}`"))
    }
}

/// Opens `interface` for capture: immediate mode (a knock is seen when it arrives, not when
/// a buffer fills), small snaplen, incoming packets only.
pub fn open(interface: &str) -> anyhow::Result<Opened> {
    let inactive = pcap::Capture::from_device(interface)
        .with_context(|| format!("no capture device {interface}"))?
        .immediate_mode(true)
        .snaplen(SNAPLEN)
        .promisc(false)
        .timeout(POLL_MS);
    let cap = match inactive.open() {
        Ok(c) => c,
        Err(e) => {
            let msg = e.to_string();
            if msg.contains("ermission") || msg.contains("not permitted") {
                bail!(
                    "cannot capture on {interface}: {msg}; run as root or grant CAP_NET_RAW (see the systemd unit)"
                );
            }
            if msg.contains("No such device") || msg.contains("doesn't exist") {
                bail!("no such interface: {interface} (see `ip link` for the names here)");
            }
            bail!("cannot capture on {interface}: {msg}");
        }
    };
    // Our own outgoing packets are not knocks; on `any` they would otherwise appear too.
    // Not every platform supports it; the decoder also skips outgoing cooked packets.
    let _ = cap.direction(pcap::Direction::In);
    let dlt = cap.get_datalink().0;
    let Some(link) = LinkType::from_dlt(dlt) else {
        bail!("cannot capture on {interface}: unsupported link type {dlt}");
    };
    Ok(Opened {
        cap,
        link,
        interface: interface.to_owned(),
    })
}

/// This host's addresses on `interface` (all interfaces for `any`).
pub fn local_addresses(interface: &str) -> Vec<IpAddr> {
    let Ok(devices) = pcap::Device::list() else {
        return Vec::new();
    };
    let mut addrs: Vec<IpAddr> = devices
        .into_iter()
        .filter(|d| interface == "any" || d.name == interface)
        .flat_map(|d| d.addresses.into_iter().map(|a| a.addr))
        .collect();
    addrs.sort();
    addrs.dedup();
    addrs
}

/// A running capture thread.
pub struct Running {
    stop: Arc<AtomicBool>,
    new_filter: Arc<Mutex<Option<String>>>,
    /// Wakes the capture thread out of a blocking read (pcap_breakloop): libpcap's read
    /// timeout does not fire in immediate mode on Linux, so without it a quiet link would
    /// keep a new filter or a stop request waiting for the next packet.
    wake: pcap::BreakLoop,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Makes the thread install `filter` (pcap handles are not shared across threads).
    pub fn set_filter(&self, filter: String) {
        *self.new_filter.lock().unwrap_or_else(|e| e.into_inner()) = Some(filter);
        self.wake.breakloop();
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.breakloop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the capture thread.
pub fn spawn(
    mut opened: Opened,
    clock: Clock,
    tx: SyncSender<Msg>,
    counters: Arc<Counters>,
) -> anyhow::Result<Running> {
    let stop = Arc::new(AtomicBool::new(false));
    let new_filter = Arc::new(Mutex::new(None::<String>));
    let wake = opened.cap.breakloop_handle();
    let (stop2, filter2) = (stop.clone(), new_filter.clone());
    let thread = std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || {
            let result = run(&mut opened, clock, &tx, &counters, &stop2, &filter2);
            if let Err(e) = result {
                let _ = tx.send(Msg::CaptureFailed(format!("{e:#}")));
            }
        })
        .context("cannot start the capture thread")?;
    Ok(Running {
        stop,
        new_filter,
        wake,
        thread: Some(thread),
    })
}

fn run(
    opened: &mut Opened,
    clock: Clock,
    tx: &SyncSender<Msg>,
    counters: &Counters,
    stop: &AtomicBool,
    new_filter: &Mutex<Option<String>>,
) -> anyhow::Result<()> {
    let mut recent = Recent::default();
    while !stop.load(Ordering::Relaxed) {
        if let Some(f) = new_filter.try_lock().ok().and_then(|mut g| g.take()) {
            if let Err(e) = opened.set_filter(&f) {
                tracing::error!("{e:#}");
            }
        }
        let packet = match opened.cap.next_packet() {
            Ok(p) => p,
            // A timeout, or a wake-up from `Running` (pcap_breakloop reads as "no more").
            Err(pcap::Error::TimeoutExpired | pcap::Error::NoMorePackets) => continue,
            Err(e) => bail!("capture on {} failed: {e}", opened.interface),
        };
        let hit = match wire::decode(opened.link, packet.data) {
            Ok(hit) => hit,
            Err(why) => {
                counters.skip(why);
                continue;
            }
        };
        let ts = packet.header.ts;
        // time_t and suseconds_t are 32 bits wide on some targets.
        #[allow(clippy::useless_conversion)]
        let micros = i64::from(ts.tv_sec)
            .saturating_mul(1_000_000)
            .saturating_add(i64::from(ts.tv_usec));
        let id = wire::identity(opened.link, packet.data).unwrap_or_default();
        if recent.seen(id, micros) {
            counters.duplicates.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        deliver(tx, counters, clock.now(), hit)?;
    }
    Ok(())
}

/// Packets seen in the last moments, to count a packet once when the kernel shows it on
/// several devices (on `any`: a bridge port and the bridge, a VLAN's parent and the VLAN
/// device). Those copies carry the same kernel timestamp give or take microseconds, while a
/// real repeat of a knock (a retransmitted SYN, a telnet-style hit) comes at least tens of
/// milliseconds later.
#[derive(Debug, Default)]
struct Recent {
    /// (identity, kernel timestamp in µs); a small ring, newest at `next - 1`.
    entries: [(u64, i64); Recent::LEN],
    next: usize,
}

impl Recent {
    const LEN: usize = 16;
    /// Copies of one packet on several devices arrive within this many microseconds.
    const WINDOW_US: i64 = 5_000;

    /// Whether the same packet was seen within the window; remembers this one either way.
    fn seen(&mut self, id: u64, micros: i64) -> bool {
        let dup = self
            .entries
            .iter()
            .any(|&(i, t)| i == id && t != 0 && (micros - t).abs() <= Recent::WINDOW_US);
        self.entries[self.next] = (id, micros);
        self.next = (self.next + 1) % Recent::LEN;
        dup
    }
}

fn deliver(
    tx: &SyncSender<Msg>,
    counters: &Counters,
    now: Timestamp,
    hit: Hit,
) -> anyhow::Result<()> {
    counters.hits.fetch_add(1, Ordering::Relaxed);
    tracing::debug!("{}", Described(&hit));
    match tx.try_send(Msg::Hit(now, hit)) {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(_)) => {
            counters.queue_full.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Err(TrySendError::Disconnected(_)) => bail!("the engine has stopped"),
    }
}

/// A hit as `-v` prints it: `hit: tcp 198.18.0.1:40000 -> 198.18.0.2:7000 seq 1234 flags
/// 0x02`, or `hit: udp 198.18.0.1:40000 -> 198.18.0.2:8000`. Formatted only when printed.
struct Described<'a>(&'a Hit);

impl std::fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = self.0;
        let to = std::net::SocketAddr::new(h.destination, h.knock.port.get());
        let from = std::net::SocketAddr::new(h.source, h.src_port);
        write!(f, "hit: {} {from} -> {to}", h.knock.proto)?;
        if h.knock.proto == knock_proto::Proto::Tcp {
            write!(f, " seq {} flags {:#04x}", h.tcp_seq, h.tcp_flags)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hit_is_described_with_its_source_port_and_sequence_number() {
        let hit = Hit {
            source: "198.18.0.1".parse().unwrap(),
            destination: "198.18.0.2".parse().unwrap(),
            knock: "7000".parse().unwrap(),
            tcp_flags: 0x02,
            src_port: 40000,
            tcp_seq: 1234,
        };
        assert_eq!(
            Described(&hit).to_string(),
            "hit: tcp 198.18.0.1:40000 -> 198.18.0.2:7000 seq 1234 flags 0x02"
        );
        let udp = Hit {
            source: "fd00::1".parse().unwrap(),
            knock: "8000:udp".parse().unwrap(),
            tcp_flags: 0,
            tcp_seq: 0,
            ..hit
        };
        assert_eq!(
            Described(&udp).to_string(),
            "hit: udp [fd00::1]:40000 -> 198.18.0.2:8000"
        );
    }

    #[test]
    fn the_same_packet_within_the_window_is_a_duplicate_and_a_later_repeat_is_not() {
        let mut r = Recent::default();
        assert!(!r.seen(7, 1_000_000));
        assert!(r.seen(7, 1_000_050), "the copy from the bridge");
        assert!(!r.seen(8, 1_000_060), "another packet");
        assert!(
            !r.seen(7, 2_000_000),
            "a retransmission a second later counts"
        );
        for i in 0..Recent::LEN as u64 {
            r.seen(100 + i, 2_000_100);
        }
        assert!(!r.seen(7, 2_000_200), "forgotten after LEN newer packets");
    }
}
