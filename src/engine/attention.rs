//! The alert that a person must act ([`Alert::NeedsPerson`]). Beside the coordinator, every minute,
//! the mailboxes that need a person ([`crate::store::attention`]) and that no alert has named yet
//! are counted; once they reach `notify.failure_threshold`, one alert says how many and why, and
//! they are recorded as alerted, so neither this run nor a later one names them again. Transient
//! failures the run resumes never count. A mailbox that stops needing a person is forgotten, so a
//! new need of its own is alerted anew.

use std::collections::BTreeMap;

use jiff::SignedDuration;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::Alert;
use crate::store::attention::REASONS;
use crate::store::records::Record;
use crate::store::writer::WriterHandle;
use crate::store::{Store, StoreError};
use crate::time::Clock;

/// How often the store is looked at.
const TICK: SignedDuration = SignedDuration::from_secs(60);

pub struct AttentionWatch {
    pub store_path: std::path::PathBuf,
    /// What it records goes through the run's writer.
    pub writer: WriterHandle,
    /// Alert once this many mailboxes newly need a person (at least 1).
    pub threshold: u64,
    pub clock: Clock,
    pub alerts: UnboundedSender<Alert>,
}

impl AttentionWatch {
    /// Looks every minute until `stop`; once `done` is cancelled, looks a last time and ends.
    pub async fn run(
        self,
        stop: CancellationToken,
        done: CancellationToken,
    ) -> Result<(), StoreError> {
        let mut store = Store::open_read_only(&self.store_path)?;
        loop {
            self.look(&mut store).await?;
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = done.cancelled() => {
                    self.look(&mut store).await?;
                    break;
                }
                _ = self.clock.sleep(TICK) => {}
            }
        }
        Ok(())
    }

    async fn look(&self, store: &mut Store) -> Result<(), StoreError> {
        self.writer.record(Record::ForgetRecovered).await?;
        let new = store.needing_person_unalerted()?;
        if (new.len() as u64) < self.threshold.max(1) {
            return Ok(());
        }
        let mut by: BTreeMap<&str, u64> = BTreeMap::new();
        for (_, why) in &new {
            *by.entry(why.as_str()).or_default() += 1;
        }
        let reasons = REASONS
            .iter()
            .filter_map(|(key, words)| by.get(key).map(|n| (words.to_string(), *n)))
            .collect();
        let ids: Vec<i64> = new.iter().map(|(id, _)| *id).collect();
        // Recorded first: a crash between the two loses an alert rather than repeating one.
        self.writer
            .record(Record::Alerted {
                ids,
                at: self.clock.now(),
            })
            .await?;
        let _ = self.alerts.send(Alert::NeedsPerson {
            mailboxes: new.len() as u64,
            reasons,
        });
        Ok(())
    }
}
