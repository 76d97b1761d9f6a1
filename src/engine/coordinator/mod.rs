//! The coordinator: one task that owns the run's view, decides what is due (the submitter, the
//! poller, the completer), dispatches jobs, and turns their outcomes into transitions written through
//! the store's writer. It never prints: progress leaves as [`Snapshot`]s, alerts as [`Alert`]s.
//!
//! Rooms: this file holds the loop, dispatch and stopping; `submit` the creates and uncertain ones;
//! `poll` the batch listings and what they show; `cutover` the end of windows, reschedules and
//! approvals; `outcomes` what each call's answer changes; `report` progress and the summary.

mod actions;
mod cutover;
mod outcomes;
mod poll;
mod report;
mod submit;

use std::path::PathBuf;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::jobs::{Executor, Job, Outcome, What};
use super::policy::{self, Resume};
use super::state::{OpenCreate, RunState, Work, from_ms, ms};
use super::summary::{Alert, RunOutcome, RunSummary, Snapshot};
use crate::config;
use crate::exchange::{Call, MoveService, ServiceError};
use crate::store::writer::{Command, Transition, WriterHandle};
use crate::store::{FailureClass, State, Store, StoreError};
use crate::time::Clock;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Only these waves (by id); all when `None`.
    pub scope: Option<Vec<String>>,
    /// Start no new work after this (simulated) time.
    pub until: Option<Timestamp>,
    /// Do what is due now, once, then stop.
    pub once: bool,
    /// Only apply the operator actions waiting in the store, then stop (an action command with
    /// no run going).
    pub actions_only: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Bad input: nothing was changed.
    #[error("no wave {0} in the state database (see `mailwave status`)")]
    UnknownWave(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Everything a run needs.
pub struct RunContext<S: MoveService> {
    pub service: Arc<S>,
    pub(crate) store_path: PathBuf,
    pub writer: WriterHandle,
    pub clock: Clock,
    pub run: config::Run,
    pub migration: config::Migration,
    /// The plan's time zone (`schedule.timezone`), for local-time settings such as the pre-stage window.
    pub timezone: jiff::tz::TimeZone,
    pub options: RunOptions,
    /// Cancelled when the operator asks the run to stop.
    pub stop: CancellationToken,
    /// Cancelled by the run when it begins to end, for whatever reason (a stop, `--until`, a fatal
    /// error, an unreachable service): from then on no call starts and nothing is retried.
    pub ending: CancellationToken,
    pub progress: Option<watch::Sender<Snapshot>>,
    pub(crate) alerts: Option<mpsc::UnboundedSender<Alert>>,
    /// Told each time an operator action is applied (the notices look again at once).
    pub(crate) actions_applied: Option<Arc<tokio::sync::Notify>>,
}

/// What the run waits for next (for the progress line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    Nothing,
    Until,
    Answer,
    CallsInFlight,
    Listing(u32),
    Prestage(u32),
    Close(u32),
    Resume,
    Probe,
    Replication,
    Actions,
}

/// Whether the migration endpoint's limits have been read (nothing is sent before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Unknown,
    Read,
}

struct Coordinator<S: MoveService> {
    st: RunState,
    store_path: PathBuf,
    /// The run's one read connection, for its looks at the database (actions, waves, groups);
    /// every change goes through `writer`.
    reader: std::sync::Mutex<Store>,
    actions: actions::Actions,
    /// Actions whose call is on the wire, by id.
    in_flight_actions: std::collections::HashMap<i64, actions::Queued>,
    exec: Executor<S>,
    jobs: JoinSet<Outcome>,
    cfg: config::Run,
    migration: config::Migration,
    timezone: jiff::tz::TimeZone,
    clock: Clock,
    writer: WriterHandle,
    options: RunOptions,
    started: Timestamp,
    endpoint: Endpoint,
    in_flight_cap: u64,
    /// Why the run is ending, once it is.
    ending: Option<RunOutcome>,
    operator_stop: CancellationToken,
    counters: Counters,
    progress: Option<watch::Sender<Snapshot>>,
    /// When progress was last published (real time: the reporter reads it every few seconds).
    published: Option<std::time::Instant>,
    alerts: Option<mpsc::UnboundedSender<Alert>>,
    actions_applied: Option<Arc<tokio::sync::Notify>>,
    /// An unreachable alert went out and no recovery since.
    alerted_unreachable: Option<Timestamp>,
}

#[derive(Debug, Default)]
struct Counters {
    completed: u64,
    rescheduled: u64,
    uncertain_at_start: u64,
    uncertain_settled: u64,
    cut_off: u64,
    /// Move figures recorded, and finished moves whose statistics could not be read.
    figures: u64,
    figures_missed: u64,
    /// Delegation groups split at a window's close (some members cut over, the rest follow), and
    /// the first few in words.
    groups_split: u64,
    split_groups: Vec<String>,
}

/// How often the run looks at the service's health while calls go unanswered.
const HEALTH_TICK: SignedDuration = SignedDuration::from_secs(5);

/// A transition; [`Coordinator::transition`] stamps its time.
fn tr(mailbox: i64, to: State, cause: &'static str) -> Transition {
    Transition::new(mailbox, to, cause, 0)
}

/// The first wave `scope` names that the database does not hold.
pub(crate) fn unknown_wave(
    waves: &[crate::store::run_view::WaveRow],
    scope: Option<&[String]>,
) -> Option<String> {
    scope?
        .iter()
        .find(|n| !waves.iter().any(|w| &w.name == *n))
        .cloned()
}

pub async fn run<S: MoveService>(ctx: RunContext<S>) -> Result<RunSummary, EngineError> {
    let store = Store::open_read_only(&ctx.store_path)?;
    let waves = store.waves()?;
    if let Some(missing) = unknown_wave(&waves, ctx.options.scope.as_deref()) {
        return Err(EngineError::UnknownWave(missing));
    }
    let mut load_error = None;
    let st = RunState::load(waves, ctx.options.scope.as_deref(), |f| {
        if let Err(e) = store.for_each_mailbox(f) {
            load_error = Some(e);
        }
    });
    if let Some(e) = load_error {
        return Err(e.into());
    }
    let intents = store.open_intents()?;
    // Finished moves whose figures an earlier run did not get (stopped, killed) are read now; the
    // service keeps a completed request, so a month back is safe.
    let owed = if ctx.run.collect_statistics != crate::config::Collect::None
        && !ctx.options.actions_only
    {
        let since = ctx.clock.now() - SignedDuration::from_hours(24 * 30);
        store.completed_without_figures(since.as_millisecond())?
    } else {
        Vec::new()
    };

    let started = ctx.clock.now();
    let mut c = Coordinator {
        reader: std::sync::Mutex::new(store),
        st,
        store_path: ctx.store_path.clone(),
        actions: actions::Actions::default(),
        in_flight_actions: std::collections::HashMap::new(),
        exec: Executor::new(ctx.service, ctx.clock, &ctx.run, ctx.ending),
        jobs: JoinSet::new(),
        in_flight_cap: ctx.run.max_in_flight,
        cfg: ctx.run,
        migration: ctx.migration,
        timezone: ctx.timezone,
        clock: ctx.clock,
        writer: ctx.writer,
        options: ctx.options,
        started,
        endpoint: Endpoint::Unknown,
        ending: None,
        operator_stop: ctx.stop,
        counters: Counters::default(),
        progress: ctx.progress,
        published: None,
        alerts: ctx.alerts,
        actions_applied: ctx.actions_applied,
        alerted_unreachable: None,
    };
    if !c.options.actions_only {
        c.take_over_open_intents(intents, started).await?;
        let indices = c.st.indices_of(owed.iter().copied());
        for id in owed {
            if let Some(&idx) = indices.get(&id)
                && c.cfg.collect_statistics.takes(id)
            {
                c.st.figures_queue.push_back(idx);
            }
        }
    }
    let outcome = c.main_loop().await;
    // Everything recorded so far must be on disk before the summary says so; a writer that does not
    // answer within a few seconds is itself a failure.
    let flushed = tokio::time::timeout(std::time::Duration::from_secs(10), c.writer.flush()).await;
    let outcome = match (outcome, flushed) {
        (o @ RunOutcome::Fatal(_), _) => o,
        (o, Ok(Ok(()))) => o,
        (_, Ok(Err(e))) => RunOutcome::Fatal(format!("state database: {e}")),
        (_, Err(_)) => {
            RunOutcome::Fatal("state database: the writer did not finish in 10 s".into())
        }
    };
    let ended = c.clock.now();
    c.publish(ended, (ended, Due::Nothing), true);
    Ok(c.summary(outcome, ended))
}

impl<S: MoveService> Coordinator<S> {
    /// A look at the database on the run's read connection.
    fn read<T>(&self, look: impl FnOnce(&Store) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let store = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        look(&store)
    }

    /// Open intents from an earlier run. A create without an outcome makes *that mailbox* uncertain:
    /// it is settled by the first evidence (its batch listing, or a new create whose answer says
    /// whether the service already had it). Nothing else waits.
    async fn take_over_open_intents(
        &mut self,
        intents: Vec<crate::store::run_view::OpenIntent>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let indices = self.st.indices_of(intents.iter().map(|i| i.mailbox_id));
        for intent in intents {
            let Some(&idx) = indices.get(&intent.mailbox_id) else {
                continue; // outside this run's scope: a later run settles it
            };
            let m = &self.st.mailboxes[idx as usize];
            if intent.operation != "create" || m.state != State::Planned {
                // Any other operation was a change the listing will show; and a create for a
                // mailbox that has moved on since was settled by its transitions.
                let outcome = if m.state == State::Planned {
                    "superseded: settled by the next listing"
                } else {
                    "superseded: the mailbox moved on"
                };
                self.writer
                    .submit(Command::Resolve {
                        intent: intent.id,
                        outcome: outcome.into(),
                        at: ms(now),
                    })
                    .await?;
                continue;
            }
            let made_for = intent.wave_id.and_then(|w| self.st.wave_of_db(w));
            self.st.open_creates.insert(
                idx,
                OpenCreate {
                    intent: intent.id,
                    correlation: intent.correlation,
                    attempted: intent.created_at,
                    made_for,
                    probe: false,
                },
            );
            self.wait_for_probe(idx, intent.created_at, now);
            let w = self.st.mailboxes[idx as usize].wave;
            self.st.waves[w as usize].poll_by(now);
        }
        self.counters.uncertain_at_start = self.st.open_creates.len() as u64;
        // Transient failures an earlier run left waiting for their resume get it from this one.
        let transient: Vec<u32> = (0..self.st.mailboxes.len() as u32)
            .filter(|&i| {
                let m = &self.st.mailboxes[i as usize];
                m.state == State::Failed
                    && m.class == Some(FailureClass::Transient)
                    && self.st.waves[m.wave as usize].in_scope
            })
            .collect();
        for idx in transient {
            self.after_failure(
                idx,
                FailureClass::Transient,
                "failed in an earlier run",
                now,
            )
            .await?;
        }
        if !self.st.open_creates.is_empty() {
            tracing::info!(
                uncertain = self.st.open_creates.len(),
                "creates left in doubt by an earlier run: those mailboxes are settled by their listing or a new create; everything else goes on"
            );
        }
        Ok(())
    }

    /// Puts an uncertain mailbox aside until it may be asked again.
    fn wait_for_probe(&mut self, idx: u32, attempted: Timestamp, now: Timestamp) {
        let at = policy::probe_at(attempted, now);
        self.st.mailboxes[idx as usize].work = Work::Waiting;
        self.st.probes.push(std::cmp::Reverse((ms(at), idx)));
    }

    /// Decides whether the run must end now, and why.
    fn check_ending(&mut self, now: Timestamp) {
        if self.ending.is_some() {
            return;
        }
        if let Some(e) = self.writer.failure() {
            self.ending = Some(RunOutcome::Fatal(format!("state database: {e}")));
            return;
        }
        let health = self.exec.health.view();
        if let Some(silent) = health.silent_for(self.started, now) {
            let last = health.last_failure.clone().unwrap_or_default();
            let give_up = self.cfg.unreachable_timeout;
            // Unattended runs hear about it long before they give up.
            let alert_after = (give_up / 3).min(SignedDuration::from_mins(5));
            if silent >= give_up {
                self.ending = Some(RunOutcome::Unreachable(format!(
                    "no good answer from the service for {:.0} s (run.unreachable_timeout {}); {} failures in a row, last: {last}",
                    silent.as_secs_f64(),
                    config::format_duration(give_up),
                    health.failures_in_a_row
                )));
                return;
            }
            if self.options.once
                && health.good_answers == 0
                && health.failures_in_a_row >= super::health::OPEN_AFTER.min(3)
            {
                self.ending = Some(RunOutcome::Unreachable(format!(
                    "could not reach the service ({} failures in a row, last: {last})",
                    health.failures_in_a_row
                )));
                return;
            }
            if silent >= alert_after && self.alerted_unreachable.is_none() {
                let since = now - silent;
                self.alerted_unreachable = Some(since);
                self.alert(Alert::Unreachable {
                    since,
                    failures: health.failures_in_a_row,
                    last_error: last,
                    giving_up_at: since + give_up,
                });
            }
        } else if let Some(since) = self.alerted_unreachable.take() {
            self.alert(Alert::Reachable {
                after: now.duration_since(since),
            });
        }
        if self.operator_stop.is_cancelled() {
            self.ending = Some(RunOutcome::Stopped);
        } else if self.options.until.is_some_and(|u| now >= u) {
            self.ending = Some(RunOutcome::Until);
        }
    }

    fn fail(&mut self, reason: String) {
        if self.ending.is_none() {
            tracing::error!(reason = %reason, "the run cannot go on");
            self.ending = Some(RunOutcome::Fatal(reason));
        }
    }

    fn store_failed(&mut self, e: StoreError) {
        self.fail(format!("state database: {e}"));
    }

    fn alert(&self, alert: Alert) {
        if let Some(tx) = &self.alerts {
            let _ = tx.send(alert);
        }
    }

    async fn main_loop(&mut self) -> RunOutcome {
        if self.options.actions_only {
            // Only the operator's actions: no endpoint, no creates, no listings.
            self.endpoint = Endpoint::Read;
            return self.actions_loop().await;
        }
        let endpoint = Job {
            mailbox: None,
            identity: self.migration.source_endpoint.clone().unwrap_or_default(),
            call: Call::new(),
            what: What::Endpoint {
                name: self.migration.source_endpoint.clone(),
            },
            action: None,
        };
        self.dispatch(endpoint);
        let now = self.clock.now();
        for w in self.st.waves.iter_mut() {
            if w.in_scope && w.prestage_start <= now && w.active() > 0 {
                w.poll_by(now);
            }
        }
        loop {
            let now = self.clock.now();
            self.check_ending(now);
            if self.ending.is_some() {
                break;
            }
            let dispatched = self.plan(now).await;
            if self.ending.is_some() {
                break;
            }
            if self.jobs.is_empty() {
                if self.options.once && dispatched == 0 {
                    let h = self.exec.health.view();
                    self.ending = Some(if h.good_answers == 0 && h.failures_in_a_row > 0 {
                        RunOutcome::Unreachable(format!(
                            "could not reach the service: {}",
                            h.last_failure.unwrap_or_default()
                        ))
                    } else {
                        RunOutcome::Once
                    });
                    break;
                }
                if self.st.unfinished() == 0
                    && self.st.open_creates.is_empty()
                    && self.st.figures_queue.is_empty()
                    && !self.actions_waiting()
                {
                    self.ending = Some(RunOutcome::Finished);
                    break;
                }
            }
            let (wake, labelled) = self.next_wake(now);
            self.publish(now, labelled, false);
            let health = self.exec.health.clone();
            tokio::select! {
                _ = health.changed() => {}
                Some(joined) = self.jobs.join_next(), if !self.jobs.is_empty() => {
                    self.joined(joined).await;
                    while let Some(joined) = self.jobs.try_join_next() {
                        self.joined(joined).await;
                    }
                }
                _ = self.clock.sleep_until(wake) => {}
                _ = self.operator_stop.cancelled() => {}
            }
        }
        self.wind_down().await;
        self.ending.take().unwrap_or(RunOutcome::Stopped)
    }

    /// An actions-only run: apply what the store holds, then end.
    async fn actions_loop(&mut self) -> RunOutcome {
        loop {
            let now = self.clock.now();
            self.check_ending(now);
            if self.ending.is_some() {
                break;
            }
            if let Err(e) = self.look_for_actions(now) {
                self.store_failed(e);
                break;
            }
            if let Err(e) = self.apply_actions(now).await {
                self.store_failed(e);
                break;
            }
            let replicated = self.actions.next_replicated();
            if self.jobs.is_empty() && replicated.is_none() {
                // Actions still queued here wait for a create's answer that only a run gets.
                self.ending = Some(RunOutcome::Actions);
                break;
            }
            // An action on a request too fresh to be read yet is tried again when it may be (the
            // command's --wait bounds this; what is left stays pending for the next run).
            let wake = replicated.unwrap_or(now + SignedDuration::from_hours(1));
            tokio::select! {
                Some(joined) = self.jobs.join_next(), if !self.jobs.is_empty() => self.joined(joined).await,
                _ = self.clock.sleep_until(wake) => {}
                _ = self.operator_stop.cancelled() => {}
            }
        }
        self.wind_down().await;
        self.ending.take().unwrap_or(RunOutcome::Actions)
    }

    /// Ending: nothing new starts and nothing is retried; calls already on the wire may finish
    /// within `run.stop_grace` (real time), and are cut off after it. A call cut off is like a crash
    /// for its mailbox: its intent stays open and the next run settles it.
    async fn wind_down(&mut self) {
        self.exec.stop.cancel();
        if !self.jobs.is_empty() {
            tracing::info!(
                calls = self.jobs.len(),
                grace = ?self.cfg.stop_grace,
                "stopping: letting calls in flight finish"
            );
        }
        let grace = tokio::time::sleep(self.cfg.stop_grace);
        tokio::pin!(grace);
        while !self.jobs.is_empty() {
            tokio::select! {
                Some(joined) = self.jobs.join_next() => self.joined(joined).await,
                _ = &mut grace => {
                    self.counters.cut_off = self.jobs.len() as u64;
                    tracing::warn!(left = self.jobs.len(), "stop grace ran out; calls in flight were cut off (the next run settles their mailboxes)");
                    self.jobs.abort_all();
                    while self.jobs.join_next().await.is_some() {}
                    break;
                }
            }
        }
    }

    async fn joined(&mut self, joined: Result<Outcome, tokio::task::JoinError>) {
        match joined {
            Ok(outcome) => {
                if let Err(e) = self.handle(outcome).await {
                    self.store_failed(e);
                }
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => self.fail(format!("a worker failed: {e}")),
        }
    }

    fn dispatch(&mut self, job: Job) {
        if let Some(idx) = job.mailbox {
            self.st.mailboxes[idx as usize].work = Work::Calling;
        }
        let exec = self.exec.clone();
        self.jobs.spawn(exec.run(job));
    }

    /// A job about one mailbox, by address, with the request's creation time (replication lag).
    fn mailbox_job(&self, idx: u32, what: What) -> Job {
        Job {
            mailbox: Some(idx),
            identity: self.st.address(idx).to_string(),
            call: Call::new().created_at(self.st.created_at(idx)),
            what,
            action: None,
        }
    }

    fn slots(&self) -> usize {
        self.cfg.max_parallel_calls.saturating_sub(self.jobs.len())
    }

    /// When something next becomes due, and what. With every call slot busy nothing new can start,
    /// so the next thing that matters is a job finishing (which wakes the loop by itself). Cheap:
    /// it runs every round and builds no text.
    fn next_wake(&self, now: Timestamp) -> (Timestamp, (Timestamp, Due)) {
        let floor = now + SignedDuration::from_millis(1);
        let mut wake = (now + SignedDuration::from_hours(6), Due::Nothing);
        // What the progress line names: the same, less the routine looks at waves whose window
        // has closed (the operator waits for what comes, not for a closed window).
        let mut told = wake;
        let mut consider = |at: Timestamp, what: Due| {
            if at < wake.0 {
                wake = (at, what);
            }
            let closed = matches!(what, Due::Listing(i)
                if self.st.waves[i as usize].window_end <= now);
            if at < told.0 && !closed {
                told = (at, what);
            }
        };
        if let Some(u) = self.options.until {
            consider(u, Due::Until);
        }
        // While calls go unanswered, look often: to say so, to alert, and to give up on time.
        if let Some(since) = self.exec.health.failing_since() {
            let give_up = since.max(self.started) + self.cfg.unreachable_timeout;
            consider(give_up.min(now + HEALTH_TICK), Due::Answer);
        }
        if self.slots() == 0 {
            let at = wake.0.max(floor);
            return (at, (at, Due::CallsInFlight));
        }
        for (i, w) in self.st.waves.iter().enumerate() {
            if !w.in_scope {
                continue;
            }
            let i = i as u32;
            if let Some(p) = w.next_poll() {
                consider(p, Due::Listing(i));
            }
            if w.prestage_start > now && w.count(State::Planned) > 0 {
                consider(w.prestage_start, Due::Prestage(i));
            }
            // A window that has closed is nothing to wait for (and never the "next" thing).
            if w.close == super::state::Close::Ahead && w.unready() > 0 && w.window_end > now {
                consider(self.close_time(w), Due::Close(i));
            }
        }
        if let Some(std::cmp::Reverse((due, _))) = self.st.resumes.peek() {
            consider(from_ms(*due), Due::Resume);
        }
        if let Some(std::cmp::Reverse((due, _))) = self.st.probes.peek() {
            consider(from_ms(*due), Due::Probe);
        }
        if let Some(std::cmp::Reverse((due, _))) = self.st.later.peek() {
            consider(from_ms(*due), Due::Replication);
        }
        if let Some(due) = self.actions.next_replicated() {
            consider(due, Due::Replication);
        }
        // The periodic look for actions wakes the loop, but it is not what the run waits for
        // unless nothing else is due.
        let labelled = (told.0.max(floor), told.1);
        match self.actions.next_look {
            Some(t) if t < wake.0 && wake.1 == Due::Nothing => {
                let at = t.max(floor);
                (at, (at, Due::Actions))
            }
            Some(t) if t < wake.0 => (t.max(floor), labelled),
            _ => (wake.0.max(floor), labelled),
        }
    }

    /// Decides and dispatches what is due now; returns how many jobs it started.
    async fn plan(&mut self, now: Timestamp) -> usize {
        let before = self.jobs.len();
        if self.endpoint == Endpoint::Unknown {
            return 0;
        }
        // The operator's actions first: a hold must land before a create or a reschedule.
        if let Err(e) = self.look_for_actions(now) {
            self.store_failed(e);
            return 0;
        }
        if let Err(e) = self.apply_actions(now).await {
            self.store_failed(e);
            return 0;
        }
        if let Err(e) = self.close_windows(now).await {
            self.store_failed(e);
            return 0;
        }
        self.dispatch_reschedules(now);
        self.dispatch_approvals(now);
        self.drain(|st| &mut st.get_queue, What::Get);
        self.drain(|st| &mut st.stats_queue, What::Stats);
        self.dispatch_resumes(now);
        self.dispatch_polls(now);
        if let Err(e) = self.submit(now).await {
            self.store_failed(e);
        }
        // Figures last: they may wait for calls nothing else needs.
        self.drain(|st| &mut st.figures_queue, What::Figures);
        self.jobs.len() - before
    }

    /// Dispatches a call for each mailbox at the front of a queue while call slots are free.
    fn drain(
        &mut self,
        queue: fn(&mut RunState) -> &mut std::collections::VecDeque<u32>,
        what: What,
    ) {
        while self.slots() > 0
            && let Some(idx) = queue(&mut self.st).pop_front()
        {
            let job = self.mailbox_job(idx, what.clone());
            self.dispatch(job);
        }
    }

    /// Transient failures whose backoff has passed are resumed.
    fn dispatch_resumes(&mut self, now: Timestamp) {
        while self.slots() > 0
            && let Some(&std::cmp::Reverse((due, idx))) = self.st.resumes.peek()
            && due <= ms(now)
        {
            self.st.resumes.pop();
            let m = &self.st.mailboxes[idx as usize];
            if m.state != State::Failed || m.work == Work::Calling {
                self.st.mailboxes[idx as usize].work = Work::Idle;
                continue;
            }
            // A resumed move may complete at once: it gets a window by the rule first.
            let cutover = self.cutover(idx, m.wave, false, now);
            let job = self.mailbox_job(idx, What::Resume(cutover));
            self.dispatch(job);
        }
    }

    /// Writes a transition and mirrors it in the view.
    async fn transition(
        &mut self,
        idx: u32,
        t: Transition,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let to = t.to;
        let class = t.failure.as_ref().map(|(c, _)| *c);
        // The store counts attempts the same way (every submission and every resume).
        let attempt = to == State::Submitted || t.cause == "resume";
        let t = Transition { at: ms(now), ..t };
        self.writer.submit(Command::Transition(t)).await?;
        let from = self.st.mailboxes[idx as usize].state;
        self.st.set_state(idx, to);
        if attempt {
            let m = &mut self.st.mailboxes[idx as usize];
            m.attempts = m.attempts.saturating_add(1);
        }
        if to == State::Failed {
            self.st.mailboxes[idx as usize].class = class;
        }
        if to.is_terminal() && !from.is_terminal() {
            self.counters.completed += 1;
        }
        if matches!(to, State::Completed | State::CompletedWithWarning)
            && !from.is_terminal()
            && self
                .cfg
                .collect_statistics
                .takes(self.st.mailboxes[idx as usize].id)
        {
            self.st.figures_queue.push_back(idx);
        }
        // A mailbox of a wave whose window has closed must not keep that window's cut-over.
        let w = self.st.mailboxes[idx as usize].wave;
        if self.st.waves[w as usize].close == super::state::Close::Done
            && matches!(to, State::Submitted | State::Syncing | State::Synced)
            && self.st.mailboxes[idx as usize].work == Work::Idle
        {
            let next = self.st.next_wave(w, now + self.cfg.cutover_margin);
            self.st.reschedules.push_back((idx, next));
            self.st.mailboxes[idx as usize].work = Work::Queued;
        }
        Ok(())
    }

    /// Settles a mailbox's open create with `outcome`.
    async fn resolve(&mut self, idx: u32, outcome: &str, now: Timestamp) -> Result<(), StoreError> {
        if let Some(open) = self.st.open_creates.remove(&idx) {
            self.writer
                .submit(Command::Resolve {
                    intent: open.intent,
                    outcome: outcome.into(),
                    at: ms(now),
                })
                .await?;
        }
        Ok(())
    }

    /// After a failure: a transient one is resumed later, until the attempts run out.
    async fn after_failure(
        &mut self,
        idx: u32,
        class: FailureClass,
        message: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if class != FailureClass::Transient {
            return Ok(());
        }
        let m = &self.st.mailboxes[idx as usize];
        let resumed = m.attempts.saturating_sub(1) as u32;
        match policy::resume(resumed, self.cfg.resume_attempts, self.cfg.resume_backoff) {
            Resume::After(wait) => {
                self.st.resumes.push(std::cmp::Reverse((
                    ms(now.saturating_add(wait).unwrap_or(Timestamp::MAX)),
                    idx,
                )));
                self.st.mailboxes[idx as usize].work = Work::Waiting;
            }
            Resume::GiveUp => {
                let id = m.id;
                self.writer
                    .submit(Command::Reclassify {
                        mailbox: id,
                        class: FailureClass::Permanent,
                        message: format!("gave up after {resumed} resumes: {message}"),
                        at: ms(now),
                    })
                    .await?;
                self.st.mailboxes[idx as usize].class = Some(FailureClass::Permanent);
            }
        }
        Ok(())
    }

    /// A refusal that ends the run (credentials, role); `true` when it was one.
    fn refused(&mut self, e: &ServiceError) -> bool {
        match e {
            ServiceError::Auth { message } => {
                self.fail(format!("Exchange refused the app's credentials: {message}"));
                true
            }
            ServiceError::Permission { cmdlet } => {
                self.fail(format!(
                    "Exchange refused {cmdlet}: give the app an Exchange role that includes the move cmdlets"
                ));
                true
            }
            _ => false,
        }
    }
}
