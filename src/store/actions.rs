//! Operator actions in the store: an append-only audit that is also the queue the run applies. A
//! command records what was asked (who, why, when); the run applies it, on the service when need
//! be, and records when and how it went. A signal file beside the database tells a running
//! mailwave to look.

use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Result, State, Store, from_millis, millis};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    Hold,
    Release,
    Retry,
    Skip,
    Reschedule,
    Approve,
}

impl ActionKind {
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::Hold => "hold",
            ActionKind::Release => "release",
            ActionKind::Retry => "retry",
            ActionKind::Skip => "skip",
            ActionKind::Reschedule => "reschedule",
            ActionKind::Approve => "approve",
        }
    }

    pub fn parse(s: &str) -> Option<ActionKind> {
        [
            ActionKind::Hold,
            ActionKind::Release,
            ActionKind::Retry,
            ActionKind::Skip,
            ActionKind::Reschedule,
            ActionKind::Approve,
        ]
        .into_iter()
        .find(|k| k.name() == s)
    }
}

/// What an operator asks for one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRequest {
    pub mailbox_id: i64,
    pub kind: ActionKind,
    pub by: String,
    pub reason: Option<String>,
    /// For a reschedule: the wave it goes to.
    pub target_wave: Option<i64>,
    pub force: bool,
    /// Asked with `--split`: the members of its delegation group it was knowingly split from.
    pub split: Option<String>,
    /// Taken with `--no-notice`: its users are not told of the change.
    pub silent: bool,
}

/// An action the run has not applied yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAction {
    pub id: i64,
    pub at: jiff::Timestamp,
    pub request: ActionRequest,
}

/// One action as the audit shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionRow {
    pub id: i64,
    pub at: String,
    pub address: String,
    pub kind: ActionKind,
    pub by: String,
    pub reason: Option<String>,
    pub target_wave: Option<String>,
    pub force: bool,
    /// Asked with `--split`: the group members it was split from.
    pub split: Option<String>,
    /// Taken with `--no-notice`.
    pub silent: bool,
    pub applied_at: Option<String>,
    pub outcome: Option<String>,
}

/// What an action command needs to know of a mailbox to decide whether the action is legal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxFacts {
    pub id: i64,
    pub address: String,
    pub state: State,
    pub failure_class: Option<String>,
    pub wave: String,
    pub wave_id: i64,
    /// A move request exists or existed for it (its id is known).
    pub has_request: bool,
    /// Its affinity (delegation) group.
    pub group_id: i64,
}

const FACTS: &str =
    "SELECT m.id, m.address, s.state, s.failure_class, w.name, w.id, s.request_id, m.group_id
     FROM mailboxes m JOIN mailbox_state s ON s.mailbox_id = m.id JOIN waves w ON w.id = s.wave_id";

fn facts_row(r: &rusqlite::Row) -> rusqlite::Result<MailboxFacts> {
    Ok(MailboxFacts {
        id: r.get(0)?,
        address: r.get(1)?,
        state: State::from_code(r.get(2)?).unwrap_or(State::Failed),
        failure_class: r.get(3)?,
        wave: r.get(4)?,
        wave_id: r.get(5)?,
        has_request: r.get::<_, Option<String>>(6)?.is_some(),
        group_id: r.get(7)?,
    })
}

/// The file a command touches after recording actions, so a running mailwave looks at once. It
/// is found from the database's real path, as the run lock is: every name for one database
/// signals the same run.
pub fn signal_path(db: &Path) -> PathBuf {
    super::lock::beside(db, ".actions")
}

/// The most of the signal a run reads: a command writes a timestamp, and anything longer is not
/// from mailwave.
const MAX_SIGNAL: u64 = 64;

/// Whether a signal that is not a plain file has been reported (once a process is enough).
static ODD_SIGNAL_REPORTED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// A signal path that is a link, a FIFO or a device is never read or written (that could block
/// the run or write elsewhere); the run then finds actions every `run.action_poll`.
fn odd_signal(path: &Path, e: &std::io::Error) {
    if !ODD_SIGNAL_REPORTED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            path = %path.display(),
            reason = %e,
            "the actions signal is not a plain file; it is ignored, and actions are found every run.action_poll (remove it to have them applied at once)"
        );
    }
}

/// Tells a running mailwave that actions wait (best effort: it also looks now and then anyway).
pub fn signal(db: &Path) {
    let path = signal_path(db);
    let stamp = jiff::Timestamp::now().as_nanosecond().to_string();
    match crate::private::open_plain(&path, true) {
        Ok(mut f) => {
            let _ = f.set_len(0);
            let _ = std::io::Write::write_all(&mut f, stamp.as_bytes());
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => odd_signal(&path, &e),
        Err(_) => {}
    }
}

/// The signal's current mark (its first bytes), to compare with the last one seen. None when
/// there is no signal, or it is not a plain file.
pub fn signal_mark(db: &Path) -> Option<String> {
    let path = signal_path(db);
    match crate::private::open_plain(&path, false) {
        Ok(f) => {
            let mut mark = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_SIGNAL), &mut mark).ok()?;
            Some(String::from_utf8_lossy(&mark).into_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            odd_signal(&path, &e);
            None
        }
        // No signal yet, or none readable now (the poll finds the actions anyway).
        Err(_) => None,
    }
}

impl Store {
    /// Records actions in one transaction; returns their ids in order.
    pub fn record_actions(
        &mut self,
        requests: &[ActionRequest],
        now: jiff::Timestamp,
    ) -> Result<Vec<i64>> {
        let tx = self.conn.transaction()?;
        let mut ids = Vec::with_capacity(requests.len());
        {
            let mut insert = tx.prepare(
                "INSERT INTO actions (at, mailbox_id, kind, by, reason, target_wave, force, split, silent)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for r in requests {
                insert.execute(params![
                    millis(now),
                    r.mailbox_id,
                    r.kind.name(),
                    r.by,
                    r.reason,
                    r.target_wave,
                    r.force,
                    r.split,
                    r.silent
                ])?;
                ids.push(tx.last_insert_rowid());
            }
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Actions not applied yet, oldest first.
    pub fn pending_actions(&self) -> Result<Vec<PendingAction>> {
        let mut q = self.conn.prepare(
            "SELECT id, at, mailbox_id, kind, by, reason, target_wave, force, split, silent FROM actions
             WHERE applied_at IS NULL ORDER BY id",
        )?;
        let rows = q.query_map([], |r| {
            let kind: String = r.get(3)?;
            Ok(PendingAction {
                id: r.get(0)?,
                at: from_millis(r.get(1)?),
                request: ActionRequest {
                    mailbox_id: r.get(2)?,
                    kind: ActionKind::parse(&kind).unwrap_or(ActionKind::Hold),
                    by: r.get(4)?,
                    reason: r.get(5)?,
                    target_wave: r.get(6)?,
                    force: r.get(7)?,
                    split: r.get(8)?,
                    silent: r.get(9)?,
                },
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The actions with these ids, as the audit shows them.
    pub fn actions_by_id(&self, ids: &[i64]) -> Result<Vec<ActionRow>> {
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some(row) = self.action_rows("a.id = ?1", id)?.pop() {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// Every action on one mailbox, oldest first.
    pub fn actions_of(&self, mailbox_id: i64) -> Result<Vec<ActionRow>> {
        self.action_rows("a.mailbox_id = ?1", mailbox_id)
    }

    fn action_rows(&self, filter: &str, value: i64) -> Result<Vec<ActionRow>> {
        let mut q = self.conn.prepare(&format!(
            "SELECT a.id, a.at, m.address, a.kind, a.by, a.reason, w.name, a.force, a.applied_at, a.outcome, a.split, a.silent
             FROM actions a JOIN mailboxes m ON m.id = a.mailbox_id LEFT JOIN waves w ON w.id = a.target_wave
             WHERE {filter} ORDER BY a.id"
        ))?;
        let rows = q.query_map([value], |r| {
            let kind: String = r.get(3)?;
            Ok(ActionRow {
                id: r.get(0)?,
                at: from_millis(r.get(1)?).to_string(),
                address: r.get(2)?,
                kind: ActionKind::parse(&kind).unwrap_or(ActionKind::Hold),
                by: r.get(4)?,
                reason: r.get(5)?,
                target_wave: r.get(6)?,
                force: r.get(7)?,
                silent: r.get(11)?,
                applied_at: r
                    .get::<_, Option<i64>>(8)?
                    .map(|t| from_millis(t).to_string()),
                outcome: r.get(9)?,
                split: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// What an action command needs of each address: `None` for an address not in the plan.
    pub fn mailbox_facts(&self, address: &str) -> Result<Option<MailboxFacts>> {
        Ok(self
            .conn
            .query_row(
                &format!("{FACTS} WHERE m.address = ?1"),
                [address],
                facts_row,
            )
            .optional()?)
    }

    /// The facts of every mailbox of a wave, in plan order, in one query.
    pub fn wave_facts(&self, wave: &str) -> Result<Vec<MailboxFacts>> {
        let mut q = self
            .conn
            .prepare(&format!("{FACTS} WHERE w.name = ?1 ORDER BY s.seq"))?;
        let rows = q.query_map([wave], facts_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The facts of every planned mailbox in the affinity groups `groups`, in plan order.
    pub fn group_facts(&self, groups: &[i64]) -> Result<Vec<MailboxFacts>> {
        let mut groups = groups.to_vec();
        groups.sort_unstable();
        groups.dedup();
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        // Integers only, so the list goes into the statement as it is (one scan, however many).
        let list = groups
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut q = self.conn.prepare(&format!(
            "{FACTS} WHERE m.group_id IN ({list}) ORDER BY w.seq, s.seq"
        ))?;
        let rows = q.query_map([], facts_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The addresses of a wave's mailboxes, in plan order.
    pub fn wave_addresses(&self, wave: &str) -> Result<Vec<String>> {
        let mut q = self.conn.prepare(
            "SELECT m.address FROM mailbox_state s JOIN mailboxes m ON m.id = s.mailbox_id
             JOIN waves w ON w.id = s.wave_id WHERE w.name = ?1 ORDER BY s.seq",
        )?;
        let rows = q.query_map([wave], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// A wave as an action command checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaveInfo {
    pub id: i64,
    pub name: String,
    pub capacity: i64,
    pub window_start: jiff::Timestamp,
    pub window_end: jiff::Timestamp,
    /// Mailboxes in it now.
    pub mailboxes: i64,
}

/// A wave from `id, name, capacity, window_start, window_end, mailboxes`.
fn wave_info_row(r: &rusqlite::Row) -> rusqlite::Result<WaveInfo> {
    Ok(WaveInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        capacity: r.get(2)?,
        window_start: from_millis(r.get(3)?),
        window_end: from_millis(r.get(4)?),
        mailboxes: r.get(5)?,
    })
}

impl Store {
    pub fn wave_info(&self, name: &str) -> Result<Option<WaveInfo>> {
        Ok(self
            .conn
            .query_row(
                "SELECT w.id, w.name, w.capacity, w.window_start, w.window_end,
                        (SELECT COUNT(*) FROM mailbox_state s WHERE s.wave_id = w.id)
                 FROM waves w WHERE w.name = ?1",
                [name],
                wave_info_row,
            )
            .optional()?)
    }

    /// The waves a run works (those holding mailboxes), by window, each with how many of its
    /// mailboxes are not cutting over yet: what the cut-over rule needs to place a mailbox.
    pub fn waves_for_cutover(&self) -> Result<Vec<(WaveInfo, u64)>> {
        let mut q = self.conn.prepare(
            "SELECT w.id, w.name, w.capacity, w.window_start, w.window_end, COUNT(*),
                    SUM(s.state IN (0, 1, 2, 3, 7))
             FROM waves w JOIN mailbox_state s ON s.wave_id = w.id
             GROUP BY w.id ORDER BY w.window_start, w.name",
        )?;
        let rows = q.query_map([], |r| {
            Ok((wave_info_row(r)?, r.get::<_, i64>(6)?.max(0) as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The wave of a calendar slot, made (as part of the current plan) if there is none yet: where
    /// `wave reschedule --to DATE` puts a wave's mailboxes.
    pub fn ensure_wave(&mut self, slot: &crate::plan::Slot) -> Result<WaveInfo> {
        let name = format!("mw-{}", slot.date);
        if let Some(w) = self.wave_info(&name)? {
            return Ok(w);
        }
        // It reads, then writes: taking the write lock first lets it wait for a running mailwave's
        // commit (a read that must become a write mid-way would be refused at once instead).
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let plan: i64 = tx.query_row(
            "SELECT COALESCE((SELECT id FROM plans WHERE current = 1), 0)",
            [],
            |r| r.get(0),
        )?;
        let seq: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM waves", [], |r| {
            r.get(0)
        })?;
        let kind = match slot.kind {
            crate::plan::DayKind::Weekday => "weekday",
            crate::plan::DayKind::Weekend => "weekend",
        };
        tx.execute(
            "INSERT INTO waves (name, plan_id, seq, local_date, kind, pilot, capacity, window_start,
                window_end, prestage_start, window_start_local, window_end_local)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                name,
                plan,
                seq,
                slot.date.to_string(),
                kind,
                slot.capacity as i64,
                millis(slot.start.timestamp()),
                millis(slot.end.timestamp()),
                millis(slot.prestage_start.timestamp()),
                slot.start.to_string(),
                slot.end.to_string()
            ],
        )?;
        tx.commit()?;
        Ok(self.wave_info(&name)?.expect("the wave was just made"))
    }
}

/// One action command as the reports list it: what was asked of how many mailboxes, and how it
/// went (the actions one command recorded share their moment, who, what and why).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionGroup {
    pub at: jiff::Timestamp,
    pub kind: ActionKind,
    pub by: String,
    pub reason: Option<String>,
    /// A reschedule's wave.
    pub target_wave: Option<String>,
    /// Taken with `--no-notice`.
    pub silent: bool,
    pub mailboxes: u64,
    /// One of them, for the reader to look up (`mailbox show`).
    pub first: String,
    pub applied: u64,
    pub refused: u64,
    pub pending: u64,
    /// Why one of them was refused, if any was.
    pub refusal: Option<String>,
}

impl Store {
    /// The action commands asked or applied since `since` (all with None), newest first, at
    /// most `limit`.
    pub fn action_groups(
        &self,
        since: Option<jiff::Timestamp>,
        limit: usize,
    ) -> Result<Vec<ActionGroup>> {
        let mut q = self.conn.prepare(
            "SELECT a.at, a.kind, a.by, a.reason, w.name, a.silent, COUNT(*), MIN(m.address),
                    SUM(a.outcome LIKE 'applied%'), SUM(a.outcome LIKE 'refused%'),
                    SUM(a.applied_at IS NULL), MAX(CASE WHEN a.outcome LIKE 'refused%' THEN a.outcome END)
             FROM actions a JOIN mailboxes m ON m.id = a.mailbox_id LEFT JOIN waves w ON w.id = a.target_wave
             WHERE ?1 IS NULL OR a.at >= ?1 OR a.applied_at >= ?1
             GROUP BY a.at, a.kind, a.by, a.reason, a.target_wave, a.silent
             ORDER BY a.at DESC, MIN(a.id) DESC LIMIT ?2",
        )?;
        let count = |r: &rusqlite::Row, i: usize| -> rusqlite::Result<u64> {
            Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(0).max(0) as u64)
        };
        let rows = q.query_map(params![since.map(millis), limit as i64], |r| {
            let kind: String = r.get(1)?;
            Ok(ActionGroup {
                at: from_millis(r.get(0)?),
                kind: ActionKind::parse(&kind).unwrap_or(ActionKind::Hold),
                by: r.get(2)?,
                reason: r.get(3)?,
                target_wave: r.get(4)?,
                silent: r.get(5)?,
                mailboxes: count(r, 6)?,
                first: r.get(7)?,
                applied: count(r, 8)?,
                refused: count(r, 9)?,
                pending: count(r, 10)?,
                refusal: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
