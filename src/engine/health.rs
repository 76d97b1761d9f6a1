//! Is the service there? Every call's answer is recorded here: when the last good answer came, how
//! many calls in a row failed without one (network errors, timeouts, 5xx), and the last failure.
//! After [`OPEN_AFTER`] failures in a row the circuit opens: calls wait here instead of hammering a
//! dead service, and one probe at a time tries again, the wait doubling up to a minute. The first
//! good answer closes it. The coordinator reads the same record to say so in every progress line,
//! to alert, and to give up after `run.unreachable_timeout`.

use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::time::Clock;

/// Failures in a row that open the circuit.
pub(crate) const OPEN_AFTER: u64 = 5;
const FIRST_PROBE: SignedDuration = SignedDuration::from_secs(5);
const LONGEST_PROBE: SignedDuration = SignedDuration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Breaker {
    since: Timestamp,
    retry_at: Timestamp,
    wait: SignedDuration,
    probing: bool,
}

#[derive(Debug, Default)]
struct Record {
    last_good: Option<Timestamp>,
    good_answers: u64,
    failures_in_a_row: u64,
    /// When the current run of failures began.
    failing_since: Option<Timestamp>,
    last_failure: Option<String>,
    open: Option<Breaker>,
}

/// What the progress line and the summary show.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct HealthView {
    pub(crate) last_good: Option<Timestamp>,
    pub(crate) good_answers: u64,
    pub(crate) failures_in_a_row: u64,
    /// When the current run of failures began (none while the service answers). Idle time
    /// between calls is not silence: only calls that went unanswered count.
    pub(crate) failing_since: Option<Timestamp>,
    pub(crate) last_failure: Option<String>,
    /// Since when calls have been held back because the service does not answer.
    pub(crate) unreachable_since: Option<Timestamp>,
}

#[derive(Debug, Default)]
pub(crate) struct Health {
    record: Mutex<Record>,
    changed: Notify,
}

/// Leave to send one call. A probe that is dropped without an answer (the call was cut off) lets
/// the next caller probe instead.
pub(crate) struct Ticket<'a> {
    health: &'a Health,
    probe: bool,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.probe {
            let mut r = self.health.lock();
            if let Some(b) = r.open.as_mut() {
                b.probing = false;
            }
            drop(r);
            self.health.changed.notify_waiters();
        }
    }
}

impl Ticket<'_> {
    /// Records the call's answer: `answered` when the service answered at all.
    pub fn answered(mut self, answered: bool, now: Timestamp, failure: impl FnOnce() -> String) {
        self.health.record(answered, now, failure);
        self.probe = false;
    }
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until a call may go: at once while the service answers; while it does not, until this
    /// caller's turn to probe. `None` when `stop` fires first.
    pub(crate) async fn admit(&self, clock: Clock, stop: &CancellationToken) -> Option<Ticket<'_>> {
        loop {
            if stop.is_cancelled() {
                return None;
            }
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let retry_at = {
                let mut r = self.lock();
                match r.open.as_mut() {
                    None => {
                        return Some(Ticket {
                            health: self,
                            probe: false,
                        });
                    }
                    Some(b) if !b.probing && clock.now() >= b.retry_at => {
                        b.probing = true;
                        return Some(Ticket {
                            health: self,
                            probe: true,
                        });
                    }
                    // Someone is probing: wait for its answer.
                    Some(b) if b.probing => None,
                    Some(b) => Some(b.retry_at),
                }
            };
            let timer = async {
                match retry_at {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut notified => {}
                _ = timer => {}
                _ = stop.cancelled() => return None,
            }
        }
    }

    fn record(&self, answered: bool, now: Timestamp, failure: impl FnOnce() -> String) {
        let mut r = self.lock();
        if answered {
            r.last_good = Some(now);
            r.good_answers += 1;
            r.failures_in_a_row = 0;
            r.failing_since = None;
            if r.open.take().is_some() {
                drop(r);
                tracing::info!("the service answers again");
                self.changed.notify_waiters();
            }
            return;
        }
        r.failures_in_a_row += 1;
        r.failing_since.get_or_insert(now);
        r.last_failure = Some(failure());
        let failures = r.failures_in_a_row;
        match r.open.as_mut() {
            Some(b) => {
                b.wait = (b.wait * 2).min(LONGEST_PROBE);
                b.retry_at = now + b.wait;
                b.probing = false;
            }
            None if failures >= OPEN_AFTER => {
                r.open = Some(Breaker {
                    since: now,
                    retry_at: now + FIRST_PROBE,
                    wait: FIRST_PROBE,
                    probing: false,
                });
                let (n, last) = (r.failures_in_a_row, r.last_failure.clone());
                drop(r);
                tracing::warn!(
                    failures = n,
                    last = last.as_deref().unwrap_or(""),
                    "the service does not answer; holding calls back and probing"
                );
            }
            None => {}
        }
        self.changed.notify_waiters();
    }

    /// When the current run of failures began (cheap: no copy of the last failure).
    pub fn failing_since(&self) -> Option<Timestamp> {
        self.lock().failing_since
    }

    /// Completes at the next failure or recovery (the coordinator wakes to look).
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    pub(crate) fn view(&self) -> HealthView {
        let r = self.lock();
        HealthView {
            last_good: r.last_good,
            good_answers: r.good_answers,
            failures_in_a_row: r.failures_in_a_row,
            failing_since: r.failing_since,
            last_failure: r.last_failure.clone(),
            unreachable_since: r.open.map(|b| b.since),
        }
    }
}

impl HealthView {
    /// How long calls have gone unanswered (from the first failure of the current run of them, and
    /// no earlier than `started`); `None` while the service answers.
    pub(crate) fn silent_for(&self, started: Timestamp, now: Timestamp) -> Option<SignedDuration> {
        Some(now.duration_since(self.failing_since?.max(started)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Timestamp {
        "2027-01-04T20:00:00Z".parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn the_circuit_opens_after_failures_in_a_row_and_one_probe_at_a_time_closes_it() {
        let clock = Clock::tokio(t0(), 1.0);
        let health = Health::default();
        let stop = CancellationToken::new();
        for _ in 0..OPEN_AFTER - 1 {
            let t = health.admit(clock, &stop).await.unwrap();
            t.answered(false, clock.now(), || "connection refused".into());
        }
        assert_eq!(health.view().unreachable_since, None, "not open yet");
        let t = health.admit(clock, &stop).await.unwrap();
        t.answered(false, clock.now(), || "connection refused".into());
        let v = health.view();
        assert_eq!(v.unreachable_since, Some(t0()));
        assert_eq!(v.failures_in_a_row, OPEN_AFTER);
        assert_eq!(v.last_failure.as_deref(), Some("connection refused"));

        // The next caller waits for the first probe's time; a second waits behind the probe.
        let probe = health.admit(clock, &stop).await.unwrap();
        assert_eq!(clock.now(), t0() + FIRST_PROBE);
        let second = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            health.admit(clock, &stop),
        )
        .await;
        assert!(second.is_err(), "only one probe at a time");
        probe.answered(true, clock.now(), String::new);
        assert_eq!(
            health.view().unreachable_since,
            None,
            "a good answer closes it"
        );
        assert!(health.admit(clock, &stop).await.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probes_wait_longer_and_stop_releases_the_waiters() {
        let clock = Clock::tokio(t0(), 1.0);
        let health = std::sync::Arc::new(Health::default());
        let stop = CancellationToken::new();
        for _ in 0..OPEN_AFTER {
            health
                .admit(clock, &stop)
                .await
                .unwrap()
                .answered(false, clock.now(), || "timeout".into());
        }
        let p = health.admit(clock, &stop).await.unwrap();
        p.answered(false, clock.now(), || "timeout".into());
        let before = clock.now();
        let p = health.admit(clock, &stop).await.unwrap();
        assert_eq!(clock.now().duration_since(before), FIRST_PROBE * 2);
        drop(p); // cut off without an answer: the next caller may probe
        let probe = health.admit(clock, &stop).await.unwrap();
        let v = health.view();
        assert_eq!(
            v.silent_for(t0(), t0() + SignedDuration::from_mins(3)),
            Some(SignedDuration::from_mins(3))
        );
        // A caller waiting behind the probe is released by the stop, without a ticket.
        let waiter = tokio::spawn({
            let (health, stop) = (health.clone(), stop.clone());
            async move { health.admit(clock, &stop).await.is_none() }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        stop.cancel();
        assert!(waiter.await.unwrap(), "released without a ticket");
        drop(probe);
    }
}
