//! The run's view of the estate, owned by the coordinator alone. Compact (56 bytes a mailbox), with
//! per-state counters kept up to date on every change so that no decision needs a scan of every
//! mailbox.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use jiff::Timestamp;

use super::policy::NoWindow;
use crate::store::lifecycle::ALL_STATES;
use crate::store::run_view::{MailboxRow, WaveRow};
use crate::store::{FailureClass, State};

/// When a wave's batch is listed next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// Nothing to follow.
    Off,
    At(Timestamp),
    /// A listing is in flight.
    Listing,
}

/// Whether the completer has moved a wave's unready mailboxes on at the close of its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    Ahead,
    Done,
}

#[derive(Debug, Clone)]
pub struct Wave {
    pub(crate) db_id: i64,
    pub name: String,
    pub window_start: Timestamp,
    pub window_end: Timestamp,
    pub prestage_start: Timestamp,
    /// Cut-overs the window is planned for.
    pub(crate) capacity: u32,
    /// Mailbox indices in plan order (pilot, priority, databases interleaved).
    pub(crate) members: Vec<u32>,
    /// Next member to consider for submission.
    pub(crate) submit_cursor: usize,
    pub poll: Poll,
    pub close: Close,
    /// When this run last read the wave's whole batch from the service (none yet).
    pub(crate) listed_at: Option<Timestamp>,
    pub(crate) in_scope: bool,
    /// Members of this wave per state.
    pub counts: [u32; 10],
}

impl Wave {
    pub(crate) fn of(w: WaveRow, scope: Option<&[String]>) -> Wave {
        Wave {
            in_scope: scope.is_none_or(|s| s.contains(&w.name)),
            db_id: w.id,
            name: w.name,
            window_start: w.window_start,
            window_end: w.window_end,
            prestage_start: w.prestage_start,
            capacity: w.capacity.clamp(0, u32::MAX as i64) as u32,
            members: Vec::new(),
            submit_cursor: 0,
            poll: Poll::Off,
            close: Close::Ahead,
            listed_at: None,
            counts: [0; 10],
        }
    }

    /// Members now, in every state.
    pub(crate) fn size(&self) -> u32 {
        self.counts.iter().sum()
    }

    pub fn count(&self, s: State) -> u32 {
        self.counts[s.code() as usize]
    }

    /// Members with a move request the service is still working on.
    pub(crate) fn active(&self) -> u32 {
        [
            State::Submitted,
            State::Syncing,
            State::Synced,
            State::Completing,
            State::Failed,
        ]
        .iter()
        .map(|&s| self.count(s))
        .sum()
    }

    /// Members that would need their cut-over moved if the window closed now.
    pub(crate) fn unready(&self) -> u32 {
        [
            State::Planned,
            State::Submitted,
            State::Syncing,
            State::Synced,
            State::Failed,
        ]
        .iter()
        .map(|&s| self.count(s))
        .sum()
    }

    pub(crate) fn next_poll(&self) -> Option<Timestamp> {
        match self.poll {
            Poll::At(t) => Some(t),
            Poll::Off | Poll::Listing => None,
        }
    }

    /// Asks for a listing no later than `at`.
    pub(crate) fn poll_by(&mut self, at: Timestamp) {
        self.poll = match self.poll {
            Poll::Listing => Poll::Listing,
            Poll::At(t) => Poll::At(t.min(at)),
            Poll::Off => Poll::At(at),
        };
    }
}

/// A request's ExchangeGuid in two words: 8-byte aligned and without an `Option` tag, which keeps
/// [`Mailbox`] at 56 bytes. All zeros means not known yet (no request has that guid).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Guid([u64; 2]);

impl Guid {
    pub fn of(g: Option<u128>) -> Guid {
        let g = g.unwrap_or(0);
        Guid([(g >> 64) as u64, g as u64])
    }

    pub fn get(self) -> Option<u128> {
        let g = ((self.0[0] as u128) << 64) | self.0[1] as u128;
        (g != 0).then_some(g)
    }
}

/// What the run is doing about a mailbox right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Nothing: the next listing or the submitter decides.
    Idle,
    /// In one of the run's queues, waiting for a call slot.
    Queued,
    /// A call about it is in flight.
    Calling,
    /// Waiting for a time (replication lag, a resume's backoff, an uncertain create's probe).
    Waiting,
}

#[derive(Debug, Clone)]
pub struct Mailbox {
    pub id: i64,
    /// The address's place in [`RunState::addresses`].
    address: (u32, u32),
    pub wave: u32,
    pub state: State,
    pub class: Option<FailureClass>,
    /// Times this mailbox was submitted or resumed.
    pub(crate) attempts: u16,
    pub work: Work,
    /// Its data-consistency grade was read in the current window.
    pub(crate) dcs_checked: bool,
    /// The move request's ExchangeGuid, once known.
    pub(crate) guid: Guid,
    /// Unix ms of the last submission (0: never).
    pub(crate) submitted_at: i64,
}

/// Where a request's cut-over goes when it moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// Into this wave's batch and window.
    Wave(u32),
    /// No window is left for it (see [`NoWindow`]): the cut-over is pushed far out and the
    /// mailbox held, with the reason, for the operator.
    Hold(NoWindow),
}

/// A create whose outcome is not known yet: the intent recorded before it, the call's
/// `client-request-id`, and when it was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenCreate {
    pub intent: i64,
    pub correlation: [u8; 16],
    pub(crate) attempted: Timestamp,
    /// The wave every attempt so far was made for; `None` when they differ or are not known. A
    /// request adopted later is moved into the mailbox's wave unless it was made for it.
    pub(crate) made_for: Option<u32>,
    /// It asks again about an earlier create in doubt.
    pub(crate) probe: bool,
}

/// Due times as Unix milliseconds, soonest first.
pub(crate) type Due<T> = BinaryHeap<Reverse<(i64, T)>>;

pub(crate) struct RunState {
    pub waves: Vec<Wave>,
    pub mailboxes: Vec<Mailbox>,
    /// Every mailbox's address, back to back (one allocation instead of millions).
    addresses: String,
    pub counts: [u64; 10],
    /// Creates on the wire now.
    pub(crate) creating: u64,
    /// Creates without an outcome: on the wire, or in doubt (a crash, a timeout, a 5xx). A mailbox
    /// in doubt, and only it, waits for evidence.
    pub(crate) open_creates: rustc_hash::FxHashMap<u32, OpenCreate>,
    /// When an uncertain create is asked again.
    pub(crate) probes: Due<u32>,
    /// Transient failures to resume.
    pub(crate) resumes: Due<u32>,
    pub(crate) stats_queue: VecDeque<u32>,
    /// Finished moves whose figures are still to be read (`run.collect_statistics`).
    pub(crate) figures_queue: VecDeque<u32>,
    pub(crate) get_queue: VecDeque<u32>,
    pub(crate) approvals: VecDeque<u32>,
    pub(crate) reschedules: VecDeque<(u32, Target)>,
    /// Reschedules waiting for a request to replicate.
    pub later: Due<(u32, Target)>,
}

pub(crate) fn parse_guid(s: &str) -> Option<u128> {
    uuid::Uuid::parse_str(s).ok().map(|u| u.as_u128())
}

pub fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

pub(crate) fn from_ms(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::MIN)
}

impl RunState {
    pub fn load(
        waves: Vec<WaveRow>,
        scope: Option<&[String]>,
        mut each: impl FnMut(&mut dyn FnMut(MailboxRow)),
    ) -> RunState {
        let wave_index: HashMap<i64, u32> = waves
            .iter()
            .enumerate()
            .map(|(i, w)| (w.id, i as u32))
            .collect();
        let mut state = RunState {
            waves: waves.into_iter().map(|w| Wave::of(w, scope)).collect(),
            mailboxes: Vec::new(),
            addresses: String::new(),
            counts: [0; 10],
            creating: 0,
            open_creates: rustc_hash::FxHashMap::default(),
            probes: BinaryHeap::new(),
            resumes: BinaryHeap::new(),
            stats_queue: VecDeque::new(),
            figures_queue: VecDeque::new(),
            get_queue: VecDeque::new(),
            approvals: VecDeque::new(),
            reschedules: VecDeque::new(),
            later: BinaryHeap::new(),
        };
        each(&mut |row: MailboxRow| {
            let Some(&w) = wave_index.get(&row.wave_id) else {
                return;
            };
            if !state.waves[w as usize].in_scope {
                return;
            }
            let idx = state.mailboxes.len() as u32;
            state.counts[row.state.code() as usize] += 1;
            state.waves[w as usize].counts[row.state.code() as usize] += 1;
            state.waves[w as usize].members.push(idx);
            let address = (state.addresses.len() as u32, row.address.len() as u32);
            state.addresses.push_str(&row.address);
            state.mailboxes.push(Mailbox {
                id: row.id,
                address,
                wave: w,
                state: row.state,
                class: row.failure_class,
                attempts: row.attempts.clamp(0, u16::MAX as i64) as u16,
                work: Work::Idle,
                dcs_checked: false,
                guid: Guid::of(row.request_id.as_deref().and_then(parse_guid)),
                submitted_at: row.submitted_at.map(|t| t.as_millisecond()).unwrap_or(0),
            });
        });
        state.mailboxes.shrink_to_fit();
        state.addresses.shrink_to_fit();
        state
    }

    pub fn address(&self, idx: u32) -> &str {
        let (at, len) = self.mailboxes[idx as usize].address;
        &self.addresses[at as usize..(at + len) as usize]
    }

    /// The run's mailboxes among database ids `ids`: id -> index (one pass over the estate).
    pub(crate) fn indices_of(&self, ids: impl IntoIterator<Item = i64>) -> HashMap<i64, u32> {
        let wanted: std::collections::HashSet<i64> = ids.into_iter().collect();
        self.mailboxes
            .iter()
            .enumerate()
            .filter(|(_, m)| wanted.contains(&m.id))
            .map(|(i, m)| (m.id, i as u32))
            .collect()
    }

    /// The wave index of a database wave id.
    pub(crate) fn wave_of_db(&self, db_id: i64) -> Option<u32> {
        self.waves
            .iter()
            .position(|w| w.db_id == db_id)
            .map(|w| w as u32)
    }

    pub fn count(&self, s: State) -> u64 {
        self.counts[s.code() as usize]
    }

    /// When the mailbox's request was created (for telling replication lag from absence).
    pub fn created_at(&self, idx: u32) -> Option<Timestamp> {
        let m = &self.mailboxes[idx as usize];
        (m.submitted_at > 0)
            .then(|| Timestamp::from_millisecond(m.submitted_at).ok())
            .flatten()
    }

    /// Moves submitted and still copying, plus creates on the wire or in doubt.
    pub fn in_flight(&self) -> u64 {
        self.count(State::Submitted) + self.count(State::Syncing) + self.open_creates.len() as u64
    }

    /// A create for this mailbox has no outcome yet.
    pub(crate) fn has_open_create(&self, idx: u32) -> bool {
        self.open_creates.contains_key(&idx)
    }

    /// Creates in doubt (not on the wire).
    pub(crate) fn uncertain(&self) -> u64 {
        self.open_creates.len() as u64 - self.creating
    }

    /// Records a new state in the view (the caller writes it to the store).
    pub(crate) fn set_state(&mut self, idx: u32, to: State) {
        let m = &mut self.mailboxes[idx as usize];
        self.counts[m.state.code() as usize] -= 1;
        self.counts[to.code() as usize] += 1;
        let w = &mut self.waves[m.wave as usize];
        w.counts[m.state.code() as usize] -= 1;
        w.counts[to.code() as usize] += 1;
        m.state = to;
        if to != State::Failed {
            m.class = None;
        }
    }

    /// Work remains: mailboxes not yet finished and not waiting for the operator.
    pub(crate) fn unfinished(&self) -> u64 {
        [
            State::Planned,
            State::Submitted,
            State::Syncing,
            State::Synced,
            State::Completing,
        ]
        .iter()
        .map(|&s| self.count(s))
        .sum::<u64>()
            + self.resumes.len() as u64
    }

    pub(crate) fn counts_by_name(&self) -> std::collections::BTreeMap<&'static str, u64> {
        ALL_STATES
            .iter()
            .map(|s| (s.name(), self.count(*s)))
            .collect()
    }

    /// Moves a mailbox to another wave in the view.
    pub(crate) fn move_to_wave(&mut self, idx: u32, to: u32) {
        let m = &mut self.mailboxes[idx as usize];
        let code = m.state.code() as usize;
        if m.wave == to {
            return;
        }
        self.waves[m.wave as usize].counts[code] -= 1;
        self.waves[to as usize].counts[code] += 1;
        m.wave = to;
        m.dcs_checked = false;
        self.waves[to as usize].members.push(idx);
        // The new wave's submitter must see it even if its cursor has passed.
        let w = &mut self.waves[to as usize];
        w.submit_cursor = w.submit_cursor.min(w.members.len() - 1);
    }

    /// The first wave after `w` whose window starts after `not_before`.
    pub fn next_wave(&self, w: u32, not_before: Timestamp) -> Target {
        super::policy::next_window(
            self.waves.iter().map(|x| x.window_start),
            self.waves[w as usize].window_start,
            not_before,
        )
        .map_or(Target::Hold(NoWindow::NonePlanned), |i| {
            Target::Wave(i as u32)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guid_survives_its_two_words_and_zero_means_unknown() {
        let g = parse_guid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
        assert_eq!(Guid::of(g).get(), g);
        let high = Some(u128::MAX - 1);
        assert_eq!(Guid::of(high).get(), high);
        assert_eq!(Guid::of(None).get(), None);
        assert_eq!(Guid::default().get(), None);
    }

    #[test]
    fn a_mailbox_stays_small_enough_for_two_million() {
        assert!(
            std::mem::size_of::<Mailbox>() <= 56,
            "{}",
            std::mem::size_of::<Mailbox>()
        );
    }
}
