//! Property tests of the config parsers and one-time sequence files: generated valid configs
//! round-trip through both formats to the same model, and no input at all makes a parser
//! panic.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use knock_proto::config::{self, CommandTemplate, Config, Door, Options, SequenceSource};
use knock_proto::onetime::OneTimeSequences;
use knock_proto::{Knock, Port, Proto, Sequence, TcpFlags};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

fn knock() -> impl Strategy<Value = Knock> {
    (1u16..=65535, any::<bool>()).prop_map(|(p, udp)| {
        let proto = if udp { Proto::Udp } else { Proto::Tcp };
        Knock::new(Port::new(p).unwrap_or(Port::new(1).unwrap()), proto)
    })
}

fn sequence() -> impl Strategy<Value = Sequence> {
    vec(knock(), 1..=40).prop_map(|k| Sequence::new(k).unwrap())
}

/// One knock written any way knockd accepts it: leading zeros, any protocol case, `:tcp`
/// spelled out or not, spaces around.
fn write_knock(k: Knock, style: u8) -> String {
    let zeros = "0".repeat(usize::from(style % 3));
    let proto = match (k.proto, style % 4) {
        (Proto::Tcp, 0) => String::new(),
        (Proto::Tcp, 1) => ":tcp".into(),
        (Proto::Tcp, 2) => ":TCP".into(),
        (Proto::Tcp, _) => ": Tcp".into(),
        (Proto::Udp, 0 | 1) => ":udp".into(),
        (Proto::Udp, _) => ":UDP".into(),
    };
    let pad = if style % 5 == 0 { " " } else { "" };
    format!("{pad}{zeros}{}{proto}{pad}", k.port)
}

fn write_sequence(s: &Sequence, styles: &[u8]) -> String {
    s.knocks()
        .iter()
        .zip(styles.iter().cycle())
        .map(|(k, st)| write_knock(*k, *st))
        .collect::<Vec<_>>()
        .join(",")
}

/// A door's settings, generated.
#[derive(Debug, Clone)]
struct Spec {
    sequence: Sequence,
    styles: Vec<u8>,
    seq_timeout: u64,
    cmd_timeout: u64,
    flags: (u8, u8),
    target: Option<IpAddr>,
    command: Option<String>,
    stop: Option<String>,
}

fn spec() -> impl Strategy<Value = Spec> {
    let word = select(vec![
        "/sbin/iptables",
        "-A",
        "INPUT",
        "-s",
        "%IP%",
        "-j",
        "ACCEPT",
    ]);
    let command = proptest::option::of(vec(word, 1..6).prop_map(|w| w.join(" ")));
    let word = select(vec!["echo", "%IP%", "'a b'", "\"c d\"", "x=1"]);
    let stop = proptest::option::of(vec(word, 1..4).prop_map(|w| w.join(" ")));
    (
        sequence(),
        vec(any::<u8>(), 1..8),
        1u64..=86_400,
        0u64..=86_400,
        (0u8..64, 0u8..64),
        proptest::option::of(any::<IpAddr>()),
        command,
        stop,
    )
        .prop_map(
            |(sequence, styles, seq_timeout, cmd_timeout, (req, forb), target, command, stop)| {
                Spec {
                    sequence,
                    styles,
                    seq_timeout,
                    cmd_timeout,
                    flags: (req, forb & !req),
                    target,
                    command,
                    stop,
                }
            },
        )
}

impl Spec {
    fn tcpflags(&self) -> TcpFlags {
        TcpFlags::new(self.flags.0, self.flags.1).unwrap_or(TcpFlags::ANY)
    }

    fn door(&self, name: &str) -> Door {
        let cmd = |c: &Option<String>| c.as_ref().map(|c| c.parse::<CommandTemplate>().unwrap());
        Door {
            seq_timeout: Duration::from_secs(self.seq_timeout),
            tcpflags: self.tcpflags(),
            start_command: cmd(&self.command),
            stop_command: cmd(&self.stop),
            cmd_timeout: Duration::from_secs(self.cmd_timeout),
            target: self.target,
            ..Door::new(name, SequenceSource::Fixed(self.sequence.clone()))
        }
    }

    fn knockd(&self, name: &str, upper: bool) -> String {
        let key = |k: &str| {
            if upper {
                k.to_ascii_uppercase()
            } else {
                k.to_owned()
            }
        };
        let mut out = format!("[{name}]\n");
        let seq = write_sequence(&self.sequence, &self.styles);
        out += &format!("\t{} = {seq}\n", key("Sequence"));
        out += &format!("  {}={}\n", key("Seq_Timeout"), self.seq_timeout);
        out += &format!("{} =\t{} \n", key("cmd_timeout"), self.cmd_timeout);
        if !self.tcpflags().is_any() {
            out += &format!(
                "tcpflags = {}\n",
                self.tcpflags().to_string().to_uppercase()
            );
        }
        if let Some(t) = self.target {
            out += &format!("target = {t}\n");
        }
        if let Some(c) = &self.command {
            out += &format!("command = {c}\n");
        }
        if let Some(c) = &self.stop {
            out += &format!("stop_command = {c}\n");
        }
        out
    }

    fn toml(&self, name: &str, as_array: bool) -> String {
        let mut out = format!("[doors.\"{name}\"]\n");
        if as_array {
            let items: Vec<String> = self
                .sequence
                .knocks()
                .iter()
                .zip(self.styles.iter().cycle())
                .map(|(k, st)| match (k.proto, st % 2) {
                    (Proto::Tcp, 0) => k.port.to_string(),
                    _ => format!("\"{}\"", write_knock(*k, *st)),
                })
                .collect();
            out += &format!("sequence = [{}]\n", items.join(", "));
        } else {
            let seq = write_sequence(&self.sequence, &self.styles);
            out += &format!("sequence = \"{seq}\"\n");
        }
        out += &format!(
            "seq_timeout = {}\ncmd_timeout = {}\n",
            self.seq_timeout, self.cmd_timeout
        );
        if !self.tcpflags().is_any() {
            out += &format!("tcpflags = \"{}\"\n", self.tcpflags());
        }
        if let Some(t) = self.target {
            out += &format!("target = \"{t}\"\n");
        }
        let escape = |c: &str| c.replace('\\', "\\\\").replace('"', "\\\"");
        if let Some(c) = &self.command {
            out += &format!("start_command = \"{}\"\n", escape(c));
        }
        if let Some(c) = &self.stop {
            out += &format!("stop_command = \"{}\"\n", escape(c));
        }
        out
    }
}

fn expected(specs: &[Spec], use_syslog: bool) -> Config {
    Config {
        options: Options {
            use_syslog,
            ..Options::default()
        },
        doors: specs
            .iter()
            .enumerate()
            .map(|(i, s)| s.door(&format!("door-{i}")))
            .collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn generated_configs_round_trip_through_knockd_conf(
        specs in vec(spec(), 1..5),
        use_syslog in any::<bool>(),
        upper in any::<bool>(),
    ) {
        let mut text = String::from("# generated\n[options]\n");
        if use_syslog {
            text += "  UseSyslog\n";
        }
        for (i, s) in specs.iter().enumerate() {
            text += "\n";
            text += &s.knockd(&format!("door-{i}"), upper);
        }
        let parsed = config::knockd::parse(Path::new("gen.conf"), &text);
        prop_assert_eq!(parsed, Ok(expected(&specs, use_syslog)), "{}", text);
    }

    #[test]
    fn generated_configs_round_trip_through_toml(
        specs in vec(spec(), 1..5),
        use_syslog in any::<bool>(),
        as_array in any::<bool>(),
    ) {
        let mut text = format!("[options]\nuse_syslog = {use_syslog}\n");
        for (i, s) in specs.iter().enumerate() {
            text += "\n";
            text += &s.toml(&format!("door-{i}"), as_array);
        }
        let parsed = config::toml::parse(Path::new("gen.toml"), &text);
        prop_assert_eq!(parsed, Ok(expected(&specs, use_syslog)), "{}", text);
    }

    #[test]
    fn any_text_is_an_answer_not_a_panic(text in any::<String>()) {
        check_no_panic(&text);
    }

    #[test]
    fn any_bytes_are_an_answer_not_a_panic(bytes in vec(any::<u8>(), 0..400)) {
        for name in ["x.conf", "x.toml", "x"] {
            let _ = config::parse_bytes(Path::new(name), &bytes).map_err(|e| e.to_string());
        }
    }

    /// Strings built from the formats' own pieces reach much deeper than random text.
    #[test]
    fn config_like_text_is_an_answer_not_a_panic(parts in vec(select(PIECES.to_vec()), 0..60)) {
        check_no_panic(&parts.concat());
    }

    #[test]
    fn consuming_one_time_sequences_changes_one_character_each_time(
        lines in vec((sequence(), 0u8..4), 0..12),
    ) {
        let mut text = String::new();
        let mut unused = Vec::new();
        for (s, kind) in &lines {
            match kind {
                0 => text += &format!(" {s}\n"),
                1 => text += &format!("{s}\r\n"),
                2 => text += &format!("#{s}\n"),
                _ => text += "\n  # note\n",
            }
            if *kind < 2 {
                unused.push(s.clone());
            }
        }
        let path = Path::new("seqs");
        let mut seqs = OneTimeSequences::parse(path, &text).unwrap();
        for want in &unused {
            prop_assert_eq!(seqs.current(), Some(want));
            let before = seqs.text().to_owned();
            let after = seqs.consume().unwrap();
            prop_assert_eq!(before.len(), after.len());
            let diffs: Vec<usize> = (0..before.len())
                .filter(|&i| before.as_bytes()[i] != after.as_bytes()[i])
                .collect();
            prop_assert!(diffs.len() <= 1, "{:?}", diffs);
            if let Some(&i) = diffs.first() {
                prop_assert_eq!(after.as_bytes()[i], b'#');
            }
            let reparsed = OneTimeSequences::parse(path, &after).unwrap();
            prop_assert_eq!(reparsed.current(), seqs.current());
        }
        prop_assert_eq!(seqs.current(), None);
        prop_assert_eq!(seqs.consume(), None);
    }
}

/// Pieces of both formats for [`config_like_text_is_an_answer_not_a_panic`].
const PIECES: &[&str] = &[
    "\n",
    "\r\n",
    " ",
    "\t",
    "#",
    "[",
    "]",
    "=",
    ",",
    ":",
    "\"",
    "'",
    "{",
    "}",
    ".",
    "!",
    "-",
    "\0",
    "é",
    "\u{feff}",
    "[options]",
    "[doors.",
    "[[doors]]",
    "sequence",
    "Sequence",
    "udp",
    "tcp",
    "7000",
    "0",
    "65536",
    "99999999999999999999999",
    "one_time_sequences",
    "seq_timeout",
    "tcpflags",
    "syn",
    "!ack",
    "command",
    "start_command_6",
    "stop_command",
    "cmd_timeout",
    "target",
    "198.18.0.2",
    "fd00::2",
    "UseSyslog",
    "LogFile",
    "wake_on_lan",
    "mac",
    "00:81:52:6b:3d:ae",
    "mail_to",
    "a@b",
    "open",
    "22/tcp",
    "open_seconds",
    "true",
    "%IP%",
    "\"\"\"",
    "0x",
    "1_0",
    "-1",
    "2.5",
];

fn check_no_panic(text: &str) {
    let path = Path::new("fuzz");
    let lines = text.split('\n').count();
    for result in [
        config::knockd::parse(path, text),
        config::toml::parse(path, text),
        config::parse(path, text),
    ] {
        match result {
            Ok(c) => {
                let _ = c.to_string();
            }
            Err(e) => {
                assert!(!e.0.is_empty());
                for d in &e.0 {
                    assert!(d.line <= lines, "line {} of {lines}: {d}", d.line);
                }
                let _ = e.to_string();
            }
        }
    }
    if let Ok(mut s) = OneTimeSequences::parse(path, text) {
        while s.consume().is_some() {}
    }
}
