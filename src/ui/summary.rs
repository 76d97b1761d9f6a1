//! The run summary as an operator reads it in the morning.

use std::fmt::Write;

use crate::engine::RunSummary;
use crate::store::status::AttentionRow;

/// Mailboxes by count and the first of them, as the summary lists them.
pub(crate) type Listed<'a> = (u64, &'a [AttentionRow]);

/// The summary as text, times in `tz` (the plan's zone).
pub(crate) fn render(
    s: &RunSummary,
    (attention_total, attention): Listed,
    (holds_total, holds): Listed,
    real_seconds: f64,
    tz: &jiff::tz::TimeZone,
) -> String {
    let local = |t: &str| crate::format::local_text(t, tz);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "run {} ({} to {}, {:.1} simulated hours, {:.1} s)",
        s.outcome,
        local(&s.started),
        local(&s.ended),
        s.simulated_hours,
        real_seconds
    );
    if let Some(f) = &s.fatal {
        let _ = writeln!(out, "FATAL: {f}");
    }
    let states: Vec<String> = s
        .states
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let _ = writeln!(out, "mailboxes {}: {}", s.mailboxes, states.join(", "));
    let _ = writeln!(
        out,
        "cut over this run {} ({:.0} an hour of simulated time{}); cut-overs moved to a later wave {}",
        s.completed_this_run,
        s.completed_per_hour,
        if real_seconds > 0.0 {
            format!(
                ", {:.0} a real second",
                s.completed_this_run as f64 / real_seconds
            )
        } else {
            String::new()
        },
        s.rescheduled
    );
    let _ = writeln!(
        out,
        "API calls {} ({}), 429s {}, {:.0} s throttled",
        s.api_calls_total,
        s.calls_per_completed_mailbox
            .map(|c| format!("{c:.2} a mailbox cut over"))
            .unwrap_or_else(|| "none cut over".into()),
        s.throttled,
        s.throttled_seconds
    );
    for (cmdlet, outcomes) in &s.api_calls {
        let parts: Vec<String> = outcomes.iter().map(|(o, n)| format!("{o} {n}")).collect();
        let _ = writeln!(out, "  {cmdlet:<36} {}", parts.join(", "));
    }
    if s.figures_collected > 0 || s.figures_missed > 0 {
        let _ = writeln!(
            out,
            "move figures read {}{} (mailwave analyze)",
            s.figures_collected,
            if s.figures_missed > 0 {
                format!(", {} could not be read", s.figures_missed)
            } else {
                String::new()
            }
        );
    }
    if let Some(n) = &s.notices {
        let _ = writeln!(
            out,
            "notices sent {}, {} correction(s) and {} re-confirmation(s); failed {}, dropped {} (too late or superseded), uncertain {} (never resent), 429s {} (mailwave notices status)",
            n.sent, n.corrections, n.reconfirmations, n.failed, n.dropped, n.uncertain, n.throttled
        );
        for (sender, why) in &n.rested {
            let _ = writeln!(out, "  notice sender {sender} rested for the run: {why}");
        }
    }
    if let Some(l) = &s.licences {
        let _ = writeln!(
            out,
            "licences checked before cut-over: {} held one, {} assigned, {} missing, {} without a cloud user, {} failed (mailwave report lists them)",
            l.licensed, l.assigned, l.missing, l.no_user, l.failed
        );
        if let Some(why) = &l.stopped {
            let _ = writeln!(out, "  LICENCE ASSIGNMENT STOPPED: {why}");
        }
    }
    if s.groups_split > 0 {
        let _ = writeln!(
            out,
            "delegation groups split at a window's close {}: some members had cut over, the rest follow as soon as possible",
            s.groups_split
        );
        for g in &s.split_groups {
            let _ = writeln!(out, "  {g}");
        }
    }
    if s.uncertain_at_start > 0 || s.calls_cut_off > 0 {
        let _ = writeln!(
            out,
            "creates in doubt at the start {} ({} settled by evidence this run); calls cut off at the stop {} (the next run settles them)",
            s.uncertain_at_start, s.uncertain_settled, s.calls_cut_off
        );
    }
    if let Some(last) = &s.last_good_answer {
        let _ = writeln!(out, "last good answer from the service {}", local(last));
    } else if s.api_calls_total > 0 {
        let _ = writeln!(out, "the service never gave a good answer");
    }
    if attention_total > 0 {
        let _ = writeln!(out, "{attention_total} mailbox(es) need a person:");
        for a in attention {
            let _ = writeln!(
                out,
                "  {} ({}, {}{}): {}",
                a.address,
                a.wave,
                a.state,
                a.class
                    .as_deref()
                    .map(|c| format!(" {c}"))
                    .unwrap_or_default(),
                a.reason.as_deref().unwrap_or("-")
            );
        }
        more(&mut out, attention_total, attention.len());
    } else {
        let _ = writeln!(out, "no mailbox needs a person");
    }
    if holds_total > 0 {
        let _ = writeln!(
            out,
            "{holds_total} mailbox(es) held by an operator (mailwave mailbox release):"
        );
        for h in holds {
            let _ = writeln!(
                out,
                "  {} ({}): held {}",
                h.address,
                h.wave,
                h.reason.as_deref().unwrap_or("by an operator")
            );
        }
        more(&mut out, holds_total, holds.len());
    }
    out
}

fn more(out: &mut String, total: u64, listed: usize) {
    if total > listed as u64 {
        let _ = writeln!(
            out,
            "  ... and {} more (mailwave report lists them all)",
            total - listed as u64
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::State;
    use std::collections::BTreeMap;

    /// A morning's summary of a run that stopped with work left: every part an operator may read.
    fn summary() -> RunSummary {
        let mut s = RunSummary::failed_early(
            "2027-01-04T19:00:00Z".parse().unwrap(),
            "2027-01-05T06:30:00Z".parse().unwrap(),
            String::new(),
        );
        s.outcome = "stopped".into();
        s.fatal = None;
        s.simulated_hours = 11.5;
        s.mailboxes = 120;
        s.states = BTreeMap::from([
            ("completed", 96),
            ("completed_with_warning", 2),
            ("failed", 3),
            ("held", 1),
            ("planned", 18),
            ("skipped", 0),
        ]);
        s.completed_this_run = 98;
        s.completed_per_hour = 8.5;
        s.rescheduled = 4;
        s.api_calls = BTreeMap::from([
            (
                "Get-MoveRequest".to_string(),
                BTreeMap::from([("ok".to_string(), 310)]),
            ),
            (
                "New-MoveRequest".to_string(),
                BTreeMap::from([("ok".to_string(), 101), ("throttled".to_string(), 2)]),
            ),
        ]);
        s.api_calls_total = 413;
        s.calls_per_completed_mailbox = Some(4.21);
        s.throttled = 2;
        s.throttled_seconds = 31.0;
        s.attention = 2;
        s.uncertain_at_start = 3;
        s.uncertain_settled = 3;
        s.calls_cut_off = 1;
        s.figures_collected = 98;
        s.figures_missed = 1;
        s.groups_split = 1;
        s.split_groups = vec!["finance-board (3 of 5 cut over)".into()];
        s.last_good_answer = Some("2027-01-05T06:29:40Z".into());
        s
    }

    fn row(address: &str, state: State, class: Option<&str>, reason: &str) -> AttentionRow {
        AttentionRow {
            address: address.into(),
            wave: "mw-2027-01-04".into(),
            state,
            class: class.map(Into::into),
            reason: Some(reason.into()),
        }
    }

    #[test]
    fn the_summary_reads_as_it_did() {
        let attention = [
            row(
                "ceo@contoso.com",
                State::Failed,
                Some("needs_approval"),
                "data consistency Investigate",
            ),
            row(
                "pa@contoso.com",
                State::Failed,
                Some("permanent"),
                "the target mailbox already exists",
            ),
        ];
        let holds = [row("cfo@contoso.com", State::Held, None, "year-end close")];
        let tz = jiff::tz::TimeZone::get("Europe/London").unwrap();
        let text = render(&summary(), (5, &attention), (1, &holds), 42.0, &tz);
        insta::assert_snapshot!(text);
    }
}
