//! Unit tests of the knockd.conf parser: one per rule, on string literals.

use super::*;
use crate::config::test_support;
use crate::flags::TcpFlags;
use std::time::Duration;

fn ok(text: &str) -> Config {
    test_support::ok(parse(Path::new("k.conf"), text))
}

fn errs(text: &str) -> Vec<String> {
    test_support::errs(parse(Path::new("k.conf"), text))
}

fn only_err(text: &str) -> String {
    test_support::only_err(parse(Path::new("k.conf"), text))
}

#[test]
fn reads_a_full_door() {
    let c = ok(
        "[options]\n  UseSyslog\n  LogFile = /var/log/Knock.log\n  PidFile=/run/k.pid\n  \
         interface = eth1\n\n# a comment\n[openSSH]\n  sequence = 7000,8000:UDP,04\n  \
         seq_timeout = 5\n  tcpflags = syn,!ack\n  start_command = /sbin/iptables -A INPUT -s \
         %IP% -j ACCEPT\n  cmd_timeout = 0\n  stop_command = echo 'bye %IP%'\n  \
         target = 198.18.0.2\n",
    );
    assert!(c.options.use_syslog);
    assert_eq!(
        c.options.log_file.as_deref(),
        Some(Path::new("/var/log/Knock.log"))
    );
    assert_eq!(c.options.pid_file.as_deref(), Some(Path::new("/run/k.pid")));
    assert_eq!(c.options.interface.as_deref(), Some("eth1"));
    let d = &c.doors[0];
    assert_eq!(d.name, "openSSH");
    assert_eq!(
        d.sequence,
        SequenceSource::Fixed("7000,8000:udp,4".parse().unwrap())
    );
    assert_eq!(d.seq_timeout, Duration::from_secs(5));
    assert_eq!(d.tcpflags, "syn,!ack".parse().unwrap());
    assert_eq!(
        d.start_command.as_ref().unwrap().argv()[3..5],
        ["-s", "%IP%"]
    );
    assert_eq!(d.cmd_timeout, Duration::ZERO);
    assert_eq!(
        d.stop_command.as_ref().unwrap().argv(),
        ["echo", "bye %IP%"]
    );
    assert_eq!(d.target, Some("198.18.0.2".parse().unwrap()));
    assert!(d.actions.is_empty());
}

#[test]
fn defaults_and_aliases() {
    let c = ok("[a]\nSEQUENCE=1\nTimeout = 7\nCommand = x %IP%\nCommand_6 = y\n");
    let d = &c.doors[0];
    assert_eq!(d.seq_timeout, Duration::from_secs(7));
    assert_eq!(d.cmd_timeout, DEFAULT_CMD_TIMEOUT);
    assert_eq!(d.start_command.as_ref().unwrap().text(), "x %IP%");
    assert_eq!(d.start_command_6.as_ref().unwrap().text(), "y");
    assert_eq!(d.tcpflags, TcpFlags::ANY);
    let c = ok("[a]\nsequence=1\n");
    assert_eq!(c.doors[0].seq_timeout, DEFAULT_SEQ_TIMEOUT);
    assert_eq!(c.options, Options::default());
}

#[test]
fn later_keys_win_and_tcpflags_add_up() {
    let c = ok(
        "[a]\nsequence=1\nsequence=2\ncommand=one\nstart_command=two\n\
                tcpflags=syn,!ack\ntcpflags=ack,fin\n",
    );
    let d = &c.doors[0];
    assert_eq!(d.sequence, SequenceSource::Fixed("2".parse().unwrap()));
    assert_eq!(d.start_command.as_ref().unwrap().text(), "two");
    assert_eq!(d.tcpflags.to_string(), "fin,syn,ack");
}

#[test]
fn empty_commands_mean_nothing_and_ipv6_ones_do_not_fall_back() {
    let c = ok("[a]\nsequence=1\ncommand=\nstart_command_6 =\nstop_command = x\nstop_command_6=\n");
    let d = &c.doors[0];
    assert_eq!(d.start_command, None);
    assert_eq!(d.start_command_6, Some(CommandTemplate::nothing()));
    let v6 = "fd00::1".parse().unwrap();
    assert_eq!(d.start_command_for(v6), None);
    assert_eq!(d.stop_command_for(v6), None);
    assert_eq!(
        d.stop_command_for("198.18.0.1".parse().unwrap())
            .map(|c| c.text()),
        Some("x")
    );
}

#[test]
fn usesyslog_is_a_bare_word_anywhere() {
    assert!(ok("[a]\nusesyslog\nsequence=1\n").options.use_syslog);
    assert_eq!(
        only_err("[options]\nUseSyslog = yes\n[a]\nsequence=1\n"),
        "2:1: UseSyslog takes no value: write just `UseSyslog` on its own line"
    );
}

#[test]
fn values_keep_case_and_split_at_the_first_equals() {
    let c = ok("[Door=X]\nsequence = 1\ncommand = /bin/sh -c 'A=b; echo $A'\n");
    assert_eq!(c.doors[0].name, "Door=X");
    assert_eq!(
        c.doors[0].start_command.as_ref().unwrap().argv()[2],
        "A=b; echo $A"
    );
}

#[test]
fn crlf_tabs_and_comment_lines() {
    let c = ok(
        "# top\r\n\t[options]\r\n\t\tUseSyslog\r\n   # indented comment\r\n[a]\r\n\
                sequence\t=\t1,2\r\n",
    );
    assert!(c.options.use_syslog);
    assert_eq!(
        c.doors[0].sequence,
        SequenceSource::Fixed("1,2".parse().unwrap())
    );
}

#[test]
fn one_time_sequences_keep_their_line() {
    let c = ok("[smtp]\n\n one_time_sequences = /etc/knockd/smtp_sequences\n");
    assert_eq!(
        c.doors[0].sequence,
        SequenceSource::OneTime {
            path: "/etc/knockd/smtp_sequences".into(),
            line: 3
        }
    );
}

#[test]
fn unknown_keys_suggest_the_intended_one() {
    assert_eq!(
        only_err("[a]\n  sequnce = 1\n  sequence = 1\n"),
        "2:3: unknown key `sequnce`, did you mean `sequence`?"
    );
    assert_eq!(
        only_err("[a]\nSequence = 1\nSeq_Timout = 5\n"),
        "3:1: unknown key `Seq_Timout`, did you mean `Seq_Timeout`?"
    );
    let e = only_err("[a]\nsequence = 1\nfrobnicate = 5\n");
    assert!(
        e.starts_with("3:1: unknown key `frobnicate`: known keys here are Sequence"),
        "{e}"
    );
    assert_eq!(
        only_err("[options]\nlogfil = x\n[a]\nsequence=1\n"),
        "2:1: unknown key `logfil`, did you mean `logfile`?"
    );
    assert_eq!(
        only_err("[a]\nsequence=1\nfoo\n"),
        "3:1: unknown directive `foo` (a line without `=`): known keys here are Sequence, \
         One_Time_Sequences, Seq_Timeout, Timeout, TCPFlags, Start_Command, Command, \
         Start_Command_6, Command_6, Stop_Command, Stop_Command_6, Cmd_Timeout, Target"
    );
    assert_eq!(
        only_err("[a]\nsequence=1\ncommand\n"),
        "3:8: `command` needs a value: write `command = ...`"
    );
    assert_eq!(
        only_err("[a]\nsequence=1\n = x\n"),
        "3:2: missing key before `=`: write `Key = value`"
    );
}

#[test]
fn keys_in_the_wrong_section() {
    assert_eq!(
        only_err("[options]\nsequence = 1\n[a]\nsequence=1\n"),
        "2:1: `sequence` belongs in a door section such as `[openSSH]`, not in [options]"
    );
    assert_eq!(
        only_err("[a]\nsequence=1\nLogFile = /x\n"),
        "3:1: `LogFile` is a global setting: move it to the [options] section"
    );
    // `[Options]` is a door to knockd: say why the keys do not fit.
    let e = errs("[Options]\nLogFile = /x\n[a]\nsequence=1\n");
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("1:2: door `Options` has no sequence"),
        "{e:?}"
    );
    assert!(
        e[0].ends_with("(section names are case-sensitive: the global section is `[options]`)")
    );
    assert_eq!(
        e[1],
        "2:1: `LogFile` is a global setting: move it to the [options] section (section names \
         are case-sensitive: write `[options]`)"
    );
}

#[test]
fn directives_outside_sections_and_broken_headers() {
    assert_eq!(
        errs("sequence = 1\n[a]\nsequence = 1\n"),
        [
            "1:1: all directives must belong to a section: put `[options]` or a door header \
          such as `[openSSH]` above this line"
        ]
    );
    assert_eq!(
        only_err("[openSSH\nsequence = 1\n[b]\nsequence=2\n"),
        "1:9: broken section header: missing `]`; write `[name]`"
    );
    assert_eq!(
        only_err("[a] # door\nsequence = 1\n"),
        "1:4: broken section header: nothing may follow `]` (comments go on a line of their own)"
    );
    assert_eq!(
        only_err("[]\n[a]\nsequence = 1\n"),
        "1:2: bad section name: empty door name: write a name such as `openSSH`"
    );
}

#[test]
fn doors_need_exactly_one_kind_of_sequence() {
    assert_eq!(
        only_err("[a]\ncommand = x\n[b]\nsequence=1\n"),
        "1:2: door `a` has no sequence: add `Sequence = 7000,8000,9000` or \
         `One_Time_Sequences = /path/to/file`"
    );
    assert_eq!(
        only_err("[a]\nsequence = 1\none_time_sequences = /x\n"),
        "3:1: door `a` has both Sequence and One_Time_Sequences (lines 2 and 3): keep one of them"
    );
    assert_eq!(
        only_err("[a]\nsequence = \n"),
        "2:11: the sequence is empty: list at least one port, e.g. `7000,8000:udp,9000`"
    );
    assert!(only_err("[a]\none_time_sequences =\n").contains("One_Time_Sequences is empty"));
}

#[test]
fn duplicate_doors_and_no_doors() {
    assert_eq!(
        only_err("[a]\nsequence = 1\n[a]\nsequence = 2\n"),
        "3:2: duplicate door `a` (first defined on line 1): give each door its own name"
    );
    let e = only_err("");
    assert!(e.starts_with("0:0: no doors defined"), "{e}");
    let e = only_err("[options]\nUseSyslog\n");
    assert!(e.starts_with("0:0: no doors defined"), "{e}");
    let e = only_err("# nothing\n\n");
    assert!(e.starts_with("0:0: no doors defined"), "{e}");
}

#[test]
fn bad_values_point_at_the_bad_part() {
    assert_eq!(
        only_err("[a]\nsequence = 7000,70000,9000\n"),
        "2:17: port `70000` is out of range: ports go from 1 to 65535"
    );
    assert_eq!(
        only_err("[a]\nsequence = 7000,0\n"),
        "2:17: port `0` is out of range: ports go from 1 to 65535"
    );
    assert_eq!(
        only_err("[a]\nsequence = 7000,-1\n"),
        "2:17: port `-1` is negative: ports go from 1 to 65535"
    );
    assert_eq!(
        only_err("[a]\nsequence = 7000:icmp\n"),
        "2:12: unknown protocol `icmp`: write tcp or udp"
    );
    assert_eq!(
        only_err("[a]\nsequence = 7000,8000 # ssh\n"),
        "2:17: `8000 # ssh` is not a port number: write a decimal port from 1 to 65535 \
         (knockd.conf has no comments after a value: put `# ...` on a line of its own)"
    );
    assert_eq!(
        only_err("[a]\nsequence = 1\ntcpflags = syn,ack,bogus\n"),
        "3:20: unknown TCP flag `bogus`: use fin, syn, rst, psh, ack or urg, with `!` for \
         must-be-clear"
    );
    assert_eq!(
        only_err("[a]\nsequence = 1\nseq_timeout = 5s\n"),
        "3:15: `5s` is not a number of seconds: write whole seconds, e.g. `Seq_Timeout = 10`"
    );
    assert!(only_err("[a]\nsequence = 1\nseq_timeout = 0\n").contains("at least 1"));
    assert!(only_err("[a]\nsequence = 1\ncmd_timeout = -1\n").contains("cannot be negative"));
    assert!(
        only_err("[a]\nsequence = 1\ncmd_timeout = 18446744073709551616\n").contains("too long")
    );
    assert_eq!(
        only_err("[a]\nsequence = 1\ntarget = router.lan\n"),
        "3:10: `router.lan` is not an IP address: write the address knocks are sent to, \
         e.g. `198.18.0.2` or `fd00::2`"
    );
    assert!(only_err("[a]\nsequence = 1\ncommand = echo 'open\n").starts_with("3:11: unbalanced"));
    let long = vec!["1"; 256].join(",");
    assert!(only_err(&format!("[a]\nsequence = {long}\n")).contains("at most 255"));
    assert!(only_err("[options]\nLogFile =\n[a]\nsequence=1\n").contains("LogFile is empty"));
}

#[test]
fn a_toml_file_named_conf_gets_a_hint() {
    let e = errs("[doors.openSSH]\nsequence = \"7000,8000\"\n");
    assert_eq!(
        e,
        [
            "2:12: `\"7000` is not a port number: write a decimal port from 1 to 65535 (knockd.conf \
          values take no quotes; a config in TOML must be named `*.toml`)"
        ]
    );
}

#[test]
fn every_error_is_reported_in_order() {
    let e = errs("oops = 1\n[a]\nsequnce = 1\nseq_timeout = x\n[a]\nsequence = 0\n[b]\n");
    let lines: Vec<&str> = e
        .iter()
        .map(|s| s.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(lines, ["1", "2", "3", "4", "5", "6", "7"], "{e:#?}");
    assert!(e[0].starts_with("1:1: all directives"), "{e:#?}");
    assert!(
        e.iter()
            .any(|s| s.starts_with("2:2: door `a` has no sequence")),
        "{e:#?}"
    );
    assert!(
        e.iter()
            .any(|s| s.starts_with("3:1: unknown key `sequnce`")),
        "{e:#?}"
    );
    assert!(
        e.iter().any(|s| s.starts_with("4:15: `x` is not a number")),
        "{e:#?}"
    );
    assert!(
        e.iter().any(|s| s.starts_with("5:2: duplicate door `a`")),
        "{e:#?}"
    );
    assert!(e.iter().any(|s| s.starts_with("6:12: port `0`")), "{e:#?}");
    assert!(
        e.iter()
            .any(|s| s.starts_with("7:2: door `b` has no sequence")),
        "{e:#?}"
    );
}

#[test]
fn rendered_errors_show_the_line_and_a_caret() {
    let e = parse(Path::new("/etc/knockd.conf"), "[a]\n  sequnce = 1\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "/etc/knockd.conf:1:2: door `a` has no sequence: add `Sequence = 7000,8000,9000` or \
         `One_Time_Sequences = /path/to/file`\n  |\n1 | [a]\n  |  ^\n\
         /etc/knockd.conf:2:3: unknown key `sequnce`, did you mean `sequence`?\n  |\n\
         2 |   sequnce = 1\n  |   ^"
    );
}

#[test]
fn binary_garbage_is_refused_not_a_panic() {
    for text in [
        "\0\0\0",
        "[\0]\n\0=\0",
        "[a]\nsequence=\u{0}1\n",
        "\u{feff}[a]\nsequence=1",
    ] {
        assert!(parse(Path::new("k"), text).is_err(), "{text:?}");
    }
}
