//! Sending a [`Plan`]: pacing, `-v` lines, the progress bar, `--dry-run`.

use std::io::{self, Write};
use std::net::SocketAddr;

use anyhow::Context as _;

use crate::plan::{Hit, Plan};
use crate::progress::Progress;
use crate::send::Sender;

/// Sends every hit of `plan` to `dst`, pausing between hits. With `verbose`, writes how TCP is
/// sent and then `hitting tcp 198.18.0.2:7000` before each hit, as knock does.
///
/// Printing is best effort: if stdout goes away (`knock -v ... | head -1`), the knock still
/// completes; a half-sent sequence would be worse than a truncated log.
pub fn send(
    plan: &Plan,
    dst: SocketAddr,
    verbose: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut sender = Sender::new(dst, plan.has_tcp());
    let mut verbose = verbose;
    if verbose && plan.has_tcp() {
        verbose = writeln!(out, "{}", sender.describe()).is_ok();
    }
    let progress = Progress::new(plan.len(), plan.duration());
    let total = plan.len();
    for (i, hit) in plan.hits().enumerate() {
        if i > 0 && !plan.delay.is_zero() {
            std::thread::sleep(plan.delay);
        }
        let target = target(dst, hit);
        if verbose {
            verbose = progress
                .suspend(|| writeln!(out, "hitting {} {target}", hit.knock.proto))
                .is_ok();
        }
        sender.send(hit).with_context(|| {
            format!(
                "could not send the {} knock to {target} (hit {} of {total})",
                hit.knock.proto,
                i + 1
            )
        })?;
        progress.inc();
    }
    progress.finish();
    Ok(())
}

/// Writes what [`send`] would send, and sends nothing.
pub fn dry_run(plan: &Plan, dst: SocketAddr, out: &mut impl Write) -> io::Result<()> {
    let pause = if plan.delay.is_zero() {
        String::new()
    } else {
        format!(", {} ms apart", plan.delay.as_millis())
    };
    writeln!(
        out,
        "dry run, nothing is sent: {} hits to {} ({}){pause}",
        plan.len(),
        plan.host,
        dst.ip()
    )?;
    if plan.has_tcp() {
        // Opening a raw socket sends nothing, and tells which way a real run would take.
        writeln!(out, "{}", Sender::new(dst, true).describe())?;
    }
    for hit in plan.hits() {
        writeln!(out, "would hit {} {}", hit.knock.proto, target(dst, hit))?;
    }
    Ok(())
}

/// `198.18.0.2:7000`, `[fd00::2]:7000`.
fn target(dst: SocketAddr, hit: Hit) -> SocketAddr {
    let mut to = dst;
    to.set_port(hit.knock.port.get());
    to
}
