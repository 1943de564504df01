//! The firewalls the tests load on the router, from tests/data/firewalls, and their reloads;
//! ufw with an /etc of its own in /etc/netns/NAME, never the host's.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use knock_e2e::{LAN_V4, Netns, read};

use super::ruleset::{Ruleset, assert_same};
use super::{HELD_PORT, PROBE_PORT};

/// The firewall on the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Firewall {
    /// Debian's /etc/nftables.conf made default-deny.
    Nftables,
    /// OpenWrt's fw4 ruleset, as fw4 prints it.
    Fw4,
    /// iptables-persistent's rules.v4 and rules.v6 through iptables-legacy.
    IptablesLegacy,
    /// The same rules through iptables-nft.
    IptablesNft,
    /// ufw enabled, with its default `deny incoming` (and routed).
    Ufw,
}

/// A fixture file of tests/data/firewalls.
pub(super) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/firewalls")
        .join(name)
}

impl Firewall {
    /// Loads it on `router`: the user's default deny, and with `user_dnat` their own port
    /// forwards of [`PROBE_PORT`] and [`HELD_PORT`] to the LAN host.
    pub(super) fn load(self, router: &Netns, user_dnat: bool) -> Loaded<'_> {
        let etc = (self == Firewall::Ufw).then(|| enable_ufw(router, user_dnat));
        let loaded = Loaded {
            firewall: self,
            ns: router,
            user_dnat,
            _etc: etc,
        };
        if self != Firewall::Ufw {
            loaded.apply();
        }
        loaded
    }
}

/// A firewall loaded on the router; for ufw, with its own /etc there.
pub(super) struct Loaded<'a> {
    firewall: Firewall,
    ns: &'a Netns,
    user_dnat: bool,
    _etc: Option<NetnsEtc>,
}

impl Loaded<'_> {
    /// The nftables file of an nftables firewall.
    pub(super) fn nft_file(&self) -> PathBuf {
        let name = match (self.firewall, self.user_dnat) {
            (Firewall::Nftables, false) => "debian-nftables.conf",
            (Firewall::Nftables, true) => "debian-nftables-dnat.conf",
            (Firewall::Fw4, false) => "fw4.nft",
            (Firewall::Fw4, true) => "fw4-dnat.nft",
            _ => unreachable!("{:?} is no nftables file", self.firewall),
        };
        fixture(name)
    }

    /// Loads the user's files as the firewall's own tools do at boot (not ufw's, which
    /// [`enable_ufw`] starts).
    pub(super) fn apply(&self) {
        let restore = |v4: &str, v6: &str| {
            let rules4 = if self.user_dnat {
                "iptables-dnat.rules.v4"
            } else {
                "iptables.rules.v4"
            };
            self.ns.ok(v4, [fixture(rules4)]);
            self.ns.ok(v6, [fixture("iptables.rules.v6")]);
        };
        match self.firewall {
            Firewall::Nftables | Firewall::Fw4 => {
                self.ns
                    .ok("nft", ["-f".as_ref(), self.nft_file().as_os_str()]);
            }
            Firewall::IptablesLegacy => {
                restore("iptables-legacy-restore", "ip6tables-legacy-restore")
            }
            Firewall::IptablesNft => restore("iptables-nft-restore", "ip6tables-nft-restore"),
            Firewall::Ufw => unreachable!("ufw starts in enable_ufw"),
        }
    }

    /// Reloads it as its tools do, and returns how long that took: `systemctl restart
    /// nftables` (a flush of the whole ruleset, then the file), `fw4 reload` (the file, which
    /// flushes its table), `netfilter-persistent reload` (`*tables-restore` of both files,
    /// which replace the tables they name), `ufw reload`.
    pub(super) fn reload(&self) -> Duration {
        let start = Instant::now();
        match self.firewall {
            Firewall::Nftables => {
                self.ns.ok("nft", ["flush", "ruleset"]);
                self.apply();
            }
            Firewall::Fw4 | Firewall::IptablesLegacy | Firewall::IptablesNft => self.apply(),
            Firewall::Ufw => {
                self.ns.ok("ufw", ["reload"]);
            }
        }
        start.elapsed()
    }
}

/// `/etc/netns/NAME`, whose entries `ip netns exec NAME` mounts over those of /etc: ufw on
/// the router reads and writes copies of /etc/ufw and /etc/default there, never the host's.
/// Removed on drop.
pub(super) struct NetnsEtc {
    dir: PathBuf,
}

impl Drop for NetnsEtc {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Gives `router` an /etc/ufw from the package's own files (/usr/share/ufw, so that a host's
/// edits do not count) and an /etc/default whose `ufw` is Debian's, with the user's port
/// forwards when `user_dnat`; enables ufw there; and checks that its rules are on the router
/// and that the host's rules and ufw files are as they were.
pub(super) fn enable_ufw(router: &Netns, user_dnat: bool) -> NetnsEtc {
    let etc = NetnsEtc {
        dir: Path::new("/etc/netns").join(&router.name),
    };
    let ufw = etc.dir.join("ufw");
    let io = |r: io::Result<()>, what: &str| r.unwrap_or_else(|e| panic!("{what}: {e}"));
    io(
        fs::create_dir_all(ufw.join("applications.d")),
        "mkdir /etc/netns/NAME/ufw",
    );
    let share = Path::new("/usr/share/ufw");
    let mut files: Vec<PathBuf> = ["before.init", "after.init", "ufw.conf"]
        .iter()
        .map(|f| share.join(f))
        .collect();
    let rules =
        fs::read_dir(share.join("iptables")).expect("/usr/share/ufw/iptables (is ufw installed?)");
    files.extend(rules.map(|e| e.expect("read /usr/share/ufw/iptables").path()));
    for f in &files {
        let to = ufw.join(f.file_name().expect("a file name"));
        io(fs::copy(f, &to).map(drop), &format!("copy {}", f.display()));
    }
    // The router's sysctls are the harness's (forwarding on): ufw's file would only set others.
    io(fs::write(ufw.join("sysctl.conf"), ""), "write sysctl.conf");
    if user_dnat {
        let before = ufw.join("before.rules");
        let text = read(&fixture("ufw-before-nat.rules")) + &read(&before);
        io(fs::write(&before, text), "write before.rules");
    }
    let default = etc.dir.join("default");
    let cp = Command::new("cp")
        .args(["-a".as_ref(), "/etc/default".as_ref(), default.as_os_str()])
        .status()
        .expect("cp");
    assert!(cp.success(), "cp -a /etc/default {}", default.display());
    io(
        fs::copy(fixture("ufw-default"), default.join("ufw")).map(drop),
        "copy ufw-default",
    );

    let host_files = || ["/etc/ufw/ufw.conf", "/etc/default/ufw"].map(|f| read(Path::new(f)));
    let (host_rules, host_ufw) = (Ruleset::of(None), host_files());
    router.ok("ufw", ["--force", "enable"]);
    if user_dnat {
        let ports = format!("{PROBE_PORT}:{HELD_PORT}");
        let allow = [
            "route", "allow", "proto", "tcp", "from", "any", "to", LAN_V4, "port",
        ];
        router.ok("ufw", allow.iter().copied().chain([ports.as_str()]));
    }
    // Enabling loads the package's short user6.rules and writes it out in full; the first
    // reload loads that. From there on a reload gives the same rules again.
    router.ok("ufw", ["reload"]);
    let backend = fs::canonicalize("/usr/sbin/iptables").unwrap_or_default();
    let on_router = Ruleset::of(Some(router));
    assert!(
        on_router.mentions("ufw-user-input"),
        "ufw enabled, but its chains are not on the router (ufw calls {}):\n{on_router:#?}",
        backend.display()
    );
    assert_same(
        &host_rules,
        &Ruleset::of(None),
        "the host's rules after ufw on the router",
    );
    assert_eq!(
        host_files(),
        host_ufw,
        "ufw on the router wrote the host's files"
    );
    etc
}
