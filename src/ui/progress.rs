//! Progress while a run goes: bars on a terminal, a plain log line now and then without one.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
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
    let tz = s.tz.clone().unwrap_or(jiff::tz::TimeZone::UTC);
    let waiting = match &s.waiting_for {
        Some((what, at)) if s.now.is_some_and(|now| *at > now) => {
            format!(" · next: {what} at {}", crate::format::local(*at, &tz))
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
            .map(|t| crate::format::local(t, &tz))
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

/// The bars on screen while a run shows them: log lines are printed above them, not through them.
static BARS: std::sync::Mutex<Option<MultiProgress>> = std::sync::Mutex::new(None);

/// Standard error for log lines: above the progress bars while there are any.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bars = BARS.lock().ok().and_then(|b| b.clone());
        match bars {
            Some(bars) => bars.suspend(|| std::io::stderr().write_all(buf).map(|_| buf.len())),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

/// The API's health in one line: calls a second, 429s, time paused, the last error, and how long
/// since the last good answer.
pub fn api_line(s: &Snapshot, calls_per_second: f64) -> String {
    let now = s.now.unwrap_or_default();
    let h = &s.health;
    let since_good = match h.last_good {
        Some(t) => format!("{} ago", short_duration(now.duration_since(t))),
        None => "none yet".into(),
    };
    format!(
        "API {calls_per_second:.1} calls/s · {} calls · 429s {} (paused {}) · last good answer {since_good}{}",
        s.calls,
        s.throttled,
        short_duration(jiff::SignedDuration::from_secs_f64(s.throttled_seconds)),
        match (&h.last_failure, h.failures_in_a_row) {
            (Some(e), n) if n > 0 => format!(" · FAILING ({n} in a row): {e}"),
            (Some(e), _) => format!(" · last error: {e}"),
            _ => String::new(),
        }
    )
}

/// The bars of a terminal: the estate, one per active wave, and the API's health.
struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    waves: Vec<(String, ProgressBar)>,
    api: ProgressBar,
    status: ProgressBar,
}

impl Bars {
    fn new() -> Bars {
        let multi = MultiProgress::new();
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:14} {bar:30.cyan/blue} {human_pos}/{human_len} cut over ({percent}%) · ETA {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        overall.set_prefix("estate");
        let api = multi.add(ProgressBar::new(0));
        api.set_style(ProgressStyle::with_template("{wide_msg}").expect("a valid template"));
        let status = multi.add(ProgressBar::new(0));
        status.set_style(ProgressStyle::with_template("{wide_msg}").expect("a valid template"));
        if let Ok(mut b) = BARS.lock() {
            *b = Some(multi.clone());
        }
        Bars {
            multi,
            overall,
            waves: Vec::new(),
            api,
            status,
        }
    }

    fn show(&mut self, s: &Snapshot, calls_per_second: f64) {
        let done = s.counts[State::Completed.code() as usize]
            + s.counts[State::CompletedWithWarning.code() as usize];
        self.overall.set_length(s.total);
        self.overall.set_position(done);
        // One bar per active wave, in the order the run gives them.
        let names: Vec<&str> = s.waves.iter().map(|w| w.name.as_str()).collect();
        self.waves.retain(|(name, bar)| {
            let keep = names.contains(&name.as_str());
            if !keep {
                bar.finish_and_clear();
            }
            keep
        });
        for w in &s.waves {
            let bar = match self.waves.iter().find(|(n, _)| n == &w.name) {
                Some((_, bar)) => bar.clone(),
                None => {
                    let bar = self.multi.insert_before(&self.api, ProgressBar::new(0));
                    bar.set_style(
                        ProgressStyle::with_template("{prefix:14} {bar:30.green/blue} {wide_msg}")
                            .expect("a valid template")
                            .progress_chars("=> "),
                    );
                    bar.set_prefix(w.name.clone());
                    self.waves.push((w.name.clone(), bar.clone()));
                    bar
                }
            };
            bar.set_length(w.total);
            bar.set_position(w.cut_over);
            bar.set_message(format!(
                "pre-staged {} · synced {} · cut over {} of {}{}",
                w.prestaged,
                w.synced,
                w.cut_over,
                w.total,
                if w.failed > 0 {
                    format!(" · failed {}", w.failed)
                } else {
                    String::new()
                }
            ));
        }
        self.api.set_message(api_line(s, calls_per_second));
        self.status.set_message(line(s));
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        if let Ok(mut b) = BARS.lock() {
            *b = None;
        }
        for (_, bar) in &self.waves {
            bar.finish_and_clear();
        }
        self.api.finish_and_clear();
        self.status.finish_and_clear();
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// Calls a second over the last stretch, from successive snapshots.
#[derive(Default)]
struct Rate {
    last: Option<(std::time::Instant, u64)>,
    value: f64,
}

impl Rate {
    fn update(&mut self, calls: u64) -> f64 {
        let now = std::time::Instant::now();
        if let Some((at, before)) = self.last {
            let secs = now.duration_since(at).as_secs_f64();
            if secs >= 1.0 {
                self.value = calls.saturating_sub(before) as f64 / secs;
                self.last = Some((now, calls));
            }
        } else {
            self.last = Some((now, calls));
        }
        self.value
    }
}

/// Shows progress until the sender is dropped. On a terminal: bars (the estate, each active wave,
/// the API's health) with log lines above them. Without one: a log line when the line has
/// changed and `every` has passed since the last, at once when the service stops or starts
/// answering again, and a heartbeat a minute apart when nothing moves.
pub async fn report(mut rx: watch::Receiver<Snapshot>, every: Duration) {
    let terminal = std::io::stderr().is_terminal();
    let mut bars = terminal.then(Bars::new);
    let mut rate = Rate::default();
    let heartbeat = every.max(Duration::from_secs(60));
    let mut last_text = String::new();
    let mut last_at: Option<tokio::time::Instant> = None;
    let mut answering = true;
    loop {
        let wait = if bars.is_some() {
            Duration::from_secs(1)
        } else {
            every
        };
        let changed = tokio::time::timeout(wait, rx.changed()).await;
        if matches!(changed, Ok(Err(_))) {
            break;
        }
        let s = rx.borrow_and_update().clone();
        if s.now.is_none() {
            continue; // nothing published yet
        }
        let per_second = rate.update(s.calls);
        match &mut bars {
            Some(bars) => bars.show(&s, per_second),
            None => {
                let text = format!("{} · {:.1} calls/s", line(&s), per_second);
                let now_answering = s.health.failures_in_a_row == 0;
                let since = last_at.map(|t| t.elapsed());
                let due = since.is_none_or(|e| e >= every) && line(&s) != last_text;
                let quiet_too_long = since.is_none_or(|e| e >= heartbeat);
                if now_answering != answering || due || quiet_too_long {
                    answering = now_answering;
                    last_at = Some(tokio::time::Instant::now());
                    if now_answering {
                        tracing::info!(target: "mailwave::progress", "{text}");
                    } else {
                        tracing::warn!(target: "mailwave::progress", "{text}");
                    }
                    last_text = line(&s);
                }
            }
        }
    }
    drop(bars);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        let now: jiff::Timestamp = "2027-01-04T20:10:00Z".parse().unwrap();
        let mut s = Snapshot {
            now: Some(now),
            total: 100,
            calls: 420,
            throttled: 3,
            throttled_seconds: 95.0,
            current_wave: Some("mw-2027-01-04".into()),
            waiting_for: Some((
                "the next listing of mw-2027-01-04".into(),
                "2027-01-04T20:15:00Z".parse().unwrap(),
            )),
            tz: jiff::tz::TimeZone::get("Europe/London").ok(),
            ..Snapshot::default()
        };
        s.counts[State::Completed.code() as usize] = 40;
        s.counts[State::Planned.code() as usize] = 60;
        s.health.last_good = Some(now - jiff::SignedDuration::from_secs(12));
        s
    }

    #[test]
    fn the_line_says_what_the_run_waits_for_and_until_when() {
        let text = line(&snapshot());
        assert!(
            text.starts_with("Mon 4 Jan 2027 20:10 GMT · wave mw-2027-01-04"),
            "{text}"
        );
        assert!(text.contains("done 40"), "{text}");
        assert!(
            text.ends_with("next: the next listing of mw-2027-01-04 at Mon 4 Jan 2027 20:15 GMT"),
            "{text}"
        );
    }

    /// The lines an operator reads while a run goes, as they read them: a run going well, and one
    /// whose service stopped answering.
    #[test]
    fn the_progress_lines_read_as_they_did() {
        let mut s = snapshot();
        s.uncertain = 2;
        let going = format!("{}\n{}", line(&s), api_line(&s, 2.5));
        s.health.failures_in_a_row = 7;
        s.health.last_failure = Some("transient service error (503): busy".into());
        s.health.unreachable_since = s.now;
        let failing = format!("{}\n{}", line(&s), api_line(&s, 0.0));
        insta::assert_snapshot!(format!("{going}\n\n{failing}"));
    }

    #[test]
    fn the_api_line_has_rate_throttling_and_the_last_good_answer() {
        let mut s = snapshot();
        assert_eq!(
            api_line(&s, 2.5),
            "API 2.5 calls/s · 420 calls · 429s 3 (paused 1m35s) · last good answer 12s ago"
        );
        s.health.failures_in_a_row = 4;
        s.health.last_failure = Some("transient service error (503): busy".into());
        assert!(
            api_line(&s, 0.0)
                .ends_with("· FAILING (4 in a row): transient service error (503): busy"),
            "{}",
            api_line(&s, 0.0)
        );
    }
}
