//! TCP connections from the outside host: one attempt ([`Attempt::reach`], with polling
//! waits), and one held across a reload and the window's end ([`Held`]).

use std::io::{self, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use knock_e2e::{Netns, read, wait_until};
use socket2::{Domain, Protocol, Socket, Type};

/// How long a connection attempt waits for an answer before it counts as dropped. Between
/// namespaces of one machine a SYN-ACK takes microseconds; a slow answer read as a drop only
/// repeats a poll.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a line sent over a held connection may take to reach the listener.
const ARRIVES_WITHIN: Duration = Duration::from_secs(5);

/// What became of a TCP connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reach {
    Connected,
    /// A reset or an ICMP error came back.
    Refused,
    /// Nothing came back within [`CONNECT_TIMEOUT`].
    Dropped,
}

/// A TCP connection from `from` (an address of `outside`) to `to`.
pub(super) fn connect(outside: &Netns, from: &str, to: SocketAddr) -> io::Result<TcpStream> {
    let from: IpAddr = from.parse().expect("an address");
    outside.enter(|| {
        let socket = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
        socket.bind(&SocketAddr::new(from, 0).into())?;
        socket.connect_timeout(&to.into(), CONNECT_TIMEOUT)?;
        Ok(socket.into())
    })
}

/// Connection attempts from one address of the outside host to one place.
#[derive(Clone, Copy)]
pub(super) struct Attempt<'a> {
    /// The outside host.
    pub(super) outside: &'a Netns,
    /// The address it connects from.
    pub(super) from: &'a str,
    /// Where to.
    pub(super) to: SocketAddr,
}

impl Attempt<'_> {
    /// Tries once to connect, and closes again.
    pub(super) fn reach(self) -> Reach {
        let refusals = [
            libc::ECONNREFUSED,
            libc::EHOSTUNREACH,
            libc::ENETUNREACH,
            libc::EACCES,
        ];
        match connect(self.outside, self.from, self.to) {
            Ok(_) => Reach::Connected,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Reach::Dropped,
            Err(e) if refusals.contains(&e.raw_os_error().unwrap_or(0)) => Reach::Refused,
            Err(e) => panic!("connect from {} to {}: {e}", self.from, self.to),
        }
    }

    /// Asserts that it does not get through now.
    pub(super) fn assert_blocked(self, when: &str) {
        let got = self.reach();
        assert_ne!(
            got,
            Reach::Connected,
            "{when}: {} got through to {}",
            self.from,
            self.to
        );
    }

    /// Polls until it gets through; panics with the last outcome after `within`.
    pub(super) fn wait_connects(self, within: Duration, when: &str) {
        self.wait(
            true,
            within,
            &format!("{when}: {} did not get through to {}", self.from, self.to),
        );
    }

    /// Polls until it no longer gets through; panics after `within`.
    pub(super) fn wait_blocked(self, within: Duration, when: &str) {
        self.wait(
            false,
            within,
            &format!("{when}: {} still got through to {}", self.from, self.to),
        );
    }

    /// Polls every 100 ms (fw4 lets 25 SYNs a second through) until `connected` is whether
    /// it gets through.
    pub(super) fn wait(self, connected: bool, within: Duration, failure: &str) {
        let deadline = Instant::now() + within;
        loop {
            let got = self.reach();
            if (got == Reach::Connected) == connected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{failure} within {within:?}: {got:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A connection made during the window and kept.
pub(super) struct Held {
    stream: TcpStream,
    /// The file where the listener writes what it receives.
    received: PathBuf,
}

impl Held {
    /// Makes `attempt`'s connection; the listener behind it writes to `received`.
    pub(super) fn open(attempt: Attempt<'_>, received: &Path) -> Held {
        let (from, to) = (attempt.from, attempt.to);
        let stream = connect(attempt.outside, from, to)
            .unwrap_or_else(|e| panic!("{from} to {to} while the door is open: {e}"));
        Held {
            stream,
            received: received.to_owned(),
        }
    }

    /// Sends `line` and waits until the listener has it.
    pub(super) fn send(&mut self, line: &str) {
        let sent = writeln!(self.stream, "{line}").and_then(|()| self.stream.flush());
        let what = format!("{line:?} (write: {sent:?}) to arrive over the held connection");
        wait_until(&what, ARRIVES_WITHIN, || {
            read(&self.received).contains(line)
        });
    }
}
