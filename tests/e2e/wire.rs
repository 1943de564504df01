//! Only real knocks, end to end: packets crafted in the client namespace with a raw socket.

use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd as _;

use knock_e2e::{CLIENT_V6, Knock, Link, SERVER_V6, Server, scratch, write};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Sets an IPv6 extension header option (`IPV6_HOPOPTS`, `IPV6_DSTOPTS`) on a raw socket:
/// the kernel puts it in every packet the socket sends.
#[allow(unsafe_code)]
fn set_extension(sock: &Socket, option: libc::c_int, header: &[u8]) -> io::Result<()> {
    // SAFETY: `header` is readable for its length during the call.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IPV6,
            option,
            header.as_ptr().cast(),
            libc::socklen_t::try_from(header.len()).expect("a short header"),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// An extension header of `len` bytes (a multiple of 8) padded with one PadN option; the
/// kernel fills in the next-header byte.
fn padded_extension(len: usize) -> Vec<u8> {
    let mut h = vec![0u8; len];
    h[1] = u8::try_from(len / 8 - 1).expect("a short header");
    h[2] = 1; // PadN
    h[3] = u8::try_from(len - 4).expect("a short header");
    h
}

/// A 20-byte TCP SYN header.
fn syn(source_port: u16, port: u16, seq: u32) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[..2].copy_from_slice(&source_port.to_be_bytes());
    h[2..4].copy_from_slice(&port.to_be_bytes());
    h[4..8].copy_from_slice(&seq.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = 0x02;
    h[14..16].copy_from_slice(&64240u16.to_be_bytes());
    h
}

#[test]
fn ipv6_knocks_behind_extension_headers_back_to_back_open_the_door() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    // A port twice: only the TCP sequence number tells those two packets apart, and it sits
    // behind 24 bytes of extension headers, past the first 64 bytes of the IPv6 packet.
    let conf = write(
        dir.path(),
        "knockd.conf",
        "[door]\n    sequence = 7000,7000,9000\n",
    );
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .interface(None)
        .start();
    let sent = link.client.enter(|| -> io::Result<()> {
        let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::TCP))?;
        set_extension(&sock, libc::IPV6_HOPOPTS, &padded_extension(8))?;
        set_extension(&sock, libc::IPV6_DSTOPTS, &padded_extension(16))?;
        let server: Ipv6Addr = SERVER_V6.parse().expect("an address");
        let to = SockAddr::from(SocketAddrV6::new(server, 0, 0, 0));
        // No pause between the knocks: 0 ms spacing.
        for (i, port) in [7000u16, 7000, 9000].into_iter().enumerate() {
            let seq = 0x1000_0000 + u32::try_from(i).expect("three");
            sock.send_to(&syn(45_000, port, seq), &to)?;
        }
        Ok(())
    });
    sent.expect("the raw IPv6 knocks were sent");
    server.wait_log(&format!("{CLIENT_V6}: door: OPEN SESAME"));
    let log = server.log();
    assert!(!log.contains("seen twice"), "{log}");
}

#[test]
fn ten_thousand_doors_get_a_filter_the_kernel_runs() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let conf = write(
        dir.path(),
        "knockd.conf",
        &knock_e2e::many_doors(10_000, ""),
    );
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .args(["-v"])
        .start();
    // With -v the capture reports where its filter runs: in the kernel, or (an ERROR line,
    // in the log file too) in user space.
    server.daemon.wait_output("BPF instructions, in the kernel");
    let log = server.log();
    assert!(!log.contains("refused the capture filter"), "{log}");
}

#[test]
fn an_address_added_after_start_is_knocked_on_and_a_mapped_source_is_not() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let conf = write(
        dir.path(),
        "knockd.conf",
        "[door]\n    sequence = 7000,8000\n[canary]\n    sequence = 7100,8100\n",
    );
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .start();
    // Forged: an IPv4-mapped IPv6 source must never open anything, not even for its IPv4
    // address. Sent first, then a canary knock that must open: so it was seen and refused.
    link.client
        .enter(|| -> io::Result<()> {
            let sock = Socket::new(
                Domain::IPV6,
                Type::RAW,
                Some(Protocol::from(libc::IPPROTO_RAW)),
            )?;
            let server: Ipv6Addr = SERVER_V6.parse().expect("an address");
            let mapped: Ipv6Addr = "::ffff:198.18.0.60".parse().expect("an address");
            let to = SockAddr::from(SocketAddrV6::new(server, 0, 0, 0));
            for (i, port) in [7000u16, 8000].into_iter().enumerate() {
                let mut packet = vec![0u8; 40];
                packet[0] = 0x60;
                packet[4..6].copy_from_slice(&20u16.to_be_bytes());
                packet[6] = 6; // TCP
                packet[7] = 64;
                packet[8..24].copy_from_slice(&mapped.octets());
                packet[24..40].copy_from_slice(&server.octets());
                packet.extend_from_slice(&syn(45_000, port, 7 + u32::try_from(i).expect("two")));
                sock.send_to(&packet, &to)?;
            }
            Ok(())
        })
        .expect("the forged knock was sent");
    // The server gains an address while running: doors without a target knock on it too.
    link.server
        .ok("ip", ["addr", "add", "198.18.0.5/24", "dev", "eth0"]);
    knock_e2e::wait_until("the new address answers", knock_e2e::PATIENCE, || {
        let out = Knock::debian(&link.client)
            .args(["198.18.0.5", "7100", "8100"])
            .output();
        out.status.success() && server.log().contains("198.18.0.1: canary: OPEN SESAME")
    });
    Knock::debian(&link.client)
        .args(["198.18.0.5", "7000", "8000"])
        .ok();
    server.wait_log("198.18.0.1: door: OPEN SESAME");
    let log = server.log();
    assert!(!log.contains("198.18.0.60"), "{log}");
    assert!(!log.contains("::ffff:"), "{log}");
}
