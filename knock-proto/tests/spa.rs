//! fwknop's SPA packets: vectors from Debian's fwknop client (`tests/data/spa/vectors.txt`,
//! made by `generate.sh` beside it) decode to the fields fwknop printed and encode back to the
//! same bytes; round trips; and every way a packet is refused, each with its reason.

use std::net::Ipv4Addr;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use knock_proto::spa::{
    self, Access, Digest, EncodeError, FieldError, Keys, Message, MessageType, Mode, Nat, Random,
    Request, SpaError,
};
use knock_proto::{Port, Proto};

const VECTORS: &str = include_str!("data/spa/vectors.txt");

/// One vector: `key: value` lines.
struct Vector {
    lines: Vec<(String, String)>,
}

impl Vector {
    fn get(&self, key: &str) -> &str {
        self.lines
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("vector without {key}"))
    }

    fn name(&self) -> &str {
        self.get("name")
    }

    fn key_bytes(spec: &str) -> Vec<u8> {
        match spec.split_once(':') {
            Some(("base64", b64)) => STANDARD.decode(b64).unwrap(),
            Some(("text", text)) => text.as_bytes().to_vec(),
            _ => panic!("bad key {spec}"),
        }
    }

    fn keys(&self) -> Keys {
        let mode = match self.get("mode") {
            "cbc" => Mode::Cbc,
            "legacy" => Mode::LegacyIv,
            other => panic!("mode {other}"),
        };
        let keys = Keys::new(&Self::key_bytes(self.get("key")), mode).unwrap();
        match self.get("hmac") {
            "none" => keys,
            digest => keys
                .with_hmac(
                    &Self::key_bytes(self.get("hmac_key")),
                    digest.parse().unwrap(),
                )
                .unwrap(),
        }
    }

    fn packet(&self) -> &[u8] {
        self.get("packet").as_bytes()
    }
}

fn vectors() -> Vec<Vector> {
    let vectors = parse_vectors(VECTORS);
    assert!(vectors.len() >= 15, "{} vectors", vectors.len());
    vectors
}

/// Blocks of `key: value` lines, separated by blank lines; `#` lines are comments.
fn parse_vectors(text: &str) -> Vec<Vector> {
    text.split("\n\n")
        .filter(|block| block.contains("name: "))
        .map(|block| Vector {
            lines: block
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| {
                    let (k, v) = l.split_once(": ").unwrap_or((l.trim_end_matches(':'), ""));
                    (k.to_owned(), v.to_owned())
                })
                .collect(),
        })
        .collect()
}

/// The salt inside a packet: bytes 8..16 of the ciphertext.
fn salt_of(packet: &[u8], keys: &Keys) -> [u8; 8] {
    let body = match keys.hmac() {
        Some((_, digest)) => &packet[..packet.len() - digest.base64_len()],
        None => packet,
    };
    let text = format!("U2FsdGVkX1{}", std::str::from_utf8(body).unwrap());
    STANDARD_NO_PAD.decode(text).unwrap()[8..16]
        .try_into()
        .unwrap()
}

fn none_if_null(s: &str) -> Option<&str> {
    (s != "<NULL>").then_some(s)
}

#[test]
fn fwknop_vectors_decode_to_the_fields_fwknop_printed() {
    for v in vectors() {
        let name = v.name();
        let m = spa::decode(v.packet(), &v.keys()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.random.as_str(), v.get("random"), "{name}");
        assert_eq!(m.username, v.get("username"), "{name}");
        assert_eq!(m.timestamp.to_string(), v.get("timestamp"), "{name}");
        assert_eq!(m.version, v.get("version"), "{name}");
        assert_eq!(m.version, "3.0.0", "{name}");
        assert_eq!(
            m.message_type().number().to_string(),
            v.get("message_type"),
            "{name}"
        );
        assert_eq!(m.request_text(), v.get("message"), "{name}");
        assert_eq!(
            m.nat.as_ref().map(|n| format!("{},{}", n.host, n.port)),
            none_if_null(v.get("nat_access")).map(str::to_owned),
            "{name}"
        );
        assert_eq!(
            m.server_auth.as_deref(),
            none_if_null(v.get("server_auth")),
            "{name}"
        );
        assert_eq!(
            m.client_timeout.unwrap_or(0).to_string(),
            v.get("client_timeout"),
            "{name}"
        );
    }
}

#[test]
fn protocol_md_shows_fwknop_vectors_that_decode() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = std::fs::read_to_string(root.join("PROTOCOL.md")).unwrap();
    let block = doc
        .split("<!-- spa-vectors -->\n```text\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("PROTOCOL.md has an spa-vectors block");
    let shown = parse_vectors(block);
    assert!(shown.len() >= 3);
    let all = vectors();
    for v in shown {
        let name = v.name();
        let kept = all.iter().find(|k| k.name() == name);
        assert_eq!(
            kept.map(|k| &k.lines),
            Some(&v.lines),
            "PROTOCOL.md's {name} is not as in vectors.txt"
        );
        let m = spa::decode(v.packet(), &v.keys()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.request_text(), v.get("message"), "{name}");
        assert_eq!(m.timestamp.to_string(), v.get("timestamp"), "{name}");
    }
}

#[test]
fn fwknop_vectors_encode_back_to_the_same_bytes() {
    for v in vectors() {
        let keys = v.keys();
        let m = spa::decode(v.packet(), &keys).unwrap();
        let digest: Digest = v.get("digest").parse().unwrap();
        let again = spa::encode(&m, &keys, digest, salt_of(v.packet(), &keys)).unwrap();
        assert_eq!(
            String::from_utf8(again).unwrap(),
            v.get("packet"),
            "{}",
            v.name()
        );
    }
}

#[test]
fn fwknop_vectors_cover_every_message_type_digest_and_hmac() {
    let vectors = vectors();
    for kind in 0..=6u8 {
        assert!(
            vectors
                .iter()
                .any(|v| v.get("message_type") == kind.to_string()),
            "type {kind}"
        );
    }
    for d in Digest::ALL {
        assert!(vectors.iter().any(|v| v.get("digest") == d.as_str()), "{d}");
        assert!(vectors.iter().any(|v| v.get("hmac") == d.as_str()), "{d}");
    }
    assert!(vectors.iter().any(|v| v.get("hmac") == "none"));
    assert!(vectors.iter().any(|v| v.get("mode") == "legacy"));
}

fn key() -> Keys {
    Keys::new(&[7; 32], Mode::Cbc)
        .unwrap()
        .with_hmac(&[9; 64], Digest::Sha256)
        .unwrap()
}

fn message() -> Message {
    Message {
        random: Random::new(1234),
        username: "alice".into(),
        timestamp: 1_790_000_000,
        version: "3.0.0".into(),
        allow_ip: Ipv4Addr::new(198, 18, 0, 1),
        request: Request::Access(vec![
            Access {
                proto: Proto::Tcp,
                port: Port::new(22).unwrap(),
            },
            Access {
                proto: Proto::Udp,
                port: Port::new(53).unwrap(),
            },
        ]),
        nat: None,
        server_auth: None,
        client_timeout: None,
    }
}

fn packet() -> Vec<u8> {
    spa::encode(&message(), &key(), Digest::Sha256, [1; 8]).unwrap()
}

#[test]
fn every_message_type_round_trips() {
    let nat = |local| Nat {
        host: "198.18.0.10".into(),
        port: Port::new(2222).unwrap(),
        local,
    };
    let cases: Vec<(MessageType, Message)> = vec![
        (MessageType::Access, message()),
        (
            MessageType::Command,
            Message {
                request: Request::Command("systemctl restart sshd, now".into()),
                ..message()
            },
        ),
        (
            MessageType::NatAccess,
            Message {
                nat: Some(nat(false)),
                ..message()
            },
        ),
        (
            MessageType::ClientTimeoutAccess,
            Message {
                client_timeout: Some(30),
                server_auth: Some("crypt,pw:x".into()),
                ..message()
            },
        ),
        (
            MessageType::ClientTimeoutNatAccess,
            Message {
                nat: Some(nat(false)),
                client_timeout: Some(0),
                server_auth: Some("auth".into()),
                ..message()
            },
        ),
        (
            MessageType::LocalNatAccess,
            Message {
                nat: Some(nat(true)),
                server_auth: Some("auth".into()),
                ..message()
            },
        ),
        (
            MessageType::ClientTimeoutLocalNatAccess,
            Message {
                nat: Some(nat(true)),
                client_timeout: Some(65536),
                ..message()
            },
        ),
    ];
    let no_hmac = Keys::new(b"a passphrase", Mode::LegacyIv).unwrap();
    for (kind, m) in cases {
        assert_eq!(m.message_type(), kind);
        for digest in Digest::ALL {
            for keys in [key(), no_hmac.clone()] {
                let packet = spa::encode(&m, &keys, digest, [3; 8]).unwrap();
                assert_eq!(
                    spa::decode(&packet, &keys),
                    Ok(m.clone()),
                    "{kind:?} {digest}"
                );
            }
        }
    }
}

#[test]
fn every_truncation_is_refused_without_panic() {
    let packet = packet();
    for len in 0..packet.len() {
        assert!(spa::decode(&packet[..len], &key()).is_err(), "{len}");
    }
    let keys = Keys::new(&[7; 32], Mode::Cbc).unwrap();
    let plain = spa::encode(&message(), &keys, Digest::Md5, [1; 8]).unwrap();
    for len in 0..plain.len() {
        assert!(spa::decode(&plain[..len], &keys).is_err(), "{len}");
    }
}

#[test]
fn wrong_hmac_key_costs_one_hmac() {
    let wrong = Keys::new(&[7; 32], Mode::Cbc)
        .unwrap()
        .with_hmac(&[8; 64], Digest::Sha256)
        .unwrap();
    assert_eq!(spa::decode(&packet(), &wrong), Err(SpaError::Hmac));
    let other_digest = Keys::new(&[7; 32], Mode::Cbc)
        .unwrap()
        .with_hmac(&[9; 64], Digest::Sha512)
        .unwrap();
    assert_eq!(spa::decode(&packet(), &other_digest), Err(SpaError::Hmac));
    let none = Keys::new(&[7; 32], Mode::Cbc).unwrap();
    assert!(spa::decode(&packet(), &none).is_err());
}

#[test]
fn wrong_rijndael_key_is_refused() {
    let wrong = Keys::new(&[6; 32], Mode::Cbc)
        .unwrap()
        .with_hmac(&[9; 64], Digest::Sha256)
        .unwrap();
    assert_eq!(spa::decode(&packet(), &wrong), Err(SpaError::Decrypt));
    // Without an HMAC, a wrong key fails on the padding or on the 16 digits.
    for k in 0..50u8 {
        let keys = Keys::new(&[k], Mode::Cbc).unwrap();
        let packet = spa::encode(&message(), &keys, Digest::Sha256, [k; 8]).unwrap();
        let wrong = Keys::new(&[k, 0], Mode::Cbc).unwrap();
        assert_eq!(spa::decode(&packet, &wrong), Err(SpaError::Decrypt), "{k}");
    }
}

#[test]
fn tampered_packets_are_refused() {
    let packet = packet();
    let flip = |packet: &[u8], i: usize| {
        let mut p = packet.to_vec();
        p[i] = if p[i] == b'A' { b'B' } else { b'A' };
        p
    };
    for i in 0..packet.len() {
        assert_eq!(
            spa::decode(&flip(&packet, i), &key()),
            Err(SpaError::Hmac),
            "{i}"
        );
    }
    // Without an HMAC, the padding, the digits or the inner digest catch it.
    let keys = Keys::new(&[7; 32], Mode::Cbc).unwrap();
    let plain = spa::encode(&message(), &keys, Digest::Sha256, [1; 8]).unwrap();
    for i in 0..plain.len() {
        let err = spa::decode(&flip(&plain, i), &keys).unwrap_err();
        assert!(
            matches!(
                err,
                SpaError::Decrypt | SpaError::Digest | SpaError::NotText | SpaError::Ciphertext
            ),
            "{i}: {err}"
        );
    }
}

#[test]
fn framing_is_refused_before_any_crypto() {
    let mut salted = b"U2FsdGVkX1".to_vec();
    salted.extend_from_slice(&packet());
    assert_eq!(spa::decode(&salted, &key()), Err(SpaError::SaltPrefix));
    let mut eq = packet();
    eq.push(b'=');
    assert_eq!(spa::decode(&eq, &key()), Err(SpaError::NotBase64));
    let mut newline = packet();
    newline.push(b'\n');
    assert_eq!(spa::decode(&newline, &key()), Err(SpaError::NotBase64));
    assert_eq!(spa::decode(&[b'A'; 139], &key()), Err(SpaError::Length));
    assert_eq!(spa::decode(&[b'A'; 1501], &key()), Err(SpaError::Length));
    assert_eq!(spa::decode(&[b'A'; 140], &key()), Err(SpaError::Hmac));
}

/// `fields` with its digest, encrypted as fwknop does under the key `fields` (no HMAC): reaches
/// the field checks with text `encode` would refuse to write.
fn seal_text(fields: &str) -> Vec<u8> {
    use sha2::Digest as _;
    let digest = STANDARD_NO_PAD.encode(sha2::Sha256::digest(fields.as_bytes()));
    let plain = format!("{fields}:{digest}");
    // fwknop's format rebuilt with the crates themselves, a second implementation of it.
    use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
    use md5::Md5;
    let (key, salt) = (b"fields", [5u8; 8]);
    let mut kiv = Vec::new();
    let mut prev: Vec<u8> = Vec::new();
    while kiv.len() < 48 {
        let mut h = Md5::new();
        md5::Digest::update(&mut h, &prev);
        md5::Digest::update(&mut h, key);
        md5::Digest::update(&mut h, salt);
        prev = md5::Digest::finalize(h).to_vec();
        kiv.extend_from_slice(&prev);
    }
    let mut buf = plain.into_bytes();
    let len = buf.len();
    buf.resize(len + 16, 0);
    let ct = cbc::Encryptor::<aes::Aes256>::new(kiv[..32].into(), kiv[32..48].into())
        .encrypt_padded_mut::<Pkcs7>(&mut buf, len)
        .unwrap()
        .to_vec();
    let mut data = b"Salted__".to_vec();
    data.extend_from_slice(&salt);
    data.extend_from_slice(&ct);
    let text = STANDARD_NO_PAD.encode(data).into_bytes().split_off(10);
    assert!(
        text.len() >= 140,
        "{fields} makes a packet fwknopd drops for its length"
    );
    text
}

fn b64(s: &str) -> String {
    STANDARD_NO_PAD.encode(s)
}

#[test]
fn each_bad_field_has_its_reason() {
    let keys = Keys::new(b"fields", Mode::Cbc).unwrap();
    let user = b64("root");
    let msg = b64("198.18.0.1,tcp/22");
    let ok = format!("1234567890123456:{user}:1790000000:3.0.0:1:{msg}");
    assert!(spa::decode(&seal_text(&ok), &keys).is_ok());
    let cases: Vec<(String, SpaError)> = vec![
        (
            format!("1234567890123456:{user}:1790000000:3.0.0:1"),
            SpaError::Fields,
        ),
        (format!("{ok}:{}:extra", b64("auth")), SpaError::Fields),
        (
            format!("1234567890123456:{}:1790000000:3.0.0:1:{msg}", b64("a/b")),
            SpaError::Username,
        ),
        (
            format!("1234567890123456::1790000000:3.0.0:1:{msg}"),
            SpaError::Username,
        ),
        (
            format!("1234567890123456:{user}:17900x0000:3.0.0:1:{msg}"),
            SpaError::Timestamp,
        ),
        (
            format!("1234567890123456:{user}:1234567890123:3.0.0:1:{msg}"),
            SpaError::Timestamp,
        ),
        (
            format!("1234567890123456:{user}:1790000000:3.0.0.1234:1:{msg}"),
            SpaError::Version,
        ),
        (
            format!("1234567890123456:{user}:1790000000:3.0.0:7:{msg}"),
            SpaError::MessageType,
        ),
        (
            format!("1234567890123456:{user}:1790000000:3.0.0::{msg}"),
            SpaError::MessageType,
        ),
        (
            format!(
                "1234567890123456:{user}:1790000000:3.0.0:1:{}",
                b64("198.18.0.1,icmp/22")
            ),
            SpaError::Access,
        ),
        (
            format!(
                "1234567890123456:{user}:1790000000:3.0.0:1:{}",
                b64("198.18.0.1,tcp/0")
            ),
            SpaError::Access,
        ),
        (
            format!(
                "1234567890123456:{user}:1790000000:3.0.0:1:{}",
                b64("198.18.0,tcp/22")
            ),
            SpaError::Access,
        ),
        (
            format!(
                "1234567890123456:{user}:1790000000:3.0.0:2:{msg}:{}",
                b64("h/x,22")
            ),
            SpaError::Nat,
        ),
        (
            format!(
                "1234567890123456:{user}:1790000000:3.0.0:2:{msg}:{}",
                b64("host,70000")
            ),
            SpaError::Nat,
        ),
        (format!("{ok}:{}", "not*base64"), SpaError::ServerAuth),
        (
            format!("1234567890123456:{user}:1790000000:3.0.0:3:{msg}:65537"),
            SpaError::ClientTimeout,
        ),
        (
            format!("1234567890123456:{user}:1790000000:3.0.0:3:{msg}:"),
            SpaError::ClientTimeout,
        ),
        (
            format!("123456789012345x:{user}:1790000000:3.0.0:1:{msg}"),
            SpaError::Decrypt,
        ),
        (
            format!("1234567890123456:{user}:1790000000:3.0.\u{7f}:1:{msg}"),
            SpaError::NotText,
        ),
    ];
    for (text, reason) in cases {
        assert_eq!(spa::decode(&seal_text(&text), &keys), Err(reason), "{text}");
    }
}

#[test]
fn encode_refuses_what_fwknop_would() {
    let keys = key();
    let enc = |m: &Message| spa::encode(m, &keys, Digest::Sha256, [0; 8]);
    let field = |e| Err(EncodeError::Field(e));
    assert_eq!(
        enc(&Message {
            username: "a:b".into(),
            ..message()
        }),
        field(FieldError::Username)
    );
    assert_eq!(
        enc(&Message {
            username: "x".repeat(49),
            ..message()
        }),
        field(FieldError::Username)
    );
    assert_eq!(
        enc(&Message {
            version: "".into(),
            ..message()
        }),
        field(FieldError::Version)
    );
    assert_eq!(
        enc(&Message {
            request: Request::Access(vec![]),
            ..message()
        }),
        field(FieldError::Access)
    );
    assert_eq!(
        enc(&Message {
            request: Request::Command("x".into()),
            client_timeout: Some(1),
            ..message()
        }),
        field(FieldError::CommandExtras)
    );
    let nat = Nat {
        host: "a b".into(),
        port: Port::new(1).unwrap(),
        local: false,
    };
    assert_eq!(
        enc(&Message {
            nat: Some(nat),
            ..message()
        }),
        field(FieldError::Nat)
    );
    assert_eq!(
        enc(&Message {
            client_timeout: Some(65537),
            ..message()
        }),
        field(FieldError::ClientTimeout)
    );
    let short = Keys::new(b"k", Mode::Cbc).unwrap();
    // 118 bytes: fwknopd drops anything under 140.
    let tiny = Message {
        username: "a".into(),
        version: "3".into(),
        timestamp: 0,
        request: Request::Access(vec![Access {
            proto: Proto::Tcp,
            port: Port::new(1).unwrap(),
        }]),
        ..message()
    };
    assert_eq!(
        spa::encode(&tiny, &short, Digest::Md5, [0; 8]),
        Err(EncodeError::Length(118))
    );
    // 1500 bytes at most: a long command with SHA-512 and its HMAC stays under; the longest
    // fields fwknop takes always fit.
    let long = Message {
        request: Request::Command("x".repeat(180)),
        server_auth: Some("y".repeat(190)),
        ..message()
    };
    let sha512 = Keys::new(&[7; 32], Mode::Cbc)
        .unwrap()
        .with_hmac(&[9; 64], Digest::Sha512)
        .unwrap();
    let packet = spa::encode(&long, &sha512, Digest::Sha512, [0; 8]).unwrap();
    assert!(packet.len() <= 1500, "{}", packet.len());
    assert_eq!(spa::decode(&packet, &sha512), Ok(long));
}

#[test]
fn timestamps_outside_the_window_are_refused_with_the_offset() {
    let m = message();
    let t = m.timestamp;
    assert_eq!(m.check_age(t, 120), Ok(()));
    assert_eq!(m.check_age(t + 120, 120), Ok(()));
    assert_eq!(m.check_age(t - 120, 120), Ok(()));
    let late = m.check_age(t + 121, 120).unwrap_err();
    assert_eq!((late.offset, late.window), (-121, 120));
    assert_eq!(
        late.to_string(),
        "timestamp -121 s from now, outside the 120 s window"
    );
    let early = m.check_age(t - 300, 120).unwrap_err();
    assert_eq!(early.offset, 300);
    assert_eq!(m.check_age(0, 120).unwrap_err().offset, t as i64);
    assert_eq!(m.replay_horizon(120), t + 120);
}

#[test]
fn replay_digest_is_sha256_of_the_payload_in_base64() {
    // `printf %s abc | sha256sum`, in base64 without `=`.
    let d = spa::replay_digest(b"abc");
    assert_eq!(d.to_string(), "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0");
    assert_eq!(d.to_string().parse(), Ok(d));
    assert!("ungWv48Bz".parse::<spa::ReplayDigest>().is_err());
    let a = packet();
    let b = spa::encode(&message(), &key(), Digest::Sha256, [2; 8]).unwrap();
    assert_ne!(spa::replay_digest(&a), spa::replay_digest(&b));
}

#[test]
fn keys_never_show_in_debug_and_lengths_are_checked() {
    let shown = format!("{:?}", key());
    assert!(!shown.contains("7, 7"), "{shown}");
    assert!(Keys::new(&[], Mode::Cbc).is_err());
    assert!(Keys::new(&[0; 33], Mode::Cbc).is_err());
    assert!(
        Keys::new(&[0; 32], Mode::Cbc)
            .unwrap()
            .with_hmac(&[0; 137], Digest::Md5)
            .is_err()
    );
    assert_eq!("SHA3_256".parse(), Ok(Digest::Sha3_256));
    assert!("sha3-256".parse::<Digest>().is_err());
}

#[test]
fn reasons_have_distinct_labels() {
    let mut labels: Vec<&str> = SpaError::ALL.iter().map(|e| e.as_str()).collect();
    for (i, e) in SpaError::ALL.iter().enumerate() {
        assert_eq!(e.index(), i);
    }
    labels.sort();
    labels.dedup();
    assert_eq!(labels.len(), SpaError::ALL.len());
}

/// Packets of every kind our encoder makes, each decoded again. For
/// `tests/data/spa/fwknopd-check.sh`, which feeds them to Debian's fwknopd,
/// `SPA_OUT=FILE cargo test -p knock-proto --test spa packets_for_fwknopd` also writes one
/// line per packet, `NAME MODE KEY_BASE64 HMAC HMAC_KEY_BASE64 PACKET`, stamped now.
#[test]
fn packets_for_fwknopd() {
    let out = std::env::var("SPA_OUT").ok();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let tcp = |port| Access {
        proto: Proto::Tcp,
        port: Port::new(port).unwrap(),
    };
    let base = Message {
        random: Random::new(now.wrapping_mul(2_654_435_761)),
        timestamp: now,
        username: "root".into(),
        request: Request::Access(vec![tcp(22)]),
        ..message()
    };
    let nat = |local| Nat {
        host: "198.18.0.10".into(),
        port: Port::new(2222).unwrap(),
        local,
    };
    let rijndael = [7u8; 32];
    let hmac = [9u8; 64];
    /// Name, message, mode, Rijndael key, HMAC digest, message digest.
    type Case<'a> = (&'a str, Message, Mode, &'a [u8], Option<Digest>, Digest);
    let cases: Vec<Case> = vec![
        (
            "access",
            base.clone(),
            Mode::Cbc,
            &rijndael,
            Some(Digest::Sha256),
            Digest::Sha256,
        ),
        (
            "ports-timeout",
            Message {
                request: Request::Access(vec![tcp(22), tcp(8080)]),
                client_timeout: Some(30),
                ..base.clone()
            },
            Mode::Cbc,
            &rijndael,
            Some(Digest::Sha256),
            Digest::Sha256,
        ),
        (
            "nat",
            Message {
                nat: Some(nat(false)),
                ..base.clone()
            },
            Mode::Cbc,
            &rijndael,
            Some(Digest::Sha256),
            Digest::Sha256,
        ),
        (
            "nat-local-timeout",
            Message {
                nat: Some(nat(true)),
                client_timeout: Some(45),
                ..base.clone()
            },
            Mode::Cbc,
            &rijndael,
            Some(Digest::Sha256),
            Digest::Sha256,
        ),
        (
            "md5-sha1",
            base.clone(),
            Mode::Cbc,
            &rijndael,
            Some(Digest::Sha1),
            Digest::Md5,
        ),
        (
            "sha384-sha512",
            base.clone(),
            Mode::Cbc,
            &rijndael,
            Some(Digest::Sha512),
            Digest::Sha384,
        ),
        (
            "sha512-md5",
            base.clone(),
            Mode::Cbc,
            &rijndael,
            Some(Digest::Md5),
            Digest::Sha512,
        ),
        (
            "sha3",
            base.clone(),
            Mode::Cbc,
            &rijndael,
            Some(Digest::Sha3_256),
            Digest::Sha3_512,
        ),
        (
            "sha3-512",
            base.clone(),
            Mode::Cbc,
            &rijndael,
            Some(Digest::Sha3_512),
            Digest::Sha3_256,
        ),
        (
            "passphrase",
            base.clone(),
            Mode::Cbc,
            b"knock-test-key",
            Some(Digest::Sha384),
            Digest::Sha1,
        ),
        (
            "no-hmac",
            base.clone(),
            Mode::Cbc,
            &rijndael,
            None,
            Digest::Sha256,
        ),
        (
            "legacy",
            base.clone(),
            Mode::LegacyIv,
            b"short",
            None,
            Digest::Sha256,
        ),
    ];
    let mut lines = String::new();
    for (i, (name, m, mode, key, hmac_digest, digest)) in cases.into_iter().enumerate() {
        let mut keys = Keys::new(key, mode).unwrap();
        if let Some(d) = hmac_digest {
            keys = keys.with_hmac(&hmac, d).unwrap();
        }
        let salt = (now ^ i as u64).to_le_bytes();
        let packet = spa::encode(&m, &keys, digest, salt).unwrap();
        assert_eq!(spa::decode(&packet, &keys).as_ref(), Ok(&m), "{name}");
        lines.push_str(&format!(
            "{name} {} {} {} {} {}\n",
            if mode == Mode::Cbc { "cbc" } else { "legacy" },
            STANDARD.encode(key),
            hmac_digest.map_or("none", |d| d.as_str()),
            STANDARD.encode(hmac),
            String::from_utf8(packet).unwrap()
        ));
    }
    if let Some(out) = out {
        std::fs::write(out, lines).unwrap();
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn access() -> impl Strategy<Value = Access> {
        (any::<bool>(), 1..=u16::MAX).prop_map(|(udp, port)| Access {
            proto: if udp { Proto::Udp } else { Proto::Tcp },
            port: Port::new(port).unwrap(),
        })
    }

    fn message() -> impl Strategy<Value = Message> {
        let nat =
            ("[a-z0-9.-]{1,70}", 1..=u16::MAX, any::<bool>()).prop_map(|(host, port, local)| Nat {
                host,
                port: Port::new(port).unwrap(),
                local,
            });
        (
            any::<u64>(),
            "[A-Za-z0-9._ @#$%&()-]{1,48}",
            0..1_000_000_000_000u64,
            any::<[u8; 4]>(),
            prop::collection::vec(access(), 1..8),
            prop::option::of(nat),
            prop::option::of("[ -~]{1,100}"),
            prop::option::of(0..=65536u32),
        )
            .prop_map(
                |(random, username, timestamp, ip, ports, nat, server_auth, client_timeout)| {
                    Message {
                        random: Random::new(random),
                        username,
                        timestamp,
                        version: "3.0.0".into(),
                        allow_ip: Ipv4Addr::from(ip),
                        request: Request::Access(ports),
                        nat,
                        server_auth,
                        client_timeout,
                    }
                },
            )
    }

    proptest! {
        /// Whatever `encode` builds, `decode` reads back, under every digest and HMAC digest.
        #[test]
        fn encode_then_decode_is_the_message(
            m in message(),
            digest in 0..7usize,
            hmac in 0..8usize,
            salt in any::<[u8; 8]>(),
        ) {
            let mut keys = Keys::new(&salt, Mode::Cbc).unwrap();
            if let Some(&d) = Digest::ALL.get(hmac) {
                keys = keys.with_hmac(&[hmac as u8; 64], d).unwrap();
            }
            let packet = spa::encode(&m, &keys, Digest::ALL[digest], salt).unwrap();
            prop_assert_eq!(spa::decode(&packet, &keys), Ok(m));
        }
    }
}
