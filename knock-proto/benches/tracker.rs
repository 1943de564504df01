//! Benchmark of the knock state machine at 1, 10 000 and 1 000 000 sources in progress.
//!
//! Each case pre-fills the tracker with that many stage-1 attempts, then measures one
//! `Tracker::handle` call per iteration (criterion's time per iteration is ns per hit), with
//! the sources taken in a shuffled order so that the big cases pay for real cache misses:
//!
//! - `advance`: every source walks through a 4-knock sequence in lockstep rounds: a mix of
//!   stage advances, doors opening (attempt removed) and first knocks (attempt inserted).
//! - `repeat`: every hit is the first port again, as the kernel retransmits a telnet's SYN: a
//!   repeat of the knock that got the attempt to stage 1, ignored (no event, nothing moves).
//! - `evict`: a flood of new sources with the tracker full: the oldest attempt is evicted and
//!   a new one inserted.
//!
//! The `*_batch` cases run the same hit streams through `Tracker::handle_batch`, 32 hits per
//! call (a daemon with a backlog), and report the time per hit (the batch's time / 32).
//!
//! `fill` starts from an empty tracker and inserts 100 000 new sources, growing it: one hit at a
//! time, and (`fill/batch`) in batches of 1024 as the daemon does under a flood of spoofed
//! first knocks.
//!
//! `baseline/chase` measures one dependent random memory access within as many bytes as the
//! tracker holds at each size: the memory floor the tracker's numbers should be read against.
//!
//! Bytes per tracked attempt are printed twice: from `Tracker::memory_bytes` (bytes written) and
//! from a counting global allocator (live heap bytes the tracker added, reservations
//! included). The allocator also
//! counts allocations in the steady state, which must be none.
//!
//! Run: `cargo bench -p knock-proto --bench tracker`.

// The counting allocator is the only way to measure the heap honestly from outside.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use knock_proto::tracker::{DoorSpec, Event, Tracker};
use knock_proto::wire::Hit;
use knock_proto::{Knock, Sequence, TcpFlags, Timestamp};

/// Counts live heap bytes and allocation calls.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Relaxed);
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Relaxed);
        LIVE.fetch_sub(layout.size(), Relaxed);
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SIZES: [usize; 3] = [1, 10_000, 1_000_000];
const HOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 2));
const NOW: Timestamp = Timestamp::from_millis(1_000);

fn sequence() -> Sequence {
    "7000,8000,9000:udp,10000"
        .parse()
        .expect("a valid sequence")
}

/// The `i`th source: 10.0.0.0 onwards.
fn source(i: usize) -> IpAddr {
    IpAddr::from((0x0a00_0000u32.wrapping_add(i as u32)).to_be_bytes())
}

fn hit(source: IpAddr, knock: Knock) -> Hit {
    Hit {
        source,
        destination: HOST,
        knock,
        tcp_flags: 0x02, // SYN
        src_port: 40000,
        tcp_seq: 1,
    }
}

/// The door every case knocks on.
fn door() -> DoorSpec {
    DoorSpec {
        sequence: Some(sequence()),
        seq_timeout: Duration::from_secs(25),
        tcpflags: TcpFlags::ANY,
        target: None,
    }
}

/// A tracker with `n` sources at stage 1 and room for `max` attempts, and the heap bytes it
/// holds according to the counting allocator.
fn prefilled(n: usize, max: usize) -> (Tracker, usize) {
    let before = LIVE.load(Relaxed);
    let mut tracker = Tracker::new(vec![door()], max);
    tracker.set_local_addresses(&[HOST]);
    let first = sequence().first();
    let mut events = Vec::with_capacity(4);
    for i in 0..n {
        events.clear();
        tracker.handle(NOW, &hit(source(i), first), &mut events);
    }
    assert_eq!(tracker.stats().attempts, n);
    drop(events);
    (tracker, LIVE.load(Relaxed) - before)
}

/// A small deterministic random number generator (splitmix64).
fn splitmix(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// `0..n` in a random order (splitmix64-driven Fisher-Yates; fixed seed, same every run).
fn shuffled(n: usize) -> Vec<IpAddr> {
    let mut next = splitmix(0x9e37_79b9_7f4a_7c15);
    let mut order: Vec<IpAddr> = (0..n).map(source).collect();
    for i in (1..n).rev() {
        order.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    order
}

fn report_memory(n: usize, tracker: &Tracker, heap: usize) {
    println!(
        "tracker/{n}: {} attempts, memory_bytes {} ({:.1} B/attempt), allocator {} ({:.1} B/attempt)",
        tracker.stats().attempts,
        tracker.memory_bytes(),
        tracker.memory_bytes() as f64 / n as f64,
        heap,
        heap as f64 / n as f64,
    );
}

/// Measures `handle(next_hit(i))` for the i-th iteration, then checks that the steady state
/// does not allocate by running `4 n` more hits (four rounds of `advance`) outside criterion,
/// which allocates for its own bookkeeping while it measures.
fn measure(
    c: &mut Criterion,
    name: &str,
    n: usize,
    tracker: &mut Tracker,
    mut next_hit: impl FnMut(u64) -> Hit,
) {
    let mut group = c.benchmark_group(format!("tracker/{name}"));
    group.throughput(Throughput::Elements(1));
    let mut events = Vec::with_capacity(8);
    let mut i = 0u64;
    group.bench_function(BenchmarkId::from_parameter(n), |b| {
        b.iter(|| {
            let h = next_hit(i);
            i += 1;
            events.clear();
            tracker.handle(NOW, &h, &mut events);
            black_box(events.len())
        })
    });
    group.finish();
    let check = 4 * n as u64 + 1000;
    let allocations = ALLOCATIONS.load(Relaxed);
    for _ in 0..check {
        let h = next_hit(i);
        i += 1;
        events.clear();
        tracker.handle(NOW, &h, &mut events);
    }
    println!(
        "tracker/{name}/{n}: {} allocations in {check} more hits; {} attempts at the end",
        ALLOCATIONS.load(Relaxed) - allocations,
        tracker.stats().attempts
    );
}

/// Hits per `handle_batch` call in the `*_batch` cases.
const BATCH: usize = 32;

/// Like [`measure`], through `handle_batch` with [`BATCH`] hits per call; criterion's time is
/// per hit (each sample's time divided by `BATCH`).
fn measure_batch(
    c: &mut Criterion,
    name: &str,
    n: usize,
    tracker: &mut Tracker,
    mut next_hit: impl FnMut(u64) -> Hit,
) {
    let mut group = c.benchmark_group(format!("tracker/{name}_batch"));
    group.throughput(Throughput::Elements(1));
    let mut events = Vec::with_capacity(8 * BATCH);
    let mut batch: Vec<(Timestamp, Hit)> = Vec::with_capacity(BATCH);
    let mut i = 0u64;
    let mut run = |tracker: &mut Tracker, events: &mut Vec<Event>| {
        batch.clear();
        for _ in 0..BATCH {
            batch.push((NOW, next_hit(i)));
            i += 1;
        }
        events.clear();
        let mut done = 0;
        while done < batch.len() {
            done += tracker.handle_batch(&batch[done..], events);
        }
    };
    group.bench_function(BenchmarkId::from_parameter(n), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                run(tracker, &mut events);
                black_box(events.len());
            }
            start.elapsed() / BATCH as u32
        })
    });
    group.finish();
    let check = (4 * n as u64 + 1000).div_ceil(BATCH as u64);
    let allocations = ALLOCATIONS.load(Relaxed);
    for _ in 0..check {
        run(tracker, &mut events);
    }
    println!(
        "tracker/{name}_batch/{n}: {} allocations in {} more hits; {} attempts at the end",
        ALLOCATIONS.load(Relaxed) - allocations,
        check * BATCH as u64,
        tracker.stats().attempts
    );
}

/// Round `r` of `advance` sends knock (1 + r) mod 4 to every source, in `order`: advance,
/// advance, open, start.
fn advance_hit(knocks: &[Knock], order: &[IpAddr], i: u64) -> Hit {
    let n = order.len() as u64;
    let round = i / n;
    hit(
        order[(i % n) as usize],
        knocks[((1 + round) % knocks.len() as u64) as usize],
    )
}

/// The cost of one dependent random memory access within `bytes` of memory: a pointer chase
/// through a random cycle (Sattolo's shuffle). The tracker's floor at a given size, since a
/// hit for a random source needs a few such accesses one after the other.
fn chase(c: &mut Criterion) {
    for n in SIZES {
        let (tracker, _) = prefilled(n, n);
        let bytes = tracker.memory_bytes();
        drop(tracker);
        let len = (bytes / size_of::<u32>()).max(2);
        let mut next: Vec<u32> = (0..len as u32).collect();
        let mut rng = splitmix(0x5eed);
        for i in (1..len).rev() {
            next.swap(i, (rng() % i as u64) as usize);
        }
        let mut p = 0u32;
        let mut group = c.benchmark_group("baseline/chase");
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new(format!("{bytes}B"), n), |b| {
            b.iter(|| {
                p = next[p as usize];
                p
            })
        });
        group.finish();
    }
}

fn advance(c: &mut Criterion) {
    let knocks = sequence().knocks().to_vec();
    for n in SIZES {
        let (mut tracker, heap) = prefilled(n, n);
        report_memory(n, &tracker, heap);
        let order = shuffled(n);
        measure(c, "advance", n, &mut tracker, |i| {
            advance_hit(&knocks, &order, i)
        });
    }
}

fn advance_batch(c: &mut Criterion) {
    let knocks = sequence().knocks().to_vec();
    for n in SIZES {
        let (mut tracker, _) = prefilled(n, n);
        let order = shuffled(n);
        measure_batch(c, "advance", n, &mut tracker, |i| {
            advance_hit(&knocks, &order, i)
        });
    }
}

fn repeat(c: &mut Criterion) {
    let first = sequence().first();
    for n in SIZES {
        let (mut tracker, _) = prefilled(n, n);
        let order = shuffled(n);
        measure(c, "repeat", n, &mut tracker, |i| {
            hit(order[(i % n as u64) as usize], first)
        });
    }
}

fn repeat_batch(c: &mut Criterion) {
    let first = sequence().first();
    for n in SIZES {
        let (mut tracker, _) = prefilled(n, n);
        let order = shuffled(n);
        measure_batch(c, "repeat", n, &mut tracker, |i| {
            hit(order[(i % n as u64) as usize], first)
        });
    }
}

fn evict_batch(c: &mut Criterion) {
    let first = sequence().first();
    for n in SIZES {
        let (mut tracker, _) = prefilled(n, n);
        measure_batch(c, "evict", n, &mut tracker, |i| {
            hit(source(n + i as usize), first)
        });
    }
}

fn evict(c: &mut Criterion) {
    let first = sequence().first();
    for n in SIZES {
        let (mut tracker, _) = prefilled(n, n);
        // New sources, after the n already in progress.
        measure(c, "evict", n, &mut tracker, |i| {
            hit(source(n + i as usize), first)
        });
        println!("tracker/evict/{n}: {} evicted", tracker.stats().evicted);
    }
}

/// An empty tracker filled with 100 000 first knocks from new sources, the cap as high:
/// what a spoofed flood costs while the tracker grows to its default `max_attempts` (the
/// slab and the index growing included). Criterion's time is per first knock.
fn fill(c: &mut Criterion) {
    const N: usize = 100_000;
    let mut group = c.benchmark_group("tracker/fill");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    group.bench_function(BenchmarkId::from_parameter(N), |b| {
        b.iter(|| black_box(prefilled(N, N).1))
    });
    // As the daemon under a flood: batches of the capture's size, each source new.
    group.bench_function(BenchmarkId::new("batch", N), |b| {
        let first = sequence().first();
        let hits: Vec<(Timestamp, Hit)> = (0..N).map(|i| (NOW, hit(source(i), first))).collect();
        let mut events = Vec::with_capacity(FILL_BATCH);
        b.iter(|| {
            let mut tracker = Tracker::new(vec![door()], N);
            tracker.set_local_addresses(&[HOST]);
            for batch in hits.chunks(FILL_BATCH) {
                events.clear();
                tracker.handle_batch(batch, &mut events);
            }
            assert_eq!(tracker.stats().attempts, N);
            tracker
        })
    });
    group.finish();
}

/// The capture's largest batch (`knock-server`'s `capture::MAX_BATCH`).
const FILL_BATCH: usize = 1024;

/// Inside a module: `criterion_group!` makes an undocumented `pub fn`.
mod group {
    use super::*;

    criterion_group! {
        name = benches;
        config = Criterion::default()
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        targets = advance, repeat, evict, advance_batch, repeat_batch, evict_batch, chase, fill
    }
}
criterion_main!(group::benches);
