//! nft's JSON input (libnftables-json(5)), as much of it as our batches use: a [`Batch`] of
//! [`Command`]s on [`Object`]s, with rules made of [`Stmt`]s over [`Expr`]s.
//!
//! The objects (table, chain, set, element, rule) are typed structs, so a batch cannot miss
//! a family or name a set where a chain goes. Expressions and statements are a large grammar
//! of which we use a dozen forms: each is a constructor here that writes its JSON, and
//! [`Expr`] and [`Stmt`] stay distinct types so that one is never put where the other goes.
//! A new form (a `counter`, an `insert` at a position in another table's chain) is one more
//! constructor or variant.
//!
//! Why not the `nftables` crate: it models the whole schema, with nine crates of its own
//! (schemars, strum, serde_path_to_error and their derive macros), for the five objects we
//! write; serde_json, which the control socket needs anyway, writes the same JSON.

use serde::Serialize;
use serde_json::{Value, json};

/// One transaction for `nft -j -f -`: all its commands apply, or none does.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Batch {
    nftables: Vec<Command>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Adds `object` (nothing happens for a table, chain or set that exists).
    pub fn add(&mut self, object: impl Into<Object>) {
        self.nftables.push(Command::Add(object.into()));
    }

    /// Deletes `object` (the batch fails if it does not exist).
    pub fn delete(&mut self, object: impl Into<Object>) {
        self.nftables.push(Command::Delete(object.into()));
    }

    /// Empties `object` (a set's elements, a chain's rules).
    pub fn flush(&mut self, object: impl Into<Object>) {
        self.nftables.push(Command::Flush(object.into()));
    }

    /// Inserts `rule` at the top of its chain (another firewall's chain: see
    /// [`super::integration`]).
    pub fn insert(&mut self, rule: Rule) {
        self.nftables.push(Command::Insert(Object::Rule(rule)));
    }

    /// Appends the commands of `other`.
    pub fn extend(&mut self, other: Batch) {
        self.nftables.extend(other.nftables);
    }

    /// Whether the batch does nothing.
    pub fn is_empty(&self) -> bool {
        self.nftables.is_empty()
    }
}

/// One command of a [`Batch`]: `{"add": {"table": {...}}}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    /// `add`
    Add(Object),
    /// `delete`
    Delete(Object),
    /// `flush`
    Flush(Object),
    /// `insert`: a rule at the top of its chain.
    Insert(Object),
}

/// What a [`Command`] acts on.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Object {
    /// `table`
    Table(Table),
    /// `chain`
    Chain(Chain),
    /// `set`
    Set(Set),
    /// `element`: elements of a set.
    Element(Element),
    /// `rule`
    Rule(Rule),
}

macro_rules! into_object {
    ($($kind:ident),*) => {$(
        impl From<$kind> for Object {
            fn from(o: $kind) -> Object {
                Object::$kind(o)
            }
        }
    )*};
}
into_object!(Table, Chain, Set, Element, Rule);

/// An address family: which packets a table sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4 and IPv6 in one table.
    Inet,
    /// IPv4 only (iptables-nft's tables).
    Ip,
    /// IPv6 only (ip6tables-nft's tables).
    Ip6,
}

/// A table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    /// Its family.
    pub family: Family,
    /// Its name.
    pub name: String,
}

/// A chain; a base chain (hooked into the kernel's path) has a [`Hook`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chain {
    /// The family of its table.
    pub family: Family,
    /// Its table.
    pub table: String,
    /// Its name.
    pub name: String,
    /// Where packets enter it; `None`: only jumps do.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub hook: Option<Hook>,
}

/// Where and when a base chain sees packets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hook {
    /// `filter`, `nat` or `route`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `input`, `forward`, `output`, `prerouting` or `postrouting`.
    pub hook: &'static str,
    /// Lower runs first; `filter` is 0.
    pub prio: i32,
    /// `accept` or `drop`: what happens to a packet no rule decided.
    pub policy: &'static str,
}

/// A named set.
#[derive(Debug, Clone, Serialize)]
pub struct Set {
    /// The family of its table.
    pub family: Family,
    /// Its table.
    pub table: String,
    /// Its name (rules refer to it as [`Expr::set`]).
    pub name: String,
    /// Its key: the types of a concatenation (`["ipv4_addr", "inet_service"]`).
    #[serde(rename = "type")]
    pub key: Vec<&'static str>,
    /// `timeout` (elements may carry one), `interval`, ...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<&'static str>,
    /// Its elements when created; `None`: empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elem: Option<Vec<Expr>>,
}

/// Elements of a set, to add or delete.
#[derive(Debug, Clone, Serialize)]
pub struct Element {
    /// The family of the set's table.
    pub family: Family,
    /// The set's table.
    pub table: String,
    /// The set.
    pub name: String,
    /// The elements: keys, or [`Expr::timed`] keys.
    pub elem: Vec<Expr>,
}

/// A rule, appended to its chain (or inserted, or deleted by its handle).
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    /// The family of its table.
    pub family: Family,
    /// Its table.
    pub table: String,
    /// Its chain.
    pub chain: String,
    /// Its statements, in order (none when deleting by handle).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expr: Vec<Stmt>,
    /// Its comment: how we find the rules we put in others' chains.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Its handle, as `nft -j list` gives it: what a delete names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handle: Option<u64>,
}

/// An expression: a value, or something of the packet to compare.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Expr(Value);

impl Expr {
    /// A literal word: a protocol (`tcp`), an address, an interface name.
    pub fn word(text: impl Into<String>) -> Expr {
        Expr(Value::String(text.into()))
    }

    /// A literal number: a port.
    pub fn number(n: u32) -> Expr {
        Expr(n.into())
    }

    /// A reference to the set `name` of the rule's table (`@name`).
    pub fn set(name: &str) -> Expr {
        Expr(Value::String(format!("@{name}")))
    }

    /// An anonymous set of values (`{ established, related }`).
    pub fn list(items: impl IntoIterator<Item = Expr>) -> Expr {
        Expr(Value::Array(items.into_iter().map(|e| e.0).collect()))
    }

    /// Concatenated values (`ip saddr . th dport`), matched against a set of such keys.
    pub fn concat(parts: impl IntoIterator<Item = Expr>) -> Expr {
        Expr(json!({ "concat": Expr::list(parts) }))
    }

    /// Packet metadata: `meta l4proto`, `meta iif`.
    pub fn meta(key: &str) -> Expr {
        Expr(json!({ "meta": { "key": key } }))
    }

    /// A header field: `ip saddr`, `th dport` (`th`: whichever transport header).
    pub fn payload(protocol: &str, field: &str) -> Expr {
        Expr(json!({ "payload": { "protocol": protocol, "field": field } }))
    }

    /// Connection tracking: `ct state`.
    pub fn ct(key: &str) -> Expr {
        Expr(json!({ "ct": { "key": key } }))
    }

    /// `fib daddr type`: what the destination address is to this host (`local`, ...).
    pub fn fib_daddr_type() -> Expr {
        Expr(json!({ "fib": { "result": "type", "flags": ["daddr"] } }))
    }

    /// `left & mask`: the bits of `mask` in `left` (`meta mark & 0x10000000`).
    pub fn and(left: Expr, mask: u32) -> Expr {
        Expr(json!({ "&": [left, mask] }))
    }

    /// `left | bits`: `left` with the bits of `bits` set.
    pub fn or(left: Expr, bits: u32) -> Expr {
        Expr(json!({ "|": [left, bits] }))
    }

    /// A set element that the kernel removes after `seconds`.
    pub fn timed(key: Expr, seconds: u32) -> Expr {
        // nft reads the nulls as absent.
        Expr(json!({ "elem": {
            "val": key, "timeout": seconds, "expires": null, "comment": null, "counter": null
        } }))
    }
}

/// How a [`Stmt::compare`] compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`; with a set on the right, a lookup in it.
    Eq,
    /// `in`: one of a list.
    In,
}

/// A statement of a rule: a match, or a verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Stmt(Value);

impl Stmt {
    /// Goes on with the rule only when `left op right`.
    pub fn compare(left: Expr, op: Op, right: Expr) -> Stmt {
        let op = match op {
            Op::Eq => "==",
            Op::In => "in",
        };
        Stmt(json!({ "match": { "left": left, "right": right, "op": op } }))
    }

    /// Sets `key` (`meta mark`, `ct mark`) to `value`.
    pub fn set(key: Expr, value: Expr) -> Stmt {
        Stmt(json!({ "mangle": { "key": key, "value": value } }))
    }

    /// The packet passes this chain (`accept`).
    pub fn accept() -> Stmt {
        Stmt(json!({ "accept": null }))
    }

    /// Back to the chain that jumped here.
    pub fn ret() -> Stmt {
        Stmt(json!({ "return": null }))
    }

    /// The packet goes on in `chain`, then back here.
    pub fn jump(chain: &str) -> Stmt {
        Stmt(json!({ "jump": { "target": chain } }))
    }

    /// Destination NAT to `addr`:`port` (`dnat ip to 198.19.0.2:22`).
    pub fn dnat(addr: std::net::SocketAddr) -> Stmt {
        let family = if addr.is_ipv4() { "ip" } else { "ip6" };
        Stmt(json!({ "dnat": {
            "family": family, "addr": addr.ip().to_string(), "port": addr.port()
        } }))
    }

    /// Refused as a closed TCP port refuses: a reset.
    pub fn reject_tcp_reset() -> Stmt {
        Stmt(json!({ "reject": { "type": "tcp reset" } }))
    }

    /// Refused with the ICMP or ICMPv6 message `code` (`port-unreachable`), whichever the
    /// packet's family takes.
    pub fn reject_icmpx(code: &str) -> Stmt {
        Stmt(json!({ "reject": { "type": "icmpx", "expr": code } }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_an_nftables_list_of_commands_in_order() {
        let table = Table {
            family: Family::Inet,
            name: "t".into(),
        };
        let mut b = Batch::new();
        b.add(table.clone());
        b.delete(table);
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"nftables":[{"add":{"table":{"family":"inet","name":"t"}}},{"delete":{"table":{"family":"inet","name":"t"}}}]}"#
        );
    }

    #[test]
    fn a_chain_without_a_hook_has_no_hook_fields() {
        let chain = |hook| Chain {
            family: Family::Ip,
            table: "filter".into(),
            name: "c".into(),
            hook,
        };
        assert_eq!(
            serde_json::to_value(chain(None)).unwrap(),
            json!({"family": "ip", "table": "filter", "name": "c"})
        );
        let hooked = chain(Some(Hook {
            kind: "filter",
            hook: "input",
            prio: 0,
            policy: "drop",
        }));
        assert_eq!(
            serde_json::to_value(hooked).unwrap(),
            json!({"family": "ip", "table": "filter", "name": "c",
                   "type": "filter", "hook": "input", "prio": 0, "policy": "drop"})
        );
    }
}
