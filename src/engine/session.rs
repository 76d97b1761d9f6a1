//! The run session: everything around the coordinator that a run needs, in one library function
//! that the command line, the demo, the tests and the benchmark all call. It checks the scope before
//! anything is written, records the run, starts the state writer, posts alerts while the run goes,
//! and on every way out it can still take (finished, stopped, fatal, unreachable, a failing store)
//! it ends the run row, stores the summary and posts it. It never prints.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::coordinator::{self, EngineError, RunContext, RunOptions};
use super::notices::Notifier;
use super::notices::template::Templates;
use super::summary::{Alert, RunOutcome, RunSummary, Snapshot, webhook_text};
use crate::config::Config;
use crate::directory::Mailer;
use crate::exchange::MoveService;
use crate::secrets::Secret;
use crate::store::status::AttentionRow;
use crate::store::{Store, StoreError, writer};
use crate::time::Clock;

pub struct Session<'a, S: MoveService> {
    pub service: Arc<S>,
    pub state: &'a Path,
    pub config: &'a Config,
    pub clock: Clock,
    pub options: RunOptions,
    /// What started it ("mailwave run"), for the run row.
    pub command: &'a str,
    /// Tokio's clock is paused (tests, benchmark): waits for the writer go through the blocking
    /// pool so that simulated time does not jump while the store works.
    pub paused_time: bool,
    /// Cancelled when the operator asks the run to stop.
    pub stop: CancellationToken,
    /// Cancelled by the run when it begins to end, whatever the reason (a watchdog may hang on it).
    pub ending: CancellationToken,
    pub progress: Option<watch::Sender<Snapshot>>,
    /// Sends the notices to users and the report (Graph `sendMail`) when `[notices]` is enabled
    /// or `[notify] report_to` is set.
    pub mailer: Option<GraphServices>,
}

/// What sends mail for a run, and renders the report it mails.
#[derive(Clone)]
pub struct GraphServices {
    pub mailer: Arc<dyn Mailer>,
    /// Users and licences, for `[licences]`.
    pub licensing: Option<Arc<dyn crate::directory::Licensing>>,
    pub report: Option<super::notices::ReportFn>,
}

/// How the process should end, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunExit {
    Ok,
    /// Fatal: credentials or role refused, the state database failed, ...
    Failure,
    /// Finished, but some mailboxes need the operator.
    NeedsAttention,
    /// The service gave no good answer.
    Unreachable,
}

pub struct SessionReport {
    pub summary: RunSummary,
    /// Mailboxes that need a person ([`crate::store::attention`]), and the first of them.
    pub(crate) attention_total: u64,
    pub attention: Vec<AttentionRow>,
    /// Mailboxes an operator holds, and the first of them with who held them and why.
    pub(crate) holds_total: u64,
    pub holds: Vec<AttentionRow>,
    pub exit: RunExit,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Bad input: nothing was written.
    #[error("no wave {0} in the state database (see `mailwave status`)")]
    UnknownWave(String),
    /// Bad input: the notices cannot go as configured (a template, no mailer). Nothing was written.
    #[error("{0}")]
    Notices(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long the end of a run may wait for the writer, a webhook, an alert.
const END_WAIT: Duration = Duration::from_secs(10);

pub async fn run<S: MoveService>(s: Session<'_, S>) -> Result<SessionReport, SessionError> {
    let webhook = s.config.notify.webhook_url.clone();
    let started = s.clock.now();
    match begin(&s) {
        Ok((run_id, templates)) => Ok(drive(s, run_id, webhook, templates).await),
        Err(e) => {
            // Nothing was recorded, but whoever watches the webhook still hears of it.
            if let Some(url) = &webhook {
                let text = format!("mailwave: {} could not start: {e}", s.command);
                let summary = RunSummary::failed_early(started, s.clock.now(), e.to_string());
                post_webhook(url, text, &summary).await;
            }
            Err(e)
        }
    }
}

/// The notice templates, read and checked, when notices are enabled.
pub fn notice_templates(config: &Config) -> Result<Option<Templates>, SessionError> {
    let n = &config.notices;
    if !n.enabled {
        return Ok(None);
    }
    let mut needed = Vec::new();
    if !n.before.is_empty() {
        needed.extend(["before", "correction"]);
    }
    if n.after {
        needed.push("after");
    }
    let templates = Templates::load(&n.templates, &needed)
        .map_err(|e| SessionError::Notices(format!("notice template {e}")))?;
    let unset = super::notices::unset_placeholders(n, &templates);
    if !unset.is_empty() {
        tracing::warn!(
            placeholders = %unset.join(", "),
            "the notice templates use values the config does not set: users will read them empty"
        );
    }
    Ok(Some(templates))
}

/// Checks the scope and the notice templates, and records the run; nothing is written when
/// either is wrong.
fn begin<S: MoveService>(s: &Session<'_, S>) -> Result<(i64, Option<Templates>), SessionError> {
    let templates = notice_templates(s.config)?;
    let graph_needed = templates.is_some()
        || !s.config.notify.report_to.is_empty()
        || s.config.licences.sku.is_some();
    if graph_needed && s.mailer.is_none() {
        return Err(SessionError::Notices(
            "notices, report_to or licences are set but nothing can reach Graph (endpoints.graph)"
                .into(),
        ));
    }
    if !s.state.exists() {
        return Err(StoreError::Missing {
            path: s.state.to_path_buf(),
        }
        .into());
    }
    // The caller holds the run lock: opening for writing brings an older schema up to date.
    let store = Store::open(s.state)?;
    if s.options.scope.is_some() {
        let waves = store.waves()?;
        if let Some(missing) = coordinator::unknown_wave(&waves, s.options.scope.as_deref()) {
            return Err(SessionError::UnknownWave(missing));
        }
    }
    let now = s.clock.now();
    let abandoned = store.close_abandoned_runs(now)?;
    if abandoned > 0 {
        tracing::info!(
            runs = abandoned,
            "closed the records of runs that did not end cleanly"
        );
    }
    Ok((store.begin_run(s.command, now)?, templates))
}

async fn drive<S: MoveService>(
    s: Session<'_, S>,
    run_id: i64,
    webhook: Option<Secret>,
    templates: Option<Templates>,
) -> SessionReport {
    let started = s.clock.now();
    let (alerts_tx, alerts) = match &webhook {
        Some(url) => {
            let (tx, rx) = mpsc::unbounded_channel();
            let tz = s.config.schedule.timezone.clone();
            (
                Some(tx),
                Some(tokio::spawn(post_alerts(url.clone(), rx, tz))),
            )
        }
        None => (None, None),
    };
    let summary = match writer::spawn(s.state, Some(run_id)) {
        Ok((writer, thread)) => {
            let writer = if s.paused_time {
                writer.for_paused_time()
            } else {
                writer
            };
            // The notices, licences and alerts go beside the coordinator, reading on connections
            // of their own and writing through the writer.
            let notices_stop = s.stop.child_token();
            let engine_done = CancellationToken::new();
            let actions_applied = Arc::new(tokio::sync::Notify::new());
            let mails = templates.is_some() || !s.config.notify.report_to.is_empty();
            let notifier = match &s.mailer {
                Some(mailing) if mails => Some(tokio::spawn(
                    Notifier {
                        store_path: s.state.to_path_buf(),
                        config: s.config.notices.clone(),
                        timezone: s.config.schedule.timezone.clone(),
                        templates,
                        report_to: s.config.notify.report_to.clone(),
                        report: mailing.report.clone(),
                        mailer: mailing.mailer.clone(),
                        clock: s.clock,
                        // On the run's clock, as the notifier waits. The config bounds it to an
                        // hour, so this never saturates; it is no second default.
                        stop_grace: jiff::SignedDuration::try_from(s.config.run.stop_grace)
                            .unwrap_or(jiff::SignedDuration::MAX),
                        alerts: alerts_tx.clone(),
                        actions_applied: actions_applied.clone(),
                        writer: writer.clone(),
                    }
                    .run(notices_stop.clone(), engine_done.clone()),
                )),
                _ => None,
            };
            let watch_done = CancellationToken::new();
            let attention = match &alerts_tx {
                Some(tx) if s.config.notify.failure_threshold > 0 && !s.options.actions_only => {
                    Some(tokio::spawn(
                        super::attention::AttentionWatch {
                            store_path: s.state.to_path_buf(),
                            writer: writer.clone(),
                            threshold: s.config.notify.failure_threshold,
                            clock: s.clock,
                            alerts: tx.clone(),
                        }
                        .run(notices_stop.clone(), watch_done.clone()),
                    ))
                }
                _ => None,
            };
            let licences = match (&s.config.licences.sku, &s.mailer) {
                (
                    Some(_),
                    Some(GraphServices {
                        licensing: Some(l), ..
                    }),
                ) => Some(tokio::spawn(
                    super::licences::LicenceChecker {
                        store_path: s.state.to_path_buf(),
                        writer: writer.clone(),
                        config: s.config.licences.clone(),
                        licensing: l.clone(),
                        clock: s.clock,
                        alerts: alerts_tx.clone(),
                    }
                    .run(notices_stop.clone(), engine_done.clone()),
                )),
                _ => None,
            };
            let result = coordinator::run(RunContext {
                service: s.service.clone(),
                store_path: s.state.to_path_buf(),
                writer: writer.clone(),
                clock: s.clock,
                run: s.config.run.clone(),
                migration: s.config.migration.clone(),
                timezone: s.config.schedule.timezone.clone(),
                options: s.options.clone(),
                stop: s.stop.clone(),
                ending: s.ending.clone(),
                progress: s.progress,
                alerts: alerts_tx,
                actions_applied: Some(actions_applied),
            })
            .await;
            let mut summary = match result {
                Ok(summary) => summary,
                Err(EngineError::UnknownWave(w)) => RunSummary::failed_early(
                    started,
                    s.clock.now(),
                    format!("no wave {w} in the state database"),
                ),
                Err(EngineError::Store(e)) => {
                    RunSummary::failed_early(started, s.clock.now(), format!("state database: {e}"))
                }
            };
            if let Some(mut task) = attention {
                watch_done.cancel();
                let ended = tokio::time::timeout(END_WAIT, &mut task).await;
                // One that did not end in time lets go of the writer.
                task.abort();
                match ended {
                    Ok(Ok(Err(e))) => {
                        tracing::error!(error = %e, "the needs-a-person alert stopped: state database")
                    }
                    Ok(Err(e)) => tracing::error!(error = %e, "the needs-a-person alert failed"),
                    _ => {}
                }
            }
            if let Some(task) = licences {
                engine_done.cancel();
                match task.await {
                    Ok(Ok(l)) => {
                        if let Some(why) = &l.stopped {
                            tracing::error!(reason = %why, "licence assignment stopped in this run");
                        }
                        summary.licences = Some(l);
                    }
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "the licence checks stopped: state database")
                    }
                    Err(e) => tracing::error!(error = %e, "the licence task failed"),
                }
            }
            if let Some(task) = notifier {
                // A finished run sends what is still due (the last "after" notices); any other
                // end stops the notices too.
                if summary.outcome == "finished" {
                    engine_done.cancel();
                } else {
                    notices_stop.cancel();
                }
                match task.await {
                    Ok(Ok(n)) => summary.notices = Some(n),
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "the notices stopped: state database");
                        if summary.fatal.is_none() {
                            summary.outcome = RunOutcome::Fatal(String::new()).name().into();
                            summary.fatal = Some(format!("notices: state database: {e}"));
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "the notices task failed"),
                }
            }
            // The tasks beside the coordinator have ended: the writer commits what is left.
            drop(writer);
            let joined =
                tokio::time::timeout(END_WAIT, tokio::task::spawn_blocking(move || thread.join()))
                    .await;
            let writer_end = match joined {
                Ok(Ok(Ok(Ok(())))) => None,
                Ok(Ok(Ok(Err(e)))) => Some(format!("state database: {e}")),
                Ok(Ok(Err(_))) | Ok(Err(_)) => Some("the state writer failed".to_string()),
                Err(_) => Some("the state writer did not finish in time".to_string()),
            };
            if let Some(reason) = writer_end
                && summary.fatal.is_none()
            {
                summary.outcome = RunOutcome::Fatal(String::new()).name().into();
                summary.fatal = Some(reason);
            }
            summary
        }
        Err(e) => RunSummary::failed_early(started, s.clock.now(), format!("state database: {e}")),
    };
    if let Some(task) = alerts {
        // The coordinator dropped its sender: the task ends once the queue is posted.
        let _ = tokio::time::timeout(END_WAIT, task).await;
    }

    let mut summary = summary;
    let ended = finish_record(s.state, run_id, s.clock, &mut summary).unwrap_or_else(|e| {
        tracing::error!(error = %e, "could not record the end of the run");
        Ended {
            attention: (summary.attention, Vec::new()),
            holds: (0, Vec::new()),
        }
    });
    let (attention_total, attention) = ended.attention;
    // An action command that applied its own actions is no run to report: its outcome is in
    // the command's output and the audit, and the webhook hears only of runs.
    if let Some(url) = webhook.as_ref().filter(|_| !s.options.actions_only) {
        post_webhook(url, webhook_text(&summary, attention_total), &summary).await;
    }
    let exit = match summary.outcome.as_str() {
        "fatal" => RunExit::Failure,
        "unreachable" => RunExit::Unreachable,
        // However a run ends by itself, cron and systemd learn that a person must act.
        "finished" | "once" | "until" if attention_total > 0 => RunExit::NeedsAttention,
        _ => RunExit::Ok,
    };
    SessionReport {
        summary,
        attention_total,
        attention,
        holds_total: ended.holds.0,
        holds: ended.holds.1,
        exit,
    }
}

/// Who needs a person and who an operator holds, as the run ended.
struct Ended {
    attention: (u64, Vec<AttentionRow>),
    holds: (u64, Vec<AttentionRow>),
}

/// Ends the run row with its summary (counting who needs a person, as `status` does), and reads
/// them and the operator's holds.
fn finish_record(
    state: &Path,
    run_id: i64,
    clock: Clock,
    summary: &mut RunSummary,
) -> Result<Ended, StoreError> {
    let store = Store::open(state)?;
    let attention = store.needs_person(None, 20)?;
    summary.attention = attention.0;
    let json = serde_json::to_string(summary).unwrap_or_else(|_| "{}".into());
    store.end_run(run_id, clock.now(), &summary.outcome, &json)?;
    Ok(Ended {
        attention,
        holds: store.operator_holds(10)?,
    })
}

async fn post_alerts(url: Secret, mut rx: mpsc::UnboundedReceiver<Alert>, tz: jiff::tz::TimeZone) {
    while let Some(alert) = rx.recv().await {
        let text = alert.text(&tz);
        tracing::warn!(alert = %text, "alert");
        post_webhook_json(&url, serde_json::json!({"text": text})).await;
    }
}

/// Posts the run's summary to the webhook; failures are logged, never fatal. The URL is never logged.
pub(crate) async fn post_webhook(url: &Secret, text: String, summary: &RunSummary) {
    let summary = serde_json::to_value(summary).unwrap_or_default();
    post_webhook_json(url, serde_json::json!({"text": text, "summary": summary})).await;
}

async fn post_webhook_json(url: &Secret, body: serde_json::Value) {
    let policy = crate::http::Policy::default();
    let client = match policy.client() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %crate::http::describe(&e), "could not post to the webhook");
            return;
        }
    };
    let sent = client
        .post(url.expose())
        .timeout(policy.total(crate::http::CallClass::Webhook))
        .json(&body)
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => tracing::info!("posted to the webhook"),
        // A redirect is refused by the policy, and says so; any other answer is the webhook's own.
        Ok(r) if r.status().is_redirection() => tracing::warn!(
            status = r.status().as_u16(),
            "the webhook answered with a redirect, which mailwave does not follow: check notify.webhook_url"
        ),
        Ok(r) => tracing::warn!(
            status = r.status().as_u16(),
            "the webhook refused the message"
        ),
        Err(e) => {
            tracing::warn!(error = %crate::http::describe(&e), "could not post to the webhook")
        }
    }
}
