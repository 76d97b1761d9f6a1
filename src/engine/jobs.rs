//! Jobs: one API call each (the executor), with the run's rate limit, the shared throttle gate and
//! retries of transient errors. A job never changes the run's state: it returns an [`Outcome`] and the
//! coordinator decides (and records a create's intent before the job is dispatched).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use jiff::{SignedDuration, Timestamp};

use crate::exchange::{
    Call, EndpointLimits, MoveRequest, MoveService, MoveStatistics, NewMove, ServiceError,
};
use crate::time::Clock;
use crate::time::limits::{self, Limiter};

/// Pauses every worker on one API until a 429's Retry-After has passed.
#[derive(Debug, Default)]
pub struct Gate {
    until_ms: AtomicI64,
    /// Simulated milliseconds the API has been paused (the union of the pauses, not per worker).
    paused_ms: AtomicU64,
}

impl Gate {
    pub fn pause_until(&self, now: Timestamp, until: Timestamp) {
        let new = until.as_millisecond();
        let old = self.until_ms.fetch_max(new, Ordering::SeqCst);
        let from = old.max(now.as_millisecond());
        if new > from {
            self.paused_ms
                .fetch_add((new - from) as u64, Ordering::Relaxed);
        }
    }

    pub fn paused(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.paused_ms.load(Ordering::Relaxed))
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
pub struct Metrics {
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

    pub fn total_calls(&self) -> u64 {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
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
        Err(_) => "error",
    }
}

/// What a job needs from the run.
pub struct Executor<S> {
    pub service: Arc<S>,
    pub clock: Clock,
    pub limiter: Arc<Limiter>,
    pub gate: Arc<Gate>,
    pub metrics: Arc<Metrics>,
}

impl<S> Clone for Executor<S> {
    fn clone(&self) -> Self {
        Executor {
            service: self.service.clone(),
            clock: self.clock,
            limiter: self.limiter.clone(),
            gate: self.gate.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// Transient errors are retried this many times (2 s doubling, simulated time), as the Exchange module
/// does; throttling is waited out up to this many times.
const TRANSIENT_RETRIES: usize = 5;
const THROTTLE_RETRIES: usize = 50;

impl<S: MoveService> Executor<S> {
    /// One call under the rate limit and the gate; a 429 closes the gate for everyone and is retried.
    async fn call<T, F, Fut>(&self, cmdlet: &str, f: F) -> Result<T, ServiceError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, ServiceError>>,
    {
        let clock = self.clock;
        let attempt = || async {
            let mut throttles = 0;
            loop {
                self.gate.wait(clock).await;
                limits::acquire(&self.limiter, clock).await;
                let result = f().await;
                self.metrics.record(cmdlet, outcome_label(&result));
                match result {
                    Err(ServiceError::Throttled { retry_after })
                        if throttles < THROTTLE_RETRIES =>
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
            // Backoff waits are simulated time, on the run's clock.
            .sleep(move |d: Duration| async move {
                clock
                    .sleep(SignedDuration::try_from(d).unwrap_or_default())
                    .await
            })
            .when(|e| matches!(e, ServiceError::Transient { .. }))
            .await
    }
}

#[derive(Debug, Clone)]
pub enum Job {
    Endpoint {
        name: Option<String>,
    },
    /// A create whose intent (`intent`, with its `client-request-id`) is already on disk.
    Create {
        mailbox: u32,
        intent: i64,
        correlation: [u8; 16],
        request: NewMove,
    },
    /// A wave's batch; with `only`, just the requests in that status.
    List {
        wave: u32,
        batch: String,
        only: Option<&'static str>,
    },
    Get {
        mailbox: u32,
        identity: String,
        created_at: Option<Timestamp>,
    },
    Stats {
        mailbox: u32,
        identity: String,
        created_at: Option<Timestamp>,
    },
    Resume {
        mailbox: u32,
        identity: String,
        created_at: Option<Timestamp>,
    },
    Approve {
        mailbox: u32,
        identity: String,
        created_at: Option<Timestamp>,
    },
    /// Moves a request to another wave's batch and cut-over.
    Reschedule {
        mailbox: u32,
        to_wave: u32,
        identity: String,
        batch: String,
        complete_after: Timestamp,
        created_at: Option<Timestamp>,
    },
}

#[derive(Debug)]
pub enum Outcome {
    Endpoint(Result<EndpointLimits, ServiceError>),
    Created {
        mailbox: u32,
        /// The intent recorded before the call, and the call's correlation id.
        intent: (i64, [u8; 16]),
        result: Result<MoveRequest, ServiceError>,
    },
    Listed {
        wave: u32,
        filtered: bool,
        result: Result<Vec<MoveRequest>, ServiceError>,
    },
    Got {
        mailbox: u32,
        result: Result<MoveRequest, ServiceError>,
    },
    Stats {
        mailbox: u32,
        result: Result<MoveStatistics, ServiceError>,
    },
    Resumed {
        mailbox: u32,
        result: Result<(), ServiceError>,
        correlation: [u8; 16],
    },
    Approved {
        mailbox: u32,
        result: Result<(), ServiceError>,
    },
    Rescheduled {
        mailbox: u32,
        to_wave: u32,
        result: Result<(), ServiceError>,
    },
}

impl<S: MoveService> Executor<S> {
    pub async fn run(self, job: Job) -> Outcome {
        let svc = self.service.clone();
        match job {
            Job::Endpoint { name } => {
                let r = self
                    .call("Get-MigrationEndpoint", || {
                        svc.endpoint_limits(Call::new(), name.as_deref())
                    })
                    .await;
                Outcome::Endpoint(r)
            }
            Job::Create {
                mailbox,
                intent,
                correlation,
                request,
            } => {
                let call = Call::with_correlation(correlation);
                let result = self
                    .call("New-MoveRequest", || svc.create(call, &request))
                    .await;
                Outcome::Created {
                    mailbox,
                    intent: (intent, correlation),
                    result,
                }
            }
            Job::List { wave, batch, only } => {
                // Page by page, each page under the rate limit; a throttled page is retried alone.
                let mut out = Vec::new();
                let mut next: Option<String> = None;
                let result = loop {
                    let page = self
                        .call("Get-MoveRequest", || {
                            svc.list_page(Call::new(), &batch, only, next.as_deref())
                        })
                        .await;
                    match page {
                        Ok((requests, link)) => {
                            out.extend(requests);
                            match link {
                                Some(l) => next = Some(l),
                                None => break Ok(out),
                            }
                        }
                        Err(e) => break Err(e),
                    }
                };
                Outcome::Listed {
                    wave,
                    filtered: only.is_some(),
                    result,
                }
            }
            Job::Get {
                mailbox,
                identity,
                created_at,
            } => {
                let result = self
                    .call("Get-MoveRequest", || {
                        svc.get(Call::new().created_at(created_at), &identity)
                    })
                    .await;
                Outcome::Got { mailbox, result }
            }
            Job::Stats {
                mailbox,
                identity,
                created_at,
            } => {
                let result = self
                    .call("Get-MoveRequestStatistics", || {
                        svc.statistics(Call::new().created_at(created_at), &identity)
                    })
                    .await;
                Outcome::Stats { mailbox, result }
            }
            Job::Resume {
                mailbox,
                identity,
                created_at,
            } => {
                let correlation = *uuid::Uuid::new_v4().as_bytes();
                let result = self
                    .call("Resume-MoveRequest", || {
                        svc.resume(
                            Call::with_correlation(correlation).created_at(created_at),
                            &identity,
                        )
                    })
                    .await;
                Outcome::Resumed {
                    mailbox,
                    result,
                    correlation,
                }
            }
            Job::Approve {
                mailbox,
                identity,
                created_at,
            } => {
                let now = self.clock.now();
                let result = self
                    .call("Set-MoveRequest", || {
                        svc.approve_skipped_items(
                            Call::new().created_at(created_at),
                            &identity,
                            now,
                        )
                    })
                    .await;
                Outcome::Approved { mailbox, result }
            }
            Job::Reschedule {
                mailbox,
                to_wave,
                identity,
                batch,
                complete_after,
                created_at,
            } => {
                let result = self
                    .call("Set-MoveRequest", || {
                        let svc = svc.clone();
                        let (identity, batch) = (identity.clone(), batch.clone());
                        async move {
                            svc.reschedule(
                                Call::new().created_at(created_at),
                                &identity,
                                &batch,
                                complete_after,
                            )
                            .await
                        }
                    })
                    .await;
                Outcome::Rescheduled {
                    mailbox,
                    to_wave,
                    result,
                }
            }
        }
    }
}
