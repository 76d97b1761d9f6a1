//! The mailbox inventory: CSV import (Microsoft batch CSV, Graph's mailbox usage report, mailwave's
//! richer form), delegate permissions, validation and affinity groups.

pub mod address;
pub mod groups;
pub mod index;
pub(crate) mod read;
pub mod summary;
pub mod synth;

use rustc_hash::FxHashMap as HashMap;
use std::path::{Path, PathBuf};

pub use read::{ImportOptions, read_delegates, read_mailboxes};

/// One mailbox as the inventory knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub address: String,
    pub display_name: Option<String>,
    pub size_bytes: u64,
    pub item_count: u64,
    /// Index into [`Inventory::organisations`].
    pub(crate) organisation: Option<u32>,
    /// Index into [`Inventory::databases`].
    pub(crate) source_database: Option<u32>,
    /// Lower moves first; `None` sorts after every given priority.
    pub(crate) priority: Option<i64>,
    pub pilot: bool,
    pub(crate) exclude: bool,
    pub(crate) has_archive: bool,
}

/// A validated inventory: mailboxes, delegation edges between them, and the affinity groups those
/// edges make.
#[derive(Debug, Default, Clone)]
pub struct Inventory {
    pub mailboxes: Vec<Mailbox>,
    pub organisations: Vec<String>,
    pub(crate) databases: Vec<String>,
    /// Distinct, undirected delegation edges `(a, b)` with `a < b`, as mailbox indices.
    pub delegations: Vec<(u32, u32)>,
    /// Affinity group of each mailbox (a dense id; singleton mailboxes have their own).
    pub(crate) group_of: Vec<u32>,
    /// Mailboxes with more delegation edges than the threshold: kept out of grouping.
    pub service_accounts: Vec<u32>,
    /// Rows of the usage report marked deleted, skipped on import.
    pub deleted_skipped: u64,
}

impl Inventory {
    pub(crate) fn organisation_name(&self, m: &Mailbox) -> Option<&str> {
        m.organisation
            .map(|i| self.organisations[i as usize].as_str())
    }

    pub(crate) fn database_name(&self, m: &Mailbox) -> Option<&str> {
        m.source_database
            .map(|i| self.databases[i as usize].as_str())
    }

    /// Index of every mailbox by address, ignoring case.
    pub(crate) fn index_by_address(&self) -> index::AddressIndex {
        let mut index = index::AddressIndex::with_capacity(self.mailboxes.len());
        for (i, m) in self.mailboxes.iter().enumerate() {
            index.insert(&m.address, i as u32, |j| {
                &self.mailboxes[j as usize].address
            });
        }
        index
    }

    /// The mailbox with this address (any case).
    pub fn find(&self, index: &index::AddressIndex, address: &str) -> Option<u32> {
        index.get(address, |j| &self.mailboxes[j as usize].address)
    }
}

/// Interns repeated strings (organisations, databases) as small ids.
#[derive(Default)]
pub(crate) struct Interner {
    pub names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Interner {
    pub(crate) fn intern(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), i);
        i
    }
}

/// A problem with one row (or the header) of an input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    /// The column as named in the file's header, or the expected name when it is missing.
    pub column: String,
    pub message: String,
    /// The row as read, for the rejected-rows report.
    pub raw: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: the file is empty (expected a header row and at least one mailbox)", path.display())]
    Empty { path: PathBuf },
    /// A line or a row past the limits: the file is not an inventory, and nothing is imported.
    #[error("{}, line {line}: {message}; nothing was imported", path.display())]
    TooLarge {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{}, line 1: no {wanted} column in the header (found: {found})", path.display())]
    MissingColumn {
        path: PathBuf,
        wanted: String,
        found: String,
    },
    #[error("{}", format_rejections(path, errors, *total))]
    Rejected {
        path: PathBuf,
        /// The first few errors, in file order.
        errors: Vec<RowError>,
        total: usize,
    },
}

fn format_rejections(path: &Path, errors: &[RowError], total: usize) -> String {
    let mut out = format!(
        "{}: {total} row(s) rejected; nothing was imported (use --skip-invalid to import the rest)",
        path.display()
    );
    for e in errors {
        out.push_str(&format!(
            "\n  {}, line {}, column {}: {}",
            path.display(),
            e.line,
            e.column,
            e.message
        ));
    }
    if total > errors.len() {
        out.push_str(&format!("\n  ... and {} more", total - errors.len()));
    }
    out
}

/// Refuses a usage report whose names are concealed: with `displayConcealedNames` on, Graph replaces
/// every user principal name with a hash, and nothing can be migrated by hash.
pub fn check_not_concealed(csv: impl std::io::Read) -> Result<(), String> {
    // The first 200 rows are a few kB; a megabyte bounds what a hostile first line can take.
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(std::io::Read::take(csv, 1 << 20));
    let Ok(headers) = reader.headers().cloned() else {
        return Ok(());
    };
    let Some(col) = headers
        .iter()
        .position(|h| h.trim().eq_ignore_ascii_case("User Principal Name"))
    else {
        return Ok(());
    };
    let (mut rows, mut hashed) = (0, 0);
    for record in reader.records().take(200).flatten() {
        let upn = record.get(col).unwrap_or("").trim();
        rows += 1;
        if !upn.contains('@') && upn.len() >= 16 && upn.chars().all(|c| c.is_ascii_hexdigit()) {
            hashed += 1;
        }
    }
    if rows > 0 && hashed * 2 > rows {
        return Err(format!(
            "the mailbox usage report has concealed (hashed) user names ({hashed} of the first {rows} rows), so \
             its mailboxes cannot be matched to addresses. A Global or Reports administrator can show real \
             names by setting Graph's admin/reportSettings displayConcealedNames to false (Microsoft 365 admin \
             center: Settings > Org settings > Reports > \"Display concealed user, group, and site names in all \
             reports\" off), then import again."
        ));
    }
    Ok(())
}

/// How many row errors an all-or-nothing failure shows before "... and N more".
pub(crate) const ERRORS_SHOWN: usize = 20;
