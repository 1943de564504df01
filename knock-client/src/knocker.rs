//! Sending a [`Plan`]: pacing, `-v` lines, the progress bar, `--dry-run`.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

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
    if let Some(sealing) = &plan.sealing {
        sender.seal(sealing.clone())?;
    }
    let mut verbose = verbose;
    if verbose && plan.has_tcp() {
        verbose = writeln!(out, "{}", sender.describe()).is_ok();
    }
    let hit_delay = plan.hit_delay(sender.identical_repeats());
    let progress = Progress::new(plan.len(), plan.duration(hit_delay));
    let total = plan.len();
    let mut previous: Option<Hit> = None;
    for (i, hit) in plan.hits().enumerate() {
        let pause = pause_before(previous, hit, plan.delay, hit_delay);
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        previous = Some(hit);
        let target = target(dst, hit);
        if verbose {
            verbose = progress
                .suspend(|| {
                    writeln!(
                        out,
                        "hitting {} {}",
                        hit.knock.proto,
                        as_knock_prints(target)
                    )
                })
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
    if let Some(sealing) = &plan.sealing {
        crate::rotating::wait_for_fresh_nonce(sealing)?;
    }
    Ok(())
}

/// How long to wait before `hit`: `hit_delay` after a hit of the same knock (the same
/// connection attempt sent again, as a kernel retransmits a SYN), else `delay`.
fn pause_before(previous: Option<Hit>, hit: Hit, delay: Duration, hit_delay: Duration) -> Duration {
    match previous {
        None => Duration::ZERO,
        Some(p) if p.attempt == hit.attempt => hit_delay,
        Some(_) => delay,
    }
}

/// `198.18.0.2:7000`, and `fd00::2:7000` without brackets: the `-v` line exactly as Debian's
/// knock prints it, for scripts that read it.
fn as_knock_prints(target: SocketAddr) -> String {
    format!("{}:{}", target.ip(), target.port())
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
    // Opening a raw socket sends nothing, and tells which way a real run would take.
    let sender = Sender::new(dst, plan.has_tcp());
    if plan.hits > 1 {
        writeln!(
            out,
            "each port: {} hits, one connection attempt sent again {} ms apart",
            plan.hits,
            plan.hit_delay(sender.identical_repeats()).as_millis()
        )?;
    }
    if plan.has_tcp() {
        writeln!(out, "{}", sender.describe())?;
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

#[cfg(test)]
mod pacing_tests {
    use super::*;
    use knock_proto::Knock;

    #[test]
    fn verbose_lines_print_addresses_as_knock_does() {
        assert_eq!(
            as_knock_prints("198.18.0.2:7000".parse().unwrap()),
            "198.18.0.2:7000"
        );
        assert_eq!(
            as_knock_prints("[fd00::2]:7000".parse().unwrap()),
            "fd00::2:7000"
        );
    }

    #[test]
    fn repeats_of_one_knock_are_spaced_by_the_hit_delay() {
        let k: Knock = "4".parse().unwrap();
        let hit = |attempt| Hit { knock: k, attempt };
        let ms = Duration::from_millis;
        assert_eq!(pause_before(None, hit(0), ms(0), ms(20)), Duration::ZERO);
        assert_eq!(pause_before(Some(hit(0)), hit(0), ms(0), ms(20)), ms(20));
        // `4,4` written out: two attempts on one port need no spacing beyond the delay.
        assert_eq!(pause_before(Some(hit(0)), hit(1), ms(0), ms(20)), ms(0));
        assert_eq!(
            pause_before(Some(hit(0)), hit(0), ms(500), ms(1000)),
            ms(1000)
        );
        assert_eq!(
            pause_before(Some(hit(0)), hit(1), ms(500), ms(1000)),
            ms(500)
        );
        // No pause at all, as set.
        assert_eq!(pause_before(Some(hit(0)), hit(0), ms(500), ms(0)), ms(0));
    }
}
