//! The simulated Mailbox Replication Service: move requests and their life on the service.
//!
//! Event-driven: each move keeps the times of what happens to it next (copy done, failure, cut-over
//! done) in a heap, and the simulation is advanced to "now" before every call, processing due events
//! in time order. Queued moves start when a MaxConcurrentMigrations slot frees; a move copies at the
//! endpoint's throughput shared by a full complement of moves, plus a cost per item; synced moves
//! wait for CompleteAfter, then queue for one of the finalisation slots.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use jiff::{SignedDuration, Timestamp};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
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

/// One move request on the service.
#[derive(Debug, Clone)]
pub struct Move {
    pub identity: String,
    pub guid: u128,
    batch: u32,
    pub status: Status,
    pub detail: &'static str,
    pub created: Timestamp,
    visible_at: Timestamp,
    pub complete_after: Option<Timestamp>,
    start_after: Option<Timestamp>,
    suspend_when_ready: bool,
    size: u64,
    items: u64,
    /// Copy work left, and when the current stretch of copying started.
    copy_left: SignedDuration,
    copy_total: SignedDuration,
    copy_started: Option<Timestamp>,
    copy_done_at: Option<Timestamp>,
    stall_left: SignedDuration,
    planned_failure: Planned,
    fail_at: Option<Timestamp>,
    failure: Option<(&'static str, &'static str, Timestamp)>,
    pub dcs: Dcs,
    approved: bool,
    /// In the finalisation queue (waiting for a slot).
    waiting_completion: bool,
    pub completion_started: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
    outcome: Status,
    /// Successful New-MoveRequest calls that made this request (a faithful service answers 1).
    pub creates: u32,
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
    let s = bytes.to_string();
    let mut grouped = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let (v, unit) = match bytes {
        b if b >= 1 << 30 => (b as f64 / (1u64 << 30) as f64, "GB"),
        b if b >= 1 << 20 => (b as f64 / (1u64 << 20) as f64, "MB"),
        b if b >= 1 << 10 => (b as f64 / (1u64 << 10) as f64, "KB"),
        b => (b as f64, "B"),
    };
    format!("{v:.3} {unit} ({grouped} bytes)")
}

fn guid_string(g: u128) -> String {
    uuid::Uuid::from_u128(g).hyphenated().to_string()
}

/// Event times are kept to the millisecond, as the heap orders them.
fn to_ms(t: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(t.as_millisecond()).unwrap_or(t)
}

fn secs(d: f64) -> SignedDuration {
    SignedDuration::from_secs_f64(d.max(0.0))
}

/// What the simulated service has been asked, for tests and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CallStats {
    /// Per cmdlet: (answered successfully, answered with an error).
    pub by_cmdlet: std::collections::BTreeMap<String, (u64, u64)>,
    pub throttled: u64,
    pub injected_faults: u64,
    pub duplicate_creates: u64,
    /// InvokeCommand requests that came without a `client-request-id` header.
    pub missing_client_request_id: u64,
}

pub struct MoveService {
    profile: Profile,
    rng: ChaCha8Rng,
    moves: Vec<Move>,
    index: AddressIndex,
    batches: Vec<String>,
    batch_index: HashMap<String, u32>,
    by_batch: Vec<Vec<u32>>,
    events: BinaryHeap<Reverse<(i64, Event, u32)>>,
    copy_queue: VecDeque<u32>,
    copying: u32,
    completion_queue: VecDeque<u32>,
    completing: u32,
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
            index: AddressIndex::default(),
            batches: Vec::new(),
            batch_index: HashMap::new(),
            by_batch: Vec::new(),
            events: BinaryHeap::new(),
            copy_queue: VecDeque::new(),
            copying: 0,
            completion_queue: VecDeque::new(),
            completing: 0,
            stats: CallStats::default(),
            now,
        }
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    pub fn moves(&self) -> &[Move] {
        &self.moves
    }

    pub fn find(&self, identity: &str) -> Option<&Move> {
        let moves = &self.moves;
        self.index
            .get(identity, |i| &moves[i as usize].identity)
            .map(|i| &self.moves[i as usize])
    }

    fn lookup(&self, identity: &str) -> Option<u32> {
        let moves = &self.moves;
        self.index.get(identity, |i| &moves[i as usize].identity)
    }

    /// Rounds up to the millisecond, so an event is never handled before its time.
    fn schedule(&mut self, at: Timestamp, event: Event, id: u32) {
        let ms = (at.as_nanosecond() + 999_999).div_euclid(1_000_000) as i64;
        self.events.push(Reverse((ms, event, id)));
    }

    /// Processes everything due up to `now`, in time order.
    pub fn advance(&mut self, now: Timestamp) {
        while let Some(&Reverse((at, event, id))) = self.events.peek() {
            if at > now.as_millisecond() {
                break;
            }
            self.events.pop();
            let at = Timestamp::from_millisecond(at).unwrap_or(now);
            self.now = self.now.max(at);
            self.handle(at, event, id);
        }
        self.now = self.now.max(now);
    }

    fn handle(&mut self, at: Timestamp, event: Event, id: u32) {
        let m = &self.moves[id as usize];
        match event {
            Event::CopyDone if m.status == Status::InProgress && m.copy_done_at == Some(at) => {
                self.copying -= 1;
                let m = &mut self.moves[id as usize];
                m.copy_left = SignedDuration::ZERO;
                m.copy_started = None;
                m.copy_done_at = None;
                if m.suspend_when_ready {
                    m.status = Status::AutoSuspended;
                    m.detail = "AutoSuspended";
                } else {
                    m.status = Status::Synced;
                    m.detail = "IncrementalSync";
                    self.maybe_queue_completion(id, at);
                }
                self.start_copies(at);
            }
            Event::Fail if m.status == Status::InProgress && m.fail_at == Some(at) => {
                self.copying -= 1;
                let m = &mut self.moves[id as usize];
                let done = m
                    .copy_started
                    .map(|s| at.duration_since(s))
                    .unwrap_or(SignedDuration::ZERO);
                m.copy_left = (m.copy_left - done).max(SignedDuration::ZERO);
                m.copy_started = None;
                m.copy_done_at = None;
                m.fail_at = None;
                let (kind, text) = if m.planned_failure == Planned::Permanent {
                    PERMANENT_FAILURES[(m.guid % 2) as usize]
                } else {
                    TRANSIENT_FAILURES[(m.guid % 2) as usize]
                };
                // A transient failure happens once; a permanent one every time the move is resumed.
                if m.planned_failure == Planned::Transient {
                    m.planned_failure = Planned::None;
                }
                m.failure = Some((kind, text, at));
                m.status = Status::Failed;
                m.detail = if kind.contains("Permanent") {
                    "FailedOther"
                } else {
                    "TransientFailure"
                };
                self.start_copies(at);
            }
            Event::StartAfter if m.status == Status::Queued => self.start_copies(at),
            Event::CompleteAfter if m.status == Status::Synced => {
                self.maybe_queue_completion(id, at)
            }
            Event::CompletionDone
                if m.status == Status::CompletionInProgress && m.completed_at == Some(at) =>
            {
                self.completing -= 1;
                let m = &mut self.moves[id as usize];
                m.status = m.outcome;
                m.detail = "Completed";
                self.start_completions(at);
            }
            _ => {} // stale: the move changed since this was scheduled
        }
    }

    /// A synced move whose CompleteAfter has come, and that may complete, queues for finalisation.
    fn maybe_queue_completion(&mut self, id: u32, at: Timestamp) {
        let m = &mut self.moves[id as usize];
        if m.status != Status::Synced || m.waiting_completion {
            return;
        }
        match m.complete_after {
            Some(when) if when > at => {
                self.schedule(when, Event::CompleteAfter, id);
                return;
            }
            _ => {}
        }
        match m.dcs {
            Dcs::Poor => {
                m.detail = "IncrementalSync";
                return;
            }
            Dcs::Investigate if !m.approved => return,
            _ => {}
        }
        m.waiting_completion = true;
        self.completion_queue.push_back(id);
        self.start_completions(at);
    }

    fn start_completions(&mut self, at: Timestamp) {
        while self.completing < self.profile.max_concurrent_completions {
            let Some(id) = self.completion_queue.pop_front() else {
                break;
            };
            let m = &mut self.moves[id as usize];
            m.waiting_completion = false;
            // Still eligible? (CompleteAfter may have been moved, or the request suspended.)
            if m.status != Status::Synced || m.complete_after.is_some_and(|c| c > at) {
                continue;
            }
            let minutes = self.profile.finalization_minutes * (0.5 + self.rng.random::<f64>());
            let done = to_ms(at + secs(minutes * 60.0));
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
            m.detail = "Finalization";
            m.completion_started = Some(at);
            m.completed_at = Some(done);
            self.completing += 1;
            self.schedule(done, Event::CompletionDone, id);
        }
    }

    fn start_copies(&mut self, at: Timestamp) {
        let mut deferred = Vec::new();
        while self.copying < self.profile.max_concurrent_migrations {
            let Some(id) = self.copy_queue.pop_front() else {
                break;
            };
            let m = &self.moves[id as usize];
            if m.status != Status::Queued {
                continue;
            }
            if m.start_after.is_some_and(|s| s > at) {
                deferred.push(id);
                continue;
            }
            let m = &mut self.moves[id as usize];
            m.status = Status::InProgress;
            m.detail = if m.stall_left.is_positive() {
                "StalledDueToTarget_DiskLatency"
            } else {
                "InitialSeeding"
            };
            m.copy_started = Some(at);
            let done = to_ms(at + m.copy_left + m.stall_left);
            m.stall_left = SignedDuration::ZERO;
            m.copy_done_at = Some(done);
            self.copying += 1;
            if m.planned_failure != Planned::None {
                let frac: f64 = self.rng.random_range(0.1..0.9);
                let when = to_ms(at + secs(m.copy_left.as_secs_f64() * frac));
                self.moves[id as usize].fail_at = Some(when);
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
        self.moves[id as usize].visible_at <= self.now
    }

    // --- cmdlets ------------------------------------------------------------------------------------

    /// Runs a cmdlet at `now`. List cmdlets return one page (`offset`, `limit`) and whether more follow.
    pub fn run(
        &mut self,
        now: Timestamp,
        cmdlet: &str,
        params: &Map<String, Value>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Value>, bool, Vec<String>), ServiceFault> {
        self.advance(now);
        let result = match cmdlet {
            "New-MoveRequest" => self
                .new_move_request(params)
                .map(|v| (vec![v], false, vec![])),
            "Get-MoveRequest" => self.get_move_request(params, offset, limit),
            "Get-MoveRequestStatistics" => {
                self.statistics(params).map(|v| (vec![v], false, vec![]))
            }
            "Set-MoveRequest" => self.set_move_request(params).map(|w| (vec![], false, w)),
            "Resume-MoveRequest" => self.resume(params).map(|_| (vec![], false, vec![])),
            "Suspend-MoveRequest" => self.suspend(params).map(|_| (vec![], false, vec![])),
            "Remove-MoveRequest" => self.remove(params).map(|_| (vec![], false, vec![])),
            "Get-MigrationEndpoint" => Ok((
                vec![json!({
                    "Identity": params.get("Identity").and_then(Value::as_str).unwrap_or("Hybrid Migration Endpoint - EWS (Default Web Site)"),
                    "EndpointType": "ExchangeRemoteMove",
                    "RemoteServer": "hybrid.contoso.com",
                    "MaxConcurrentMigrations": self.profile.max_concurrent_migrations,
                    "MaxConcurrentIncrementalSyncs": self.profile.max_concurrent_incremental_syncs,
                })],
                false,
                vec![],
            )),
            // An unknown cmdlet, or one outside the app's role: 403 with an empty body.
            _ => Err(ServiceFault {
                status: 403,
                body: None,
                retry_after: None,
            }),
        };
        let entry = self.stats.by_cmdlet.entry(cmdlet.to_string()).or_default();
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
        let identity = Self::identity(params)?.to_string();
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
        if let Some(existing) = self.lookup(&identity) {
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
                        display_name(&m.identity)
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
        let batch = params
            .get("BatchName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let complete_after = params.get("CompleteAfter").and_then(parse_time);
        if params.contains_key("CompleteAfter") && complete_after.is_none() {
            return Err(bad_request(
                "Cannot process argument transformation on parameter 'CompleteAfter'. Cannot convert value to type System.DateTime.",
            ));
        }
        let start_after = params.get("StartAfter").and_then(parse_time);

        let p = &self.profile;
        let size = (self.rng.random::<f64>() * 3.0e9) as u64 + 50_000_000;
        let items = size / self.rng.random_range(40_000..120_000u64);
        let share_gbph = p.throughput_gb_per_hour / p.max_concurrent_migrations.max(1) as f64;
        let copy = p.base_move_minutes * 60.0
            + size as f64 / 1e9 / share_gbph.max(1e-9) * 3600.0
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
            SignedDuration::ZERO
        };
        let lag = secs(p.replication_lag_seconds);
        let guid: u128 = self.rng.random();
        let batch_id = match self.batch_index.get(&batch) {
            Some(&b) => b,
            None => {
                let b = self.batches.len() as u32;
                self.batches.push(batch.clone());
                self.batch_index.insert(batch.clone(), b);
                self.by_batch.push(Vec::new());
                b
            }
        };
        let id = self.moves.len() as u32;
        let now = self.now;
        self.moves.push(Move {
            identity: identity.clone(),
            guid,
            batch: batch_id,
            status: Status::Queued,
            detail: "Queued",
            created: now,
            visible_at: now + lag,
            complete_after,
            start_after,
            suspend_when_ready: params.get("SuspendWhenReadyToComplete")
                == Some(&Value::Bool(true)),
            size,
            items,
            copy_left: secs(copy),
            copy_total: secs(copy),
            copy_started: None,
            copy_done_at: None,
            stall_left: stall,
            planned_failure: planned,
            fail_at: None,
            failure: None,
            dcs,
            approved: false,
            waiting_completion: false,
            completion_started: None,
            completed_at: None,
            outcome: Status::Completed,
            creates: 1,
        });
        let moves = &self.moves;
        self.index
            .insert(&identity, id, |i| &moves[i as usize].identity);
        self.by_batch[batch_id as usize].push(id);
        self.copy_queue.push_back(id);
        if let Some(s) = start_after.filter(|s| *s > now) {
            self.schedule(s, Event::StartAfter, id);
        }
        // The service answers Queued; the job is picked up after the answer.
        let answer = self.request_json(id);
        self.start_copies(now);
        Ok(answer)
    }

    fn get_move_request(
        &mut self,
        params: &Map<String, Value>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Value>, bool, Vec<String>), ServiceFault> {
        Self::check_params(params, &["Identity", "BatchName", "Status", "ResultSize"])?;
        if params.contains_key("Identity") && params.contains_key("BatchName") {
            return Err(bad_request(
                "Parameter set cannot be resolved using the specified named parameters.",
            ));
        }
        if params.contains_key("Identity") {
            let id = self.visible_move(params)?;
            return Ok((vec![self.request_json(id)], false, vec![]));
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
        let all: Vec<u32>;
        let ids: &[u32] = match params.get("BatchName").and_then(Value::as_str) {
            Some(b) => match self.batch_index.get(b) {
                Some(&bi) => &self.by_batch[bi as usize],
                None => &[],
            },
            None => {
                all = (0..self.moves.len() as u32).collect();
                &all
            }
        };
        // One page: walk the matches up to the page's end, and one more to know if more follow.
        let mut matching = ids
            .iter()
            .copied()
            .filter(|&id| {
                self.visible(id) && status.is_none_or(|s| self.moves[id as usize].status == s)
            })
            .take(result_size)
            .skip(offset);
        let page_ids: Vec<u32> = matching.by_ref().take(limit).collect();
        let more = matching.next().is_some();
        let truncated =
            params.get("ResultSize").is_none() && offset + page_ids.len() == 1000 && !more;
        let warnings = if truncated {
            vec!["By default, only the first 1000 items are returned. Use the ResultSize parameter to specify the number of items returned. To return all items, specify \"-ResultSize Unlimited\".".to_string()]
        } else {
            vec![]
        };
        let page: Vec<Value> = page_ids.iter().map(|&id| self.request_json(id)).collect();
        Ok((page, more, warnings))
    }

    fn statistics(&mut self, params: &Map<String, Value>) -> Result<Value, ServiceFault> {
        Self::check_params(params, &["Identity", "IncludeReport", "Diagnostic"])?;
        let id = self.visible_move(params)?;
        let now = self.now;
        let m = &self.moves[id as usize];
        let percent = match m.status {
            Status::Queued | Status::Suspended => {
                (100.0 * (1.0 - m.copy_left.as_secs_f64() / m.copy_total.as_secs_f64().max(1.0)))
                    as u32
                    * 95
                    / 100
            }
            Status::InProgress | Status::Failed => {
                let done = m
                    .copy_started
                    .map(|s| now.duration_since(s))
                    .unwrap_or(SignedDuration::ZERO);
                let left = (m.copy_left - done).max(SignedDuration::ZERO);
                ((1.0 - left.as_secs_f64() / m.copy_total.as_secs_f64().max(1.0)) * 95.0) as u32
            }
            Status::Synced | Status::AutoSuspended => 95,
            Status::CompletionInProgress => 98,
            _ => 100,
        };
        let transferred = m.size * percent as u64 / 100;
        let mut v = self.request_json(id);
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
            json!(m.items * percent as u64 / 100),
        );
        o.insert("DataConsistencyScore".into(), json!(m.dcs.name()));
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
        match m.failure {
            Some((kind, text, at)) if m.status == Status::Failed => {
                o.insert("FailureType".into(), json!(kind));
                o.insert("Message".into(), json!(text));
                o.insert("FailureTimestamp".into(), json!(at.to_string()));
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
        let now = self.now;
        let m = &mut self.moves[id as usize];
        if matches!(m.status, Status::CompletionInProgress) || m.status.is_completed() {
            return Err(cmdlet_error(
                400,
                "BadRequest",
                "Ex4E5A11",
                "Microsoft.Exchange.MailboxReplicationService.CannotSetCompletingPermanentException",
                &format!(
                    "The move request for '{}' is completing or completed and can't be changed.",
                    m.identity
                ),
            ));
        }
        if let Some(v) = params.get("CompleteAfter") {
            let when = parse_time(v)
                .ok_or_else(|| bad_request("Cannot convert value to type System.DateTime."))?;
            m.complete_after = Some(when);
        }
        if let Some(v) = params.get("SkippedItemApprovalTime") {
            parse_time(v)
                .ok_or_else(|| bad_request("Cannot convert value to type System.DateTime."))?;
            m.approved = true;
        }
        if let Some(Value::Bool(b)) = params.get("SuspendWhenReadyToComplete") {
            m.suspend_when_ready = *b;
        }
        if let Some(batch) = params.get("BatchName").and_then(Value::as_str) {
            let old = m.batch;
            let new = match self.batch_index.get(batch) {
                Some(&b) => b,
                None => {
                    let b = self.batches.len() as u32;
                    self.batches.push(batch.to_string());
                    self.batch_index.insert(batch.to_string(), b);
                    self.by_batch.push(Vec::new());
                    b
                }
            };
            if new != old {
                self.moves[id as usize].batch = new;
                self.by_batch[old as usize].retain(|&x| x != id);
                self.by_batch[new as usize].push(id);
            }
        }
        let m = &mut self.moves[id as usize];
        if m.status == Status::Synced {
            self.maybe_queue_completion(id, now);
        }
        Ok(vec![])
    }

    fn resume(&mut self, params: &Map<String, Value>) -> Result<(), ServiceFault> {
        Self::check_params(params, &["Identity", "SuspendWhenReadyToComplete"])?;
        let id = self.visible_move(params)?;
        let now = self.now;
        let m = &mut self.moves[id as usize];
        match m.status {
            Status::Failed | Status::Suspended => {
                m.status = Status::Queued;
                m.detail = "Queued";
                m.failure = None;
                if m.copy_left.is_zero() {
                    // Failed or suspended after copying: back to synced, no new copy.
                    m.status = Status::Synced;
                    m.detail = "IncrementalSync";
                    self.maybe_queue_completion(id, now);
                } else {
                    self.copy_queue.push_back(id);
                    self.start_copies(now);
                }
                Ok(())
            }
            Status::AutoSuspended => {
                m.status = Status::Synced;
                m.detail = "IncrementalSync";
                m.suspend_when_ready = false;
                self.maybe_queue_completion(id, now);
                Ok(())
            }
            _ => Err(cmdlet_error(
                400,
                "BadRequest",
                "Ex7D6B20",
                "Microsoft.Exchange.Management.RecipientTasks.CannotResumeRequestException",
                &format!(
                    "The move request for '{}' can't be resumed in its current state ({}).",
                    m.identity,
                    m.status.name()
                ),
            )),
        }
    }

    fn suspend(&mut self, params: &Map<String, Value>) -> Result<(), ServiceFault> {
        Self::check_params(params, &["Identity", "SuspendComment"])?;
        let id = self.visible_move(params)?;
        let now = self.now;
        let m = &mut self.moves[id as usize];
        match m.status {
            Status::Queued | Status::Synced | Status::AutoSuspended => {
                m.status = Status::Suspended;
                m.detail = "Suspended";
                Ok(())
            }
            Status::InProgress => {
                let done = m
                    .copy_started
                    .map(|s| now.duration_since(s))
                    .unwrap_or(SignedDuration::ZERO);
                m.copy_left = (m.copy_left - done).max(SignedDuration::ZERO);
                m.copy_started = None;
                m.copy_done_at = None;
                m.fail_at = None;
                m.status = Status::Suspended;
                m.detail = "Suspended";
                self.copying -= 1;
                self.start_copies(now);
                Ok(())
            }
            _ => Err(cmdlet_error(
                400,
                "BadRequest",
                "Ex7D6B21",
                "Microsoft.Exchange.Management.RecipientTasks.CannotSuspendRequestException",
                &format!(
                    "The move request for '{}' can't be suspended in its current state ({}).",
                    m.identity,
                    m.status.name()
                ),
            )),
        }
    }

    fn remove(&mut self, params: &Map<String, Value>) -> Result<(), ServiceFault> {
        Self::check_params(params, &["Identity", "Confirm", "Force"])?;
        let id = self.visible_move(params)?;
        let now = self.now;
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
        // Removing a request frees the identity. The row stays (for the call statistics) under a
        // tombstone name; the index checks every hit against the identity, so it no longer matches.
        let m = &mut self.moves[id as usize];
        m.status = Status::Suspended;
        m.identity = format!("removed:{}:{}", m.guid, m.identity);
        let b = self.moves[id as usize].batch as usize;
        self.by_batch[b].retain(|&x| x != id);
        self.start_copies(now);
        Ok(())
    }

    fn request_json(&self, id: u32) -> Value {
        let m = &self.moves[id as usize];
        json!({
            "Identity": m.identity,
            "DisplayName": display_name(&m.identity),
            "Alias": m.identity.split('@').next().unwrap_or(""),
            "ExchangeGuid": guid_string(m.guid),
            "Status": m.status.name(),
            "StatusDetail": m.detail,
            "BatchName": self.batches[m.batch as usize],
            "RequestStyle": "CrossOrg",
            "Direction": "Pull",
            "IsOffline": false,
            "Flags": "CrossOrg, Pull",
            "RemoteHostName": "hybrid.contoso.com",
            "CompleteAfter": m.complete_after.map(|t| t.to_string()),
            "WhenCreated": m.created.to_string(),
        })
    }

    /// When the simulation has something to do next (for a paused-clock driver).
    pub fn next_event(&self) -> Option<Timestamp> {
        self.events
            .peek()
            .and_then(|Reverse((at, _, _))| Timestamp::from_millisecond(*at).ok())
    }

    pub fn copying(&self) -> u32 {
        self.copying
    }
}

/// `alice.smith@contoso.com` -> `Alice Smith`.
fn display_name(identity: &str) -> String {
    identity
        .split('@')
        .next()
        .unwrap_or(identity)
        .split(['.', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

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
        sim.run(
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
            .run(
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
        Profile {
            stall_share: 0.0,
            transient_failure_share: 0.0,
            permanent_failure_share: 0.0,
            dcs_investigate_share: 0.0,
            dcs_poor_share: 0.0,
            completed_with_warning_share: 0.0,
            completed_with_skipped_items_share: 0.0,
            ..Profile::default()
        }
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
            .run(
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
        assert!(m.completion_started.unwrap() >= t("2027-01-04T20:00:00Z"));
        assert_eq!(m.creates, 1);
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
        assert_eq!(sim.copying(), 3);
        let (v, _, _) = sim
            .run(
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
            .run(
                later,
                "Get-MoveRequestStatistics",
                &params(json!({"Identity": "carol@contoso.com"})),
                0,
                1,
            )
            .unwrap();
        assert_eq!(stats[0]["DataConsistencyScore"], "Investigate");
        sim.run(later, "Set-MoveRequest", &params(json!({"Identity": "carol@contoso.com", "SkippedItemApprovalTime": later.to_string()})), 0, 1)
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
            .run(
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
        sim.run(
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
        sim.run(
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
        let (page, more, warnings) = sim.run(start, "Get-MoveRequest", &batch, 0, 1000).unwrap();
        assert_eq!(
            (page.len(), more),
            (1000, false),
            "ResultSize defaults to 1000"
        );
        assert_eq!(warnings.len(), 1);
        let all = params(json!({"BatchName": "mw-2027-01-04", "ResultSize": "Unlimited"}));
        let (page, more, _) = sim.run(start, "Get-MoveRequest", &all, 1000, 1000).unwrap();
        assert_eq!((page.len(), more), (200, false));
        let (_, more, _) = sim.run(start, "Get-MoveRequest", &all, 0, 1000).unwrap();
        assert!(more);
    }

    #[test]
    fn unknown_cmdlets_and_parameters() {
        let start = t("2027-01-01T12:00:00Z");
        let mut sim = MoveService::new(quiet(), 1, start);
        let err = sim
            .run(start, "Get-Mailbox", &Map::new(), 0, 1)
            .unwrap_err();
        assert_eq!((err.status, err.body), (403, None));
        let err = sim
            .run(
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
        sim.run(start, "Set-MoveRequest", &params(json!({"Identity": "hal@contoso.com", "BatchName": "mw-2027-01-05", "CompleteAfter": "2027-01-05T20:00:00Z"})), 0, 1)
            .unwrap();
        let list = |sim: &mut MoveService, b: &str| {
            sim.run(
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
}
