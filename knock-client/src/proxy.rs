//! `--proxy HOST:PORT`: after the knock, connect to the service it opened and relay standard
//! input and output over that connection, so that ssh can knock and connect in one step:
//!
//! ```text
//! Host home
//!     ProxyCommand knock home ssh --proxy %h:%p
//! ```
//!
//! The door opens a moment after the last hit arrives (the server has to see it and run its
//! command), so the connection is retried with a growing pause until it is accepted or
//! `--wait` runs out. The relay is two plain threads, one per direction: a proxy carries one
//! connection, so there is nothing for an async runtime to do.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::plan::Family;
use crate::resolve;

/// The first pause between two connection attempts; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause between two connection attempts.
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// `HOST:PORT` as ssh's `%h:%p` writes it: the port after the last colon, so an IPv6 literal
/// works bare (`fd00::2:22`, as ssh prints it) or in brackets (`[fd00::2]:22`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Name or address, without brackets.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Target, String> {
        let (host, port) = s.rsplit_once(':').ok_or_else(|| {
            format!("`{s}` has no port: write HOST:PORT, like home.example.net:22")
        })?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(format!("`{s}` has no host: write HOST:PORT"));
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("`{port}` is not a port: ports go from 1 to 65535"))?;
        Ok(Target {
            host: host.to_owned(),
            port,
        })
    }
}

/// Connects to `target` (retrying until `wait` has passed) and relays standard input and
/// output until the server closes the connection.
pub fn run(target: &Target, family: Family, wait: Duration) -> anyhow::Result<()> {
    let mut addr = resolve::resolve(&target.host, family)?;
    addr.set_port(target.port);
    let stream = connect(addr, wait)?;
    relay(stream, io::stdin(), io::stdout())
}

/// Connects to `addr`, trying again after a growing pause until `wait` has passed.
fn connect(addr: SocketAddr, wait: Duration) -> anyhow::Result<TcpStream> {
    let deadline = Instant::now() + wait;
    let mut pause = FIRST_PAUSE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // A filtered port drops the SYN: give one attempt at most a second, and no more
        // than is left.
        let limit = left.clamp(Duration::from_millis(1), MAX_PAUSE);
        let error = match TcpStream::connect_timeout(&addr, limit) {
            Ok(stream) => return Ok(stream),
            Err(e) => e,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "could not connect to {addr} within {} s after knocking: {error} \
                 (a longer --wait gives the door more time to open)",
                wait.as_secs()
            );
        }
        tracing::debug!("connect to {addr}: {error}; again in {pause:?}");
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Copies `input` to `stream` and `stream` to `output` until the server closes; the end of
/// `input` is passed on as a half-close, so the server sees EOF and can still answer.
fn relay(
    stream: TcpStream,
    mut input: impl Read + Send + 'static,
    mut output: impl Write,
) -> anyhow::Result<()> {
    let mut upstream = stream.try_clone().context("cannot share the connection")?;
    // Detached: a read from the terminal cannot be interrupted, and the process exits once
    // the server has closed, whatever this thread is waiting for.
    std::thread::spawn(move || {
        if io::copy(&mut input, &mut upstream).is_ok() {
            let _ = upstream.shutdown(Shutdown::Write);
        }
    });
    let mut downstream = stream;
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match downstream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("the connection failed"),
        };
        // Flushed at once: ssh waits for each packet before it sends the next.
        output.write_all(&buf[..n])?;
        output.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn targets_as_ssh_writes_them() {
        let t = |s: &str| s.parse::<Target>().map(|t| (t.host, t.port));
        assert_eq!(t("198.18.0.2:22"), Ok(("198.18.0.2".into(), 22)));
        assert_eq!(t("fd00:18::2:22"), Ok(("fd00:18::2".into(), 22)));
        assert_eq!(t("[fd00:18::2]:2222"), Ok(("fd00:18::2".into(), 2222)));
        assert_eq!(
            t("home.example.net:22"),
            Ok(("home.example.net".into(), 22))
        );
        for bad in ["home", ":22", "h:0", "h:ssh", "h:70000"] {
            assert!(t(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relays_both_ways_and_passes_on_the_end_of_input() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let echo = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            s.write_all(&got).unwrap();
        });
        let stream = connect(addr, Duration::from_secs(5)).unwrap();
        let mut out = Vec::new();
        relay(stream, &b"hello through the door\n"[..], &mut out).unwrap();
        echo.join().unwrap();
        assert_eq!(out, b"hello through the door\n");
    }

    #[test]
    fn gives_up_when_wait_runs_out() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = connect(addr, Duration::from_millis(200)).unwrap_err();
        assert!(err.to_string().contains("could not connect"), "{err}");
    }
}
