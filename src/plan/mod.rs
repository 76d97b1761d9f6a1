//! Planning: the inventory and the calendar in, waves out, written under `schedules/<name>/` as a
//! plan file and Microsoft-format batch CSVs.

pub mod calendar;
pub mod files;
pub mod pack;

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::{Timestamp, Zoned};
use serde::{Deserialize, Serialize};

use crate::inventory::Inventory;
pub use calendar::{Calendar, CalendarError, DayKind, Slot};
use pack::{Capacity, Unit};

/// The most rows Microsoft's migration batch CSV should carry; larger waves get several files.
pub(crate) const BATCH_ROWS: usize = 2_000;

/// Format version of `plan.json`.
pub(crate) const PLAN_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Calendar(#[from] CalendarError),
    #[error("the inventory is empty: import one first with `mailwave inventory import`")]
    NoInventory,
    #[error("every mailbox in the inventory is excluded: nothing to plan")]
    NothingToPlan,
    #[error("{0} (from the start date on, within ten years)")]
    OutOfWindows(#[from] pack::OutOfWindows),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrganisationCount {
    pub name: String,
    pub mailboxes: u64,
}

/// One wave: one cut-over window on one calendar day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wave {
    /// Also the BatchName on the service: `mw-YYYY-MM-DD` (one wave per day, so ids survive re-planning).
    pub id: String,
    pub seq: u32,
    pub date: Date,
    pub(crate) kind: DayKind,
    pub pilot: bool,
    pub capacity: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) bytes_capacity: Option<u64>,
    pub window_start: Zoned,
    pub window_end: Zoned,
    pub window_start_utc: Timestamp,
    pub window_end_utc: Timestamp,
    pub prestage_start: Zoned,
    pub prestage_start_utc: Timestamp,
    pub mailboxes: u64,
    pub bytes: u64,
    pub(crate) source_databases: u64,
    /// Share of the wave on its busiest source database (1.0 when there is only one).
    pub(crate) busiest_database_share: f64,
    pub organisations: Vec<OrganisationCount>,
    pub batches: Vec<String>,
    /// The wave's mailboxes in submission order (written to the batch CSVs, not to plan.json).
    #[serde(skip)]
    pub(crate) addresses: Vec<String>,
}

/// A group that was larger than any window and had to be split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitGroup {
    pub mailboxes: u64,
    pub bytes: u64,
    /// One address from the group, to find it by.
    pub(crate) member: String,
    pub waves: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    pub name: String,
    pub timezone: String,
    pub start: Date,
    pub cutover_window: String,
    pub prestage_days: u32,
    pub mailboxes: u64,
    pub bytes: u64,
    pub excluded: u64,
    /// The fewest windows that could hold the estate with every window full.
    pub lower_bound_waves: u64,
    pub(crate) lower_bound_last_date: Option<Date>,
    pub split_groups: Vec<SplitGroup>,
    pub waves: Vec<Wave>,
}

impl Plan {
    pub fn last_date(&self) -> Option<Date> {
        self.waves.last().map(|w| w.date)
    }
}

/// Builds a plan from an inventory with affinity groups.
pub fn build(
    inv: &Inventory,
    calendar: &Calendar,
    start: Date,
    name: &str,
) -> Result<Plan, PlanError> {
    if inv.mailboxes.is_empty() {
        return Err(PlanError::NoInventory);
    }
    // Organisations sort by name so that the same estate gives the same plan whatever the file order.
    let mut org_rank: Vec<u32> = (0..inv.organisations.len() as u32).collect();
    org_rank.sort_by(|&a, &b| inv.organisations[a as usize].cmp(&inv.organisations[b as usize]));
    let mut rank_of = vec![0u32; inv.organisations.len()];
    for (rank, &org) in org_rank.iter().enumerate() {
        rank_of[org as usize] = rank as u32;
    }

    let groups = inv
        .group_of
        .iter()
        .map(|&g| g as usize + 1)
        .max()
        .unwrap_or(0);
    let mut units: Vec<Option<Unit>> = vec![None; groups];
    let mut excluded = 0u64;
    for (i, m) in inv.mailboxes.iter().enumerate() {
        if m.exclude {
            excluded += 1;
            continue;
        }
        let g = inv.group_of[i];
        let unit = units[g as usize].get_or_insert_with(|| Unit {
            group: g,
            members: Vec::new(),
            bytes: 0,
            pilot: false,
            priority: i64::MAX,
            organisation: m
                .organisation
                .map(|o| rank_of[o as usize])
                .unwrap_or(u32::MAX),
        });
        unit.members.push((i as u32, m.size_bytes));
        unit.bytes += m.size_bytes;
        unit.pilot |= m.pilot;
        unit.priority = unit.priority.min(m.priority.unwrap_or(i64::MAX));
    }
    let mut units: Vec<Unit> = units.into_iter().flatten().collect();
    if units.is_empty() {
        return Err(PlanError::NothingToPlan);
    }
    pack::order(&mut units);
    let total: u64 = units.iter().map(|u| u.count()).sum();
    let total_bytes: u64 = units.iter().map(|u| u.bytes).sum();

    let mut slots: Vec<Slot> = Vec::new();
    let mut calendar_error = None;
    let mut capacities = calendar.slots_from(start).map_while(|s| match s {
        Ok(slot) => {
            let cap = Capacity {
                count: slot.capacity,
                bytes: slot.bytes_capacity,
            };
            slots.push(slot);
            Some(cap)
        }
        Err(e) => {
            calendar_error = Some(e);
            None
        }
    });
    let kinds = [
        Capacity {
            count: calendar.weekday_capacity,
            bytes: calendar.weekday_bytes,
        },
        Capacity {
            count: calendar.weekend_capacity,
            bytes: calendar.weekend_bytes,
        },
    ];
    let packed = pack::pack(&units, &mut capacities, &kinds);
    drop(capacities);
    if let Some(e) = calendar_error {
        return Err(e.into());
    }
    let packing = packed?;

    let lower_bound = pack::lower_bound(
        total,
        total_bytes,
        calendar
            .slots_from(start)
            .map_while(Result::ok)
            .map(|s| Capacity {
                count: s.capacity,
                bytes: s.bytes_capacity,
            }),
    );
    let lower_bound_last_date = calendar
        .slots_from(start)
        .map_while(Result::ok)
        .nth(lower_bound.saturating_sub(1))
        .map(|s| s.date);

    let mut waves = Vec::with_capacity(packing.waves.len());
    for (seq, filled) in packing.waves.iter().enumerate() {
        let slot = &slots[filled.slot];
        waves.push(make_wave(inv, slot, seq as u32 + 1, filled));
    }
    let wave_of_slot: BTreeMap<usize, &str> = packing
        .waves
        .iter()
        .zip(&waves)
        .map(|(f, w)| (f.slot, w.id.as_str()))
        .collect();
    let split_groups = packing
        .splits
        .iter()
        .map(|s| {
            let first = inv.group_of.iter().position(|&g| g == s.group).unwrap_or(0);
            SplitGroup {
                mailboxes: s.mailboxes,
                bytes: s.bytes,
                member: inv.mailboxes[first].address.clone(),
                waves: s
                    .slots
                    .iter()
                    .map(|slot| wave_of_slot[slot].to_string())
                    .collect(),
            }
        })
        .collect();

    Ok(Plan {
        format: PLAN_FORMAT,
        name: name.to_string(),
        timezone: calendar.timezone_name.clone(),
        start,
        cutover_window: calendar.window.to_string(),
        prestage_days: calendar.prestage_days,
        mailboxes: total,
        bytes: total_bytes,
        excluded,
        lower_bound_waves: lower_bound as u64,
        lower_bound_last_date,
        split_groups,
        waves,
    })
}

pub fn wave_id(date: Date) -> String {
    format!("mw-{date}")
}

/// Orders a wave's members for submission: by priority, and within a priority round-robin over source
/// databases, so every 2,000-row batch and every minute of submission spreads over the source servers.
fn submission_order(inv: &Inventory, members: &[u32]) -> Vec<u32> {
    let mut by_priority: BTreeMap<i64, BTreeMap<u32, Vec<u32>>> = BTreeMap::new();
    for &m in members {
        let mb = &inv.mailboxes[m as usize];
        by_priority
            .entry(mb.priority.unwrap_or(i64::MAX))
            .or_default()
            .entry(mb.source_database.unwrap_or(u32::MAX))
            .or_default()
            .push(m);
    }
    let mut out = Vec::with_capacity(members.len());
    for (_, by_db) in by_priority {
        let queues: Vec<Vec<u32>> = by_db.into_values().collect();
        let longest = queues.iter().map(Vec::len).max().unwrap_or(0);
        for k in 0..longest {
            out.extend(queues.iter().filter_map(|q| q.get(k)));
        }
    }
    out
}

fn make_wave(inv: &Inventory, slot: &Slot, seq: u32, filled: &pack::Filled) -> Wave {
    let order = submission_order(inv, &filled.members);
    let mut orgs: BTreeMap<&str, u64> = BTreeMap::new();
    let mut dbs: BTreeMap<Option<u32>, u64> = BTreeMap::new();
    for &m in &order {
        let mb = &inv.mailboxes[m as usize];
        *orgs
            .entry(inv.organisation_name(mb).unwrap_or("(none)"))
            .or_default() += 1;
        *dbs.entry(mb.source_database).or_default() += 1;
    }
    let busiest = dbs.values().copied().max().unwrap_or(0);
    let id = wave_id(slot.date);
    let batches = (0..order.len().div_ceil(BATCH_ROWS))
        .map(|b| format!("{id}.b{:03}.csv", b + 1))
        .collect();
    Wave {
        seq,
        date: slot.date,
        kind: slot.kind,
        pilot: filled.pilot,
        capacity: slot.capacity,
        bytes_capacity: slot.bytes_capacity,
        window_start_utc: slot.start.timestamp(),
        window_end_utc: slot.end.timestamp(),
        prestage_start_utc: slot.prestage_start.timestamp(),
        window_start: slot.start.clone(),
        window_end: slot.end.clone(),
        prestage_start: slot.prestage_start.clone(),
        mailboxes: order.len() as u64,
        bytes: filled.bytes,
        source_databases: dbs.len() as u64,
        busiest_database_share: if order.is_empty() {
            0.0
        } else {
            busiest as f64 / order.len() as f64
        },
        organisations: orgs
            .into_iter()
            .map(|(name, mailboxes)| OrganisationCount {
                name: name.to_string(),
                mailboxes,
            })
            .collect(),
        batches,
        addresses: order
            .iter()
            .map(|&m| inv.mailboxes[m as usize].address.clone())
            .collect(),
        id,
    }
}
