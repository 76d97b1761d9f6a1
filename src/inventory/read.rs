//! Reading inventory and delegate CSVs. Columns are found by header name, case-insensitively and
//! ignoring spaces and punctuation, so Microsoft's batch CSV, Graph's usage report and mailwave's own
//! form all import as they are.

use std::path::Path;

use super::{Interner, Inventory, InventoryError, Mailbox, RowError, address};
use crate::format::clip;
use crate::text::sheet::{Problem, Row, Sheet};

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Import the valid rows and report the rest, instead of all-or-nothing.
    pub skip_invalid: bool,
    /// A mailbox with more delegation edges than this is a service account, left out of grouping.
    pub service_account_threshold: u32,
    /// Addresses (lower case) of stored mailboxes this import removes: a delegate row naming one
    /// is left out with it and counted, never rejected, so a re-import with last month's
    /// delegates file reaches the drop guard.
    pub removed: std::collections::HashSet<String>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            skip_invalid: false,
            service_account_threshold: 50,
            removed: Default::default(),
        }
    }
}

#[derive(Default)]
struct Columns {
    address: Option<usize>,
    /// A User Principal Name beside the address: another name the usage report may use.
    principal_name: Option<usize>,
    display_name: Option<usize>,
    size: Option<usize>,
    items: Option<usize>,
    organisation: Option<usize>,
    database: Option<usize>,
    priority: Option<usize>,
    pilot: Option<usize>,
    exclude: Option<usize>,
    archive: Option<usize>,
    deleted: Option<usize>,
}

/// The address column's names, most specific first; `address` is the one mailwave's report writes.
pub(crate) const ADDRESS_COLUMNS: [&str; 4] = [
    "EmailAddress",
    "User Principal Name",
    "PrimarySmtpAddress",
    "address",
];

impl Columns {
    fn find(sheet: &Sheet) -> Columns {
        let pick = |names: &[&str]| sheet.column(names);
        let address = pick(&ADDRESS_COLUMNS);
        Columns {
            address,
            principal_name: pick(&["User Principal Name"]).filter(|&c| Some(c) != address),
            display_name: pick(&["displayname"]),
            size: pick(&["sizebytes", "storageusedbyte", "totalitemsizebytes"]),
            items: pick(&["itemcount"]),
            organisation: pick(&["organisation", "organization"]),
            database: pick(&["sourcedatabase", "database"]),
            priority: pick(&["priority"]),
            pilot: pick(&["pilot"]),
            exclude: pick(&["exclude"]),
            archive: pick(&["hasarchive"]),
            deleted: pick(&["isdeleted"]),
        }
    }
}

pub(crate) fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "false" | "no" | "n" | "0" => Ok(false),
        "true" | "yes" | "y" | "1" => Ok(true),
        other => Err(format!("{:?} is not true or false", clip(other, 60))),
    }
}

pub(crate) fn parse_count(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(0);
    }
    t.parse::<u64>()
        .map_err(|_| format!("{:?} is not a whole number of zero or more", clip(t, 60)))
}

/// A problem that stops the whole file, as the import reports it.
fn unreadable(path: &Path, line: u64, message: String) -> InventoryError {
    InventoryError::Unreadable {
        path: path.to_path_buf(),
        line,
        message,
    }
}

/// Opens a CSV file, refusing one that is empty or cannot be read as CSV.
pub(crate) fn open(path: &Path) -> Result<Sheet<'static>, InventoryError> {
    let sheet = Sheet::open(path).map_err(|p| match p {
        Problem::File { line, message } | Problem::Row { line, message, .. } => {
            unreadable(path, line, message)
        }
    })?;
    if sheet.headers().iter().all(|h| h.is_empty()) {
        return Err(InventoryError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(sheet)
}

/// Hands every row of `sheet` to `take` and returns the rows rejected (by `take`, or as not
/// CSV). A problem with the whole file ends the read.
pub(crate) fn each_row(
    path: &Path,
    sheet: &mut Sheet,
    mut take: impl FnMut(&Row) -> Result<(), RowError>,
) -> Result<Vec<RowError>, InventoryError> {
    let headers = sheet.headers().to_vec();
    let mut rejected = Vec::new();
    while let Some(row) = sheet.next_row() {
        match row {
            Ok(row) => {
                if let Err(e) = take(&row) {
                    rejected.push(e);
                }
            }
            Err(Problem::File { line, message }) => return Err(unreadable(path, line, message)),
            Err(Problem::Row {
                line,
                column,
                message,
            }) => rejected.push(RowError {
                line,
                column: column
                    .and_then(|c| headers.get(c).cloned())
                    .unwrap_or_else(|| "(row)".into()),
                message,
                raw: String::new(),
            }),
        }
    }
    Ok(rejected)
}

/// All or nothing: without `skip_invalid`, any rejected row refuses the whole file.
pub(crate) fn settle(
    path: &Path,
    mut rejected: Vec<RowError>,
    opts: &ImportOptions,
) -> Result<Vec<RowError>, InventoryError> {
    if opts.skip_invalid || rejected.is_empty() {
        return Ok(rejected);
    }
    let total = rejected.len();
    rejected.truncate(super::ERRORS_SHOWN);
    Err(InventoryError::Rejected {
        path: path.to_path_buf(),
        errors: rejected,
        total,
    })
}

/// Reads a mailbox inventory. Returns the inventory (without groups) and the rows it rejected; with
/// `skip_invalid` off, any rejected row fails the whole import.
pub fn read_mailboxes(
    path: &Path,
    opts: &ImportOptions,
) -> Result<(Inventory, Vec<RowError>), InventoryError> {
    let mut sheet = open(path)?;
    let headers = sheet.headers().to_vec();
    let cols = Columns::find(&sheet);
    let Some(addr_col) = cols.address else {
        return Err(InventoryError::MissingColumn {
            path: path.to_path_buf(),
            wanted: "address (EmailAddress or User Principal Name)".into(),
            found: clip(&headers.join(", "), 200),
        });
    };
    let header = |i: usize| headers.get(i).cloned().unwrap_or_default();

    let mut inv = Inventory::default();
    let mut orgs = Interner::default();
    let mut dbs = Interner::default();
    let mut seen = super::index::AddressIndex::default();
    let mut lines: Vec<u64> = Vec::new();

    let rejected = each_row(path, &mut sheet, |row| {
        let line = row.line;
        let field = |i: Option<usize>| i.map(|i| row.get(i)).unwrap_or_default();
        let fail = |col: usize, message: String| RowError {
            line,
            column: header(col),
            message,
            raw: row.raw(),
        };
        if let Some(c) = cols.deleted
            && parse_bool(&field(Some(c))).map_err(|m| fail(c, m))?
        {
            inv.deleted_skipped += 1;
            return Ok(());
        }
        let address = field(Some(addr_col)).into_owned();
        address::check(&address).map_err(|m| fail(addr_col, m))?;
        let number = |c: Option<usize>| match c {
            Some(c) => parse_count(&field(Some(c))).map_err(|m| fail(c, m)),
            None => Ok(0),
        };
        let flag = |c: Option<usize>| match c {
            Some(c) => parse_bool(&field(Some(c))).map_err(|m| fail(c, m)),
            None => Ok(false),
        };
        let priority =
            match cols.priority {
                Some(c) if !field(Some(c)).is_empty() => {
                    let text = field(Some(c));
                    Some(text.parse::<i64>().map_err(|_| {
                        fail(c, format!("{:?} is not a whole number", clip(&text, 60)))
                    })?)
                }
                _ => None,
            };
        let name = |c: Option<usize>| {
            let f = field(c);
            (!f.is_empty()).then(|| crate::text::name(&f))
        };
        // Organisations and databases repeat: interned without a copy of each row's name.
        let interned = |c: Option<usize>, names: &mut Interner| {
            let f = field(c);
            (!f.is_empty()).then(|| names.intern(&crate::text::clean(&f, crate::text::NAME)))
        };
        let m = Mailbox {
            size_bytes: number(cols.size)?,
            item_count: number(cols.items)?,
            pilot: flag(cols.pilot)?,
            exclude: flag(cols.exclude)?,
            has_archive: flag(cols.archive)?,
            priority,
            display_name: name(cols.display_name),
            organisation: interned(cols.organisation, &mut orgs),
            source_database: interned(cols.database, &mut dbs),
            address,
        };
        let next = inv.mailboxes.len() as u32;
        let mailboxes = &inv.mailboxes;
        if let Some(first) = seen.insert(&m.address, next, |j| &mailboxes[j as usize].address) {
            return Err(fail(
                addr_col,
                format!(
                    "{} is a duplicate of line {} (addresses are case-insensitive)",
                    m.address, lines[first as usize]
                ),
            ));
        }
        if let Some(upn) = name(cols.principal_name)
            && !upn.eq_ignore_ascii_case(&m.address)
        {
            inv.aliases.push((upn, next));
        }
        lines.push(line);
        inv.mailboxes.push(m);
        Ok(())
    })?;
    if inv.mailboxes.is_empty() && rejected.is_empty() {
        return Err(InventoryError::Empty {
            path: path.to_path_buf(),
        });
    }
    let rejected = settle(path, rejected, opts)?;
    inv.organisations = orgs.names;
    inv.databases = dbs.names;
    Ok((inv, rejected))
}

/// What reading the delegates gave besides the delegations.
#[derive(Debug, Default)]
pub struct DelegateRows {
    /// Rows left out (with `skip_invalid`), for the rejected-rows report.
    pub rejected: Vec<RowError>,
    /// Rows naming a stored mailbox this import removes: left out with it, counted apart.
    pub to_removed: u64,
}

/// Reads delegate permissions (`Mailbox`, `Delegate`; other columns ignored) into `inv.delegations`.
/// Both ends must be in the inventory, except that a row naming a mailbox in `opts.removed` is
/// left out and counted.
pub fn read_delegates(
    path: &Path,
    inv: &mut Inventory,
    opts: &ImportOptions,
) -> Result<DelegateRows, InventoryError> {
    let mut sheet = open(path)?;
    let headers = sheet.headers().to_vec();
    let (Some(mcol), Some(dcol)) = (
        sheet.column(&["mailbox"]),
        sheet.column(&["delegate"]).or(sheet.column(&["user"])),
    ) else {
        return Err(InventoryError::MissingColumn {
            path: path.to_path_buf(),
            wanted: "Mailbox and Delegate".into(),
            found: clip(&headers.join(", "), 200),
        });
    };
    let index = inv.index_by_address();
    let mut edges = Vec::new();
    let mut to_removed = 0;
    let rejected = each_row(path, &mut sheet, |row| {
        let mut ends = [0u32; 2];
        for (slot, col) in [(0, mcol), (1, dcol)] {
            let value = row.get(col);
            match inv.find(&index, &value) {
                Some(i) => ends[slot] = i,
                None if opts.removed.contains(&value.to_ascii_lowercase()) => {
                    to_removed += 1;
                    return Ok(());
                }
                None => {
                    return Err(RowError {
                        line: row.line,
                        column: headers.get(col).cloned().unwrap_or_default(),
                        message: match address::check(&value) {
                            Err(m) => m,
                            Ok(()) => format!("{} is not in the inventory", clip(&value, 100)),
                        },
                        raw: row.raw(),
                    });
                }
            }
        }
        if ends[0] != ends[1] {
            edges.push((ends[0].min(ends[1]), ends[0].max(ends[1])));
        }
        Ok(())
    })?;
    let rejected = settle(path, rejected, opts)?;
    edges.sort_unstable();
    edges.dedup();
    inv.delegations = edges;
    Ok(DelegateRows {
        rejected,
        to_removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(content: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content).unwrap();
        f
    }

    fn read(content: &[u8]) -> Result<(Inventory, Vec<RowError>), InventoryError> {
        read_mailboxes(file(content).path(), &ImportOptions::default())
    }

    #[test]
    fn microsoft_batch_csv_needs_only_the_address() {
        let (inv, rej) = read(b"EmailAddress\r\nalice@contoso.com\r\nbob@contoso.com\r\n").unwrap();
        assert!(rej.is_empty());
        assert_eq!(inv.mailboxes.len(), 2);
        assert_eq!(inv.mailboxes[1].address, "bob@contoso.com");
        assert_eq!(inv.mailboxes[1].size_bytes, 0);
    }

    #[test]
    fn graph_usage_report_with_bom_skips_deleted_rows() {
        let csv = "\u{feff}Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Created Date,Last Activity Date,Item Count,Storage Used (Byte),Issue Warning Quota (Byte),Prohibit Send Quota (Byte),Prohibit Send/Receive Quota (Byte),Deleted Item Count,Deleted Item Size (Byte),Deleted Item Quota (Byte),Has Archive,Report Period\n\
2026-11-20,alice@contoso.com,Alice,False,,2019-01-01,2026-11-19,1200,5368709120,,,,0,0,,True,7\n\
2026-11-20,old@contoso.com,Old,True,2026-10-01,2018-01-01,,0,0,,,,0,0,,False,7\n";
        let (inv, _) = read(csv.as_bytes()).unwrap();
        assert_eq!(inv.mailboxes.len(), 1);
        assert_eq!(inv.deleted_skipped, 1);
        let a = &inv.mailboxes[0];
        assert_eq!(
            (a.size_bytes, a.item_count, a.has_archive),
            (5_368_709_120, 1200, true)
        );
        assert_eq!(a.display_name.as_deref(), Some("Alice"));
    }

    #[test]
    fn mailwave_form_reads_every_column() {
        let csv = b"emailaddress,SIZEBYTES,ItemCount,Organisation,SourceDatabase,Priority,Pilot,Exclude\n\
a@x.org,10,2,Trust A,DB01,3,true,false\nb@x.org,20,4,Trust B,DB02,,false,TRUE\n";
        let (inv, _) = read(csv).unwrap();
        let a = &inv.mailboxes[0];
        assert_eq!(inv.organisation_name(a), Some("Trust A"));
        assert_eq!(inv.database_name(a), Some("DB01"));
        assert_eq!((a.priority, a.pilot, a.exclude), (Some(3), true, false));
        let b = &inv.mailboxes[1];
        assert_eq!((b.priority, b.exclude), (None, true));
    }

    #[test]
    fn errors_name_line_and_column_and_import_nothing() {
        let csv =
            b"EmailAddress,SizeBytes\na@x.org,10\nnot-an-address,5\nc@x.org,lots\nA@X.org,1\n";
        let err = read(csv).unwrap_err();
        let InventoryError::Rejected { errors, total, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(*total, 3);
        assert_eq!(
            (errors[0].line, errors[0].column.as_str()),
            (3, "EmailAddress")
        );
        assert_eq!(
            (errors[1].line, errors[1].column.as_str()),
            (4, "SizeBytes")
        );
        assert_eq!(
            (errors[2].line, errors[2].column.as_str()),
            (5, "EmailAddress")
        );
        assert!(
            errors[2].message.contains("duplicate of line 2"),
            "{}",
            errors[2].message
        );
        let text = err.to_string();
        assert!(text.contains("line 4, column SizeBytes"), "{text}");
    }

    #[test]
    fn skip_invalid_keeps_the_good_rows() {
        let f = file(b"EmailAddress,SizeBytes\na@x.org,10\nbad,5\n");
        let opts = ImportOptions {
            skip_invalid: true,
            ..Default::default()
        };
        let (inv, rej) = read_mailboxes(f.path(), &opts).unwrap();
        assert_eq!(inv.mailboxes.len(), 1);
        assert_eq!(rej.len(), 1);
        assert_eq!(rej[0].raw, "bad,5");
    }

    #[test]
    fn missing_column_and_empty_file() {
        assert!(matches!(
            read(b"Name,Size\nx,1\n"),
            Err(InventoryError::MissingColumn { .. })
        ));
        assert!(matches!(read(b""), Err(InventoryError::Empty { .. })));
        assert!(matches!(
            read(b"\xef\xbb\xbf"),
            Err(InventoryError::Empty { .. })
        ));
        assert!(matches!(
            read(b"EmailAddress\n"),
            Err(InventoryError::Empty { .. })
        ));
    }

    #[test]
    fn delegates_must_be_in_the_inventory() {
        let (mut inv, _) = read(b"EmailAddress\na@x.org\nb@x.org\nc@x.org\n").unwrap();
        let d = file(b"Mailbox,Delegate,AccessRights\na@x.org,B@x.org,FullAccess\nb@x.org,a@x.org,SendAs\nc@x.org,c@x.org,FullAccess\n");
        read_delegates(d.path(), &mut inv, &ImportOptions::default()).unwrap();
        assert_eq!(inv.delegations, vec![(0, 1)]);

        let d = file(b"Mailbox,Delegate\na@x.org,zed@x.org\n");
        let err = read_delegates(d.path(), &mut inv, &ImportOptions::default()).unwrap_err();
        let InventoryError::Rejected { errors, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!((errors[0].line, errors[0].column.as_str()), (2, "Delegate"));
        assert!(errors[0].message.contains("not in the inventory"));
    }
}
