//! The report as Markdown: the html report's content in text, charts as tables.

use std::fmt::Write;

use super::{LISTED, Report, in_progress};
use crate::format::thousands as th;
use crate::store::Store;

/// Every value in a cell or a list line: shown as written, never as markup (see `crate::text::md`).
use crate::text::md as cell;

/// A fence for a block of text that holds none of its own: longer than any run of backticks in it.
fn fence(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

pub(crate) fn markdown(
    store: &Store,
    now: jiff::Timestamp,
    running: Option<&str>,
    since: Option<jiff::Timestamp>,
) -> crate::store::Result<String> {
    Ok(render(&Report::gather(store, now, running, since)?))
}

pub(crate) fn render(r: &Report) -> String {
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(o, "# Mailbox migration report\n");
    let _ = writeln!(
        o,
        "Generated {} from `{}`. Plan: {}. Times are {}.\n",
        r.local(r.now),
        r.source,
        r.status.plan.as_deref().unwrap_or("none"),
        r.tz.iana_name().unwrap_or("UTC")
    );
    match &r.running {
        Some(who) => {
            let _ = writeln!(o, "**A run is going** ({who}): these figures move.\n");
        }
        None => {
            let _ = writeln!(o, "No run was going when this was written.\n");
        }
    }
    if let Some(t) = r.since {
        let _ = writeln!(
            o,
            "Lists, failures, throughput and runs show what changed since {}; the figures above each are as of now.\n",
            r.local(t)
        );
    }
    for (label, value) in r.headline() {
        let _ = writeln!(o, "- **{label}**: {}", cell(&value));
    }

    let _ = writeln!(o, "\n## Waves\n");
    let _ = writeln!(
        o,
        "| wave | window | mailboxes | cut over | with warnings | in progress | not started | failed | held | skipped | capacity |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for w in &r.status.waves {
        let s = &w.states;
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&w.id),
            cell(&window(r, &w.window_start, &w.window_end)),
            w.total,
            s["completed"],
            s["completed_with_warning"],
            in_progress(s),
            s["planned"],
            s["failed"],
            s["held"],
            s["skipped"],
            w.capacity
        );
    }

    let (plan, done) = r.progress();
    let started: Vec<_> = r
        .status
        .waves
        .iter()
        .filter(|w| {
            w.window_start
                .parse::<jiff::Timestamp>()
                .is_ok_and(|t| t <= r.now)
        })
        .collect();
    if !started.is_empty() {
        let _ = writeln!(o, "\n## Progress against the plan\n");
        let _ = writeln!(
            o,
            "| window closes | planned to have cut over | cut over by then | behind |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|");
        for w in started {
            let Ok(end) = w.window_end.parse::<jiff::Timestamp>() else {
                continue;
            };
            let planned = plan
                .iter()
                .take_while(|p| p.0 <= end)
                .last()
                .map_or(0, |p| p.1);
            let upto = end.min(r.now + jiff::SignedDuration::from_hours(1));
            let by_then = done
                .iter()
                .take_while(|d| d.0 <= upto)
                .last()
                .map_or(0, |d| d.1);
            let _ = writeln!(
                o,
                "| {}{} | {} | {} | {} |",
                r.local(end),
                if end > r.now { " (open)" } else { "" },
                th(planned),
                th(by_then),
                th(planned.saturating_sub(by_then))
            );
        }
    }

    if !r.failures.is_empty() {
        let _ = writeln!(o, "\n## Failures by reason\n");
        let _ = writeln!(o, "| class | reason | mailboxes |");
        let _ = writeln!(o, "|---|---|---:|");
        for f in &r.failures {
            let _ = writeln!(
                o,
                "| {} | {} | {} |",
                cell(&f.class),
                cell(&f.reason),
                th(f.mailboxes)
            );
        }
    }

    let (buckets, hours) = r.throughput();
    if !buckets.is_empty() {
        let _ = writeln!(o, "\n## Throughput\n");
        let _ = writeln!(
            o,
            "Data copied by the moves (each move's bytes spread over its initial seeding).\n"
        );
        let _ = writeln!(o, "| day | GB copied | busiest GB/h ({hours} h average) |");
        let _ = writeln!(o, "|---|---:|---:|");
        let mut days: Vec<(String, f64, f64)> = Vec::new();
        for (t, rate) in buckets {
            let day = r.day(t);
            match days.last_mut() {
                Some(d) if d.0 == day => {
                    d.1 += rate * hours as f64;
                    d.2 = d.2.max(rate);
                }
                _ => days.push((day, rate * hours as f64, rate)),
            }
        }
        for (day, gb, peak) in days.iter().filter(|d| d.1 > 0.0) {
            let _ = writeln!(o, "| {day} | {gb:.1} | {peak:.1} |");
        }
    }

    let stalls = r.stalls();
    if !stalls.is_empty() {
        let _ = writeln!(o, "\n## Stall time by cause\n");
        let _ = writeln!(o, "| cause | waits on | share of time in progress |");
        let _ = writeln!(o, "|---|---|---:|");
        for (cause, side, share) in stalls {
            let _ = writeln!(
                o,
                "| {cause} | {} | {:.2}% |",
                super::side_name(side),
                100.0 * share
            );
        }
    }

    let a = &r.analysis;
    if a.total.moves > 0 {
        let t = &a.total;
        let _ = writeln!(o, "\n## Move analytics\n");
        let rate = t
            .rate_gb_per_hour
            .as_ref()
            .map(|r| {
                format!(
                    "{:.2} GB/h a move (median; {:.2} to {:.2} for the middle 80%)",
                    r.p50, r.p10, r.p90
                )
            })
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            o,
            "{} moves measured, {:.0} GB. Transfer rate {rate}. Stalled {:.1}% of the time in progress \
             ({:.1}% source side, {:.1}% target side). Transient failures {:.2}% of the time.\n",
            t.moves,
            t.gb,
            100.0 * t.stall_share,
            100.0 * t.stall_source_share,
            100.0 * t.stall_target_share,
            100.0 * t.transient_failure_share
        );
        let text = crate::analytics::text(a);
        let fence = fence(&text);
        let _ = writeln!(o, "{fence}text\n{text}{fence}");
    }

    if let Some(f) = &r.forecast {
        let _ = writeln!(
            o,
            "\n## Forecast\n\nMade {} on {}. The estate finishes {}; {} wave(s) at risk{}.\n",
            r.forecast_made(),
            cell(&f.basis),
            cell(&f.base.finish.map_or_else(|| "-".into(), |t| r.local(t))),
            f.base.at_risk,
            if f.base.without_a_wave > 0 {
                format!(
                    "; {} mailbox(es) would have no later wave to roll to",
                    th(f.base.without_a_wave)
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            o,
            "| wave | window | mailboxes | ready when it opens | expected to miss | rolls to | risk |"
        );
        let _ = writeln!(o, "|---|---|---:|---:|---:|---|---|");
        for w in &f.base.waves {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {:.1}% | {} | {} | {} |",
                cell(&w.wave),
                cell(&w.window),
                th(w.mailboxes),
                100.0 * w.ready_share,
                th(w.miss),
                cell(w.rolls_to.as_deref().unwrap_or("")),
                cell(w.risk.as_deref().unwrap_or(""))
            );
        }
    }

    if r.forecast.is_none()
        && (r.forecast_passed.is_some()
            || r.status.totals["planned"] + in_progress(&r.status.totals) == 0)
    {
        // Said only where a forecast was to be expected: once one has been made, or when the
        // estate has finished.
        let _ = writeln!(o, "\n## Forecast\n\n{}", r.no_forecast());
    }

    if !r.licences.by_status.is_empty() {
        let _ = writeln!(o, "\n## Licences\n");
        let _ = writeln!(o, "Checked before cut-over: {}.\n", r.licence_counts());
        if !r.licences.unlicensed.is_empty() {
            let _ = writeln!(o, "| mailbox | wave | finding | why |");
            let _ = writeln!(o, "|---|---|---|---|");
            for (address, wave, status, reason) in &r.licences.unlicensed {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} |",
                    cell(address),
                    cell(wave),
                    cell(status),
                    cell(reason)
                );
            }
        }
    }

    if !r.notices.is_empty() {
        let _ = writeln!(o, "\n## Notices to users\n");
        let _ = writeln!(o, "| notice | {} |", super::NOTICE_STATUSES.join(" | "));
        let _ = writeln!(o, "|---|{}", "---:|".repeat(super::NOTICE_STATUSES.len()));
        for (kind, n) in &r.notices {
            let cells: Vec<String> = n.iter().map(|c| th(*c)).collect();
            let _ = writeln!(o, "| {} | {} |", cell(kind), cells.join(" | "));
        }
    }

    let at = &r.attention;
    for (title, total, list) in [
        ("Needs attention", at.person_total, &at.person),
        (
            "Will be retried by the run (transient failures)",
            at.retrying_total,
            &at.retrying,
        ),
    ] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(o, "\n## {title}\n");
        if total as usize > list.len() {
            let _ = writeln!(
                o,
                "{} mailboxes; the first {LISTED} are listed (`mailwave report --format csv` lists them all).\n",
                th(total)
            );
        }
        let _ = writeln!(
            o,
            "| mailbox | wave | state | class | the service's message |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|");
        for a in list {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                cell(&a.address),
                cell(&a.wave),
                cell(&a.state.to_string()),
                cell(a.class.as_deref().unwrap_or("")),
                cell(a.reason.as_deref().unwrap_or(""))
            );
        }
    }

    let actions = r.action_rows();
    if !actions.is_empty() {
        let _ = writeln!(o, "\n## Operator actions\n");
        let _ = writeln!(o, "| when | who | what | mailboxes | reason | outcome |");
        let _ = writeln!(o, "|---|---|---|---|---|---|");
        for row in &actions {
            let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
            let _ = writeln!(o, "| {} |", cells.join(" | "));
        }
    }

    let runs = r.runs_in_words(cell);
    if !runs.is_empty() {
        let _ = writeln!(o, "\n## Runs\n");
        for run in runs {
            let _ = writeln!(o, "- {run}");
        }
    }
    out
}

/// A window in the plan's zone: "Mon 4 Jan 2027 20:00 GMT – 06:00".
pub(super) fn window(r: &Report, start: &str, end: &str) -> String {
    match (
        start.parse::<jiff::Timestamp>(),
        end.parse::<jiff::Timestamp>(),
    ) {
        (Ok(s), Ok(e)) => format!(
            "{} – {}",
            r.local(s),
            e.to_zoned(r.tz.clone()).strftime("%H:%M")
        ),
        _ => format!("{start} – {end}"),
    }
}
