//! The one writer. A dedicated thread owns the write connection and applies commands sent over a
//! bounded channel, many per transaction: it takes what is waiting (up to a batch limit), commits, and
//! only then acknowledges. A caller that holds an acknowledgement knows the change is on disk (WAL,
//! synchronous=NORMAL: durable across a process kill; a power cut may lose the last commits).
//!
//! The writer keeps every mailbox's state in memory so that checking a transition against the
//! lifecycle costs no read.

use std::path::Path;
use std::thread::JoinHandle;

use rusqlite::params;
use tokio::sync::{mpsc, oneshot};

use super::{FailureClass, Result, State, Store, StoreError, write_transition};

/// A state change for one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub mailbox: i64,
    pub to: State,
    pub cause: &'static str,
    pub detail: Option<String>,
    /// The API call's `client-request-id` (a GUID, 16 bytes).
    pub correlation: Option<[u8; 16]>,
    /// Unix milliseconds.
    pub at: i64,
    pub failure: Option<(FailureClass, String)>,
    /// The move request's identity on the service.
    pub request_id: Option<String>,
}

impl Transition {
    pub fn new(mailbox: i64, to: State, cause: &'static str, at: i64) -> Transition {
        Transition {
            mailbox,
            to,
            cause,
            detail: None,
            correlation: None,
            at,
            failure: None,
            request_id: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn correlation(mut self, id: [u8; 16]) -> Self {
        self.correlation = Some(id);
        self
    }

    pub fn failure(mut self, class: FailureClass, message: impl Into<String>) -> Self {
        self.failure = Some((class, message.into()));
        self
    }

    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Transition(Transition),
    /// An event that is not a state change (for example a cut-over moved to the next wave).
    Note {
        mailbox: i64,
        cause: &'static str,
        detail: String,
        at: i64,
        correlation: Option<[u8; 16]>,
    },
    /// Progress from the service; no event.
    Progress {
        mailbox: i64,
        status_detail: Option<String>,
        percent: Option<i64>,
        at: i64,
    },
    /// Moves a mailbox to another wave, with a note event.
    Reschedule {
        mailbox: i64,
        wave: i64,
        detail: String,
        at: i64,
    },
    /// A call about to create or change something on the service; replies with the intent id.
    Intent {
        mailbox: i64,
        operation: &'static str,
        correlation: [u8; 16],
        at: i64,
    },
    /// Several intents in one go; replies with their ids, in order.
    Intents {
        operation: &'static str,
        calls: Vec<IntentCall>,
        at: i64,
    },
    /// What came of an intent.
    Resolve {
        intent: i64,
        outcome: String,
        at: i64,
    },
    /// Changes a failed mailbox's class and message (no state change), with a note event.
    Reclassify {
        mailbox: i64,
        class: FailureClass,
        message: String,
        at: i64,
    },
    /// What came of an operator action (applied, or refused and why).
    ActionApplied {
        action: i64,
        outcome: String,
        at: i64,
    },
    /// Why an action is still pending (it stays pending: only its outcome says why).
    ActionPending {
        action: i64,
        outcome: String,
    },
    /// A retry starts the mailbox's attempts afresh.
    ResetAttempts {
        mailbox: i64,
    },
    /// A finished move's figures from `Get-MoveRequestStatistics`.
    Figures(Box<super::figures::FigureRow>),
    /// Notices, wave reports, licences, alerts.
    Record(super::records::Record),
    /// Replies once everything sent before it is committed.
    Flush,
}

/// One call about to be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentCall {
    pub mailbox: i64,
    /// The call's `client-request-id`.
    pub correlation: [u8; 16],
    /// The wave it is made for.
    pub wave: Option<i64>,
    /// An earlier intent in doubt that this call asks about again: it is resolved as superseded.
    pub(crate) supersedes: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Done,
    Intent(i64),
    Intents(Vec<i64>),
    Record(super::records::Written),
}

type Ack = oneshot::Sender<Result<Reply>>;

struct Envelope {
    command: Command,
    ack: Option<Ack>,
}

/// How many commands may wait for the writer; senders wait when it is full.
pub(crate) const CHANNEL_CAPACITY: usize = 65_536;
/// The most commands in one transaction, which bounds how long an acknowledgement waits.
pub(crate) const BATCH_LIMIT: usize = 20_000;
/// A commit of fewer changes than this, with no caller waiting on it, waits up to
/// [`GROUP_COMMIT_WAIT`] for more to join it.
const GROUP_COMMIT_SIZE: usize = 256;
const GROUP_COMMIT_WAIT: std::time::Duration = std::time::Duration::from_millis(2);

#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Envelope>,
    paused_time: bool,
    failure: Failure,
}

/// The first change the writer could not make without anyone waiting to hear it (a failed commit,
/// a refused transition). The run must not go on with a view that differs from the database, so
/// the coordinator checks it and stops.
type Failure = std::sync::Arc<std::sync::Mutex<Option<String>>>;

fn note_failure(failure: &Failure, e: &StoreError) {
    let mut f = failure.lock().unwrap_or_else(|p| p.into_inner());
    if f.is_none() {
        *f = Some(e.to_string());
    }
}

impl WriterHandle {
    /// What the writer could not do, if anything (see [`Failure`]).
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// For runs on tokio's paused clock: waits for the writer on the blocking pool, which stops
    /// tokio from jumping simulated time forward while the store is busy.
    pub fn for_paused_time(mut self) -> WriterHandle {
        self.paused_time = true;
        self
    }

    /// Applies a command and waits until it is committed.
    pub(crate) async fn apply(&self, command: Command) -> Result<Reply> {
        let (ack, rx) = oneshot::channel();
        self.send(Envelope {
            command,
            ack: Some(ack),
        })
        .await?;
        if self.paused_time {
            return tokio::task::spawn_blocking(move || rx.blocking_recv())
                .await
                .map_err(|_| StoreError::WriterGone)?
                .map_err(|_| StoreError::WriterGone)?;
        }
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    async fn send(&self, envelope: Envelope) -> Result<()> {
        if self.paused_time {
            match self.tx.try_send(envelope) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(StoreError::WriterGone),
                Err(mpsc::error::TrySendError::Full(envelope)) => {
                    let tx = self.tx.clone();
                    return tokio::task::spawn_blocking(move || tx.blocking_send(envelope).is_ok())
                        .await
                        .ok()
                        .filter(|sent| *sent)
                        .map(|_| ())
                        .ok_or(StoreError::WriterGone);
                }
            }
        }
        self.tx
            .send(envelope)
            .await
            .map_err(|_| StoreError::WriterGone)
    }

    /// Queues a command without waiting for it (a failure is logged by the writer).
    pub async fn submit(&self, command: Command) -> Result<()> {
        self.send(Envelope { command, ack: None }).await
    }

    /// Blocking form of [`apply`](Self::apply), for threads outside the async runtime.
    pub fn apply_blocking(&self, command: Command) -> Result<Reply> {
        let (ack, rx) = oneshot::channel();
        self.tx
            .blocking_send(Envelope {
                command,
                ack: Some(ack),
            })
            .map_err(|_| StoreError::WriterGone)?;
        rx.blocking_recv().map_err(|_| StoreError::WriterGone)?
    }

    /// Blocking form of [`submit`](Self::submit).
    pub fn submit_blocking(&self, command: Command) -> Result<()> {
        self.tx
            .blocking_send(Envelope { command, ack: None })
            .map_err(|_| StoreError::WriterGone)
    }

    /// Writes a record and waits until it is committed.
    pub async fn record(&self, record: super::records::Record) -> Result<super::records::Written> {
        match self.apply(Command::Record(record)).await? {
            Reply::Record(w) => Ok(w),
            // The writer answers a record with what it wrote; nothing else.
            Reply::Done | Reply::Intent(_) | Reply::Intents(_) => Ok(super::records::Written::Done),
        }
    }

    /// Writes records in order, in as few transactions as the writer takes them, and waits until
    /// the last (so all) are committed. One the writer refuses is logged and stops the run, as
    /// any change it cannot make does.
    pub async fn records(&self, records: Vec<super::records::Record>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        for r in records {
            self.submit(Command::Record(r)).await?;
        }
        self.flush().await
    }

    pub async fn flush(&self) -> Result<()> {
        self.apply(Command::Flush).await.map(|_| ())
    }

    pub fn flush_blocking(&self) -> Result<()> {
        self.apply_blocking(Command::Flush).map(|_| ())
    }
}

/// Starts the writer thread on the database at `path`. It stops when every handle is dropped, after
/// committing what it was sent.
pub fn spawn(path: &Path, run: Option<i64>) -> Result<(WriterHandle, JoinHandle<Result<()>>)> {
    let store = Store::open(path)?;
    // The writer's changes are small and scattered: a modest page cache does as well as a large
    // one (the kernel caches the file too) and keeps a long run's memory flat.
    store.conn.pragma_update(None, "cache_size", -65_536)?; // 64 MiB
    let states = load_states(&store)?;
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let failure = Failure::default();
    let writer = Writer {
        store,
        states,
        run,
        failure: failure.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("mailwave-writer".into())
        .spawn(move || writer.run(rx))
        .map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok((
        WriterHandle {
            tx,
            paused_time: false,
            failure,
        },
        thread,
    ))
}

fn load_states(store: &Store) -> Result<Vec<u8>> {
    let max: i64 = store.conn.query_row(
        "SELECT COALESCE(MAX(mailbox_id), 0) FROM mailbox_state",
        [],
        |r| r.get(0),
    )?;
    let mut states = vec![u8::MAX; max as usize + 1];
    let mut q = store
        .conn
        .prepare("SELECT mailbox_id, state FROM mailbox_state")?;
    let mut rows = q.query([])?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let state: i64 = r.get(1)?;
        states[id as usize] = state as u8;
    }
    Ok(states)
}

struct Writer {
    store: Store,
    /// State code per mailbox id; `u8::MAX` for a mailbox without a plan.
    states: Vec<u8>,
    run: Option<i64>,
    failure: Failure,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Envelope>) -> Result<()> {
        let mut batch: Vec<(Option<Ack>, Result<Reply>)> = Vec::new();
        // A small runtime of the writer's own, to wait for the channel with a deadline (real time,
        // whatever clock the sender's runtime keeps).
        let timer = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|source| StoreError::Io {
                path: "mailwave-writer timer".into(),
                source,
            })?;
        while let Some(first) = rx.blocking_recv() {
            let tx = self.store.conn.transaction()?;
            let mut next = Some(first);
            let deadline = tokio::time::Instant::now() + GROUP_COMMIT_WAIT;
            let mut someone_waits = false;
            loop {
                while let Some(envelope) = next.take() {
                    someone_waits |= envelope.ack.is_some();
                    let result = apply(&tx, &mut self.states, envelope.command, self.run);
                    batch.push((envelope.ack, result));
                    if batch.len() < BATCH_LIMIT {
                        next = rx.try_recv().ok();
                    }
                }
                // Group commit: a commit costs about the same for one change as for hundreds, so
                // while nobody waits for this one, changes on their way get a moment to join it.
                if someone_waits || batch.len() >= GROUP_COMMIT_SIZE {
                    break;
                }
                next = timer
                    .block_on(async { tokio::time::timeout_at(deadline, rx.recv()).await })
                    .ok()
                    .flatten();
                if next.is_none() {
                    break;
                }
            }
            let committed = tx.commit();
            if let Err(e) = &committed {
                // The in-memory states may be ahead of the database now: read them again.
                tracing::error!(error = %e, "state commit failed");
                note_failure(&self.failure, &StoreError::CommitFailed(e.to_string()));
                self.states = load_states(&self.store)?;
            }
            for (ack, result) in batch.drain(..) {
                let result = match (&committed, result) {
                    (Err(e), _) => Err(StoreError::CommitFailed(e.to_string())),
                    (Ok(()), r) => r,
                };
                match ack {
                    Some(ack) => {
                        let _ = ack.send(result);
                    }
                    None => {
                        if let Err(e) = result {
                            tracing::error!(error = %e, "state change refused");
                            note_failure(&self.failure, &e);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn state_of(states: &[u8], mailbox: i64) -> Option<State> {
    states
        .get(usize::try_from(mailbox).ok()?)
        .and_then(|&c| State::from_code(c as i64))
}

fn apply(
    tx: &rusqlite::Transaction<'_>,
    states: &mut [u8],
    command: Command,
    run: Option<i64>,
) -> Result<Reply> {
    match command {
        Command::Transition(t) => {
            let from = state_of(states, t.mailbox)
                .ok_or_else(|| StoreError::UnknownMailbox(format!("#{}", t.mailbox)))?;
            write_transition(tx, &t, from, run)?;
            states[t.mailbox as usize] = t.to.code();
            Ok(Reply::Done)
        }
        Command::Note {
            mailbox,
            cause,
            detail,
            at,
            correlation,
        } => {
            let state = state_of(states, mailbox)
                .ok_or_else(|| StoreError::UnknownMailbox(format!("#{mailbox}")))?;
            tx.prepare_cached(
                "INSERT INTO events (at, mailbox_id, from_state, to_state, cause, detail, correlation, run_id)
                 VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![at, mailbox, state.code(), cause, detail, correlation.as_ref().map(|c| c.as_slice()), run])?;
            Ok(Reply::Done)
        }
        Command::Figures(row) => {
            super::figures::write(tx, &row)?;
            Ok(Reply::Done)
        }
        Command::Progress {
            mailbox,
            status_detail,
            percent,
            at,
        } => {
            tx.prepare_cached(
                "UPDATE mailbox_state SET status_detail = ?2, percent = ?3, updated_at = ?4 WHERE mailbox_id = ?1",
            )?
            .execute(params![mailbox, status_detail, percent, at])?;
            Ok(Reply::Done)
        }
        Command::Reschedule {
            mailbox,
            wave,
            detail,
            at,
        } => {
            let state = state_of(states, mailbox)
                .ok_or_else(|| StoreError::UnknownMailbox(format!("#{mailbox}")))?;
            tx.prepare_cached(
                "UPDATE mailbox_state SET wave_id = ?2, updated_at = ?3 WHERE mailbox_id = ?1",
            )?
            .execute(params![mailbox, wave, at])?;
            tx.prepare_cached(
                "INSERT INTO events (at, mailbox_id, from_state, to_state, cause, detail, run_id)
                 VALUES (?1, ?2, ?3, ?3, 'reschedule', ?4, ?5)",
            )?
            .execute(params![at, mailbox, state.code(), detail, run])?;
            Ok(Reply::Done)
        }
        Command::Intent {
            mailbox,
            operation,
            correlation,
            at,
        } => {
            tx.prepare_cached(
                "INSERT INTO intents (mailbox_id, operation, correlation, created_at, run_id) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![mailbox, operation, correlation.as_slice(), at, run])?;
            Ok(Reply::Intent(tx.last_insert_rowid()))
        }
        Command::Resolve {
            intent,
            outcome,
            at,
        } => {
            tx.prepare_cached("UPDATE intents SET resolved_at = ?2, outcome = ?3 WHERE id = ?1 AND resolved_at IS NULL")?
                .execute(params![intent, at, outcome])?;
            Ok(Reply::Done)
        }
        Command::Intents {
            operation,
            calls,
            at,
        } => {
            let mut insert = tx.prepare_cached(
                "INSERT INTO intents (mailbox_id, operation, correlation, created_at, run_id, wave_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut supersede = tx.prepare_cached(
                "UPDATE intents SET resolved_at = ?2, outcome = ?3 WHERE id = ?1 AND resolved_at IS NULL",
            )?;
            let mut ids = Vec::with_capacity(calls.len());
            for call in calls {
                insert.execute(params![
                    call.mailbox,
                    operation,
                    call.correlation.as_slice(),
                    at,
                    run,
                    call.wave
                ])?;
                let id = tx.last_insert_rowid();
                if let Some(old) = call.supersedes {
                    supersede.execute(params![
                        old,
                        at,
                        format!("in doubt; asked again by intent {id}")
                    ])?;
                }
                ids.push(id);
            }
            Ok(Reply::Intents(ids))
        }
        Command::Reclassify {
            mailbox,
            class,
            message,
            at,
        } => {
            let state = state_of(states, mailbox)
                .ok_or_else(|| StoreError::UnknownMailbox(format!("#{mailbox}")))?;
            tx.prepare_cached(
                "UPDATE mailbox_state SET failure_class = ?2, last_error = ?3, updated_at = ?4 WHERE mailbox_id = ?1",
            )?
            .execute(params![mailbox, class.name(), message, at])?;
            tx.prepare_cached(
                "INSERT INTO events (at, mailbox_id, from_state, to_state, cause, detail, run_id)
                 VALUES (?1, ?2, ?3, ?3, 'reclassify', ?4, ?5)",
            )?
            .execute(params![
                at,
                mailbox,
                state.code(),
                format!("{}: {message}", class.name()),
                run
            ])?;
            Ok(Reply::Done)
        }
        Command::ActionApplied {
            action,
            outcome,
            at,
        } => {
            tx.prepare_cached(
                "UPDATE actions SET applied_at = ?2, outcome = ?3 WHERE id = ?1 AND applied_at IS NULL",
            )?
            .execute(params![action, at, outcome])?;
            Ok(Reply::Done)
        }
        Command::ActionPending { action, outcome } => {
            tx.prepare_cached(
                "UPDATE actions SET outcome = ?2 WHERE id = ?1 AND applied_at IS NULL",
            )?
            .execute(params![action, outcome])?;
            Ok(Reply::Done)
        }
        Command::ResetAttempts { mailbox } => {
            tx.prepare_cached("UPDATE mailbox_state SET attempts = 0 WHERE mailbox_id = ?1")?
                .execute(params![mailbox])?;
            Ok(Reply::Done)
        }
        Command::Record(r) => Ok(Reply::Record(r.apply(tx)?)),
        Command::Flush => Ok(Reply::Done),
    }
}
