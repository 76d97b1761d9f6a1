//! Inventory in the store: replacing it with a new import, and reading it back for the planner.

use std::collections::HashMap;

use rusqlite::params;

use super::{Result, Store, millis};
use crate::inventory::{Interner, Inventory, Mailbox};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplaceReport {
    pub(crate) inserted: u64,
    pub updated: u64,
    pub removed: u64,
    /// Mailboxes no longer in the inventory that have already been planned or moved: kept (marked
    /// excluded) so their history stays, and left out of the next plan.
    pub(crate) retained: Vec<String>,
}

impl Store {
    /// Replaces the inventory with `inv` in one transaction: new mailboxes are added, known ones
    /// updated in place (keeping their id and state), and ones missing from `inv` removed unless a
    /// plan already holds them.
    pub fn replace_inventory(
        &mut self,
        inv: &Inventory,
        source: &str,
        rejected: u64,
        summary_json: &str,
        now: jiff::Timestamp,
    ) -> Result<ReplaceReport> {
        let tx = self.conn.transaction()?;
        let before: i64 = tx.query_row("SELECT COUNT(*) FROM mailboxes", [], |r| r.get(0))?;
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS import_seen (id INTEGER PRIMARY KEY);
             DELETE FROM import_seen;",
        )?;
        let service: std::collections::HashSet<u32> =
            inv.service_accounts.iter().copied().collect();
        let mut ids = Vec::with_capacity(inv.mailboxes.len());
        let fresh = before == 0;
        if fresh {
            // First import into an empty store: plain inserts with ids in file order, much faster
            // than the upsert below for millions of rows.
            let mut insert = tx.prepare(
                "INSERT INTO mailboxes (id, address, display_name, size_bytes, item_count, organisation,
                    source_database, priority, pilot, exclude, has_archive, group_id, service_account)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            for (i, m) in inv.mailboxes.iter().enumerate() {
                let id = i as i64 + 1;
                insert.execute(params![
                    id,
                    m.address,
                    m.display_name,
                    m.size_bytes as i64,
                    m.item_count as i64,
                    inv.organisation_name(m),
                    inv.database_name(m),
                    m.priority,
                    m.pilot,
                    m.exclude,
                    m.has_archive,
                    inv.group_of.get(i).copied().unwrap_or(i as u32),
                    service.contains(&(i as u32)),
                ])?;
                ids.push(id);
            }
        } else {
            let mut upsert = tx.prepare(
                "INSERT INTO mailboxes (address, display_name, size_bytes, item_count, organisation,
                    source_database, priority, pilot, exclude, has_archive, group_id, service_account)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (address) DO UPDATE SET
                    address = excluded.address, display_name = excluded.display_name,
                    size_bytes = excluded.size_bytes, item_count = excluded.item_count,
                    organisation = excluded.organisation, source_database = excluded.source_database,
                    priority = excluded.priority, pilot = excluded.pilot, exclude = excluded.exclude,
                    has_archive = excluded.has_archive, group_id = excluded.group_id,
                    service_account = excluded.service_account
                 RETURNING id",
            )?;
            let mut seen = tx.prepare("INSERT INTO import_seen (id) VALUES (?1)")?;
            for (i, m) in inv.mailboxes.iter().enumerate() {
                let id: i64 = upsert.query_row(
                    params![
                        m.address,
                        m.display_name,
                        m.size_bytes as i64,
                        m.item_count as i64,
                        inv.organisation_name(m),
                        inv.database_name(m),
                        m.priority,
                        m.pilot,
                        m.exclude,
                        m.has_archive,
                        inv.group_of.get(i).copied().unwrap_or(i as u32),
                        service.contains(&(i as u32)),
                    ],
                    |r| r.get(0),
                )?;
                seen.execute([id])?;
                ids.push(id);
            }
        }
        let mut retained = Vec::new();
        let mut removed = 0;
        if !fresh {
            let mut q = tx.prepare(
                "SELECT m.address FROM mailboxes m JOIN mailbox_state s ON s.mailbox_id = m.id
                 WHERE m.id NOT IN (SELECT id FROM import_seen) ORDER BY m.address",
            )?;
            retained = q
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            tx.execute(
                "UPDATE mailboxes SET exclude = 1 WHERE id NOT IN (SELECT id FROM import_seen)
                   AND id IN (SELECT mailbox_id FROM mailbox_state)",
                [],
            )?;
            tx.execute("DELETE FROM delegations", [])?;
            removed = tx.execute(
                "DELETE FROM mailboxes WHERE id NOT IN (SELECT id FROM import_seen)
                   AND id NOT IN (SELECT mailbox_id FROM mailbox_state)
                   AND id NOT IN (SELECT mailbox_id FROM intents)",
                [],
            )? as u64;
        }
        {
            let mut edges: Vec<(i64, i64)> = inv
                .delegations
                .iter()
                .map(|&(a, b)| {
                    let (x, y) = (ids[a as usize], ids[b as usize]);
                    (x.min(y), x.max(y))
                })
                .collect();
            // In key order the inserts are appends to the b-tree.
            edges.sort_unstable();
            edges.dedup();
            let mut edge = tx.prepare("INSERT INTO delegations (a, b) VALUES (?1, ?2)")?;
            for (a, b) in edges {
                edge.execute(params![a, b])?;
            }
        }
        tx.execute(
            "INSERT INTO imports (at, source, mailboxes, delegations, rejected, summary)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                millis(now),
                source,
                inv.mailboxes.len() as i64,
                inv.delegations.len() as i64,
                rejected as i64,
                summary_json
            ],
        )?;
        let after: i64 = tx.query_row("SELECT COUNT(*) FROM mailboxes", [], |r| r.get(0))?;
        tx.execute("DELETE FROM import_seen", [])?;
        tx.commit()?;
        let inserted = (after - before + removed as i64).max(0) as u64;
        Ok(ReplaceReport {
            inserted,
            updated: inv.mailboxes.len() as u64 - inserted,
            removed,
            retained,
        })
    }

    /// Reads the inventory back for planning: every mailbox with its affinity group, and the
    /// store id of each (same order).
    pub fn load_inventory(&self) -> Result<(Inventory, Vec<i64>)> {
        let mut orgs = Interner::default();
        let mut dbs = Interner::default();
        let mut inv = Inventory::default();
        let mut ids = Vec::new();
        let mut group_ids: HashMap<i64, u32> = HashMap::new();
        let mut q = self.conn.prepare(
            "SELECT id, address, display_name, size_bytes, item_count, organisation, source_database,
                    priority, pilot, exclude, has_archive, group_id, service_account
             FROM mailboxes ORDER BY id",
        )?;
        let mut rows = q.query([])?;
        while let Some(r) = rows.next()? {
            let org: Option<String> = r.get(5)?;
            let db: Option<String> = r.get(6)?;
            let stored_group: i64 = r.get(11)?;
            // Dense group ids in order of first appearance, as the planner expects.
            let next = group_ids.len() as u32;
            let group = *group_ids.entry(stored_group).or_insert(next);
            if r.get::<_, bool>(12)? {
                inv.service_accounts.push(ids.len() as u32);
            }
            inv.group_of.push(group);
            ids.push(r.get(0)?);
            inv.mailboxes.push(Mailbox {
                address: r.get(1)?,
                display_name: r.get(2)?,
                size_bytes: r.get::<_, i64>(3)? as u64,
                item_count: r.get::<_, i64>(4)? as u64,
                organisation: org.map(|o| orgs.intern(&o)),
                source_database: db.map(|d| dbs.intern(&d)),
                priority: r.get(7)?,
                pilot: r.get(8)?,
                exclude: r.get(9)?,
                has_archive: r.get(10)?,
            });
        }
        inv.organisations = orgs.names;
        inv.databases = dbs.names;
        Ok((inv, ids))
    }

    /// The stored delegation edges as indices into `ids` (the order `load_inventory` gives).
    /// The other mailboxes of a mailbox's affinity (delegation) group, by address.
    pub fn group_members(&self, mailbox_id: i64) -> Result<Vec<String>> {
        let mut q = self.conn.prepare(
            "SELECT address FROM mailboxes
             WHERE group_id = (SELECT group_id FROM mailboxes WHERE id = ?1) AND id != ?1
             ORDER BY address",
        )?;
        let rows = q.query_map([mailbox_id], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The delegation groups among a wave's mailboxes: (mailbox id, group id) of each mailbox that
    /// shares its affinity group with another mailbox of the wave.
    pub fn groups_in_wave(&self, wave_id: i64) -> Result<Vec<(i64, i64)>> {
        let mut q = self.conn.prepare(
            "WITH w AS (SELECT m.id, m.group_id FROM mailbox_state s JOIN mailboxes m ON m.id = s.mailbox_id
                        WHERE s.wave_id = ?1)
             SELECT id, group_id FROM w
             WHERE group_id IN (SELECT group_id FROM w GROUP BY group_id HAVING COUNT(*) > 1)",
        )?;
        let rows = q.query_map([wave_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn load_delegations(&self, ids: &[i64]) -> Result<Vec<(u32, u32)>> {
        let index: HashMap<i64, u32> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i as u32))
            .collect();
        let mut q = self.conn.prepare("SELECT a, b FROM delegations")?;
        let mut rows = q.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            if let (Some(&a), Some(&b)) = (index.get(&r.get(0)?), index.get(&r.get(1)?)) {
                out.push((a.min(b), a.max(b)));
            }
        }
        Ok(out)
    }

    /// The last import: when, from where, and how many rows were rejected.
    pub fn last_import(&self) -> Result<Option<LastImport>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .query_row(
                "SELECT at, source, rejected FROM imports ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok(LastImport {
                        at: super::from_millis(r.get(0)?).to_string(),
                        source: r.get(1)?,
                        rejected: r.get::<_, i64>(2)? as u64,
                    })
                },
            )
            .optional()?)
    }
}

/// When the stored inventory was imported, and from what.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LastImport {
    pub at: String,
    pub source: String,
    pub rejected: u64,
}
