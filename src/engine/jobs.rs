//! Jobs: one API call each (the executor), under the run's rate limit, the shared throttle gate and
//! the service's health, with retries of transient errors where a retry is safe. A job never changes
//! the run's state: it returns an [`Outcome`] and the coordinator decides (and records a create's
//! intent before the job is dispatched).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::health::Health;
use super::policy;
use super::state::Target;
use crate::exchange::{
    Call, EndpointLimits, MoveRequest, MoveService, MoveStatistics, NewMove, ServiceError,
};
use crate::store::actions::ActionKind;
use crate::time::Clock;
use crate::time::limits::{self, Limiter};

/// Pauses every worker on one API until a 429's Retry-After has passed.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    until_ms: AtomicI64,
    /// Simulated milliseconds the API has been paused (the union of the pauses, not per worker).
    paused_ms: AtomicU64,
}

impl Gate {
    pub(crate) fn pause_until(&self, now: Timestamp, until: Timestamp) {
        let new = until.as_millisecond();
        let old = self.until_ms.fetch_max(new, Ordering::SeqCst);
        let from = old.max(now.as_millisecond());
        if new > from {
            self.paused_ms
                .fetch_add((new - from) as u64, Ordering::Relaxed);
        }
    }

    pub fn paused(&self) -> Duration {
        Duration::from_millis(self.paused_ms.load(Ordering::Relaxed))
    }

    /// Waits until the gate is open.
    pub async fn wait(&self, clock: Clock) {
        loop {
            let until = Timestamp::from_millisecond(self.until_ms.load(Ordering::SeqCst))
                .unwrap_or(Timestamp::MIN);
            if clock.now() >= until {
                return;
            }
            clock.sleep_until(until).await;
        }
    }
}

/// API calls by cmdlet and outcome.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub calls: Mutex<BTreeMap<(String, String), u64>>,
    pub throttled: AtomicU64,
}

impl Metrics {
    fn record(&self, cmdlet: &str, outcome: &str) {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        *calls
            .entry((cmdlet.to_string(), outcome.to_string()))
            .or_default() += 1;
    }

    pub(crate) fn total_calls(&self) -> u64 {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    pub fn by_cmdlet(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for ((cmdlet, result), n) in self.calls.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            *out.entry(cmdlet.clone())
                .or_default()
                .entry(result.clone())
                .or_default() += n;
        }
        out
    }
}

fn outcome_label(r: &Result<impl Sized, ServiceError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(ServiceError::Throttled { .. }) => "throttled",
        Err(ServiceError::Transient { .. }) => "transient",
        Err(ServiceError::NotFound { .. }) | Err(ServiceError::NotYetReplicated { .. }) => {
            "not_found"
        }
        Err(ServiceError::AlreadyExists { .. }) => "already_exists",
        Err(ServiceError::Auth { .. }) | Err(ServiceError::Permission { .. }) => "denied",
        Err(ServiceError::NotSent) => "not_sent",
        Err(_) => "error",
    }
}

/// What a job needs from the run.
pub(crate) struct Executor<S> {
    pub service: Arc<S>,
    pub clock: Clock,
    pub(crate) limiter: Arc<Limiter>,
    pub(crate) gate: Arc<Gate>,
    pub(crate) health: Arc<Health>,
    pub(crate) metrics: Arc<Metrics>,
    /// Once cancelled, no call starts and nothing is retried.
    pub stop: CancellationToken,
}

impl<S> Clone for Executor<S> {
    fn clone(&self) -> Self {
        Executor {
            service: self.service.clone(),
            clock: self.clock,
            limiter: self.limiter.clone(),
            gate: self.gate.clone(),
            health: self.health.clone(),
            metrics: self.metrics.clone(),
            stop: self.stop.clone(),
        }
    }
}

impl<S> Executor<S> {
    /// An executor with the run's pacing of `run`: its rate limit, a gate for 429s and the
    /// service's health, all its own. The run makes one for Exchange; preflight one per API.
    pub(crate) fn new(
        service: Arc<S>,
        clock: Clock,
        run: &crate::config::Run,
        stop: CancellationToken,
    ) -> Executor<S> {
        Executor {
            service,
            clock,
            limiter: Arc::new(limits::limiter(clock, run.requests_per_second, run.burst)),
            gate: Arc::new(Gate::default()),
            health: Arc::new(Health::default()),
            metrics: Arc::new(Metrics::default()),
            stop,
        }
    }
}

/// Whether a transient error (5xx, network) may be retried inside the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Reads and changes that are safe to send again, as the Exchange module does.
    Transient,
    /// Creates: an unknown outcome is settled by evidence, never by a blind retry.
    Never,
}

/// Transient errors are retried this many times (2 s doubling, on the run's clock), as the Exchange
/// module does; throttling is waited out up to this many times.
const TRANSIENT_RETRIES: usize = 5;
const THROTTLE_RETRIES: usize = 50;

impl<S> Executor<S> {
    /// One call under the health check, the gate and the rate limit; a 429 closes the gate for
    /// everyone and is retried (nothing was done). `NotSent` when the run stops before it goes.
    /// Any API's call may go this way: `f` makes it, whatever the service.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        cmdlet: &str,
        retry: Retry,
        f: F,
    ) -> Result<T, ServiceError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, ServiceError>>,
    {
        let clock = self.clock;
        let stop = &self.stop;
        let stop_sleep = self.stop.clone();
        let attempt = || async {
            let mut throttles = 0;
            loop {
                let Some(ticket) = self.health.admit(clock, stop).await else {
                    return Err(ServiceError::NotSent);
                };
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => return Err(ServiceError::NotSent),
                    _ = async {
                        self.gate.wait(clock).await;
                        limits::acquire(&self.limiter, clock).await;
                    } => {}
                }
                let result = f().await;
                self.metrics.record(cmdlet, outcome_label(&result));
                let answered = policy::is_answer(result.as_ref().map(|_| ()));
                ticket.answered(answered, clock.now(), || match &result {
                    Err(e) => e.to_string(),
                    Ok(_) => String::new(),
                });
                match &result {
                    Ok(_) => tracing::debug!(cmdlet, "ok"),
                    Err(e) => tracing::debug!(cmdlet, error = %e, "answer"),
                }
                match result {
                    Err(ServiceError::Throttled { retry_after })
                        if throttles < THROTTLE_RETRIES && !stop.is_cancelled() =>
                    {
                        throttles += 1;
                        self.metrics.throttled.fetch_add(1, Ordering::Relaxed);
                        let wait = SignedDuration::try_from(retry_after)
                            .unwrap_or(SignedDuration::from_secs(5));
                        let now = clock.now();
                        self.gate.pause_until(now, now + wait);
                    }
                    other => return other,
                }
            }
        };
        attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_secs(2))
                    .with_max_delay(Duration::from_secs(60))
                    .with_max_times(TRANSIENT_RETRIES)
                    .with_jitter(),
            )
            // Backoff waits are on the run's clock, and end early when the run stops (the retry
            // condition then says no).
            .sleep(move |d: Duration| {
                let stop = stop_sleep.clone();
                async move {
                    tokio::select! {
                        _ = clock.sleep(SignedDuration::try_from(d).unwrap_or_default()) => {}
                        _ = stop.cancelled() => {}
                    }
                }
            })
            .when(|e| {
                retry == Retry::Transient
                    && matches!(e, ServiceError::Transient { .. })
                    && !stop.is_cancelled()
            })
            .await
    }
}

/// One call to make.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// The mailbox it is about (none for the endpoint and listings).
    pub mailbox: Option<u32>,
    /// Its address, for identity cmdlets and the log.
    pub identity: String,
    /// The call's `client-request-id`, and when the request was created (replication lag).
    pub call: Call,
    pub what: What,
    /// The operator action it applies, if any.
    pub action: Option<(i64, ActionKind)>,
}

#[derive(Debug, Clone)]
pub enum What {
    Endpoint {
        name: Option<String>,
    },
    /// A create whose intent is already on disk.
    Create {
        intent: i64,
        request: NewMove,
    },
    /// A wave's batch; with `only`, just the requests in that status.
    List {
        wave: u32,
        batch: String,
        only: Option<&'static str>,
    },
    Get,
    Stats,
    /// The statistics of a finished move, for its figures.
    Figures,
    /// `Set-MoveRequest -BatchName -CompleteAfter` (the cut-over the window rule gave it), then
    /// `Resume-MoveRequest`: a resumed move may complete at once.
    Resume(Cutover),
    /// `Set-MoveRequest -SkippedItemApprovalTime` with the cut-over the window rule gave it, in
    /// one call.
    Approve(Cutover),
    Remove,
    /// Moves a request to another wave's batch and cut-over.
    Reschedule(Cutover),
}

/// Where a call puts a request's cut-over: the wave's batch and its CompleteAfter (the window's
/// start, or far out for a mailbox that is held).
#[derive(Debug, Clone, PartialEq)]
pub struct Cutover {
    pub to: Target,
    pub batch: String,
    pub complete_after: Timestamp,
}

/// How the statistics reads for move figures are counted (`run.collect_statistics`).
pub const FIGURES: &str = "Get-MoveRequestStatistics (figures)";

impl What {
    pub fn cmdlet(&self) -> &'static str {
        match self {
            What::Endpoint { .. } => "Get-MigrationEndpoint",
            What::Create { .. } => "New-MoveRequest",
            What::List { .. } | What::Get => "Get-MoveRequest",
            What::Stats | What::Figures => "Get-MoveRequestStatistics",
            What::Resume(_) => "Resume-MoveRequest",
            What::Approve(_) | What::Reschedule(_) => "Set-MoveRequest",
            What::Remove => "Remove-MoveRequest",
        }
    }
}

/// What a job brings back.
#[derive(Debug)]
pub struct Outcome {
    pub mailbox: Option<u32>,
    /// The call's `client-request-id`, for the event log.
    pub correlation: [u8; 16],
    pub answer: Answer,
    pub action: Option<(i64, ActionKind)>,
}

#[derive(Debug)]
pub enum Answer {
    Endpoint(Result<EndpointLimits, ServiceError>),
    Created {
        intent: i64,
        result: Result<MoveRequest, ServiceError>,
    },
    Listed {
        wave: u32,
        filtered: bool,
        result: Result<Vec<MoveRequest>, ServiceError>,
    },
    Got(Result<MoveRequest, ServiceError>),
    Stats(Result<MoveStatistics, ServiceError>),
    Figures(Result<MoveStatistics, ServiceError>),
    /// `moved`: where the cut-over went before the resume (`None`: the Set-MoveRequest before it
    /// failed, and nothing changed).
    Resumed {
        moved: Option<Target>,
        result: Result<(), ServiceError>,
    },
    Approved {
        to: Target,
        result: Result<(), ServiceError>,
    },
    Removed(Result<(), ServiceError>),
    Rescheduled {
        to: Target,
        result: Result<(), ServiceError>,
    },
}

impl<S: MoveService> Executor<S> {
    /// Runs a job inside its own span (cmdlet, mailbox, client-request-id).
    pub async fn run(self, job: Job) -> Outcome {
        let span = tracing::info_span!(
            "call",
            cmdlet = job.what.cmdlet(),
            mailbox = %job.identity,
            request_id = %job.call.correlation
        );
        let correlation = *job.call.correlation.as_bytes();
        let (mailbox, action) = (job.mailbox, job.action);
        let answer = self.answer(job).instrument(span).await;
        Outcome {
            mailbox,
            correlation,
            answer,
            action,
        }
    }

    async fn answer(&self, job: Job) -> Answer {
        let svc = self.service.clone();
        let Job {
            identity,
            call,
            what,
            ..
        } = job;
        let cmdlet = what.cmdlet();
        let id = identity.as_str();
        match what {
            What::Endpoint { name } => Answer::Endpoint(
                self.call(cmdlet, Retry::Transient, || {
                    svc.endpoint_limits(call, name.as_deref())
                })
                .await,
            ),
            What::Create { intent, request } => Answer::Created {
                intent,
                result: self
                    .call(cmdlet, Retry::Never, || svc.create(call, &request))
                    .await,
            },
            What::List { wave, batch, only } => {
                // Page by page, each page under the rate limit; a throttled page is retried alone.
                let mut out = Vec::new();
                let mut next: Option<String> = None;
                let mut pager = crate::exchange::Pager::default();
                let result = loop {
                    let page = self
                        .call(cmdlet, Retry::Transient, || {
                            svc.list_page(call, &batch, only, next.as_deref())
                        })
                        .await;
                    match page {
                        Ok((requests, link)) => {
                            out.extend(requests);
                            match link.map(|l| pager.follow(cmdlet, l)) {
                                Some(Ok(l)) => next = Some(l),
                                Some(Err(e)) => break Err(e),
                                None => break Ok(out),
                            }
                        }
                        Err(e) => break Err(e),
                    }
                };
                Answer::Listed {
                    wave,
                    filtered: only.is_some(),
                    result,
                }
            }
            What::Get => Answer::Got(
                self.call(cmdlet, Retry::Transient, || svc.get(call, id))
                    .await,
            ),
            What::Stats => Answer::Stats(
                self.call(cmdlet, Retry::Transient, || svc.statistics(call, id))
                    .await,
            ),
            // Counted apart, so that the summary and the metrics show what the analytics cost.
            What::Figures => Answer::Figures(
                self.call(FIGURES, Retry::Transient, || svc.statistics(call, id))
                    .await,
            ),
            What::Resume(cutover) => {
                let moved = self
                    .call("Set-MoveRequest", Retry::Transient, || {
                        svc.reschedule(call, id, &cutover.batch, cutover.complete_after)
                    })
                    .await;
                match moved {
                    Ok(()) => Answer::Resumed {
                        moved: Some(cutover.to),
                        result: self
                            .call(cmdlet, Retry::Transient, || svc.resume(call, id))
                            .await,
                    },
                    Err(e) => Answer::Resumed {
                        moved: None,
                        result: Err(e),
                    },
                }
            }
            What::Remove => Answer::Removed(
                self.call(cmdlet, Retry::Transient, || svc.remove(call, id))
                    .await,
            ),
            What::Approve(cutover) => {
                let now = self.clock.now();
                Answer::Approved {
                    to: cutover.to,
                    result: self
                        .call(cmdlet, Retry::Transient, || {
                            svc.approve_skipped_items(
                                call,
                                id,
                                now,
                                &cutover.batch,
                                cutover.complete_after,
                            )
                        })
                        .await,
                }
            }
            What::Reschedule(cutover) => Answer::Rescheduled {
                to: cutover.to,
                result: self
                    .call(cmdlet, Retry::Transient, || {
                        svc.reschedule(call, id, &cutover.batch, cutover.complete_after)
                    })
                    .await,
            },
        }
    }
}
