//! Single values, checked the same way whichever format they come from: sequences, timeouts,
//! TCP flags, commands, addresses, door names.
//!
//! Each check returns a message that says what is wrong and how to fix it; the format parsers
//! add the file, line and column. Sequence and flag errors also say where inside the value the
//! bad item starts, so the caret lands on it rather than on the start of the value.

use std::net::IpAddr;
use std::time::Duration;

use crate::config::model::{CommandError, CommandTemplate, MAX_TIMEOUT};
use crate::flags::TcpFlags;
use crate::sequence::{Knock, MAX_KNOCKS, Proto, Sequence, SequenceError};

/// A bad value: what is wrong, and the byte offset inside the value where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValueError {
    /// The message, with the fix where we can tell it.
    pub message: String,
    /// Byte offset of the bad part inside the value (0 for the value as a whole).
    pub at: usize,
}

impl ValueError {
    fn whole(message: impl Into<String>) -> ValueError {
        ValueError {
            message: message.into(),
            at: 0,
        }
    }
}

/// Whitespace as C's `isspace` sees it in the "C" locale, which is what knockd trims.
pub(crate) fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// `s` without C whitespace at either end, as knockd's `trim()` leaves it.
pub(crate) fn c_trim(s: &str) -> &str {
    s.trim_matches(is_c_space)
}

/// Byte offset of `inner` inside `outer`; `inner` must be a subslice of `outer` (it always is
/// here: every piece we look at is cut out of the text). Falls back to 0 rather than panic.
pub(crate) fn offset_in(outer: &str, inner: &str) -> usize {
    let start = outer.as_ptr() as usize;
    let at = inner.as_ptr() as usize;
    at.checked_sub(start)
        .filter(|o| *o <= outer.len())
        .unwrap_or(0)
}

/// Parses knockd's `port[:proto],...` into knocks (bare ports take `default`), pointing at the
/// first bad item. The length limit is checked by [`sequence`], so TOML arrays can concatenate
/// several strings first.
pub(crate) fn knocks(s: &str, default: Proto) -> Result<Vec<Knock>, ValueError> {
    if c_trim(s).is_empty() {
        return Err(ValueError::whole(SequenceError::Empty.to_string()));
    }
    let mut out = Vec::new();
    for item in s.split(',') {
        let trimmed = c_trim(item);
        let at = if trimmed.is_empty() {
            offset_in(s, item)
        } else {
            offset_in(s, trimmed)
        };
        match Knock::parse_with_default(trimmed, default) {
            Ok(k) => out.push(k),
            Err(e) => {
                return Err(ValueError {
                    message: knock_message(trimmed, e),
                    at,
                });
            }
        }
        // Stop early on absurd lengths so a huge value cannot make us allocate for nothing.
        if out.len() > MAX_KNOCKS {
            break;
        }
    }
    Ok(out)
}

/// The message for a bad sequence item; negative ports get said plainly.
fn knock_message(item: &str, e: SequenceError) -> String {
    let port = item.split(':').next().unwrap_or(item).trim();
    match e {
        SequenceError::BadPort(_)
            if port.len() > 1
                && port.starts_with('-')
                && port[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            format!("port `{port}` is negative: ports go from 1 to 65535")
        }
        other => other.to_string(),
    }
}

/// Checks the length of a full sequence.
pub(crate) fn sequence(knocks: Vec<Knock>) -> Result<Sequence, String> {
    Sequence::new(knocks).map_err(|e| e.to_string())
}

/// Parses knockd's `TCPFlags` value, pointing at the first bad flag.
pub(crate) fn tcpflags(s: &str) -> Result<TcpFlags, ValueError> {
    s.parse::<TcpFlags>().map_err(|e| {
        // Find the item the error is about, for the caret.
        let at = s
            .split(',')
            .find(|item| {
                let item = c_trim(item);
                let name = item.strip_prefix('!').unwrap_or(item).trim();
                name.is_empty()
                    || !["fin", "syn", "rst", "psh", "ack", "urg"]
                        .iter()
                        .any(|n| n.eq_ignore_ascii_case(name))
            })
            .map_or(0, |item| offset_in(s, c_trim(item)));
        ValueError {
            message: e.to_string(),
            at,
        }
    })
}

/// Merges a later `TCPFlags` line into an earlier one the way knockd does: each flag the new
/// line names overrides what the old one said about that flag; the others stay.
pub(crate) fn merge_tcpflags(old: TcpFlags, new: TcpFlags) -> TcpFlags {
    let required = (old.required() & !new.forbidden()) | new.required();
    let forbidden = (old.forbidden() & !new.required()) | new.forbidden();
    TcpFlags::new(required, forbidden).unwrap_or(new)
}

/// A timeout written as text (knockd.conf): whole seconds, decimal.
///
/// `min` is the smallest meaningful value (1 for a sequence timeout, 0 for a command timeout).
pub(crate) fn timeout_text(s: &str, key: &str, min: u64) -> Result<Duration, String> {
    let s = c_trim(s);
    let digits = s.strip_prefix('+').unwrap_or(s);
    if let Some(rest) = s.strip_prefix('-') {
        if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{key} cannot be negative: write whole seconds, e.g. `{key} = 10`"
            ));
        }
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{s}` is not a number of seconds: write whole seconds, e.g. `{key} = 10`"
        ));
    }
    let significant = digits.trim_start_matches('0');
    // Thirty digits fit an i128 with room to spare and are far beyond any limit.
    if significant.len() > 30 {
        return Err(format!(
            "{key} = {s} is too long: at most {} seconds (a day) are allowed",
            MAX_TIMEOUT.as_secs()
        ));
    }
    let n: i128 = significant.parse().unwrap_or(0);
    timeout_secs(n, key, min)
}

/// A timeout given as a number of seconds (TOML integers arrive as `i128` so that nothing a
/// file can hold overflows on the way here).
pub(crate) fn timeout_secs(n: i128, key: &str, min: u64) -> Result<Duration, String> {
    let max = MAX_TIMEOUT.as_secs();
    if n < 0 {
        return Err(format!("{key} cannot be negative: write whole seconds"));
    }
    if n < i128::from(min) {
        return Err(format!(
            "{key} = {n} is meaningless: use at least {min} second{}",
            if min == 1 { "" } else { "s" }
        ));
    }
    if n > i128::from(max) {
        return Err(format!(
            "{key} = {n} is too long: at most {max} seconds (a day) are allowed"
        ));
    }
    // In range 0..=max, so the cast is exact.
    Ok(Duration::from_secs(n as u64))
}

/// A command. An empty value means "no command": `None` for an IPv4 command, and the explicit
/// [`CommandTemplate::nothing`] for an IPv6 one (`ipv6`), which must not fall back.
pub(crate) fn command(s: &str, ipv6: bool) -> Result<Option<CommandTemplate>, String> {
    match s.parse::<CommandTemplate>() {
        Ok(c) => Ok(Some(c)),
        Err(CommandError::Empty) if ipv6 => Ok(Some(CommandTemplate::nothing())),
        Err(CommandError::Empty) => Ok(None),
        Err(CommandError::UnbalancedQuote) => Err(
            "unbalanced quote or trailing backslash in the command: close every ' and \", \
             or escape a literal one with \\"
                .to_owned(),
        ),
    }
}

/// A `Target` address: an IP literal, since knockd compares it with the packet's destination
/// written as text, so a host name never matched anything.
pub(crate) fn target(s: &str) -> Result<IpAddr, String> {
    let s = c_trim(s);
    let bare = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse::<IpAddr>().map_err(|_| {
        format!(
            "`{s}` is not an IP address: write the address knocks are sent to, \
             e.g. `198.18.0.2` or `fd00::2`"
        )
    })
}

/// A door name: it appears in every log line, so it must be printable.
pub(crate) fn door_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty door name: write a name such as `openSSH`".to_owned());
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "door name {name:?} contains control characters: use letters, digits, `-` or `_`"
        ));
    }
    Ok(())
}

/// A non-empty setting (paths, interface names).
pub(crate) fn non_empty<'a>(s: &'a str, key: &str, example: &str) -> Result<&'a str, String> {
    let s = c_trim(s);
    if s.is_empty() {
        Err(format!("{key} is empty: write e.g. `{key} = {example}`"))
    } else if s.chars().any(char::is_control) {
        Err(format!("{key} contains control characters"))
    } else {
        Ok(s)
    }
}

/// A mail address, as far as we need to check one: it goes into a mail header, so no line
/// breaks or spaces; and it needs an `@`.
pub(crate) fn mail_address(s: &str, key: &str) -> Result<String, String> {
    let s = s.trim();
    let ok = !s.is_empty()
        && s.contains('@')
        && !s.starts_with('@')
        && !s.ends_with('@')
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{key}: `{}` is not a mail address: write one address like `admin@example.org`",
            s.escape_debug()
        ))
    }
}

/// A forward: `OUTSIDE/PROTO -> ADDRESS:PORT`, an IPv6 address in brackets
/// (`8443/tcp -> [fd00::5]:443`).
pub(crate) fn forward(s: &str) -> Result<crate::config::model::Forward, ValueError> {
    let fix = "write a forward like `1723/tcp -> 192.168.1.51:1723` (an IPv6 host in \
               brackets: `8443/tcp -> [fd00::5]:443`)";
    let Some((outside, inside)) = s.split_once("->") else {
        return Err(ValueError::whole(format!("`{s}` has no `->`: {fix}")));
    };
    let outside_text = outside.trim().replace('/', ":");
    let outside = crate::sequence::Knock::parse_with_default(&outside_text, Proto::Tcp)
        .map_err(|e| ValueError::whole(format!("{e} (the outside port: {fix})")))?;
    let inside_text = inside.trim();
    let at = s.len() - inside.trim_start().len();
    let inside: std::net::SocketAddr = inside_text.parse().map_err(|_| ValueError {
        message: format!(
            "`{inside_text}` is not an address and port (the inside host: {fix}; a name is \
             not resolved)"
        ),
        at,
    })?;
    if inside.port() == 0 {
        return Err(ValueError {
            message: format!("port 0 in `{inside_text}`: the inside port is 1 to 65535"),
            at,
        });
    }
    let host = inside.ip();
    if host.is_unspecified() || host.is_multicast() || host.is_loopback() {
        return Err(ValueError {
            message: format!("`{host}` cannot be an inside host: name the host behind this one"),
            at,
        });
    }
    Ok(crate::config::model::Forward { outside, inside })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knocks_point_at_the_bad_item() {
        let e = knocks("7000, 8000:icmp,9000", Proto::Tcp).unwrap_err();
        assert_eq!(e.at, 6);
        assert!(e.message.contains("icmp"), "{}", e.message);
        let e = knocks("1,,2", Proto::Tcp).unwrap_err();
        assert_eq!(e.at, 2);
        let e = knocks("1,-5", Proto::Tcp).unwrap_err();
        assert_eq!(e.message, "port `-5` is negative: ports go from 1 to 65535");
        assert_eq!(knocks(" ", Proto::Tcp).unwrap_err().at, 0);
        assert_eq!(knocks("04, 2:UDP", Proto::Tcp).unwrap().len(), 2);
    }

    #[test]
    fn knocks_stop_early_on_huge_values() {
        let long = vec!["1"; 100_000].join(",");
        let k = knocks(&long, Proto::Tcp).unwrap();
        assert_eq!(k.len(), MAX_KNOCKS + 1);
        assert!(sequence(k).is_err());
    }

    #[test]
    fn timeouts() {
        assert_eq!(
            timeout_text("05", "Seq_Timeout", 1),
            Ok(Duration::from_secs(5))
        );
        assert_eq!(timeout_text("0", "Cmd_Timeout", 0), Ok(Duration::ZERO));
        assert!(
            timeout_text("0", "Seq_Timeout", 1)
                .unwrap_err()
                .contains("at least 1")
        );
        assert!(
            timeout_text("-3", "Seq_Timeout", 1)
                .unwrap_err()
                .contains("negative")
        );
        assert!(
            timeout_text("5s", "Seq_Timeout", 1)
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            timeout_text("", "Seq_Timeout", 1)
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            timeout_text("99999999999999999999999", "Seq_Timeout", 1)
                .unwrap_err()
                .contains("too long")
        );
        assert!(
            timeout_text("86401", "Seq_Timeout", 1)
                .unwrap_err()
                .contains("too long")
        );
        assert_eq!(timeout_text("86400", "x", 1), Ok(MAX_TIMEOUT));
        assert!(timeout_secs(i128::MIN, "x", 0).is_err());
        assert!(timeout_secs(i128::MAX, "x", 0).is_err());
    }

    #[test]
    fn flags_merge_like_knockd() {
        let syn: TcpFlags = "syn,!ack".parse().unwrap();
        let ack: TcpFlags = "ack,fin".parse().unwrap();
        assert_eq!(merge_tcpflags(syn, ack).to_string(), "fin,syn,ack");
        assert_eq!(tcpflags("syn, bogus").unwrap_err().at, 5);
    }

    #[test]
    fn commands_targets_names() {
        assert_eq!(command("  ", false), Ok(None));
        assert_eq!(command("", true), Ok(Some(CommandTemplate::nothing())));
        assert!(command("echo 'x", false).is_err());
        assert_eq!(target("[fd00::2]"), Ok("fd00::2".parse().unwrap()));
        assert!(target("router.example").is_err());
        assert!(door_name("").is_err());
        assert!(door_name("a\u{1b}[31m").is_err());
        assert!(door_name("open SSH").is_ok());
        assert!(mail_address("a@b", "mail_to").is_ok());
        assert!(mail_address("a@b\r\nBcc: x@y", "mail_to").is_err());
        assert!(mail_address("nobody", "mail_to").is_err());
    }
}
