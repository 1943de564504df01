//! `open` doors through the firewall already in place. nftables runs every base chain of
//! every table on a hook, and iptables' chains beside them: our table's accept lets a
//! knocker past our guard only, and a default-drop firewall (a Debian `/etc/nftables.conf`
//! with `policy drop`, OpenWrt's fw4, iptables with `-P INPUT DROP`, ufw) still drops the
//! packet. So our table marks what it lets in ([`MARK`], one bit of the packet mark), and
//! one rule of ours at the top of each other firewall's input chain accepts that mark:
//!
//! ```text
//! meta mark & 0x10000000 == 0x10000000 accept comment "knock-server:INSTANCE"     (nft)
//! -m mark --mark 0x10000000/0x10000000 -m comment --comment knock-server:INSTANCE -j ACCEPT
//! ```
//!
//! The comment names the instance, so each instance finds and removes its own rules and no
//! other. The rule goes in with nft into native nftables chains, and with the iptables
//! tools into iptables' chains (`iptables-nft` for the `ip filter` and `ip6 filter` tables
//! iptables-nft and ufw keep in nftables, so that `iptables-save` still reads them;
//! `iptables-legacy` for the legacy tables, which nft cannot see). A firewall that reloads
//! (fw4 reload, `ufw reload`, `nft -f` of the user's file) drops our rule with its own:
//! [`Integration::ensure`] puts it back, run on each change `nft monitor` reports and, for
//! legacy iptables (which reports nothing), once a second. At exit [`Integration::remove`]
//! takes every rule of ours out again, so the user's ruleset is as it was before we started.
//!
//! Which chains: every base chain on the input hook of another table (not a knock-server
//! table), and legacy iptables' INPUT when it is in use (a rule, or a policy other than
//! ACCEPT); with `forward` doors, the forward hook's chains and FORWARD too, for what our
//! table forwards. Finding them ([`scan`]) is pure, on `nft -j list ruleset`'s JSON.

use std::ffi::OsString;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::json::{Batch, Expr, Family, Op, Rule, Stmt};
use super::{FirewallError, Nft};

/// The packet mark bit our table sets on what it lets in, and other firewalls accept.
pub const MARK: u32 = 0x1000_0000;

/// The comment that marks our rules in other firewalls' chains.
pub fn comment(instance: &str) -> String {
    format!("knock-server:{instance}")
}

/// An iptables tool, for IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// iptables-nft / ip6tables-nft: iptables' tables kept in nftables.
    Nft {
        /// ip6tables-nft.
        v6: bool,
    },
    /// iptables-legacy / ip6tables-legacy: the older tables, beside nftables.
    Legacy {
        /// ip6tables-legacy.
        v6: bool,
    },
}

impl Tool {
    /// The program.
    pub fn program(self) -> &'static str {
        match self {
            Tool::Nft { v6: false } => "iptables-nft",
            Tool::Nft { v6: true } => "ip6tables-nft",
            Tool::Legacy { v6: false } => "iptables-legacy",
            Tool::Legacy { v6: true } => "ip6tables-legacy",
        }
    }
}

/// Where our rule goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A native nftables base chain on the input hook.
    Nft {
        /// Its table's family.
        family: Family,
        /// Its table.
        table: String,
        /// The chain.
        chain: String,
    },
    /// The INPUT (or FORWARD) chain of an iptables filter table.
    Iptables(Tool, &'static str),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Nft {
                family,
                table,
                chain,
            } => {
                let family = serde_json::to_value(family).unwrap_or_default();
                let family = family.as_str().unwrap_or("?");
                write!(f, "nftables table {family} {table}, chain {chain}")
            }
            Target::Iptables(tool, chain) => write!(f, "{}, chain {chain}", tool.program()),
        }
    }
}

/// What `nft -j list ruleset` says about other firewalls.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Chains that need our rule, and whether they have it.
    pub targets: Vec<(Target, bool)>,
    /// Our rules in native chains, as (family, table, chain, handle): what [`Integration::remove`]
    /// deletes.
    pub ours: Vec<(Family, String, String, u64)>,
}

fn family(text: &str) -> Option<Family> {
    match text {
        "inet" => Some(Family::Inet),
        "ip" => Some(Family::Ip),
        "ip6" => Some(Family::Ip6),
        _ => None,
    }
}

/// Finds, in `listing` (`nft -j list ruleset`), the input base chains (and with `forward`,
/// the forward ones) of tables other than knock-server's (`knock_server*`), and the rules
/// whose comment is `comment`. iptables-nft's `filter` tables become [`Tool::Nft`] targets,
/// so that iptables' own tools change them.
pub fn scan(listing: &Value, comment: &str, forward: bool) -> Scan {
    let items = listing["nftables"].as_array().cloned().unwrap_or_default();
    let mut scan = Scan::default();
    let mut chains: Vec<(Family, String, String)> = Vec::new();
    for item in &items {
        if let Some(c) = item.get("chain") {
            let (Some(fam), Some(table), Some(name)) = (
                c["family"].as_str().and_then(family),
                c["table"].as_str(),
                c["name"].as_str(),
            ) else {
                continue;
            };
            let hooked = match c["hook"].as_str() {
                Some("input") => true,
                Some("forward") => forward,
                _ => false,
            };
            if hooked && !table.starts_with("knock_server") {
                chains.push((fam, table.to_owned(), name.to_owned()));
            }
        }
        if let Some(r) = item.get("rule") {
            if r["comment"].as_str() != Some(comment) {
                continue;
            }
            let (Some(fam), Some(table), Some(chain), Some(handle)) = (
                r["family"].as_str().and_then(family),
                r["table"].as_str(),
                r["chain"].as_str(),
                r["handle"].as_u64(),
            ) else {
                continue;
            };
            scan.ours
                .push((fam, table.to_owned(), chain.to_owned(), handle));
        }
    }
    for (fam, table, chain) in chains {
        let iptables = match chain.as_str() {
            "INPUT" if table == "filter" => Some("INPUT"),
            "FORWARD" if table == "filter" => Some("FORWARD"),
            _ => None,
        };
        let target = match (fam, iptables) {
            (Family::Ip, Some(c)) => Target::Iptables(Tool::Nft { v6: false }, c),
            (Family::Ip6, Some(c)) => Target::Iptables(Tool::Nft { v6: true }, c),
            _ => Target::Nft {
                family: fam,
                table: table.clone(),
                chain: chain.clone(),
            },
        };
        let has = scan
            .ours
            .iter()
            .any(|(f, t, c, _)| *f == fam && *t == table && *c == chain);
        scan.targets.push((target, has));
    }
    scan
}

/// Whether `iptables-legacy-save`'s `output` shows `chain` of a filter table in use: a rule
/// in it, or a policy other than ACCEPT.
pub fn legacy_in_use(output: &str, chain: &str) -> bool {
    let mut filter = false;
    let (rule, policy, accept) = (
        format!("-A {chain} "),
        format!(":{chain} "),
        format!(":{chain} ACCEPT"),
    );
    for line in output.lines() {
        if line.starts_with('*') {
            filter = line == "*filter";
        } else if filter
            && (line.starts_with(&rule) || line.starts_with(&policy) && !line.starts_with(&accept))
        {
            return true;
        }
    }
    false
}

/// Our rule as nft's JSON, for an insert at the top of `target`'s chain.
pub fn nft_rule(family: Family, table: &str, chain: &str, comment: &str) -> Rule {
    Rule {
        family,
        table: table.to_owned(),
        chain: chain.to_owned(),
        expr: vec![
            Stmt::compare(
                Expr::and(Expr::meta("mark"), MARK),
                Op::Eq,
                Expr::number(MARK),
            ),
            Stmt::accept(),
        ],
        comment: Some(comment.to_owned()),
        handle: None,
    }
}

/// Our rule's iptables spec, after `-I CHAIN 1`, `-C CHAIN` or `-D CHAIN`.
pub fn iptables_spec(comment: &str) -> Vec<String> {
    let mark = format!("0x{MARK:x}/0x{MARK:x}");
    [
        "-m",
        "mark",
        "--mark",
        &mark,
        "-m",
        "comment",
        "--comment",
        comment,
        "-j",
        "ACCEPT",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Our rules in other firewalls, for one instance.
#[derive(Debug, Clone)]
pub struct Integration {
    nft: Nft,
    /// What runs before an iptables tool (`ip netns exec NAME` in tests); empty: none.
    prefix: Vec<OsString>,
    comment: String,
    /// The forward chains too (there are `forward` doors).
    forward: bool,
}

impl Integration {
    /// The rules of `instance`, changed through `nft` and the iptables tools run after
    /// `prefix` (empty for the host itself).
    pub fn new(nft: Nft, prefix: Vec<OsString>, instance: &str) -> Integration {
        Integration {
            nft,
            prefix,
            comment: comment(instance),
            forward: false,
        }
    }

    /// The same, with the forward chains too when `forward` (there are `forward` doors).
    pub fn with_forward(self, forward: bool) -> Integration {
        Integration { forward, ..self }
    }

    fn chains(&self) -> &'static [&'static str] {
        if self.forward {
            &["INPUT", "FORWARD"]
        } else {
            &["INPUT"]
        }
    }

    fn iptables(&self, tool: Tool, args: &[String]) -> Option<std::process::Output> {
        let mut argv = self.prefix.clone();
        argv.push(tool.program().into());
        let output = Command::new(&argv[0])
            .args(&argv[1..])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        Some(output)
    }

    /// Legacy iptables' chains in use, as (tool, chain).
    fn legacy_targets(&self) -> Vec<(Tool, &'static str)> {
        let mut targets = Vec::new();
        for v6 in [false, true] {
            let save = if v6 {
                "ip6tables-legacy-save"
            } else {
                "iptables-legacy-save"
            };
            let mut argv = self.prefix.clone();
            argv.push(save.into());
            let Ok(out) = Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
            else {
                continue;
            };
            let out = String::from_utf8_lossy(&out.stdout);
            for &chain in self.chains() {
                if legacy_in_use(&out, chain) {
                    targets.push((Tool::Legacy { v6 }, chain));
                }
            }
        }
        targets
    }

    /// Where our rule goes now, and whether it is there.
    pub fn targets(&self) -> Result<Vec<(Target, bool)>, FirewallError> {
        let mut targets = scan(&self.nft.list_ruleset()?, &self.comment, self.forward).targets;
        for (tool, chain) in self.legacy_targets() {
            targets.push((Target::Iptables(tool, chain), false));
        }
        for (target, has) in &mut targets {
            if let Target::Iptables(tool, chain) = target {
                *has = self.has_iptables_rule(*tool, chain);
            }
        }
        Ok(targets)
    }

    fn has_iptables_rule(&self, tool: Tool, chain: &str) -> bool {
        let mut args = vec!["-C".to_owned(), chain.to_owned()];
        args.extend(iptables_spec(&self.comment));
        self.iptables(tool, &args)
            .is_some_and(|o| o.status.success())
    }

    /// Puts our rule where it is missing; what was added, for the log. Whether legacy
    /// iptables is among the targets (it must be polled: it reports no change).
    pub fn ensure(&self) -> Result<(Vec<Target>, bool), FirewallError> {
        let targets = self.targets()?;
        let legacy = targets
            .iter()
            .any(|(t, _)| matches!(t, Target::Iptables(Tool::Legacy { .. }, _)));
        let mut batch = Batch::new();
        let mut added = Vec::new();
        for (target, has) in targets {
            if has {
                continue;
            }
            match &target {
                Target::Nft {
                    family,
                    table,
                    chain,
                } => batch.insert(nft_rule(*family, table, chain, &self.comment)),
                Target::Iptables(tool, chain) => {
                    let mut args = vec!["-I".to_owned(), (*chain).to_owned(), "1".to_owned()];
                    args.extend(iptables_spec(&self.comment));
                    match self.iptables(*tool, &args) {
                        Some(o) if o.status.success() => {}
                        Some(o) => {
                            return Err(FirewallError::Refused {
                                action: "add our rule to iptables",
                                message: String::from_utf8_lossy(&o.stderr).trim().to_owned(),
                            });
                        }
                        None => continue,
                    }
                }
            }
            added.push(target);
        }
        if !batch.is_empty() {
            self.nft
                .apply(&batch, "add our rule to the other firewalls")?;
        }
        Ok((added, legacy))
    }

    /// Takes every rule of ours out of the other firewalls. The iptables tools run only on
    /// tables that exist (iptables-nft's as nft lists them, legacy ones in use): asking one
    /// about a table that does not would create it.
    pub fn remove(&self) -> Result<(), FirewallError> {
        // Every chain a rule of ours may be in, forward ones too: a crashed run may have had
        // forward doors.
        let all = Integration {
            forward: true,
            ..self.clone()
        };
        let scan = scan(&self.nft.list_ruleset()?, &self.comment, true);
        let tools: Vec<(Tool, &'static str)> = scan
            .targets
            .iter()
            .filter_map(|(t, _)| match t {
                Target::Iptables(tool, chain) => Some((*tool, *chain)),
                Target::Nft { .. } => None,
            })
            .chain(all.legacy_targets())
            .collect();
        let mut batch = Batch::new();
        for (family, table, chain, handle) in scan.ours {
            batch.delete(Rule {
                family,
                table,
                chain,
                expr: Vec::new(),
                comment: None,
                handle: Some(handle),
            });
        }
        if !batch.is_empty() {
            self.nft
                .apply(&batch, "remove our rule from the other firewalls")?;
        }
        for (tool, chain) in tools {
            let mut args = vec!["-D".to_owned(), chain.to_owned()];
            args.extend(iptables_spec(&self.comment));
            // Once per copy (a crash may have left one beside a later one); -D fails when
            // none is left, or when the tool or its table is not there.
            for _ in 0..16 {
                if !self.has_iptables_rule(tool, chain) {
                    break;
                }
                let _ = self.iptables(tool, &args);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listing() -> Value {
        json!({"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "fw4", "handle": 1}},
            {"chain": {"family": "inet", "table": "fw4", "name": "input", "handle": 1,
                       "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
            {"chain": {"family": "inet", "table": "fw4", "name": "forward", "handle": 2,
                       "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
            {"chain": {"family": "inet", "table": "fw4", "name": "input_wan", "handle": 3}},
            {"rule": {"family": "inet", "table": "fw4", "chain": "input", "handle": 9,
                      "comment": "knock-server:wan", "expr": []}},
            {"chain": {"family": "ip", "table": "filter", "name": "INPUT", "handle": 1,
                       "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
            {"chain": {"family": "inet", "table": "knock_server", "name": "input",
                       "type": "filter", "hook": "input", "prio": -10, "policy": "accept"}},
            {"chain": {"family": "inet", "table": "filter", "name": "input",
                       "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
            {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 4,
                      "comment": "knock-server:knock-server", "expr": []}},
        ]})
    }

    #[test]
    fn every_other_input_base_chain_is_a_target_and_our_own_rules_are_found_by_comment() {
        let scan = scan(&listing(), &comment("knock-server"), false);
        let fw4 = Target::Nft {
            family: Family::Inet,
            table: "fw4".into(),
            chain: "input".into(),
        };
        let debian = Target::Nft {
            family: Family::Inet,
            table: "filter".into(),
            chain: "input".into(),
        };
        assert_eq!(
            scan.targets,
            [
                // Another instance's rule is not ours.
                (fw4, false),
                (Target::Iptables(Tool::Nft { v6: false }, "INPUT"), false),
                (debian, true),
            ]
        );
        assert_eq!(
            scan.ours,
            [(Family::Inet, "filter".to_owned(), "input".to_owned(), 4)]
        );
    }

    #[test]
    fn a_legacy_filter_table_is_in_use_with_a_rule_or_a_dropping_policy() {
        let save =
            |input: &str| format!("*nat\n:INPUT DROP [0:0]\nCOMMIT\n*filter\n{input}\nCOMMIT\n");
        assert!(!legacy_in_use("", "INPUT"));
        assert!(!legacy_in_use(&save(":INPUT ACCEPT [0:0]"), "INPUT"));
        assert!(legacy_in_use(&save(":INPUT DROP [0:0]"), "INPUT"));
        assert!(!legacy_in_use(&save(":INPUT DROP [0:0]"), "FORWARD"));
        assert!(legacy_in_use(
            &save(":INPUT ACCEPT [0:0]\n-A INPUT -p tcp -j REJECT"),
            "INPUT"
        ));
    }

    #[test]
    fn our_rule_accepts_the_mark_and_names_the_instance() {
        let rule = nft_rule(Family::Inet, "fw4", "input", &comment("wan"));
        let mut b = Batch::new();
        b.insert(rule);
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            json!({"nftables": [{"insert": {"rule": {
                "family": "inet", "table": "fw4", "chain": "input",
                "expr": [
                    {"match": {"left": {"&": [{"meta": {"key": "mark"}}, MARK]},
                               "right": MARK, "op": "=="}},
                    {"accept": null}
                ],
                "comment": "knock-server:wan"
            }}}]})
        );
        assert_eq!(
            iptables_spec("knock-server:wan").join(" "),
            "-m mark --mark 0x10000000/0x10000000 -m comment --comment knock-server:wan -j ACCEPT"
        );
    }
}
