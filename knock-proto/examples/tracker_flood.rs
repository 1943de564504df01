//! The tracker under a flood of spoofed first knocks, once, for an instruction count: unlike
//! criterion's times, callgrind's count is the same from run to run on a shared machine, so
//! it shows a change of a few percent. BENCHMARKS.md has the numbers.
//!
//! ```text
//! cargo build --release -p knock-proto --example tracker_flood
//! valgrind --tool=callgrind target/release/examples/tracker_flood fill   # or: evict
//! ```
//!
//! `fill`: 100 000 first knocks from new sources into an empty tracker with room for them all
//! (the default `max_attempts`), as the capture hands them over: batches of 1024. `evict`: the
//! same flood with `max_attempts 1000`, so each knock evicts one.

use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::time::Duration;

use knock_proto::tracker::{DoorSpec, Tracker};
use knock_proto::wire::Hit;
use knock_proto::{Sequence, TcpFlags, Timestamp};

const HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
const KNOCKS: usize = 100_000;
/// The capture's largest batch (`knock-server`'s `capture::MAX_BATCH`).
const BATCH: usize = 1024;

fn main() -> ExitCode {
    let max = match std::env::args().nth(1).as_deref() {
        Some("fill") => KNOCKS,
        Some("evict") => 1000,
        _ => {
            eprintln!("usage: tracker_flood fill|evict");
            return ExitCode::from(2);
        }
    };
    let sequence: Sequence = "7000,8000,9000:udp,10000"
        .parse()
        .expect("a valid sequence");
    let first = sequence.first();
    let door = DoorSpec {
        sequence: Some(sequence),
        seq_timeout: Duration::from_secs(25),
        tcpflags: TcpFlags::ANY,
        target: None,
    };
    let mut tracker = Tracker::new(vec![door], max);
    tracker.set_local_addresses(&[HOST]);
    // 50 000 a second, from 198.18.0.0 on (the benchmarking range, as the flood bench).
    let hits: Vec<(Timestamp, Hit)> = (0..KNOCKS)
        .map(|i| {
            let source = IpAddr::V4(Ipv4Addr::from(0xc612_0000u32 + i as u32));
            let hit = Hit {
                source,
                destination: HOST,
                knock: first,
                tcp_flags: 0x02,
                src_port: 40000,
                tcp_seq: 1,
            };
            (Timestamp::from_millis(1000 + (i / 50) as u64), hit)
        })
        .collect();
    let mut events = Vec::with_capacity(2 * BATCH);
    for batch in hits.chunks(BATCH) {
        events.clear();
        let mut done = 0;
        while done < batch.len() {
            done += tracker.handle_batch(&batch[done..], &mut events);
        }
    }
    println!("{:?}", tracker.stats());
    ExitCode::SUCCESS
}
