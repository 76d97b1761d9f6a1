//! The submitter: picks the next mailboxes of every due wave, records their create intents in one
//! commit, then dispatches the creates. Mailboxes whose create is in doubt are asked again here too:
//! the answer to a new create is evidence either way (the service never holds two requests for one
//! mailbox, and answers a duplicate with its own text).

use jiff::Timestamp;

use super::super::policy;
use super::super::state::{Close, Target, Work, ms};
use super::{Coordinator, Job, What};
use crate::exchange::{Call, MoveService, NewMove};
use crate::store::writer::{Command, IntentCall, Reply};
use crate::store::{State, StoreError};

impl<S: MoveService> Coordinator<S> {
    fn in_prestage_window(&self, now: Timestamp) -> bool {
        self.cfg
            .prestage_window
            .is_none_or(|w| policy::in_local_window(w, now, &self.timezone))
    }

    /// Whether wave `w` takes creates now: in scope, pre-staging, and its window can still be
    /// given by the cut-over rule (a create's CompleteAfter lets the move complete).
    fn wave_open_for_creates(&self, w: u32, now: Timestamp) -> bool {
        let wave = &self.st.waves[w as usize];
        wave.in_scope
            && wave.prestage_start <= now
            && wave.close == Close::Ahead
            && self.window_for(w, now) == Target::Wave(w)
    }

    fn new_move(&self, idx: u32, now: Timestamp) -> NewMove {
        let own = self.st.mailboxes[idx as usize].wave;
        let cutover = self.cutover(idx, own, false, now);
        NewMove {
            identity: self.st.address(idx).to_string(),
            batch_name: cutover.batch,
            complete_after: cutover.complete_after,
            remote_host_name: self.migration.remote_host_name.clone(),
            target_delivery_domain: self.migration.target_delivery_domain.clone(),
            source_endpoint: self.migration.source_endpoint.clone(),
        }
    }

    pub(super) async fn submit(&mut self, now: Timestamp) -> Result<(), StoreError> {
        if !self.in_prestage_window(now) {
            return Ok(());
        }
        let room = self.slots();
        // Creates are paced by the rate limit, so there is no hurry to fill a single free slot:
        // wait until a handful are free and record their intents in one commit.
        let handful = (self.cfg.max_parallel_calls / 4).clamp(1, 32);
        if room < handful && self.st.creating > 0 {
            return Ok(());
        }
        let mut picked: Vec<u32> = Vec::new();
        // Creates in doubt whose time has come are asked first.
        while picked.len() < room
            && let Some(&std::cmp::Reverse((due, idx))) = self.st.probes.peek()
            && due <= ms(now)
        {
            self.st.probes.pop();
            let m = &self.st.mailboxes[idx as usize];
            if !self.st.has_open_create(idx) || m.state != State::Planned || m.work == Work::Calling
            {
                continue; // settled meanwhile
            }
            if !self.wave_open_for_creates(m.wave, now) {
                // Its wave is not taking creates (out of scope, or closed and moving on): the
                // listing or the completer will see to it.
                self.st.mailboxes[idx as usize].work = Work::Idle;
                continue;
            }
            self.st.mailboxes[idx as usize].work = Work::Calling;
            picked.push(idx);
        }
        let cap = self.in_flight_cap;
        // Mailboxes in doubt already count towards the in-flight cap; new picks add to it.
        let mut new = 0u64;
        'waves: for w in 0..self.st.waves.len() as u32 {
            let wave = &self.st.waves[w as usize];
            if !self.wave_open_for_creates(w, now) || wave.count(State::Planned) == 0 {
                continue;
            }
            loop {
                if picked.len() >= room || self.st.in_flight() + new >= cap {
                    break 'waves;
                }
                let wave = &mut self.st.waves[w as usize];
                let Some(&idx) = wave.members.get(wave.submit_cursor) else {
                    break;
                };
                wave.submit_cursor += 1;
                let m = &self.st.mailboxes[idx as usize];
                if m.state != State::Planned
                    || m.work != Work::Idle
                    || m.wave != w
                    || self.st.has_open_create(idx)
                {
                    continue;
                }
                self.st.mailboxes[idx as usize].work = Work::Calling;
                picked.push(idx);
                new += 1;
            }
        }
        if picked.is_empty() {
            return Ok(());
        }
        // The intents must be on disk before the calls that create. A probe's new intent
        // supersedes the one left in doubt.
        let calls: Vec<IntentCall> = picked
            .iter()
            .map(|&idx| IntentCall {
                mailbox: self.st.mailboxes[idx as usize].id,
                correlation: *uuid::Uuid::new_v4().as_bytes(),
                wave: Some(self.st.waves[self.st.mailboxes[idx as usize].wave as usize].db_id),
                supersedes: self.st.open_creates.get(&idx).map(|o| o.intent),
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
            Ok(Reply::Intents(ids)) if ids.len() == picked.len() => ids,
            other => {
                for &idx in &picked {
                    self.st.mailboxes[idx as usize].work = Work::Idle;
                }
                let e = match other {
                    Err(e) => e.to_string(),
                    Ok(_) => "unexpected reply".into(),
                };
                self.fail(format!("could not record create intents: {e}"));
                return Ok(());
            }
        };
        for ((idx, call), intent) in picked.into_iter().zip(calls).zip(ids) {
            let wave = self.st.mailboxes[idx as usize].wave;
            let earlier = self.st.open_creates.get(&idx).copied();
            self.st.open_creates.insert(
                idx,
                super::OpenCreate {
                    intent,
                    correlation: call.correlation,
                    attempted: now,
                    made_for: match earlier {
                        None => Some(wave),
                        Some(e) => e.made_for.filter(|&w| w == wave),
                    },
                    probe: earlier.is_some(),
                },
            );
            self.st.creating += 1;
            let request = self.new_move(idx, now);
            self.dispatch(Job {
                mailbox: Some(idx),
                identity: request.identity.clone(),
                call: Call::with_correlation(call.correlation),
                what: What::Create { intent, request },
                action: None,
            });
        }
        Ok(())
    }
}
