//! A synthetic estate for the demo, the benchmarks and large tests: organisations of realistic,
//! heavy-tailed size, mailbox sizes that follow a log-normal curve, teams that delegate to each other,
//! and a few service accounts with grants across whole organisations. Seeded and portable: the same
//! seed gives the same estate on every machine.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};

use super::{Inventory, Mailbox};

#[derive(Debug, Clone)]
pub struct EstateSpec {
    pub mailboxes: usize,
    pub seed: u64,
    /// Mailboxes marked `Pilot` (taken from the first organisation).
    pub pilot: usize,
    /// Roughly one service account per this many mailboxes.
    pub(crate) mailboxes_per_service_account: usize,
}

impl EstateSpec {
    pub fn new(mailboxes: usize, seed: u64) -> EstateSpec {
        EstateSpec {
            mailboxes,
            seed,
            pilot: (mailboxes / 100).min(200),
            mailboxes_per_service_account: 40_000,
        }
    }
}

/// Generates an estate; `group_of` is left empty (grouping is the importer's job).
pub fn generate(spec: &EstateSpec) -> Inventory {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let n = spec.mailboxes;
    // Organisation sizes: most are small (practices), a few are large trusts.
    let org_size = LogNormal::new(4.5f64, 1.3).expect("valid log-normal");
    // Mailbox sizes: median ~600 MB, long tail, capped at the 100 GB archive-less quota.
    let mailbox_size = LogNormal::new((600e6f64).ln(), 1.1).expect("valid log-normal");

    let mut inv = Inventory::default();
    let mut orgs: Vec<(usize, usize)> = Vec::new(); // (first mailbox, count)
    let mut databases_per_org = Vec::new();
    while inv.mailboxes.len() < n {
        let org = orgs.len();
        let size = (org_size.sample(&mut rng) as usize)
            .clamp(3, 30_000)
            .min(n - inv.mailboxes.len());
        let name = format!("ORG{org:05}");
        inv.organisations.push(format!("Organisation {org:05}"));
        // Large organisations spread over more databases; databases are shared estate-wide.
        let dbs = (size / 4_000 + 1).min(12);
        let first_db = rng.random_range(0..400u32);
        databases_per_org.push((first_db, dbs as u32));
        let first = inv.mailboxes.len();
        for k in 0..size {
            let bytes = (mailbox_size.sample(&mut rng) as u64).min(100_000_000_000);
            let db = (first_db + (k as u32 % dbs as u32)) % 400;
            inv.mailboxes.push(Mailbox {
                address: format!(
                    "user{:07}@{}.example.org",
                    first + k,
                    name.to_ascii_lowercase()
                ),
                display_name: None,
                size_bytes: bytes,
                item_count: bytes / rng.random_range(40_000..120_000u64),
                organisation: Some(org as u32),
                source_database: Some(db),
                priority: Some(if org.is_multiple_of(7) { 1 } else { 2 }),
                pilot: false,
                exclude: rng.random_bool(0.002),
                has_archive: rng.random_bool(0.1),
            });
        }
        orgs.push((first, size));
    }
    inv.databases = (0..400).map(|d| format!("DB{d:04}")).collect();
    for m in inv.mailboxes.iter_mut().take(spec.pilot) {
        m.pilot = true;
        m.exclude = false;
    }

    // Teams of 1-12 inside each organisation; members delegate along a chain plus a few extras.
    let mut edges = Vec::new();
    for &(first, count) in &orgs {
        let mut at = 0;
        while at < count {
            let team = rng.random_range(1..=12usize).min(count - at);
            let base = (first + at) as u32;
            for k in 1..team as u32 {
                edges.push((base + k - 1, base + k));
            }
            for _ in 0..team {
                let a = base + rng.random_range(0..team as u32);
                let b = base + rng.random_range(0..team as u32);
                if a != b {
                    edges.push((a.min(b), a.max(b)));
                }
            }
            // Now and then a team works closely with the next one.
            if at + team < count && rng.random_bool(0.02) {
                edges.push((base, base + team as u32));
            }
            at += team;
        }
    }
    // Service accounts: a few mailboxes granted on hundreds or thousands of others.
    let service_accounts = n / spec.mailboxes_per_service_account.max(1);
    for _ in 0..service_accounts {
        let (first, count) = orgs[rng.random_range(0..orgs.len())];
        let account = (first + rng.random_range(0..count)) as u32;
        let grants = rng.random_range(200..3_000usize);
        for _ in 0..grants {
            let other = rng.random_range(0..n) as u32;
            if other != account {
                edges.push((account.min(other), account.max(other)));
            }
        }
    }
    edges.sort_unstable();
    edges.dedup();
    inv.delegations = edges;
    inv
}

/// Writes an estate as mailwave-form CSV files (`mailboxes.csv`, `delegates.csv`) into `dir`.
pub fn write_csv(inv: &Inventory, dir: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let mailboxes = dir.join("mailboxes.csv");
    let delegates = dir.join("delegates.csv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&mailboxes)?);
    writeln!(
        out,
        "EmailAddress,SizeBytes,ItemCount,Organisation,SourceDatabase,Priority,Pilot,Exclude"
    )?;
    for m in &inv.mailboxes {
        writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            m.address,
            m.size_bytes,
            m.item_count,
            inv.organisation_name(m).unwrap_or(""),
            inv.database_name(m).unwrap_or(""),
            m.priority.map(|p| p.to_string()).unwrap_or_default(),
            m.pilot,
            m.exclude
        )?;
    }
    out.flush()?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(&delegates)?);
    writeln!(out, "Mailbox,Delegate,AccessRights")?;
    for &(a, b) in &inv.delegations {
        writeln!(
            out,
            "{},{},FullAccess",
            inv.mailboxes[b as usize].address, inv.mailboxes[a as usize].address
        )?;
    }
    out.flush()?;
    Ok((mailboxes, delegates))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_estate_and_plausible_shape() {
        let a = generate(&EstateSpec::new(20_000, 7));
        let b = generate(&EstateSpec::new(20_000, 7));
        assert_eq!(a.mailboxes, b.mailboxes);
        assert_eq!(a.delegations, b.delegations);
        assert_eq!(a.mailboxes.len(), 20_000);
        let per_mailbox = a.delegations.len() as f64 / 20_000.0;
        assert!((1.0..2.0).contains(&per_mailbox), "{per_mailbox}");
        assert_eq!(a.mailboxes.iter().filter(|m| m.pilot).count(), 200);
        let c = generate(&EstateSpec::new(20_000, 8));
        assert_ne!(a.mailboxes, c.mailboxes);
    }
}
