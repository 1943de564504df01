//! Mail notices: "this address knocked on this door, and this is what was done", handed to
//! any sendmail-compatible program (sendmail, postfix, ssmtp, msmtp) as `sendmail -t -i`.
//!
//! [`compose`] is pure (the time is an argument) so the message is unit-tested byte for byte;
//! [`send`] and [`deliver`] only run the program. Header values come from the config and the
//! packet's source address, never from packet payload, but they are still stripped of control
//! characters: a CR or LF in a door name must not be able to start a header of its own.
//! Non-ASCII text in the Subject is written as RFC 2047 encoded words so that every header
//! stays 7-bit, as RFC 5322 wants; the body is UTF-8, declared as such.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use chrono::{DateTime, FixedOffset};

/// The From address when `mail_from` is not configured: `knock@<hostname>`.
pub fn default_from() -> String {
    format!("knock@{}", hostname())
}

/// This host's name as the kernel knows it, or `localhost` when it cannot be read.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The whole message for `sendmail -t`: headers, a blank line, the body, LF line ends.
///
/// `done` lists what the door did besides this notice, one line each ("opened 22/tcp for
/// 20 s", "ran: /usr/bin/foo 198.18.0.2"); it may be empty.
pub fn compose(
    from: &str,
    to: &[String],
    door: &str,
    knocker: IpAddr,
    when: DateTime<FixedOffset>,
    done: &[String],
) -> String {
    let door_line = one_line(door);
    let recipients: Vec<String> = to.iter().map(|a| one_line(a)).collect();
    let mut m = String::new();
    // Writing to a String cannot fail, hence the ignored results.
    let _ = writeln!(m, "From: {}", one_line(from));
    let _ = writeln!(m, "To: {}", recipients.join(", "));
    let _ = writeln!(
        m,
        "Subject: {}",
        encode_header(&format!("knock: {knocker} opened door {door_line}"))
    );
    let _ = writeln!(m, "Date: {}", when.to_rfc2822());
    m.push_str("MIME-Version: 1.0\n");
    m.push_str("Content-Type: text/plain; charset=utf-8\n");
    m.push_str("Content-Transfer-Encoding: 8bit\n");
    // RFC 3834: tells autoresponders not to answer a machine.
    m.push_str("Auto-Submitted: auto-generated\n");
    m.push('\n');
    let _ = writeln!(m, "{knocker} knocked the sequence of door {door_line}.");
    m.push('\n');
    let _ = writeln!(m, "Time:    {}", when.format("%Y-%m-%d %H:%M:%S %:z"));
    let _ = writeln!(m, "Door:    {door_line}");
    let _ = writeln!(m, "Address: {knocker}");
    m.push('\n');
    if done.is_empty() {
        m.push_str("Done: nothing besides this notice.\n");
    } else {
        m.push_str("Done:\n");
        for line in done {
            let _ = writeln!(m, "- {}", one_line(line));
        }
    }
    m
}

/// `s` with every control character (CR and LF above all) replaced by a space, so that it
/// cannot end the line it is written on.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// An unstructured header value: as is when ASCII, else RFC 2047 "Q" encoded words of at
/// most 75 characters each, folded onto continuation lines.
fn encode_header(s: &str) -> String {
    if s.is_ascii() {
        return s.to_owned();
    }
    const PREFIX: &str = "=?UTF-8?Q?";
    const SUFFIX: &str = "?=";
    const MAX_PAYLOAD: usize = 75 - PREFIX.len() - SUFFIX.len();
    let mut words = Vec::new();
    let mut word = String::new();
    for c in s.chars() {
        let mut piece = String::new();
        match c {
            ' ' => piece.push('_'),
            'a'..='z' | 'A'..='Z' | '0'..='9' | '!' | '*' | '+' | '-' | '/' => piece.push(c),
            _ => {
                // Characters are never split across words: a decoder must see whole UTF-8.
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(piece, "={b:02X}");
                }
            }
        }
        if word.len() + piece.len() > MAX_PAYLOAD {
            words.push(std::mem::take(&mut word));
        }
        word.push_str(&piece);
    }
    words.push(word);
    words
        .iter()
        .map(|w| format!("{PREFIX}{w}{SUFFIX}"))
        .collect::<Vec<_>>()
        .join("\n ")
}

/// Starts `sendmail -t -i`, writes `message` to its standard input and closes it.
///
/// Returns the running child with its standard error piped: the caller reaps it (for example
/// with `wait_with_output` in a thread of its own, since a slow MTA may take seconds) and
/// logs its status and error output. `-t` takes the recipients from the headers; `-i` keeps
/// a line holding a single dot from ending the message early.
pub fn send(sendmail: &Path, message: &str) -> io::Result<Child> {
    let mut child = Command::new(sendmail)
        .args(["-t", "-i"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot run {} to send a mail notice: {e} (set `sendmail` in [options])",
                    sendmail.display()
                ),
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        match stdin.write_all(message.as_bytes()) {
            // The program quit without reading everything: its exit status and error
            // output, which the caller logs, say more than "broken pipe".
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
            Ok(()) => {}
        }
    }
    Ok(child)
}

/// Sends `message` through `sendmail` and waits for it; an error carries the program's exit
/// status and what it wrote to standard error. Blocks: run it off the capture thread.
pub fn deliver(sendmail: &Path, message: &str) -> io::Result<()> {
    let output = send(sendmail, message)?.wait_with_output()?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(io::Error::other(format!(
        "{} failed ({}): {}",
        sendmail.display(),
        output.status,
        one_line(stderr.trim())
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn when() -> DateTime<FixedOffset> {
        FixedOffset::east_opt(3600)
            .unwrap()
            .with_ymd_and_hms(2026, 11, 25, 9, 4, 11)
            .unwrap()
    }

    #[test]
    fn a_notice_names_the_door_the_knocker_the_time_and_what_was_done() {
        let m = compose(
            "knock@gate",
            &["admin@example.net".into(), "ops@example.net".into()],
            "vpn",
            "198.18.0.2".parse().unwrap(),
            when(),
            &["opened 1723/tcp for 20 s".into()],
        );
        assert_eq!(
            m,
            "From: knock@gate\n\
             To: admin@example.net, ops@example.net\n\
             Subject: knock: 198.18.0.2 opened door vpn\n\
             Date: Wed, 25 Nov 2026 09:04:11 +0100\n\
             MIME-Version: 1.0\n\
             Content-Type: text/plain; charset=utf-8\n\
             Content-Transfer-Encoding: 8bit\n\
             Auto-Submitted: auto-generated\n\
             \n\
             198.18.0.2 knocked the sequence of door vpn.\n\
             \n\
             Time:    2026-11-25 09:04:11 +01:00\n\
             Door:    vpn\n\
             Address: 198.18.0.2\n\
             \n\
             Done:\n\
             - opened 1723/tcp for 20 s\n"
        );
    }

    #[test]
    fn nothing_done_is_said_and_ipv6_knockers_are_named() {
        let m = compose(
            "k@h",
            &["a@b".into()],
            "d",
            "fd00::2".parse().unwrap(),
            when(),
            &[],
        );
        assert!(m.contains("Subject: knock: fd00::2 opened door d\n"), "{m}");
        assert!(m.ends_with("Done: nothing besides this notice.\n"), "{m}");
    }

    #[test]
    fn line_breaks_in_values_cannot_add_headers() {
        let m = compose(
            "k@h\nBcc: evil@example.net",
            &["a@b\r\nBcc: evil@example.net".into()],
            "door\r\nBcc: evil@example.net",
            "198.18.0.2".parse().unwrap(),
            when(),
            &["x\nBcc: evil@example.net".into()],
        );
        let (headers, _) = m.split_once("\n\n").unwrap();
        assert!(headers.lines().all(|l| !l.starts_with("Bcc")), "{headers}");
        assert!(!m.contains('\r'));
        assert!(m.lines().all(|l| !l.starts_with("Bcc")), "{m}");
    }

    #[test]
    fn non_ascii_subjects_become_encoded_words_that_keep_headers_7_bit() {
        assert_eq!(encode_header("porte é"), "=?UTF-8?Q?porte_=C3=A9?=");
        let long = encode_header(&"ü".repeat(40));
        for (i, line) in long.split('\n').enumerate() {
            let word = if i == 0 {
                line
            } else {
                line.strip_prefix(' ').unwrap()
            };
            assert!(word.len() <= 75, "{word}");
            assert!(
                word.starts_with("=?UTF-8?Q?") && word.ends_with("?="),
                "{word}"
            );
            // No character is cut in half: each word holds whole "=C3=BC" pairs.
            assert_eq!((word.len() - 12) % 6, 0, "{word}");
        }
        let m = compose(
            "k@h",
            &["a@b".into()],
            "tür",
            "::1".parse().unwrap(),
            when(),
            &[],
        );
        let (headers, body) = m.split_once("\n\n").unwrap();
        assert!(headers.is_ascii(), "{headers}");
        assert!(body.contains("Door:    tür\n"));
    }

    #[test]
    fn the_default_sender_is_knock_at_this_host() {
        let from = default_from();
        let host = from.strip_prefix("knock@").unwrap();
        assert!(!host.is_empty() && host.is_ascii() && !host.contains(char::is_whitespace));
    }

    /// A stand-in sendmail that records its arguments and message, then exits with `status`.
    fn stand_in(dir: &Path, status: i32) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = dir.join("sendmail");
        let script = format!(
            "#!/bin/sh\necho \"$@\" > '{0}/args'\ncat > '{0}/message'\n\
             echo 'no route to the smarthost' >&2\nexit {status}\n",
            dir.display()
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// [`deliver`], retried while the kernel says "text file busy": another test thread may
    /// have forked while the stand-in script was still open for writing.
    fn deliver_retrying(sendmail: &Path, message: &str) -> io::Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match deliver(sendmail, message) {
                Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy => {
                    assert!(std::time::Instant::now() < deadline, "{e}");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                result => return result,
            }
        }
    }

    #[test]
    fn delivery_pipes_the_message_to_sendmail_t_i() {
        let dir = tempfile::tempdir().unwrap();
        let sendmail = stand_in(dir.path(), 0);
        let m = compose(
            "k@h",
            &["a@b".into()],
            "ssh",
            "198.18.0.2".parse().unwrap(),
            when(),
            &[],
        );
        deliver_retrying(&sendmail, &m).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("args")).unwrap(),
            "-t -i\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("message")).unwrap(),
            m
        );
    }

    #[test]
    fn a_failing_sendmail_reports_its_status_and_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let sendmail = stand_in(dir.path(), 75);
        let e = deliver_retrying(&sendmail, "To: a@b\n\nhi\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("75") && e.contains("no route to the smarthost"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_sendmail_is_an_error_that_says_what_to_set() {
        let e = deliver(Path::new("/nonexistent/sendmail"), "x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("`sendmail`"), "{e}");
    }
}
