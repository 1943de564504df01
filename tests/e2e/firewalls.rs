//! `open` and `forward` doors with the user's own firewall in place, for each firewall a router
//! runs: Debian's nftables.conf, OpenWrt's fw4 ruleset, iptables-legacy and iptables-nft (with
//! ip6tables of the same kind) and ufw, each default-deny, loaded on the [`Router`] from the
//! files in tests/data/firewalls (ufw from its own package files). The knocker is the outside
//! host; its second addresses ([`OTHER_V4`], [`OTHER_V6`]) play someone who did not knock.
//!
//! For each firewall and each kind of door (a local port opened, a port forwarded to the LAN
//! host, a port the user's own DNAT forwards and the door guards) one test walks the whole
//! story: the fixture does what it says, and so does its reload; before the knock nobody gets
//! in; after it the knocker does and the other address does not; the firewall's reload is
//! followed within a second; after `open_seconds` new connections are turned away and one made
//! during the window still carries data; a second knock opens again; after SIGTERM the ruleset
//! is the one from before the start (`nft -s list ruleset` and the four `*tables-save`, without
//! counters). One more test per firewall checks that `firewall_integration = false` leaves the
//! user's rules alone. Connections are made from a thread that joined the outside namespace,
//! bound to the source address the check is about, and each wait polls its condition.

mod reach;
mod ruleset;
mod setup;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use knock_e2e::{
    Daemon, Knock, LAN_V4, LAN_V6, Netns, OTHER_V4, OTHER_V6, OUTSIDE_V4, OUTSIDE_V6,
    ROUTER_WAN_V4, ROUTER_WAN_V6, Router, RunningServer, Server, scratch,
};

use reach::{Attempt, Held, Reach};
use ruleset::{Ruleset, assert_same};
use setup::Firewall;

/// The service port whose connections are the checks (a `nc -lk` behind it).
const PROBE_PORT: u16 = 4000;
/// The service port of the connection held across the reload and the window's end.
const HELD_PORT: u16 = 4001;
/// The router's ports that the IPv4 forward door sends to [`PROBE_PORT`] and [`HELD_PORT`] of
/// [`LAN_V4`]; the IPv6 one has its own (a door per family, no port shared between them).
const FORWARD_V4: [u16; 2] = [2222, 2223];
/// [`FORWARD_V4`] for the IPv6 forward door, to [`LAN_V6`].
const FORWARD_V6: [u16; 2] = [2224, 2225];
/// How long after the daemon's "OPEN SESAME" the knocker may wait to get in.
const OPENS_WITHIN: Duration = Duration::from_secs(5);
/// How long knock-server may take to follow a reload of the firewall (its guard back, the
/// knocker let in again): the second, and one more for a loaded machine.
const RELOAD_FOLLOWED_WITHIN: Duration = Duration::from_secs(2);
/// How long past `open_seconds` a new connection may still get in.
const CLOSE_SLACK: Duration = Duration::from_secs(5);

/// One family's way in: who knocks how, and where they connect from outside.
struct Way {
    /// The knocker's address.
    knocker: &'static str,
    /// The outside host's address that does not knock.
    other: &'static str,
    /// Debian knock's arguments.
    knock: Vec<&'static str>,
    /// The door that opens, as the log names it.
    door: &'static str,
    /// Where the checks connect to.
    probe: SocketAddr,
    /// Where the held connection goes.
    held: SocketAddr,
    /// Whether the service listens on IPv6.
    v6: bool,
}

impl Way {
    /// The knocker's attempts at the probe port.
    fn knocker<'a>(&'a self, outside: &'a Netns) -> Attempt<'a> {
        Attempt {
            outside,
            from: self.knocker,
            to: self.probe,
        }
    }

    /// The knocker's attempt at the held port.
    fn knocker_held<'a>(&'a self, outside: &'a Netns) -> Attempt<'a> {
        Attempt {
            outside,
            from: self.knocker,
            to: self.held,
        }
    }

    /// The other address's attempts at the probe port.
    fn other<'a>(&'a self, outside: &'a Netns) -> Attempt<'a> {
        Attempt {
            outside,
            from: self.other,
            to: self.probe,
        }
    }

    /// Knocks from the outside host.
    fn knock(&self, outside: &Netns) {
        Knock::debian(outside).args(&self.knock).ok();
    }

    /// The daemon's line for this way's knock.
    fn opened(&self) -> String {
        format!("{}: {}: OPEN SESAME", self.knocker, self.door)
    }

    /// The file a listener of this way's family writes to: `DIR/{name}-{4,6}.out`.
    fn out(&self, dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{name}-{}.out", if self.v6 { 6 } else { 4 }))
    }
}

/// The kind of door a test opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    /// `open` of the router's own ports.
    Open,
    /// `forward` of the router's ports to the LAN host.
    Forward,
    /// `open` of ports that the user's own DNAT forwards to the LAN host.
    ForwardedOpen,
}

impl Door {
    /// The ways in: IPv4 and IPv6, but IPv4 only through the user's DNAT.
    fn ways(self) -> Vec<Way> {
        let at = |ip: &str, port: u16| SocketAddr::new(ip.parse().expect("an address"), port);
        let v4 = |door, ports: [u16; 2]| Way {
            knocker: OUTSIDE_V4,
            other: OTHER_V4,
            knock: vec![ROUTER_WAN_V4, "7000", "8000"],
            door,
            probe: at(ROUTER_WAN_V4, ports[0]),
            held: at(ROUTER_WAN_V4, ports[1]),
            v6: false,
        };
        let v6 = |door, knock: [&'static str; 2], ports: [u16; 2]| Way {
            knocker: OUTSIDE_V6,
            other: OTHER_V6,
            knock: vec!["-6", ROUTER_WAN_V6, knock[0], knock[1]],
            door,
            probe: at(ROUTER_WAN_V6, ports[0]),
            held: at(ROUTER_WAN_V6, ports[1]),
            v6: true,
        };
        let service = [PROBE_PORT, HELD_PORT];
        match self {
            Door::Open => vec![v4("door", service), v6("door", ["7000", "8000"], service)],
            Door::Forward => vec![
                v4("fwd4", FORWARD_V4),
                v6("fwd6", ["7100", "8100"], FORWARD_V6),
            ],
            Door::ForwardedOpen => vec![v4("door", service)],
        }
    }

    /// Whether the user's firewall forwards the service ports to the LAN host itself.
    fn user_dnat(self) -> bool {
        self == Door::ForwardedOpen
    }

    /// The host the service runs on.
    fn service_host(self, r: &Router) -> &Netns {
        if self == Door::Open {
            &r.router
        } else {
            &r.lan
        }
    }

    /// knock-server's config: the door(s) with `open_seconds = window`, and
    /// `firewall_integration = false` unless `integration`.
    fn config(self, window: u64, integration: bool) -> String {
        let door = |name: &str, sequence: &str, action: String| {
            format!(
                "[doors.{name}]\nsequence = \"{sequence}\"\n{action}\nopen_seconds = {window}\n\n"
            )
        };
        let forward = |ip: &str, ports: [u16; 2]| {
            let to = |outside: u16, inside: u16| format!("\"{outside}/tcp -> {ip}:{inside}\"");
            format!(
                "forward = [{}, {}]",
                to(ports[0], PROBE_PORT),
                to(ports[1], HELD_PORT)
            )
        };
        let mut config = String::new();
        if !integration {
            config.push_str("[options]\nfirewall_integration = false\n\n");
        }
        match self {
            Door::Open | Door::ForwardedOpen => config.push_str(&door(
                "door",
                "7000,8000",
                format!("open = [\"{PROBE_PORT}/tcp\", \"{HELD_PORT}/tcp\"]"),
            )),
            Door::Forward => {
                config.push_str(&door("fwd4", "7000,8000", forward(LAN_V4, FORWARD_V4)));
                let lan_v6 = format!("[{LAN_V6}]");
                config.push_str(&door("fwd6", "7100,8100", forward(&lan_v6, FORWARD_V6)));
            }
        }
        config
    }
}

/// Gives the outside host its second addresses, the IPv6 one deprecated so that the kernel
/// never picks it as the source of a knock.
fn add_other_addresses(outside: &Netns) {
    outside.add_address("eth0", &format!("{OTHER_V4}/24"), &[]);
    outside.add_address("eth0", &format!("{OTHER_V6}/64"), &["preferred_lft", "0"]);
}

/// For each way, a `nc -lk` on the probe port and a `nc -l` on the held port of `host`,
/// writing to [`Way::out`] `probe` and `held`.
fn listen(host: &Netns, ways: &[Way], dir: &Path) -> Vec<Daemon> {
    let mut listeners = Vec::new();
    for w in ways {
        for (keep, port, name) in [(true, PROBE_PORT, "probe"), (false, HELD_PORT, "held")] {
            listeners.push(host.listen_tcp(w.v6, keep, port, &w.out(dir, name)));
        }
    }
    listeners
}

/// The window of a test's doors: long enough for the checks around the firewall's reload,
/// which for ufw takes seconds.
fn window_for(reload: Duration) -> u64 {
    4 + (2.0 * reload.as_secs_f64()).ceil() as u64
}

/// Stops the daemon with SIGTERM and asserts that it exited 0 and left the rules as `before`.
fn stop(mut server: RunningServer, router: &Netns, before: &Ruleset) {
    server.daemon.signal("TERM");
    let status = server.daemon.wait_exit();
    assert!(status.success(), "exit status {status}:\n{}", server.log());
    assert_same(before, &Ruleset::of(Some(router)), "after SIGTERM");
}

/// The whole story of `door` behind `firewall` (see the module doc).
fn door_behind(firewall: Firewall, door: Door) {
    let Some(r) = Router::up() else { return };
    let out = &r.outside;
    add_other_addresses(out);
    let dir = scratch();
    let d = dir.path();
    let ways = door.ways();
    let _listeners = listen(door.service_host(&r), &ways, d);
    let fw = firewall.load(&r.router, door.user_dnat());
    let before = Ruleset::of(Some(&r.router));
    // The fixture does what it says: nobody gets in, or, through the user's own port
    // forwards, everybody.
    let as_the_firewall_alone_decides = |when: &str| {
        for w in &ways {
            for attempt in [w.knocker(out), w.other(out)] {
                let got = attempt.reach();
                let to = attempt.to;
                let want = door.user_dnat();
                assert_eq!(
                    got == Reach::Connected,
                    want,
                    "{when}: {} to {to}: {got:?}",
                    attempt.from
                );
            }
        }
    };
    as_the_firewall_alone_decides(&format!("{firewall:?} alone"));
    let took = fw.reload();
    assert_same(
        &before,
        &Ruleset::of(Some(&r.router)),
        "after a reload of the firewall alone",
    );
    let window = window_for(took);

    let mut server = Server::new(&r.router)
        .interface(Some("wan"))
        .dir(d)
        .config_text("server.toml", &door.config(window, true))
        .start();
    for w in &ways {
        w.knocker(out).assert_blocked("before the knock");
        w.other(out).assert_blocked("before the knock");
    }

    let mut held = Vec::new();
    for w in &ways {
        w.knock(out);
        server.wait_log(&w.opened());
        w.knocker(out)
            .wait_connects(OPENS_WITHIN, "after the knock");
    }
    for w in &ways {
        w.other(out).assert_blocked("while the door is open");
        let mut h = Held::open(w.knocker_held(out), &w.out(d, "held"));
        h.send(&format!("{} sent while the door is open", w.knocker));
        held.push(h);
    }

    // Until knock-server follows, the firewall alone decides: through the user's port
    // forwards, everybody gets in. So first the other address is turned away again, then
    // the knocker gets in again.
    fw.reload();
    for (w, h) in ways.iter().zip(&mut held) {
        let when = "after the firewall's reload";
        w.other(out).wait_blocked(RELOAD_FOLLOWED_WITHIN, when);
        w.knocker(out).wait_connects(RELOAD_FOLLOWED_WITHIN, when);
        h.send(&format!("{} sent after the firewall's reload", w.knocker));
    }

    let closes_within = Duration::from_secs(window) + CLOSE_SLACK;
    for (w, h) in ways.iter().zip(&mut held) {
        w.knocker(out)
            .wait_blocked(closes_within, "after open_seconds");
        w.other(out).assert_blocked("after open_seconds");
        h.send(&format!("{} sent after the window closed", w.knocker));
    }

    for w in &ways {
        w.knock(out);
        server.wait_log_count(&w.opened(), 2);
        w.knocker(out)
            .wait_connects(OPENS_WITHIN, "after a second knock");
    }

    stop(server, &r.router, &before);
    as_the_firewall_alone_decides("after SIGTERM");
}

/// `firewall_integration = false`: with a door open, the user's rules are as they were (only
/// knock-server's own table is new) and their default deny still turns the knocker away, as
/// without integration; after SIGTERM everything is as before.
fn integration_off(firewall: Firewall) {
    let Some(r) = Router::up() else { return };
    let out = &r.outside;
    add_other_addresses(out);
    let dir = scratch();
    let d = dir.path();
    let ways = Door::Open.ways();
    let _listeners = listen(&r.router, &ways, d);
    let _fw = firewall.load(&r.router, false);
    let before = Ruleset::of(Some(&r.router));
    let mut server = Server::new(&r.router)
        .interface(Some("wan"))
        .dir(d)
        .config_text("server.toml", &Door::Open.config(600, false))
        .start();
    for w in &ways {
        w.knock(out);
        server.wait_log(&format!("{}: door: opened ", w.knocker));
    }
    let during = Ruleset::of(Some(&r.router)).without_own_table();
    assert_same(
        &before,
        &during,
        "with a door open and firewall_integration = false",
    );
    for w in &ways {
        w.knocker(out)
            .assert_blocked("firewall_integration = false: the user's default deny");
    }
    stop(server, &r.router, &before);
}

/// The four tests of each firewall, in a module named after it.
macro_rules! behind {
    ($($module:ident: $firewall:expr;)*) => {$(
        mod $module {
            use super::{Door, Firewall, door_behind, integration_off};

            #[test]
            fn open_door_lets_in_the_knocker_alone_and_survives_a_reload() {
                door_behind($firewall, Door::Open);
            }

            #[test]
            fn forward_door_forwards_for_the_knocker_alone_and_survives_a_reload() {
                door_behind($firewall, Door::Forward);
            }

            #[test]
            fn a_port_the_user_forwards_is_guarded_like_a_local_one() {
                door_behind($firewall, Door::ForwardedOpen);
            }

            #[test]
            fn integration_off_leaves_the_users_rules_alone() {
                integration_off($firewall);
            }
        }
    )*};
}

behind! {
    nftables: Firewall::Nftables;
    fw4: Firewall::Fw4;
    iptables_legacy: Firewall::IptablesLegacy;
    iptables_nft: Firewall::IptablesNft;
    ufw: Firewall::Ufw;
}
