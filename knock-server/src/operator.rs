//! `knock-server status` and `knock-server close`: ask a running daemon over its control
//! socket and print the answer for a person (a table) or a script (`--json`).
//!
//! Exit status: 0 when the daemon answered, 2 when it could not be asked (no daemon of that
//! instance, no permission) or refused (an unknown door).

use std::fmt::Write as _;
use std::process::ExitCode;

use crate::cli::{CloseArgs, EXIT_USAGE, InstanceArgs, StatusArgs};
use crate::control::{OpenWindow, Refused, Request, Response, Status};
use crate::control_socket;

/// `knock-server status`.
pub fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let response = match ask(&args.instance, &Request::Status) {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    match response {
        Response::Status(s) if args.json => {
            println!("{}", serde_json::to_string_pretty(&s)?);
        }
        Response::Status(s) => print!("{}", render_status(&s)),
        other => return Ok(unexpected(other)),
    }
    Ok(ExitCode::SUCCESS)
}

/// `knock-server close`.
pub fn close(args: &CloseArgs) -> anyhow::Result<ExitCode> {
    let request = match &args.door {
        Some(door) if !args.all => Request::Close {
            door: door.clone(),
            source: args.ip,
        },
        _ => Request::CloseAll,
    };
    match ask(&args.instance, &request) {
        Ok(Response::Closed { closed }) if closed.is_empty() => {
            println!("nothing was open");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Response::Closed { closed }) => {
            for w in &closed {
                println!("closed {} for {} ({})", w.door, w.source, w.how);
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(other) => Ok(unexpected(other)),
        Err(code) => Ok(code),
    }
}

/// Asks the instance's daemon; on failure prints why (naming socket and instance) and returns
/// the exit code.
fn ask(instance: &InstanceArgs, request: &Request) -> Result<Response, ExitCode> {
    let path = instance.instance.socket(&instance.runtime_dir);
    control_socket::ask(&path, request).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                "no daemon is running (start it, or name its --instance)".to_owned()
            }
            std::io::ErrorKind::PermissionDenied => {
                "permission denied (the control socket is root's only)".to_owned()
            }
            _ => e.to_string(),
        };
        eprintln!(
            "knock-server: cannot reach instance `{}` at {}: {why}",
            instance.instance,
            path.display()
        );
        ExitCode::from(EXIT_USAGE)
    })
}

fn unexpected(response: Response) -> ExitCode {
    match response {
        Response::Error { message } => eprintln!("knock-server: {message}"),
        other => eprintln!("knock-server: unexpected answer from the daemon: {other:?}"),
    }
    ExitCode::from(EXIT_USAGE)
}

/// The human view of a status.
pub fn render_status(s: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "instance {} (pid {}), config {}, up {}",
        s.instance,
        s.pid,
        s.config,
        duration(s.uptime_secs)
    );
    let _ = writeln!(out, "\nopen doors: {}", s.open.len());
    if !s.open.is_empty() {
        out.push_str(&open_table(&s.open));
    }
    let _ = writeln!(out, "\ndoors:");
    for d in &s.doors {
        let state = if d.enabled { "" } else { " (disabled)" };
        let evicted = match d.evicted {
            0 => String::new(),
            n => format!(", {n} evicted"),
        };
        let _ = writeln!(
            out,
            "  {}{state}: {} attempt(s) in progress{evicted}",
            d.name, d.attempts
        );
        if let Some(why) = &d.last_broken {
            let _ = writeln!(out, "    last broken: {why}");
        }
        if let Some(ports) = &d.ports {
            let _ = writeln!(out, "    rotating ports: {ports}");
        }
        if let Some(r) = &d.refused {
            let _ = writeln!(out, "    refused since start: {}", refused(r));
        }
    }
    let c = &s.counters;
    let seals = match c.seal_checks {
        0 => String::new(),
        n => format!(", {n} seals checked"),
    };
    let _ = writeln!(
        out,
        "\ncounters: {} packets, {} dropped (engine busy), {} dropped by the kernel (capture ring full), {} seen twice (bridge or VLAN), {} evicted, {} effects queued{seals}",
        c.packets, c.dropped, c.kernel_dropped, c.duplicates, c.evicted, c.queued_effects
    );
    for (why, n) in &c.ignored {
        let _ = writeln!(out, "  ignored {why}: {n}");
    }
    out
}

/// `12 wrong seal, 1 replayed, 0 off step, 0 not tracked (max_attempts)`.
fn refused(r: &Refused) -> String {
    format!(
        "{} wrong seal, {} replayed, {} off step, {} not tracked (max_attempts)",
        r.wrong_seal, r.replayed, r.off_step, r.not_tracked
    )
}

fn open_table(open: &[OpenWindow]) -> String {
    let rows: Vec<[String; 5]> = open
        .iter()
        .map(|w| {
            let since = chrono::DateTime::from_timestamp(w.since_unix as i64, 0)
                .map(|t| {
                    t.with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M:%S")
                        .to_string()
                })
                .unwrap_or_default();
            [
                w.door.clone(),
                w.source.to_string(),
                since,
                duration(w.closes_in_secs),
                if w.forwards.is_empty() {
                    w.how.clone()
                } else {
                    format!("{}, forwarding {}", w.how, w.forwards.join(", "))
                },
            ]
        })
        .collect();
    let head = ["DOOR", "KNOCKER", "SINCE", "CLOSES IN", "HOW"];
    let mut widths = head.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 5]| {
        let mut l = String::from(" ");
        for (cell, w) in cells.iter().zip(widths) {
            let _ = write!(l, " {cell:<w$}");
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(head);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
    out
}

/// `1h02m`, `3m05s`, `42s`.
fn duration(secs: u64) -> String {
    match secs {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_door_knocker_closes_in_and_how() {
        let s = Status {
            instance: "eth0".into(),
            pid: 7,
            config: "/etc/knockd.conf".into(),
            open: vec![OpenWindow {
                door: "ssh".into(),
                source: "198.18.0.1".parse().unwrap(),
                since_unix: 0,
                closes_in_secs: 65,
                how: "stop command".into(),
                forwards: Vec::new(),
            }],
            ..Status::default()
        };
        let text = render_status(&s);
        assert!(text.contains("instance eth0 (pid 7)"), "{text}");
        let row = text.lines().find(|l| l.contains("198.18.0.1")).unwrap();
        assert!(
            row.contains("ssh") && row.contains("1m05s") && row.contains("stop command"),
            "{row}"
        );
        assert_eq!(duration(3725), "1h02m");
    }

    #[test]
    fn the_counters_say_what_the_kernel_dropped_and_what_was_seen_twice() {
        let mut s = Status::default();
        s.counters.packets = 100;
        s.counters.kernel_dropped = 7;
        s.counters.duplicates = 3;
        let text = render_status(&s);
        assert!(
            text.contains(
                "counters: 100 packets, 0 dropped (engine busy), 7 dropped by the kernel \
                 (capture ring full), 3 seen twice (bridge or VLAN), 0 evicted"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_rotating_door_shows_its_refused_knocks_and_the_seal_checks() {
        let mut s = Status {
            doors: vec![crate::control::DoorStatus {
                name: "ssh".into(),
                enabled: true,
                attempts: 2,
                refused: Some(Refused {
                    wrong_seal: 12,
                    replayed: 1,
                    ..Refused::default()
                }),
                ..Default::default()
            }],
            ..Status::default()
        };
        s.counters.seal_checks = 13;
        let text = render_status(&s);
        assert!(text.contains("  ssh: 2 attempt(s) in progress\n"), "{text}");
        assert!(
            text.contains(
                "    refused since start: 12 wrong seal, 1 replayed, 0 off step, 0 not tracked"
            ),
            "{text}"
        );
        assert!(text.contains("effects queued, 13 seals checked"), "{text}");
    }
}
