//! A host's whole firewall as its tools print it ([`Ruleset`]), normalised so that two dumps
//! of the same rules compare equal, and a comparison that shows the lines that differ.

use std::collections::HashMap;
use std::process::Command;

use knock_e2e::Netns;

/// The normalised dumps of one host's firewall: `nft -s list ruleset` (no counters or other
/// state) and each `*tables-save`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Ruleset {
    parts: Vec<(&'static str, String)>,
}

/// The dumps a [`Ruleset`] is made of.
pub(super) const DUMPS: [(&str, &[&str]); 5] = [
    ("nft", &["-s", "list", "ruleset"]),
    ("iptables-legacy-save", &[]),
    ("ip6tables-legacy-save", &[]),
    ("iptables-nft-save", &[]),
    ("ip6tables-nft-save", &[]),
];

impl Ruleset {
    /// The rules of `ns`, or of the host with `None`.
    pub(super) fn of(ns: Option<&Netns>) -> Ruleset {
        let parts = DUMPS
            .iter()
            .map(|&(program, args)| {
                let mut cmd = match ns {
                    Some(ns) => ns.command(program),
                    None => Command::new(program),
                };
                let out = cmd
                    .args(args)
                    .output()
                    .unwrap_or_else(|e| panic!("{program}: {e}"));
                let text = String::from_utf8_lossy(&out.stdout);
                let text = if program == "nft" {
                    text.into_owned()
                } else {
                    without_counters(&text)
                };
                (program, text)
            })
            .collect();
        Ruleset { parts }
    }

    /// Whether any dump has `needle`.
    pub(super) fn mentions(&self, needle: &str) -> bool {
        self.parts.iter().any(|(_, text)| text.contains(needle))
    }

    /// The same without knock-server's own table (`table inet knock_server`).
    pub(super) fn without_own_table(mut self) -> Ruleset {
        let nft = &mut self.parts[0].1;
        let mut kept = String::new();
        let mut ours = false;
        for line in nft.lines() {
            ours |= line == "table inet knock_server {";
            if !ours {
                kept.push_str(line);
                kept.push('\n');
            }
            ours &= line != "}";
        }
        *nft = kept;
        self
    }
}

/// A `*tables-save` dump without its comments (the `# Generated`, `# Completed` and warning
/// lines) and chain counters, and without the tables that hold nothing but built-in chains
/// with policy ACCEPT: the kernel makes those on the first look (`iptables-legacy -L`), so
/// they say nothing about anyone's rules.
pub(super) fn without_counters(save: &str) -> String {
    let mut out = String::new();
    let mut table: Vec<&str> = Vec::new();
    for line in save.lines().filter(|l| !l.starts_with('#')) {
        let line = match line.rfind(" [") {
            Some(at) if line.starts_with(':') && line.ends_with(']') => &line[..at],
            _ => line,
        };
        table.push(line);
        if line == "COMMIT" {
            let body = &table[1..table.len() - 1];
            if !body
                .iter()
                .all(|l| l.starts_with(':') && l.ends_with(" ACCEPT"))
            {
                out.push_str(&(table.join("\n") + "\n"));
            }
            table.clear();
        }
    }
    out
}

/// Panics, showing the lines that differ, unless `now` is `before`.
pub(super) fn assert_same(before: &Ruleset, now: &Ruleset, when: &str) {
    let mut diffs = String::new();
    for ((name, a), (_, b)) in before.parts.iter().zip(&now.parts) {
        if a != b {
            diffs.push_str(&format!("--- {name}:\n{}\n", line_diff(a, b)));
        }
    }
    assert!(
        diffs.is_empty(),
        "{when}: the rules differ from before:\n{diffs}"
    );
}

/// The lines only in `a` (`-`) and only in `b` (`+`), counted as multisets.
pub(super) fn line_diff(a: &str, b: &str) -> String {
    let mut count: HashMap<&str, i32> = HashMap::new();
    for l in a.lines() {
        *count.entry(l).or_default() += 1;
    }
    for l in b.lines() {
        *count.entry(l).or_default() -= 1;
    }
    let mut out = String::new();
    for l in a.lines().chain(b.lines()) {
        let Some(n) = count.get_mut(l) else { continue };
        if *n > 0 {
            out.push_str(&format!("- {l}\n"));
            *n -= 1;
        } else if *n < 0 {
            out.push_str(&format!("+ {l}\n"));
            *n += 1;
        }
    }
    out
}
