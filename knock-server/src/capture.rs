//! Packet capture on its own thread, in batches, asleep while nothing happens.
//!
//! The thread blocks in poll(2) on three file descriptors: the capture (non-blocking), a
//! wake-up socket (stop) and a netlink socket (the host's addresses changed:
//! `host::Watch`). No timeout: an idle daemon is not woken. The capture uses the kernel's
//! TPACKET_V3 ring of blocks: the kernel hands a block over when it is full or
//! [`BLOCK_TIMEOUT_MS`] after its first packet, so a flood costs one wake-up per block of
//! packets rather than one per packet, and a lone knock waits at most that long. When the
//! capture is readable the thread reads every packet waiting, at most [`MAX_BATCH`] per
//! hand-off (which bounds the latency a batch adds), decodes them for this host ([`Decoder`]) and hands the hits to the engine as one
//! message, with `try_send`: it never waits on the engine, on commands or on logging. When
//! the engine falls behind, hits are dropped and counted rather than queued without bound.
//! The kernel BPF filter does most of the dropping before any copy (`filter/`). It is not
//! installed through libpcap: its program is attached to the socket directly
//! ([`attach`]), from the engine's thread, and replaces the old one at once, leaving the
//! packets already in the ring alone (libpcap would run a new filter over them and drop a
//! knock the old filter took).
//! The one exception is `-v`, where each hit is printed as it is handed over (as knockd -v
//! prints each packet), with its source port and TCP sequence number: a retransmitted SYN
//! repeats both, a new connection attempt does not.

use std::io::{Read as _, Write as _};
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd as _, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Context as _, bail};
use knock_proto::Timestamp;
use knock_proto::wire::{Decoder, Hit, Identity, LinkType, Skip};

use crate::executor::Msg;
use crate::filter::{BPF_MAXINSNS, Filter, Framing, Insn};
use crate::host;

/// Enough for Ethernet, two VLAN tags, IPv6 with a few extension headers and a TCP header;
/// we never look at payloads. The filter's program cuts accepted packets to this too, so the
/// kernel copies no more into the ring.
const SNAPLEN: u16 = 256;
/// The kernel ring's size. Its pages are mapped into this process, so all of it counts as
/// resident memory; libpcap's default is 2 MiB. libpcap cuts it into blocks of 256 KiB, each
/// about 2000 SYNs of a flood (a header of about 70 bytes beside each packet's 54): 1 MiB
/// holds 50 ms of a 140 000 packets/s flood, which the thread drains in far less.
const BUFFER_BYTES: i32 = 1 << 20;
/// How long the kernel holds a block of packets before handing it over (TPACKET_V3's block
/// timeout): the latency a knock can gain, traded for wake-ups under load. At 50 000
/// packets/s a block fills in 40 ms, so the block timeout sets the wake-ups: 40 a second at
/// 25 ms. A shorter timeout wakes the thread more often for the same packets; a longer one
/// delays knocks without waking it less, since a flood fills blocks first (the flood bench
/// counts the context switches: BENCHMARKS.md).
const BLOCK_TIMEOUT_MS: i32 = 25;
/// Most packets read per hand-off to the engine: the added latency of a batch is bounded by
/// decoding this many packets (well under a millisecond).
pub const MAX_BATCH: usize = 1024;

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
    /// Packets the kernel dropped because the capture ring was full (libpcap's `ps_drop`),
    /// read at most once a second while packets arrive.
    pub kernel_dropped: AtomicU64,
    /// Packets the filter let through that were not knocks, by reason (index: `Skip as usize`).
    pub skipped: [AtomicU64; Skip::ALL.len()],
}

impl Counters {
    fn skip(&self, why: Skip) {
        if let Some(c) = self.skipped.get(why as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes and resets the count of packets the kernel dropped.
    pub fn take_kernel_dropped(&self) -> u64 {
        self.kernel_dropped.swap(0, Ordering::Relaxed)
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

/// What became of a filter: its size, and whether the kernel runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterReport {
    /// BPF instructions of the program.
    pub instructions: usize,
    /// Whether the kernel runs it, as SO_GET_FILTER reads it back (else the socket may have
    /// no filter at all: every packet on the interface would be copied to us).
    pub in_kernel: bool,
}

impl FilterReport {
    /// Logs the report: loudly (ERROR, so it reaches the log file and syslog) when the
    /// kernel does not run the filter.
    pub fn log(self) {
        if self.in_kernel {
            tracing::debug!(
                "capture filter: {} BPF instructions, in the kernel",
                self.instructions
            );
        } else {
            tracing::error!(
                "the kernel does not run the capture filter as built ({} BPF instructions, limit {BPF_MAXINSNS}): every packet on the interface may be copied to knock-server",
                self.instructions
            );
        }
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
    /// Where the IP header starts in what the kernel filter sees, for this link type.
    pub fn framing(&self) -> Framing {
        framing(self.link)
    }

    /// Attaches `filter`'s program to the capture socket now and says whether the kernel
    /// runs it.
    pub fn set_filter(&self, filter: &Filter) -> anyhow::Result<FilterReport> {
        install(self.cap.as_fd(), self.framing(), filter)
    }
}

/// Where the IP header starts for a link type: the kernel filter of a cooked (`any`) socket
/// sees packets from the network header on, without the cooked header libpcap adds.
fn framing(link: LinkType) -> Framing {
    match link {
        LinkType::Ethernet => Framing::Ethernet,
        LinkType::LinuxSll
        | LinkType::LinuxSll2
        | LinkType::RawIp
        | LinkType::Ipv4
        | LinkType::Ipv6 => Framing::Ip(0),
        LinkType::Null | LinkType::Loop => Framing::Ip(4),
    }
}

/// Makes `filter`'s program, attaches it to `socket` and reads back what the kernel runs.
fn install(
    socket: BorrowedFd<'_>,
    framing: Framing,
    filter: &Filter,
) -> anyhow::Result<FilterReport> {
    let program = filter
        .program(framing, u32::from(SNAPLEN))
        .context("cannot make the capture filter")?;
    // On failure the kernel keeps the filter it had: the doors of the old config still work.
    attach(socket, &program).context("the kernel refused the capture filter")?;
    // The program is never longer than the kernel takes (`ProgramError::TooLong`).
    Ok(FilterReport {
        instructions: program.len(),
        in_kernel: attached_filter_len(socket) == Some(program.len()),
    })
}

/// Attaches `program` to `socket` as its kernel filter (SO_ATTACH_FILTER): the old one is
/// replaced at once, and packets already queued stay queued.
pub fn attach(socket: BorrowedFd<'_>, program: &[Insn]) -> std::io::Result<()> {
    // socket2 would cut a longer program's length to 16 bits: refuse it instead.
    if u16::try_from(program.len()).is_err() {
        return Err(std::io::ErrorKind::InvalidInput.into());
    }
    let program: Vec<socket2::SockFilter> = program
        .iter()
        .map(|i| socket2::SockFilter::new(i.code, i.jt, i.jf, i.k))
        .collect();
    socket2::SockRef::from(&socket).attach_filter(&program)
}

/// How many instructions the kernel runs for `socket`'s filter (0: none), or `None` where
/// it cannot say. By hand: neither socket2 nor rustix reads SO_GET_FILTER.
#[allow(unsafe_code)]
fn attached_filter_len(socket: BorrowedFd<'_>) -> Option<usize> {
    let mut len: libc::socklen_t = 0;
    // SAFETY: SO_GET_FILTER with a zero length only writes the program's length to `len`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_GET_FILTER,
            std::ptr::null_mut(),
            &raw mut len,
        )
    };
    (rc == 0).then_some(len as usize)
}

/// Opens `interface` for capture: blocks of packets handed over within [`BLOCK_TIMEOUT_MS`],
/// non-blocking (the thread polls), small snaplen, a deliberate ring size, incoming packets
/// only.
pub fn open(interface: &str) -> anyhow::Result<Opened> {
    let inactive = pcap::Capture::from_device(interface)
        .with_context(|| format!("no capture device {interface}"))?
        .immediate_mode(false)
        .timeout(BLOCK_TIMEOUT_MS)
        .snaplen(i32::from(SNAPLEN))
        .buffer_size(BUFFER_BYTES)
        .promisc(false);
    let cap = match inactive.open().and_then(pcap::Capture::setnonblock) {
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
    host::local_addresses(interface)
}

/// Batch buffers the engine has handled, back for the capture thread to fill (at most
/// [`POOLED`]): a flood then allocates nothing per batch.
#[derive(Debug, Default)]
struct Pool(Mutex<Vec<Vec<(Timestamp, Hit)>>>);

/// Buffers kept in the [`Pool`]: as many as the engine's queue holds, and one being filled.
const POOLED: usize = 8;

impl Pool {
    /// An empty buffer for [`MAX_BATCH`] hits.
    fn take(&self) -> Vec<(Timestamp, Hit)> {
        self.0
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_else(|| Vec::with_capacity(MAX_BATCH))
    }

    fn give(&self, mut batch: Vec<(Timestamp, Hit)>) {
        if batch.capacity() < MAX_BATCH {
            return;
        }
        batch.clear();
        if let Ok(mut p) = self.0.lock() {
            if p.len() < POOLED {
                p.push(batch);
            }
        }
    }
}

/// A running capture thread.
pub struct Running {
    stop: Arc<AtomicBool>,
    pool: Arc<Pool>,
    /// The capture socket (a duplicate of the descriptor libpcap holds, so it stays valid
    /// whatever the thread does), for new filters.
    socket: OwnedFd,
    framing: Framing,
    /// Wakes the capture thread out of poll(2): one byte written means "look at `stop`".
    wake: UnixStream,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Attaches `filter`'s program to the capture socket now, from the calling thread: the
    /// program is made here and the kernel swaps it in at once, without the capture thread.
    pub fn set_filter(&self, filter: &Filter) -> anyhow::Result<FilterReport> {
        install(self.socket.as_fd(), self.framing, filter)
    }

    /// Takes back a handled batch's buffer.
    pub fn recycle(&self, batch: Vec<(Timestamp, Hit)>) {
        self.pool.give(batch);
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn wake(&self) {
        // A full socket already holds a wake-up the thread has not read.
        let _ = (&self.wake).write(&[1]);
    }
}

/// What the capture thread shares with [`Running`] and the engine.
struct Shared {
    tx: SyncSender<Msg>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    wake: UnixStream,
    clock: Clock,
    pool: Arc<Pool>,
}

/// Starts the capture thread. Its stack is small: it holds a 64 KiB netlink buffer at most.
pub fn spawn(
    mut opened: Opened,
    clock: Clock,
    tx: SyncSender<Msg>,
    counters: Arc<Counters>,
) -> anyhow::Result<Running> {
    let (wake, wake_rx) = UnixStream::pair().context("cannot create the wake-up socket")?;
    wake.set_nonblocking(true)
        .and_then(|()| wake_rx.set_nonblocking(true))
        .context("cannot create the wake-up socket")?;
    let socket = opened
        .cap
        .as_fd()
        .try_clone_to_owned()
        .context("cannot duplicate the capture socket")?;
    let framing = opened.framing();
    let shared = Shared {
        tx,
        counters,
        stop: Arc::new(AtomicBool::new(false)),
        wake: wake_rx,
        clock,
        pool: Arc::default(),
    };
    let (stop, pool) = (shared.stop.clone(), shared.pool.clone());
    let thread = std::thread::Builder::new()
        .name("capture".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            if let Err(e) = run(&mut opened, &shared) {
                let _ = shared.tx.send(Msg::CaptureFailed(format!("{e:#}")));
            }
        })
        .context("cannot start the capture thread")?;
    Ok(Running {
        stop,
        pool,
        socket,
        framing,
        wake,
        thread: Some(thread),
    })
}

fn run(opened: &mut Opened, shared: &Shared) -> anyhow::Result<()> {
    let mut decoder = Decoder::new(opened.link, host::read());
    let watch = host::Watch::open();
    // Only a capture on all devices (`any`, cooked) sees one packet more than once.
    let mut recent =
        matches!(opened.link, LinkType::LinuxSll | LinkType::LinuxSll2).then(Recent::default);
    let mut batch = shared.pool.take();
    let mut drops = KernelDrops::default();
    loop {
        // Read first: packets may have arrived before the first poll.
        let full = read_batch(opened, &decoder, recent.as_mut(), &mut batch, shared)?;
        hand_over(opened, &mut batch, &mut drops, shared)?;
        if full {
            continue; // More waiting: no need to ask poll.
        }
        let ready = wait(
            opened.cap.as_fd(),
            shared.wake.as_fd(),
            watch.as_ref().map(AsFd::as_fd),
        )?;
        if ready.wake {
            let mut sink = [0u8; 64];
            while matches!((&shared.wake).read(&mut sink), Ok(n) if n > 0) {}
            if shared.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
        if let Some(w) = &watch {
            if ready.watch && w.drain() {
                decoder.set_host(host::read());
                let local = host::local_addresses(&opened.interface);
                let _ = shared.tx.send(Msg::LocalAddresses(local));
            }
        }
    }
}

/// Hands the batch (if any) to the engine, and reads the kernel's drop count now and then.
fn hand_over(
    opened: &mut Opened,
    batch: &mut Vec<(Timestamp, Hit)>,
    drops: &mut KernelDrops,
    shared: &Shared,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let at = batch.first().map_or(Timestamp::ZERO, |&(t, _)| t);
    let hits = std::mem::replace(batch, shared.pool.take());
    deliver(shared, hits)?;
    drops.check(opened, at, &shared.counters);
    Ok(())
}

/// Reads the packets waiting (at most [`MAX_BATCH`]) into `batch`; returns whether it
/// stopped at the limit rather than at an empty ring. libpcap hands them over a block at a
/// time (`pcap_dispatch`): one call per block of the ring, not one per packet.
fn read_batch(
    opened: &mut Opened,
    decoder: &Decoder,
    recent: Option<&mut Recent>,
    batch: &mut Vec<(Timestamp, Hit)>,
    shared: &Shared,
) -> anyhow::Result<bool> {
    let mut now = None;
    let mut recent = recent;
    let mut read = 0;
    while read < MAX_BATCH {
        let n = opened
            .cap
            .dispatch(Some(MAX_BATCH - read), |packet| {
                let wire_len = usize::try_from(packet.header.len).unwrap_or(usize::MAX);
                let decoded = match decoder.decode(packet.data, wire_len) {
                    Ok(p) => p,
                    Err(why) => return shared.counters.skip(why),
                };
                let ts = packet.header.ts;
                // time_t and suseconds_t are 32 bits wide on some targets.
                #[allow(clippy::useless_conversion)]
                let micros = i64::from(ts.tv_sec)
                    .saturating_mul(1_000_000)
                    .saturating_add(i64::from(ts.tv_usec));
                if recent
                    .as_deref_mut()
                    .is_some_and(|r| r.seen(decoded.identity, micros))
                {
                    shared.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                // One clock reading per batch: the packets of one batch arrived within it.
                let at = *now.get_or_insert_with(|| shared.clock.now());
                batch.push((at, decoded.hit));
            })
            .with_context(|| format!("capture on {} failed", opened.interface))?;
        if n == 0 {
            // Non-blocking: the ring is empty.
            return Ok(false);
        }
        read += n;
    }
    Ok(true)
}

/// Reads libpcap's count of packets the kernel dropped, at most once a second (a syscall).
#[derive(Debug, Default)]
struct KernelDrops {
    next: Timestamp,
    seen: u32,
}

impl KernelDrops {
    fn check(&mut self, opened: &mut Opened, now: Timestamp, counters: &Counters) {
        if now < self.next {
            return;
        }
        self.next = now + std::time::Duration::from_secs(1);
        if let Ok(stats) = opened.cap.stats() {
            let new = stats.dropped.wrapping_sub(self.seen);
            self.seen = stats.dropped;
            counters
                .kernel_dropped
                .fetch_add(u64::from(new), Ordering::Relaxed);
        }
    }
}

/// What [`wait`] found readable besides the capture.
#[derive(Debug, Clone, Copy)]
struct Ready {
    /// The wake-up socket: look at `stop`.
    wake: bool,
    /// The host watch: addresses or links changed.
    watch: bool,
}

/// Sleeps until the capture, the wake-up socket or the host watch (if any) is readable.
fn wait(
    capture: BorrowedFd<'_>,
    wake: BorrowedFd<'_>,
    watch: Option<BorrowedFd<'_>>,
) -> anyhow::Result<Ready> {
    use rustix::event::{PollFd, PollFlags, poll};
    let mut fds = [
        PollFd::from_borrowed_fd(capture, PollFlags::IN),
        PollFd::from_borrowed_fd(wake, PollFlags::IN),
        PollFd::from_borrowed_fd(watch.unwrap_or(wake), PollFlags::IN),
    ];
    let fds = &mut fds[..if watch.is_some() { 3 } else { 2 }];
    loop {
        match poll(fds, None) {
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(std::io::Error::from(e)).context("poll on the capture failed"),
        }
    }
    let readable = |fd: Option<&PollFd<'_>>| fd.is_some_and(|fd| !fd.revents().is_empty());
    Ok(Ready {
        wake: readable(fds.get(1)),
        watch: readable(fds.get(2)),
    })
}

/// Packets seen in the last moments, to count a packet once when the kernel shows it on
/// several devices (on `any`: a bridge port and the bridge, a VLAN's parent and the VLAN
/// device). Those copies carry the same kernel timestamp give or take microseconds, while a
/// real repeat of a knock (a retransmitted SYN, a telnet-style hit) comes at least tens of
/// milliseconds later.
#[derive(Debug)]
struct Recent<K = Identity> {
    /// (identity, kernel timestamp in µs); a small ring, newest at `next - 1`.
    entries: [Option<(K, i64)>; RECENT_LEN],
    next: usize,
}

/// How many packets [`Recent`] remembers.
const RECENT_LEN: usize = 16;

impl<K> Default for Recent<K> {
    fn default() -> Self {
        Recent {
            entries: [const { None }; RECENT_LEN],
            next: 0,
        }
    }
}

impl<K: Copy + Eq> Recent<K> {
    /// Copies of one packet on several devices arrive within this many microseconds.
    const WINDOW_US: i64 = 5_000;

    /// Whether the same packet was seen within the window; remembers this one either way.
    fn seen(&mut self, id: K, micros: i64) -> bool {
        let dup = self
            .entries
            .iter()
            .flatten()
            .any(|&(i, t)| i == id && (micros - t).abs() <= Self::WINDOW_US);
        self.entries[self.next] = Some((id, micros));
        self.next = (self.next + 1) % RECENT_LEN;
        dup
    }
}

/// Hands a batch to the engine, or drops and counts it when the engine's queue is full.
fn deliver(shared: &Shared, hits: Vec<(Timestamp, Hit)>) -> anyhow::Result<()> {
    let n = hits.len() as u64;
    shared.counters.hits.fetch_add(n, Ordering::Relaxed);
    if tracing::enabled!(tracing::Level::DEBUG) {
        for (_, hit) in &hits {
            tracing::debug!("{}", Described(hit));
        }
    }
    match shared.tx.try_send(Msg::Hits(hits)) {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(msg)) => {
            shared.counters.queue_full.fetch_add(n, Ordering::Relaxed);
            if let Msg::Hits(hits) = msg {
                shared.pool.give(hits);
            }
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

    /// After a filter change, knocks on the new filter's ports are handed over. Root only.
    #[test]
    fn knocks_after_a_filter_change_are_handed_over() {
        if !knock_e2e::root_or_skip() {
            return;
        }
        let opened = open("lo").unwrap();
        opened.set_filter(&udp_port(47011)).unwrap();
        let (tx, rx) = std::sync::mpsc::sync_channel(64);
        let running = spawn(opened, Clock::start(), tx, Arc::default()).unwrap();
        let report = running.set_filter(&udp_port(47012)).unwrap();
        assert!(report.in_kernel, "{report:?}");
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut got = None;
        for _ in 0..50 {
            socket.send_to(b"knock", "127.0.0.1:47012").unwrap();
            if let Ok(m) = rx.recv_timeout(std::time::Duration::from_millis(100)) {
                got = Some(m);
                break;
            }
        }
        running.stop();
        match got {
            Some(Msg::Hits(hits)) => assert_eq!(hits[0].1.knock, "47012:udp".parse().unwrap()),
            other => panic!("expected the knock, got {other:?}"),
        }
    }

    /// A filter for UDP knocks on `port`, to any destination.
    fn udp_port(port: u16) -> Filter {
        let door = crate::filter::DoorFilter {
            knocks: vec![format!("{port}:udp").parse().unwrap()],
            target: None,
        };
        crate::filter::build(&[door], &[], false)
    }

    #[test]
    /// A knock queued under the old filter that the new one leaves out still reaches the
    /// engine, even while it sits in the kernel's open block (libpcap, had it installed the
    /// new filter, would have run it over the queued packets and dropped this one). Root
    /// only: it captures on `lo`.
    fn a_knock_in_flight_when_the_filter_changes_is_handed_over() {
        if !knock_e2e::root_or_skip() {
            return;
        }
        let opened = open("lo").unwrap();
        opened.set_filter(&udp_port(47001)).unwrap();
        let (tx, rx) = std::sync::mpsc::sync_channel(64);
        let running = spawn(opened, Clock::start(), tx, Arc::default()).unwrap();
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // The datagram sits in the kernel's open block (handed over BLOCK_TIMEOUT_MS after
        // its first packet) when the new filter comes.
        socket.send_to(b"knock", "127.0.0.1:47001").unwrap();
        running.set_filter(&udp_port(47002)).unwrap();
        let got = rx.recv_timeout(std::time::Duration::from_secs(5));
        running.stop();
        match got {
            Ok(Msg::Hits(hits)) => assert_eq!(hits[0].1.knock, "47001:udp".parse().unwrap()),
            other => panic!("expected the knock, got {other:?}"),
        }
    }

    #[test]
    fn the_same_packet_within_the_window_is_a_duplicate_and_a_later_repeat_is_not() {
        let mut r = Recent::<u64>::default();
        assert!(!r.seen(7, 1_000_000));
        assert!(r.seen(7, 1_000_050), "the copy from the bridge");
        assert!(!r.seen(8, 1_000_060), "another packet");
        assert!(
            !r.seen(7, 2_000_000),
            "a retransmission a second later counts"
        );
        for i in 0..RECENT_LEN as u64 {
            r.seen(100 + i, 2_000_100);
        }
        assert!(!r.seen(7, 2_000_200), "forgotten after LEN newer packets");
    }
}
