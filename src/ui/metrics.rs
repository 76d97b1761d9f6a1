//! `run --metrics ADDR`: the run's figures in Prometheus' text format, for the monitoring operators
//! already have. Counts and wave names only: no address, no secret.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

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

/// Connections served at once, at most. Others wait in the kernel's queue, where they cost this
/// process no descriptor.
pub const MAX_CONNECTIONS: usize = 32;
/// A scraper has this long to send its request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one connection may last, whatever its client does (says nothing, reads slowly).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes of a request read (hyper's floor): a scrape is one short GET.
const MAX_REQUEST: usize = 8 * 1024;

/// How many connections the listener may hold with `open_files` descriptors to the process: an
/// eighth, at most [`MAX_CONNECTIONS`]. The rest is the run's: the database, its journal, the
/// clients' connections and the logs.
pub fn connections_for(open_files: u64) -> usize {
    (open_files / 8).clamp(1, MAX_CONNECTIONS as u64) as usize
}

/// Serves `/metrics` from the latest snapshot until the task is dropped, never holding more than
/// `connections` at once nor any of them long: whoever connects cannot take from the run the
/// descriptors its database and calls need.
pub async fn serve(
    listener: tokio::net::TcpListener,
    rx: tokio::sync::watch::Receiver<Snapshot>,
    connections: usize,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(false)
        .max_buf_size(MAX_REQUEST);
    let mut told = false;
    loop {
        // A slot first, then the connection: past the cap nothing more is accepted.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: wait rather than spin, and say so once.
                if !told {
                    tracing::warn!(error = %e, "metrics: cannot accept a connection; trying again");
                    told = true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let rx = rx.clone();
        let answer = hyper::service::service_fn(move |req| {
            let response = respond(&req, &rx.borrow());
            async move { Ok::<_, std::convert::Infallible>(response) }
        });
        let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), answer);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
            drop(slot);
        });
    }
}

/// The answer to one request: the text for `GET /metrics`, nothing else.
fn respond<B>(req: &hyper::Request<B>, snapshot: &Snapshot) -> hyper::Response<axum::body::Body> {
    use axum::http::{Method, StatusCode, header};
    let (status, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, render(snapshot)),
        (_, "/metrics") => (StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into()),
        _ => (
            StatusCode::NOT_FOUND,
            "the figures are at /metrics\n".into(),
        ),
    };
    let mut response = hyper::Response::new(axum::body::Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
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
