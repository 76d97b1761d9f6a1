//! The mailbox inventory: CSV import (Microsoft batch CSV, Graph's mailbox usage report, mailwave's
//! richer form), delegate permissions, validation and affinity groups.

pub mod address;
pub mod groups;
pub mod index;
pub(crate) mod read;
pub mod sizes;
pub mod summary;
pub mod synth;

use rustc_hash::FxHashMap as HashMap;
use std::path::{Path, PathBuf};

pub(crate) use read::ADDRESS_COLUMNS;
pub use read::{DelegateRows, ImportOptions, read_delegates, read_mailboxes};

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
    /// Other names mailboxes go by in the file they were read from (a User Principal Name beside
    /// the address), for matching the usage report's rows: (name, mailbox index).
    pub(crate) aliases: Vec<(String, u32)>,
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
    #[error("{}: the file is empty (expected a header row and at least one mailbox)", path.display())]
    Empty { path: PathBuf },
    /// The file cannot be read as CSV (it cannot be opened, is in an encoding mailwave does not
    /// read, or a row passes the caps): nothing is imported.
    #[error("{}", unreadable_text(path, *line, message))]
    Unreadable {
        path: PathBuf,
        /// 0 when the problem is with the file as a whole.
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

fn unreadable_text(path: &Path, line: u64, message: &str) -> String {
    match line {
        0 => format!("{}: {message}", path.display()),
        _ => format!(
            "{}, line {line}: {message}; nothing was imported",
            path.display()
        ),
    }
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
    let mut head = Vec::new();
    if std::io::Read::read_to_end(&mut std::io::Read::take(csv, 1 << 20), &mut head).is_err() {
        return Ok(());
    }
    let Ok(mut sheet) = crate::text::sheet::Sheet::from_bytes(&head) else {
        return Ok(());
    };
    let Some(col) = sheet.column(&["User Principal Name"]) else {
        return Ok(());
    };
    let mut names = Vec::new();
    while let Some(Ok(row)) = sheet.next_row() {
        names.push(row.get(col).into_owned());
        if names.len() == 200 {
            break;
        }
    }
    concealed(&names)
}

/// Whether most of these user principal names (the first rows of a report) are hashes: then the
/// report is refused, saying how an administrator shows real names.
pub(crate) fn concealed(names: &[String]) -> Result<(), String> {
    let hashed = names
        .iter()
        .filter(|upn| {
            !upn.contains('@') && upn.len() >= 16 && upn.chars().all(|c| c.is_ascii_hexdigit())
        })
        .count();
    let rows = names.len();
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
