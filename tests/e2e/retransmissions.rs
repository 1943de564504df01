//! Which senders open which doors: a door written `2,1,2010` and the same door written for
//! telnet (`02,02,02,01,01,01,2010,2010,2010`), knocked by Debian's `knock`, by our `knock
//! --hits 1..5` (raw SYNs as root, abandoned connects as nobody) and by telnet held for 1 to 6
//! SYNs per port against a DROP firewall, on knock-server and Debian's knockd side by side.
//!
//! Every case has its own link, both daemons watching the same packets, and runs beside the
//! others. The SYNs each port received are counted on the wire (the packet counters of the
//! server's DROP rules), so a row says what really arrived. After the sender, a canary door
//! knocked from a second client address (an attempt left behind by the sender cannot block
//! it in knockd) proves that every earlier packet was handled, so "did not open" needs no sleep.
//!
//! The result is a table, checked against the one in docs/replacing-knockd.md; regenerate it
//! with `KNOCK_UPDATE_ASSETS=1 cargo test -p knock-e2e --test e2e retransmissions` (as root).

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Mutex;

use knock_e2e::{
    CLIENT_V4, Knock, Link, OTHER_V4, PATIENCE, SERVER_V4, Server, scratch, wait_until,
};

/// The doors, as written in knockd.conf.
const DOORS: [&str; 2] = ["2,1,2010", "02,02,02,01,01,01,2010,2010,2010"];

/// The ports every door knocks, in order.
const PORTS: [&str; 3] = ["2", "1", "2010"];

/// Knocked from [`OTHER_V4`] once the sender is done.
const CANARY: &str = "[canary]\n    sequence = 60001,60002\n    tcpflags = syn\n";

/// Cases run at once: each is mostly waiting (telnet's retransmissions are a second apart).
const WORKERS: usize = 12;

/// Who knocks, and how many SYNs each port gets from it.
#[derive(Debug, Clone, Copy)]
enum Sender {
    /// Debian's `knock HOST 2 1 2010`, each port written `times` times.
    Debian { times: usize },
    /// Our `knock --hits N`, as root (raw) or as nobody (connect).
    Ours { hits: usize, raw: bool },
    /// telnet to each port in turn, held until `syns` SYNs reached it.
    Telnet { syns: usize },
}

impl Sender {
    /// Every row of the table, in order.
    fn all() -> Vec<Sender> {
        let mut all = vec![Sender::Debian { times: 1 }, Sender::Debian { times: 3 }];
        for raw in [true, false] {
            all.extend((1..=5).map(|hits| Sender::Ours { hits, raw }));
        }
        all.extend((1..=6).map(|syns| Sender::Telnet { syns }));
        all
    }

    /// SYNs each port should receive.
    fn syns(self) -> usize {
        match self {
            Sender::Debian { times } => times,
            Sender::Ours { hits, .. } => hits,
            Sender::Telnet { syns } => syns,
        }
    }

    /// The row's label in the table.
    fn label(self) -> String {
        match self {
            Sender::Debian { times: 1 } => "Debian's `knock HOST 2 1 2010`".to_owned(),
            Sender::Debian { times } => {
                format!("Debian's `knock`, each port written {times} times")
            }
            Sender::Ours { hits, raw: true } => format!("`knock --hits {hits}` as root (raw)"),
            Sender::Ours { hits, raw: false } => {
                format!("`knock --hits {hits}` unprivileged (connect)")
            }
            Sender::Telnet { syns: 1 } => "telnet, 1 SYN per port".to_owned(),
            Sender::Telnet { syns } => format!("telnet, {syns} SYNs per port"),
        }
    }

    /// Knocks the three ports from the client host.
    fn knock(self, link: &Link, dir: &Path, server: &Firewall) {
        match self {
            Sender::Debian { times } => {
                let mut args = vec![SERVER_V4];
                for port in PORTS {
                    args.extend(std::iter::repeat_n(port, times));
                }
                Knock::debian(&link.client).args(&args).ok();
            }
            Sender::Ours { hits, raw } => {
                Knock::ours(&link.client)
                    .unprivileged(!raw)
                    .args(["--hits", &hits.to_string(), SERVER_V4])
                    .args(PORTS)
                    .config_home(dir)
                    .ok();
            }
            Sender::Telnet { syns } => telnet(link, server, syns),
        }
    }
}

/// telnet to each port in turn, as a person knocking by hand: the server drops the SYN, the
/// client's kernel retransmits it once a second (linear timeouts) up to `syns - 1` times, and
/// telnet is stopped once `syns` SYNs reached the port. Closing a socket in SYN-SENT sends
/// nothing more.
fn telnet(link: &Link, server: &Firewall, syns: usize) {
    // At least 1: the kernel refuses 0 retries. One SYN is then telnet stopped before the
    // first retransmission, a second later.
    let retries = (syns - 1).max(1).to_string();
    link.client.sysctl("net.ipv4.tcp_syn_retries", &retries);
    let linear = Path::new("/proc/sys/net/ipv4/tcp_syn_linear_timeouts").exists();
    if linear {
        link.client.sysctl("net.ipv4.tcp_syn_linear_timeouts", "6");
    }
    // Exponential backoff (kernels without linear timeouts) doubles every wait: 1+2+4+8+16 s.
    let hold = if linear { PATIENCE } else { PATIENCE * 3 };
    for port in PORTS {
        let mut telnet = Knock::telnet(&link.client).args([SERVER_V4, port]).spawn();
        wait_until(
            &format!("{syns} SYNs from telnet to port {port}"),
            hold,
            || server.syns(port) >= syns,
        );
        telnet.kill();
    }
}

/// The server host's firewall: a DROP rule per door port, whose counters count the SYNs.
struct Firewall<'a> {
    link: &'a Link,
}

impl Firewall<'_> {
    fn drop_door_ports(link: &Link) -> Firewall<'_> {
        for port in PORTS {
            link.server.ok(
                "iptables",
                [
                    "-w", "-A", "INPUT", "-p", "tcp", "--dport", port, "-j", "DROP",
                ],
            );
        }
        Firewall { link }
    }

    /// Packets the DROP rule for `port` has dropped.
    fn syns(&self, port: &str) -> usize {
        let rules = self
            .link
            .server
            .output("iptables", ["-w", "-n", "-v", "-x", "-L", "INPUT"]);
        let dpt = format!("dpt:{port}");
        rules
            .lines()
            .find(|l| l.split_whitespace().any(|w| w == dpt))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

/// Whether each daemon opened the door: (knock-server, knockd).
fn run_case(sender: Sender, door: &str) -> (bool, bool) {
    let link = Link::up().expect("root was checked before");
    let dir = scratch();
    // `nobody` runs our knock with this as its config directory (there is no config).
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let section =
        format!("[door]\n    sequence = {door}\n    seq_timeout = 30\n    tcpflags = syn\n\n");
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config_text("server.conf", &format!("{section}{CANARY}"))
        .start();
    let mut knockd = Server::knockd(&link.server)
        .dir(dir.path())
        .config_text("knockd.conf", &format!("{section}{CANARY}"))
        .start();
    let firewall = Firewall::drop_door_ports(&link);

    sender.knock(&link, dir.path(), &firewall);
    for port in PORTS {
        assert_eq!(
            firewall.syns(port),
            sender.syns(),
            "SYNs on the wire to port {port} from {}",
            sender.label()
        );
    }
    // The canary, from another address: it starts fresh in knockd whatever the sender left.
    link.client
        .add_address("eth0", &format!("{OTHER_V4}/24"), &[]);
    link.client.ok(
        "ip",
        [
            "route",
            "replace",
            &format!("{SERVER_V4}/32"),
            "dev",
            "eth0",
            "src",
            OTHER_V4,
        ],
    );
    Knock::debian(&link.client)
        .args([SERVER_V4, "60001", "60002"])
        .ok();
    let canary = format!("{OTHER_V4}: canary: OPEN SESAME");
    server.wait_log(&canary);
    knockd.wait_log(&canary);
    let opened = format!("{CLIENT_V4}: door: OPEN SESAME");
    (
        server.log().contains(&opened),
        knockd.log().contains(&opened),
    )
}

/// The table: a row per sender, a column per door and daemon.
fn table(results: &[(Sender, [(bool, bool); 2])]) -> String {
    let mut t = String::from("| sender |");
    for door in DOORS {
        for daemon in ["knock-server", "knockd"] {
            let _ = write!(t, " `{door}` on {daemon} |");
        }
    }
    t.push_str("\n|---|---|---|---|---|\n");
    let mark = |open: bool| if open { "opens" } else { "-" };
    for (sender, doors) in results {
        let _ = write!(t, "| {} |", sender.label());
        for (ours, theirs) in doors {
            let _ = write!(t, " {} | {} |", mark(*ours), mark(*theirs));
        }
        t.push('\n');
    }
    t
}

const BEGIN: &str = "<!-- retransmissions table: generated by tests/e2e/retransmissions.rs -->\n";
const END: &str = "<!-- end of retransmissions table -->\n";

/// Compares `table` with docs/replacing-knockd.md's, or writes it there with
/// `KNOCK_UPDATE_ASSETS=1`.
fn check_doc(table: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/replacing-knockd.md");
    let doc = fs::read_to_string(&path).expect("read docs/replacing-knockd.md");
    let (Some(start), Some(end)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!(
            "docs/replacing-knockd.md has no `{}` ... `{}` block",
            BEGIN.trim(),
            END.trim()
        );
    };
    let have = &doc[start + BEGIN.len()..end];
    if have == table {
        return;
    }
    if std::env::var_os("KNOCK_UPDATE_ASSETS").is_some_and(|v| v == "1") {
        let updated = format!("{}{BEGIN}{table}{}", &doc[..start], &doc[end..]);
        fs::write(&path, updated).expect("write docs/replacing-knockd.md");
        return;
    }
    panic!(
        "docs/replacing-knockd.md's table differs from what the daemons did; if the change is \
         intended, regenerate it with `KNOCK_UPDATE_ASSETS=1 cargo test -p knock-e2e --test e2e \
         retransmissions` (as root).\n--- docs/replacing-knockd.md:\n{have}--- measured:\n{table}"
    );
}

#[test]
fn which_senders_open_which_doors_matches_the_docs_table() {
    // Checked once here: the cases build their own links in worker threads.
    if !knock_e2e::root_or_skip() {
        return;
    }
    let senders = Sender::all();
    let cases: Vec<(usize, usize)> = (0..senders.len())
        .flat_map(|s| (0..DOORS.len()).map(move |d| (s, d)))
        .collect();
    // Popped from the end: the longest cases (telnet, most SYNs per port) start first, so
    // that they do not finish last.
    let queue = Mutex::new(cases);
    let results = Mutex::new(vec![[(false, false); 2]; senders.len()]);
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                while let Some((s, d)) = queue.lock().unwrap().pop() {
                    let outcome = run_case(senders[s], DOORS[d]);
                    results.lock().unwrap()[s][d] = outcome;
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let rows: Vec<_> = senders.into_iter().zip(results).collect();
    check_doc(&table(&rows));
}

#[test]
fn the_table_has_a_row_per_sender_and_a_column_per_door_and_daemon() {
    let rows = [(Sender::Telnet { syns: 3 }, [(true, false), (true, true)])];
    assert_eq!(
        table(&rows),
        "| sender | `2,1,2010` on knock-server | `2,1,2010` on knockd | \
         `02,02,02,01,01,01,2010,2010,2010` on knock-server | \
         `02,02,02,01,01,01,2010,2010,2010` on knockd |\n\
         |---|---|---|---|---|\n\
         | telnet, 3 SYNs per port | opens | - | opens | opens |\n"
    );
}
