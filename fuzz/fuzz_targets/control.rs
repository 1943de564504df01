//! Fuzzes both ends of the control socket with arbitrary lines: the request a client writes, as
//! the daemon parses it (`control_socket::parse_request`), and the answer a daemon writes, as
//! `knock-server status` and `close` read and print it (`control_socket::parse_answer`,
//! `operator::render_status`): a hostile or confused daemon socket can answer anything.
//!
//! Besides "never panics", it checks that every refusal is an error answer, that an accepted
//! request or answer written back as JSON is one line that reads as the same value, and that a
//! status renders with a line per door.
#![no_main]

use knock_server::control::{Request, Response};
use knock_server::control_socket::{MAX_LINE, parse_answer, parse_request};
use knock_server::operator::render_status;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The daemon reads at most MAX_LINE + 1 bytes of UTF-8 (`read_line` refuses the rest).
    let request = &data[..data.len().min(MAX_LINE as usize + 1)];
    if let Ok(line) = std::str::from_utf8(request) {
        match parse_request(line) {
            Ok(r) => {
                let text = serde_json::to_string(&r).expect("a request serializes");
                assert!(!text.contains('\n'), "{text}");
                assert_eq!(parse_request(&text).ok(), Some(r), "{line:?} -> {text}");
            }
            Err(message) => {
                // The message may quote the request, newlines and all: the answer stays a line.
                let refusal = Response::Error { message };
                let text = serde_json::to_string(&refusal).expect("an answer serializes");
                assert!(!text.contains('\n'), "{text}");
            }
        }
        let _: Option<Request> = serde_json::from_str(line).ok();
    }

    // The client reads the whole line, however long.
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(response) = parse_answer(line) else {
        return;
    };
    let text = serde_json::to_string(&response).expect("an answer serializes");
    assert!(!text.contains('\n'), "{text}");
    assert_eq!(
        parse_answer(&text).ok().as_ref(),
        Some(&response),
        "{line:?} -> {text}"
    );
    // What `status` and `close` print.
    match &response {
        Response::Status(s) => {
            let shown = render_status(s);
            assert!(
                shown.lines().count() >= s.doors.len() + s.open.len(),
                "{shown}"
            );
            let _ = serde_json::to_string_pretty(s).expect("a status serializes");
        }
        Response::Closed { closed } => {
            for w in closed {
                let _ = format!("closed {} for {} ({})", w.door, w.source, w.how);
            }
        }
        Response::Error { message } => {
            let _ = format!("knock-server: {message}");
        }
    }
    let _ = format!("{response:?}");
});
