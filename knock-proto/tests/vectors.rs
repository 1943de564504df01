//! PROTOCOL.md's test vectors: computed here, by the Rust implementation, and checked against
//! an independent implementation in Python's standard library (tests/vectors/knock_auth.py)
//! and against the block printed in PROTOCOL.md, so the document, the code and a third-party
//! client cannot drift apart.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use knock_proto::auth::derive::{Step, sequence};
use knock_proto::auth::seal::{Nonce, Sealed};
use knock_proto::auth::{Key, PortSet};

const KEYS: [&str; 2] = [
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    "//////////////////////////////////////////8=",
];

/// Every vector as `CASE -> RESULT`, in PROTOCOL.md's order.
fn vectors() -> Vec<String> {
    let mut lines = Vec::new();
    let ports_cases: [(usize, &str, u64, &str, usize); 5] = [
        (0, "ssh", 59_666_667, "1024-65535", 3),
        (0, "ssh", 59_666_668, "1024-65535", 3),
        (0, "café", 59_666_667, "1024-65535", 3),
        (0, "web", 7, "7000-7004", 5),
        (1, "ssh", 0, "1024-2221,2223-65535", 4),
    ];
    for (key, door, step, set, knocks) in ports_cases {
        let k: Key = KEYS[key].parse().unwrap();
        let ports = sequence(
            &k,
            door,
            Step(step),
            knocks,
            &set.parse::<PortSet>().unwrap(),
        );
        let ports: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
        let key = KEYS[key];
        lines.push(format!(
            "ports {key} {door} {step} {set} {knocks} -> {}",
            ports.join(",")
        ));
    }
    let key: Key = KEYS[0].parse().unwrap();
    let step = Step(59_666_667);
    let ports = sequence(&key, "ssh", step, 3, &PortSet::default());
    let sources: [Option<IpAddr>; 3] = [
        None,
        Some("198.18.0.1".parse().unwrap()),
        Some("fd00::1".parse().unwrap()),
    ];
    for (source, nonce) in sources.into_iter().zip([42u8, 0, 255]) {
        for (index, port) in ports.iter().enumerate() {
            let sealed = Sealed {
                door: "ssh",
                step,
                index: index as u8,
                port: *port,
                nonce: Nonce(nonce),
                source,
            };
            let src = source.map_or("-".to_owned(), |s| s.to_string());
            lines.push(format!(
                "seal {} ssh {} {index} {port} {nonce} {src} -> 0x{:08x}",
                KEYS[0],
                step.0,
                sealed.seq(&key)
            ));
        }
    }
    lines
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

#[test]
fn python_computes_the_same_vectors() {
    let python = Command::new("python3")
        .arg(repo_root().join("tests/vectors/knock_auth.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut python = match python {
        Ok(child) => child,
        Err(e) if std::env::var_os("KNOCK_TESTS_REQUIRE_ROOT").is_none_or(|v| v != "1") => {
            let _ = writeln!(
                std::io::stderr(),
                "skipped: python3 is needed to check PROTOCOL.md's vectors ({e}); scripts/setup-debian installs it"
            );
            return;
        }
        Err(e) => panic!("python3 is needed to check PROTOCOL.md's vectors: {e}"),
    };
    let expected = vectors();
    let cases: String = expected
        .iter()
        .map(|l| format!("{}\n", l.split(" -> ").next().unwrap()))
        .collect();
    python
        .stdin
        .take()
        .unwrap()
        .write_all(cases.as_bytes())
        .unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(out.status.success(), "knock_auth.py failed");
    let got: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn protocol_md_prints_the_vectors() {
    let doc = std::fs::read_to_string(repo_root().join("PROTOCOL.md")).unwrap();
    let block = doc
        .split("<!-- vectors -->\n```text\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("PROTOCOL.md has a vectors block");
    let want: String = vectors().iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(
        block, want,
        "update PROTOCOL.md's vectors block to:\n{want}"
    );
}
