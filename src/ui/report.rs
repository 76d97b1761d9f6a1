//! `mailwave report`: a Markdown report to hand on: where every wave stands, who needs attention and
//! why, and how the last run went.

use std::fmt::Write;

use crate::store::status::Status;
use crate::store::{Result, Store};

pub(crate) fn markdown(
    store: &Store,
    now: jiff::Timestamp,
    running: Option<&str>,
) -> Result<String> {
    let status: Status = store.status(now, None)?;
    let (attention_total, attention) = store.attention(10_000)?;
    let mut out = String::new();
    let _ = writeln!(out, "# Mailbox migration report\n");
    let _ = writeln!(
        out,
        "Generated {} from `{}`. Plan: {}.\n",
        now,
        store.path().display(),
        status.plan.as_deref().unwrap_or("none")
    );
    match running {
        Some(r) => {
            let _ = writeln!(out, "**A run is going** ({r}): these figures move.\n");
        }
        None => {
            let _ = writeln!(out, "No run was going when this was written.\n");
        }
    }
    let t = &status.totals;
    let done = t["completed"] + t["completed_with_warning"];
    let pct = if status.mailboxes > 0 {
        100.0 * done as f64 / status.mailboxes as f64
    } else {
        0.0
    };
    let _ = writeln!(
        out,
        "**{done} of {} mailboxes cut over ({pct:.1}%)**, {} need attention.\n",
        status.mailboxes, attention_total
    );
    let _ = writeln!(
        out,
        "| wave | window (UTC) | mailboxes | cut over | with warnings | in progress | not started | failed | held | skipped |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for w in &status.waves {
        let s = &w.states;
        // In progress means started: a request exists and has not ended.
        let in_progress = s["submitted"] + s["syncing"] + s["synced"] + s["completing"];
        let _ = writeln!(
            out,
            "| {} | {} – {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            w.id,
            w.window_start,
            w.window_end,
            w.total,
            s["completed"],
            s["completed_with_warning"],
            in_progress,
            s["planned"],
            s["failed"],
            s["held"],
            s["skipped"]
        );
    }
    let (retrying, person): (Vec<_>, Vec<_>) = attention
        .iter()
        .partition(|a| a.class.as_deref() == Some("transient"));
    for (title, list) in [
        ("Needs attention", &person),
        ("Will be retried by the run (transient failures)", &retrying),
    ] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n## {title}\n");
        let _ = writeln!(
            out,
            "| mailbox | wave | state | class | the service's message |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        for a in list {
            let reason = a.reason.as_deref().unwrap_or("").replace('|', "/");
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                a.address,
                a.wave,
                a.state,
                a.class.as_deref().unwrap_or(""),
                reason
            );
        }
    }
    let analysis = crate::analytics::analyze(store, crate::analytics::By::Wave, None)?;
    if analysis.total.moves > 0 {
        let t = &analysis.total;
        let _ = writeln!(out, "\n## Move analytics\n");
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
            out,
            "{} moves measured, {:.0} GB. Transfer rate {rate}. Stalled {:.1}% of the time in progress \
             ({:.1}% source side, {:.1}% target side). Transient failures {:.2}% of the time.\n",
            t.moves,
            t.gb,
            100.0 * t.stall_share,
            100.0 * t.stall_source_share,
            100.0 * t.stall_target_share,
            100.0 * t.transient_failure_share
        );
        let _ = writeln!(out, "```text\n{}```", crate::analytics::text(&analysis));
    }
    if let Some(f) = &status.forecast {
        let _ = writeln!(
            out,
            "\n## Forecast\n\nMade {} on {}. The estate finishes {}; {} wave(s) at risk.\n",
            f.made_at,
            f.basis,
            f.finish.as_deref().unwrap_or("-"),
            f.at_risk
        );
        for (w, ready) in &f.waves_at_risk {
            let _ = writeln!(
                out,
                "- {w}: {:.1}% expected ready when its window opens",
                100.0 * ready
            );
        }
    }
    if let Some((id, command, outcome, summary)) = store.last_run()? {
        let _ = writeln!(
            out,
            "\n## Last run\n\nRun {id} (`{command}`) ended **{outcome}**. {}",
            run_in_words(&summary)
        );
    }
    Ok(out)
}

/// A run summary (JSON) in a sentence or two.
fn run_in_words(summary: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(summary) else {
        return String::new();
    };
    let n = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("?").to_string();
    let mut s = format!(
        "It ran from {} to {}, cut over {} mailbox(es), made {} API calls ({} answered 429) and left {} needing attention.",
        text("started"),
        text("ended"),
        n("completed_this_run"),
        n("api_calls_total"),
        n("throttled"),
        n("attention")
    );
    if let Some(f) = v.get("fatal").and_then(|f| f.as_str()) {
        s.push_str(&format!(" It stopped because: {f}."));
    }
    s
}
