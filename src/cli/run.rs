//! `mailwave run`: work the due waves against Exchange Online (or whatever `[endpoints]` names).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::{BadInput, Cli, exit};
use crate::auth::{Credential, TokenProvider};
use crate::config::Config;
use crate::engine::session::{self, RunExit, Session, SessionError, SessionReport};
use crate::engine::{RunOptions, Snapshot};
use crate::exchange::{ExchangeClient, MoveService, rest::RestTransport};
use crate::store::lock::RunLock;
use crate::time::Clock;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only these waves (repeat the flag for several).
    #[arg(long = "wave", value_name = "ID")]
    pub waves: Vec<String>,
    /// Start no new work after this: a local time ("07:00", the next one), a local date-time
    /// ("2027-01-05T07:00"), or RFC 3339.
    #[arg(long)]
    pub until: Option<String>,
    /// Do what is due now, once, then exit (for cron).
    #[arg(long)]
    pub once: bool,
    /// Serve the run's figures for Prometheus at http://ADDR/metrics (for example
    /// 127.0.0.1:9464): mailboxes per state and wave, calls by cmdlet and outcome, 429s, time
    /// throttled, the last good answer.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Allow `--metrics` on an address other than loopback (the figures name the waves; put a
    /// firewall or a proxy with authentication in front).
    #[arg(long, requires = "metrics")]
    pub metrics_public: bool,
}

/// Raises this process's soft limit of open files to its hard limit, and returns the limit in
/// force: a long run holds a database, its journal, the clients' connections and the metrics
/// listener's, and the default soft limit (1024, or less) is a number nobody chose.
pub(crate) fn open_files_limit() -> u64 {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if limit.current != limit.maximum {
            let raised = rustix::process::Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                return limit.maximum.unwrap_or(u64::MAX);
            }
        }
        limit.current.unwrap_or(u64::MAX)
    }
    #[cfg(not(unix))]
    {
        1024
    }
}

/// Parses `--until` in the plan's zone.
pub(crate) fn parse_until(
    text: &str,
    now: Timestamp,
    tz: &jiff::tz::TimeZone,
) -> Result<Timestamp, String> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    if let Ok(dt) = text.parse::<jiff::civil::DateTime>() {
        return dt
            .to_zoned(tz.clone())
            .map(|z| z.timestamp())
            .map_err(|e| e.to_string());
    }
    if let Ok(t) = text.parse::<jiff::civil::Time>() {
        let today = now.to_zoned(tz.clone());
        let candidate = today
            .date()
            .to_datetime(t)
            .to_zoned(tz.clone())
            .map_err(|e| e.to_string())?;
        let at = if candidate.timestamp() > now {
            candidate
        } else {
            today
                .date()
                .tomorrow()
                .map_err(|e| e.to_string())?
                .to_datetime(t)
                .to_zoned(tz.clone())
                .map_err(|e| e.to_string())?
        };
        return Ok(at.timestamp());
    }
    Err(format!(
        "--until: {text:?} is not a time (\"07:00\"), a date-time (\"2027-01-05T07:00\") or RFC 3339"
    ))
}

/// The first stop signal asks the run to stop (calls on the wire get `run.stop_grace`); a second
/// exits at once, which is safe too (the intents on disk let the next run settle what was in
/// flight).
pub(super) async fn watch_signals(stop: CancellationToken) {
    super::shutdown_signal().await;
    tracing::warn!("stopping: letting calls in flight finish (signal again to exit at once)");
    stop.cancel();
    super::shutdown_signal().await;
    errln!("mailwave: exiting at once; the next run settles what was in flight");
    std::process::exit(exit::INTERRUPTED);
}

/// Whatever the network or the disk does, a run that has begun to stop (a signal, `--until`, a fatal
/// error) is gone within the grace and a bounded end (writer, summary, webhook).
pub(super) fn watchdog(stop: CancellationToken, ending: CancellationToken, grace: Duration) {
    tokio::spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = ending.cancelled() => {}
        }
        std::thread::spawn(move || {
            std::thread::sleep(grace + Duration::from_secs(20));
            errln!(
                "mailwave: the run did not end within {}s of stopping; exiting (the next run settles what was in flight)",
                (grace + Duration::from_secs(20)).as_secs()
            );
            std::process::exit(exit::FAILURE);
        });
    });
}

/// The html report as the run mails it after each window.
pub(crate) fn report_renderer() -> crate::engine::notices::ReportFn {
    Arc::new(|store, now| crate::ui::report::html(store, now, Some("mailwave run"), None))
}

/// What a run may have besides the move service: a metrics listener (and how many connections
/// it may hold), a mailer for the notices.
#[derive(Default)]
pub(crate) struct Extras {
    pub metrics: Option<(std::net::TcpListener, usize)>,
    pub mailer: Option<crate::engine::session::GraphServices>,
}

/// Runs a session with what the command line adds around it: signals, the watchdog, progress on
/// standard error. Returns the report (printing is the caller's).
pub(crate) async fn drive<S: MoveService>(
    service: Arc<S>,
    state: &std::path::Path,
    config: &Config,
    clock: Clock,
    options: RunOptions,
    command: &str,
    extras: Extras,
) -> Result<SessionReport, SessionError> {
    let Extras { metrics, mailer } = extras;
    let (stop, ending) = (CancellationToken::new(), CancellationToken::new());
    let signals = tokio::spawn(watch_signals(stop.clone()));
    watchdog(stop.clone(), ending.clone(), config.run.stop_grace);
    let (progress_tx, progress_rx) = tokio::sync::watch::channel(Snapshot::default());
    let metrics = metrics
        .and_then(|(l, n)| Some((tokio::net::TcpListener::from_std(l).ok()?, n)))
        .map(|(l, n)| tokio::spawn(crate::ui::metrics::serve(l, progress_rx.clone(), n)));
    let reporter = tokio::spawn(crate::ui::progress::report(
        progress_rx,
        Duration::from_secs(10),
    ));
    let report = session::run(Session {
        service,
        state,
        config,
        clock,
        options,
        command,
        paused_time: false,
        stop,
        ending,
        progress: Some(progress_tx),
        mailer,
    })
    .await;
    signals.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), reporter).await;
    report
}

/// Prints the summary and turns the report into the exit code.
pub(crate) fn finish(
    report: Result<SessionReport, SessionError>,
    started: std::time::Instant,
    tz: &jiff::tz::TimeZone,
) -> anyhow::Result<i32> {
    let report = match report {
        Ok(r) => r,
        Err(SessionError::UnknownWave(w)) => {
            return Err(BadInput(format!(
                "--wave: no wave {w} in the state database (see `mailwave status`); nothing was changed"
            ))
            .into());
        }
        Err(SessionError::Notices(m)) => {
            return Err(BadInput(format!("{m}; nothing was changed")).into());
        }
        Err(SessionError::Store(e)) => return Err(e.into()),
    };
    out!(
        "{}",
        crate::ui::summary::render(
            &report.summary,
            (report.attention_total, &report.attention),
            (report.holds_total, &report.holds),
            started.elapsed().as_secs_f64(),
            tz
        )
    );
    if let Some(reason) = &report.summary.fatal {
        errln!("mailwave: run {}: {reason}", report.summary.outcome);
    }
    Ok(match report.exit {
        RunExit::Ok => exit::OK,
        RunExit::Failure => exit::FAILURE,
        RunExit::NeedsAttention => exit::NEEDS_ATTENTION,
        RunExit::Unreachable => exit::UNREACHABLE,
    })
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<i32> {
    let started = std::time::Instant::now();
    if let Some(addr) = args
        .metrics
        .filter(|a| !a.ip().is_loopback() && !args.metrics_public)
    {
        return Err(BadInput(format!(
            "--metrics {addr}: not a loopback address, so anyone who can reach it reads the \
             run's figures; add --metrics-public to serve them there, or use 127.0.0.1:{}",
            addr.port()
        ))
        .into());
    }
    let open_files = open_files_limit();
    let config = Config::load(&cli.config)?;
    for (key, value) in [
        ("tenant.id", &config.tenant.id),
        ("tenant.client_id", &config.tenant.client_id),
        (
            "migration.remote_host_name",
            &config.migration.remote_host_name,
        ),
        (
            "migration.target_delivery_domain",
            &config.migration.target_delivery_domain,
        ),
    ] {
        if value.is_empty() {
            return Err(BadInput(format!(
                "{}: {key} must be set for a run",
                cli.config.display()
            ))
            .into());
        }
    }
    // Notice templates are checked before anything else is touched (the session checks again).
    if let Err(e) = crate::engine::session::notice_templates(&config) {
        return Err(BadInput(format!("{e}; nothing was changed")).into());
    }
    let credential = Credential::from_config(&config)?;
    let clock = cli.clock();
    let until = args
        .until
        .as_deref()
        .map(|u| parse_until(u, clock.now(), &config.schedule.timezone))
        .transpose()
        .map_err(BadInput)?;
    // A time already gone (a cron line with last year's date) would end every run at once and
    // report it a success.
    if let Some(t) = until
        && t <= clock.now()
    {
        let tz = &config.schedule.timezone;
        return Err(BadInput(format!(
            "--until {}: {} has already passed (it is {}); nothing was done",
            args.until.as_deref().unwrap_or_default(),
            crate::format::local(t, tz),
            crate::format::local(clock.now(), tz)
        ))
        .into());
    }
    // Bound before anything starts, so a taken port is bad input that changes nothing.
    let metrics = args
        .metrics
        .map(|addr| {
            let l = std::net::TcpListener::bind(addr)
                .map_err(|e| BadInput(format!("--metrics {addr}: {e}")))?;
            l.set_nonblocking(true)?;
            let url = format!("http://{}/metrics", l.local_addr()?);
            if addr.ip().is_loopback() {
                tracing::info!(url = %url, "serving metrics");
            } else {
                tracing::warn!(url = %url, "serving metrics beyond this machine (--metrics-public): anyone who can reach it reads the run's figures");
            }
            anyhow::Ok((l, crate::ui::metrics::connections_for(open_files)))
        })
        .transpose()?;
    let lock = RunLock::acquire(&cli.state, "mailwave run")?;
    if let Some(previous) = &lock.taken_over_from {
        tracing::warn!(previous = %previous, "the last run did not stop cleanly; settling what it left in flight");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(async {
        let policy = config.run.http();
        let tokens = Arc::new(TokenProvider::new(policy, &config, credential, clock)?);
        let mailer = if config.notices.enabled
            || !config.notify.report_to.is_empty()
            || config.licences.sku.is_some()
        {
            let graph = Arc::new(crate::directory::graph::GraphClient::new(
                crate::directory::graph::RestGraph::new(
                    policy,
                    &config.endpoints.graph,
                    tokens.clone(),
                )
                .map_err(BadInput)?,
            ));
            Some(crate::engine::session::GraphServices {
                mailer: graph.clone(),
                licensing: Some(graph),
                report: Some(report_renderer()),
            })
        } else {
            None
        };
        let transport = RestTransport::new(
            policy,
            &config.endpoints.exchange,
            &config.tenant.id,
            tokens,
        )
        .map_err(BadInput)?;
        let service = Arc::new(ExchangeClient::new(transport, clock));
        let options = RunOptions {
            scope: (!args.waves.is_empty()).then(|| args.waves.clone()),
            until,
            once: args.once,
            actions_only: false,
        };
        anyhow::Ok(
            drive(
                service,
                &cli.state,
                &config,
                clock,
                options,
                "mailwave run",
                Extras { metrics, mailer },
            )
            .await,
        )
    })?;
    // Calls cut off at the grace may leave work on the blocking pool (name lookups); do not wait.
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(lock);
    finish(report, started, &config.schedule.timezone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_forms() {
        let tz = jiff::tz::TimeZone::get("Europe/London").unwrap();
        let now: Timestamp = "2027-07-01T10:00:00Z".parse().unwrap(); // 11:00 BST
        assert_eq!(
            parse_until("12:30", now, &tz).unwrap().to_string(),
            "2027-07-01T11:30:00Z"
        );
        assert_eq!(
            parse_until("07:00", now, &tz).unwrap().to_string(),
            "2027-07-02T06:00:00Z"
        );
        assert_eq!(
            parse_until("2027-12-01T07:00", now, &tz)
                .unwrap()
                .to_string(),
            "2027-12-01T07:00:00Z"
        );
        assert_eq!(
            parse_until("2027-07-01T23:00:00Z", now, &tz)
                .unwrap()
                .to_string(),
            "2027-07-01T23:00:00Z"
        );
        assert!(parse_until("tomorrow", now, &tz).is_err());
    }
}
