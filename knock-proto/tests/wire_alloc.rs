//! `wire::decode` runs once per captured packet: it must not allocate. A counting allocator
//! (its own test binary, so no other test shares it) checks that for hits and for every skip.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use knock_proto::wire::{LinkType, Skip, decode};

/// Counts allocations made on the current thread, then hands them to the system allocator.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// Needed to implement `GlobalAlloc` at all; every call goes straight to `System`.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same layout contract as the caller's, passed through unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations_during<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (ALLOCATIONS.with(Cell::get) - before, out)
}

#[test]
fn decode_does_not_allocate() {
    // Ethernet, QinQ, IPv6, hop-by-hop options, TCP SYN to port 7000.
    let mut ipv6_tcp = vec![
        2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xa8, 0, 1, 0x81, 0x00,
    ];
    ipv6_tcp.extend_from_slice(&[0, 2, 0x86, 0xdd, 0x60, 0, 0, 0, 0, 28, 0, 64]);
    ipv6_tcp.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ipv6_tcp.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    ipv6_tcp.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
    ipv6_tcp.extend_from_slice(&[0x9c, 0x40, 0x1b, 0x58, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02]);
    ipv6_tcp.extend_from_slice(&[0xfa, 0xf0, 0, 0, 0, 0]);
    // Linux cooked capture v1, incoming, IPv4 UDP to port 8000 (IPv4 header checksum 0xaea9).
    let mut sll_udp = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
    sll_udp.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0xae, 0xa9]);
    sll_udp.extend_from_slice(&[
        198, 18, 0, 1, 198, 18, 0, 2, 0x9c, 0x41, 0x1f, 0x40, 0, 8, 0, 0,
    ]);

    // Raw IPv4 ICMP echo request.
    let mut icmp = vec![
        0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 1, 0xae, 0xb9, 198, 18, 0, 1, 198, 18, 0, 2,
    ];
    icmp.extend_from_slice(&[8, 0, 0, 0, 0, 1, 0, 1]);

    let cases: [(LinkType, &[u8], Result<u16, Skip>); 5] = [
        (LinkType::Ethernet, &ipv6_tcp, Ok(7000)),
        (LinkType::LinuxSll, &sll_udp, Ok(8000)),
        (LinkType::Ethernet, &ipv6_tcp[..60], Err(Skip::Truncated)),
        (
            LinkType::LinuxSll,
            &[0, 4, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0],
            Err(Skip::Outgoing),
        ),
        (LinkType::RawIp, &icmp, Err(Skip::NotTransport)),
    ];
    for (link, frame, want) in cases {
        let (allocations, got) = allocations_during(|| decode(link, frame));
        assert_eq!(got.map(|hit| hit.knock.port.get()), want, "{link:?}");
        assert_eq!(allocations, 0, "{link:?} {want:?}");
    }
    // The counter itself works: a Vec allocates.
    let (allocations, _) = allocations_during(|| vec![1u8; 16]);
    assert!(allocations >= 1);
}
