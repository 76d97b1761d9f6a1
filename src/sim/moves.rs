//! The simulated Mailbox Replication Service: move requests and their life on the service.
//!
//! Event-driven: each move keeps the times of what happens to it next (copy done, failure, cut-over
//! done) in a heap, and the simulation is advanced to "now" before every call, processing due events
//! in time order. Queued moves start when a MaxConcurrentMigrations slot frees; a move copies at the
//! endpoint's throughput shared by a full complement of moves, plus a cost per item; synced moves
//! wait for CompleteAfter, then queue for one of the finalisation slots.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use jiff::Timestamp;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::value::{RawValue, to_raw_value};
use serde_json::{Map, Value, json};

use super::Profile;
use crate::inventory::index::AddressIndex;

/// `Get-MoveRequest -Status` values in Exchange Online.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Queued,
    InProgress,
    Synced,
    AutoSuspended,
    Suspended,
    CompletionInProgress,
    Completed,
    CompletedWithWarning,
    CompletedWithSkippedItems,
    Failed,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Queued => "Queued",
            Status::InProgress => "InProgress",
            Status::Synced => "Synced",
            Status::AutoSuspended => "AutoSuspended",
            Status::Suspended => "Suspended",
            Status::CompletionInProgress => "CompletionInProgress",
            Status::Completed => "Completed",
            Status::CompletedWithWarning => "CompletedWithWarning",
            Status::CompletedWithSkippedItems => "CompletedWithSkippedItems",
            Status::Failed => "Failed",
        }
    }

    fn parse(s: &str) -> Option<Status> {
        ALL.iter()
            .copied()
            .find(|st| st.name().eq_ignore_ascii_case(s))
    }

    pub fn is_completed(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::CompletedWithWarning | Status::CompletedWithSkippedItems
        )
    }
}

const ALL: [Status; 10] = [
    Status::Queued,
    Status::InProgress,
    Status::Synced,
    Status::AutoSuspended,
    Status::Suspended,
    Status::CompletionInProgress,
    Status::Completed,
    Status::CompletedWithWarning,
    Status::CompletedWithSkippedItems,
    Status::Failed,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dcs {
    Perfect,
    Good,
    Investigate,
    Poor,
}

impl Dcs {
    fn name(self) -> &'static str {
        match self {
            Dcs::Perfect => "Perfect",
            Dcs::Good => "Good",
            Dcs::Investigate => "Investigate",
            Dcs::Poor => "Poor",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Planned {
    None,
    Transient,
    Permanent,
}

const TRANSIENT_FAILURES: [(&str, &str); 2] = [
    (
        "StorageTransientException",
        "Transient error StorageTransientException has occurred. The system will retry. --> The remote server returned an error: (503) Service Unavailable.",
    ),
    (
        "CommunicationErrorTransientException",
        "The call to 'https://hybrid.contoso.com/EWS/mrsproxy.svc' failed. Error details: The operation has timed out.",
    ),
];

const PERMANENT_FAILURES: [(&str, &str); 2] = [
    (
        "MailboxReplicationPermanentException",
        "Error: The mailbox's source database is not available and the move can't continue. (MigrationPermanentException)",
    ),
    (
        "InvalidRecipientTypePermanentException",
        "Error: The target mailbox has an incompatible recipient type and the move can't continue.",
    ),
];

/// A simulated instant in Unix milliseconds; [`NEVER`] for "not set". `NEVER` is below every real
/// time, so `x > at` reads as "set and later than `at`", like `Option::is_some_and(|x| x > at)`.
type Ms = i64;
const NEVER: Ms = i64::MIN;

fn ms(t: Timestamp) -> Ms {
    t.as_millisecond()
}

fn ts(m: Ms) -> Option<Timestamp> {
    (m != NEVER)
        .then(|| Timestamp::from_millisecond(m).ok())
        .flatten()
}

/// Status details, by index (a move keeps one byte, not a string).
const DETAILS: [&str; 10] = [
    "Queued",
    "InitialSeeding",
    "StalledDueToTarget_DiskLatency",
    "IncrementalSync",
    "AutoSuspended",
    "Finalization",
    "Completed",
    "FailedOther",
    "TransientFailure",
    "Suspended",
];
const D_QUEUED: u8 = 0;
const D_SEEDING: u8 = 1;
const D_STALLED: u8 = 2;
const D_INCREMENTAL: u8 = 3;
const D_AUTOSUSPENDED: u8 = 4;
const D_FINALIZATION: u8 = 5;
const D_COMPLETED: u8 = 6;
const D_FAILED_OTHER: u8 = 7;
const D_TRANSIENT: u8 = 8;
const D_SUSPENDED: u8 = 9;

/// One move request on the service. Kept small (about 130 bytes): the benchmark holds 2.1 million.
#[derive(Debug, Clone)]
pub struct Move {
    /// The ExchangeGuid as two halves (a `u128` would align the whole move to 16 bytes).
    guid: [u64; 2],
    /// The identity's place in the service's name arena.
    name: (u32, u32),
    batch: u32,
    items: u32,
    size: u64,
    created: Ms,
    complete_after: Ms,
    start_after: Ms,
    /// Copy work left and in all, and when the current stretch of copying started (ms).
    copy_left: Ms,
    copy_total: Ms,
    copy_started: Ms,
    copy_done_at: Ms,
    fail_at: Ms,
    failed_at: Ms,
    completion_started: Ms,
    completed_at: Ms,
    /// Successful New-MoveRequest calls that made this request (a faithful service answers 1).
    pub creates: u32,
    pub status: Status,
    outcome: Status,
    pub(crate) dcs: Dcs,
    planned_failure: Planned,
    detail: u8,
    /// Index into the failure tables (0 none, 1-2 transient, 3-4 permanent).
    failure: u8,
    suspend_when_ready: bool,
    approved: bool,
    /// In the finalisation queue (waiting for a slot).
    waiting_completion: bool,
    /// Removed with Remove-MoveRequest: kept for the statistics, invisible to every cmdlet.
    removed: bool,
    /// What the stall (if any) is put down to, by `STALL_CAUSES`.
    stall_cause: u8,
    /// The source database, by `MoveService::sources` (`u16::MAX`: not known).
    source: u16,
    /// History for the statistics, in seconds after `created` (`UNSET`: not yet).
    started_s: u32,
    seeded_s: u32,
    /// When the current suspension began.
    paused_since_s: u32,
    /// Seconds copying (stretches that ended), suspended, failed; the stall drawn.
    progress_s: u32,
    suspended_s: u32,
    failed_s: u32,
    stall_s: u32,
}

const UNSET: u32 = u32::MAX;

/// Seconds from `from` to `to` (both Unix ms), for the compact history fields.
fn span_s(from: Ms, to: Ms) -> u32 {
    ((to - from).max(0) / 1000).min(UNSET as i64 - 1) as u32
}

impl Move {
    pub fn detail(&self) -> &'static str {
        DETAILS[self.detail as usize]
    }

    pub fn created(&self) -> Timestamp {
        ts(self.created).unwrap_or_default()
    }

    pub fn complete_after(&self) -> Option<Timestamp> {
        ts(self.complete_after)
    }

    pub fn completion_started(&self) -> Option<Timestamp> {
        ts(self.completion_started)
    }

    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// Copy work left at `at` (the current stretch of copying counted in).
    fn copy_left_at(&self, at: Ms) -> Ms {
        let done = if self.copy_started == NEVER {
            0
        } else {
            at - self.copy_started
        };
        (self.copy_left - done).max(0)
    }

    /// Stops copying at `at` (failure, suspension), keeping the work left.
    fn stop_copying(&mut self, at: Ms) {
        self.end_stretch(at);
        self.copy_left = self.copy_left_at(at);
        self.copy_started = NEVER;
        self.copy_done_at = NEVER;
        self.fail_at = NEVER;
    }

    /// Counts the current stretch of copying into the time in progress.
    fn end_stretch(&mut self, at: Ms) {
        if self.copy_started != NEVER {
            self.progress_s = self
                .progress_s
                .saturating_add(span_s(self.copy_started, at));
        }
    }

    /// Seconds in progress up to `at`.
    fn in_progress_s(&self, at: Ms) -> u32 {
        let current = if self.status == Status::InProgress && self.copy_started != NEVER {
            span_s(self.copy_started, at)
        } else {
            0
        };
        self.progress_s.saturating_add(current)
    }

    pub(crate) fn guid(&self) -> u128 {
        ((self.guid[0] as u128) << 64) | self.guid[1] as u128
    }

    fn at_s(&self, s: u32) -> Option<Timestamp> {
        (s != UNSET)
            .then(|| ts(self.created + s as i64 * 1000))
            .flatten()
    }

    fn failure(&self) -> Option<(&'static str, &'static str)> {
        match self.failure {
            1 | 2 => Some(TRANSIENT_FAILURES[self.failure as usize - 1]),
            3 | 4 => Some(PERMANENT_FAILURES[self.failure as usize - 3]),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    CopyDone,
    Fail,
    CompleteAfter,
    CompletionDone,
    StartAfter,
}

/// An error as the service would answer it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceFault {
    pub status: u16,
    /// `None` for an empty body (403 on an unknown cmdlet).
    pub body: Option<Value>,
    pub retry_after: Option<f64>,
}

pub(crate) fn cmdlet_error(
    status: u16,
    code: &str,
    err_id: &str,
    exception: &str,
    text: &str,
) -> ServiceFault {
    ServiceFault {
        status,
        body: Some(json!({"error": {
            "code": code,
            "message": "Error executing cmdlet",
            "details": [{"code": "Client", "target": "", "message": format!("{err_id}|{exception}|{text}")}],
            "innererror": {"message": text, "type": exception}
        }})),
        retry_after: None,
    }
}

fn not_found(identity: &str) -> ServiceFault {
    cmdlet_error(
        404,
        "NotFound",
        "Ex6F9304",
        "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
        &format!(
            "The operation couldn't be performed because object '{identity}' couldn't be found on 'AM6PR02A008DC01.EURPRD02.PROD.OUTLOOK.COM'."
        ),
    )
}

fn bad_request(text: &str) -> ServiceFault {
    cmdlet_error(
        400,
        "BadRequest",
        "Ex2E3F70",
        "Microsoft.Exchange.Management.Tasks.ParameterBindingException",
        text,
    )
}

/// Parses a DateTime parameter; a value without a zone is UTC, as the service reads it.
fn parse_time(v: &Value) -> Option<Timestamp> {
    let s = v.as_str()?;
    s.parse::<Timestamp>()
        .ok()
        .or_else(|| format!("{s}Z").parse::<Timestamp>().ok())
}

/// A ByteQuantifiedSize as the service prints it: `1.234 GB (1,325,000,000 bytes)`.
pub fn byte_quantified(bytes: u64) -> String {
    let grouped = crate::format::thousands(bytes);
    let (v, unit) = match bytes {
        b if b >= 1 << 30 => (b as f64 / (1u64 << 30) as f64, "GB"),
        b if b >= 1 << 20 => (b as f64 / (1u64 << 20) as f64, "MB"),
        b if b >= 1 << 10 => (b as f64 / (1u64 << 10) as f64, "KB"),
        b => (b as f64, "B"),
    };
    format!("{v:.3} {unit} ({grouped} bytes)")
}

/// A time parameter to the millisecond, rounded up: the service never acts before the time given.
fn ms_ceil(t: Timestamp) -> Ms {
    (t.as_nanosecond() + 999_999).div_euclid(1_000_000) as Ms
}

/// Seconds as whole milliseconds (rounded up, never negative).
fn secs(d: f64) -> Ms {
    (d.max(0.0) * 1000.0).ceil() as Ms
}

/// What the simulated service has been asked, for tests and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CallStats {
    /// Per cmdlet: (answered successfully, answered with an error).
    pub by_cmdlet: std::collections::BTreeMap<String, (u64, u64)>,
    pub throttled: u64,
    pub injected_faults: u64,
    pub(crate) duplicate_creates: u64,
    /// InvokeCommand requests that came without a `client-request-id` header.
    pub missing_client_request_id: u64,
}

/// Where the next page of a listing starts: the position in the listed set (so a page costs its
/// own length, not everything before it) and how many items were served so far (for ResultSize).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    pub(crate) pos: usize,
    pub served: usize,
}

impl Cursor {
    /// The opaque skip token (`<pos>.<served>`).
    pub fn token(self) -> String {
        format!("{}.{}", self.pos, self.served)
    }

    pub fn parse(token: &str) -> Option<Cursor> {
        let (pos, served) = token.split_once('.')?;
        Some(Cursor {
            pos: pos.parse().ok()?,
            served: served.parse().ok()?,
        })
    }
}

/// A cmdlet's answer: the `value` array as JSON text (built straight from the service's records,
/// as the real service streams it), the cursor of the next page if any, and warnings.
#[derive(Debug)]
pub struct Answer {
    pub value: Box<RawValue>,
    pub next: Option<Cursor>,
    pub(crate) warnings: Vec<String>,
}

impl Answer {
    fn values(values: Vec<Value>) -> Answer {
        Answer {
            value: to_raw_value(&values).expect("JSON values serialize"),
            next: None,
            warnings: Vec::new(),
        }
    }

    fn empty(warnings: Vec<String>) -> Answer {
        Answer {
            warnings,
            ..Answer::values(Vec::new())
        }
    }

    /// The value array parsed (tests).
    pub fn parsed(&self) -> Vec<Value> {
        serde_json::from_str(self.value.get()).expect("answers are JSON arrays")
    }
}

/// What a new move is made of.
struct NewMoveFacts<'a> {
    identity: &'a str,
    batch: &'a str,
    complete_after: Ms,
    start_after: Ms,
    suspend_when_ready: bool,
    /// Size, items and source of the mailbox, when the service knows them.
    known: Option<(u64, u32, u16)>,
    /// The share already copied.
    done: f64,
    /// Findable by identity (false for the forecast's anonymous moves).
    indexed: bool,
}

struct Known {
    size: u64,
    items: u32,
    source: u16,
}

/// How fast a source's servers copy, against the usual: fixed per source name (a hash), within
/// 1 ± `spread`.
fn source_speed(sources: &[String], source: u16, spread: f64) -> f64 {
    let Some(name) = sources.get(source as usize) else {
        return 1.0;
    };
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let u = (h >> 11) as f64 / (1u64 << 53) as f64;
    (1.0 + spread.clamp(0.0, 0.9) * (2.0 * u - 1.0)).max(0.05)
}

pub struct MoveService {
    profile: Profile,
    rng: ChaCha8Rng,
    moves: Vec<Move>,
    /// Every identity ever created, back to back (a move keeps its offset and length).
    names: String,
    index: AddressIndex,
    batches: Vec<String>,
    batch_index: HashMap<String, u32>,
    by_batch: Vec<Vec<u32>>,
    events: BinaryHeap<Reverse<(Ms, Event, u32)>>,
    copy_queue: VecDeque<u32>,
    copying: u32,
    completion_queue: VecDeque<u32>,
    completing: u32,
    /// What the service knows of the source mailboxes, by lower-case address (see [`Self::know`]).
    known: HashMap<String, Known>,
    sources: Vec<String>,
    source_index: HashMap<String, u16>,
    pub stats: CallStats,
    /// Simulated time the state has been advanced to.
    now: Timestamp,
}

impl MoveService {
    pub fn new(profile: Profile, seed: u64, now: Timestamp) -> MoveService {
        MoveService {
            profile,
            rng: ChaCha8Rng::seed_from_u64(seed),
            moves: Vec::new(),
            names: String::new(),
            index: AddressIndex::default(),
            batches: Vec::new(),
            batch_index: HashMap::new(),
            by_batch: Vec::new(),
            events: BinaryHeap::new(),
            copy_queue: VecDeque::new(),
            copying: 0,
            completion_queue: VecDeque::new(),
            completing: 0,
            known: HashMap::new(),
            sources: Vec::new(),
            source_index: HashMap::new(),
            stats: CallStats::default(),
            now,
        }
    }

    /// Tells the service the facts of a source mailbox (the real one reads them on-premises): its
    /// moves then copy `size` bytes and `items` items from `source_database`, whose servers run at
    /// their own speed. Without it a move's size is drawn at random.
    pub fn know(&mut self, address: &str, size: u64, items: u32, source_database: Option<&str>) {
        let source = match source_database {
            Some(db) if !db.is_empty() => self.source_id(db),
            _ => u16::MAX,
        };
        self.known.insert(
            address.to_ascii_lowercase(),
            Known {
                size,
                items,
                source,
            },
        );
    }

    fn source_id(&mut self, db: &str) -> u16 {
        if let Some(&i) = self.source_index.get(db) {
            return i;
        }
        if self.sources.len() >= u16::MAX as usize - 1 {
            return u16::MAX;
        }
        self.sources.push(db.to_string());
        let i = (self.sources.len() - 1) as u16;
        self.source_index.insert(db.to_string(), i);
        i
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Changes how the service behaves from now on (requests made from now on, for instance
    /// no permanent failures once "the on-premises team fixed the server").
    pub fn profile_mut(&mut self) -> &mut Profile {
        &mut self.profile
    }

    pub fn moves(&self) -> &[Move] {
        &self.moves
    }

    /// The identity a move was created for.
    pub fn identity_of(&self, m: &Move) -> &str {
        let (at, len) = m.name;
        &self.names[at as usize..(at + len) as usize]
    }

    /// The batch a move is in (it cannot change once the move's cut-over has started).
    pub fn batch_of(&self, m: &Move) -> &str {
        &self.batches[m.batch as usize]
    }

    /// A move's identity as the index sees it: none once removed.
    fn live_name(&self, id: u32) -> &str {
        let m = &self.moves[id as usize];
        if m.removed { "" } else { self.identity_of(m) }
    }

    pub fn find(&self, identity: &str) -> Option<&Move> {
        self.lookup(identity).map(|i| &self.moves[i as usize])
    }

    fn lookup(&self, identity: &str) -> Option<u32> {
        self.index.get(identity, |i| self.live_name(i))
    }

    fn schedule(&mut self, at: Ms, event: Event, id: u32) {
        self.events.push(Reverse((at, event, id)));
    }

    /// Processes everything due up to `now`, in time order.
    pub(crate) fn advance(&mut self, now: Timestamp) {
        while let Some(&Reverse((at, event, id))) = self.events.peek() {
            if at > now.as_millisecond() {
                break;
            }
            self.events.pop();
            if let Ok(t) = Timestamp::from_millisecond(at) {
                self.now = self.now.max(t);
            }
            self.handle(at, event, id);
        }
        self.now = self.now.max(now);
    }

    fn handle(&mut self, at: Ms, event: Event, id: u32) {
        let m = &self.moves[id as usize];
        match event {
            Event::CopyDone if m.status == Status::InProgress && m.copy_done_at == at => {
                self.copying -= 1;
                let m = &mut self.moves[id as usize];
                m.end_stretch(at);
                if m.seeded_s == UNSET {
                    m.seeded_s = span_s(m.created, at);
                }
                m.copy_left = 0;
                m.copy_started = NEVER;
                m.copy_done_at = NEVER;
                if m.suspend_when_ready {
                    m.paused_since_s = span_s(m.created, at);
                    m.status = Status::AutoSuspended;
                    m.detail = D_AUTOSUSPENDED;
                } else {
                    m.status = Status::Synced;
                    m.detail = D_INCREMENTAL;
                    self.maybe_queue_completion(id, at);
                }
                self.start_copies(at);
            }
            Event::Fail if m.status == Status::InProgress && m.fail_at == at => {
                self.copying -= 1;
                let m = &mut self.moves[id as usize];
                m.stop_copying(at);
                let permanent = m.planned_failure == Planned::Permanent;
                // A transient failure happens once; a permanent one every time the move is resumed.
                if m.planned_failure == Planned::Transient {
                    m.planned_failure = Planned::None;
                }
                m.failure = (m.guid() % 2) as u8 + if permanent { 3 } else { 1 };
                m.failed_at = at;
                m.status = Status::Failed;
                m.detail = if permanent {
                    D_FAILED_OTHER
                } else {
                    D_TRANSIENT
                };
                self.start_copies(at);
            }
            Event::StartAfter if m.status == Status::Queued => self.start_copies(at),
            Event::CompleteAfter if m.status == Status::Synced => {
                self.maybe_queue_completion(id, at)
            }
            Event::CompletionDone
                if m.status == Status::CompletionInProgress && m.completed_at == at =>
            {
                self.completing -= 1;
                let m = &mut self.moves[id as usize];
                m.status = m.outcome;
                m.detail = D_COMPLETED;
                self.start_completions(at);
            }
            _ => {} // stale: the move changed since this was scheduled
        }
    }

    /// A synced move whose CompleteAfter has come, and that may complete, queues for finalisation.
    fn maybe_queue_completion(&mut self, id: u32, at: Ms) {
        let m = &mut self.moves[id as usize];
        if m.status != Status::Synced || m.waiting_completion {
            return;
        }
        if m.complete_after > at {
            let when = m.complete_after;
            self.schedule(when, Event::CompleteAfter, id);
            return;
        }
        match m.dcs {
            Dcs::Poor => {
                m.detail = D_INCREMENTAL;
                return;
            }
            Dcs::Investigate if !m.approved => return,
            _ => {}
        }
        m.waiting_completion = true;
        self.completion_queue.push_back(id);
        self.start_completions(at);
    }

    fn start_completions(&mut self, at: Ms) {
        while self.completing < self.profile.max_concurrent_completions {
            let Some(id) = self.completion_queue.pop_front() else {
                break;
            };
            let m = &mut self.moves[id as usize];
            m.waiting_completion = false;
            // Still eligible? (CompleteAfter may have been moved, or the request suspended.)
            if m.status != Status::Synced {
                continue;
            }
            if m.complete_after > at {
                // Moved later while it waited for a slot: it queues again when that time comes
                // (nothing else would wake it, and the service never starts a cut-over early).
                let when = m.complete_after;
                self.schedule(when, Event::CompleteAfter, id);
                continue;
            }
            let minutes = self.profile.finalization_minutes * (0.5 + self.rng.random::<f64>());
            let done = at + secs(minutes * 60.0);
            let roll: f64 = self.rng.random();
            let m = &mut self.moves[id as usize];
            m.outcome = if m.dcs == Dcs::Investigate
                || roll < self.profile.completed_with_skipped_items_share
            {
                Status::CompletedWithSkippedItems
            } else if roll
                < self.profile.completed_with_skipped_items_share
                    + self.profile.completed_with_warning_share
            {
                Status::CompletedWithWarning
            } else {
                Status::Completed
            };
            m.status = Status::CompletionInProgress;
            m.detail = D_FINALIZATION;
            m.completion_started = at;
            m.completed_at = done;
            self.completing += 1;
            self.schedule(done, Event::CompletionDone, id);
        }
    }

    fn start_copies(&mut self, at: Ms) {
        let mut deferred = Vec::new();
        while self.copying < self.profile.max_concurrent_migrations {
            let Some(id) = self.copy_queue.pop_front() else {
                break;
            };
            let m = &self.moves[id as usize];
            if m.status != Status::Queued {
                continue;
            }
            if m.start_after > at {
                deferred.push(id);
                continue;
            }
            let m = &mut self.moves[id as usize];
            m.status = Status::InProgress;
            // A move stalls once, at its first start.
            let stall_left = if m.started_s == UNSET {
                m.stall_s as Ms * 1000
            } else {
                0
            };
            m.detail = if stall_left > 0 { D_STALLED } else { D_SEEDING };
            m.copy_started = at;
            if m.started_s == UNSET {
                m.started_s = span_s(m.created, at);
            }
            let done = at + m.copy_left + stall_left;
            m.copy_done_at = done;
            self.copying += 1;
            if m.planned_failure != Planned::None {
                let frac: f64 = self.rng.random_range(0.1..0.9);
                let m = &mut self.moves[id as usize];
                let when = at + (m.copy_left as f64 * frac).ceil() as Ms;
                m.fail_at = when;
                self.schedule(when, Event::Fail, id);
            } else {
                self.schedule(done, Event::CopyDone, id);
            }
        }
        for id in deferred.into_iter().rev() {
            self.copy_queue.push_front(id);
        }
    }

    fn visible(&self, id: u32) -> bool {
        let m = &self.moves[id as usize];
        !m.removed && m.created + secs(self.profile.replication_lag_seconds) <= ms(self.now)
    }

    fn now_ms(&self) -> Ms {
        ms(self.now)
    }

    // --- cmdlets ------------------------------------------------------------------------------------

    /// Runs a cmdlet at `now`. List cmdlets return one page (from `cursor`, at most `limit` items)
    /// and the cursor of the next.
    pub fn run(
        &mut self,
        now: Timestamp,
        cmdlet: &str,
        params: &Map<String, Value>,
        cursor: Cursor,
        limit: usize,
    ) -> Result<Answer, ServiceFault> {
        self.advance(now);
        let result = match cmdlet {
            "New-MoveRequest" => self
                .new_move_request(params)
                .map(|v| Answer::values(vec![v])),
            "Get-MoveRequest" => self.get_move_request(params, cursor, limit),
            "Get-MoveRequestStatistics" => self.statistics(params).map(|v| Answer::values(vec![v])),
            "Set-MoveRequest" => self.set_move_request(params).map(Answer::empty),
            "Resume-MoveRequest" => self.resume(params).map(|_| Answer::empty(vec![])),
            "Suspend-MoveRequest" => self.suspend(params).map(|_| Answer::empty(vec![])),
            "Remove-MoveRequest" => self.remove(params).map(|_| Answer::empty(vec![])),
            "Get-MigrationEndpoint" => Ok(Answer::values(vec![json!({
                "Identity": params.get("Identity").and_then(Value::as_str).unwrap_or("Hybrid Migration Endpoint - EWS (Default Web Site)"),
                "EndpointType": "ExchangeRemoteMove",
                "RemoteServer": "hybrid.contoso.com",
                "MaxConcurrentMigrations": self.profile.max_concurrent_migrations,
                "MaxConcurrentIncrementalSyncs": self.profile.max_concurrent_incremental_syncs,
            })])),
            // An unknown cmdlet, or one outside the app's role: 403 with an empty body.
            _ => Err(ServiceFault {
                status: 403,
                body: None,
                retry_after: None,
            }),
        };
        let entry = match self.stats.by_cmdlet.get_mut(cmdlet) {
            Some(e) => e,
            None => self.stats.by_cmdlet.entry(cmdlet.to_string()).or_default(),
        };
        match &result {
            Ok(_) => entry.0 += 1,
            Err(_) => entry.1 += 1,
        }
        result
    }

    fn check_params(params: &Map<String, Value>, allowed: &[&str]) -> Result<(), ServiceFault> {
        for key in params.keys() {
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(key)) {
                return Err(bad_request(&format!(
                    "A parameter cannot be found that matches parameter name '{key}'."
                )));
            }
        }
        Ok(())
    }

    fn identity(params: &Map<String, Value>) -> Result<&str, ServiceFault> {
        params
            .get("Identity")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                bad_request("Cannot bind argument to parameter 'Identity' because it is null.")
            })
    }

    /// The move for `Identity`, if it exists and has replicated.
    fn visible_move(&self, params: &Map<String, Value>) -> Result<u32, ServiceFault> {
        let identity = Self::identity(params)?;
        match self.lookup(identity) {
            Some(id) if self.visible(id) => Ok(id),
            _ => Err(not_found(identity)),
        }
    }

    fn batch_id(&mut self, batch: &str) -> u32 {
        match self.batch_index.get(batch) {
            Some(&b) => b,
            None => {
                let b = self.batches.len() as u32;
                self.batches.push(batch.to_string());
                self.batch_index.insert(batch.to_string(), b);
                self.by_batch.push(Vec::new());
                b
            }
        }
    }

    fn new_move_request(&mut self, params: &Map<String, Value>) -> Result<Value, ServiceFault> {
        Self::check_params(
            params,
            &[
                "Identity",
                "Remote",
                "RemoteHostName",
                "TargetDeliveryDomain",
                "BatchName",
                "CompleteAfter",
                "StartAfter",
                "SuspendWhenReadyToComplete",
                "IncrementalSyncInterval",
                "SourceEndpoint",
                "PrimaryOnly",
                "ArchiveOnly",
                "RemoteCredential",
            ],
        )?;
        let identity = Self::identity(params)?;
        for required in ["RemoteHostName", "TargetDeliveryDomain"] {
            if params
                .get(required)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(bad_request(&format!(
                    "The parameter '{required}' is required for a remote move."
                )));
            }
        }
        if params.get("Remote") != Some(&Value::Bool(true)) {
            return Err(bad_request(
                "Only remote (onboarding) moves are supported by this tenant.",
            ));
        }
        if let Some(existing) = self.lookup(identity) {
            self.stats.duplicate_creates += 1;
            let m = &self.moves[existing as usize];
            return Err(if m.status.is_completed() {
                cmdlet_error(
                    400,
                    "BadRequest",
                    "Ex9A8B77",
                    "Microsoft.Exchange.MailboxReplicationService.MailboxReplicationPermanentException",
                    &format!(
                        "Mailbox '{}' has a completed move request associated with it. Before you create a new move request for the mailbox, run the Remove-MoveRequest cmdlet to clear the completed move request.",
                        DisplayName(self.identity_of(m))
                    ),
                )
            } else {
                cmdlet_error(
                    400,
                    "BadRequest",
                    "Ex1C2D41",
                    "Microsoft.Exchange.Management.RecipientTasks.UserAlreadyBeingMigratedException",
                    &format!(
                        "The user '{identity}' already has a pending request. Please remove the existing request and resume the current batch or start a new batch for this user."
                    ),
                )
            });
        }
        let complete_after = params.get("CompleteAfter").and_then(parse_time);
        if params.contains_key("CompleteAfter") && complete_after.is_none() {
            return Err(bad_request(
                "Cannot process argument transformation on parameter 'CompleteAfter'. Cannot convert value to type System.DateTime.",
            ));
        }
        let start_after = params.get("StartAfter").and_then(parse_time);

        let suspend_when_ready =
            params.get("SuspendWhenReadyToComplete") == Some(&Value::Bool(true));
        let batch = params
            .get("BatchName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let known = self
            .known
            .get(&identity.to_ascii_lowercase())
            .map(|k| (k.size, k.items, k.source));
        let id = self.insert_move(NewMoveFacts {
            identity,
            batch: &batch,
            complete_after: complete_after.map_or(NEVER, ms_ceil),
            start_after: start_after.map_or(NEVER, ms_ceil),
            suspend_when_ready,
            known,
            done: 0.0,
            indexed: true,
        });
        let now = self.now_ms();
        // The service answers Queued; the job is picked up after the answer.
        let answer = self.request_value(id);
        self.start_copies(now);
        Ok(answer)
    }

    /// Makes a move request (the work of New-MoveRequest after its checks).
    fn insert_move(&mut self, f: NewMoveFacts<'_>) -> u32 {
        let p = &self.profile;
        let mut size = (self.rng.random::<f64>() * 3.0e9) as u64 + 50_000_000;
        let mut items = size / self.rng.random_range(40_000..120_000u64);
        let mut source = u16::MAX;
        if let Some(k) = f.known {
            (size, items, source) = (k.0.max(1), k.1 as u64, k.2);
        }
        let speed = source_speed(&self.sources, source, p.source_speed_spread);
        let share_gbph = p.throughput_gb_per_hour / p.max_concurrent_migrations.max(1) as f64;
        let copy = p.base_move_minutes * 60.0
            + size as f64 / 1e9 / (share_gbph * speed).max(1e-9) * 3600.0
            + items as f64 * p.seconds_per_item;
        let copy = copy * self.rng.random_range(0.8..1.25);
        let roll: f64 = self.rng.random();
        let planned = if roll < p.permanent_failure_share {
            Planned::Permanent
        } else if roll < p.permanent_failure_share + p.transient_failure_share {
            Planned::Transient
        } else {
            Planned::None
        };
        let dcs_roll: f64 = self.rng.random();
        let dcs = if dcs_roll < p.dcs_poor_share {
            Dcs::Poor
        } else if dcs_roll < p.dcs_poor_share + p.dcs_investigate_share {
            Dcs::Investigate
        } else if dcs_roll < 0.1 {
            Dcs::Good
        } else {
            Dcs::Perfect
        };
        let stall = if self.rng.random::<f64>() < p.stall_share {
            secs(p.stall_minutes * 60.0 * self.rng.random_range(0.5..1.5))
        } else {
            0
        };
        let guid: u128 = self.rng.random();
        let stall_cause = p
            .stall_causes
            .pick((guid >> 75) as f64 / (1u64 << 53) as f64);
        let batch_id = self.batch_id(f.batch);
        let id = self.moves.len() as u32;
        let name = (self.names.len() as u32, f.identity.len() as u32);
        self.names.push_str(f.identity);
        let now = self.now_ms();
        self.moves.push(Move {
            guid: [(guid >> 64) as u64, guid as u64],
            name,
            batch: batch_id,
            items: items.min(u32::MAX as u64) as u32,
            size,
            created: now,
            complete_after: f.complete_after,
            start_after: f.start_after,
            copy_left: secs(copy * (1.0 - f.done.clamp(0.0, 1.0))),
            copy_total: secs(copy),
            copy_started: NEVER,
            copy_done_at: NEVER,
            fail_at: NEVER,
            failed_at: NEVER,
            completion_started: NEVER,
            completed_at: NEVER,
            creates: 1,
            status: Status::Queued,
            outcome: Status::Completed,
            dcs,
            planned_failure: planned,
            detail: D_QUEUED,
            failure: 0,
            suspend_when_ready: f.suspend_when_ready,
            approved: false,
            waiting_completion: false,
            removed: false,
            stall_cause,
            source,
            started_s: UNSET,
            seeded_s: UNSET,
            paused_since_s: 0,
            progress_s: 0,
            suspended_s: 0,
            failed_s: 0,
            stall_s: span_s(0, stall),
        });
        if f.indexed {
            let (moves, names) = (&self.moves, &self.names);
            self.index.insert(
                &names[name.0 as usize..(name.0 + name.1) as usize],
                id,
                |i| {
                    let m = &moves[i as usize];
                    if m.removed {
                        ""
                    } else {
                        &names[m.name.0 as usize..(m.name.0 + m.name.1) as usize]
                    }
                },
            );
        }
        self.by_batch[batch_id as usize].push(id);
        if f.done >= 1.0 {
            // Already copied (a forecast's starting point): synced, waiting for its cut-over.
            let m = &mut self.moves[id as usize];
            m.copy_left = 0;
            m.started_s = 0;
            m.seeded_s = 0;
            m.status = Status::Synced;
            m.detail = D_INCREMENTAL;
            self.maybe_queue_completion(id, now);
            return id;
        }
        self.copy_queue.push_back(id);
        let start = self.moves[id as usize].start_after;
        if start > now {
            self.schedule(start, Event::StartAfter, id);
        }
        id
    }

    // --- direct access, for the forecast: no JSON, no identities, no budget ---------------------

    /// Creates a move at the simulated now: `done` is the share already copied (1 = synced).
    pub(crate) fn create_direct(
        &mut self,
        batch: &str,
        complete_after: Timestamp,
        facts: (u64, u32, Option<&str>),
        done: f64,
    ) -> u32 {
        let source = match facts.2 {
            Some(db) => self.source_id(db),
            None => u16::MAX,
        };
        let id = self.insert_move(NewMoveFacts {
            identity: "",
            batch,
            complete_after: ms_ceil(complete_after),
            start_after: NEVER,
            suspend_when_ready: false,
            known: Some((facts.0, facts.1, source)),
            done,
            indexed: false,
        });
        self.start_copies(self.now_ms());
        id
    }

    pub(crate) fn status_of(&self, id: u32) -> Status {
        self.moves[id as usize].status
    }

    /// A failed move's failure is permanent (resuming it fails again).
    pub(crate) fn failed_for_good(&self, id: u32) -> bool {
        let m = &self.moves[id as usize];
        m.planned_failure == Planned::Permanent || m.dcs == Dcs::Poor
    }

    /// Waits for approval of its skipped items (data consistency Investigate).
    pub(crate) fn awaits_approval(&self, id: u32) -> bool {
        let m = &self.moves[id as usize];
        m.dcs == Dcs::Investigate && !m.approved
    }

    pub(crate) fn completed_at(&self, id: u32) -> Option<Timestamp> {
        ts(self.moves[id as usize].completed_at)
    }

    pub(crate) fn set_complete_after_direct(&mut self, id: u32, at: Timestamp) {
        let now = self.now_ms();
        let m = &mut self.moves[id as usize];
        m.complete_after = ms_ceil(at);
        if m.status == Status::Synced {
            self.maybe_queue_completion(id, now);
        }
    }

    pub(crate) fn resume_direct(&mut self, id: u32) {
        if self.moves[id as usize].status == Status::Failed {
            let _ = self.resume_move(id);
        }
    }

    pub(crate) fn approve_direct(&mut self, id: u32) {
        let now = self.now_ms();
        self.moves[id as usize].approved = true;
        self.maybe_queue_completion(id, now);
    }

    /// When the next thing happens on the service by itself.
    pub(crate) fn next_event(&self) -> Option<Timestamp> {
        self.events.peek().and_then(|Reverse((at, _, _))| ts(*at))
    }

    /// Moves waiting for a copy slot, and copying.
    pub(crate) fn copy_load(&self) -> (usize, u32) {
        (self.copy_queue.len(), self.copying)
    }

    fn get_move_request(
        &mut self,
        params: &Map<String, Value>,
        cursor: Cursor,
        limit: usize,
    ) -> Result<Answer, ServiceFault> {
        Self::check_params(params, &["Identity", "BatchName", "Status", "ResultSize"])?;
        if params.contains_key("Identity") && params.contains_key("BatchName") {
            return Err(bad_request(
                "Parameter set cannot be resolved using the specified named parameters.",
            ));
        }
        if params.contains_key("Identity") {
            let id = self.visible_move(params)?;
            return Ok(Answer {
                value: to_raw_value(&[self.request_json(id)]).expect("serializes"),
                next: None,
                warnings: vec![],
            });
        }
        let status = match params.get("Status").and_then(Value::as_str) {
            Some(s) => Some(Status::parse(s).ok_or_else(|| {
                bad_request(&format!(
                    "Cannot convert value \"{s}\" to type RequestStatus."
                ))
            })?),
            None => None,
        };
        let result_size = match params.get("ResultSize") {
            None => 1000,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("Unlimited") => usize::MAX,
            Some(v) => v
                .as_u64()
                .map(|n| n as usize)
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| {
                    bad_request("Cannot convert value to type Unlimited`1[System.UInt32].")
                })?,
        };
        let batch = params.get("BatchName").and_then(Value::as_str);
        let listed: usize = match batch {
            Some(b) => self
                .batch_index
                .get(b)
                .map_or(0, |&bi| self.by_batch[bi as usize].len()),
            None => self.moves.len(),
        };
        let member = |pos: usize| -> u32 {
            match batch {
                Some(b) => self.by_batch[self.batch_index[b] as usize][pos],
                None => pos as u32,
            }
        };
        let matches = |id: u32| {
            self.visible(id) && status.is_none_or(|s| self.moves[id as usize].status == s)
        };
        // One page from the cursor: up to `limit` matches (within ResultSize), then look for one
        // more match to know whether another page follows.
        let room = limit.min(result_size.saturating_sub(cursor.served));
        let mut page: Vec<u32> = Vec::with_capacity(room.min(listed));
        let mut pos = cursor.pos;
        while pos < listed && page.len() < room {
            let id = member(pos);
            pos += 1;
            if matches(id) {
                page.push(id);
            }
        }
        let served = cursor.served + page.len();
        let more = served < result_size && (pos..listed).any(|p| matches(member(p)));
        let truncated = params.get("ResultSize").is_none()
            && served == 1000
            && (pos..listed).any(|p| matches(member(p)));
        let warnings = if truncated {
            vec!["By default, only the first 1000 items are returned. Use the ResultSize parameter to specify the number of items returned. To return all items, specify \"-ResultSize Unlimited\".".to_string()]
        } else {
            vec![]
        };
        let value = to_raw_value(
            &page
                .iter()
                .map(|&id| self.request_json(id))
                .collect::<Vec<_>>(),
        )
        .expect("move requests serialize");
        Ok(Answer {
            value,
            next: more.then_some(Cursor { pos, served }),
            warnings,
        })
    }

    fn statistics(&mut self, params: &Map<String, Value>) -> Result<Value, ServiceFault> {
        Self::check_params(params, &["Identity", "IncludeReport", "Diagnostic"])?;
        let id = self.visible_move(params)?;
        let now = self.now_ms();
        let m = &self.moves[id as usize];
        let total = m.copy_total.max(1000) as f64;
        let percent = match m.status {
            Status::Queued | Status::Suspended => {
                (100.0 * (1.0 - m.copy_left as f64 / total)) as u32 * 95 / 100
            }
            Status::InProgress | Status::Failed => {
                ((1.0 - m.copy_left_at(now) as f64 / total) * 95.0) as u32
            }
            Status::Synced | Status::AutoSuspended => 95,
            Status::CompletionInProgress => 98,
            _ => 100,
        };
        // Some data crosses twice (retried folders, and what a failed stretch had copied).
        let overhead = 1.0
            + (m.guid() >> 100) as f64 / (1u64 << 28) as f64 * 0.06
            + if m.failed_s > 0 || m.failure != 0 {
                0.15
            } else {
                0.0
            };
        let transferred = (m.size as f64 * percent as f64 / 100.0 * overhead) as u64;
        let mut v = self.request_value(id);
        let o = v.as_object_mut().expect("request json is an object");
        o.insert("PercentComplete".into(), json!(percent));
        o.insert(
            "BytesTransferred".into(),
            json!(byte_quantified(transferred)),
        );
        o.insert("TotalMailboxSize".into(), json!(byte_quantified(m.size)));
        o.insert("TotalMailboxItemCount".into(), json!(m.items));
        o.insert(
            "ItemsTransferred".into(),
            json!(m.items as u64 * percent as u64 / 100),
        );
        o.insert("DataConsistencyScore".into(), json!(m.dcs.name()));
        self.history(id, now, transferred, o);
        o.insert(
            "SyncStage".into(),
            json!(match m.status {
                Status::Queued => "None",
                Status::InProgress => "CopyingMessages",
                Status::Synced | Status::AutoSuspended => "IncrementalSync",
                Status::CompletionInProgress => "FinalIncrementalSync",
                _ => "SyncFinished",
            }),
        );
        match m.failure() {
            Some((kind, text)) if m.status == Status::Failed => {
                o.insert("FailureType".into(), json!(kind));
                o.insert(
                    "Message".into(),
                    json!(format!("{}{text}", self.profile.planted_text)),
                );
                o.insert(
                    "FailureTimestamp".into(),
                    json!(ts(m.failed_at).map(|t| t.to_string())),
                );
            }
            _ => {
                o.insert("FailureType".into(), Value::Null);
                o.insert("Message".into(), json!(""));
                o.insert("FailureTimestamp".into(), Value::Null);
            }
        }
        if m.dcs == Dcs::Investigate && !m.approved && m.status == Status::Synced {
            o.insert(
                "Message".into(),
                json!("The data consistency score is Investigate: review the skipped items and approve them with Set-MoveRequest -SkippedItemApprovalTime before the request can complete."),
            );
        }
        if m.dcs == Dcs::Poor && m.status == Status::Synced {
            o.insert(
                "Message".into(),
                json!("The data consistency score is Poor: too many items were skipped for the request to complete. Contact support."),
            );
        }
        Ok(v)
    }

    /// The figures of a move's history that `Get-MoveRequestStatistics` reports, consistent with what
    /// happened to it here: durations as TimeSpan strings, the stall under its cause, timestamps.
    fn history(&self, id: u32, now: Ms, transferred: u64, o: &mut Map<String, Value>) {
        use crate::exchange::figures::{STALL_CAUSES, timespan};
        let m = &self.moves[id as usize];
        let completed = m.status.is_completed();
        let end = if completed { m.completed_at } else { now };
        let in_progress = m.in_progress_s(now) as f64;
        let queued = if m.started_s == UNSET {
            span_s(m.created, now)
        } else {
            m.started_s
        } as f64;
        let mut failed = m.failed_s as f64;
        let mut suspended = m.suspended_s as f64;
        match m.status {
            Status::Failed => failed += span_s(m.failed_at, now) as f64,
            Status::Suspended | Status::AutoSuspended => {
                suspended += span_s(m.created + m.paused_since_s as i64 * 1000, now) as f64
            }
            _ => {}
        }
        let (permanent, transient) = if m.planned_failure == Planned::Permanent {
            (failed, 0.0)
        } else {
            (0.0, failed)
        };
        let overall = span_s(m.created, end) as f64;
        let idle = (overall - queued - in_progress - failed - suspended).max(0.0);
        let stalled = (m.stall_s as f64).min(in_progress);
        for (key, seconds) in [
            ("OverallDuration", overall),
            ("TotalQueuedDuration", queued),
            ("TotalInProgressDuration", in_progress),
            ("TotalIdleDuration", idle),
            ("TotalSuspendedDuration", suspended),
            ("TotalFailedDuration", permanent),
            ("TotalTransientFailureDuration", transient),
        ] {
            o.insert(key.into(), json!(timespan(seconds)));
        }
        for (i, cause) in STALL_CAUSES.iter().enumerate() {
            let seconds = if i == m.stall_cause as usize {
                stalled
            } else {
                0.0
            };
            o.insert(cause.field.into(), json!(timespan(seconds)));
        }
        let bytes_per_minute = if in_progress > 0.0 {
            transferred as f64 / (in_progress / 60.0)
        } else {
            0.0
        };
        o.insert(
            "BytesTransferredPerMinute".into(),
            json!(byte_quantified(bytes_per_minute as u64)),
        );
        o.insert("TotalArchiveSize".into(), json!(byte_quantified(0)));
        let stamp = |t: Option<Timestamp>| json!(t.map(|t| t.to_string()));
        o.insert("QueuedTimestamp".into(), stamp(ts(m.created)));
        o.insert("StartTimestamp".into(), stamp(m.at_s(m.started_s)));
        o.insert(
            "InitialSeedingCompletedTimestamp".into(),
            stamp(m.at_s(m.seeded_s)),
        );
        let final_sync = (m.completion_started != NEVER)
            .then(|| ts(m.completion_started + (m.completed_at - m.completion_started) * 4 / 5))
            .flatten();
        o.insert("FinalSyncTimestamp".into(), stamp(final_sync));
        o.insert(
            "CompletionTimestamp".into(),
            stamp(if completed { ts(m.completed_at) } else { None }),
        );
        let source = self.sources.get(m.source as usize);
        let server = match source {
            Some(db) => db.bytes().fold(0u32, |h, b| h.wrapping_mul(31) + b as u32) % 6 + 1,
            None => (m.guid() % 6) as u32 + 1,
        };
        o.insert(
            "SourceServer".into(),
            json!(format!(
                "{}EXCH{server:02}.contoso.local",
                self.profile.planted_text
            )),
        );
        o.insert(
            "SourceDatabase".into(),
            json!(
                source
                    .cloned()
                    .unwrap_or_else(|| format!("DB{:02}", m.guid() % 24 + 1))
            ),
        );
        o.insert(
            "TargetDatabase".into(),
            json!(format!(
                "GBRP265DG{:03}-db{:03}",
                (m.guid() >> 8) % 400,
                (m.guid() >> 20) % 1000
            )),
        );
    }

    fn set_move_request(
        &mut self,
        params: &Map<String, Value>,
    ) -> Result<Vec<String>, ServiceFault> {
        Self::check_params(
            params,
            &[
                "Identity",
                "CompleteAfter",
                "SkippedItemApprovalTime",
                "BatchName",
                "SuspendWhenReadyToComplete",
                "StartAfter",
            ],
        )?;
        let id = self.visible_move(params)?;
        let now = self.now_ms();
        let m = &self.moves[id as usize];
        if matches!(m.status, Status::CompletionInProgress) || m.status.is_completed() {
            return Err(cmdlet_error(
                400,
                "BadRequest",
                "Ex4E5A11",
                "Microsoft.Exchange.MailboxReplicationService.CannotSetCompletingPermanentException",
                &format!(
                    "The move request for '{}' is completing or completed and can't be changed.",
                    self.identity_of(m)
                ),
            ));
        }
        let complete_after = match params.get("CompleteAfter") {
            Some(v) => Some(
                parse_time(v)
                    .ok_or_else(|| bad_request("Cannot convert value to type System.DateTime."))?,
            ),
            None => None,
        };
        if let Some(v) = params.get("SkippedItemApprovalTime") {
            parse_time(v)
                .ok_or_else(|| bad_request("Cannot convert value to type System.DateTime."))?;
        }
        let new_batch = params
            .get("BatchName")
            .and_then(Value::as_str)
            .map(|b| self.batch_id(b));
        let m = &mut self.moves[id as usize];
        if let Some(when) = complete_after {
            m.complete_after = ms_ceil(when);
        }
        if params.contains_key("SkippedItemApprovalTime") {
            m.approved = true;
        }
        if let Some(Value::Bool(b)) = params.get("SuspendWhenReadyToComplete") {
            m.suspend_when_ready = *b;
        }
        if let Some(new) = new_batch {
            let old = m.batch;
            if new != old {
                m.batch = new;
                self.by_batch[old as usize].retain(|&x| x != id);
                self.by_batch[new as usize].push(id);
            }
        }
        if self.moves[id as usize].status == Status::Synced {
            self.maybe_queue_completion(id, now);
        }
        Ok(vec![])
    }

    fn resume(&mut self, params: &Map<String, Value>) -> Result<(), ServiceFault> {
        Self::check_params(params, &["Identity", "SuspendWhenReadyToComplete"])?;
        let id = self.visible_move(params)?;
        self.resume_move(id).map_err(|status| {
            cmdlet_error(
                400,
                "BadRequest",
                "Ex7D6B20",
                "Microsoft.Exchange.Management.RecipientTasks.CannotResumeRequestException",
                &format!(
                    "The move request for '{}' can't be resumed in its current state ({}).",
                    self.identity_of(&self.moves[id as usize]),
                    status.name()
                ),
            )
        })
    }

    /// Resume-MoveRequest's work: a failed or suspended move copies again (or, copied already, waits
    /// for its cut-over); the time it stood still is counted. Refused in any other state.
    fn resume_move(&mut self, id: u32) -> Result<(), Status> {
        let now = self.now_ms();
        let m = &mut self.moves[id as usize];
        match m.status {
            Status::Failed => m.failed_s = m.failed_s.saturating_add(span_s(m.failed_at, now)),
            Status::Suspended | Status::AutoSuspended => {
                let since = m.created + m.paused_since_s as i64 * 1000;
                m.suspended_s = m.suspended_s.saturating_add(span_s(since, now));
            }
            _ => {}
        }
        match m.status {
            Status::Failed | Status::Suspended => {
                m.status = Status::Queued;
                m.detail = D_QUEUED;
                m.failure = 0;
                if m.copy_left == 0 {
                    // Failed or suspended after copying: back to synced, no new copy.
                    m.status = Status::Synced;
                    m.detail = D_INCREMENTAL;
                    self.maybe_queue_completion(id, now);
                } else {
                    self.copy_queue.push_back(id);
                    self.start_copies(now);
                }
                Ok(())
            }
            Status::AutoSuspended => {
                m.status = Status::Synced;
                m.detail = D_INCREMENTAL;
                m.suspend_when_ready = false;
                self.maybe_queue_completion(id, now);
                Ok(())
            }
            status => Err(status),
        }
    }

    fn suspend(&mut self, params: &Map<String, Value>) -> Result<(), ServiceFault> {
        Self::check_params(params, &["Identity", "SuspendComment"])?;
        let id = self.visible_move(params)?;
        let now = self.now_ms();
        let m = &mut self.moves[id as usize];
        if matches!(
            m.status,
            Status::Queued | Status::Synced | Status::InProgress
        ) {
            m.paused_since_s = span_s(m.created, now);
        }
        match m.status {
            Status::Queued | Status::Synced | Status::AutoSuspended => {
                m.status = Status::Suspended;
                m.detail = D_SUSPENDED;
                Ok(())
            }
            Status::InProgress => {
                m.stop_copying(now);
                m.status = Status::Suspended;
                m.detail = D_SUSPENDED;
                self.copying -= 1;
                self.start_copies(now);
                Ok(())
            }
            status => Err(cmdlet_error(
                400,
                "BadRequest",
                "Ex7D6B21",
                "Microsoft.Exchange.Management.RecipientTasks.CannotSuspendRequestException",
                &format!(
                    "The move request for '{}' can't be suspended in its current state ({}).",
                    self.identity_of(&self.moves[id as usize]),
                    status.name()
                ),
            )),
        }
    }

    fn remove(&mut self, params: &Map<String, Value>) -> Result<(), ServiceFault> {
        Self::check_params(params, &["Identity", "Confirm", "Force"])?;
        let id = self.visible_move(params)?;
        let now = self.now_ms();
        let status = self.moves[id as usize].status;
        match status {
            Status::InProgress => self.copying -= 1,
            Status::CompletionInProgress => {
                return Err(cmdlet_error(
                    400,
                    "BadRequest",
                    "Ex4E5A12",
                    "Microsoft.Exchange.MailboxReplicationService.CannotSetCompletingPermanentException",
                    "The move request is completing and can't be removed.",
                ));
            }
            _ => {}
        }
        // Removing a request frees the identity. The row stays (for the call statistics) but no
        // cmdlet sees it; the index checks every hit against the live identity, so it no longer
        // matches.
        let m = &mut self.moves[id as usize];
        m.status = Status::Suspended;
        m.removed = true;
        let b = m.batch as usize;
        self.by_batch[b].retain(|&x| x != id);
        self.start_copies(now);
        Ok(())
    }

    /// A move request as Get-MoveRequest shows it, ready to serialize (no map, no copies).
    fn request_json(&self, id: u32) -> RequestJson<'_> {
        let m = &self.moves[id as usize];
        let identity = self.identity_of(m);
        RequestJson {
            identity,
            display_name: DisplayName(identity),
            alias: identity.split('@').next().unwrap_or(""),
            exchange_guid: uuid::Uuid::from_u128(m.guid()),
            status: m.status.name(),
            status_detail: m.detail(),
            batch_name: &self.batches[m.batch as usize],
            request_style: "CrossOrg",
            direction: "Pull",
            is_offline: false,
            flags: "CrossOrg, Pull",
            remote_host_name: "hybrid.contoso.com",
            complete_after: ts(m.complete_after),
            when_created: m.created(),
        }
    }

    fn request_value(&self, id: u32) -> Value {
        serde_json::to_value(self.request_json(id)).expect("move requests serialize")
    }

    /// About how many bytes of the simulated service's are in memory (benchmarks report mailwave's
    /// share apart). Counts what the vectors hold, not their spare room, which is never touched.
    pub fn heap_bytes(&self) -> usize {
        self.moves.len() * std::mem::size_of::<Move>()
            + self.names.len()
            + self.index.heap_bytes()
            + self
                .by_batch
                .iter()
                .map(|b| b.capacity() * 4)
                .sum::<usize>()
            + self.events.capacity() * std::mem::size_of::<(Ms, Event, u32)>()
            + (self.copy_queue.capacity() + self.completion_queue.capacity()) * 4
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct RequestJson<'a> {
    identity: &'a str,
    display_name: DisplayName<'a>,
    alias: &'a str,
    #[serde(serialize_with = "hyphenated")]
    exchange_guid: uuid::Uuid,
    status: &'static str,
    status_detail: &'static str,
    batch_name: &'a str,
    request_style: &'static str,
    direction: &'static str,
    is_offline: bool,
    flags: &'static str,
    remote_host_name: &'static str,
    complete_after: Option<Timestamp>,
    when_created: Timestamp,
}

fn hyphenated<S: serde::Serializer>(g: &uuid::Uuid, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&g.hyphenated())
}

/// `alice.smith@contoso.com` -> `Alice Smith`, written out without building a string.
struct DisplayName<'a>(&'a str);

impl std::fmt::Display for DisplayName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let local = self.0.split('@').next().unwrap_or(self.0);
        for (i, word) in local.split(['.', '_']).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                for up in first.to_uppercase() {
                    std::fmt::Write::write_char(f, up)?;
                }
                f.write_str(chars.as_str())?;
            }
        }
        Ok(())
    }
}

impl serde::Serialize for DisplayName<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl MoveService {
        /// `run` with the answer parsed; `offset` is both the position and the count served.
        fn run_t(
            &mut self,
            now: Timestamp,
            cmdlet: &str,
            params: &Map<String, Value>,
            offset: usize,
            limit: usize,
        ) -> Result<(Vec<Value>, bool, Vec<String>), ServiceFault> {
            let cursor = Cursor {
                pos: offset,
                served: offset,
            };
            self.run(now, cmdlet, params, cursor, limit)
                .map(|a| (a.parsed(), a.next.is_some(), a.warnings))
        }
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn create(
        sim: &mut MoveService,
        now: Timestamp,
        who: &str,
        complete_after: &str,
    ) -> Result<Value, ServiceFault> {
        sim.run_t(
            now,
            "New-MoveRequest",
            &params(json!({"Identity": who, "Remote": true, "RemoteHostName": "hybrid.contoso.com",
                "TargetDeliveryDomain": "contoso.mail.onmicrosoft.com", "BatchName": "mw-2027-01-04",
                "CompleteAfter": complete_after})),
            0,
            1,
        )
        .map(|(v, _, _)| v[0].clone())
    }

    fn status_of(sim: &mut MoveService, now: Timestamp, who: &str) -> String {
        let (v, _, _) = sim
            .run_t(
                now,
                "Get-MoveRequest",
                &params(json!({"Identity": who})),
                0,
                1,
            )
            .unwrap();
        v[0]["Status"].as_str().unwrap().to_string()
    }

    fn quiet() -> Profile {
        Profile::default().without_failures()
    }

    #[test]
    fn a_move_queues_copies_waits_for_cutover_and_completes() {
        let start = t("2027-01-01T12:00:00Z");
        let mut sim = MoveService::new(quiet(), 1, start);
        let v = create(
            &mut sim,
            start,
            "alice@contoso.com",
            "2027-01-04T20:00:00.0000000Z",
        )
        .unwrap();
        assert_eq!(v["Status"], "Queued");
        // Replication lag: a read right after the create is a 404.
        let err = sim
            .run_t(
                start,
                "Get-MoveRequest",
                &params(json!({"Identity": "alice@contoso.com"})),
                0,
                1,
            )
            .unwrap_err();
        assert_eq!(err.status, 404);
        assert_eq!(
            status_of(&mut sim, t("2027-01-01T12:01:00Z"), "alice@contoso.com"),
            "InProgress"
        );
        assert_eq!(
            status_of(&mut sim, t("2027-01-04T19:59:00Z"), "alice@contoso.com"),
            "Synced"
        );
        assert_eq!(
            status_of(&mut sim, t("2027-01-04T20:00:01Z"), "alice@contoso.com"),
            "CompletionInProgress"
        );
        assert_eq!(
            status_of(&mut sim, t("2027-01-04T23:00:00Z"), "alice@contoso.com"),
            "Completed"
        );
        let m = sim.find("ALICE@contoso.com").unwrap();
        assert!(m.completion_started().unwrap() >= t("2027-01-04T20:00:00Z"));
        assert_eq!(m.creates, 1);
    }

    #[test]
    fn statistics_tell_a_history_that_adds_up() {
        use crate::exchange::figures::{IN_PROGRESS, MoveFigures, OVERALL, QUEUED};
        let start = t("2027-01-01T12:00:00Z");
        let profile = Profile {
            stall_share: 1.0,
            ..quiet()
        };
        let mut sim = MoveService::new(profile, 1, start);
        sim.know("alice@contoso.com", 2_000_000_000, 30_000, Some("DB07"));
        create(&mut sim, start, "alice@contoso.com", "2027-01-04T20:00:00Z").unwrap();
        let stats = |sim: &mut MoveService, at: &str| {
            let (v, _, _) = sim
                .run_t(
                    t(at),
                    "Get-MoveRequestStatistics",
                    &params(json!({"Identity": "alice@contoso.com"})),
                    0,
                    1,
                )
                .unwrap();
            MoveFigures::parse(&v[0])
        };
        let early = stats(&mut sim, "2027-01-01T12:00:40Z");
        assert!(early.times[4].is_none() && early.times[1].is_some());
        let f = stats(&mut sim, "2027-01-05T09:00:00Z");
        assert_eq!(f.status, "Completed");
        assert_eq!(f.total_size, Some(2_000_000_000), "the known size is moved");
        assert_eq!(f.source_database.as_deref(), Some("DB07"));
        let d = |i: usize| f.durations[i].unwrap();
        assert!(d(IN_PROGRESS) > 600.0, "{f:?}");
        let stall = f.stalled();
        assert!(
            stall > 0.0 && stall <= d(IN_PROGRESS),
            "one cause, inside in-progress time"
        );
        assert_eq!(
            f.stalls.iter().filter(|s| s.unwrap_or(0.0) > 0.0).count(),
            1
        );
        let parts: f64 = f.durations[1..].iter().flatten().sum();
        assert!(
            (parts - d(OVERALL)).abs() <= 2.0,
            "{parts} vs {}",
            d(OVERALL)
        );
        let [queued, started, seeded, final_sync, completed, after] = f.times.map(Option::unwrap);
        assert!(queued <= started && started < seeded && seeded <= final_sync);
        assert!(after <= final_sync && final_sync < completed);
        assert!(d(QUEUED) < 60.0);
    }

    #[test]
    fn duplicates_are_answered_with_the_exact_texts() {
        let start = t("2027-01-01T12:00:00Z");
        let mut sim = MoveService::new(quiet(), 1, start);
        create(&mut sim, start, "bob@contoso.com", "2027-01-01T13:00:00Z").unwrap();
        let err = create(&mut sim, start, "bob@contoso.com", "2027-01-01T13:00:00Z").unwrap_err();
        let msg = err.body.unwrap()["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(msg.contains("UserAlreadyBeingMigratedException|The user 'bob@contoso.com' already has a pending request. Please remove the existing request and resume the current batch or start a new batch for this user."), "{msg}");
        let later = t("2027-01-02T12:00:00Z");
        assert!(status_of(&mut sim, later, "bob@contoso.com").starts_with("Completed"));
        let err = create(&mut sim, later, "bob@contoso.com", "2027-01-01T13:00:00Z").unwrap_err();
        let msg = err.body.unwrap()["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(msg.contains("Mailbox 'Bob' has a completed move request associated with it. Before you create a new move request for the mailbox, run the Remove-MoveRequest cmdlet to clear the completed move request."), "{msg}");
        assert_eq!(sim.stats.duplicate_creates, 2);
    }

    #[test]
    fn concurrency_is_capped_by_the_endpoint() {
        let start = t("2027-01-01T12:00:00Z");
        let mut sim = MoveService::new(
            Profile {
                max_concurrent_migrations: 3,
                ..quiet()
            },
            1,
            start,
        );
        for i in 0..10 {
            create(
                &mut sim,
                start,
                &format!("u{i}@contoso.com"),
                "2027-02-01T00:00:00Z",
            )
            .unwrap();
        }
        assert_eq!(sim.copying, 3);
        let (v, _, _) = sim
            .run_t(
                t("2027-01-01T12:05:00Z"),
                "Get-MoveRequest",
                &params(json!({"BatchName": "mw-2027-01-04", "Status": "Queued"})),
                0,
                100,
            )
            .unwrap();
        assert_eq!(v.len(), 7);
    }

    #[test]
    fn investigate_waits_for_approval_and_poor_never_completes() {
        let start = t("2027-01-01T12:00:00Z");
        let profile = Profile {
            dcs_investigate_share: 1.0,
            ..quiet()
        };
        let mut sim = MoveService::new(profile, 1, start);
        create(&mut sim, start, "carol@contoso.com", "2027-01-02T00:00:00Z").unwrap();
        let later = t("2027-01-03T00:00:00Z");
        assert_eq!(status_of(&mut sim, later, "carol@contoso.com"), "Synced");
        let (stats, _, _) = sim
            .run_t(
                later,
                "Get-MoveRequestStatistics",
                &params(json!({"Identity": "carol@contoso.com"})),
                0,
                1,
            )
            .unwrap();
        assert_eq!(stats[0]["DataConsistencyScore"], "Investigate");
        sim.run_t(later, "Set-MoveRequest", &params(json!({"Identity": "carol@contoso.com", "SkippedItemApprovalTime": later.to_string()})), 0, 1)
            .unwrap();
        assert_eq!(
            status_of(&mut sim, t("2027-01-03T02:00:00Z"), "carol@contoso.com"),
            "CompletedWithSkippedItems"
        );

        let mut sim = MoveService::new(
            Profile {
                dcs_poor_share: 1.0,
                ..quiet()
            },
            1,
            start,
        );
        create(&mut sim, start, "dave@contoso.com", "2027-01-02T00:00:00Z").unwrap();
        assert_eq!(
            status_of(&mut sim, t("2027-01-10T00:00:00Z"), "dave@contoso.com"),
            "Synced"
        );
    }

    #[test]
    fn an_approved_resumed_or_delayed_move_never_cuts_over_before_its_complete_after() {
        let start = t("2027-01-01T12:00:00Z");
        let after = |who: &str, sim: &MoveService| sim.find(who).unwrap().completion_started();
        let set = |sim: &mut MoveService, now: Timestamp, p: Value| {
            sim.run_t(now, "Set-MoveRequest", &params(p), 0, 1).unwrap();
        };
        // Approved (data consistency Investigate) long after its first CompleteAfter, with a new
        // one given in the same call: it waits for the new one.
        let mut sim = MoveService::new(
            Profile {
                dcs_investigate_share: 1.0,
                ..quiet()
            },
            1,
            start,
        );
        create(&mut sim, start, "carol@contoso.com", "2027-01-02T00:00:00Z").unwrap();
        let later = t("2027-01-05T19:45:00Z");
        assert_eq!(status_of(&mut sim, later, "carol@contoso.com"), "Synced");
        set(
            &mut sim,
            later,
            json!({"Identity": "carol@contoso.com", "SkippedItemApprovalTime": "2027-01-05T19:45:00Z",
                   "BatchName": "mw-2027-01-06", "CompleteAfter": "2027-01-06T20:00:00Z"}),
        );
        assert_eq!(
            status_of(&mut sim, t("2027-01-06T19:59:00Z"), "carol@contoso.com"),
            "Synced"
        );
        assert_eq!(
            status_of(&mut sim, t("2027-01-06T23:00:00Z"), "carol@contoso.com"),
            "CompletedWithSkippedItems"
        );
        assert!(after("carol@contoso.com", &sim).unwrap() >= t("2027-01-06T20:00:00Z"));

        // Suspended once copied, its CompleteAfter moved, then resumed: it waits too.
        let mut sim = MoveService::new(quiet(), 1, start);
        create(&mut sim, start, "dan@contoso.com", "2027-01-02T00:00:00Z").unwrap();
        let copied = t("2027-01-01T23:00:00Z");
        assert_eq!(status_of(&mut sim, copied, "dan@contoso.com"), "Synced");
        sim.run_t(
            copied,
            "Suspend-MoveRequest",
            &params(json!({"Identity": "dan@contoso.com"})),
            0,
            1,
        )
        .unwrap();
        set(
            &mut sim,
            copied,
            json!({"Identity": "dan@contoso.com", "CompleteAfter": "2027-01-03T20:00:00Z"}),
        );
        let resumed = t("2027-01-03T10:00:00Z");
        sim.run_t(
            resumed,
            "Resume-MoveRequest",
            &params(json!({"Identity": "dan@contoso.com"})),
            0,
            1,
        )
        .unwrap();
        assert_eq!(
            status_of(&mut sim, t("2027-01-03T19:59:00Z"), "dan@contoso.com"),
            "Synced"
        );
        assert_eq!(
            status_of(&mut sim, t("2027-01-04T02:00:00Z"), "dan@contoso.com"),
            "Completed"
        );
        assert!(after("dan@contoso.com", &sim).unwrap() >= t("2027-01-03T20:00:00Z"));

        // Waiting for a finalisation slot when its CompleteAfter is moved a day out: it leaves
        // the queue, and cuts over when the new time comes (not before, and not never).
        let mut sim = MoveService::new(
            Profile {
                max_concurrent_completions: 1,
                finalization_minutes: 60.0,
                ..quiet()
            },
            1,
            start,
        );
        for who in ["eve@contoso.com", "fay@contoso.com"] {
            create(&mut sim, start, who, "2027-01-02T00:00:00Z").unwrap();
        }
        let busy = t("2027-01-02T00:00:01Z");
        let completing: Vec<String> = ["eve@contoso.com", "fay@contoso.com"]
            .iter()
            .map(|w| status_of(&mut sim, busy, w))
            .collect();
        let waiting = if completing[0] == "CompletionInProgress" {
            "fay@contoso.com"
        } else {
            "eve@contoso.com"
        };
        assert_eq!(
            status_of(&mut sim, busy, waiting),
            "Synced",
            "{completing:?}"
        );
        set(
            &mut sim,
            busy,
            json!({"Identity": waiting, "CompleteAfter": "2027-01-03T00:00:00Z"}),
        );
        assert_eq!(
            status_of(&mut sim, t("2027-01-02T23:59:00Z"), waiting),
            "Synced"
        );
        assert_eq!(
            status_of(&mut sim, t("2027-01-03T03:00:00Z"), waiting),
            "Completed"
        );
        assert!(after(waiting, &sim).unwrap() >= t("2027-01-03T00:00:00Z"));
    }

    #[test]
    fn transient_failures_resume_and_permanent_ones_fail_again() {
        let start = t("2027-01-01T12:00:00Z");
        let mut sim = MoveService::new(
            Profile {
                transient_failure_share: 1.0,
                ..quiet()
            },
            1,
            start,
        );
        create(&mut sim, start, "erin@contoso.com", "2027-01-01T12:00:00Z").unwrap();
        let later = t("2027-01-02T12:00:00Z");
        assert_eq!(status_of(&mut sim, later, "erin@contoso.com"), "Failed");
        let (stats, _, _) = sim
            .run_t(
                later,
                "Get-MoveRequestStatistics",
                &params(json!({"Identity": "erin@contoso.com"})),
                0,
                1,
            )
            .unwrap();
        assert!(
            stats[0]["FailureType"]
                .as_str()
                .unwrap()
                .contains("Transient")
        );
        sim.run_t(
            later,
            "Resume-MoveRequest",
            &params(json!({"Identity": "erin@contoso.com"})),
            0,
            1,
        )
        .unwrap();
        assert_eq!(
            status_of(&mut sim, t("2027-01-03T12:00:00Z"), "erin@contoso.com"),
            "Completed"
        );

        let mut sim = MoveService::new(
            Profile {
                permanent_failure_share: 1.0,
                ..quiet()
            },
            1,
            start,
        );
        create(&mut sim, start, "frank@contoso.com", "2027-01-01T12:00:00Z").unwrap();
        assert_eq!(status_of(&mut sim, later, "frank@contoso.com"), "Failed");
        sim.run_t(
            later,
            "Resume-MoveRequest",
            &params(json!({"Identity": "frank@contoso.com"})),
            0,
            1,
        )
        .unwrap();
        assert_eq!(
            status_of(&mut sim, t("2027-01-03T12:00:00Z"), "frank@contoso.com"),
            "Failed"
        );
    }

    #[test]
    fn listing_pages_and_result_size() {
        let start = t("2027-01-01T12:00:00Z");
        let mut sim = MoveService::new(
            Profile {
                replication_lag_seconds: 0.0,
                ..quiet()
            },
            1,
            start,
        );
        for i in 0..1_200 {
            create(
                &mut sim,
                start,
                &format!("u{i}@contoso.com"),
                "2027-02-01T00:00:00Z",
            )
            .unwrap();
        }
        let batch = params(json!({"BatchName": "mw-2027-01-04"}));
        let (page, more, warnings) = sim
            .run_t(start, "Get-MoveRequest", &batch, 0, 1000)
            .unwrap();
        assert_eq!(
            (page.len(), more),
            (1000, false),
            "ResultSize defaults to 1000"
        );
        assert_eq!(warnings.len(), 1);
        let all = params(json!({"BatchName": "mw-2027-01-04", "ResultSize": "Unlimited"}));
        let (page, more, _) = sim
            .run_t(start, "Get-MoveRequest", &all, 1000, 1000)
            .unwrap();
        assert_eq!((page.len(), more), (200, false));
        let (_, more, _) = sim.run_t(start, "Get-MoveRequest", &all, 0, 1000).unwrap();
        assert!(more);
    }

    #[test]
    fn unknown_cmdlets_and_parameters() {
        let start = t("2027-01-01T12:00:00Z");
        let mut sim = MoveService::new(quiet(), 1, start);
        let err = sim
            .run_t(start, "Get-Mailbox", &Map::new(), 0, 1)
            .unwrap_err();
        assert_eq!((err.status, err.body), (403, None));
        let err = sim
            .run_t(
                start,
                "Get-MoveRequest",
                &params(json!({"Identity": "x@y.org", "Bogus": 1})),
                0,
                1,
            )
            .unwrap_err();
        assert_eq!(err.status, 400);
    }

    #[test]
    fn a_complete_after_with_sub_millisecond_precision_still_completes() {
        let start = t("2027-01-01T12:00:00Z");
        let mut sim = MoveService::new(quiet(), 1, start);
        create(
            &mut sim,
            start,
            "gail@contoso.com",
            "2027-01-02T20:00:00.0000001Z",
        )
        .unwrap();
        assert_eq!(
            status_of(&mut sim, t("2027-01-03T06:00:00Z"), "gail@contoso.com"),
            "Completed"
        );
    }

    #[test]
    fn set_move_request_moves_a_request_to_another_batch() {
        let start = t("2027-01-01T12:00:00Z");
        let mut sim = MoveService::new(
            Profile {
                replication_lag_seconds: 0.0,
                ..quiet()
            },
            1,
            start,
        );
        create(&mut sim, start, "hal@contoso.com", "2027-01-04T20:00:00Z").unwrap();
        sim.run_t(start, "Set-MoveRequest", &params(json!({"Identity": "hal@contoso.com", "BatchName": "mw-2027-01-05", "CompleteAfter": "2027-01-05T20:00:00Z"})), 0, 1)
            .unwrap();
        let list = |sim: &mut MoveService, b: &str| {
            sim.run_t(
                start,
                "Get-MoveRequest",
                &params(json!({"BatchName": b})),
                0,
                10,
            )
            .unwrap()
            .0
            .len()
        };
        assert_eq!(
            (
                list(&mut sim, "mw-2027-01-04"),
                list(&mut sim, "mw-2027-01-05")
            ),
            (0, 1)
        );
    }

    #[test]
    fn byte_quantified_sizes_read_like_the_service() {
        assert_eq!(
            byte_quantified(1_325_000_000),
            "1.234 GB (1,325,000,000 bytes)"
        );
        assert_eq!(byte_quantified(512), "512.000 B (512 bytes)");
    }

    #[test]
    fn a_move_stays_small_enough_for_two_million() {
        // 2.1 million of them live in the engine benchmark's process next to mailwave itself.
        assert!(
            std::mem::size_of::<Move>() <= 176,
            "{}",
            std::mem::size_of::<Move>()
        );
    }
}
