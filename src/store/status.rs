//! Read-side queries: `status` and `mailbox show`. They run on read-only connections.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::lifecycle::ALL_STATES;
use super::{Result, State, Store, StoreError, from_millis, millis};

/// Counts per state, every state present (zero when none), in lifecycle order.
pub(crate) type StateCounts = BTreeMap<&'static str, u64>;

fn empty_counts() -> StateCounts {
    ALL_STATES.iter().map(|s| (s.name(), 0)).collect()
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Oldest {
    pub address: String,
    pub state: State,
    /// When it was submitted (RFC 3339, UTC).
    pub since: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WaveStatus {
    pub id: String,
    pub seq: i64,
    pub date: String,
    pub pilot: bool,
    pub capacity: i64,
    pub window_start: String,
    pub window_end: String,
    pub prestage_start: String,
    pub total: u64,
    pub states: StateCounts,
    /// For a wave with work in flight: its oldest mailbox not yet synced.
    pub oldest_unsynced: Option<Oldest>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NextWave {
    pub id: String,
    pub window_start: String,
    pub mailboxes: u64,
}

/// What `mailwave status --json` prints. Field names and meanings are stable (README documents them).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Status {
    pub format: u32,
    pub(crate) generated_at: String,
    pub plan: Option<String>,
    pub mailboxes: u64,
    pub totals: StateCounts,
    pub failures: BTreeMap<&'static str, u64>,
    /// Mailboxes that need a person, by reason ([`super::attention::REASONS`]).
    pub needs_person: BTreeMap<&'static str, u64>,
    pub next_wave: Option<NextWave>,
    pub waves: Vec<WaveStatus>,
    /// The latest `mailwave forecast`, in short.
    pub forecast: Option<ForecastNote>,
}

/// The latest forecast, as status and watch show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ForecastNote {
    pub made_at: String,
    pub basis: String,
    /// The last cut-over, in the schedule's zone, as people read it.
    pub finish: Option<String>,
    /// The same, RFC 3339 UTC.
    pub finish_at: Option<String>,
    /// Waves at risk whose windows are still ahead.
    pub at_risk: u64,
    /// The waves at risk still ahead, soonest first, with their expected share ready at the
    /// window's start (a wave whose window has opened since the forecast is no longer "at risk").
    pub waves_at_risk: Vec<(String, f64)>,
}

impl ForecastNote {
    fn of(at: i64, body: &str, now: jiff::Timestamp) -> Option<ForecastNote> {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        let base = v.get("base")?;
        let ahead = |w: &serde_json::Value| {
            w.get("window_start")
                .and_then(|t| t.as_str())
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .is_none_or(|t| t > now)
        };
        let waves_at_risk: Vec<(String, f64)> = base
            .get("waves")?
            .as_array()?
            .iter()
            .filter(|w| w.get("risk").is_some_and(|r| !r.is_null()) && ahead(w))
            .filter_map(|w| {
                Some((
                    w.get("wave")?.as_str()?.to_string(),
                    w.get("ready_share")?.as_f64()?,
                ))
            })
            .collect();
        Some(ForecastNote {
            made_at: super::from_millis(at).to_string(),
            basis: v.get("basis")?.as_str()?.to_string(),
            finish: base
                .get("finish_local")
                .and_then(|f| f.as_str())
                .map(str::to_string),
            finish_at: base
                .get("finish")
                .and_then(|f| f.as_str())
                .map(str::to_string),
            at_risk: waves_at_risk.len() as u64,
            waves_at_risk,
        })
    }
}

impl Store {
    /// The estate's status at `now`; with `wave`, only that wave is listed.
    pub fn status(&self, now: jiff::Timestamp, wave: Option<&str>) -> Result<Status> {
        let conn = self.conn();
        let plan: Option<String> = conn
            .query_row("SELECT name FROM plans WHERE current = 1", [], |r| r.get(0))
            .optional()?;
        let mut counts: BTreeMap<i64, StateCounts> = BTreeMap::new();
        let mut totals = empty_counts();
        let mut q = conn.prepare(
            "SELECT wave_id, state, COUNT(*) FROM mailbox_state GROUP BY wave_id, state",
        )?;
        let mut rows = q.query([])?;
        while let Some(r) = rows.next()? {
            let (w, s, n): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            let state = State::from_code(s).unwrap_or(State::Failed);
            *counts
                .entry(w)
                .or_insert_with(empty_counts)
                .get_mut(state.name())
                .unwrap() += n as u64;
            *totals.get_mut(state.name()).unwrap() += n as u64;
        }
        let mut failures: BTreeMap<&'static str, u64> =
            [("transient", 0), ("permanent", 0), ("needs_approval", 0)]
                .into_iter()
                .collect();
        let mut q = conn.prepare(
            "SELECT COALESCE(failure_class, 'permanent'), COUNT(*) FROM mailbox_state WHERE state = 7 GROUP BY 1",
        )?;
        let mut rows = q.query([])?;
        while let Some(r) = rows.next()? {
            let class: String = r.get(0)?;
            let n: i64 = r.get(1)?;
            if let Some(c) = super::FailureClass::from_name(&class) {
                *failures.entry(c.name()).or_default() += n as u64;
            }
        }

        let now_ms = millis(now);
        let mut waves = Vec::new();
        let mut next_wave = None;
        let mut q = conn.prepare(
            "SELECT id, name, seq, local_date, pilot, capacity, window_start, window_end, prestage_start
             FROM waves w WHERE EXISTS (SELECT 1 FROM mailbox_state s WHERE s.wave_id = w.id)
             ORDER BY window_start",
        )?;
        let mut rows = q.query([])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let name: String = r.get(1)?;
            let start: i64 = r.get(6)?;
            let states = counts.remove(&id).unwrap_or_else(empty_counts);
            let total: u64 = states.values().sum();
            if next_wave.is_none() && start > now_ms {
                next_wave = Some(NextWave {
                    id: name.clone(),
                    window_start: from_millis(start).to_string(),
                    mailboxes: total,
                });
            }
            if wave.is_some_and(|w| w != name) {
                continue;
            }
            let unsynced = states["submitted"] + states["syncing"];
            let oldest_unsynced = if unsynced > 0 {
                conn.query_row(
                    "SELECT m.address, s.state, s.submitted_at FROM mailbox_state s
                     JOIN mailboxes m ON m.id = s.mailbox_id
                     WHERE s.wave_id = ?1 AND s.state IN (1, 2)
                     ORDER BY s.submitted_at LIMIT 1",
                    [id],
                    |r| {
                        Ok(Oldest {
                            address: r.get(0)?,
                            state: State::from_code(r.get(1)?).unwrap_or(State::Submitted),
                            since: r
                                .get::<_, Option<i64>>(2)?
                                .map(|t| from_millis(t).to_string())
                                .unwrap_or_default(),
                        })
                    },
                )
                .optional()?
            } else {
                None
            };
            waves.push(WaveStatus {
                id: name,
                seq: r.get(2)?,
                date: r.get(3)?,
                pilot: r.get(4)?,
                capacity: r.get(5)?,
                window_start: from_millis(start).to_string(),
                window_end: from_millis(r.get(7)?).to_string(),
                prestage_start: from_millis(r.get(8)?).to_string(),
                total,
                states,
                oldest_unsynced,
            });
        }
        if let Some(w) = wave
            && waves.is_empty()
        {
            return Err(StoreError::UnknownMailbox(format!("wave {w}")));
        }
        Ok(Status {
            format: 1,
            generated_at: now.to_string(),
            plan,
            mailboxes: totals.values().sum(),
            totals,
            failures,
            needs_person: self.needs_person_by_reason()?,
            next_wave,
            waves,
            forecast: self
                .latest_forecast()?
                .and_then(|(at, body)| ForecastNote::of(at, &body, now)),
        })
    }

    /// One mailbox's facts, state and full history.
    pub(crate) fn mailbox_report(&self, address: &str) -> Result<MailboxReport> {
        let conn = self.conn();
        let facts = conn
            .query_row(
                "SELECT id, address, display_name, size_bytes, item_count, organisation, source_database,
                        priority, pilot, exclude, group_id, service_account
                 FROM mailboxes WHERE address = ?1",
                [address],
                |r| {
                    Ok(MailboxReport {
                        id: r.get(0)?,
                        address: r.get(1)?,
                        display_name: r.get(2)?,
                        size_bytes: r.get(3)?,
                        item_count: r.get(4)?,
                        organisation: r.get(5)?,
                        source_database: r.get(6)?,
                        priority: r.get(7)?,
                        pilot: r.get(8)?,
                        exclude: r.get(9)?,
                        group_id: r.get(10)?,
                        service_account: r.get(11)?,
                        group_size: 0,
                        wave: None,
                        state: None,
                        attempts: 0,
                        failure_class: None,
                        last_error: None,
                        request_id: None,
                        status_detail: None,
                        percent: None,
                        events: Vec::new(),
                    })
                },
            )
            .optional()?;
        let Some(mut report) = facts else {
            return Err(StoreError::UnknownMailbox(address.to_string()));
        };
        report.group_size = conn.query_row(
            "SELECT COUNT(*) FROM mailboxes WHERE group_id = ?1 AND exclude = 0",
            [report.group_id],
            |r| r.get(0),
        )?;
        if let Some((wave, state, attempts, class, error, request, detail, percent)) = conn
            .query_row(
                "SELECT w.name, s.state, s.attempts, s.failure_class, s.last_error, s.request_id, s.status_detail, s.percent
                 FROM mailbox_state s JOIN waves w ON w.id = s.wave_id WHERE s.mailbox_id = ?1",
                [report.id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, Option<i64>>(7)?,
                    ))
                },
            )
            .optional()?
        {
            report.wave = Some(wave);
            report.state = State::from_code(state);
            report.attempts = attempts;
            report.failure_class = class;
            report.last_error = error;
            report.request_id = request;
            report.status_detail = detail;
            report.percent = percent;
        }
        let mut q = conn.prepare(
            "SELECT at, from_state, to_state, cause, detail, correlation FROM events WHERE mailbox_id = ?1 ORDER BY id",
        )?;
        report.events = q
            .query_map(params![report.id], |r| {
                let correlation: Option<Vec<u8>> = r.get(5)?;
                Ok(EventRow {
                    at: from_millis(r.get(0)?).to_string(),
                    from: r.get::<_, Option<i64>>(1)?.and_then(State::from_code),
                    to: State::from_code(r.get(2)?).unwrap_or(State::Failed),
                    cause: r.get(3)?,
                    detail: r.get(4)?,
                    correlation: correlation.as_deref().map(format_guid),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(report)
    }
}

/// A GUID's 16 bytes as the service prints it.
pub(crate) fn format_guid(bytes: &[u8]) -> String {
    if bytes.len() != 16 {
        return bytes.iter().map(|b| format!("{b:02x}")).collect();
    }
    let h: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct EventRow {
    pub at: String,
    pub from: Option<State>,
    pub to: State,
    pub cause: String,
    pub detail: Option<String>,
    pub correlation: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct MailboxReport {
    #[serde(skip)]
    pub id: i64,
    pub address: String,
    pub display_name: Option<String>,
    pub size_bytes: i64,
    pub item_count: i64,
    pub(crate) organisation: Option<String>,
    pub(crate) source_database: Option<String>,
    pub(crate) priority: Option<i64>,
    pub pilot: bool,
    pub(crate) exclude: bool,
    pub(crate) group_id: i64,
    pub(crate) group_size: i64,
    pub(crate) service_account: bool,
    pub wave: Option<String>,
    pub state: Option<State>,
    pub(crate) attempts: i64,
    pub(crate) failure_class: Option<String>,
    pub last_error: Option<String>,
    pub request_id: Option<String>,
    pub(crate) status_detail: Option<String>,
    pub(crate) percent: Option<i64>,
    pub events: Vec<EventRow>,
}

/// A mailbox that needs the operator.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AttentionRow {
    pub address: String,
    pub wave: String,
    pub state: State,
    pub class: Option<String>,
    pub reason: Option<String>,
}

impl Store {
    /// Mailboxes that need a person ([`super::attention`]), earliest wave first (at most `limit`),
    /// and how many there are in all.
    pub fn attention(&self, limit: usize) -> Result<(u64, Vec<AttentionRow>)> {
        self.needs_person(None, limit)
    }

    /// The mailboxes of one wave that need the operator (failed or held), with the service's message.
    pub fn attention_in_wave(&self, wave: &str, limit: usize) -> Result<Vec<AttentionRow>> {
        self.attention_rows(
            "WHERE s.state IN (7, 8) AND w.name = ?1 ORDER BY m.address LIMIT ?2",
            params![wave, limit as i64],
        )
    }

    /// Mailboxes whose address contains `text` (case-insensitive), at most `limit`.
    pub fn search_mailboxes(&self, text: &str, limit: usize) -> Result<Vec<AttentionRow>> {
        let pattern = format!(
            "%{}%",
            text.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        self.attention_rows(
            "WHERE m.address LIKE ?1 ESCAPE '\\' ORDER BY m.address LIMIT ?2",
            params![pattern, limit as i64],
        )
    }

    pub(super) fn attention_rows(
        &self,
        tail: &str,
        p: impl rusqlite::Params,
    ) -> Result<Vec<AttentionRow>> {
        let mut q = self.conn().prepare(&format!(
            "SELECT m.address, w.name, s.state, s.failure_class, s.last_error
             FROM mailbox_state s JOIN mailboxes m ON m.id = s.mailbox_id JOIN waves w ON w.id = s.wave_id {tail}"
        ))?;
        let rows = q
            .query_map(p, |r| {
                Ok(AttentionRow {
                    address: r.get(0)?,
                    wave: r.get(1)?,
                    state: State::from_code(r.get(2)?).unwrap_or(State::Failed),
                    class: r.get(3)?,
                    reason: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Cut-overs completed in each of the `hours` hours up to `now`, oldest first.
    pub fn completions_per_hour(&self, now: jiff::Timestamp, hours: usize) -> Result<Vec<u64>> {
        let end = millis(now);
        let start = end - hours as i64 * 3_600_000;
        let mut out = vec![0u64; hours];
        let mut q = self.conn().prepare(
            "SELECT (completed_at - ?1) / 3600000, COUNT(*) FROM mailbox_state
             WHERE completed_at >= ?1 AND completed_at < ?2 GROUP BY 1",
        )?;
        let mut rows = q.query(params![start, end])?;
        while let Some(r) = rows.next()? {
            let (h, n): (i64, i64) = (r.get(0)?, r.get(1)?);
            if let Some(slot) = out.get_mut(h as usize) {
                *slot = n as u64;
            }
        }
        Ok(out)
    }

    /// Every mailbox of the plan (or of one wave) with its times, attempts, last error and the
    /// operator's actions on it, in wave and address order, handed to `each` one at a time (the
    /// report streams 2.1 million of them without holding them).
    pub fn each_mailbox_row(
        &self,
        wave: Option<&str>,
        since: Option<jiff::Timestamp>,
        mut each: impl FnMut(MailboxReportRow) -> std::io::Result<()>,
    ) -> Result<std::io::Result<()>> {
        let mut q = self.conn().prepare(&format!(
            // A database written before attempts started their times afresh may hold a sync
            // from before the latest submission: such a time is not shown.
            "SELECT m.address, w.name, s.state, s.submitted_at,
                    CASE WHEN s.submitted_at IS NULL OR s.synced_at >= s.submitted_at THEN s.synced_at END,
                    CASE WHEN s.submitted_at IS NULL OR s.completed_at >= s.submitted_at THEN s.completed_at END,
                    m.size_bytes, s.attempts, s.failure_class, s.last_error,
                    (SELECT group_concat(a.kind
                        || COALESCE(' to ' || (SELECT t.name FROM waves t WHERE t.id = a.target_wave), '')
                        || CASE WHEN a.silent THEN ' without notice' ELSE '' END
                        || ' by ' || a.by
                        || COALESCE(' (' || a.reason || ')', '')
                        || COALESCE(', split from its group: ' || a.split, '')
                        || ' -> ' || COALESCE(a.outcome, 'pending'), '; ')
                     FROM actions a WHERE a.mailbox_id = m.id),
                    {}
             FROM mailbox_state s JOIN mailboxes m ON m.id = s.mailbox_id JOIN waves w ON w.id = s.wave_id
             LEFT JOIN move_stats f ON f.mailbox_id = s.mailbox_id
             WHERE (?1 IS NULL OR w.name = ?1) AND (?2 IS NULL OR s.updated_at >= ?2)
             ORDER BY w.window_start, m.address",
            super::figures::select_list("f")
        ))?;
        let mut rows = q.query(params![wave, since.map(millis)])?;
        let time = |v: Option<i64>| v.map(|t| from_millis(t).to_string());
        while let Some(r) = rows.next()? {
            let has_figures = r.get::<_, Option<String>>(11)?.is_some();
            let row = MailboxReportRow {
                address: r.get(0)?,
                wave: r.get(1)?,
                state: State::from_code(r.get(2)?).unwrap_or(State::Failed),
                submitted_at: time(r.get(3)?),
                synced_at: time(r.get(4)?),
                completed_at: time(r.get(5)?),
                size_bytes: r.get::<_, i64>(6)?.max(0) as u64,
                attempts: r.get::<_, i64>(7)?.max(0) as u64,
                failure_class: r.get(8)?,
                last_error: r.get(9)?,
                actions: r.get(10)?,
                figures: if has_figures {
                    Some(super::figures::read(r, 11)?)
                } else {
                    None
                },
            };
            if let Err(e) = each(row) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    /// The summary the last finished run stored.
    pub(crate) fn last_run(&self) -> Result<Option<(i64, String, String, String)>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, command, COALESCE(outcome, ''), COALESCE(summary, '{}') FROM runs
                 WHERE ended_at IS NOT NULL ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?)
    }
}

/// One mailbox as `report --format csv|json` writes it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MailboxReportRow {
    pub address: String,
    pub wave: String,
    pub state: State,
    pub submitted_at: Option<String>,
    pub synced_at: Option<String>,
    pub completed_at: Option<String>,
    pub size_bytes: u64,
    pub attempts: u64,
    pub failure_class: Option<String>,
    /// The service's message for the last failure.
    pub last_error: Option<String>,
    /// The operator's actions on it: "hold by alice (VIP) -> applied; ...".
    pub actions: Option<String>,
    /// Its move's figures (`Get-MoveRequestStatistics`), once read: named by
    /// [`REPORT_FIELDS`](super::figures::REPORT_FIELDS).
    #[serde(rename = "move", serialize_with = "move_figures")]
    pub figures: Option<crate::exchange::figures::MoveFigures>,
}

fn move_figures<S: serde::Serializer>(
    f: &Option<crate::exchange::figures::MoveFigures>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let Some(f) = f else {
        return s.serialize_none();
    };
    let names = &*super::figures::REPORT_FIELDS;
    let mut map = s.serialize_map(Some(names.len()))?;
    for (k, v) in names.iter().zip(super::figures::report_values(f)) {
        map.serialize_entry(k, &v)?;
    }
    map.end()
}
