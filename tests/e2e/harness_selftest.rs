//! The harness itself: a link carries traffic both ways, the router forwards between its WAN
//! and its LAN, and namespaces are removed.

use std::process::Command;

use knock_e2e::{LAN_V4, LAN_V6, Link, Netns, Router, SERVER_V4, SERVER_V6, scratch};

/// The namespaces that exist now.
fn namespaces() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pings `to` from `from` once (`-6` for an IPv6 address) and asserts it answered.
fn ping(from: &Netns, to: &str) {
    let family = if to.contains(':') { "-6" } else { "-4" };
    let out = from.run("ping", [family, "-c1", "-W5", to]);
    assert!(
        out.status.success(),
        "ping {to} from {}: {}",
        from.name,
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn link_carries_ipv4_and_ipv6_and_cleans_up() {
    let names;
    {
        let Some(link) = Link::up() else { return };
        names = (link.client.name.clone(), link.server.name.clone());
        ping(&link.client, SERVER_V4);
        ping(&link.client, SERVER_V6);
    }
    let list = namespaces();
    assert!(
        !list.contains(&names.0) && !list.contains(&names.1),
        "namespaces left behind: {list}"
    );
}

#[test]
fn the_router_forwards_between_outside_and_lan_and_cleans_up() {
    let names;
    {
        let Some(r) = Router::up() else { return };
        names = [&r.outside, &r.router, &r.lan].map(|ns| ns.name.clone());
        ping(&r.outside, LAN_V4);
        ping(&r.outside, LAN_V6);
        ping(&r.lan, knock_e2e::OUTSIDE_V4);
        ping(&r.lan, knock_e2e::OUTSIDE_V6);
        // A TCP service on the LAN host answers a client outside, through the router.
        let dir = scratch();
        for (v6, to) in [(false, LAN_V4), (true, LAN_V6)] {
            let _nc = r.lan.listen_tcp(v6, true, 4000, &dir.path().join("nc.out"));
            let out = r
                .outside
                .run("nc", ["-z", "-v", "-n", "-w", "5", to, "4000"]);
            assert!(
                out.status.success(),
                "nc to {to}:4000 from outside: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let list = namespaces();
    assert!(
        names.iter().all(|n| !list.contains(n.as_str())),
        "namespaces left behind: {list}"
    );
}
