//! Loading a plan directory into the store. Idempotent: the same files change nothing. A revised plan
//! re-assigns only mailboxes that have not started; the ones already in flight stay in their wave and
//! are listed.

use std::collections::HashMap;

use rusqlite::params;

use super::writer::Transition;
use super::{Result, State, Store, StoreError, millis, write_transition};
use crate::inventory::index::AddressIndex;
use crate::plan::files;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// The same plan was already current: nothing was written.
    pub unchanged: bool,
    pub(crate) plan_id: i64,
    pub waves: u64,
    pub added: u64,
    pub moved: u64,
    pub dropped: u64,
    /// Mailboxes the new plan puts in another wave but which are already in flight:
    /// (address, state, the wave they stay in).
    pub in_flight: Vec<(String, State, String)>,
}

impl Store {
    /// The current plan's id, name and digest.
    pub(crate) fn current_plan(&self) -> Result<Option<(i64, String, String)>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .query_row(
                "SELECT id, name, digest FROM plans WHERE current = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?)
    }

    /// Loads a plan read from its folder (see [`files::read`]); the store itself never reads plan
    /// files.
    pub fn load_plan(&mut self, pd: &files::PlanDir, now: jiff::Timestamp) -> Result<LoadReport> {
        if let Some((id, _, digest)) = self.current_plan()?
            && digest == pd.digest
        {
            return Ok(LoadReport {
                unchanged: true,
                plan_id: id,
                waves: pd.plan.waves.len() as u64,
                ..Default::default()
            });
        }
        let at = millis(now);
        let tx = self.conn.transaction()?;
        tx.execute("UPDATE plans SET current = 0 WHERE current = 1", [])?;
        tx.execute(
            "INSERT INTO plans (name, digest, dir, loaded_at, timezone, current) VALUES (?1, ?2, ?3, ?4, ?5, 1)",
            params![pd.plan.name, pd.digest, pd.dir.display().to_string(), at, pd.plan.timezone],
        )?;
        let plan_id = tx.last_insert_rowid();

        let mut wave_ids = Vec::with_capacity(pd.plan.waves.len());
        {
            let mut upsert = tx.prepare(
                "INSERT INTO waves (name, plan_id, seq, local_date, kind, pilot, capacity, window_start,
                    window_end, prestage_start, window_start_local, window_end_local)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (name) DO UPDATE SET plan_id = excluded.plan_id, seq = excluded.seq,
                    local_date = excluded.local_date, kind = excluded.kind, pilot = excluded.pilot,
                    capacity = excluded.capacity, window_start = excluded.window_start,
                    window_end = excluded.window_end, prestage_start = excluded.prestage_start,
                    window_start_local = excluded.window_start_local,
                    window_end_local = excluded.window_end_local
                 RETURNING id",
            )?;
            for w in &pd.plan.waves {
                let kind = match w.kind {
                    crate::plan::DayKind::Weekday => "weekday",
                    crate::plan::DayKind::Weekend => "weekend",
                };
                let id: i64 = upsert.query_row(
                    params![
                        w.id,
                        plan_id,
                        w.seq,
                        w.date.to_string(),
                        kind,
                        w.pilot,
                        w.capacity as i64,
                        millis(w.window_start_utc),
                        millis(w.window_end_utc),
                        millis(w.prestage_start_utc),
                        w.window_start.to_string(),
                        w.window_end.to_string()
                    ],
                    |r| r.get(0),
                )?;
                wave_ids.push(id);
            }
        }
        let wave_names: HashMap<i64, String> = {
            let mut q = tx.prepare("SELECT id, name FROM waves")?;
            q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?
        };

        // Every mailbox by address (any case), and where each one stands now.
        let mailboxes: Vec<(i64, String)> = {
            let mut q = tx.prepare("SELECT id, address FROM mailboxes")?;
            q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?
        };
        let mut index = AddressIndex::with_capacity(mailboxes.len());
        for (i, (_, address)) in mailboxes.iter().enumerate() {
            index.insert(address, i as u32, |j| &mailboxes[j as usize].1);
        }
        let max_id = mailboxes.iter().map(|m| m.0).max().unwrap_or(0) as usize;
        const NONE: u8 = u8::MAX;
        let mut existing: Vec<(u8, i64)> = vec![(NONE, 0); max_id + 1];
        {
            let mut q = tx.prepare("SELECT mailbox_id, state, wave_id FROM mailbox_state")?;
            let mut rows = q.query([])?;
            while let Some(r) = rows.next()? {
                let id: i64 = r.get(0)?;
                existing[id as usize] = (r.get::<_, i64>(1)? as u8, r.get(2)?);
            }
        }

        let mut report = LoadReport {
            plan_id,
            waves: wave_ids.len() as u64,
            ..Default::default()
        };
        // For each mailbox id, the plan row (1-based) that placed it.
        let mut placed_by = vec![0u32; max_id + 1];
        {
            let mut insert = tx.prepare(
                "INSERT INTO mailbox_state (mailbox_id, wave_id, seq, state, updated_at) VALUES (?1, ?2, ?3, 0, ?4)",
            )?;
            let mut event = tx.prepare(
                "INSERT INTO events (at, mailbox_id, from_state, to_state, cause, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut reassign =
                tx.prepare("UPDATE mailbox_state SET wave_id = ?2, seq = ?3, updated_at = ?4 WHERE mailbox_id = ?1")?;
            let mut row = 0usize;
            for (w, plan_wave) in pd.plan.waves.iter().enumerate() {
                let wave = wave_ids[w];
                let wave_name = &plan_wave.id;
                for (seq, address) in plan_wave.addresses.iter().enumerate() {
                    let (batch, line) = pd.rows[row];
                    row += 1;
                    let file = || plan_wave.batches[batch as usize].clone();
                    let Some(i) = index.get(address, |j| &mailboxes[j as usize].1) else {
                        return Err(StoreError::PlanRow {
                            file: file(),
                            line,
                            message: format!("{address} is not in the inventory"),
                        });
                    };
                    let id = mailboxes[i as usize].0;
                    if placed_by[id as usize] != 0 {
                        let (other_wave, other_batch, other_line) =
                            locate(pd, placed_by[id as usize] as usize - 1);
                        return Err(StoreError::PlanRow {
                            file: file(),
                            line,
                            message: format!(
                                "{address} is already planned at {}, line {other_line}",
                                pd.plan.waves[other_wave].batches[other_batch as usize]
                            ),
                        });
                    }
                    placed_by[id as usize] = row as u32;
                    let seq = seq as i64 + 1;
                    let (code, current) = std::mem::replace(&mut existing[id as usize], (NONE, 0));
                    let state = (code != NONE)
                        .then(|| State::from_code(code as i64).unwrap_or(State::Failed));
                    match state {
                        None => {
                            insert.execute(params![id, wave, seq, at])?;
                            event.execute(params![
                                at,
                                id,
                                None::<i64>,
                                State::Planned.code(),
                                "plan",
                                wave_name
                            ])?;
                            report.added += 1;
                        }
                        Some(state) if current == wave => {
                            reassign.execute(params![id, wave, seq, at])?;
                            if state == State::Skipped {
                                let t = Transition::new(id, State::Planned, "plan", at)
                                    .detail(wave_name.clone());
                                write_transition(&tx, &t, state, None)?;
                                report.added += 1;
                            }
                        }
                        Some(state @ (State::Planned | State::Skipped)) => {
                            reassign.execute(params![id, wave, seq, at])?;
                            let detail = format!("{} -> {wave_name}", wave_names[&current]);
                            if state == State::Skipped {
                                let t =
                                    Transition::new(id, State::Planned, "plan", at).detail(detail);
                                write_transition(&tx, &t, state, None)?;
                            } else {
                                // Not a transition: the mailbox stays planned, in another wave.
                                event.execute(params![
                                    at,
                                    id,
                                    state.code(),
                                    state.code(),
                                    "replan",
                                    detail
                                ])?;
                            }
                            report.moved += 1;
                        }
                        Some(state) => {
                            report.in_flight.push((
                                address.clone(),
                                state,
                                wave_names[&current].clone(),
                            ));
                        }
                    }
                }
            }
        }
        // Planned mailboxes the new plan leaves out will not move: skipped, with the reason.
        for (id, &(code, _)) in existing.iter().enumerate() {
            if code == State::Planned.code() {
                let (id, state) = (id as i64, State::Planned);
                let t = Transition::new(id, State::Skipped, "plan", at)
                    .detail("not in the current plan");
                write_transition(&tx, &t, state, None)?;
                report.dropped += 1;
            }
        }
        report.in_flight.sort();
        tx.commit()?;
        Ok(report)
    }
}

/// The (wave, batch, line) of the `k`-th plan row.
fn locate(pd: &files::PlanDir, k: usize) -> (usize, u32, u64) {
    let mut first = 0;
    for (w, wave) in pd.plan.waves.iter().enumerate() {
        if k < first + wave.addresses.len() {
            let (batch, line) = pd.rows[k];
            return (w, batch, line);
        }
        first += wave.addresses.len();
    }
    (0, 0, 0)
}
