//! Operator actions (hold, release, retry, skip, reschedule, approve), applied while the run goes.
//! A command records them in the store and touches a signal file; the run looks at once when the
//! signal changes, and every `run.action_poll` anyway. Each action is checked again here against
//! where the mailbox stands now ([`policy::action_step`]), applied on the service when it must be,
//! and answered in the store: the state change as an event with who and why, and the action marked
//! applied or refused. An action whose call was cut off stays pending: the next run applies it
//! again (every call an action makes can be made twice). A release, retry, reschedule or approve
//! may let the mailbox complete: it gets its window by the cut-over rule first, and is refused
//! when none is left. An action on a request too fresh to be read yet (replication) waits for it.

use std::collections::VecDeque;

use jiff::Timestamp;

use super::super::jobs::{Answer, Cutover, What};
use super::super::policy::{self, ActionCall, ActionStep};
use super::super::state::{Guid, Target, Wave, Work, ms};
use super::cutover::{FAR_AWAY, no_window};
use super::{Coordinator, tr};
use crate::exchange::{MoveService, ServiceError};
use crate::store::actions::{ActionKind, ActionRequest, PendingAction};
use crate::store::writer::Command;
use crate::store::{FailureClass, State, StoreError};

/// An action the run has taken on: the mailbox, and the wave a reschedule or release goes to.
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    pub id: i64,
    pub idx: u32,
    pub request: ActionRequest,
    /// A reschedule's target wave (an index into the run's waves).
    pub target: Option<u32>,
    /// The wave it was asked for: the target, else the mailbox's wave when the run took it on.
    pub asked: u32,
    /// Times the service answered that its request has not replicated yet.
    pub tries: u32,
}

/// The actions waiting to be applied, and what has been seen.
#[derive(Debug, Default)]
pub(crate) struct Actions {
    pub queue: VecDeque<Queued>,
    /// Pending actions already taken on (queued or with a call in flight).
    pub taken: std::collections::HashSet<i64>,
    /// The signal file's mark when it was last read.
    pub mark: Option<String>,
    pub next_look: Option<Timestamp>,
    /// Actions on a request the service cannot read yet, and when to try them again.
    pub replicating: Vec<(Timestamp, Queued)>,
}

impl Actions {
    /// When the next action waiting for replication is tried again.
    pub(super) fn next_replicated(&self) -> Option<Timestamp> {
        self.replicating.iter().map(|(t, _)| *t).min()
    }
}

/// What an action's outcome says while its request replicates (the command shows it).
const REPLICATING: &str = "pending: its move request was made moments ago and the service cannot read it yet (replication); it is tried again until it can";

fn detail(kind: ActionKind, r: &ActionRequest) -> String {
    let mut d = format!("{} by {}", kind.name(), r.by);
    if let Some(reason) = &r.reason {
        d.push_str(": ");
        d.push_str(reason);
    }
    d
}

impl<S: MoveService> Coordinator<S> {
    /// Looks for new actions when the signal changed or `run.action_poll` has passed.
    pub(super) fn look_for_actions(&mut self, now: Timestamp) -> Result<(), StoreError> {
        let mark = crate::store::actions::signal_mark(&self.store_path);
        let due = self.actions.next_look.is_none_or(|t| now >= t);
        if !due && mark == self.actions.mark {
            return Ok(());
        }
        self.actions.mark = mark;
        self.actions.next_look = Some(now + self.cfg.action_poll);
        let pending = self.read(|s| s.pending_actions())?;
        let new: Vec<PendingAction> = pending
            .into_iter()
            .filter(|a| !self.actions.taken.contains(&a.id))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let indices = self.st.indices_of(new.iter().map(|a| a.request.mailbox_id));
        for a in new {
            // A mailbox outside this run's scope waits for a run that has it.
            let Some(&idx) = indices.get(&a.request.mailbox_id) else {
                continue;
            };
            let target = match a.request.target_wave {
                Some(w) => match self.wave_index(w)? {
                    Some(t) => Some(t),
                    None => continue,
                },
                None => None,
            };
            tracing::info!(action = a.request.kind.name(), mailbox = %self.st.address(idx), by = %a.request.by, "operator action");
            self.actions.taken.insert(a.id);
            let asked = target.unwrap_or(self.st.mailboxes[idx as usize].wave);
            self.actions.queue.push_back(Queued {
                id: a.id,
                idx,
                request: a.request,
                target,
                asked,
                tries: 0,
            });
        }
        Ok(())
    }

    /// The run's index of a wave, loading it if the run does not know it yet (a wave made by
    /// `wave reschedule`, or one that held no mailbox when the run began).
    fn wave_index(&mut self, db_id: i64) -> Result<Option<u32>, StoreError> {
        if let Some(w) = self.st.wave_of_db(db_id) {
            return Ok(Some(w));
        }
        let Some(row) = self.read(|s| s.wave_row(db_id))? else {
            return Ok(None);
        };
        // A wave an action moves mailboxes into is worked whatever the scope named.
        self.st.waves.push(Wave::of(row, None));
        Ok(Some(self.st.waves.len() as u32 - 1))
    }

    /// Applies what can be applied now, while call slots are free.
    pub(super) async fn apply_actions(&mut self, now: Timestamp) -> Result<(), StoreError> {
        if self.actions.replicating.iter().any(|(t, _)| *t <= now) {
            let (due, later) = std::mem::take(&mut self.actions.replicating)
                .into_iter()
                .partition(|(t, _)| *t <= now);
            self.actions.replicating = later;
            let due: Vec<(Timestamp, Queued)> = due;
            for (_, a) in due.into_iter().rev() {
                self.actions.queue.push_front(a);
            }
        }
        for _ in 0..self.actions.queue.len() {
            if self.slots() == 0 {
                break;
            }
            let Some(a) = self.actions.queue.pop_front() else {
                break;
            };
            let m = &self.st.mailboxes[a.idx as usize];
            if m.work != Work::Idle && m.work != Work::Waiting {
                self.actions.queue.push_back(a); // busy: after its call
                continue;
            }
            let has_request = m.guid.get().is_some()
                || (m.submitted_at > 0 && !matches!(m.state, State::Planned | State::Skipped));
            let step = policy::action_step(
                a.request.kind,
                m.state,
                m.class,
                has_request,
                self.st.has_open_create(a.idx),
                a.request.force,
            );
            // Whatever may let it complete gets a window by the rule first; with none left, the
            // action is refused and the mailbox stays as it is.
            let may_complete = matches!(
                (a.request.kind, step),
                (ActionKind::Release | ActionKind::Reschedule, _)
                    | (ActionKind::Retry | ActionKind::Approve, ActionStep::Call(_))
                    | (ActionKind::Retry, ActionStep::Store(State::Planned))
            );
            if may_complete
                && !matches!(step, ActionStep::Refuse(_) | ActionStep::Later)
                && let Target::Hold(why) = self.destination(&a, now)
            {
                let own = &self.st.waves[m.wave as usize].name;
                let why = format!("no window is left for it: {}", no_window(own, why));
                self.refuse(&a, &why, now).await?;
                continue;
            }
            match step {
                ActionStep::Later => self.actions.queue.push_back(a),
                ActionStep::Refuse(why) => self.refuse(&a, why, now).await?,
                ActionStep::Store(to) => self.apply_in_store(&a, to, now).await?,
                ActionStep::Call(call) => {
                    let preferred = a.target.unwrap_or(m.wave);
                    let what = match call {
                        // Its batch stays; its cut-over goes a year out.
                        ActionCall::Hold => What::Reschedule(Cutover {
                            to: Target::Wave(m.wave),
                            batch: self.st.waves[m.wave as usize].name.clone(),
                            complete_after: now + FAR_AWAY,
                        }),
                        // A held mailbox rescheduled stays held: its batch moves, its cut-over
                        // stays far away.
                        ActionCall::Move => {
                            let stays_held =
                                m.state == State::Held && a.request.kind == ActionKind::Reschedule;
                            What::Reschedule(self.cutover(a.idx, preferred, stays_held, now))
                        }
                        ActionCall::Remove => What::Remove,
                        ActionCall::Resume => {
                            What::Resume(self.cutover(a.idx, preferred, false, now))
                        }
                        ActionCall::Approve => {
                            What::Approve(self.cutover(a.idx, preferred, false, now))
                        }
                    };
                    let mut job = self.mailbox_job(a.idx, what);
                    job.action = Some((a.id, a.request.kind));
                    self.in_flight_actions.insert(a.id, a);
                    self.dispatch(job);
                }
            }
        }
        Ok(())
    }

    /// Where an action takes a mailbox by the cut-over rule: the reschedule's wave, else its own,
    /// while that window can still be given; else the next wave with room; else nowhere.
    fn destination(&self, a: &Queued, now: Timestamp) -> Target {
        let own = self.st.mailboxes[a.idx as usize].wave;
        self.window_for(a.target.unwrap_or(own), now)
    }

    /// The outcome of an action applied where it was asked, or in a later window than that.
    fn applied(&self, a: &Queued, to: Target) -> String {
        match to {
            Target::Wave(t) if t != a.asked => format!(
                "applied; it cuts over in {}, as {}'s window is closing or closed",
                self.st.waves[t as usize].name, self.st.waves[a.asked as usize].name
            ),
            _ => "applied".into(),
        }
    }

    /// Keeps the action pending while its request replicates: tried again after a short wait
    /// (the replication grace bounds how long a 404 reads as replication), and the command says so.
    async fn wait_for_replication(
        &mut self,
        mut a: Queued,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let due = now + policy::replication_wait(a.tries);
        tracing::info!(action = a.request.kind.name(), mailbox = %self.st.address(a.idx), retry_at = %due,
            "the move request is not readable yet (replication): the action waits for it");
        a.tries = a.tries.saturating_add(1);
        if a.tries == 1 {
            self.writer
                .submit(Command::ActionPending {
                    action: a.id,
                    outcome: REPLICATING.into(),
                })
                .await?;
        }
        self.actions.replicating.push((due, a));
        Ok(())
    }

    async fn refuse(&mut self, a: &Queued, why: &str, now: Timestamp) -> Result<(), StoreError> {
        let id = self.st.mailboxes[a.idx as usize].id;
        self.writer
            .submit(Command::Note {
                mailbox: id,
                cause: "action",
                detail: format!("{} refused: {why}", detail(a.request.kind, &a.request)),
                at: ms(now),
                correlation: None,
            })
            .await?;
        self.answer_action(a.id, format!("refused: {why}"), now)
            .await
    }

    async fn answer_action(
        &mut self,
        action: i64,
        outcome: String,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.actions.taken.remove(&action);
        self.writer
            .submit(Command::ActionApplied {
                action,
                outcome,
                at: ms(now),
            })
            .await?;
        if let Some(applied) = &self.actions_applied {
            applied.notify_one();
        }
        Ok(())
    }

    /// Moves the action's mailbox to wave `to` in the store, the action given as the reason.
    async fn move_by_action(
        &mut self,
        a: &Queued,
        to: Target,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let Target::Wave(to) = to else {
            return Ok(());
        };
        let why = format!(
            "{} to {}",
            detail(a.request.kind, &a.request),
            self.st.waves[to as usize].name
        );
        self.move_in_store(a.idx, to, why, now).await
    }

    /// Moves a mailbox to wave `to` in the store and the view (with its reason), if it is not there.
    pub(super) async fn move_in_store(
        &mut self,
        idx: u32,
        to: u32,
        why: String,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let m = &self.st.mailboxes[idx as usize];
        if m.wave == to {
            return Ok(());
        }
        self.writer
            .submit(Command::Reschedule {
                mailbox: m.id,
                wave: self.st.waves[to as usize].db_id,
                detail: why,
                at: ms(now),
            })
            .await?;
        self.st.move_to_wave(idx, to);
        self.counters.rescheduled += 1;
        Ok(())
    }

    async fn apply_in_store(
        &mut self,
        a: &Queued,
        to: State,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let idx = a.idx;
        let kind = a.request.kind;
        let m = &self.st.mailboxes[idx as usize];
        let (id, from) = (m.id, m.state);
        let mut outcome = "applied".to_string();
        if matches!(kind, ActionKind::Release | ActionKind::Reschedule)
            || (kind == ActionKind::Retry && to == State::Planned)
        {
            // Checked before: a window is left.
            let dest = self.destination(a, now);
            outcome = self.applied(a, dest);
            self.move_by_action(a, dest, now).await?;
        }
        if kind == ActionKind::Retry {
            self.writer
                .submit(Command::ResetAttempts { mailbox: id })
                .await?;
            self.st.mailboxes[idx as usize].attempts = 0;
        }
        if to != from {
            let t = tr(id, to, kind.name()).detail(detail(kind, &a.request));
            self.transition(idx, t, now).await?;
        }
        if to == State::Planned {
            // The submitter looks at the wave again from its start.
            let w = self.st.mailboxes[idx as usize].wave;
            self.st.waves[w as usize].submit_cursor = 0;
            self.unstarted_in_closed_wave(idx, now).await?;
        }
        self.answer_action(a.id, outcome, now).await
    }

    /// The service's answer to a call an action made.
    pub(super) async fn on_action_answer(
        &mut self,
        idx: u32,
        action: i64,
        answer: Answer,
        correlation: [u8; 16],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.st.mailboxes[idx as usize].work = Work::Idle;
        let Some(a) = self.in_flight_actions.remove(&action) else {
            return Ok(());
        };
        let kind = a.request.kind;
        let id = self.st.mailboxes[idx as usize].id;
        let result = match &answer {
            Answer::Rescheduled { result, .. }
            | Answer::Removed(result)
            | Answer::Resumed { result, .. }
            | Answer::Approved { result, .. } => result.clone(),
            _ => Ok(()),
        };
        // A cut-over the call moved is followed in the store whatever came of the rest.
        let moved = match &answer {
            Answer::Resumed { moved, .. } => *moved,
            Answer::Approved { to, result: Ok(()) } => Some(*to),
            _ => None,
        };
        let outcome = moved.map_or_else(|| "applied".to_string(), |to| self.applied(&a, to));
        if let Some(to) = moved {
            self.cutover_moved(idx, to, kind.name(), now).await?;
        }
        match result {
            // Too fresh to be read yet: tried again once it has replicated, never refused.
            Err(ServiceError::NotYetReplicated { .. }) => {
                return self.wait_for_replication(a, now).await;
            }
            // Not sent (the run is ending) or no answer: the next look takes it on again.
            Err(
                ServiceError::NotSent
                | ServiceError::Transient { .. }
                | ServiceError::Throttled { .. },
            ) => {
                self.actions.taken.remove(&action);
                return Ok(());
            }
            Err(ServiceError::RequestCompleting { .. }) => {
                return self.refuse(&a, "its cut-over has started", now).await;
            }
            Err(ref e) if self.refused(e) => {
                self.actions.taken.remove(&action);
                return Ok(());
            }
            _ => {}
        }
        let state = self.st.mailboxes[idx as usize].state;
        match (kind, &answer, result) {
            (ActionKind::Hold, _, Ok(())) => {
                let t = tr(id, State::Held, "hold")
                    .correlation(correlation)
                    .detail(format!(
                        "{}; its cut-over is moved a year out until it is released",
                        detail(kind, &a.request)
                    ));
                if state.can_become(State::Held) {
                    self.transition(idx, t, now).await?;
                }
            }
            (
                ActionKind::Release | ActionKind::Reschedule,
                Answer::Rescheduled { to, .. },
                Ok(()),
            ) => {
                let to = *to;
                self.move_by_action(&a, to, now).await?;
                let state = self.st.mailboxes[idx as usize].state;
                if state == State::Held && kind == ActionKind::Release {
                    let t = tr(id, State::Submitted, kind.name())
                        .correlation(correlation)
                        .detail(detail(kind, &a.request));
                    self.transition(idx, t, now).await?;
                }
                let w = self.st.mailboxes[idx as usize].wave;
                self.schedule_poll(w, now);
                return self.answer_action(a.id, self.applied(&a, to), now).await;
            }
            (ActionKind::Skip, _, Ok(()) | Err(ServiceError::NotFound { .. })) => {
                self.forget_request(idx);
                let t = tr(id, State::Skipped, "skip")
                    .correlation(correlation)
                    .detail(format!(
                        "{}; its move request was removed",
                        detail(kind, &a.request)
                    ));
                self.transition(idx, t, now).await?;
            }
            (ActionKind::Retry, Answer::Resumed { .. }, Ok(())) => {
                self.writer
                    .submit(Command::ResetAttempts { mailbox: id })
                    .await?;
                self.st.mailboxes[idx as usize].attempts = 0;
                if self.st.mailboxes[idx as usize].state == State::Failed {
                    let t = tr(id, State::Syncing, "retry")
                        .correlation(correlation)
                        .detail(detail(kind, &a.request));
                    self.transition(idx, t, now).await?;
                }
                let w = self.st.mailboxes[idx as usize].wave;
                self.schedule_poll(w, now);
            }
            (ActionKind::Retry, Answer::Resumed { .. }, Err(ServiceError::BadRequest { .. })) => {
                // The service will not resume it because it is no longer failed or suspended:
                // already resumed (a retry applied again after a crash) or moving on by itself.
                // Nothing is removed; the next listing says where it stands.
                self.writer
                    .submit(Command::ResetAttempts { mailbox: id })
                    .await?;
                self.st.mailboxes[idx as usize].attempts = 0;
                if self.st.mailboxes[idx as usize].state == State::Failed {
                    let t = tr(id, State::Syncing, "retry")
                        .correlation(correlation)
                        .detail(format!(
                            "{}; the service says it is no longer failed",
                            detail(kind, &a.request)
                        ));
                    self.transition(idx, t, now).await?;
                }
                let w = self.st.mailboxes[idx as usize].wave;
                self.schedule_poll(w, now);
            }
            (ActionKind::Retry, _, Ok(()) | Err(ServiceError::NotFound { .. })) => {
                // Removed (or gone): it is created again in its wave.
                self.writer
                    .submit(Command::ResetAttempts { mailbox: id })
                    .await?;
                self.forget_request(idx);
                let t = tr(id, State::Planned, "retry")
                    .correlation(correlation)
                    .detail(format!(
                        "{}; its move request was removed to be created again",
                        detail(kind, &a.request)
                    ));
                self.transition(idx, t, now).await?;
                self.st.mailboxes[idx as usize].attempts = 0;
                let dest = self.destination(&a, now);
                self.move_by_action(&a, dest, now).await?;
                let w = self.st.mailboxes[idx as usize].wave;
                self.st.waves[w as usize].submit_cursor = 0;
                self.unstarted_in_closed_wave(idx, now).await?;
                return self.answer_action(a.id, self.applied(&a, dest), now).await;
            }
            (ActionKind::Approve, _, Ok(())) => {
                self.writer
                    .submit(Command::Note {
                        mailbox: id,
                        cause: "approve",
                        detail: format!("{}: skipped items approved", detail(kind, &a.request)),
                        at: ms(now),
                        correlation: Some(correlation),
                    })
                    .await?;
                if self.st.mailboxes[idx as usize].state == State::Failed
                    && self.st.mailboxes[idx as usize].class == Some(FailureClass::NeedsApproval)
                {
                    let t = tr(id, State::Synced, "approve").correlation(correlation);
                    self.transition(idx, t, now).await?;
                }
            }
            (_, _, Err(ServiceError::NotFound { .. })) => {
                self.request_gone(idx, now).await?;
                return self
                    .refuse(&a, "its move request is no longer on the service", now)
                    .await;
            }
            (_, _, Err(e)) => {
                let why = format!("the service refused it: {e}");
                let idd = self.st.mailboxes[idx as usize].id;
                self.writer
                    .submit(Command::Note {
                        mailbox: idd,
                        cause: "action",
                        detail: format!("{} refused: {why}", detail(kind, &a.request)),
                        at: ms(now),
                        correlation: Some(correlation),
                    })
                    .await?;
                return self
                    .answer_action(a.id, format!("refused: {why}"), now)
                    .await;
            }
            (_, _, Ok(())) => {}
        }
        self.answer_action(a.id, outcome, now).await
    }

    /// The mailbox no longer has a request of ours on the service.
    fn forget_request(&mut self, idx: u32) {
        let m = &mut self.st.mailboxes[idx as usize];
        m.guid = Guid::default();
        m.submitted_at = 0;
    }

    /// Whether operator actions still wait (an actions-only run ends when none do).
    pub(super) fn actions_waiting(&self) -> bool {
        !self.actions.queue.is_empty()
            || !self.in_flight_actions.is_empty()
            || !self.actions.replicating.is_empty()
    }
}
