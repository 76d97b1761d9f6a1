//! The poller: lists each wave's batch (`Get-MoveRequest -BatchName`) on a schedule that follows the
//! wave's phase, moves every mailbox to the state its request shows, adopts requests it did not know
//! (made by hand, or by a create whose answer was lost), and looks closer at mailboxes whose request
//! is missing.

use std::collections::HashMap;

use jiff::Timestamp;

use super::super::policy::{self, Follow};
use super::super::state::{Guid, Poll, Work, ms, parse_guid};
use super::{Coordinator, Job, What, tr};
use crate::exchange::{Call, MoveRequest, MoveService, REPLICATION_GRACE};
use crate::inventory::index::AddressIndex;
use crate::store::{FailureClass, State, StoreError};

impl<S: MoveService> Coordinator<S> {
    /// Lists every wave whose listing is due, while call slots are free.
    pub(super) fn dispatch_polls(&mut self, now: Timestamp) {
        for w in 0..self.st.waves.len() {
            if self.slots() == 0 {
                break;
            }
            let wave = &self.st.waves[w];
            if !wave.in_scope || wave.next_poll().is_none_or(|p| p > now) {
                continue;
            }
            // Pre-staged and far from its window, a wave only needs watching for failures.
            let copying = wave.count(State::Submitted) + wave.count(State::Syncing);
            let near = now >= wave.window_start - self.cfg.cutover_poll * 2;
            let waiting_for_evidence = self
                .st
                .open_creates
                .keys()
                .any(|&i| self.st.mailboxes[i as usize].wave == w as u32);
            let only = (copying == 0 && !near && !waiting_for_evidence).then_some("Failed");
            let batch = wave.name.clone();
            self.st.waves[w].poll = Poll::Listing;
            self.dispatch(Job {
                mailbox: None,
                identity: batch.clone(),
                call: Call::new(),
                what: What::List {
                    wave: w as u32,
                    batch,
                    only,
                },
                action: None,
            });
        }
    }

    /// When a wave is listed next, from its phase.
    pub(super) fn schedule_poll(&mut self, w: u32, now: Timestamp) {
        let (prestage, cutover) = (self.cfg.prestage_poll, self.cfg.cutover_poll);
        let doubt = self
            .st
            .open_creates
            .keys()
            .any(|&i| self.st.mailboxes[i as usize].wave == w);
        let wave = &mut self.st.waves[w as usize];
        if wave.active() == 0 && !doubt {
            if wave.poll != Poll::Listing {
                wave.poll = Poll::Off;
            }
            return;
        }
        let near = now >= wave.window_start - cutover * 2 && now < wave.window_end + cutover * 6;
        let copying =
            wave.count(State::Submitted) + wave.count(State::Syncing) + wave.count(State::Failed);
        let next = if near || doubt {
            now + cutover
        } else if copying == 0 && wave.window_start - cutover * 2 > now {
            // Everything is synced and waiting: look again shortly before the cut-over.
            (now + prestage * 4).min(wave.window_start - cutover * 2)
        } else {
            now + prestage
        };
        if wave.poll == Poll::Listing {
            wave.poll = Poll::At(next);
        } else {
            wave.poll_by(next);
        }
    }

    pub(super) async fn on_listed(
        &mut self,
        w: u32,
        filtered: bool,
        result: Result<Vec<MoveRequest>, crate::exchange::ServiceError>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.st.waves[w as usize].poll = Poll::Off;
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
                        && self.st.mailboxes[idx as usize].work == Work::Idle
                    {
                        self.follow(idx, req, "poll", now).await?;
                    }
                }
                self.schedule_poll(w, now);
            }
            Ok(requests) => self.reconcile_listing(w, requests, now).await?,
            Err(e) => {
                if !self.refused(&e) {
                    tracing::warn!(wave = %self.st.waves[w as usize].name, error = %e, "listing failed; trying again");
                    self.st.waves[w as usize].poll = Poll::At(now + self.cfg.cutover_poll);
                }
            }
        }
        Ok(())
    }

    /// Moves a mailbox to the state its request's service status means, by legal steps.
    pub(super) async fn follow(
        &mut self,
        idx: u32,
        req: &MoveRequest,
        cause: &'static str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let m = &mut self.st.mailboxes[idx as usize];
        if m.guid.get().is_none() {
            m.guid = Guid::of(parse_guid(&req.exchange_guid));
        }
        let (id, current, class) = (m.id, m.state, m.class);
        let target = match policy::follow(&req.status) {
            Follow::To(s) => s,
            Follow::Failed => {
                if current != State::Failed && m.work == Work::Idle {
                    m.work = Work::Queued;
                    self.st.stats_queue.push_back(idx);
                }
                return Ok(());
            }
            Follow::Unknown => return Ok(()),
        };
        if target == current || current == State::Held {
            return Ok(());
        }
        if policy::verdict_stands(current, class, target) {
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

    /// The service no longer has this mailbox's request.
    pub(super) async fn request_gone(
        &mut self,
        idx: u32,
        now: Timestamp,
    ) -> Result<(), StoreError> {
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

    /// A wave's full batch listing: follow every request, adopt unknown ones, settle creates in
    /// doubt that it shows, and look closer at mailboxes whose request is missing.
    async fn reconcile_listing(
        &mut self,
        w: u32,
        requests: Vec<MoveRequest>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.st.waves[w as usize].listed_at = Some(now);
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
            let m = &self.st.mailboxes[idx as usize];
            if m.work == Work::Calling {
                continue; // its call's answer decides
            }
            if self.st.has_open_create(idx) && m.state == State::Planned {
                // Evidence for a create in doubt: the request exists.
                let id = m.id;
                self.st.mailboxes[idx as usize].work = Work::Idle;
                self.st.mailboxes[idx as usize].submitted_at = ms(now);
                let t = tr(id, State::Submitted, "reconcile")
                    .request_id(req.exchange_guid.clone())
                    .detail("found in its batch after a create whose answer was lost");
                self.transition(idx, t, now).await?;
                self.resolve(idx, "adopted: found in the batch", now)
                    .await?;
                self.counters.uncertain_settled += 1;
            }
            if self.st.mailboxes[idx as usize].work != Work::Idle {
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
                if m.state == State::Synced && !m.dcs_checked && m.work == Work::Idle {
                    m.dcs_checked = true;
                    m.work = Work::Queued;
                    self.st.stats_queue.push_back(idx);
                }
            }
        }
        // Requests that should be there but are not (a listing lags a create by the replication
        // delay, so only older ones are asked about, one by one).
        for (&idx, _) in members.iter().zip(&seen).filter(|(_, seen)| !**seen) {
            let m = &self.st.mailboxes[idx as usize];
            let expected = matches!(
                m.state,
                State::Submitted | State::Syncing | State::Synced | State::Completing
            );
            let recent =
                now.as_millisecond() - m.submitted_at < REPLICATION_GRACE.as_millis() as i64;
            if expected && !recent && m.work == Work::Idle {
                self.st.mailboxes[idx as usize].work = Work::Queued;
                self.st.get_queue.push_back(idx);
            }
        }
        self.schedule_poll(w, now);
        Ok(())
    }
}
