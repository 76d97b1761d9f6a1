//! `mailwave status`: counts per wave and state, failures by class, the next wave.

use super::{Cli, exit};
use crate::store::Store;
use crate::store::status::Status;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print the stable JSON form (documented in README).
    #[arg(long)]
    pub json: bool,
    /// Only this wave (its id, for example mw-2026-12-01).
    #[arg(long)]
    pub wave: Option<String>,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<i32> {
    let store = Store::open_read_only(&cli.state)?;
    let status = store.status(cli.clock().now(), args.wave.as_deref())?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        out!("{}", render(&status, &super::plan_zone(cli, &store)));
    }
    Ok(exit::OK)
}

const COLUMNS: [(&str, &str); 10] = [
    ("planned", "planned"),
    ("submitted", "submit"),
    ("syncing", "syncing"),
    ("synced", "synced"),
    ("completing", "cutover"),
    ("completed", "done"),
    ("completed_with_warning", "warn"),
    ("failed", "failed"),
    ("held", "held"),
    ("skipped", "skipped"),
];

/// The status as text, times in `tz` (the plan's zone).
pub(crate) fn render(status: &Status, tz: &jiff::tz::TimeZone) -> String {
    use std::fmt::Write;
    let local = |t: &str| crate::format::local_text(t, tz);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plan {}  ·  {} mailboxes",
        status.plan.as_deref().unwrap_or("(none loaded)"),
        status.mailboxes
    );
    let _ = write!(out, "{:<14} {:>7}", "wave", "total");
    for (_, short) in COLUMNS {
        let _ = write!(out, " {short:>8}");
    }
    let _ = writeln!(out);
    for w in &status.waves {
        let _ = write!(out, "{:<14} {:>7}", w.id, w.total);
        for (name, _) in COLUMNS {
            let _ = write!(out, " {:>8}", w.states[name]);
        }
        let _ = writeln!(out);
    }
    let _ = write!(out, "{:<14} {:>7}", "all", status.mailboxes);
    for (name, _) in COLUMNS {
        let _ = write!(out, " {:>8}", status.totals[name]);
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "failures: {} transient, {} permanent, {} needing approval",
        status.failures["transient"],
        status.failures["permanent"],
        status.failures["needs_approval"]
    );
    let needing: u64 = status.needs_person.values().sum();
    let why: Vec<String> = crate::store::attention::REASONS
        .iter()
        .filter_map(|(key, words)| {
            let n = status.needs_person.get(key).copied().unwrap_or(0);
            (n > 0).then(|| format!("{n} {words}"))
        })
        .collect();
    let _ = writeln!(
        out,
        "needs a person: {needing}{}",
        if why.is_empty() {
            String::new()
        } else {
            format!(" ({})", why.join(", "))
        }
    );
    match &status.next_wave {
        Some(n) => {
            let _ = writeln!(
                out,
                "next wave: {} ({} mailboxes) cuts over from {}",
                n.id,
                n.mailboxes,
                local(&n.window_start)
            );
        }
        None => {
            let _ = writeln!(out, "next wave: none");
        }
    }
    if let Some(f) = &status.forecast {
        let risky: Vec<String> = f
            .waves_at_risk
            .iter()
            .map(|(w, ready)| format!("{w} {:.0}% ready", 100.0 * ready))
            .collect();
        let _ = writeln!(
            out,
            "forecast (made {}): the estate finishes {}; {} wave(s) at risk{}",
            local(&f.made_at),
            f.finish_at.as_deref().map_or_else(|| "-".into(), local),
            f.at_risk,
            if risky.is_empty() {
                String::new()
            } else {
                format!(": {}", crate::format::few(&risky, 5))
            }
        );
    }
    for w in &status.waves {
        if let Some(o) = &w.oldest_unsynced {
            let _ = writeln!(
                out,
                "{}: oldest not yet synced: {} ({}, since {})",
                w.id,
                o.address,
                o.state,
                local(&o.since)
            );
        }
    }
    out
}
