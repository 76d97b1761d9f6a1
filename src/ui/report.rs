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
    if !attention.is_empty() {
        let _ = writeln!(out, "\n## Needs attention\n");
        let _ = writeln!(out, "| mailbox | wave | state | class | reason |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for a in &attention {
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
    if let Some((id, command, outcome, summary)) = store.last_run()? {
        let _ = writeln!(
            out,
            "\n## Last run\n\nRun {id} (`{command}`) ended {outcome}.\n\n```json\n{summary}\n```"
        );
    }
    Ok(out)
}
