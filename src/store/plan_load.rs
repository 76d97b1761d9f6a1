//! Loading a plan directory into the store. Idempotent: the same files change nothing. A revised plan
//! re-assigns only mailboxes that have not started; the ones already in flight stay in their wave and
//! are listed.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::params;

use super::writer::Transition;
use super::{Result, State, Store, StoreError, millis, write_transition};
use crate::plan::files;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// The same plan was already current: nothing was written.
    pub unchanged: bool,
    pub plan_id: i64,
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
    pub fn current_plan(&self) -> Result<Option<(i64, String, String)>> {
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

    pub fn load_plan(&mut self, dir: &Path, now: jiff::Timestamp) -> Result<LoadReport> {
        let pd = files::read(dir)?;
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
            params![pd.plan.name, pd.digest, dir.display().to_string(), at, pd.plan.timezone],
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

        let ids: HashMap<String, i64> = {
            let mut q = tx.prepare("SELECT id, address FROM mailboxes")?;
            q.query_map([], |r| {
                Ok((r.get::<_, String>(1)?.to_ascii_lowercase(), r.get(0)?))
            })?
            .collect::<rusqlite::Result<_>>()?
        };
        let mut existing: HashMap<i64, (State, i64)> = {
            let mut q = tx.prepare("SELECT mailbox_id, state, wave_id FROM mailbox_state")?;
            q.query_map([], |r| {
                let state = State::from_code(r.get(1)?).unwrap_or(State::Failed);
                Ok((r.get(0)?, (state, r.get(2)?)))
            })?
            .collect::<rusqlite::Result<_>>()?
        };

        let mut report = LoadReport {
            plan_id,
            waves: wave_ids.len() as u64,
            ..Default::default()
        };
        let mut seen: HashMap<i64, (String, u64)> = HashMap::with_capacity(pd.rows.len());
        let mut seq_in_wave = vec![0i64; wave_ids.len()];
        {
            let mut insert = tx.prepare(
                "INSERT INTO mailbox_state (mailbox_id, wave_id, seq, state, updated_at) VALUES (?1, ?2, ?3, 0, ?4)",
            )?;
            let mut event = tx.prepare(
                "INSERT INTO events (at, mailbox_id, from_state, to_state, cause, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut reassign =
                tx.prepare("UPDATE mailbox_state SET wave_id = ?2, seq = ?3, updated_at = ?4 WHERE mailbox_id = ?1")?;
            for (w, address, file, line) in &pd.rows {
                let Some(&id) = ids.get(&address.to_ascii_lowercase()) else {
                    return Err(StoreError::PlanRow {
                        file: file.clone(),
                        line: *line,
                        message: format!("{address} is not in the inventory"),
                    });
                };
                if let Some((other_file, other_line)) = seen.insert(id, (file.clone(), *line)) {
                    return Err(StoreError::PlanRow {
                        file: file.clone(),
                        line: *line,
                        message: format!(
                            "{address} is already planned at {other_file}, line {other_line}"
                        ),
                    });
                }
                let wave = wave_ids[*w];
                seq_in_wave[*w] += 1;
                let seq = seq_in_wave[*w];
                let wave_name = &pd.plan.waves[*w].id;
                match existing.remove(&id) {
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
                    Some((state, current)) if current == wave => {
                        reassign.execute(params![id, wave, seq, at])?;
                        if state == State::Skipped {
                            let t = Transition::new(id, State::Planned, "plan", at)
                                .detail(wave_name.clone());
                            write_transition(&tx, &t, state, None)?;
                            report.added += 1;
                        }
                    }
                    Some((state @ (State::Planned | State::Skipped), current)) => {
                        reassign.execute(params![id, wave, seq, at])?;
                        let detail = format!("{} -> {wave_name}", wave_names[&current]);
                        if state == State::Skipped {
                            let t = Transition::new(id, State::Planned, "plan", at).detail(detail);
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
                    Some((state, current)) => {
                        report.in_flight.push((
                            address.clone(),
                            state,
                            wave_names[&current].clone(),
                        ));
                    }
                }
            }
        }
        // Planned mailboxes the new plan leaves out will not move: skipped, with the reason.
        for (id, (state, _)) in existing {
            if state == State::Planned {
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
