//! The coordinator: one task that owns the run's state, decides what to do next (submitter, poller,
//! completer, reconciliation), dispatches jobs, and turns their outcomes into transitions written
//! through the store's writer. It never prints: progress leaves as [`Snapshot`]s.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::jobs::{Executor, Gate, Job, Metrics, Outcome};
use super::state::{Guid, RunState, parse_guid};
use crate::config::{self, DcsApproval};
use crate::exchange::{
    MoveRequest, MoveService, MoveStatistics, MoveStatus, NewMove, REPLICATION_GRACE, ServiceError,
};
use crate::inventory::index::AddressIndex;
use crate::store::writer::{Command, Transition, WriterHandle};
use crate::store::{FailureClass, State, Store, StoreError};
use crate::time::Clock;
use crate::time::limits;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Only these waves (by id); all when `None`.
    pub scope: Option<Vec<String>>,
    /// Start no new work after this (simulated) time.
    pub until: Option<Timestamp>,
    /// Do what is due now, once, then stop.
    pub once: bool,
}

/// Progress, for whoever shows it (progress bars, log lines).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub now: Option<Timestamp>,
    pub counts: [u64; 10],
    pub total: u64,
    pub in_flight: u64,
    pub calls: u64,
    pub throttled: u64,
    pub current_wave: Option<String>,
    pub waves_total: usize,
    pub waves_done: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Fatal(String),
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunSummary {
    /// finished, stopped, until, once, or fatal.
    pub outcome: String,
    pub fatal: Option<String>,
    pub started: String,
    pub ended: String,
    pub simulated_hours: f64,
    pub mailboxes: u64,
    pub states: BTreeMap<&'static str, u64>,
    pub completed_this_run: u64,
    pub completed_per_hour: f64,
    pub rescheduled: u64,
    pub api_calls: BTreeMap<String, BTreeMap<String, u64>>,
    pub api_calls_total: u64,
    pub calls_per_completed_mailbox: Option<f64>,
    pub throttled: u64,
    pub throttled_seconds: f64,
    /// Mailboxes that need the operator (failed, held).
    pub attention: u64,
}

/// Once failures in a run reach the threshold, the callback runs (once, without blocking the run).
pub type FailureAlarm = (u64, Box<dyn FnOnce(u64) + Send>);

/// Everything a run needs.
pub struct RunContext<S: MoveService> {
    pub service: Arc<S>,
    pub store_path: PathBuf,
    pub writer: WriterHandle,
    pub clock: Clock,
    pub run: config::Run,
    pub migration: config::Migration,
    /// The plan's time zone (`schedule.timezone`), for local-time settings such as the pre-stage window.
    pub timezone: jiff::tz::TimeZone,
    pub options: RunOptions,
    /// Becomes true when the operator asks the run to stop.
    pub stop: watch::Receiver<bool>,
    pub progress: Option<watch::Sender<Snapshot>>,
    /// Called once when failures in this run pass the threshold (non-blocking).
    pub on_failures: Option<FailureAlarm>,
}

struct Coordinator<S: MoveService> {
    st: RunState,
    exec: Executor<S>,
    jobs: JoinSet<Outcome>,
    cfg: config::Run,
    migration: config::Migration,
    timezone: jiff::tz::TimeZone,
    clock: Clock,
    writer: WriterHandle,
    options: RunOptions,
    endpoint_known: bool,
    in_flight_cap: u64,
    fatal: Option<String>,
    completed_this_run: u64,
    failed_this_run: u64,
    rescheduled: u64,
    progress: Option<watch::Sender<Snapshot>>,
    on_failures: Option<FailureAlarm>,
}

/// Whether `now` falls in a daily local-time window (which may cross midnight) in `tz`.
fn in_local_window(window: config::Window, now: Timestamp, tz: &jiff::tz::TimeZone) -> bool {
    let t = now.to_zoned(tz.clone()).time();
    if window.crosses_midnight() {
        t >= window.start || t < window.end
    } else {
        t >= window.start && t < window.end
    }
}

/// How long to wait before asking again about a request that has not replicated yet.
const LAG_RETRY: SignedDuration = SignedDuration::from_mins(2);

/// A transition; [`Coordinator::transition`] stamps its time.
fn tr(mailbox: i64, to: State, cause: &'static str) -> Transition {
    Transition::new(mailbox, to, cause, 0)
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// The lifecycle state a service status means.
fn state_for(status: &MoveStatus) -> Option<State> {
    Some(match status {
        MoveStatus::Queued => State::Submitted,
        MoveStatus::InProgress | MoveStatus::Retrying => State::Syncing,
        MoveStatus::Synced | MoveStatus::AutoSuspended => State::Synced,
        MoveStatus::Suspended => State::Held,
        MoveStatus::CompletionInProgress => State::Completing,
        MoveStatus::Completed => State::Completed,
        MoveStatus::CompletedWithWarning | MoveStatus::CompletedWithSkippedItems => {
            State::CompletedWithWarning
        }
        MoveStatus::Failed | MoveStatus::Other(_) => return None,
    })
}

/// Transient or permanent, from what the service says of a failed move.
fn failure_class(stats: &MoveStatistics) -> FailureClass {
    let kind = stats.failure_type.as_deref().unwrap_or("");
    if kind.contains("Permanent") || stats.message.contains("PermanentException") {
        FailureClass::Permanent
    } else {
        FailureClass::Transient
    }
}

pub async fn run<S: MoveService>(ctx: RunContext<S>) -> Result<RunSummary, EngineError> {
    let store = Store::open_read_only(&ctx.store_path)?;
    let waves = store.waves()?;
    let scope = ctx.options.scope.clone();
    if let Some(names) = &scope
        && let Some(missing) = names.iter().find(|n| !waves.iter().any(|w| &w.name == *n))
    {
        return Err(EngineError::Fatal(format!(
            "no wave {missing} in the state database (see `mailwave status`)"
        )));
    }
    let mut load_error = None;
    let st = RunState::load(waves, scope.as_deref(), |f| {
        if let Err(e) = store.for_each_mailbox(f) {
            load_error = Some(e);
        }
    });
    if let Some(e) = load_error {
        return Err(e.into());
    }
    let intents = store.open_intents()?;
    drop(store);

    let limiter = Arc::new(limits::limiter(
        ctx.clock,
        ctx.run.requests_per_second,
        ctx.run.burst,
    ));
    let mut c = Coordinator {
        st,
        exec: Executor {
            service: ctx.service,
            clock: ctx.clock,
            limiter,
            gate: Arc::new(Gate::default()),
            metrics: Arc::new(Metrics::default()),
        },
        jobs: JoinSet::new(),
        in_flight_cap: ctx.run.max_in_flight,
        cfg: ctx.run,
        migration: ctx.migration,
        timezone: ctx.timezone,
        clock: ctx.clock,
        writer: ctx.writer,
        options: ctx.options,
        endpoint_known: false,
        fatal: None,
        completed_this_run: 0,
        failed_this_run: 0,
        rescheduled: 0,
        progress: ctx.progress,
        on_failures: ctx.on_failures,
    };
    let started = c.clock.now();
    c.adopt_open_intents(intents, started).await?;
    let outcome = c.main_loop(ctx.stop).await;
    c.writer.flush().await?;
    let ended = c.clock.now();
    c.publish();
    Ok(c.summary(outcome, started, ended))
}

impl<S: MoveService> Coordinator<S> {
    /// Open create intents from an earlier run: their mailboxes wait (busy) until their wave's batch
    /// has been listed, and nothing is created before that.
    async fn adopt_open_intents(
        &mut self,
        intents: Vec<crate::store::run_view::OpenIntent>,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let indices = self.st.indices_of(intents.iter().map(|i| i.mailbox_id));
        for intent in intents {
            let Some(&idx) = indices.get(&intent.mailbox_id) else {
                continue; // outside this run's scope: a later run reconciles it
            };
            if intent.operation != "create" {
                self.writer
                    .submit(Command::Resolve {
                        intent: intent.id,
                        outcome: "superseded".into(),
                        at: ms(now),
                    })
                    .await?;
                continue;
            }
            let w = self.st.mailboxes[idx as usize].wave;
            self.st.mailboxes[idx as usize].busy = true;
            self.st
                .intents
                .insert(idx, (intent.id, intent.correlation, intent.created_at));
            let wave = &mut self.st.waves[w as usize];
            wave.reconciling = true;
            wave.next_poll = Some(now);
        }
        if !self.st.intents.is_empty() {
            tracing::info!(
                open = self.st.intents.len(),
                "reconciling creates left open by an earlier run"
            );
        }
        Ok(())
    }

    fn reconciling(&self) -> bool {
        self.st.waves.iter().any(|w| w.reconciling)
    }

    async fn main_loop(&mut self, mut stop: watch::Receiver<bool>) -> String {
        let mut stop_watch = true;
        self.dispatch(Job::Endpoint {
            name: self.migration.source_endpoint.clone(),
        });
        let now = self.clock.now();
        for w in 0..self.st.waves.len() {
            if self.st.waves[w].in_scope
                && self.st.waves[w].prestage_start <= now
                && self.st.waves[w].active() > 0
            {
                self.st.waves[w].next_poll.get_or_insert(now);
            }
        }
        loop {
            let now = self.clock.now();
            let stopping = *stop.borrow()
                || self.fatal.is_some()
                || self.options.until.is_some_and(|u| now >= u);
            let mut dispatched = 0;
            if !stopping {
                dispatched = self.plan(now).await;
            }
            if self.jobs.is_empty() {
                if stopping {
                    break;
                }
                if self.options.once && dispatched == 0 {
                    return "once".into();
                }
                if self.st.unfinished() == 0 && self.st.intents.is_empty() {
                    return "finished".into();
                }
            }
            self.publish();
            let wake = self.next_wake(now);
            tokio::select! {
                Some(joined) = self.jobs.join_next(), if !self.jobs.is_empty() => {
                    self.handle_joined(joined).await;
                    while let Some(joined) = self.jobs.try_join_next() {
                        self.handle_joined(joined).await;
                    }
                }
                _ = self.clock.sleep_until(wake) => {}
                changed = stop.changed(), if stop_watch => {
                    if changed.is_err() {
                        stop_watch = false;
                    }
                }
            }
        }
        // Stopping: let calls in flight finish (bounded), recording what they did.
        let grace = tokio::time::sleep(self.cfg.stop_grace);
        tokio::pin!(grace);
        while !self.jobs.is_empty() {
            tokio::select! {
                Some(joined) = self.jobs.join_next() => self.handle_joined(joined).await,
                _ = &mut grace => {
                    tracing::warn!(left = self.jobs.len(), "stop grace ran out; abandoning calls in flight (their intents stay open for the next run)");
                    self.jobs.abort_all();
                    break;
                }
            }
        }
        if let Some(f) = &self.fatal {
            tracing::error!(error = %f, "run stopped on a fatal error");
            "fatal".into()
        } else if *stop.borrow() {
            "stopped".into()
        } else {
            "until".into()
        }
    }

    async fn handle_joined(&mut self, joined: Result<Outcome, tokio::task::JoinError>) {
        match joined {
            Ok(outcome) => {
                if let Err(e) = self.handle(outcome).await {
                    self.fatal.get_or_insert(format!("state database: {e}"));
                }
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => {
                self.fatal.get_or_insert(format!("a worker failed: {e}"));
            }
        }
    }

    fn dispatch(&mut self, job: Job) {
        let exec = self.exec.clone();
        self.jobs.spawn(exec.run(job));
    }

    fn slots(&self) -> usize {
        self.cfg.max_parallel_calls.saturating_sub(self.jobs.len())
    }

    /// When something next becomes due. With every call slot busy nothing new can start, so the next
    /// thing that matters is a job finishing (which wakes the loop by itself).
    fn next_wake(&self, now: Timestamp) -> Timestamp {
        let mut wake = now + SignedDuration::from_hours(6);
        if self.slots() == 0 {
            return self
                .options
                .until
                .map_or(wake, |u| wake.min(u))
                .max(now + SignedDuration::from_millis(1));
        }
        for w in self.st.waves.iter().filter(|w| w.in_scope) {
            if let Some(p) = w.next_poll.filter(|_| !w.listing) {
                wake = wake.min(p);
            }
            if w.prestage_start > now && w.count(State::Planned) > 0 {
                wake = wake.min(w.prestage_start);
            }
            if !w.pushed && w.unready() > 0 {
                wake = wake.min(self.push_time(w));
            }
        }
        if let Some(std::cmp::Reverse((due, _))) = self.st.resumes.peek() {
            wake = wake.min(Timestamp::from_millisecond(*due).unwrap_or(now));
        }
        if let Some(std::cmp::Reverse((due, _, _))) = self.st.later.peek() {
            wake = wake.min(Timestamp::from_millisecond(*due).unwrap_or(now));
        }
        if let Some(u) = self.options.until {
            wake = wake.min(u);
        }
        wake.max(now + SignedDuration::from_millis(1))
    }

    /// When the completer moves a wave's unready mailboxes on: the margin before the window closes,
    /// earlier when there are many to move at the request rate.
    fn push_time(&self, w: &super::state::Wave) -> Timestamp {
        let calls = w.unready() as f64 / self.cfg.requests_per_second;
        w.window_end - self.cfg.cutover_margin - SignedDuration::from_secs_f64(calls)
    }

    fn in_prestage_window(&self, now: Timestamp) -> bool {
        self.cfg
            .prestage_window
            .is_none_or(|w| in_local_window(w, now, &self.timezone))
    }

    /// Dispatches a call for each mailbox at the front of a queue while call slots are free.
    fn drain(
        &mut self,
        queue: fn(&mut RunState) -> &mut std::collections::VecDeque<u32>,
        job: fn(u32, String, Option<Timestamp>) -> Job,
    ) {
        while self.slots() > 0
            && let Some(idx) = queue(&mut self.st).pop_front()
        {
            let (identity, created_at) = self.st.identity(idx);
            self.dispatch(job(idx, identity, created_at));
        }
    }

    /// Decides and dispatches what is due now; returns how many jobs it started.
    async fn plan(&mut self, now: Timestamp) -> usize {
        let before = self.jobs.len();
        if !self.endpoint_known {
            return 0;
        }
        // Completer: windows about to close.
        for w in 0..self.st.waves.len() {
            let wave = &self.st.waves[w];
            if wave.in_scope
                && !wave.pushed
                && now >= self.push_time(wave)
                && let Err(e) = self.push_wave(w as u32, now).await
            {
                self.fatal.get_or_insert(format!("state database: {e}"));
            }
        }
        while let Some(&std::cmp::Reverse((due, idx, to))) = self.st.later.peek()
            && due <= ms(now)
        {
            self.st.later.pop();
            self.st.reschedules.push_back((idx, to));
        }
        while self.slots() > 0
            && let Some((idx, to)) = self.st.reschedules.pop_front()
        {
            let m = &self.st.mailboxes[idx as usize];
            let (batch, complete_after) = match to {
                u32::MAX => {
                    let w = &self.st.waves[m.wave as usize];
                    (w.name.clone(), now + SignedDuration::from_hours(24 * 365))
                }
                to => {
                    let w = &self.st.waves[to as usize];
                    (w.name.clone(), w.window_start)
                }
            };
            let job = Job::Reschedule {
                mailbox: idx,
                to_wave: to,
                identity: self.st.address(idx).to_string(),
                batch,
                complete_after,
                created_at: self.st.created_at(idx),
            };
            self.dispatch(job);
        }
        self.drain(
            |st| &mut st.approvals,
            |mailbox, identity, created_at| Job::Approve {
                mailbox,
                identity,
                created_at,
            },
        );
        self.drain(
            |st| &mut st.get_queue,
            |mailbox, identity, created_at| Job::Get {
                mailbox,
                identity,
                created_at,
            },
        );
        self.drain(
            |st| &mut st.stats_queue,
            |mailbox, identity, created_at| Job::Stats {
                mailbox,
                identity,
                created_at,
            },
        );
        while self.slots() > 0
            && let Some(&std::cmp::Reverse((due, idx))) = self.st.resumes.peek()
            && due <= ms(now)
        {
            self.st.resumes.pop();
            let m = &mut self.st.mailboxes[idx as usize];
            if m.state != State::Failed || m.busy {
                continue;
            }
            m.busy = true;
            let identity = self.st.address(idx).to_string();
            let created_at = self.st.created_at(idx);
            self.dispatch(Job::Resume {
                mailbox: idx,
                identity,
                created_at,
            });
        }
        // Poller.
        for w in 0..self.st.waves.len() {
            if self.slots() == 0 {
                break;
            }
            let wave = &mut self.st.waves[w];
            if wave.in_scope && !wave.listing && wave.next_poll.is_some_and(|p| p <= now) {
                wave.listing = true;
                wave.next_poll = None;
                // Pre-staged and far from its window, a wave only needs watching for failures.
                let copying = wave.count(State::Submitted) + wave.count(State::Syncing);
                let near = now >= wave.window_start - self.cfg.cutover_poll * 2;
                let only = (copying == 0 && !near && !wave.reconciling).then_some("Failed");
                let batch = wave.name.clone();
                self.dispatch(Job::List {
                    wave: w as u32,
                    batch,
                    only,
                });
            }
        }
        // Submitter: nothing new while earlier creates are being reconciled.
        if !self.reconciling()
            && let Err(e) = self.submit(now).await
        {
            self.fatal.get_or_insert(format!("state database: {e}"));
        }
        self.jobs.len() - before
    }

    /// The submitter: picks the next mailboxes of every due wave, records their create intents in
    /// one commit, then dispatches the creates.
    async fn submit(&mut self, now: Timestamp) -> Result<(), StoreError> {
        if !self.in_prestage_window(now) {
            return Ok(());
        }
        let mut picked: Vec<(u32, NewMove)> = Vec::new();
        let room = self.slots();
        // Creates are paced by the rate limit, so there is no hurry to fill a single free slot:
        // wait until a handful are free and record their intents in one commit.
        let handful = (self.cfg.max_parallel_calls / 4).clamp(1, 32);
        if room < handful && self.st.creating > 0 {
            return Ok(());
        }
        'waves: for w in 0..self.st.waves.len() {
            let wave = &self.st.waves[w];
            if !wave.in_scope
                || wave.prestage_start > now
                || wave.pushed
                || wave.count(State::Planned) == 0
            {
                continue;
            }
            loop {
                if picked.len() >= room
                    || self.st.in_flight() + picked.len() as u64 >= self.in_flight_cap
                {
                    break 'waves;
                }
                let wave = &mut self.st.waves[w];
                let Some(&idx) = wave.members.get(wave.submit_cursor) else {
                    break;
                };
                wave.submit_cursor += 1;
                let m = &mut self.st.mailboxes[idx as usize];
                if m.state != State::Planned || m.busy || m.wave != w as u32 {
                    continue;
                }
                m.busy = true;
                let wave = &self.st.waves[w];
                picked.push((
                    idx,
                    NewMove {
                        identity: self.st.address(idx).to_string(),
                        batch_name: wave.name.clone(),
                        complete_after: wave.window_start,
                        remote_host_name: self.migration.remote_host_name.clone(),
                        target_delivery_domain: self.migration.target_delivery_domain.clone(),
                        source_endpoint: self.migration.source_endpoint.clone(),
                    },
                ));
            }
        }
        if picked.is_empty() {
            return Ok(());
        }
        // The intents must be on disk before the calls that create.
        let calls: Vec<(i64, [u8; 16])> = picked
            .iter()
            .map(|(idx, _)| {
                (
                    self.st.mailboxes[*idx as usize].id,
                    *uuid::Uuid::new_v4().as_bytes(),
                )
            })
            .collect();
        let reply = self
            .writer
            .apply(Command::Intents {
                operation: "create",
                calls: calls.clone(),
                at: ms(now),
            })
            .await;
        let ids = match reply {
            Ok(crate::store::writer::Reply::Intents(ids)) => ids,
            Ok(_) | Err(_) => {
                for (idx, _) in &picked {
                    self.st.mailboxes[*idx as usize].busy = false;
                }
                let e = reply
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "unexpected reply".into());
                self.fatal
                    .get_or_insert(format!("could not record create intents: {e}"));
                return Ok(());
            }
        };
        for (((idx, request), (_, correlation)), intent) in picked.into_iter().zip(calls).zip(ids) {
            self.st.creating += 1;
            self.dispatch(Job::Create {
                mailbox: idx,
                intent,
                correlation,
                request,
            });
        }
        Ok(())
    }

    /// The completer at a window's close: every mailbox not cutting over moves to the next wave.
    async fn push_wave(&mut self, w: u32, now: Timestamp) -> Result<(), StoreError> {
        self.st.waves[w as usize].pushed = true;
        let next = self.st.next_wave(w, now + self.cfg.cutover_margin);
        let from = self.st.waves[w as usize].name.clone();
        let members: Vec<u32> = self.st.waves[w as usize]
            .members
            .iter()
            .copied()
            .filter(|&i| self.st.mailboxes[i as usize].wave == w)
            .collect();
        let mut moved = 0;
        for idx in members {
            let m = &self.st.mailboxes[idx as usize];
            match m.state {
                State::Planned if !m.busy => {
                    if let Some(to) = next {
                        let detail = format!(
                            "not submitted before {from} closed; moved to {}",
                            self.st.waves[to as usize].name
                        );
                        self.writer
                            .submit(Command::Reschedule {
                                mailbox: m.id,
                                wave: self.st.waves[to as usize].db_id,
                                detail,
                                at: ms(now),
                            })
                            .await?;
                        self.st.move_to_wave(idx, to);
                        self.rescheduled += 1;
                    } else {
                        let t = tr(m.id, State::Held, "cutover").detail(format!(
                            "missed {from} and no later wave is planned: re-plan"
                        ));
                        self.transition(idx, t, now).await?;
                    }
                    moved += 1;
                }
                // A permanent failure or one waiting for approval stays where it is, for the
                // operator; a transient one will be resumed and must not cut over late.
                State::Submitted | State::Syncing | State::Synced => {
                    self.st
                        .reschedules
                        .push_back((idx, next.unwrap_or(u32::MAX)));
                    self.st.mailboxes[idx as usize].busy = true;
                    moved += 1;
                }
                State::Failed if m.class == Some(FailureClass::Transient) && !m.busy => {
                    self.st
                        .reschedules
                        .push_back((idx, next.unwrap_or(u32::MAX)));
                    self.st.mailboxes[idx as usize].busy = true;
                    moved += 1;
                }
                _ => {}
            }
        }
        if moved > 0 {
            tracing::info!(wave = %from, mailboxes = moved, "window closing: moving mailboxes not yet cut over to the next wave");
        }
        Ok(())
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
        let t = Transition { at: ms(now), ..t };
        self.writer.submit(Command::Transition(t)).await?;
        let from = self.st.mailboxes[idx as usize].state;
        self.st.set_state(idx, to);
        if to == State::Failed {
            self.st.mailboxes[idx as usize].class = class;
        }
        if to.is_terminal() && !from.is_terminal() {
            self.completed_this_run += 1;
        }
        if to == State::Failed {
            self.failed_this_run += 1;
            if let Some((threshold, _)) = &self.on_failures
                && *threshold > 0
                && self.failed_this_run >= *threshold
                && let Some((_, notify)) = self.on_failures.take()
            {
                notify(self.failed_this_run);
            }
        }
        // A mailbox of a wave whose window has closed must not keep that window's cut-over.
        let w = self.st.mailboxes[idx as usize].wave;
        if self.st.waves[w as usize].pushed
            && matches!(to, State::Submitted | State::Syncing | State::Synced)
            && !self.st.mailboxes[idx as usize].busy
        {
            let next = self.st.next_wave(w, now + self.cfg.cutover_margin);
            self.st
                .reschedules
                .push_back((idx, next.unwrap_or(u32::MAX)));
            self.st.mailboxes[idx as usize].busy = true;
        }
        Ok(())
    }

    /// Moves a mailbox to the state its request's service status means, by legal steps.
    async fn follow(
        &mut self,
        idx: u32,
        req: &MoveRequest,
        cause: &'static str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let m = &self.st.mailboxes[idx as usize];
        if m.guid.get().is_none() {
            let guid = parse_guid(&req.exchange_guid);
            self.st.mailboxes[idx as usize].guid = Guid::of(guid);
        }
        let m = &self.st.mailboxes[idx as usize];
        let (id, current) = (m.id, m.state);
        if matches!(req.status, MoveStatus::Failed) {
            if current != State::Failed && !m.busy {
                self.st.mailboxes[idx as usize].busy = true;
                self.st.stats_queue.push_back(idx);
            }
            return Ok(());
        }
        let Some(target) = state_for(&req.status) else {
            return Ok(());
        };
        if target == current || current == State::Held {
            return Ok(());
        }
        // A verdict of ours (permanent, needs approval) stands while the service only keeps the move
        // waiting; real progress (the operator resumed or approved it by hand) moves it on.
        if current == State::Failed
            && m.class != Some(FailureClass::Transient)
            && matches!(target, State::Synced | State::Submitted)
        {
            return Ok(());
        }
        if current == State::Planned {
            let t = tr(id, State::Submitted, cause).request_id(req.exchange_guid.clone());
            self.transition(idx, t, now).await?;
            if target == State::Submitted {
                return Ok(());
            }
        }
        let current = self.st.mailboxes[idx as usize].state;
        if current.can_become(target) {
            let mut t = tr(id, target, cause);
            if target == State::Held {
                t = t.detail("suspended on the service");
            }
            if !req.exchange_guid.is_empty() {
                t = t.request_id(req.exchange_guid.clone());
            }
            self.transition(idx, t, now).await?;
        }
        Ok(())
    }

    async fn resolve(&mut self, idx: u32, outcome: &str, now: Timestamp) -> Result<(), StoreError> {
        if let Some((intent, _, _)) = self.st.intents.remove(&idx) {
            self.writer
                .submit(Command::Resolve {
                    intent,
                    outcome: outcome.into(),
                    at: ms(now),
                })
                .await?;
        }
        Ok(())
    }

    fn schedule_poll(&mut self, w: u32, now: Timestamp) {
        let cfg = (self.cfg.prestage_poll, self.cfg.cutover_poll);
        let wave = &mut self.st.waves[w as usize];
        if wave.active() == 0 && !wave.reconciling {
            wave.next_poll = None;
            return;
        }
        let near = now >= wave.window_start - cfg.1 * 2 && now < wave.window_end + cfg.1 * 6;
        let copying =
            wave.count(State::Submitted) + wave.count(State::Syncing) + wave.count(State::Failed);
        let next = if near || wave.reconciling {
            now + cfg.1
        } else if copying == 0 && wave.window_start - cfg.1 * 2 > now {
            // Everything is synced and waiting: look again shortly before the cut-over.
            (now + cfg.0 * 4).min(wave.window_start - cfg.1 * 2)
        } else {
            now + cfg.0
        };
        wave.next_poll = Some(wave.next_poll.map_or(next, |p| p.min(next)));
    }

    fn service_failure(&mut self, e: &ServiceError) -> bool {
        match e {
            ServiceError::Auth { message } => {
                self.fatal
                    .get_or_insert(format!("Exchange refused the app's credentials: {message}"));
                true
            }
            ServiceError::Permission { cmdlet } => {
                self.fatal.get_or_insert(format!(
                    "Exchange refused {cmdlet}: give the app an Exchange role that includes the move cmdlets"
                ));
                true
            }
            _ => false,
        }
    }

    async fn handle(&mut self, outcome: Outcome) -> Result<(), StoreError> {
        let now = self.clock.now();
        match outcome {
            Outcome::Endpoint(result) => {
                self.endpoint_known = true;
                match result {
                    Ok(limits) => {
                        self.in_flight_cap = self
                            .cfg
                            .max_in_flight
                            .min(2 * limits.max_concurrent_migrations as u64)
                            .max(1);
                        tracing::info!(
                            max_concurrent_migrations = limits.max_concurrent_migrations,
                            in_flight_cap = self.in_flight_cap,
                            "migration endpoint read"
                        );
                    }
                    Err(e) => {
                        if !self.service_failure(&e) {
                            self.in_flight_cap = self.cfg.max_in_flight.min(200);
                            tracing::warn!(error = %e, cap = self.in_flight_cap, "could not read the migration endpoint; assuming its documented default");
                        }
                    }
                }
            }
            Outcome::Created {
                mailbox: idx,
                intent,
                result,
            } => {
                self.st.creating -= 1;
                self.st.mailboxes[idx as usize].busy = false;
                let (intent_id, correlation) = intent;
                self.st.intents.insert(idx, (intent_id, correlation, now));
                let id = self.st.mailboxes[idx as usize].id;
                let w = self.st.mailboxes[idx as usize].wave;
                match result {
                    Ok(req) => {
                        let m = &mut self.st.mailboxes[idx as usize];
                        m.guid = Guid::of(parse_guid(&req.exchange_guid));
                        m.submitted_at = ms(now);
                        let t = tr(id, State::Submitted, "submit")
                            .correlation(correlation)
                            .request_id(req.exchange_guid.clone());
                        self.transition(idx, t, now).await?;
                        self.resolve(idx, "created", now).await?;
                    }
                    Err(ServiceError::AlreadyExists { completed, message }) => {
                        self.st.mailboxes[idx as usize].submitted_at = ms(now);
                        let t = tr(id, State::Submitted, "adopt")
                            .correlation(correlation)
                            .detail(message.clone());
                        self.transition(idx, t, now).await?;
                        if completed {
                            let t = tr(id, State::Completed, "adopt")
                                .detail("already moved: the service holds a completed request");
                            self.transition(idx, t, now).await?;
                        } else {
                            // Bring it into this wave's batch and cut-over, wherever it was made
                            // (once it is readable: it may have been created moments ago).
                            self.st
                                .later
                                .push(std::cmp::Reverse((ms(now + LAG_RETRY), idx, w)));
                            self.st.mailboxes[idx as usize].busy = true;
                        }
                        self.resolve(idx, "adopted: a request already existed", now)
                            .await?;
                    }
                    Err(e) if self.service_failure(&e) => {
                        self.resolve(idx, "not sent: refused", now).await?;
                    }
                    Err(e @ (ServiceError::Transient { .. } | ServiceError::Throttled { .. })) => {
                        // The request may or may not exist (a 504 comes after the work is done):
                        // reconcile by listing the batch before anything is sent again.
                        tracing::warn!(mailbox = %self.st.address(idx), error = %e, "create outcome unknown; reconciling");
                        self.st.mailboxes[idx as usize].busy = true;
                        let wave = &mut self.st.waves[w as usize];
                        wave.reconciling = true;
                        wave.next_poll = Some(now + SignedDuration::from_secs(60));
                    }
                    Err(e) => {
                        let t = tr(id, State::Failed, "submit")
                            .correlation(correlation)
                            .failure(FailureClass::Permanent, e.to_string());
                        self.transition(idx, t, now).await?;
                        self.resolve(idx, "failed", now).await?;
                    }
                }
                if self.st.waves[w as usize].next_poll.is_none() {
                    self.schedule_poll(w, now);
                }
            }
            Outcome::Listed {
                wave: w,
                filtered,
                result,
            } => {
                self.st.waves[w as usize].listing = false;
                match result {
                    Ok(requests) if filtered => {
                        for req in &requests {
                            let m = &self.st.mailboxes;
                            let found = parse_guid(&req.exchange_guid).and_then(|g| {
                                self.st.waves[w as usize]
                                    .members
                                    .iter()
                                    .copied()
                                    .find(|&i| m[i as usize].guid.get() == Some(g))
                            });
                            if let Some(idx) = found
                                && !self.st.mailboxes[idx as usize].busy
                            {
                                self.follow(idx, req, "poll", now).await?;
                            }
                        }
                        self.schedule_poll(w, now);
                    }
                    Ok(requests) => self.reconcile_listing(w, requests, now).await?,
                    Err(e) => {
                        if !self.service_failure(&e) {
                            tracing::warn!(wave = %self.st.waves[w as usize].name, error = %e, "listing failed; trying again");
                            self.st.waves[w as usize].next_poll = Some(now + self.cfg.cutover_poll);
                        }
                    }
                }
            }
            Outcome::Got {
                mailbox: idx,
                result,
            } => {
                self.st.mailboxes[idx as usize].busy = false;
                match result {
                    Ok(req) => {
                        let w = self.st.mailboxes[idx as usize].wave;
                        if req.batch_name != self.st.waves[w as usize].name {
                            self.st.reschedules.push_back((idx, w));
                            self.st.mailboxes[idx as usize].busy = true;
                        }
                        self.follow(idx, &req, "poll", now).await?;
                    }
                    Err(ServiceError::NotFound { .. }) => self.request_gone(idx, now).await?,
                    Err(e) => {
                        self.service_failure(&e);
                    }
                }
            }
            Outcome::Stats {
                mailbox: idx,
                result,
            } => {
                self.st.mailboxes[idx as usize].busy = false;
                match result {
                    Ok(stats) => self.handle_statistics(idx, stats, now).await?,
                    Err(ServiceError::NotFound { .. }) => self.request_gone(idx, now).await?,
                    Err(e) => {
                        self.service_failure(&e);
                    }
                }
            }
            Outcome::Resumed {
                mailbox: idx,
                result,
                correlation,
            } => {
                self.st.mailboxes[idx as usize].busy = false;
                match result {
                    Ok(()) => {
                        self.st.mailboxes[idx as usize].attempts += 1;
                        let id = self.st.mailboxes[idx as usize].id;
                        let t = tr(id, State::Syncing, "resume").correlation(correlation);
                        self.transition(idx, t, now).await?;
                        let w = self.st.mailboxes[idx as usize].wave;
                        self.schedule_poll(w, now);
                    }
                    Err(ServiceError::NotFound { .. }) => self.request_gone(idx, now).await?,
                    Err(e) => {
                        if !self.service_failure(&e) {
                            tracing::debug!(error = %e, "resume refused; the next listing will tell where it stands");
                        }
                    }
                }
            }
            Outcome::Approved {
                mailbox: idx,
                result,
            } => {
                self.st.mailboxes[idx as usize].busy = false;
                let id = self.st.mailboxes[idx as usize].id;
                match result {
                    Ok(()) => {
                        self.writer
                            .submit(Command::Note {
                                mailbox: id,
                                cause: "approve",
                                detail:
                                    "skipped items approved (data consistency score Investigate)"
                                        .into(),
                                at: ms(now),
                                correlation: None,
                            })
                            .await?;
                    }
                    Err(e) if !self.service_failure(&e) => {
                        if self.st.mailboxes[idx as usize].state == State::Synced {
                            let t = tr(id, State::Failed, "approve").failure(
                                FailureClass::NeedsApproval,
                                format!("approval refused: {e}"),
                            );
                            self.transition(idx, t, now).await?;
                        }
                    }
                    Err(_) => {}
                }
            }
            Outcome::Rescheduled {
                mailbox: idx,
                to_wave,
                result,
            } => {
                self.st.mailboxes[idx as usize].busy = false;
                let m = &self.st.mailboxes[idx as usize];
                let (id, from_wave, state) = (m.id, m.wave, m.state);
                match result {
                    Ok(()) if to_wave == u32::MAX => {
                        let from = self.st.waves[from_wave as usize].name.clone();
                        let t = tr(id, State::Held, "cutover").detail(format!(
                            "missed {from} and no later wave is planned: re-plan"
                        ));
                        if state.can_become(State::Held) {
                            self.transition(idx, t, now).await?;
                        }
                    }
                    Ok(()) if to_wave != from_wave => {
                        let (from, to) = (
                            &self.st.waves[from_wave as usize].name,
                            &self.st.waves[to_wave as usize].name,
                        );
                        let detail = format!(
                            "not cut over in {from} ({state} when its window closed); cut-over moved to {to}"
                        );
                        self.writer
                            .submit(Command::Reschedule {
                                mailbox: id,
                                wave: self.st.waves[to_wave as usize].db_id,
                                detail,
                                at: ms(now),
                            })
                            .await?;
                        self.st.move_to_wave(idx, to_wave);
                        self.rescheduled += 1;
                        self.schedule_poll(to_wave, now);
                    }
                    Ok(()) => {}
                    Err(ServiceError::NotYetReplicated { .. }) => {
                        self.st
                            .later
                            .push(std::cmp::Reverse((ms(now + LAG_RETRY), idx, to_wave)));
                        self.st.mailboxes[idx as usize].busy = true;
                    }
                    Err(ServiceError::NotFound { .. }) => self.request_gone(idx, now).await?,
                    Err(ServiceError::BadRequest { message }) if message.contains("completing") => {
                        // It started its cut-over inside the window after all.
                    }
                    Err(e) if self.service_failure(&e) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "could not move a cut-over; trying again");
                        self.st.reschedules.push_back((idx, to_wave));
                        self.st.mailboxes[idx as usize].busy = true;
                    }
                }
            }
        }
        Ok(())
    }

    /// The service no longer has this mailbox's request.
    async fn request_gone(&mut self, idx: u32, now: Timestamp) -> Result<(), StoreError> {
        let m = &self.st.mailboxes[idx as usize];
        let (id, state, w) = (m.id, m.state, m.wave);
        match state {
            State::Submitted if m.attempts as u32 > self.cfg.resume_attempts + 3 => {
                let t = tr(id, State::Failed, "reconcile").failure(
                    FailureClass::Permanent,
                    format!("the move request keeps disappearing from the service ({} submissions); look at it by hand", m.attempts),
                );
                self.transition(idx, t, now).await?;
            }
            State::Submitted => {
                let t = tr(id, State::Planned, "reconcile")
                    .detail("no move request on the service: will be created again");
                self.transition(idx, t, now).await?;
                self.st.mailboxes[idx as usize].guid = Guid::default();
                self.st.waves[w as usize].submit_cursor = 0;
            }
            State::Syncing | State::Synced | State::Held => {
                let t = tr(id, State::Failed, "reconcile").failure(
                    FailureClass::Permanent,
                    "the move request is no longer on the service (removed by hand?); reset the mailbox to create it again",
                );
                self.transition(idx, t, now).await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn handle_statistics(
        &mut self,
        idx: u32,
        stats: MoveStatistics,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let m = &self.st.mailboxes[idx as usize];
        let (id, state, attempts) = (m.id, m.state, m.attempts);
        match stats.request.status {
            MoveStatus::Failed => {
                let class = failure_class(&stats);
                let message = format!(
                    "{}{}",
                    stats
                        .failure_type
                        .as_deref()
                        .map(|f| format!("{f}: "))
                        .unwrap_or_default(),
                    stats.message
                );
                if state != State::Failed {
                    if !state.can_become(State::Failed) {
                        return Ok(());
                    }
                    let t = tr(id, State::Failed, "poll").failure(class, message.clone());
                    self.transition(idx, t, now).await?;
                }
                let resumes = attempts.saturating_sub(1) as u32;
                if class == FailureClass::Transient && resumes < self.cfg.resume_attempts {
                    let wait = self.cfg.resume_backoff * 2i32.pow(resumes.min(10));
                    self.st
                        .resumes
                        .push(std::cmp::Reverse((ms(now + wait), idx)));
                } else if class == FailureClass::Transient {
                    self.writer
                        .submit(Command::Reclassify {
                            mailbox: id,
                            class: FailureClass::Permanent,
                            message: format!("gave up after {resumes} resumes: {message}"),
                            at: ms(now),
                        })
                        .await?;
                    self.st.mailboxes[idx as usize].class = Some(FailureClass::Permanent);
                }
            }
            MoveStatus::Synced => {
                let score = stats.data_consistency_score.as_deref().unwrap_or("Perfect");
                let approve = match (score, self.cfg.dcs_approval) {
                    ("Investigate", DcsApproval::Investigate) => Some(true),
                    ("Investigate", _) => Some(false),
                    ("Good", DcsApproval::Never) if stats.message.contains("approve") => {
                        Some(false)
                    }
                    ("Good", _) if stats.message.contains("approve") => Some(true),
                    ("Poor", _) => {
                        let t = tr(id, State::Failed, "poll").failure(
                            FailureClass::Permanent,
                            format!(
                                "data consistency score Poor: the move cannot complete. {}",
                                stats.message
                            ),
                        );
                        self.transition(idx, t, now).await?;
                        None
                    }
                    _ => None,
                };
                match approve {
                    Some(true) => {
                        self.st.mailboxes[idx as usize].busy = true;
                        self.st.approvals.push_back(idx);
                    }
                    Some(false) => {
                        let t = tr(id, State::Failed, "poll").failure(
                            FailureClass::NeedsApproval,
                            format!(
                                "data consistency score {score}: review the skipped items, then approve them \
                                 (Set-MoveRequest -SkippedItemApprovalTime) or allow it with run.dcs_approval"
                            ),
                        );
                        self.transition(idx, t, now).await?;
                    }
                    None => {}
                }
            }
            _ => self.follow(idx, &stats.request, "poll", now).await?,
        }
        Ok(())
    }

    /// A wave's batch listing: follow every request, adopt unknown ones, settle open intents, and
    /// look closer at mailboxes whose request is missing.
    async fn reconcile_listing(
        &mut self,
        w: u32,
        requests: Vec<MoveRequest>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let members: Vec<u32> = self.st.waves[w as usize]
            .members
            .iter()
            .copied()
            .filter(|&i| self.st.mailboxes[i as usize].wave == w)
            .collect();
        // Members by request guid and by address, as positions in `members` (so that what this
        // costs follows the wave's size, not the estate's).
        let mut by_guid: HashMap<u128, u32> = HashMap::with_capacity(members.len());
        let mut index = AddressIndex::with_capacity(members.len());
        for (pos, &i) in members.iter().enumerate() {
            let m = &self.st.mailboxes[i as usize];
            if let Some(g) = m.guid.get() {
                by_guid.insert(g, pos as u32);
            }
            let (st, members) = (&self.st, &members);
            index.insert(st.address(i), pos as u32, |p| {
                st.address(members[p as usize])
            });
        }
        let mut seen = vec![false; members.len()];
        let window_open = now >= self.st.waves[w as usize].window_start;
        for req in &requests {
            let found = parse_guid(&req.exchange_guid)
                .and_then(|g| by_guid.get(&g).copied())
                .or_else(|| index.get(&req.identity, |p| self.st.address(members[p as usize])));
            let Some(pos) = found else { continue };
            seen[pos as usize] = true;
            let idx = members[pos as usize];
            if self.st.intents.contains_key(&idx)
                && self.st.mailboxes[idx as usize].state == State::Planned
            {
                self.st.mailboxes[idx as usize].busy = false;
                self.st.mailboxes[idx as usize].submitted_at = ms(now);
                let id = self.st.mailboxes[idx as usize].id;
                let t = tr(id, State::Submitted, "reconcile")
                    .request_id(req.exchange_guid.clone())
                    .detail("found on the service after an interrupted create");
                self.transition(idx, t, now).await?;
                self.resolve(idx, "adopted: found in the batch", now)
                    .await?;
            }
            if self.st.mailboxes[idx as usize].busy {
                continue;
            }
            self.follow(idx, req, "poll", now).await?;
        }
        // Still synced in an open window while the service cuts over nothing more of this wave: those
        // mailboxes are held back (data consistency, approval). Ask about them, once a window.
        let wave = &self.st.waves[w as usize];
        if window_open
            && wave.count(State::Completing) == 0
            && wave.count(State::Synced) > 0
            && now >= wave.window_start + self.cfg.cutover_poll
        {
            for &idx in &members {
                let m = &mut self.st.mailboxes[idx as usize];
                if m.state == State::Synced && !m.checked && !m.busy && m.wave == w {
                    m.checked = true;
                    m.busy = true;
                    self.st.stats_queue.push_back(idx);
                }
            }
        }
        // Requests that should be there but are not.
        for (&idx, _) in members.iter().zip(&seen).filter(|(_, seen)| !**seen) {
            let m = &self.st.mailboxes[idx as usize];
            if let Some(&(_, _, created)) = self.st.intents.get(&idx) {
                if now.duration_since(created) >= REPLICATION_GRACE {
                    self.st.mailboxes[idx as usize].busy = false;
                    self.resolve(idx, "not created: absent from the batch", now)
                        .await?;
                    self.st.waves[w as usize].submit_cursor = 0;
                }
                continue;
            }
            let expected = matches!(
                m.state,
                State::Submitted | State::Syncing | State::Synced | State::Completing
            );
            let recent =
                now.as_millisecond() - m.submitted_at < REPLICATION_GRACE.as_millis() as i64;
            if expected && !recent && !m.busy {
                self.st.mailboxes[idx as usize].busy = true;
                self.st.get_queue.push_back(idx);
            }
        }
        let waiting = self
            .st
            .intents
            .keys()
            .any(|&i| self.st.mailboxes[i as usize].wave == w);
        self.st.waves[w as usize].reconciling = waiting;
        self.schedule_poll(w, now);
        Ok(())
    }

    fn publish(&self) {
        let Some(tx) = &self.progress else { return };
        let now = self.clock.now();
        let current = self
            .st
            .waves
            .iter()
            .filter(|w| w.in_scope && w.window_start <= now + SignedDuration::from_hours(24))
            .rfind(|w| w.active() > 0 || w.window_start <= now)
            .map(|w| w.name.clone());
        let waves_total = self.st.waves.iter().filter(|w| w.in_scope).count();
        let waves_done = self
            .st
            .waves
            .iter()
            .filter(|w| w.in_scope && w.count(State::Planned) == 0 && w.active() == 0)
            .count();
        let _ = tx.send(Snapshot {
            now: Some(now),
            counts: self.st.counts,
            total: self.st.mailboxes.len() as u64,
            in_flight: self.st.in_flight(),
            calls: self.exec.metrics.total_calls(),
            throttled: self
                .exec
                .metrics
                .throttled
                .load(std::sync::atomic::Ordering::Relaxed),
            current_wave: current,
            waves_total,
            waves_done,
        });
    }

    fn summary(&self, outcome: String, started: Timestamp, ended: Timestamp) -> RunSummary {
        let hours = ended.duration_since(started).as_secs_f64() / 3600.0;
        let mut api_calls: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for ((cmdlet, result), n) in self
            .exec
            .metrics
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            *api_calls
                .entry(cmdlet.clone())
                .or_default()
                .entry(result.clone())
                .or_default() += n;
        }
        let total = self.exec.metrics.total_calls();
        RunSummary {
            fatal: self.fatal.clone(),
            outcome,
            started: started.to_string(),
            ended: ended.to_string(),
            simulated_hours: hours,
            mailboxes: self.st.mailboxes.len() as u64,
            states: self.st.counts_by_name(),
            completed_this_run: self.completed_this_run,
            completed_per_hour: if hours > 0.0 {
                self.completed_this_run as f64 / hours
            } else {
                0.0
            },
            rescheduled: self.rescheduled,
            api_calls,
            api_calls_total: total,
            calls_per_completed_mailbox: (self.completed_this_run > 0)
                .then(|| total as f64 / self.completed_this_run as f64),
            throttled: self
                .exec
                .metrics
                .throttled
                .load(std::sync::atomic::Ordering::Relaxed),
            throttled_seconds: self.exec.gate.paused().as_secs_f64(),
            attention: self.st.count(State::Failed) + self.st.count(State::Held),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prestage_window_is_read_in_the_schedules_zone() {
        let window = config::Window::parse("18:00-08:00").unwrap();
        let new_york = jiff::tz::TimeZone::get("America/New_York").unwrap();
        let london = jiff::tz::TimeZone::get("Europe/London").unwrap();
        // 14:00 in New York is 19:00 in London: outside the window there, inside it here.
        let t: Timestamp = "2027-01-05T19:00:00Z".parse().unwrap();
        assert!(!in_local_window(window, t, &new_york));
        assert!(in_local_window(window, t, &london));
        let t: Timestamp = "2027-01-05T02:00:00Z".parse().unwrap(); // 21:00 in New York
        assert!(in_local_window(window, t, &new_york));
        let day = config::Window::parse("09:00-17:00").unwrap();
        assert!(!in_local_window(day, t, &new_york));
    }
}
