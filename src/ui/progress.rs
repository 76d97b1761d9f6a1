//! Progress while a run goes: bars on a terminal, a plain log line now and then without one.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

use crate::engine::run::Snapshot;
use crate::store::State;

fn line(s: &Snapshot) -> String {
    let c = |st: State| s.counts[st.code() as usize];
    format!(
        "{} · wave {} · planned {} · copying {} · synced {} · cutting over {} · done {} · failed {} · held {} · calls {} · 429s {}",
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
    )
}

/// Shows progress until the sender is dropped. Returns when the run ends.
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
    let mut last_line = tokio::time::Instant::now();
    loop {
        let changed = tokio::time::timeout(every, rx.changed()).await;
        if matches!(changed, Ok(Err(_))) {
            break;
        }
        let s = rx.borrow_and_update().clone();
        let done = s.counts[State::Completed.code() as usize]
            + s.counts[State::CompletedWithWarning.code() as usize];
        match &bar {
            Some(bar) => {
                bar.set_length(s.total);
                bar.set_position(done);
                bar.set_message(line(&s));
            }
            None => {
                // Unattended: a line every `every`, not one per change.
                if last_line.elapsed() >= every {
                    last_line = tokio::time::Instant::now();
                    tracing::info!(target: "mailwave::progress", "{}", line(&s));
                }
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
