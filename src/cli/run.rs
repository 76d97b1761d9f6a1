//! `mailwave run`: work the due waves against Exchange Online (or whatever `[endpoints]` names).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::{BadInput, Cli, exit};
use crate::auth::{Credential, TokenProvider};
use crate::config::Config;
use crate::engine::run::{self, RunContext, RunOptions, RunSummary};
use crate::exchange::{ExchangeClient, MoveService, rest::RestTransport};
use crate::secrets::Secret;
use crate::store::Store;
use crate::store::lock::RunLock;
use crate::store::writer;
use crate::time::{Clock, ClockSpec};

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
    /// A shared accelerated clock, to follow `mailwave sim serve --clock` (rehearsals, tests).
    #[arg(long, hide = true)]
    pub clock: Option<ClockSpec>,
}

/// Parses `--until` in the plan's zone.
pub fn parse_until(
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

/// Posts a summary to the webhook; failures are logged, never fatal. The URL is never logged.
pub async fn post_webhook(url: &Secret, text: String, summary: serde_json::Value) {
    let body = serde_json::json!({"text": text, "summary": summary});
    let result = reqwest::Client::new()
        .post(url.expose())
        .timeout(Duration::from_secs(30))
        .json(&body)
        .send()
        .await;
    match result {
        Ok(r) if r.status().is_success() => tracing::info!("summary posted to the webhook"),
        Ok(r) => tracing::warn!(
            status = r.status().as_u16(),
            "the webhook refused the summary"
        ),
        Err(e) => tracing::warn!(error = %e.without_url(), "could not post to the webhook"),
    }
}

/// Runs the engine with everything around it; returns the summary and the exit code.
pub async fn drive<S: MoveService>(
    service: Arc<S>,
    state: &Path,
    config: &Config,
    clock: Clock,
    options: RunOptions,
    command: &str,
    paused_time: bool,
) -> anyhow::Result<(RunSummary, i32)> {
    let started = std::time::Instant::now();
    let run_id = Store::open(state)?.begin_run(command, clock.now())?;
    let (writer, writer_thread) = writer::spawn(state, Some(run_id))?;
    let writer = if paused_time {
        writer.for_paused_time()
    } else {
        writer
    };

    // First signal: stop starting work, finish what is in flight, summarise. Second: exit now (the
    // intents on disk make that safe too).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signals = tokio::spawn(async move {
        super::shutdown_signal().await;
        tracing::warn!("stopping: finishing calls in flight (signal again to exit at once)");
        let _ = stop_tx.send(true);
        super::shutdown_signal().await;
        eprintln!("mailwave: exiting at once; the next run reconciles what was in flight");
        std::process::exit(130);
    });

    let (progress_tx, progress_rx) = tokio::sync::watch::channel(Default::default());
    let reporter = tokio::spawn(crate::ui::progress::report(
        progress_rx,
        Duration::from_secs(10),
    ));

    let on_failures = config.notify.webhook_url.clone().filter(|_| config.notify.failure_threshold > 0).map(|url| {
        let threshold = config.notify.failure_threshold;
        let alarm: Box<dyn FnOnce(u64) + Send> = Box::new(move |failed| {
            let text = format!("mailwave: {failed} mailboxes have failed in this run (threshold {threshold}); see `mailwave status`.");
            tokio::spawn(async move { post_webhook(&url, text, serde_json::json!({"failed": failed})).await });
        });
        (threshold, alarm)
    });

    let summary = run::run(RunContext {
        service,
        store_path: state.to_path_buf(),
        writer: writer.clone(),
        clock,
        run: config.run.clone(),
        migration: config.migration.clone(),
        timezone: config.schedule.timezone.clone(),
        options,
        stop: stop_rx,
        progress: Some(progress_tx),
        on_failures,
    })
    .await;
    signals.abort();
    drop(writer);
    let joined = tokio::task::spawn_blocking(move || writer_thread.join()).await;
    let _ = reporter.await;
    let summary = summary?;
    if let Ok(Ok(Err(e))) = joined {
        return Err(e.into());
    }

    let store = Store::open(state)?;
    store.end_run(
        run_id,
        clock.now(),
        &summary.outcome,
        &serde_json::to_string(&summary)?,
    )?;
    let (attention_total, attention) = store.attention(20)?;
    print!(
        "{}",
        crate::ui::summary::render(
            &summary,
            attention_total,
            &attention,
            started.elapsed().as_secs_f64()
        )
    );
    if let Some(url) = &config.notify.webhook_url {
        let text = crate::ui::summary::webhook_text(&summary, attention_total);
        post_webhook(url, text, serde_json::to_value(&summary)?).await;
    }
    let code = if summary.fatal.is_some() {
        exit::FAILURE
    } else if attention_total > 0 && summary.outcome == "finished" {
        exit::NEEDS_ATTENTION
    } else {
        exit::OK
    };
    Ok((summary, code))
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<i32> {
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
    let credential = Credential::from_config(&config.tenant)?;
    let clock = match args.clock {
        Some(spec) => Clock::from_spec(spec),
        None => Clock::real(),
    };
    let until = args
        .until
        .as_deref()
        .map(|u| parse_until(u, clock.now(), &config.schedule.timezone))
        .transpose()
        .map_err(BadInput)?;
    let _lock = RunLock::acquire(&cli.state, "mailwave run")?;
    if let Some(previous) = &_lock.taken_over_from {
        tracing::warn!(previous = %previous, "the last run did not stop cleanly; reconciling what it left in flight");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(16 * 60))
            .build()?;
        let tokens = Arc::new(TokenProvider::new(http.clone(), &config, credential, clock));
        let transport =
            RestTransport::new(http, &config.endpoints.exchange, &config.tenant.id, tokens);
        let service = Arc::new(ExchangeClient::new(transport, clock));
        let options = RunOptions {
            scope: (!args.waves.is_empty()).then(|| args.waves.clone()),
            until,
            once: args.once,
        };
        let (_, code) = drive(
            service,
            &cli.state,
            &config,
            clock,
            options,
            "mailwave run",
            false,
        )
        .await?;
        Ok(code)
    })
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
