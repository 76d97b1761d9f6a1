//! What `inventory import` tells the operator about the estate it just read.

use std::fmt;

use crate::format::human_bytes;

use super::{Inventory, groups};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportSummary {
    pub mailboxes: u64,
    pub excluded: u64,
    pub pilot: u64,
    pub deleted_skipped: u64,
    pub rejected: u64,
    pub(crate) total_bytes: u64,
    /// p50, p90, p99 and max mailbox size in bytes.
    pub(crate) size_percentiles: [u64; 4],
    pub organisations: u64,
    pub delegations: u64,
    pub groups: u64,
    /// Groups with more than one mailbox.
    pub(crate) shared_groups: u64,
    pub largest_group: u64,
    /// An address in the largest group, so the operator can look it up.
    pub(crate) largest_group_member: Option<String>,
    pub service_accounts: Vec<String>,
}

impl ImportSummary {
    pub fn of(inv: &Inventory, rejected: u64) -> ImportSummary {
        let mut sizes: Vec<u64> = inv.mailboxes.iter().map(|m| m.size_bytes).collect();
        sizes.sort_unstable();
        let pct = |p: f64| -> u64 {
            if sizes.is_empty() {
                return 0;
            }
            let rank = ((p / 100.0) * sizes.len() as f64).ceil() as usize;
            sizes[rank.clamp(1, sizes.len()) - 1]
        };
        let group_sizes = groups::sizes(&inv.group_of);
        let (largest_id, largest) = group_sizes
            .iter()
            .enumerate()
            .max_by_key(|&(i, &s)| (s, std::cmp::Reverse(i)))
            .map(|(i, &s)| (i as u32, s as u64))
            .unwrap_or((0, 0));
        let largest_group_member = (largest > 1)
            .then(|| inv.group_of.iter().position(|&g| g == largest_id))
            .flatten()
            .map(|i| inv.mailboxes[i].address.clone());
        ImportSummary {
            mailboxes: inv.mailboxes.len() as u64,
            excluded: inv.mailboxes.iter().filter(|m| m.exclude).count() as u64,
            pilot: inv.mailboxes.iter().filter(|m| m.pilot).count() as u64,
            deleted_skipped: inv.deleted_skipped,
            rejected,
            total_bytes: sizes.iter().sum(),
            size_percentiles: [
                pct(50.0),
                pct(90.0),
                pct(99.0),
                sizes.last().copied().unwrap_or(0),
            ],
            organisations: inv.organisations.len() as u64,
            delegations: inv.delegations.len() as u64,
            groups: group_sizes.len() as u64,
            shared_groups: group_sizes.iter().filter(|&&s| s > 1).count() as u64,
            largest_group: largest,
            largest_group_member,
            service_accounts: inv
                .service_accounts
                .iter()
                .map(|&i| inv.mailboxes[i as usize].address.clone())
                .collect(),
        }
    }
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [p50, p90, p99, max] = self.size_percentiles;
        writeln!(
            f,
            "mailboxes        {} ({} excluded, {} pilot)",
            self.mailboxes, self.excluded, self.pilot
        )?;
        if self.deleted_skipped > 0 {
            writeln!(f, "deleted, skipped {}", self.deleted_skipped)?;
        }
        if self.rejected > 0 {
            writeln!(
                f,
                "rejected rows    {} (see the rejected-rows report)",
                self.rejected
            )?;
        }
        writeln!(f, "total size       {}", human_bytes(self.total_bytes))?;
        writeln!(
            f,
            "mailbox size     p50 {}  p90 {}  p99 {}  max {}",
            human_bytes(p50),
            human_bytes(p90),
            human_bytes(p99),
            human_bytes(max)
        )?;
        writeln!(f, "organisations    {}", self.organisations)?;
        writeln!(f, "delegations      {}", self.delegations)?;
        writeln!(
            f,
            "affinity groups  {} ({} with more than one mailbox)",
            self.groups, self.shared_groups
        )?;
        match &self.largest_group_member {
            Some(member) => writeln!(
                f,
                "largest group    {} mailboxes (includes {member})",
                self.largest_group
            )?,
            None => writeln!(f, "largest group    1 mailbox")?,
        }
        if !self.service_accounts.is_empty() {
            let shown: Vec<&str> = self
                .service_accounts
                .iter()
                .take(5)
                .map(String::as_str)
                .collect();
            let more = self.service_accounts.len().saturating_sub(shown.len());
            write!(
                f,
                "service accounts {} left out of grouping: {}",
                self.service_accounts.len(),
                shown.join(", ")
            )?;
            if more > 0 {
                write!(f, " and {more} more")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
