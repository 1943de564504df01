//! The control socket's transport: a Unix socket in the runtime directory, root only, served
//! by one thread that hands each request to the engine and writes its answer back.
//!
//! The protocol is in [`crate::control`]: one JSON line in, one JSON line out, one request
//! per connection. The engine never waits on a client: this thread reads the request (with
//! a deadline and a length cap), queues it for the engine with a reply channel, waits a
//! bounded time for the answer and writes it (with a deadline). A slow or hostile client
//! costs only this thread's time, a few seconds at most, and nothing of the engine's.
//!
//! The socket is created 0600 (umask while binding, chmod after) in a directory only root
//! writes, and a peer that is neither root nor the daemon's user is refused (`SO_PEERCRED`). Who can connect can close every door; that is the same person who could kill the
//! daemon. A stale socket from a killed run is removed before binding: only the holder of the
//! instance lock does that ([`crate::instance::Lock`] is taken first), so a running daemon's
//! socket is never taken from it.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, SyncSender};
use std::time::Duration;

use anyhow::Context as _;

use crate::control::{Request, Response};
use crate::engine::Msg;

/// The longest request line accepted, in bytes.
pub const MAX_LINE: u64 = 4096;

/// How long a client may take to send its request, and to read the answer.
const CLIENT_DEADLINE: Duration = Duration::from_secs(2);

/// How long we wait for the engine's answer.
const ENGINE_DEADLINE: Duration = Duration::from_secs(5);

/// A bound control socket, not yet served.
#[derive(Debug)]
pub struct Listener {
    listener: UnixListener,
    path: PathBuf,
}

impl Listener {
    /// Binds `path` (0600), replacing a stale socket. Call only while holding the instance
    /// lock.
    pub fn bind(path: &Path) -> anyhow::Result<Listener> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_dir() => {
                anyhow::bail!("control socket {} is a directory", path.display())
            }
            Ok(_) => std::fs::remove_file(path).with_context(|| {
                format!("cannot remove stale control socket {}", path.display())
            })?,
            Err(_) => {}
        }
        // The socket file takes the umask's permissions at bind: no moment when it is open
        // to others. The process has no other thread yet, so the umask change races nothing.
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
        let bound = UnixListener::bind(path);
        rustix::process::umask(old);
        let listener =
            bound.with_context(|| format!("cannot create control socket {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict control socket {}", path.display()))?;
        Ok(Listener {
            listener,
            path: path.to_owned(),
        })
    }

    /// Serves the socket on a thread of its own, queueing requests to the engine on `tx`.
    pub fn spawn(self, tx: SyncSender<Msg>) -> anyhow::Result<()> {
        std::thread::Builder::new()
            .name("control".into())
            .spawn(move || self.serve(&tx))
            .context("cannot start the control thread")?;
        Ok(())
    }

    fn serve(self, tx: &SyncSender<Msg>) {
        for conn in self.listener.incoming() {
            let stream = match conn {
                Ok(s) => s,
                Err(e) => {
                    // Out of descriptors, say: wait a little instead of spinning on it.
                    tracing::debug!("control socket {}: {e}", self.path.display());
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            if let Err(e) = answer(stream, tx) {
                tracing::debug!("control socket {}: {e:#}", self.path.display());
            }
        }
    }
}

/// Serves one connection: one request, one answer.
fn answer(stream: UnixStream, tx: &SyncSender<Msg>) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(CLIENT_DEADLINE))?;
    stream.set_write_timeout(Some(CLIENT_DEADLINE))?;
    let mut line = String::new();
    BufReader::new((&stream).take(MAX_LINE + 1)).read_line(&mut line)?;
    let response = if !trusted(&stream) {
        error("permission denied: only root (or the daemon's own user) may ask".into())
    } else {
        match parse_request(&line) {
            Ok(request) => ask_engine(request, tx),
            Err(message) => error(message),
        }
    };
    let mut text = serde_json::to_string(&response).context("cannot encode the answer")?;
    text.push('\n');
    (&stream).write_all(text.as_bytes())?;
    Ok(())
}

/// Whether the peer is root or the daemon's own user (`SO_PEERCRED`). The socket's mode
/// already keeps others out; this holds even if someone loosens it.
fn trusted(stream: &UnixStream) -> bool {
    let me = rustix::process::geteuid();
    rustix::net::sockopt::socket_peercred(stream)
        .is_ok_and(|cred| cred.uid.is_root() || cred.uid == me)
}

fn ask_engine(request: Request, tx: &SyncSender<Msg>) -> Response {
    let (reply, answer) = mpsc::channel();
    if tx.send(Msg::Control(request, reply)).is_err() {
        return error("the daemon is shutting down".into());
    }
    answer
        .recv_timeout(ENGINE_DEADLINE)
        .unwrap_or_else(|_| error("the daemon did not answer in time (busy?)".into()))
}

fn error(message: String) -> Response {
    Response::Error { message }
}

/// The request a client's line (as read, at most `MAX_LINE + 1` bytes) asks, or the message
/// of the error answer it gets instead. Pure (fuzzed: `fuzz/fuzz_targets/control.rs`).
pub fn parse_request(line: &str) -> Result<Request, String> {
    if line.len() as u64 > MAX_LINE {
        return Err(format!("request longer than {MAX_LINE} bytes"));
    }
    serde_json::from_str::<Request>(line.trim()).map_err(|e| format!("not a request: {e}"))
}

/// The daemon's answer line, as a client reads it. Pure (fuzzed:
/// `fuzz/fuzz_targets/control.rs`).
pub fn parse_answer(line: &str) -> std::io::Result<Response> {
    serde_json::from_str(line).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unreadable answer: {e}"),
        )
    })
}

/// Sends `request` to the daemon listening on `path` and returns its answer.
pub fn ask(path: &Path, request: &Request) -> std::io::Result<Response> {
    let stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(ENGINE_DEADLINE + CLIENT_DEADLINE))?;
    stream.set_write_timeout(Some(CLIENT_DEADLINE))?;
    let mut text = serde_json::to_string(request).map_err(std::io::Error::other)?;
    text.push('\n');
    (&stream).write_all(text.as_bytes())?;
    let mut line = String::new();
    // Bounded: whatever holds the socket, `status` never takes more memory than this.
    BufReader::new((&stream).take(MAX_ANSWER + 1)).read_line(&mut line)?;
    if line.len() as u64 > MAX_ANSWER {
        return Err(std::io::Error::other(format!(
            "the daemon's answer is longer than {MAX_ANSWER} bytes"
        )));
    }
    parse_answer(&line)
}

/// The longest answer `status` reads: far above the status of 10 000 doors.
pub const MAX_ANSWER: u64 = 64 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Status;

    #[test]
    fn an_endless_answer_is_refused_not_read_into_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let block = vec![b'x'; 1 << 20];
                while s.write_all(&block).is_ok() {}
            }
        });
        let e = ask(&path, &Request::Status).unwrap_err().to_string();
        assert!(e.contains("longer than"), "{e}");
    }

    /// A listener whose "engine" answers every request with a status.
    fn serve_with_fake_engine(path: &Path) {
        let l = Listener::bind(path).unwrap();
        let (tx, rx) = mpsc::sync_channel(4);
        l.spawn(tx).unwrap();
        std::thread::spawn(move || {
            while let Ok(Msg::Control(_, reply)) = rx.recv() {
                let _ = reply.send(Response::Status(Status {
                    instance: "t".into(),
                    ..Status::default()
                }));
            }
        });
    }

    #[test]
    fn a_request_gets_the_engines_answer_over_a_0600_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sock");
        std::fs::write(&path, "stale").unwrap();
        serve_with_fake_engine(&path);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        match ask(&path, &Request::Status).unwrap() {
            Response::Status(s) => assert_eq!(s.instance, "t"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_and_overlong_lines_get_an_error_and_the_socket_keeps_serving() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sock");
        serve_with_fake_engine(&path);
        for junk in ["hello\n".to_owned(), "x".repeat(10_000)] {
            let mut s = UnixStream::connect(&path).unwrap();
            let _ = s.write_all(junk.as_bytes());
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            assert!(answer.contains("\"error\""), "{answer}");
        }
        // A client that connects and says nothing is dropped after the deadline, and the
        // next one is served.
        let _silent = UnixStream::connect(&path).unwrap();
        assert!(matches!(
            ask(&path, &Request::Status).unwrap(),
            Response::Status(_)
        ));
    }
}
