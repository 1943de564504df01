//! The config parsers on the shipped sample files (tests/data): Debian's stock knockd.conf and
//! the examples of knockd's manual must parse unchanged, our TOML examples must mean what they
//! say, and the broken samples must give exactly the errors in their `.expected` files.
//!
//! Set `KNOCK_BLESS=1` to rewrite the `.expected` files from the current output (then review
//! the diff).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use knock_proto::config::{self, Config, Format, Loaded, SequenceSource};
use knock_proto::{Proto, Sequence};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn read_data(name: &str) -> String {
    std::fs::read_to_string(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Parses a sample the way the server does, under its own name (so messages say `bad/x.conf`).
fn parse_sample(name: &str) -> Result<Config, config::Diagnostics> {
    config::parse(Path::new(name), &read_data(name))
}

fn sample(name: &str) -> Config {
    parse_sample(name).unwrap_or_else(|e| panic!("{name} refused:\n{e}"))
}

/// A reader for [`config::load`] over the sample directory, with the manual's
/// `/etc/knockd/smtp_sequences` mapped to our copy.
fn sample_reader(p: &Path) -> io::Result<String> {
    if p == Path::new("/etc/knockd/smtp_sequences") {
        return std::fs::read_to_string(data("smtp_sequences"));
    }
    std::fs::read_to_string(data(&p.to_string_lossy()))
}

fn fixed(c: &Config, door: usize) -> &Sequence {
    match &c.doors[door].sequence {
        SequenceSource::Fixed(s) => s,
        other => panic!("not a fixed sequence: {other:?}"),
    }
}

#[test]
fn debian_stock_config() {
    let c = sample("debian-knockd.conf");
    assert!(c.options.use_syslog);
    let names: Vec<&str> = c.doors.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["openSSH", "closeSSH", "openHTTPS"]);
    assert_eq!(fixed(&c, 0), &"7000,8000,9000".parse().unwrap());
    assert_eq!(fixed(&c, 1), &"9000,8000,7000".parse().unwrap());
    assert_eq!(fixed(&c, 2), &"12345,54321,24680,13579".parse().unwrap());
    for d in &c.doors {
        assert_eq!(d.seq_timeout, Duration::from_secs(5));
        assert_eq!(d.tcpflags.to_string(), "syn");
        assert_eq!(d.cmd_timeout, config::DEFAULT_CMD_TIMEOUT);
        assert!(d.stop_command.is_none() && d.target.is_none());
    }
    let ip = "198.18.0.1".parse().unwrap();
    assert_eq!(
        c.doors[0].start_command_for(ip).unwrap().render(ip),
        "/sbin/iptables -A INPUT -s 198.18.0.1 -p tcp --dport 22 -j ACCEPT"
            .split(' ')
            .collect::<Vec<_>>()
    );
    // An IPv6 knocker falls back to the IPv4 command, as in knockd.
    let ip6 = "fd00::1".parse().unwrap();
    assert_eq!(
        c.doors[2].start_command_for(ip6).unwrap().text(),
        "/usr/local/sbin/knock_add -i -c INPUT -p tcp -d 443 -f %IP%"
    );
}

#[test]
fn debian_stock_config_described() {
    let c = sample("debian-knockd.conf");
    let text = c.to_string();
    assert!(
        text.starts_with("options:\n  use_syslog       yes\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "door closeSSH:\n  sequence         9000:tcp,8000:tcp,7000:tcp\n  \
             seq_timeout      5s\n  tcpflags         syn\n"
        ),
        "{text}"
    );
    assert_eq!(text.matches("door ").count(), 3);
}

#[test]
fn manual_examples() {
    let c = sample("manual-example-1.conf");
    assert_eq!(
        c.options.log_file.as_deref(),
        Some(Path::new("/var/log/knockd.log"))
    );
    assert_eq!(c.doors.len(), 2);
    assert_eq!(c.doors[1].seq_timeout, Duration::from_secs(10));

    let c = sample("manual-example-2.conf");
    let d = &c.doors[0];
    let protos: Vec<Proto> = fixed(&c, 0).knocks().iter().map(|k| k.proto).collect();
    assert_eq!(protos, [Proto::Udp, Proto::Tcp, Proto::Udp]);
    assert_eq!(d.tcpflags.to_string(), "syn,ack");
    assert_eq!(d.cmd_timeout, Duration::from_secs(5));
    assert!(d.stop_command.as_ref().unwrap().text().contains("-D INPUT"));

    for name in ["manual-example-3.conf", "manual-example-4.conf"] {
        let c = sample(name);
        let d = &c.doors[0];
        assert_eq!(d.tcpflags.to_string(), "fin,!ack");
        assert!(matches!(
            &d.sequence,
            SequenceSource::OneTime { path, line: 5 } if path == Path::new("/etc/knockd/smtp_sequences")
        ));
    }
    let c = sample("manual-example-4.conf");
    let ip6 = "fd00::1".parse().unwrap();
    assert!(
        c.doors[0]
            .stop_command_for(ip6)
            .unwrap()
            .text()
            .starts_with("/usr/sbin/ip6tables -D")
    );
}

#[test]
fn manual_one_time_example_loads_its_sequence_file() {
    let Loaded {
        config, one_time, ..
    } = config::load(Path::new("manual-example-3.conf"), sample_reader)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.doors.len(), 1);
    let seqs = one_time[0].as_ref().unwrap();
    // The first line is used already (`#2000,...`): the next one is current.
    assert_eq!(seqs.current(), Some(&"2001,3001:udp,4001".parse().unwrap()));
    assert_eq!(seqs.current_line(), Some(5));
    assert_eq!(seqs.remaining(), 3);
}

#[test]
fn the_toml_translation_of_the_stock_config_means_the_same() {
    assert_eq!(
        sample("debian-knockd.toml"),
        sample("debian-knockd.conf"),
        "debian-knockd.toml and debian-knockd.conf differ"
    );
}

#[test]
fn the_full_toml_example() {
    let loaded =
        config::load(Path::new("example.toml"), sample_reader).unwrap_or_else(|e| panic!("{e}"));
    let c = &loaded.config;
    assert_eq!(c.options.max_attempts, 100_000);
    assert_eq!(c.options.mail_from.as_deref(), Some("knock@example.org"));
    let names: Vec<&str> = c.doors.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["openSSH", "wakeDesktop", "smtp"]);
    assert_eq!(fixed(c, 0), &"7000,8000:udp,9000".parse().unwrap());
    assert_eq!(c.doors[0].cmd_timeout, Duration::from_secs(30));
    let a = &c.doors[1].actions;
    assert_eq!(
        a.wake_on_lan.as_ref().unwrap().mac.to_string(),
        "00:81:52:6b:3d:ae"
    );
    assert_eq!(a.mail_to.len(), 2);
    assert_eq!(a.open.len(), 2);
    assert_eq!(a.open_for, Duration::from_secs(120));
    assert!(loaded.one_time[0].is_none() && loaded.one_time[1].is_none());
    assert!(loaded.one_time[2].is_some());
    let ip6 = "fd00::1".parse().unwrap();
    assert_eq!(c.doors[2].start_command_for(ip6), None);
}

/// Compares the rendered errors of `bad/NAME` with `bad/NAME.expected`.
fn check_expected(name: &str) {
    let err = match parse_sample(name) {
        Ok(c) => panic!("{name} accepted: {c:?}"),
        Err(e) => e.to_string() + "\n",
    };
    let expected_path = data(&format!("{name}.expected"));
    if std::env::var_os("KNOCK_BLESS").is_some() {
        std::fs::write(&expected_path, &err).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    assert!(
        err == expected,
        "errors for {name} changed (KNOCK_BLESS=1 rewrites the .expected file):\n{err}"
    );
}

#[test]
fn broken_knockd_conf_reports_every_error() {
    check_expected("bad/every-error.conf");
}

#[test]
fn broken_toml_reports_every_error() {
    check_expected("bad/every-error.toml");
}

#[test]
fn broken_toml_syntax_reports_only_syntax_errors() {
    check_expected("bad/syntax.toml");
}

#[test]
fn format_is_chosen_by_extension_then_content() {
    let toml = "[doors.a]\nsequence = \"1\"\n";
    let conf = "[a]\nsequence = 1\n";
    assert_eq!(Format::detect(Path::new("x.toml"), conf), Format::Toml);
    assert_eq!(Format::detect(Path::new("x.conf"), toml), Format::Knockd);
    assert_eq!(Format::detect(Path::new("knockd"), toml), Format::Toml);
    assert_eq!(Format::detect(Path::new("knockd"), conf), Format::Knockd);
    assert!(config::parse(Path::new("cfg"), toml).is_ok());
    assert!(config::parse(Path::new("cfg"), conf).is_ok());
    assert_eq!(
        Format::detect(Path::new("/etc/knockd"), &read_data("debian-knockd.conf")),
        Format::Knockd
    );
}

#[test]
fn parse_bytes_reports_invalid_utf8_with_its_line() {
    let good = read_data("debian-knockd.conf");
    assert_eq!(
        config::parse_bytes(Path::new("k.conf"), good.as_bytes()),
        config::parse(Path::new("k.conf"), &good)
    );
    let bytes = b"[a]\n# caf\xe9\nsequence = 1\nseq_timeout = x\n";
    let e = config::parse_bytes(Path::new("k.conf"), bytes).unwrap_err();
    let got: Vec<(usize, Option<usize>, &str)> =
        e.0.iter()
            .map(|d| (d.line, d.column, d.message.as_str()))
            .collect();
    assert_eq!(
        got,
        [
            (
                2,
                Some(6),
                "invalid UTF-8 (byte 0xe9): save the file as UTF-8"
            ),
            (
                4,
                Some(15),
                "`x` is not a number of seconds: write whole seconds, e.g. `Seq_Timeout = 10`"
            ),
        ]
    );
    assert!(e.to_string().contains("2 | # caf\u{fffd}"), "{e}");
}

fn fake_fs(files: &[(&str, &str)]) -> impl Fn(&Path) -> io::Result<String> + use<> {
    let files: HashMap<PathBuf, String> = files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), t.to_string()))
        .collect();
    move |p: &Path| {
        files
            .get(p)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
}

#[test]
fn load_reads_one_time_files_per_door() {
    let fs = fake_fs(&[
        (
            "k.conf",
            "[fixed]\nsequence = 1\n[once]\none_time_sequences = seqs\n",
        ),
        ("seqs", " 5,6\n"),
    ]);
    let loaded = config::load(Path::new("k.conf"), fs).unwrap();
    assert_eq!(loaded.one_time.len(), 2);
    assert!(loaded.one_time[0].is_none());
    assert_eq!(
        loaded.one_time[1].as_ref().unwrap().current(),
        Some(&"5,6".parse().unwrap())
    );
}

#[test]
fn load_reports_unreadable_files_where_they_are_named() {
    // The real file system, for the real OS message.
    let dir = std::env::temp_dir().join(format!("knock-config-test-{}", std::process::id()));
    let missing = dir.join("no-such-file");
    let e = config::load(&missing, |p| std::fs::read_to_string(p)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: cannot read the config file: No such file or directory",
            missing.display()
        )
    );

    let conf = format!("[a]\n  one_time_sequences = {}\n", missing.display());
    let e = config::load(Path::new("k.conf"), |p| {
        if p == Path::new("k.conf") {
            Ok(conf.clone())
        } else {
            std::fs::read_to_string(p)
        }
    })
    .unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].line, 2);
    assert_eq!(
        e.0[0].message,
        format!(
            "cannot read one_time_sequences file `{}`: No such file or directory",
            missing.display()
        )
    );
}

#[test]
fn load_reports_bad_one_time_files_and_keeps_used_up_ones_as_disabled() {
    let fs = fake_fs(&[
        (
            "k.toml",
            "[doors.a]\none_time_sequences = \"a\"\n[doors.b]\none_time_sequences = \"b\"\n",
        ),
        ("a", " 1,2\n 3,99999\n"),
        ("b", "#1,2\n"),
    ]);
    let e = config::load(Path::new("k.toml"), fs).unwrap_err();
    let got: Vec<String> =
        e.0.iter()
            .map(|d| format!("{}:{}: {}", d.file.display(), d.line, d.message))
            .collect();
    assert_eq!(
        got,
        [
            "a:2: port `99999` is out of range: ports go from 1 to 65535; fix the line, or \
             start it with `#` to skip it",
        ]
    );
    let fs = fake_fs(&[
        ("k.toml", "[doors.b]\none_time_sequences = \"b\"\n"),
        ("b", "#1,2\n"),
    ]);
    let loaded = config::load(Path::new("k.toml"), fs).unwrap();
    assert_eq!(loaded.one_time[0].as_ref().unwrap().current(), None);
}

#[test]
fn relative_one_time_files_are_found_beside_the_config() {
    let fs = fake_fs(&[
        (
            "/etc/knock/server.toml",
            "[doors.a]\none_time_sequences = \"seqs\"\n",
        ),
        ("/etc/knock/seqs", " 1,2\n"),
    ]);
    let loaded = config::load(Path::new("/etc/knock/server.toml"), fs).unwrap();
    let knock_proto::config::SequenceSource::OneTime { path, .. } =
        &loaded.config.doors[0].sequence
    else {
        panic!("not a one-time door");
    };
    assert_eq!(path, Path::new("/etc/knock/seqs"));
    assert!(loaded.one_time[0].as_ref().unwrap().current().is_some());
}

#[test]
fn a_consumed_one_time_file_reloads_at_the_next_sequence() {
    let fs = fake_fs(&[
        ("k.conf", "[a]\none_time_sequences = s\n"),
        ("s", " 1\n 2\n"),
    ]);
    let mut loaded = config::load(Path::new("k.conf"), &fs).unwrap();
    let seqs = loaded.one_time[0].as_mut().unwrap();
    let written = seqs.consume().unwrap();
    assert_eq!(written, "#1\n 2\n");
    let fs = fake_fs(&[("k.conf", "[a]\none_time_sequences = s\n"), ("s", &written)]);
    let reloaded = config::load(Path::new("k.conf"), fs).unwrap();
    assert_eq!(
        reloaded.one_time[0].as_ref().unwrap().current(),
        Some(&"2".parse().unwrap())
    );
}

#[test]
fn load_reads_rotating_doors_keys_beside_the_config_and_names_bad_ones() {
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
    let text = "[doors.ssh]\nsecret_file = \"ssh.key\"\n[doors.web]\nsequence = \"7000\"\n";
    let fs = fake_fs(&[
        ("/etc/knock/server.toml", text),
        ("/etc/knock/ssh.key", key),
    ]);
    let loaded = config::load(Path::new("/etc/knock/server.toml"), fs).unwrap();
    assert_eq!(loaded.keys[0].as_ref().unwrap().to_text(), key.trim());
    assert!(loaded.keys[1].is_none());
    let SequenceSource::Rotating(r) = &loaded.config.doors[0].sequence else {
        panic!()
    };
    assert_eq!(r.secret_file, Path::new("/etc/knock/ssh.key"));

    let fs = fake_fs(&[("k.toml", text), ("ssh.key", "AAEC")]);
    let e = config::load(Path::new("k.toml"), fs)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("k.toml:2:") && e.contains("secret_file `ssh.key`: the key is 3 bytes long"),
        "{e}"
    );
    let fs = fake_fs(&[("k.toml", text)]);
    let e = config::load_with_keys(Path::new("k.toml"), fs, |p| {
        Err(format!("{} is mode 0644: ...", p.display()))
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("k.toml:2:") && e.contains("cannot use secret_file: ssh.key is mode 0644"),
        "{e}"
    );
}
