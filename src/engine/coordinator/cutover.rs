//! The completer. The service cuts each mailbox over on its own once its CompleteAfter (the window's
//! start) comes; what mailwave must guarantee is that none cuts over *after* its window. So shortly
//! before a window closes (the margin, earlier when there are many to move at the request rate) every
//! mailbox of the wave not yet cutting over moves to the next wave: in the store when it has no
//! request, on the service too (`Set-MoveRequest -BatchName -CompleteAfter`) when it has one.

use jiff::{SignedDuration, Timestamp};

use super::super::policy::{self, AtClose};
use super::super::state::{Close, Target, Wave, Work, ms};
use super::{Coordinator, LAG_RETRY, What, tr};
use crate::exchange::{MoveService, ServiceError};
use crate::store::writer::Command;
use crate::store::{State, StoreError};

/// How far out a cut-over goes when no later wave is planned.
const FAR_AWAY: SignedDuration = SignedDuration::from_hours(24 * 365);

impl<S: MoveService> Coordinator<S> {
    /// When the completer moves a wave's unready mailboxes on.
    pub(super) fn close_time(&self, w: &Wave) -> Timestamp {
        let calls = w.unready() as f64 / self.cfg.requests_per_second;
        let sending = SignedDuration::try_from_secs_f64(calls).unwrap_or(SignedDuration::MAX);
        w.window_end
            .checked_sub(self.cfg.cutover_margin)
            .and_then(|t| t.checked_sub(sending))
            .unwrap_or(Timestamp::MIN)
    }

    pub(super) async fn close_windows(&mut self, now: Timestamp) -> Result<(), StoreError> {
        for w in 0..self.st.waves.len() as u32 {
            let wave = &self.st.waves[w as usize];
            if wave.in_scope && wave.close == Close::Ahead && now >= self.close_time(wave) {
                self.close_window(w, now).await?;
            }
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
        let mut moved = 0;
        for idx in members {
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
                // Busy now: whatever it is doing ends in a transition, which reschedules it.
                AtClose::MoveRequest | AtClose::Leave => {}
            }
        }
        if moved > 0 {
            tracing::info!(wave = %from, mailboxes = moved, "window closing: moving mailboxes not yet cut over to the next wave");
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
            Target::NoLaterWave => {
                let t = tr(id, State::Held, "cutover").detail(format!(
                    "missed {from} and no later wave is planned: re-plan"
                ));
                self.transition(idx, t, now).await?;
            }
        }
        Ok(())
    }

    pub(super) fn dispatch_reschedules(&mut self, now: Timestamp) {
        while self.slots() > 0
            && let Some((idx, to)) = self.st.reschedules.pop_front()
        {
            let (batch, complete_after) = match to {
                Target::NoLaterWave => {
                    let w = &self.st.waves[self.st.mailboxes[idx as usize].wave as usize];
                    (w.name.clone(), now + FAR_AWAY)
                }
                Target::Wave(to) => {
                    let w = &self.st.waves[to as usize];
                    (w.name.clone(), w.window_start)
                }
            };
            let job = self.mailbox_job(
                idx,
                What::Reschedule {
                    to,
                    batch,
                    complete_after,
                },
            );
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
            (Ok(()), Target::NoLaterWave) => {
                let from = self.st.waves[from_wave as usize].name.clone();
                let t = tr(id, State::Held, "cutover").detail(format!(
                    "missed {from} and no later wave is planned: re-plan"
                ));
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
                self.st
                    .later
                    .push(std::cmp::Reverse((ms(now + LAG_RETRY), (idx, to))));
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
