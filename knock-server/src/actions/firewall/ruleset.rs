//! The nftables batches behind [`super::Firewall`], built in nft's JSON ([`super::json`]):
//! pure functions, so that what we ask the kernel for is unit-tested without root.

use std::net::IpAddr;
use std::time::Duration;

use knock_proto::config::Forward;
use knock_proto::sequence::Knock;

use super::integration;
use super::json::{Batch, Chain, Element, Expr, Family, Hook, Op, Rule, Set, Stmt, Table};

/// The default instance's table (family `inet`, so one table covers IPv4 and IPv6); every
/// batch names its instance's table (see [`crate::instance::Instance::table`]).
#[cfg(test)]
pub const TABLE: &str = "knock_server";
/// Our input chain's priority: `filter - 10`, just before the usual filter chains, so that a
/// refused packet never reaches them.
pub const PRIORITY: i32 = -10;

const GUARDED: &str = "guarded";
const ALLOW4: &str = "allow4";
const ALLOW6: &str = "allow6";
const INPUT: &str = "input";
const GUARD: &str = "guard";
const MARK_CHAIN: &str = "mark";
/// The mark chain's priority: before our input chain, so that the mark is set whatever the
/// guard decides; the guard still refuses whoever may not pass.
pub const MARK_PRIORITY: i32 = -20;

/// The batch that deletes our table if it exists and creates it afresh.
pub fn install_batch(table: &str, guarded: &[Knock]) -> Batch {
    install_batch_with(table, guarded, false)
}

/// [`install_batch`]; with `marking`, a chain that marks what the guard lets in
/// ([`integration::MARK`]), before it, for the other firewalls' rule of ours to accept.
pub fn install_batch_with(table: &str, guarded: &[Knock], marking: bool) -> Batch {
    let mut b = install_without_marks(table, guarded);
    if marking {
        b.add(Chain {
            family: Family::Inet,
            table: table.to_owned(),
            name: MARK_CHAIN.into(),
            hook: Some(Hook {
                kind: "filter",
                hook: "input",
                prio: MARK_PRIORITY,
                policy: "accept",
            }),
        });
        for statements in mark_rules() {
            b.add(rule(table, MARK_CHAIN, statements));
        }
    }
    b
}

const PRE: &str = "pre";
const PRE_GUARD: &str = "pre_guard";
const GUARD_FORWARDED: &str = "guard_forwarded";
/// The pre-DNAT chain's priority: before any DNAT (`dstnat`, -100), while a packet still
/// shows the port it was sent to.
pub const PRE_PRIORITY: i32 = -150;
/// The connection mark bit of a connection to a guarded port of this host by someone who may
/// not pass: the forward hook refuses it when it was forwarded elsewhere.
pub const REFUSE: u32 = integration::MARK << 1;

/// Guarded ports that this host forwards elsewhere (the user's DNAT, Docker's published
/// ports) never reach the input hook. So a chain before any DNAT marks each new connection
/// to a guarded port of a local address: [`integration::MARK`] for a knocker's, [`REFUSE`]
/// for anyone else's; on the forward hook, a connection marked [`REFUSE`] is refused as a
/// closed port refuses, and one marked [`integration::MARK`] gets the packet mark, for the
/// other firewalls' rule of ours. Connections to local ports are still the guard's.
pub fn forwarded_guard_batch(table: &str) -> Batch {
    let mut b = Batch::new();
    let chain = |name: &str, hook: Option<(&'static str, i32)>| Chain {
        family: Family::Inet,
        table: table.to_owned(),
        name: name.into(),
        hook: hook.map(|(hook, prio)| Hook {
            kind: "filter",
            hook,
            prio,
            policy: "accept",
        }),
    };
    b.add(chain(PRE, Some(("prerouting", PRE_PRIORITY))));
    b.add(chain(PRE_GUARD, None));
    b.add(chain(GUARD_FORWARDED, Some(("forward", PRIORITY))));
    let local = Stmt::compare(Expr::fib_daddr_type(), Op::Eq, Expr::word("local"));
    let guarded_port = Expr::concat([Expr::meta("l4proto"), Expr::payload("th", "dport")]);
    b.add(rule(
        table,
        PRE,
        vec![
            local,
            is_in_set(guarded_port, GUARDED),
            Stmt::jump(PRE_GUARD),
        ],
    ));
    let new = || Stmt::compare(Expr::ct("state"), Op::In, Expr::word("new"));
    let ct_mark = |bits: u32| Stmt::set(Expr::ct("mark"), Expr::or(Expr::ct("mark"), bits));
    for (family, set) in [("ip", ALLOW4), ("ip6", ALLOW6)] {
        b.add(rule(
            table,
            PRE_GUARD,
            vec![
                new(),
                is_in_set(knocker_port(family), set),
                ct_mark(integration::MARK),
                Stmt::ret(),
            ],
        ));
    }
    b.add(rule(table, PRE_GUARD, vec![new(), ct_mark(REFUSE)]));
    for statements in [
        vec![
            ct_marked(REFUSE),
            equals(Expr::meta("l4proto"), "tcp"),
            Stmt::reject_tcp_reset(),
        ],
        vec![ct_marked(REFUSE), Stmt::reject_icmpx("port-unreachable")],
        vec![ct_marked(integration::MARK), mark_packet()],
    ] {
        b.add(rule(table, GUARD_FORWARDED, statements));
    }
    b
}

const FWD4: &str = "fwd4";
const FWD6: &str = "fwd6";
const DNAT_CHAIN: &str = "dnat";
/// The DNAT chain's priority: just before the usual `dstnat` (-100), so that a knocker's
/// forward wins over the user's own DNAT of the same port.
pub const DNAT_PRIORITY: i32 = -110;

/// The forwards of `forward` doors as one batch that can run again on a reload: the knockers'
/// sets (`knocker . proto . outside port`, with timeouts) and a DNAT chain with one rule per
/// forward, marking the connection (`ct mark`, [`integration::MARK`]): the forward hook's
/// chain of [`forwarded_guard_batch`] then gives every packet of it, replies included, the
/// packet mark the other firewalls' rule of ours accepts. The chain is emptied and filled
/// again, the sets kept: a reload keeps the forwards open.
pub fn forward_batch(table: &str, forwards: &[Forward]) -> Batch {
    let mut b = Batch::new();
    for (name, addr) in [(FWD4, "ipv4_addr"), (FWD6, "ipv6_addr")] {
        b.add(Set {
            flags: vec!["timeout"],
            ..set(table, name, vec![addr, "inet_proto", "inet_service"])
        });
    }
    let chain = Chain {
        family: Family::Inet,
        table: table.to_owned(),
        name: DNAT_CHAIN.into(),
        hook: Some(Hook {
            kind: "nat",
            hook: "prerouting",
            prio: DNAT_PRIORITY,
            policy: "accept",
        }),
    };
    b.add(chain.clone());
    b.flush(chain);
    for f in forwards {
        let (family, knockers) = if f.inside.is_ipv4() {
            ("ip", FWD4)
        } else {
            ("ip6", FWD6)
        };
        b.add(rule(
            table,
            DNAT_CHAIN,
            vec![
                is_in_set(knocker_port(family), knockers),
                equals(Expr::meta("l4proto"), f.outside.proto.as_str()),
                Stmt::compare(
                    Expr::payload("th", "dport"),
                    Op::Eq,
                    Expr::number(u32::from(f.outside.port.get())),
                ),
                Stmt::set(
                    Expr::ct("mark"),
                    Expr::or(Expr::ct("mark"), integration::MARK),
                ),
                Stmt::dnat(f.inside),
            ],
        ));
    }
    b
}

/// The forwards' sets and keys for `ip` on each of `forwards` of its family (an IPv4 knocker
/// reaches IPv4 inside hosts only, an IPv6 one IPv6 hosts).
fn forward_keys(ip: IpAddr, forwards: &[Forward]) -> (&'static str, Vec<Expr>) {
    let ip = ip.to_canonical();
    let (set, v4) = if ip.is_ipv4() {
        (FWD4, true)
    } else {
        (FWD6, false)
    };
    let outside: Vec<Knock> = forwards
        .iter()
        .filter(|f| f.inside.is_ipv4() == v4)
        .map(|f| f.outside)
        .collect();
    let (_, keys) = allow_keys(ip, &outside);
    (set, keys)
}

/// The batch that forwards `forwards` for `ip` for `for_` (as [`allow_batch`] does for
/// ports); empty when none is of `ip`'s family.
pub fn allow_forward_batch(table: &str, ip: IpAddr, forwards: &[Forward], for_: Duration) -> Batch {
    let (set, keys) = forward_keys(ip, forwards);
    set_timeouts(table, set, keys, for_)
}

/// The batch that stops forwarding `forwards` for `ip` now.
pub fn revoke_forward_batch(table: &str, ip: IpAddr, forwards: &[Forward]) -> Batch {
    let (set, keys) = forward_keys(ip, forwards);
    take_out(table, set, keys)
}

/// The mark chain's rules: a knocker's packets to its ports, and packets of connections to
/// guarded ports already let in, get [`integration::MARK`].
fn mark_rules() -> Vec<Vec<Stmt>> {
    let guarded_port = Expr::concat([Expr::meta("l4proto"), Expr::payload("th", "dport")]);
    let established = Expr::list([Expr::word("established"), Expr::word("related")]);
    vec![
        vec![is_in_set(knocker_port("ip"), ALLOW4), mark_packet()],
        vec![is_in_set(knocker_port("ip6"), ALLOW6), mark_packet()],
        vec![
            is_in_set(guarded_port, GUARDED),
            Stmt::compare(Expr::ct("state"), Op::In, established),
            mark_packet(),
        ],
    ]
}

fn install_without_marks(table: &str, guarded: &[Knock]) -> Batch {
    let mut b = Batch::new();
    add_then_delete_table(&mut b, table);
    b.add(table_named(table));
    b.add(guarded_set(table, guarded_elems(guarded)));
    for (name, addr) in [(ALLOW4, "ipv4_addr"), (ALLOW6, "ipv6_addr")] {
        b.add(Set {
            flags: vec!["timeout"],
            ..set(table, name, vec![addr, "inet_proto", "inet_service"])
        });
    }
    b.add(Chain {
        family: Family::Inet,
        table: table.to_owned(),
        name: INPUT.into(),
        hook: Some(Hook {
            kind: "filter",
            hook: "input",
            prio: PRIORITY,
            policy: "accept",
        }),
    });
    b.add(Chain {
        family: Family::Inet,
        table: table.to_owned(),
        name: GUARD.into(),
        hook: None,
    });
    let guarded_port = Expr::concat([Expr::meta("l4proto"), Expr::payload("th", "dport")]);
    b.add(rule(
        table,
        INPUT,
        vec![is_in_set(guarded_port, GUARDED), Stmt::jump(GUARD)],
    ));
    for statements in guard_rules() {
        b.add(rule(table, GUARD, statements));
    }
    b
}

/// The guard chain's rules, in order: what may pass to a guarded port, then the refusal.
fn guard_rules() -> Vec<Vec<Stmt>> {
    let established = Expr::list([Expr::word("established"), Expr::word("related")]);
    vec![
        vec![equals(Expr::meta("iif"), "lo"), Stmt::accept()],
        vec![
            Stmt::compare(Expr::ct("state"), Op::In, established),
            Stmt::accept(),
        ],
        vec![is_in_set(knocker_port("ip"), ALLOW4), Stmt::accept()],
        vec![is_in_set(knocker_port("ip6"), ALLOW6), Stmt::accept()],
        vec![
            equals(Expr::meta("l4proto"), "tcp"),
            Stmt::reject_tcp_reset(),
        ],
        vec![Stmt::reject_icmpx("port-unreachable")],
    ]
}

/// The batch that replaces the guarded ports and keeps everything else.
pub fn guard_batch(table: &str, guarded: &[Knock]) -> Batch {
    let mut b = Batch::new();
    b.flush(guarded_set(table, None));
    if let Some(elems) = guarded_elems(guarded) {
        b.add(element(table, GUARDED, elems));
    }
    b
}

/// The allow set for `ip`'s family and the set's keys for `ip` on each of `ports`.
fn allow_keys(ip: IpAddr, ports: &[Knock]) -> (&'static str, Vec<Expr>) {
    let ip = ip.to_canonical();
    let allow = if ip.is_ipv4() { ALLOW4 } else { ALLOW6 };
    let keys = ports
        .iter()
        .map(|k| {
            Expr::concat([
                Expr::word(ip.to_string()),
                Expr::word(k.proto.as_str()),
                Expr::number(u32::from(k.port.get())),
            ])
        })
        .collect();
    (allow, keys)
}

/// The batch that lets `ip` reach `ports` for `for_`. Each element is added bare, deleted
/// and added again with its timeout: in one transaction that is an idempotent "set the
/// timeout", since a plain add of an element that exists keeps its old timeout.
pub fn allow_batch(table: &str, ip: IpAddr, ports: &[Knock], for_: Duration) -> Batch {
    let (allow, keys) = allow_keys(ip, ports);
    set_timeouts(table, allow, keys, for_)
}

/// The batch that closes `ports` to `ip` now: each element is added bare and deleted, so
/// that it goes whether or not it was there (a delete of a missing element fails the batch).
pub fn revoke_batch(table: &str, ip: IpAddr, ports: &[Knock]) -> Batch {
    let (allow, keys) = allow_keys(ip, ports);
    take_out(table, allow, keys)
}

/// `keys` in `set` with the timeout `for_`, whether or not they are there (see
/// [`allow_batch`]); empty for no keys.
fn set_timeouts(table: &str, set: &str, keys: Vec<Expr>, for_: Duration) -> Batch {
    if keys.is_empty() {
        return Batch::new();
    }
    let timed = keys
        .iter()
        .map(|key| Expr::timed(key.clone(), timeout_secs(for_)))
        .collect();
    let mut b = take_out(table, set, keys);
    b.add(element(table, set, timed));
    b
}

/// `keys` out of `set`, whether or not they are there (see [`revoke_batch`]); empty for no
/// keys.
fn take_out(table: &str, set: &str, keys: Vec<Expr>) -> Batch {
    let mut b = Batch::new();
    if keys.is_empty() {
        return b;
    }
    b.add(element(table, set, keys.clone()));
    b.delete(element(table, set, keys));
    b
}

/// The batch that deletes our table, whether or not it exists.
pub fn remove_batch(table: &str) -> Batch {
    let mut b = Batch::new();
    add_then_delete_table(&mut b, table);
    b
}

/// `add` of an existing table does nothing, so add-then-delete deletes it whether or not it
/// was there: nft 1.0.6 (Debian 12) has no `destroy`.
fn add_then_delete_table(b: &mut Batch, table: &str) {
    b.add(table_named(table));
    b.delete(table_named(table));
}

/// Whole seconds, rounded up so that a window is never shorter than asked, at least 1
/// (a zero timeout would mean "never expires").
fn timeout_secs(d: Duration) -> u32 {
    let secs = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
    u32::try_from(secs).unwrap_or(u32::MAX).max(1)
}

fn table_named(table: &str) -> Table {
    Table {
        family: Family::Inet,
        name: table.to_owned(),
    }
}

/// The `guarded` set: `proto . port` pairs, no timeouts.
fn guarded_set(table: &str, elems: Option<Vec<Expr>>) -> Set {
    Set {
        elem: elems,
        ..set(table, GUARDED, vec!["inet_proto", "inet_service"])
    }
}

/// An empty set of our table without flags, keyed by the concatenation of `key`.
fn set(table: &str, name: &str, key: Vec<&'static str>) -> Set {
    Set {
        family: Family::Inet,
        table: table.to_owned(),
        name: name.to_owned(),
        key,
        flags: Vec::new(),
        elem: None,
    }
}

/// The guarded `proto . port` pairs, without duplicates; `None` when there are none.
fn guarded_elems(guarded: &[Knock]) -> Option<Vec<Expr>> {
    let mut knocks = guarded.to_vec();
    knocks.sort();
    knocks.dedup();
    let elems: Vec<_> = knocks
        .iter()
        .map(|k| {
            Expr::concat([
                Expr::word(k.proto.as_str()),
                Expr::number(u32::from(k.port.get())),
            ])
        })
        .collect();
    (!elems.is_empty()).then_some(elems)
}

fn element(table: &str, set: &str, elem: Vec<Expr>) -> Element {
    Element {
        family: Family::Inet,
        table: table.to_owned(),
        name: set.to_owned(),
        elem,
    }
}

fn rule(table: &str, chain: &str, expr: Vec<Stmt>) -> Rule {
    Rule {
        family: Family::Inet,
        table: table.to_owned(),
        chain: chain.to_owned(),
        expr,
        comment: None,
        handle: None,
    }
}

/// `FAMILY saddr . meta l4proto . th dport`: a knocker and the port it knocks for, the key
/// of the allow and forward sets.
fn knocker_port(family: &str) -> Expr {
    Expr::concat([
        Expr::payload(family, "saddr"),
        Expr::meta("l4proto"),
        Expr::payload("th", "dport"),
    ])
}

/// `meta mark set meta mark | MARK`: the packet mark the other firewalls' rule of ours
/// accepts.
fn mark_packet() -> Stmt {
    Stmt::set(
        Expr::meta("mark"),
        Expr::or(Expr::meta("mark"), integration::MARK),
    )
}

/// `ct mark & BITS == BITS`: the connection carries `bits`.
fn ct_marked(bits: u32) -> Stmt {
    Stmt::compare(
        Expr::and(Expr::ct("mark"), bits),
        Op::Eq,
        Expr::number(bits),
    )
}

fn equals(left: Expr, word: &str) -> Stmt {
    Stmt::compare(left, Op::Eq, Expr::word(word))
}

/// A lookup in one of our named sets.
fn is_in_set(left: Expr, set: &str) -> Stmt {
    Stmt::compare(left, Op::Eq, Expr::set(set))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn json_of(batch: &Batch) -> Vec<Value> {
        match serde_json::to_value(batch).unwrap() {
            Value::Object(mut o) => match o.remove("nftables") {
                Some(Value::Array(commands)) => commands,
                other => panic!("not a command list: {other:?}"),
            },
            other => panic!("not an nftables document: {other}"),
        }
    }

    fn knocks(list: &[&str]) -> Vec<Knock> {
        list.iter().map(|k| k.parse().unwrap()).collect()
    }

    fn add_table() -> Value {
        json!({"add": {"table": {"family": "inet", "name": "knock_server"}}})
    }

    fn delete_table() -> Value {
        json!({"delete": {"table": {"family": "inet", "name": "knock_server"}}})
    }

    fn guard_rule(expr: Value) -> Value {
        json!({"add": {"rule": {
            "family": "inet", "table": "knock_server", "chain": "guard", "expr": expr
        }}})
    }

    fn from(family: &str) -> Value {
        json!({"concat": [
            {"payload": {"protocol": family, "field": "saddr"}},
            {"meta": {"key": "l4proto"}},
            {"payload": {"protocol": "th", "field": "dport"}}
        ]})
    }

    #[test]
    fn install_replaces_a_stale_table_with_sets_and_the_input_hook() {
        let c = json_of(&install_batch(TABLE, &knocks(&["500:udp", "22", "22:tcp"])));
        assert_eq!(c[..3], [add_table(), delete_table(), add_table()]);
        assert_eq!(
            c[3],
            json!({"add": {"set": {
                "family": "inet", "table": "knock_server", "name": "guarded",
                "type": ["inet_proto", "inet_service"],
                "elem": [{"concat": ["tcp", 22]}, {"concat": ["udp", 500]}]
            }}})
        );
        for (i, (name, addr)) in [(4, ("allow4", "ipv4_addr")), (5, ("allow6", "ipv6_addr"))] {
            assert_eq!(
                c[i],
                json!({"add": {"set": {
                    "family": "inet", "table": "knock_server", "name": name,
                    "type": [addr, "inet_proto", "inet_service"], "flags": ["timeout"]
                }}})
            );
        }
        assert_eq!(
            c[6],
            json!({"add": {"chain": {
                "family": "inet", "table": "knock_server", "name": "input",
                "type": "filter", "hook": "input", "prio": -10, "policy": "accept"
            }}})
        );
        assert_eq!(
            c[7],
            json!({"add": {"chain": {"family": "inet", "table": "knock_server", "name": "guard"}}})
        );
        assert_eq!(
            c[8],
            json!({"add": {"rule": {
                "family": "inet", "table": "knock_server", "chain": "input",
                "expr": [
                    {"match": {
                        "left": {"concat": [
                            {"meta": {"key": "l4proto"}},
                            {"payload": {"protocol": "th", "field": "dport"}}
                        ]},
                        "right": "@guarded", "op": "=="
                    }},
                    {"jump": {"target": "guard"}}
                ]
            }}})
        );
        assert_eq!(c.len(), 9 + 6);
    }

    #[test]
    fn the_guard_passes_loopback_established_and_allowed_then_refuses_like_a_closed_port() {
        let c = json_of(&install_batch(TABLE, &knocks(&["22"])));
        let accept = json!({"accept": null});
        assert_eq!(
            c[9..],
            [
                guard_rule(json!([
                    {"match": {"left": {"meta": {"key": "iif"}}, "right": "lo", "op": "=="}},
                    accept
                ])),
                guard_rule(json!([
                    {"match": {
                        "left": {"ct": {"key": "state"}},
                        "right": ["established", "related"], "op": "in"
                    }},
                    accept
                ])),
                guard_rule(json!([
                    {"match": {"left": from("ip"), "right": "@allow4", "op": "=="}},
                    accept
                ])),
                guard_rule(json!([
                    {"match": {"left": from("ip6"), "right": "@allow6", "op": "=="}},
                    accept
                ])),
                guard_rule(json!([
                    {"match": {"left": {"meta": {"key": "l4proto"}}, "right": "tcp", "op": "=="}},
                    {"reject": {"type": "tcp reset"}}
                ])),
                guard_rule(json!([
                    {"reject": {"type": "icmpx", "expr": "port-unreachable"}}
                ])),
            ]
        );
    }

    #[test]
    fn a_forward_is_a_dnat_for_the_knockers_set_of_its_family_and_marks_its_connection() {
        let forwards: Vec<Forward> = ["2222/tcp -> 198.19.0.2:22", "53/udp -> [fd00:19::2]:5353"]
            .iter()
            .map(|f| {
                let mut c = knock_proto::config::toml::parse(
                    std::path::Path::new("k.toml"),
                    &format!("[doors.d]\nsequence = \"1\"\nforward = \"{f}\"\n"),
                )
                .unwrap();
                c.doors.remove(0).actions.forward.remove(0)
            })
            .collect();
        let c = json_of(&forward_batch(TABLE, &forwards));
        let dnat: Vec<&Value> = c
            .iter()
            .filter_map(|o| o["add"]["rule"].as_object().map(|_| &o["add"]["rule"]))
            .filter(|r| r["chain"] == "dnat")
            .collect();
        assert_eq!(dnat.len(), 2);
        assert_eq!(dnat[0]["expr"][0]["match"]["right"], "@fwd4");
        assert_eq!(dnat[0]["expr"][2]["match"]["right"], 2222);
        assert_eq!(
            dnat[0]["expr"][4],
            json!({"dnat": {"family": "ip", "addr": "198.19.0.2", "port": 22}})
        );
        assert_eq!(dnat[1]["expr"][0]["match"]["right"], "@fwd6");
        assert_eq!(dnat[1]["expr"][1]["match"]["right"], "udp");
        assert_eq!(
            dnat[1]["expr"][4],
            json!({"dnat": {"family": "ip6", "addr": "fd00:19::2", "port": 5353}})
        );
        // An IPv4 knocker gets the IPv4 forwards only.
        let allowed = json_of(&allow_forward_batch(
            TABLE,
            "198.18.0.1".parse().unwrap(),
            &forwards,
            Duration::from_secs(30),
        ));
        assert_eq!(allowed.len(), 3);
        assert_eq!(allowed[2]["add"]["element"]["name"], "fwd4");
        assert_eq!(
            allowed[2]["add"]["element"]["elem"][0]["elem"]["val"]["concat"],
            json!(["198.18.0.1", "tcp", 2222])
        );
        assert!(
            allow_forward_batch(
                TABLE,
                "fd00:18::1".parse().unwrap(),
                &forwards[..1],
                Duration::ZERO
            )
            .is_empty()
        );
    }

    #[test]
    fn no_guarded_ports_make_an_empty_set() {
        let c = json_of(&install_batch(TABLE, &[]));
        assert_eq!(c[3]["add"]["set"]["name"], "guarded");
        assert!(c[3]["add"]["set"].get("elem").is_none(), "{}", c[3]);
    }

    #[test]
    fn allowing_sets_the_timeout_whether_or_not_the_element_exists() {
        let c = json_of(&allow_batch(
            TABLE,
            "198.18.0.2".parse().unwrap(),
            &knocks(&["22", "500:udp"]),
            Duration::from_secs(20),
        ));
        let keys = json!([
            {"concat": ["198.18.0.2", "tcp", 22]},
            {"concat": ["198.18.0.2", "udp", 500]}
        ]);
        let element = |elem: &Value| json!({"family": "inet", "table": "knock_server", "name": "allow4", "elem": elem});
        let timed: Vec<Value> = keys
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                json!({"elem": {
                    "val": k, "timeout": 20, "expires": null, "comment": null, "counter": null
                }})
            })
            .collect();
        assert_eq!(
            c,
            [
                json!({"add": {"element": element(&keys)}}),
                json!({"delete": {"element": element(&keys)}}),
                json!({"add": {"element": element(&Value::Array(timed))}}),
            ]
        );
    }

    #[test]
    fn ipv6_knockers_go_to_allow6_and_mapped_ipv4_ones_to_allow4() {
        let v6 = json_of(&allow_batch(
            TABLE,
            "fd00::2".parse().unwrap(),
            &knocks(&["22"]),
            Duration::from_secs(5),
        ));
        assert_eq!(v6[0]["add"]["element"]["name"], "allow6");
        assert_eq!(v6[0]["add"]["element"]["elem"][0]["concat"][0], "fd00::2");
        let mapped = json_of(&allow_batch(
            TABLE,
            "::ffff:198.18.0.2".parse().unwrap(),
            &knocks(&["22"]),
            Duration::from_secs(5),
        ));
        assert_eq!(mapped[0]["add"]["element"]["name"], "allow4");
        assert_eq!(
            mapped[0]["add"]["element"]["elem"][0]["concat"][0],
            "198.18.0.2"
        );
    }

    #[test]
    fn windows_round_up_to_whole_seconds_and_never_to_zero() {
        assert_eq!(timeout_secs(Duration::ZERO), 1);
        assert_eq!(timeout_secs(Duration::from_millis(1)), 1);
        assert_eq!(timeout_secs(Duration::from_millis(1500)), 2);
        assert_eq!(timeout_secs(Duration::from_secs(20)), 20);
        assert_eq!(timeout_secs(Duration::MAX), u32::MAX);
    }

    #[test]
    fn a_reload_replaces_the_guarded_ports_and_nothing_else() {
        let c = json_of(&guard_batch(TABLE, &knocks(&["2222"])));
        assert_eq!(
            c,
            [
                json!({"flush": {"set": {
                    "family": "inet", "table": "knock_server", "name": "guarded",
                    "type": ["inet_proto", "inet_service"]
                }}}),
                json!({"add": {"element": {
                    "family": "inet", "table": "knock_server", "name": "guarded",
                    "elem": [{"concat": ["tcp", 2222]}]
                }}}),
            ]
        );
        assert_eq!(json_of(&guard_batch(TABLE, &[])).len(), 1);
    }

    #[test]
    fn removal_deletes_our_table_even_when_it_is_absent() {
        assert_eq!(json_of(&remove_batch(TABLE)), [add_table(), delete_table()]);
    }
}
