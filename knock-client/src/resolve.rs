//! Host name or address to the one address all hits go to.
//!
//! Resolved once per run (knock resolves per port; one answer keeps every hit of a sequence on
//! the same address, which is what the server needs to see). IPv6 literals may be written in
//! brackets (`[fd00::2]`) and with a zone (`fe80::1%eth0`).

use std::net::{SocketAddr, ToSocketAddrs};

use anyhow::{Context as _, bail};

use crate::plan::Family;

/// The first address of `host` in `family`, with port 0 (set per hit).
pub fn resolve(host: &str, family: Family) -> anyhow::Result<SocketAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.is_empty() {
        bail!("the host is empty: give a host name or an address");
    }
    let all: Vec<SocketAddr> = (bare, 0)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve host `{host}`"))?
        .collect();
    pick(host, &all, family)
}

fn pick(host: &str, all: &[SocketAddr], family: Family) -> anyhow::Result<SocketAddr> {
    let wanted = |a: &&SocketAddr| match family {
        Family::Any => true,
        Family::V4 => a.is_ipv4(),
        Family::V6 => a.is_ipv6(),
    };
    if let Some(addr) = all.iter().find(wanted) {
        return Ok(*addr);
    }
    let found: Vec<String> = all.iter().map(|a| a.ip().to_string()).collect();
    let (name, flag) = match family {
        Family::V6 => ("IPv6", "-6"),
        _ => ("IPv4", "-4"),
    };
    if found.is_empty() {
        bail!("cannot resolve host `{host}`: no address found");
    }
    bail!(
        "host `{host}` has no {name} address (it resolves to {}); drop {flag} to use that",
        found.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_families() {
        let v4 = resolve("198.18.0.2", Family::Any).unwrap();
        assert_eq!(v4.to_string(), "198.18.0.2:0");
        let v6 = resolve("[fd00::2]", Family::V6).unwrap();
        assert_eq!(v6.ip().to_string(), "fd00::2");
        let err = resolve("198.18.0.2", Family::V6).unwrap_err().to_string();
        assert!(
            err.contains("no IPv6 address (it resolves to 198.18.0.2)"),
            "{err}"
        );
        let err = resolve("fd00::2", Family::V4).unwrap_err().to_string();
        assert!(err.contains("no IPv4 address"), "{err}");
        assert!(resolve("", Family::Any).is_err());
    }
}
