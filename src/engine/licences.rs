//! Licences before cut-over ([`crate::config::Licences`]): beside the coordinator, each wave's
//! users are checked for an Exchange Online plan `before` its window opens (Graph `$batch`, 20
//! users a call), and with `assign = true` the configured SKU is assigned to those who lack one,
//! within the free seats (`subscribedSkus`). A wave that needs more seats than are free gets none
//! (never half a wave), assignment stops for the run, and the run says so loudly; without
//! `assign`, the users are recorded as missing a licence, for the reports' attention list.

use std::sync::Arc;

use jiff::SignedDuration;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::Licences;
use crate::directory::{Licensing, Sku, User, has_exchange_licence};
use crate::store::records::Record;
use crate::store::{Store, StoreError};
use crate::time::Clock;

/// How often the checker looks for waves coming due.
const TICK: SignedDuration = SignedDuration::from_mins(10);
/// A user found without a licence (or without a cloud object) is looked at again after this.
const RECHECK: SignedDuration = SignedDuration::from_hours(6);

/// What the licence checks came to in one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LicenceSummary {
    pub licensed: u64,
    pub assigned: u64,
    pub missing: u64,
    pub no_user: u64,
    pub failed: u64,
    /// Why assignment stopped, when it did (seats ran out, the SKU is not subscribed).
    pub stopped: Option<String>,
    /// Each mailbox's latest finding in this run (a user looked at again counts once).
    #[serde(skip)]
    found: std::collections::HashMap<i64, &'static str>,
}

impl LicenceSummary {
    fn counted(mut self) -> LicenceSummary {
        for status in self.found.values() {
            match *status {
                "licensed" => self.licensed += 1,
                "assigned" => self.assigned += 1,
                "missing" => self.missing += 1,
                "no_user" => self.no_user += 1,
                _ => self.failed += 1,
            }
        }
        self
    }
}

pub struct LicenceChecker {
    pub store_path: std::path::PathBuf,
    /// What it finds is recorded through the run's writer.
    pub writer: crate::store::writer::WriterHandle,
    pub config: Licences,
    pub licensing: Arc<dyn Licensing>,
    pub clock: Clock,
    /// The webhook's alerts, when one is set.
    pub alerts: Option<tokio::sync::mpsc::UnboundedSender<super::Alert>>,
}

/// The configured SKU among the subscribed ones (by GUID or part number).
fn find<'a>(skus: &'a [Sku], wanted: &str) -> Option<&'a Sku> {
    skus.iter().find(|s| {
        s.sku_id.eq_ignore_ascii_case(wanted) || s.part_number.eq_ignore_ascii_case(wanted)
    })
}

/// What to do with a wave's users who lack a licence.
enum Then {
    Nothing,
    Assign(Vec<(i64, String)>, String),
}

impl LicenceChecker {
    pub async fn run(
        self,
        stop: CancellationToken,
        engine_done: CancellationToken,
    ) -> Result<LicenceSummary, StoreError> {
        let store = Store::open_read_only(&self.store_path)?;
        let mut summary = LicenceSummary::default();
        loop {
            let now = self.clock.now();
            let waves = store.waves_opening(now, now + self.config.before)?;
            for wave in waves {
                if stop.is_cancelled() {
                    break;
                }
                let users = store.licence_unchecked(wave.id, now, RECHECK)?;
                if users.is_empty() {
                    continue;
                }
                let addresses: Vec<String> = users.iter().map(|(_, a)| a.clone()).collect();
                // A stop is never held up by a Graph call that hangs.
                let (looked_up, skus) = tokio::select! {
                    _ = stop.cancelled() => break,
                    r = async {
                        (self.licensing.users(&addresses).await, self.licensing.skus().await)
                    } => r,
                };
                let (answers, skus) = match (looked_up, skus) {
                    (Ok(a), Ok(s)) => (a, s),
                    (Err(e), _) | (_, Err(e)) => {
                        tracing::warn!(error = %e, "licence check: Graph did not answer; trying again later");
                        continue;
                    }
                };
                let mut found = Vec::new();
                let then = self.classify(&mut found, &users, &answers, &skus, &mut summary);
                self.writer.records(found).await?;
                let Then::Assign(lacking, sku_id) = then else {
                    continue;
                };
                let upns: Vec<String> = lacking.iter().map(|(_, a)| a.clone()).collect();
                // Assigning twice is harmless: one cut off by a stop is found licensed next run.
                let assigned = tokio::select! {
                    _ = stop.cancelled() => break,
                    r = self.licensing.assign(&upns, &sku_id) => r,
                };
                match assigned {
                    Ok(answers) => {
                        let mut done = Vec::new();
                        self.assigned(&mut done, &lacking, &answers, &sku_id, &mut summary);
                        self.writer.records(done).await?;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "licence assignment: Graph did not answer; trying again later")
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = engine_done.cancelled() => break,
                _ = self.clock.sleep(TICK) => {}
            }
        }
        Ok(summary.counted())
    }

    fn alert(&self, reason: &str) {
        if let Some(tx) = &self.alerts {
            let _ = tx.send(super::Alert::LicencesStopped {
                reason: reason.to_string(),
            });
        }
    }

    /// Finds who holds a licence and who has no user (`found`, to record); decides about those
    /// who lack one.
    fn classify(
        &self,
        found: &mut Vec<Record>,
        users: &[(i64, String)],
        answers: &[crate::directory::BatchAnswer],
        skus: &[Sku],
        summary: &mut LicenceSummary,
    ) -> Then {
        let now = self.clock.now();
        let sku = self.config.sku.as_deref();
        let mut record =
            |mailbox_id: i64, status: &'static str, sku: Option<&str>, reason: Option<&str>| {
                found.push(Record::Licence {
                    mailbox_id,
                    status,
                    sku: sku.map(str::to_string),
                    reason: reason.map(str::to_string),
                    at: now,
                })
            };
        let mut lacking: Vec<(i64, String)> = Vec::new();
        for ((id, address), answer) in users.iter().zip(answers) {
            match answer.result() {
                Ok(v) => {
                    if has_exchange_licence(&User::from_json(v), skus) {
                        summary.found.insert(*id, "licensed");
                        record(*id, "licensed", None, None);
                    } else {
                        lacking.push((*id, address.clone()));
                    }
                }
                Err(crate::directory::ServiceError::NotFound { .. }) => {
                    summary.found.insert(*id, "no_user");
                    record(
                        *id,
                        "no_user",
                        None,
                        Some("no cloud user: is directory sync scoped to it?"),
                    );
                }
                // Throttled or transient: the next look asks again.
                Err(_) => {}
            }
        }
        if lacking.is_empty() {
            return Then::Nothing;
        }
        let mut missing = |reason: &str| -> Then {
            for (id, _) in &lacking {
                summary.found.insert(*id, "missing");
                record(*id, "missing", sku, Some(reason));
            }
            Then::Nothing
        };
        if !self.config.assign {
            return missing("no Exchange Online licence (licences.assign is off)");
        }
        if let Some(why) = summary.stopped.clone() {
            return missing(&format!("assignment stopped: {why}"));
        }
        let wanted = sku.unwrap_or_default();
        let Some(target) = find(skus, wanted) else {
            let why = format!("the SKU {wanted} is not subscribed in this tenant");
            tracing::error!(reason = %why, "licence assignment stopped");
            let result = missing(&why);
            self.alert(&why);
            summary.stopped = Some(why);
            return result;
        };
        let free = target.enabled.saturating_sub(target.consumed);
        if (lacking.len() as u64) > free {
            let why = format!(
                "{} users of a wave need {} and only {free} seats are free: buy or free {} more",
                lacking.len(),
                target.part_number,
                lacking.len() as u64 - free
            );
            tracing::error!(reason = %why, "licence assignment stopped: not a seat was given to this wave");
            let result = missing(&why);
            self.alert(&why);
            summary.stopped = Some(why);
            return result;
        }
        Then::Assign(lacking, target.sku_id.clone())
    }

    /// What came of an assignment, for each user (`done`, to record).
    fn assigned(
        &self,
        done: &mut Vec<Record>,
        lacking: &[(i64, String)],
        answers: &[crate::directory::BatchAnswer],
        sku_id: &str,
        summary: &mut LicenceSummary,
    ) {
        let now = self.clock.now();
        for ((id, _), answer) in lacking.iter().zip(answers) {
            let (status, reason) = match answer.result() {
                Ok(_) => ("assigned", None),
                Err(e) => ("failed", Some(e.to_string())),
            };
            summary.found.insert(*id, status);
            done.push(Record::Licence {
                mailbox_id: *id,
                status,
                sku: Some(sku_id.to_string()),
                reason,
                at: now,
            });
        }
    }
}
