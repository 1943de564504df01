//! Our client against our server, the way the toolkit is meant to be used: `knock home
//! wake-laptop` from a profile, with telnet-style hits, as root (raw SYNs whose hits of one
//! port are identical, like a kernel's retransmissions) and unprivileged, IPv4 and IPv6.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use knock_e2e::{CLIENT_V4, CLIENT_V6, Knock, Link, SERVER_V4, SERVER_V6, Server, scratch, write};

/// A knock-server door written for telnet: three SYNs per port.
const TELNET_DOOR: &str =
    "[telnet]\n    sequence = 04,04,04,2012,2012,2012,03,03,03\n    tcpflags = syn\n";

fn profile(host: &str) -> String {
    format!(
        "[profiles.home]\nhost = \"{host}\"\nhits = 3\n\n[profiles.home.sequences]\nwake-laptop = \"4,2012,3\"\nmixed = {{ sequence = \"7000,8000:udp,9000\", hits = 1 }}\n"
    )
}

fn readable_dir() -> tempfile::TempDir {
    let dir = scratch();
    // `nobody` must read the profile file.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[test]
fn a_telnet_style_profile_opens_a_knock_server_door_as_root_and_unprivileged() {
    let Some(link) = Link::up() else { return };
    let dir = readable_dir();
    let conf = write(dir.path(), "knockd.conf", TELNET_DOOR);
    let client = write(dir.path(), "client.toml", &profile(SERVER_V4));
    fs::set_permissions(&client, fs::Permissions::from_mode(0o644)).unwrap();
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .start();

    let out = Knock::ours(&link.client)
        .arg("--config")
        .arg(&client)
        .args(["-v", "home", "wake-laptop"])
        .ok();
    assert!(String::from_utf8_lossy(&out.stdout).contains("hitting tcp 198.18.0.2:4"));
    server.wait_log(&format!("{CLIENT_V4}: telnet: OPEN SESAME"));
    let log = server.log();
    assert_eq!(log.matches("telnet: Stage 9").count(), 1, "{log}");
    assert!(!log.contains("sequence broken"), "{log}");

    Knock::ours(&link.client)
        .unprivileged(true)
        .arg("--config")
        .arg(&client)
        .args(["home", "wake-laptop"])
        .ok();
    server.wait_log_count(&format!("{CLIENT_V4}: telnet: OPEN SESAME"), 2);
}

#[test]
fn profiles_knock_mixed_protocols_and_ipv6() {
    let Some(link) = Link::up() else { return };
    let dir = readable_dir();
    let conf = write(
        dir.path(),
        "knockd.conf",
        &format!("{TELNET_DOOR}[mixed]\n    sequence = 7000,8000:udp,9000\n"),
    );
    let client = write(dir.path(), "client.toml", &profile(SERVER_V6));
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .start();
    Knock::ours(&link.client)
        .arg("--config")
        .arg(&client)
        .args(["home", "mixed"])
        .ok();
    server.wait_log(&format!("{CLIENT_V6}: mixed: OPEN SESAME"));
    Knock::ours(&link.client)
        .arg("--config")
        .arg(&client)
        .args(["home", "wake-laptop"])
        .ok();
    server.wait_log(&format!("{CLIENT_V6}: telnet: OPEN SESAME"));
    Knock::ours(&link.client)
        .arg("--config")
        .arg(&client)
        .args([SERVER_V4, "7000", "8000:udp", "9000"])
        .ok();
    server.wait_log(&format!("{CLIENT_V4}: mixed: OPEN SESAME"));
}

/// A profile with `hits = 3` and no delay anywhere sends the hits of one port back to back
/// (raw IPv4 SYNs tell themselves apart by their IP ID, as a kernel's retransmissions do), and
/// still opens a telnet-style door on a server capturing on `any`, which drops copies of one
/// packet seen within milliseconds. Over IPv6, whose SYNs carry no IP ID, the hits keep the
/// least gap that tells them from copies, unless a hit delay is set.
#[test]
fn back_to_back_hits_open_a_telnet_door_on_a_server_listening_on_any() {
    let Some(link) = Link::up() else { return };
    let dir = readable_dir();
    let conf = write(dir.path(), "knockd.conf", TELNET_DOOR);
    let client = write(dir.path(), "client.toml", &profile(SERVER_V4));
    let client6 = write(dir.path(), "client6.toml", &profile(SERVER_V6));
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .interface(None)
        .start();

    Knock::ours(&link.client)
        .arg("--config")
        .arg(&client)
        .args(["home", "wake-laptop"])
        .ok();
    server.wait_log(&format!("{CLIENT_V4}: telnet: OPEN SESAME"));
    Knock::ours(&link.client)
        .arg("--config")
        .arg(&client)
        .args(["--hit-delay", "0", "home", "wake-laptop"])
        .ok();
    server.wait_log_count(&format!("{CLIENT_V4}: telnet: OPEN SESAME"), 2);
    Knock::ours(&link.client)
        .arg("--config")
        .arg(&client6)
        .args(["home", "wake-laptop"])
        .ok();
    server.wait_log(&format!("{CLIENT_V6}: telnet: OPEN SESAME"));
    let log = server.log();
    assert!(!log.contains("sequence broken"), "{log}");
}
