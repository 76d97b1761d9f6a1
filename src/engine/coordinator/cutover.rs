//! The completer. The service cuts each mailbox over on its own once its CompleteAfter (the window's
//! start) comes; what mailwave must guarantee is that none cuts over outside its window. So every
//! call that may let a mailbox complete first gives it a window by one rule
//! ([`policy::cutover_window`], through [`Coordinator::cutover`]), and shortly before a window closes
//! (the margin, earlier when there are many to move at the request rate) every mailbox of the wave
//! not yet cutting over moves to the next wave: in the store when it has no request, on the service
//! too (`Set-MoveRequest -BatchName -CompleteAfter`) when it has one. A delegation group that did
//! not cut over moves as one, its members held or failed along with it; a group some of whose
//! members already cut over is reported as split.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};

use super::super::jobs::Cutover;
use super::super::policy::{self, AtClose, NoWindow};
use super::super::state::{Close, Poll, Target, Wave, Work, ms};
use super::{Coordinator, What, tr};
use crate::exchange::{MoveService, ServiceError};
use crate::store::writer::Command;
use crate::store::{State, StoreError};

/// How far out a cut-over goes for a mailbox that is held.
pub(super) const FAR_AWAY: SignedDuration = SignedDuration::from_hours(24 * 365);

/// Split groups the summary names, at most (all are counted).
const SPLITS_NAMED: usize = 20;

/// Its cut-over has started or is done.
fn cut_over(state: State) -> bool {
    matches!(
        state,
        State::Completing | State::Completed | State::CompletedWithWarning
    )
}

/// Why a mailbox is held when no window is left for it, and what the operator can do.
pub(super) fn no_window(from: &str, why: NoWindow) -> String {
    format!(
        "missed {from} and {}: {}",
        why.reason(),
        match why {
            NoWindow::NonePlanned => "re-plan",
            NoWindow::NoneWithRoom => "reschedule it to a wave with --force, or re-plan",
        }
    )
}

impl<S: MoveService> Coordinator<S> {
    /// When the completer moves a wave's unready mailboxes on.
    pub(super) fn close_time(&self, w: &Wave) -> Timestamp {
        policy::close_time(
            w.window_end,
            self.cfg.cutover_margin,
            w.unready() as u64,
            self.cfg.requests_per_second,
        )
    }

    /// Wave `i`'s window as the cut-over rule sees it.
    fn window_facts(&self, i: usize) -> policy::WindowFacts {
        let w = &self.st.waves[i];
        policy::WindowFacts {
            start: w.window_start,
            usable_until: match w.close {
                Close::Done => Timestamp::MIN,
                Close::Ahead => self.close_time(w),
            },
            room: w.size() < w.capacity,
        }
    }

    /// The window a mailbox that may now complete is given: `preferred`'s while it can be, else
    /// the next with room, else none ([`policy::cutover_window`]).
    pub(super) fn window_for(&self, preferred: u32, now: Timestamp) -> Target {
        match policy::cutover_window(
            preferred as usize,
            self.st.waves.len(),
            |i| self.window_facts(i),
            now,
        ) {
            Ok(w) => Target::Wave(w as u32),
            Err(why) => Target::Hold(why),
        }
    }

    /// The cut-over a call gives mailbox `idx`: the window the rule gives `preferred`, its
    /// CompleteAfter far out while the mailbox stays `held` or when no window is left (it keeps
    /// its batch then).
    pub(super) fn cutover(&self, idx: u32, preferred: u32, held: bool, now: Timestamp) -> Cutover {
        let to = self.window_for(preferred, now);
        let (wave, complete_after) = match to {
            Target::Wave(w) => (w, (!held).then(|| self.st.waves[w as usize].window_start)),
            Target::Hold(_) => (self.st.mailboxes[idx as usize].wave, None),
        };
        Cutover {
            to,
            batch: self.st.waves[wave as usize].name.clone(),
            complete_after: complete_after.unwrap_or(now + FAR_AWAY),
        }
    }

    pub(super) async fn close_windows(&mut self, now: Timestamp) -> Result<(), StoreError> {
        for w in 0..self.st.waves.len() as u32 {
            let wave = &self.st.waves[w as usize];
            if !(wave.in_scope && wave.close == Close::Ahead && now >= self.close_time(wave)) {
                continue;
            }
            // What the service did in the window is read first: a run that starts after a
            // window closed (or was stopped during it) knows its requests only as they were, and
            // would move on mailboxes that cut over meanwhile.
            let requests = [
                State::Submitted,
                State::Syncing,
                State::Synced,
                State::Completing,
            ]
            .iter()
            .map(|s| wave.count(*s))
            .sum::<u32>();
            if requests > 0 && wave.listed_at.is_none_or(|t| t < wave.window_start) {
                if !matches!(wave.poll, Poll::Listing) {
                    self.st.waves[w as usize].poll = Poll::At(now);
                }
                continue;
            }
            self.close_window(w, now).await?;
        }
        // Reschedules whose request has had time to replicate.
        while let Some(&std::cmp::Reverse((due, (idx, to)))) = self.st.later.peek()
            && due <= ms(now)
        {
            self.st.later.pop();
            self.st.mailboxes[idx as usize].work = Work::Queued;
            self.st.reschedules.push_back((idx, to));
        }
        Ok(())
    }

    async fn close_window(&mut self, w: u32, now: Timestamp) -> Result<(), StoreError> {
        self.st.waves[w as usize].close = Close::Done;
        let next = self.st.next_wave(w, now + self.cfg.cutover_margin);
        let from = self.st.waves[w as usize].name.clone();
        let members: Vec<u32> = self.st.waves[w as usize]
            .members
            .iter()
            .copied()
            .filter(|&i| self.st.mailboxes[i as usize].wave == w)
            .collect();
        let groups = self.groups_among(w, &members)?;
        // Groups some of whose members cut over in this window: split already.
        let split: std::collections::HashSet<i64> = groups
            .iter()
            .filter(|(i, _)| cut_over(self.st.mailboxes[**i as usize].state))
            .map(|(_, g)| *g)
            .collect();
        let mut moved = 0;
        for &idx in &members {
            let m = &self.st.mailboxes[idx as usize];
            match policy::at_close(m.state, m.class) {
                AtClose::MoveUnstarted if m.work == Work::Calling => {
                    // Its create is on the wire; the answer decides (see on_created).
                }
                AtClose::MoveUnstarted => {
                    self.move_unstarted(idx, next, now).await?;
                    moved += 1;
                }
                AtClose::MoveRequest if m.work == Work::Idle => {
                    self.st.reschedules.push_back((idx, next));
                    self.st.mailboxes[idx as usize].work = Work::Queued;
                    moved += 1;
                }
                // Held or failed for the operator, in a delegation group that moves on whole: it
                // goes along (still held, or still failed), so that a release or a retry puts it
                // in its group's window, not in one of its own.
                AtClose::Leave
                    if groups.get(&idx).is_some_and(|g| !split.contains(g))
                        && matches!(m.state, State::Held | State::Failed)
                        && m.work == Work::Idle
                        && matches!(next, Target::Wave(_)) =>
                {
                    if m.guid.get().is_some() || m.submitted_at > 0 {
                        self.st.reschedules.push_back((idx, next));
                        self.st.mailboxes[idx as usize].work = Work::Queued;
                    } else if let Target::Wave(to) = next {
                        let why = format!(
                            "its delegation group moved on when {from} closed; it goes along to {}",
                            self.st.waves[to as usize].name
                        );
                        self.move_in_store(idx, to, why, now).await?;
                    }
                    moved += 1;
                }
                // Busy now: whatever it is doing ends in a transition, which reschedules it.
                AtClose::MoveRequest | AtClose::Leave => {}
            }
        }
        if moved > 0 {
            tracing::info!(wave = %from, mailboxes = moved, "window closing: moving mailboxes not yet cut over to the next wave");
        }
        self.report_split_groups(&from, next, &groups, now).await
    }

    /// The mailboxes of `members` (of wave `w`) that share a delegation group with another of them,
    /// by group.
    fn groups_among(&self, w: u32, members: &[u32]) -> Result<HashMap<u32, i64>, StoreError> {
        let by_id: HashMap<i64, u32> = members
            .iter()
            .map(|&i| (self.st.mailboxes[i as usize].id, i))
            .collect();
        let wave = self.st.waves[w as usize].db_id;
        let rows = self.read(|s| s.groups_in_wave(wave))?;
        let mut of: HashMap<u32, i64> = rows
            .into_iter()
            .filter_map(|(id, group)| by_id.get(&id).map(|&i| (i, group)))
            .collect();
        let mut size: HashMap<i64, u32> = HashMap::new();
        for g in of.values() {
            *size.entry(*g).or_default() += 1;
        }
        of.retain(|_, g| size[g] > 1);
        Ok(of)
    }

    /// Groups of a closing wave of which some members cut over and others did not: those go as soon
    /// as possible (the next wave; held or failed ones when the operator lets them), and the run
    /// says so, in their history and its summary.
    async fn report_split_groups(
        &mut self,
        from: &str,
        next: Target,
        groups: &HashMap<u32, i64>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        // By group: cut over, going on, waiting for the operator.
        type Split = (Vec<u32>, Vec<u32>, Vec<u32>);
        let mut by_group: std::collections::BTreeMap<i64, Split> = Default::default();
        for (&idx, &g) in groups {
            let m = &self.st.mailboxes[idx as usize];
            let entry = by_group.entry(g).or_default();
            match policy::at_close(m.state, m.class) {
                _ if cut_over(m.state) => entry.0.push(idx),
                AtClose::MoveUnstarted | AtClose::MoveRequest => entry.1.push(idx),
                AtClose::Leave if matches!(m.state, State::Held | State::Failed) => {
                    entry.2.push(idx)
                }
                AtClose::Leave => {}
            }
        }
        let to = match next {
            Target::Wave(t) => self.st.waves[t as usize].name.clone(),
            Target::Hold(why) => format!("no wave ({})", why.reason()),
        };
        for (cut, going, waiting) in by_group.into_values() {
            if cut.is_empty() || (going.is_empty() && waiting.is_empty()) {
                continue;
            }
            let names = |list: &[u32]| {
                let mut v: Vec<String> = list
                    .iter()
                    .map(|&i| self.st.address(i).to_string())
                    .collect();
                v.sort();
                crate::format::few(&v, 5)
            };
            let mut parts = vec![format!("cut over there: {}", names(&cut))];
            if !going.is_empty() {
                parts.push(format!("going on to {to}: {}", names(&going)));
            }
            if !waiting.is_empty() {
                parts.push(format!(
                    "waiting for the operator (held or failed): {}",
                    names(&waiting)
                ));
            }
            let parts = parts.join("; ");
            let detail = format!("its delegation group was split at the close of {from}: {parts}");
            tracing::warn!(wave = %from, "{detail}");
            for &idx in going.iter().chain(&waiting) {
                self.writer
                    .submit(Command::Note {
                        mailbox: self.st.mailboxes[idx as usize].id,
                        cause: "group",
                        detail: detail.clone(),
                        at: ms(now),
                        correlation: None,
                    })
                    .await?;
            }
            self.counters.groups_split += 1;
            if self.counters.split_groups.len() < SPLITS_NAMED {
                self.counters.split_groups.push(format!("{from}: {parts}"));
            }
        }
        Ok(())
    }

    /// A mailbox without a known request, in a wave whose window is closing, moves to `next` in
    /// the store. One whose create is in doubt is asked about at once: a request may exist with
    /// the closing window's cut-over, and an adopted one must move before it can cut over late.
    pub(super) async fn move_unstarted(
        &mut self,
        idx: u32,
        next: Target,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let m = &self.st.mailboxes[idx as usize];
        let (id, from) = (m.id, self.st.waves[m.wave as usize].name.clone());
        match next {
            Target::Wave(to) => {
                let detail = format!(
                    "not submitted before {from} closed; moved to {}",
                    self.st.waves[to as usize].name
                );
                self.writer
                    .submit(Command::Reschedule {
                        mailbox: id,
                        wave: self.st.waves[to as usize].db_id,
                        detail,
                        at: ms(now),
                    })
                    .await?;
                self.st.move_to_wave(idx, to);
                self.counters.rescheduled += 1;
                if self.st.has_open_create(idx) {
                    self.st.mailboxes[idx as usize].work = Work::Waiting;
                    self.st.probes.push(std::cmp::Reverse((ms(now), idx)));
                }
            }
            Target::Hold(why) => {
                let t = tr(id, State::Held, "cutover").detail(no_window(&from, why));
                self.transition(idx, t, now).await?;
            }
        }
        Ok(())
    }

    /// Moves requests' cut-overs, each by the window rule: a target whose window is closing or closed
    /// (it closed while the call waited) gives way to the next with room.
    pub(super) fn dispatch_reschedules(&mut self, now: Timestamp) {
        while self.slots() > 0
            && let Some((idx, to)) = self.st.reschedules.pop_front()
        {
            let m = &self.st.mailboxes[idx as usize];
            let cutover = match to {
                Target::Wave(to) => self.cutover(idx, to, m.state == State::Held, now),
                Target::Hold(_) => Cutover {
                    to,
                    batch: self.st.waves[m.wave as usize].name.clone(),
                    complete_after: now + FAR_AWAY,
                },
            };
            let job = self.mailbox_job(idx, What::Reschedule(cutover));
            self.dispatch(job);
        }
    }

    /// Approves skipped items where the run decided to, each with the window the rule gives it.
    pub(super) fn dispatch_approvals(&mut self, now: Timestamp) {
        while self.slots() > 0
            && let Some(idx) = self.st.approvals.pop_front()
        {
            let own = self.st.mailboxes[idx as usize].wave;
            let job = self.mailbox_job(idx, What::Approve(self.cutover(idx, own, false, now)));
            self.dispatch(job);
        }
    }

    pub(super) async fn on_rescheduled(
        &mut self,
        idx: u32,
        to: Target,
        result: Result<(), ServiceError>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.st.mailboxes[idx as usize].work = Work::Idle;
        let m = &self.st.mailboxes[idx as usize];
        let (id, from_wave, state) = (m.id, m.wave, m.state);
        match (result, to) {
            (Ok(()), Target::Hold(why)) => {
                let from = self.st.waves[from_wave as usize].name.clone();
                let t = tr(id, State::Held, "cutover").detail(no_window(&from, why));
                if state.can_become(State::Held) {
                    self.transition(idx, t, now).await?;
                }
            }
            (Ok(()), Target::Wave(to)) if to != from_wave => {
                let (from, to_name) = (
                    &self.st.waves[from_wave as usize].name,
                    &self.st.waves[to as usize].name,
                );
                let detail = format!(
                    "not cut over in {from} ({state} when its window closed); cut-over moved to {to_name}"
                );
                self.writer
                    .submit(Command::Reschedule {
                        mailbox: id,
                        wave: self.st.waves[to as usize].db_id,
                        detail,
                        at: ms(now),
                    })
                    .await?;
                self.st.move_to_wave(idx, to);
                self.counters.rescheduled += 1;
                self.schedule_poll(to, now);
            }
            (Ok(()), Target::Wave(_)) => {}
            (Err(ServiceError::NotYetReplicated { .. }), to) => {
                self.st.later.push(std::cmp::Reverse((
                    ms(now + policy::replication_wait(u32::MAX)),
                    (idx, to),
                )));
                self.st.mailboxes[idx as usize].work = Work::Waiting;
            }
            (Err(ServiceError::NotFound { .. }), _) => self.request_gone(idx, now).await?,
            // It started its cut-over inside the window after all.
            (Err(ServiceError::RequestCompleting { .. }), _) => {}
            (Err(e), _) if self.refused(&e) => {}
            (Err(ServiceError::NotSent), _) => {}
            (Err(e), to) => {
                tracing::warn!(mailbox = %self.st.address(idx), error = %e, "could not move a cut-over; trying again");
                self.st.reschedules.push_back((idx, to));
                self.st.mailboxes[idx as usize].work = Work::Queued;
            }
        }
        Ok(())
    }

    pub(super) async fn on_approved(
        &mut self,
        idx: u32,
        to: Target,
        result: Result<(), ServiceError>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.st.mailboxes[idx as usize].work = Work::Idle;
        let id = self.st.mailboxes[idx as usize].id;
        match result {
            Ok(()) => {
                self.writer
                    .submit(Command::Note {
                        mailbox: id,
                        cause: "approve",
                        detail: "skipped items approved (data consistency score Investigate)"
                            .into(),
                        at: ms(now),
                        correlation: None,
                    })
                    .await?;
                self.cutover_moved(idx, to, "approved", now).await?;
            }
            Err(e) if self.refused(&e) => {}
            Err(ServiceError::NotSent) => {}
            Err(e) => {
                if self.st.mailboxes[idx as usize].state == State::Synced {
                    let t = tr(id, State::Failed, "approve").failure(
                        crate::store::FailureClass::NeedsApproval,
                        format!("approval refused: {e}"),
                    );
                    self.transition(idx, t, now).await?;
                }
            }
        }
        Ok(())
    }

    /// A call that may let the mailbox complete put its cut-over where the window rule said: its
    /// wave follows in the store (and the view); with no window left, it is held with the reason.
    pub(super) async fn cutover_moved(
        &mut self,
        idx: u32,
        to: Target,
        what: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let m = &self.st.mailboxes[idx as usize];
        let (id, from, state) = (m.id, m.wave, m.state);
        let from_name = self.st.waves[from as usize].name.clone();
        match to {
            Target::Wave(to) if to != from => {
                let why = format!(
                    "{what} after {from_name}'s window closed: its cut-over is in {}",
                    self.st.waves[to as usize].name
                );
                self.move_in_store(idx, to, why, now).await?;
                self.schedule_poll(to, now);
            }
            Target::Wave(_) => {}
            Target::Hold(why) => {
                if state.can_become(State::Held) {
                    let t = tr(id, State::Held, "cutover").detail(format!(
                        "{what}, but its cut-over went a year out: {}",
                        no_window(&from_name, why)
                    ));
                    self.transition(idx, t, now).await?;
                }
            }
        }
        Ok(())
    }

    /// A request adopted after a create (it existed already): bring it into the mailbox's wave's
    /// batch and cut-over, unless every attempt of ours was made for that wave. (One made moments
    /// ago may not be readable yet; the reschedule then waits for replication.)
    pub(super) fn bring_into_wave(&mut self, idx: u32, made_for: Option<u32>) {
        let w = self.st.mailboxes[idx as usize].wave;
        if made_for == Some(w) {
            return;
        }
        self.st.mailboxes[idx as usize].work = Work::Queued;
        self.st.reschedules.push_back((idx, Target::Wave(w)));
    }
}
