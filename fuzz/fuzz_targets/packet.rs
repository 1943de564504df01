//! Fuzzes packet decoding: the first byte picks the link type, the rest is the frame.
//!
//! Besides "never panics", it checks what must hold for any bytes: a hit's addresses are of one
//! family, UDP hits carry no TCP flags, and a frame cut short decodes either to `Truncated` or
//! to exactly what the whole frame decodes to (decoding never reads past what it needs).
#![no_main]

use knock_proto::Proto;
use knock_proto::wire::{LinkType, Skip, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    let link = LinkType::ALL[usize::from(pick) % LinkType::ALL.len()];
    let whole = decode(link, frame);
    if let Ok(hit) = whole {
        assert_eq!(hit.source.is_ipv4(), hit.destination.is_ipv4(), "{hit:?}");
        if hit.knock.proto == Proto::Udp {
            assert_eq!(hit.tcp_flags, 0, "{hit:?}");
        }
    }
    // Two cuts rather than every one, to keep each run cheap.
    for len in [frame.len() / 2, frame.len().saturating_sub(1)] {
        let cut = decode(link, &frame[..len]);
        assert!(
            cut == Err(Skip::Truncated) || cut == whole,
            "{link:?}: cut at {len} gives {cut:?}, whole frame {whole:?}"
        );
    }
});
