//! Benchmark of the rotating-door verifier under a flood: the cost of one hit on a port of
//! the current step with a wrong seal (one HMAC-SHA256, the key absorbed beforehand), the
//! same check keying the HMAC each time, a hit on a port no rotating door uses (a hash
//! lookup), and rolling to the next step (deriving 11 steps of sequences).
//!
//! Run: `cargo bench -p knock-proto --bench auth`.

use std::hint::black_box;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use knock_proto::Port;
use knock_proto::auth::seal::Sealed;
use knock_proto::auth::{Key, Nonce, PortSet, RotatingDoor, Seal, Step, Verifier};

const UNIX: u64 = 1_790_000_020;

fn verifier() -> Verifier {
    let door = RotatingDoor {
        name: "ssh".into(),
        key: Key::from_bytes([7; 32]),
        knocks: 3,
        ports: PortSet::default(),
        step_seconds: NonZeroU32::new(30).unwrap(),
        seal: Seal::On { bind_source: false },
        seq_timeout: Duration::from_secs(10),
    };
    let mut v = Verifier::new(vec![door]);
    v.roll(UNIX);
    v
}

fn bench(c: &mut Criterion) {
    let mut v = verifier();
    let src: IpAddr = "198.18.0.1".parse().unwrap();
    let step = Step::at(UNIX, NonZeroU32::new(30).unwrap());
    let port = v.doors()[0].sequence(step)[0];
    // Below the door's ports: what a flood on other ports costs once past the filter.
    let other = Port::new(80).unwrap();
    let mut seq = 0u32;
    c.bench_function("verify/wrong_seal_on_a_current_port", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(0x9e37_79b9);
            black_box(v.verify(black_box(port), Some(seq), src))
        })
    });
    // The same check keying the HMAC each time (what the verifier did before it kept each
    // door's key absorbed).
    let key = v.doors()[0].key.clone();
    let sealed = Sealed {
        door: "ssh",
        step,
        index: 0,
        port,
        nonce: Nonce(7),
        source: None,
    };
    c.bench_function("seal/wrong_seal_keying_each_time", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(0x9e37_79b9);
            black_box(sealed.verifies(&key, black_box(seq)))
        })
    });
    c.bench_function("verify/port_of_no_rotating_door", |b| {
        b.iter(|| black_box(v.verify(black_box(other), Some(1), src)))
    });
    let mut unix = UNIX;
    let mut rolling = verifier();
    c.bench_function("roll/next_step", |b| {
        b.iter(|| {
            unix += 30;
            black_box(rolling.roll(unix))
        })
    });
}

/// Inside a module: `criterion_group!` makes an undocumented `pub fn`.
mod group {
    use super::*;

    criterion_group! {
        name = benches;
        config = Criterion::default()
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        targets = bench
    }
}
criterion_main!(group::benches);
