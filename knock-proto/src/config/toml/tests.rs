//! Unit tests of the TOML parser: one per rule, on string literals.

use std::net::IpAddr;

use super::*;
use crate::config::model::*;
use crate::config::test_support;
use crate::flags::TcpFlags;
use crate::sequence::{Knock, Port, Proto};

fn ok(text: &str) -> Config {
    test_support::ok(parse(Path::new("k.toml"), text))
}

fn errs(text: &str) -> Vec<String> {
    test_support::errs(parse(Path::new("k.toml"), text))
}

fn only_err(text: &str) -> String {
    test_support::only_err(parse(Path::new("k.toml"), text))
}

fn knock(port: u16, proto: Proto) -> Knock {
    Knock::new(Port::new(port).unwrap(), proto)
}

const MINIMAL: &str = "[doors.a]\nsequence = \"1\"\n";

#[test]
fn reads_options_and_a_full_door() {
    let c = ok(r#"
[options]
use_syslog = true
log_file = "/var/log/knock.log"
pid_file = "/run/knock.pid"
interface = "eth1"
max_attempts = 5000
sendmail = "/usr/lib/sendmail"
mail_from = "knock@example.org"

[doors.openSSH]
sequence = "7000,8000:udp,9000"
seq_timeout = 5
tcpflags = "syn,!ack"
start_command = "/sbin/iptables -A INPUT -s %IP% -j ACCEPT"
start_command_6 = "/sbin/ip6tables -A INPUT -s %IP% -j ACCEPT"
stop_command = "/sbin/iptables -D INPUT -s %IP% -j ACCEPT"
stop_command_6 = ""
cmd_timeout = 0
target = "198.18.0.2"
"#);
    let o = &c.options;
    assert!(o.use_syslog);
    assert_eq!(o.log_file.as_deref(), Some(Path::new("/var/log/knock.log")));
    assert_eq!(o.pid_file.as_deref(), Some(Path::new("/run/knock.pid")));
    assert_eq!(o.interface.as_deref(), Some("eth1"));
    assert_eq!(o.max_attempts, 5000);
    assert_eq!(o.sendmail, Path::new("/usr/lib/sendmail"));
    assert_eq!(o.mail_from.as_deref(), Some("knock@example.org"));
    let d = &c.doors[0];
    assert_eq!(d.name, "openSSH");
    assert_eq!(
        d.sequence,
        SequenceSource::Fixed("7000,8000:udp,9000".parse().unwrap())
    );
    assert_eq!(d.seq_timeout, Duration::from_secs(5));
    assert_eq!(d.tcpflags.to_string(), "syn,!ack");
    assert_eq!(
        d.start_command_6.as_ref().unwrap().argv()[0],
        "/sbin/ip6tables"
    );
    assert_eq!(d.stop_command_6, Some(CommandTemplate::nothing()));
    assert_eq!(d.cmd_timeout, Duration::ZERO);
    assert_eq!(d.target, Some("198.18.0.2".parse().unwrap()));
}

#[test]
fn defaults() {
    let c = ok(MINIMAL);
    assert_eq!(c.options, Options::default());
    let d = &c.doors[0];
    assert_eq!(d.seq_timeout, DEFAULT_SEQ_TIMEOUT);
    assert_eq!(d.cmd_timeout, DEFAULT_CMD_TIMEOUT);
    assert_eq!(d.tcpflags, TcpFlags::ANY);
    assert_eq!(d.actions, Actions::default());
    assert_eq!(d.actions.open_for, DEFAULT_OPEN_SECONDS);
}

#[test]
fn sequences_as_strings_arrays_and_numbers() {
    let c = ok(r#"
[doors.a]
sequence = ["7000", "8000:udp", "1,2:UDP", 9000]
[doors.b]
sequence = ["04"]
"#);
    assert_eq!(
        c.doors[0].sequence,
        SequenceSource::Fixed("7000,8000:udp,1,2:udp,9000".parse().unwrap())
    );
    assert_eq!(
        c.doors[1].sequence,
        SequenceSource::Fixed("4".parse().unwrap())
    );
}

#[test]
fn doors_keep_file_order() {
    let c = ok(
        "[doors.zeta]\nsequence = \"1\"\n[doors.alpha]\nsequence = \"2\"\n\
                [doors.'with space']\nsequence = \"3\"\n",
    );
    let names: Vec<&str> = c.doors.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["zeta", "alpha", "with space"]);
}

#[test]
fn one_time_sequences_keep_their_line() {
    let c = ok("[doors.smtp]\n\none_time_sequences = \"/etc/knockd/smtp_sequences\"\n");
    assert_eq!(
        c.doors[0].sequence,
        SequenceSource::OneTime {
            path: "/etc/knockd/smtp_sequences".into(),
            line: 3
        }
    );
}

#[test]
fn actions() {
    let c = ok(r#"
[doors.wake]
sequence = "1"
wake_on_lan = "00-81-52-6b-3d-ae"
mail_to = "root@example.org"
open = "1723/tcp"

[doors.full]
sequence = "2"
wake_on_lan = { mac = "0081526b3dae", address = "fd00::ff", port = 7, interface = "eth1" }
mail_to = ["a@example.org", "b@example.org"]
open = ["1723/tcp", "1194:udp", "22", 80]
open_seconds = 60
"#);
    let a = &c.doors[0].actions;
    let mac = MacAddr([0x00, 0x81, 0x52, 0x6b, 0x3d, 0xae]);
    assert_eq!(
        a.wake_on_lan,
        Some(WakeOnLan {
            mac,
            address: "255.255.255.255".parse().unwrap(),
            port: 9,
            interface: None
        })
    );
    assert_eq!(a.mail_to, ["root@example.org"]);
    assert_eq!(a.open, [knock(1723, Proto::Tcp)]);
    assert_eq!(a.open_for, DEFAULT_OPEN_SECONDS);
    let a = &c.doors[1].actions;
    let w = a.wake_on_lan.as_ref().unwrap();
    assert_eq!(w.address, "fd00::ff".parse::<IpAddr>().unwrap());
    assert_eq!((w.port, w.interface.as_deref()), (7, Some("eth1")));
    assert_eq!(a.mail_to.len(), 2);
    assert_eq!(
        a.open,
        [
            knock(1723, Proto::Tcp),
            knock(1194, Proto::Udp),
            knock(22, Proto::Tcp),
            knock(80, Proto::Tcp)
        ]
    );
    assert_eq!(a.open_for, Duration::from_secs(60));
}

#[test]
fn unknown_keys_suggest_the_intended_one() {
    assert_eq!(
        only_err("[doors.a]\nsequnce = \"1\"\nsequence = \"1\"\n"),
        "2:1: unknown key `sequnce`, did you mean `sequence`?"
    );
    assert_eq!(
        only_err("[doors.a]\nSeq_Timeout = 5\nsequence = \"1\"\n"),
        "2:1: unknown key `Seq_Timeout`, did you mean `seq_timeout`?"
    );
    assert_eq!(
        only_err(&format!("[options]\nlogfile = \"x\"\n{MINIMAL}")),
        "2:1: unknown key `logfile`, did you mean `log_file`?"
    );
    assert_eq!(
        only_err(&format!("[options]\nsequence = \"1\"\n{MINIMAL}")),
        "2:1: `sequence` does not belong here: it goes in a door's `[doors.NAME]` section"
    );
    assert_eq!(
        only_err("[doors.a]\nsequence = \"1\"\nlog_file = \"x\"\n"),
        "3:1: `log_file` does not belong here: it goes in the `[options]` section"
    );
    let e = only_err("[doors.a]\nsequence = \"1\"\nfrobnicate = 1\n");
    assert!(
        e.starts_with("3:1: unknown key `frobnicate`: known keys here are sequence"),
        "{e}"
    );
    assert_eq!(
        only_err(
            "[doors.a]\nsequence = \"1\"\nwake_on_lan = { mac = \"00:81:52:6b:3d:ae\", adress = \"1.2.3.4\" }\n"
        ),
        "3:44: unknown key `adress`, did you mean `address`?"
    );
}

#[test]
fn keys_outside_sections_and_unknown_sections() {
    assert_eq!(
        only_err(&format!("sequence = \"1\"\n{MINIMAL}")),
        "1:1: `sequence` is outside any section: all settings must belong to `[options]` or \
         to a door's `[doors.NAME]` section"
    );
    assert_eq!(
        only_err(&format!("[option]\nuse_syslog = true\n{MINIMAL}")),
        "1:2: unknown section `[option]`, did you mean `[options]`?"
    );
    assert_eq!(
        only_err(&format!("[openSSH]\nsequence = \"1\"\n{MINIMAL}")),
        "1:2: unknown section `[openSSH]`: doors are written `[doors.openSSH]`, global \
         settings go in `[options]`"
    );
    assert_eq!(
        only_err("[[doors]]\nsequence = \"1\"\n"),
        "1:1: doors are tables, not an array: write `[doors.NAME]`, not `[[doors]]`"
    );
    assert_eq!(
        only_err("[doors]\na = 5\n"),
        "2:1: `doors.a` must be a door table: write `[doors.a]` with the door's keys below it"
    );
}

#[test]
fn syntax_errors_and_duplicates() {
    assert_eq!(
        only_err("[doors.a]\nsequence = \"1\"\n[doors.a]\n"),
        "3:8: duplicate door `a`: each `[doors.NAME]` may appear only once"
    );
    assert_eq!(
        only_err("[doors.a]\nsequence = \"1\"\nsequence = \"2\"\n"),
        "3:1: duplicate key `sequence`: each key may appear only once in a section"
    );
    let e = only_err("[doors.a\nsequence = \"1\"\n");
    assert!(e.starts_with("1:9: invalid TOML: "), "{e}");
    // Several syntax errors are all reported.
    let e = errs("[doors.a]\nsequence = \"1\nseq_timeout = \n[doors.b\n");
    assert!(e.len() >= 2, "{e:#?}");
}

#[test]
fn doors_need_exactly_one_kind_of_sequence() {
    assert_eq!(
        only_err("[doors.a]\ncommand = \"x\"\n"),
        "1:8: door `a` has no sequence: add `sequence = \"7000,8000,9000\"`, \
         `one_time_sequences = \"/path/to/file\"` or `secret_file = \"PATH\"`"
    );
    assert_eq!(
        only_err("[doors.a]\nsequence = \"1\"\none_time_sequences = \"/x\"\n"),
        "3:1: door `a` has both `sequence` and `one_time_sequences` (lines 2 and 3): keep one \
         of them"
    );
    assert_eq!(
        only_err("[doors.a]\nsequence = []\n"),
        "2:12: the sequence is empty: list at least one port, e.g. `7000,8000:udp,9000`"
    );
    assert_eq!(
        only_err("[doors.a]\nsequence = \"\"\n"),
        "2:13: the sequence is empty: list at least one port, e.g. `7000,8000:udp,9000`"
    );
    assert_eq!(
        only_err("[doors.'']\nsequence = \"1\"\n"),
        "1:8: empty door name: write a name such as `openSSH`"
    );
    let e = only_err("[options]\nuse_syslog = true\n");
    assert!(e.starts_with("0:0: no doors defined"), "{e}");
    assert!(only_err("").starts_with("0:0: no doors defined"));
    assert!(only_err("[doors]\n").starts_with("0:0: no doors defined"));
}

#[test]
fn bad_values_point_at_the_bad_part() {
    let door = |rest: &str| format!("[doors.a]\nsequence = \"1\"\n{rest}\n");
    assert_eq!(
        only_err("[doors.a]\nsequence = \"7000,70000\"\n"),
        "2:18: port `70000` is out of range: ports go from 1 to 65535"
    );
    assert_eq!(
        only_err("[doors.a]\nsequence = [\"7000\", \"8000:icmp\"]\n"),
        "2:22: unknown protocol `icmp`: write tcp or udp"
    );
    assert_eq!(
        only_err("[doors.a]\nsequence = [7000, -1]\n"),
        "2:19: port -1 is out of range: ports go from 1 to 65535"
    );
    assert_eq!(
        only_err("[doors.a]\nsequence = [0]\n"),
        "2:13: port 0 is out of range: ports go from 1 to 65535"
    );
    assert_eq!(
        ok("[doors.a]\nsequence = 7000\n").doors[0].sequence,
        SequenceSource::Fixed("7000".parse().unwrap())
    );
    assert_eq!(
        only_err("[doors.a]\nsequence = true\n"),
        "2:12: `sequence` must be a string like \"7000:udp\" or a port number, not a boolean"
    );
    assert_eq!(
        only_err(&door("tcpflags = \"syn,bogus\"")),
        "3:17: unknown TCP flag `bogus`: use fin, syn, rst, psh, ack or urg, with `!` for \
         must-be-clear"
    );
    assert_eq!(
        ok(&door("tcpflags = [\"syn\", \"!ack\"]")).doors[0]
            .tcpflags
            .to_string(),
        "syn,!ack"
    );
    assert_eq!(
        only_err(&door("seq_timeout = \"5\"")),
        "3:15: `seq_timeout` must be a number, not a string: write `seq_timeout = 5` without \
         quotes"
    );
    assert_eq!(
        only_err(&door("seq_timeout = 2.5")),
        "3:15: `seq_timeout` must be a whole number"
    );
    assert!(only_err(&door("seq_timeout = 0")).contains("at least 1"));
    assert!(only_err(&door("seq_timeout = -4")).contains("cannot be negative"));
    assert!(only_err(&door("cmd_timeout = 9223372036854775807")).contains("too long"));
    assert!(only_err(&door("cmd_timeout = 0x7fffffff")).contains("too long"));
    assert!(only_err(&door("target = \"example.org\"")).contains("is not an IP address"));
    assert_eq!(
        only_err(&door("command = \"echo 'open\"")),
        "3:11: unbalanced quote or trailing backslash in the command: close every ' and \", or \
         escape a literal one with \\"
    );
    assert_eq!(
        only_err(&door("command = \"a\"\nstart_command = \"b\"")),
        "4:1: `start_command` and `command` are the same setting: keep one of them"
    );
    assert_eq!(
        only_err(&door("start_command_6 = \"a\"\ncommand_6 = \"b\"")),
        "4:1: `command_6` and `start_command_6` are the same setting: keep one of them"
    );
    assert!(only_err(&door("use_syslog = 1")).contains("does not belong here"));
    assert_eq!(
        only_err(&format!("[options]\nuse_syslog = \"yes\"\n{MINIMAL}")),
        "2:14: `use_syslog` must be true or false, not a string"
    );
    assert!(only_err(&format!("[options]\nmax_attempts = 0\n{MINIMAL}")).contains("out of range"));
    assert!(
        only_err(&format!("[options]\nlog_file = \"\"\n{MINIMAL}")).contains("log_file is empty")
    );
    assert!(
        only_err(&format!(
            "[options]\nmail_from = \"a@b\\nBcc: c@d\"\n{MINIMAL}"
        ))
        .contains("is not a mail address")
    );
}

#[test]
fn bad_actions() {
    let door = |rest: &str| format!("[doors.a]\nsequence = \"1\"\n{rest}\n");
    assert_eq!(
        only_err(&door("wake_on_lan = \"00:81:52:6b:3d\"")),
        "3:15: `00:81:52:6b:3d` is not a MAC address: write six hex pairs like 00:81:52:6b:3d:ae"
    );
    assert_eq!(
        only_err(&door("wake_on_lan = { address = \"1.2.3.4\" }")),
        "3:15: wake_on_lan needs the machine's `mac`, e.g. `{ mac = \"00:81:52:6b:3d:ae\" }`"
    );
    assert!(
        only_err(&door("wake_on_lan = { mac = \"0081526b3dae\", port = 0 }"))
            .contains("out of range")
    );
    assert!(
        only_err(&door(
            "wake_on_lan = { mac = \"0081526b3dae\", address = \"x\" }"
        ))
        .contains("not an IP")
    );
    assert!(only_err(&door("wake_on_lan = 5")).contains("must be a MAC address or a table"));
    assert!(only_err(&door("mail_to = []")).contains("mail_to is empty"));
    assert!(
        only_err(&door("mail_to = [\"a@b\", \"nobody\"]")).starts_with("3:19: mail_to: `nobody`")
    );
    assert!(only_err(&door("open = []")).contains("open is empty"));
    assert_eq!(
        only_err(&door("open = [\"22/tcp\", \"22/sctp\"]")),
        "3:20: unknown protocol `sctp`: write tcp or udp (write ports to open like `22/tcp` or \
         `1194/udp`)"
    );
    assert!(only_err(&door("open = \"99999\"")).contains("out of range"));
    assert_eq!(
        only_err(&door("open_seconds = 30")),
        "3:1: `open_seconds` without `open`: add the ports to open, e.g. `open = \"22/tcp\"`, \
         or remove it"
    );
    assert!(only_err(&door("open = \"22\"\nopen_seconds = 0")).contains("at least 1"));
}

#[test]
fn every_error_is_reported_in_order() {
    let e = errs(
        r#"
[options]
use_syslg = true

[doors.a]
sequence = "1,0"
seq_timeout = -1

[doors.b]
tcpflags = "syn"
"#,
    );
    let lines: Vec<&str> = e
        .iter()
        .map(|s| s.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(lines, ["3", "6", "7", "9"], "{e:#?}");
}

#[test]
fn rendered_errors_show_the_line_and_a_caret() {
    let e = parse(
        Path::new("server.toml"),
        "[doors.openSSH]\nsequence = \"1\"\n\n\n\n\n  sequnce = \"7000\"\n",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "server.toml:7:3: unknown key `sequnce`, did you mean `sequence`?\n  |\n\
         7 |   sequnce = \"7000\"\n  |   ^"
    );
}

#[test]
fn deep_nesting_and_garbage_do_not_panic() {
    for text in [
        "a = ".to_owned() + &"[".repeat(50_000),
        "a = ".to_owned() + &"{b = ".repeat(50_000),
        "\0\0\0".to_owned(),
        "[doors.a]\nsequence = \"\\u0000\"\n".to_owned(),
        "[doors.\"\\u001b[31m\"]\nsequence = \"1\"\n".to_owned(),
    ] {
        assert!(parse(Path::new("k.toml"), &text).is_err());
    }
}

#[test]
fn a_rotating_door_takes_defaults_and_mixes_with_fixed_doors() {
    let c = ok(r#"
[doors.ssh]
secret_file = "keys/ssh.key"
[doors.web]
sequence = "7000"
[doors.vpn]
secret_file = "/etc/knock/vpn.key"
knocks = 4
ports = "2000-2999,4000"
step_seconds = 60
sealed = false
"#);
    let SequenceSource::Rotating(ssh) = &c.doors[0].sequence else {
        panic!("{c:?}")
    };
    assert_eq!(
        (ssh.knocks, ssh.ports.to_string(), ssh.step_seconds.get()),
        (3, "1024-65535".to_owned(), 30)
    );
    assert_eq!((ssh.sealed, ssh.bind_source, ssh.line), (true, false, 3));
    assert_eq!(ssh.secret_file, Path::new("keys/ssh.key"));
    assert!(matches!(c.doors[1].sequence, SequenceSource::Fixed(_)));
    let SequenceSource::Rotating(vpn) = &c.doors[2].sequence else {
        panic!("{c:?}")
    };
    assert_eq!(
        (
            vpn.knocks,
            vpn.ports.to_string(),
            vpn.step_seconds.get(),
            vpn.sealed
        ),
        (4, "2000-2999,4000".to_owned(), 60, false)
    );
}

#[test]
fn rotating_settings_are_checked_where_they_are_written() {
    let door = |rest: &str| only_err(&format!("[doors.a]\nsecret_file = \"k\"\n{rest}\n"));
    assert_eq!(
        door("knocks = 17"),
        "3:10: knocks = 17 is out of range: from 1 to 16"
    );
    assert_eq!(
        door("knocks = 1"),
        "3:1: a sealed door needs `knocks = 2` or more: one 24-bit seal alone falls to a flood \
         of guesses (PROTOCOL.md, Odds)"
    );
    assert_eq!(
        door("ports = \"9-1\""),
        "3:9: the range `9-1` runs backwards: write the lower port first (write e.g. \
         \"1024-65535\")"
    );
    assert_eq!(
        door("ports = \"7000-7001\""),
        "3:1: `ports` has fewer than the 3 ports a sequence needs"
    );
    assert_eq!(
        door("step_seconds = 1"),
        "3:16: step_seconds = 1 is out of range: from 5 to 3600 seconds (30 suits most clocks)"
    );
    assert_eq!(
        door("sealed = false\nbind_source = true"),
        "4:1: `bind_source` binds the seal to the knocker's address, so it needs `sealed = true`"
    );
    assert_eq!(
        only_err("[doors.a]\nsequence = \"1\"\nknocks = 3\n"),
        "3:1: `knocks` belongs to rotating doors: add `secret_file = \"keys/a.key\"` (and drop \
         `sequence`), or remove it"
    );
    assert_eq!(
        only_err("[doors.a]\nsequence = \"1\"\nsecret_file = \"k\"\n"),
        "3:1: door `a` has both `sequence` and `secret_file` (lines 2 and 3): keep one of them"
    );
    assert_eq!(
        only_err("[doors.a]\nsecret_file = \"k\"\nknock = 3\n"),
        "3:1: unknown key `knock`, did you mean `knocks`?"
    );
}

#[test]
fn forwards_name_an_outside_port_and_an_inside_host_or_say_what_is_wrong() {
    let c = ok("[doors.vpn]\nsequence = \"1\"\n\
         forward = [\"1723/tcp -> 198.19.0.2:1723\", \"8443 -> [fd00::5]:443\", \"53/udp -> 198.19.0.3:5353\"]\n\
         open_seconds = 30\n");
    let forwards: Vec<String> = c.doors[0]
        .actions
        .forward
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        forwards,
        [
            "1723/tcp -> 198.19.0.2:1723",
            "8443/tcp -> [fd00::5]:443",
            "53/udp -> 198.19.0.3:5353"
        ]
    );
    assert_eq!(c.doors[0].actions.open_for.as_secs(), 30);
    let door = |line: &str| format!("[doors.d]\nsequence = \"1\"\n{line}\n");
    let e = only_err(&door("forward = \"1723/tcp -> nas.lan:1723\""));
    assert!(
        e.starts_with("3:24: `nas.lan:1723` is not an address and port"),
        "{e}"
    );
    assert!(only_err(&door("forward = \"99999/tcp -> 198.19.0.2:1\"")).contains("out of range"));
    assert!(only_err(&door("forward = \"1723/sctp -> 198.19.0.2:1\"")).contains("sctp"));
    assert!(only_err(&door("forward = \"1723/tcp 198.19.0.2:1\"")).contains("no `->`"));
    assert!(only_err(&door("forward = \"1/tcp -> 198.19.0.2:0\"")).contains("port 0"));
    assert!(only_err(&door("forward = \"1/tcp -> 127.0.0.1:22\"")).contains("inside host"));
    let twice = door("forward = [\"1/tcp -> 198.19.0.2:1\", \"1/tcp -> 198.19.0.3:1\"]");
    assert!(only_err(&twice).contains("forwarded twice"));
    // knockd.conf has no forward: the key is refused there by name.
    let knockd = crate::config::knockd::parse(
        Path::new("k.conf"),
        "[d]\n  sequence = 1\n  forward = 1/tcp -> 198.19.0.2:1\n",
    );
    let e = test_support::only_err(knockd);
    assert!(e.contains("forward"), "{e}");
}
