//! `run --metrics ADDR`: the run's figures in Prometheus' text format, for the monitoring operators
//! already have. Counts and wave names only: no address, no secret.

use std::fmt::Write;

use crate::engine::Snapshot;

/// The exposition text of one snapshot.
pub fn render(s: &Snapshot) -> String {
    let mut text = String::new();
    let head = |t: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(t, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    head(
        &mut text,
        "mailwave_mailboxes",
        "gauge",
        "Mailboxes in the run, per state.",
    );
    for state in crate::store::lifecycle::ALL_STATES {
        let _ = writeln!(
            text,
            "mailwave_mailboxes{{state=\"{}\"}} {}",
            state.name(),
            s.counts[state.code() as usize]
        );
    }
    head(
        &mut text,
        "mailwave_wave_mailboxes",
        "gauge",
        "Mailboxes of each wave being worked: total, pre-staged, synced, cut over, failed.",
    );
    for w in &s.waves {
        for (stage, n) in [
            ("total", w.total),
            ("prestaged", w.prestaged),
            ("synced", w.synced),
            ("cut_over", w.cut_over),
            ("failed", w.failed),
        ] {
            let _ = writeln!(
                text,
                "mailwave_wave_mailboxes{{wave=\"{}\",stage=\"{stage}\"}} {n}",
                w.name
            );
        }
    }
    head(
        &mut text,
        "mailwave_api_calls_total",
        "counter",
        "API calls by cmdlet and outcome.",
    );
    for (cmdlet, outcomes) in &s.calls_by_cmdlet {
        for (outcome, n) in outcomes {
            let _ = writeln!(
                text,
                "mailwave_api_calls_total{{cmdlet=\"{cmdlet}\",outcome=\"{outcome}\"}} {n}"
            );
        }
    }
    head(
        &mut text,
        "mailwave_throttled_total",
        "counter",
        "Answers 429 (throttled).",
    );
    let _ = writeln!(text, "mailwave_throttled_total {}", s.throttled);
    head(
        &mut text,
        "mailwave_throttled_seconds_total",
        "counter",
        "Seconds every worker was paused by Retry-After.",
    );
    let _ = writeln!(
        text,
        "mailwave_throttled_seconds_total {:.3}",
        s.throttled_seconds
    );
    head(
        &mut text,
        "mailwave_last_good_answer_timestamp_seconds",
        "gauge",
        "When the service last answered well (Unix time; 0 before the first).",
    );
    let _ = writeln!(
        text,
        "mailwave_last_good_answer_timestamp_seconds {}",
        s.health.last_good.map(|t| t.as_second()).unwrap_or(0)
    );
    head(
        &mut text,
        "mailwave_failures_in_a_row",
        "gauge",
        "Calls the service has left unanswered since its last good answer.",
    );
    let _ = writeln!(
        text,
        "mailwave_failures_in_a_row {}",
        s.health.failures_in_a_row
    );
    head(
        &mut text,
        "mailwave_creates_in_doubt",
        "gauge",
        "Creates whose outcome is not known yet.",
    );
    let _ = writeln!(text, "mailwave_creates_in_doubt {}", s.uncertain);
    text
}

/// Serves `/metrics` on `addr` from the latest snapshot until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    rx: tokio::sync::watch::Receiver<Snapshot>,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let rx = rx.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    render(&rx.borrow()),
                )
            }
        }),
    );
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::State;

    #[test]
    fn the_text_format_has_every_family_with_its_labels() {
        let mut s = Snapshot::default();
        s.counts[State::Completed.code() as usize] = 12;
        s.throttled = 3;
        s.waves.push(crate::engine::WaveProgress {
            name: "mw-2027-01-04".into(),
            total: 20,
            prestaged: 20,
            synced: 15,
            cut_over: 12,
            ..Default::default()
        });
        s.calls_by_cmdlet
            .entry("New-MoveRequest".into())
            .or_default()
            .insert("ok".into(), 20);
        let text = render(&s);
        for line in [
            "# TYPE mailwave_mailboxes gauge",
            "mailwave_mailboxes{state=\"completed\"} 12",
            "mailwave_mailboxes{state=\"planned\"} 0",
            "mailwave_wave_mailboxes{wave=\"mw-2027-01-04\",stage=\"cut_over\"} 12",
            "mailwave_api_calls_total{cmdlet=\"New-MoveRequest\",outcome=\"ok\"} 20",
            "mailwave_throttled_total 3",
            "mailwave_last_good_answer_timestamp_seconds 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        // Every sample belongs to a family announced before it.
        let mut announced = std::collections::HashSet::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                announced.insert(rest.split(' ').next().unwrap().to_string());
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap();
                assert!(announced.contains(name), "{l}");
            }
        }
    }
}
