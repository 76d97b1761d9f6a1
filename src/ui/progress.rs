//! Progress while a run goes: bars on a terminal, a plain log line now and then without one.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

use crate::engine::Snapshot;
use crate::store::State;

/// What the service's silence looks like in a progress line: empty while it answers.
fn health(s: &Snapshot) -> String {
    let h = &s.health;
    if h.failures_in_a_row == 0 {
        return String::new();
    }
    let now = s.now.unwrap_or_default();
    let last_good = match h.last_good {
        Some(t) => format!(
            "last good answer {} ago",
            short_duration(now.duration_since(t))
        ),
        None => "no good answer yet".into(),
    };
    format!(
        " · SERVICE NOT ANSWERING: {} failures in a row, {last_good}{}; last: {}",
        h.failures_in_a_row,
        if h.unreachable_since.is_some() {
            ", calls held back"
        } else {
            ""
        },
        h.last_failure.as_deref().unwrap_or("-")
    )
}

fn short_duration(d: jiff::SignedDuration) -> String {
    let s = d.as_secs().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

pub fn line(s: &Snapshot) -> String {
    let c = |st: State| s.counts[st.code() as usize];
    let waiting = match &s.waiting_for {
        Some((what, at)) if s.now.is_some_and(|now| *at > now) => {
            format!(" · next: {what} at {}", at.strftime("%Y-%m-%d %H:%M UTC"))
        }
        _ => String::new(),
    };
    let doubt = if s.uncertain > 0 {
        format!(" · in doubt {}", s.uncertain)
    } else {
        String::new()
    };
    format!(
        "{} · wave {} · planned {} · copying {} · synced {} · cutting over {} · done {} · failed {} · held {}{doubt} · calls {} · 429s {}{}{waiting}",
        s.now
            .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default(),
        s.current_wave.as_deref().unwrap_or("-"),
        c(State::Planned),
        c(State::Submitted) + c(State::Syncing),
        c(State::Synced),
        c(State::Completing),
        c(State::Completed) + c(State::CompletedWithWarning),
        c(State::Failed),
        c(State::Held),
        s.calls,
        s.throttled,
        health(s),
    )
}

/// Shows progress until the sender is dropped. On a terminal: a bar and the line under it. Without
/// one: a log line when the line has changed and `every` has passed since the last, at once when
/// the service stops or starts answering again, and a heartbeat a minute apart when nothing moves.
pub async fn report(mut rx: watch::Receiver<Snapshot>, every: Duration) {
    let terminal = std::io::stderr().is_terminal();
    let bar = terminal.then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40.cyan/blue} {pos}/{len} mailboxes cut over ({percent}%)\n{msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar
    });
    let heartbeat = every.max(Duration::from_secs(60));
    let mut last_text = String::new();
    let mut last_at: Option<tokio::time::Instant> = None;
    let mut answering = true;
    loop {
        let changed = tokio::time::timeout(every, rx.changed()).await;
        if matches!(changed, Ok(Err(_))) {
            break;
        }
        let s = rx.borrow_and_update().clone();
        if s.now.is_none() {
            continue; // nothing published yet
        }
        let text = line(&s);
        match &bar {
            Some(bar) => {
                let done = s.counts[State::Completed.code() as usize]
                    + s.counts[State::CompletedWithWarning.code() as usize];
                bar.set_length(s.total);
                bar.set_position(done);
                bar.set_message(text);
            }
            None => {
                let now_answering = s.health.failures_in_a_row == 0;
                let since = last_at.map(|t| t.elapsed());
                let due = since.is_none_or(|e| e >= every) && text != last_text;
                let quiet_too_long = since.is_none_or(|e| e >= heartbeat);
                if now_answering != answering || due || quiet_too_long {
                    answering = now_answering;
                    last_at = Some(tokio::time::Instant::now());
                    if now_answering {
                        tracing::info!(target: "mailwave::progress", "{text}");
                    } else {
                        tracing::warn!(target: "mailwave::progress", "{text}");
                    }
                    last_text = text;
                }
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
