//! Reading inventory and delegate CSVs. Columns are found by header name, case-insensitively and
//! ignoring spaces and punctuation, so Microsoft's batch CSV, Graph's usage report and mailwave's own
//! form all import as they are.

use crate::format::clip;
use std::fs::File;
use std::path::Path;

use super::{Interner, Inventory, InventoryError, Mailbox, RowError, address};

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Import the valid rows and report the rest, instead of all-or-nothing.
    pub skip_invalid: bool,
    /// A mailbox with more delegation edges than this is a service account, left out of grouping.
    pub service_account_threshold: u32,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            skip_invalid: false,
            service_account_threshold: 50,
        }
    }
}

/// `"Storage Used (Byte)"` -> `"storageusedbyte"`.
fn normalise(header: &str) -> String {
    header
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

#[derive(Default)]
struct Columns {
    address: Option<usize>,
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

impl Columns {
    fn find(headers: &[String]) -> Columns {
        let norm: Vec<String> = headers.iter().map(|h| normalise(h)).collect();
        let pick = |names: &[&str]| names.iter().find_map(|n| norm.iter().position(|h| h == n));
        Columns {
            address: pick(&["emailaddress", "userprincipalname", "primarysmtpaddress"]),
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

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "false" | "no" | "n" | "0" => Ok(false),
        "true" | "yes" | "y" | "1" => Ok(true),
        other => Err(format!("{:?} is not true or false", clip(other, 60))),
    }
}

fn parse_count(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(0);
    }
    t.parse::<u64>()
        .map_err(|_| format!("{:?} is not a whole number of zero or more", clip(t, 60)))
}

/// The longest line an inventory, delegates or batch file may have (a row is a few hundred bytes).
pub const MAX_LINE: usize = 64 * 1024;
/// The most fields a row may have.
pub const MAX_FIELDS: usize = 256;

/// A reader that fails, for good, at the first line longer than [`MAX_LINE`], so that a file of
/// one endless line is refused before it is held in memory.
pub struct LimitedLines<R> {
    inner: R,
    line: u64,
    in_line: usize,
    failed: bool,
}

impl<R> LimitedLines<R> {
    pub fn new(inner: R) -> LimitedLines<R> {
        LimitedLines {
            inner,
            line: 1,
            in_line: 0,
            failed: false,
        }
    }
}

/// The error [`LimitedLines`] gives, with the line it stopped at.
#[derive(Debug)]
pub struct LineTooLong(pub u64);

impl std::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} is longer than {MAX_LINE} bytes", self.0)
    }
}

impl std::error::Error for LineTooLong {}

impl<R: std::io::Read> std::io::Read for LimitedLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let too_long = || std::io::Error::new(std::io::ErrorKind::InvalidData, LineTooLong(0));
        if self.failed {
            return Err(too_long());
        }
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            if b == b'\n' {
                self.line += 1;
                self.in_line = 0;
            } else {
                self.in_line += 1;
                if self.in_line > MAX_LINE {
                    self.failed = true;
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        LineTooLong(self.line),
                    ));
                }
            }
        }
        Ok(n)
    }
}

/// The line [`LimitedLines`] stopped at, if that is what a CSV error is.
pub fn line_too_long(e: &csv::Error) -> Option<u64> {
    match e.kind() {
        csv::ErrorKind::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<LineTooLong>())
            .map(|l| l.0),
        _ => None,
    }
}

type Csv = csv::Reader<LimitedLines<File>>;

/// Opens a CSV file, refusing an empty one, and returns its reader with the header row.
fn open(path: &Path) -> Result<(Csv, Vec<String>), InventoryError> {
    let io = |source| InventoryError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::Headers)
        .buffer_capacity(1 << 20)
        .from_reader(LimitedLines::new(file));
    let headers: Vec<String> = match reader.headers() {
        Ok(h) if h.len() > MAX_FIELDS => {
            return Err(InventoryError::TooLarge {
                path: path.to_path_buf(),
                line: 1,
                message: format!("the header has {} columns; at most {MAX_FIELDS}", h.len()),
            });
        }
        Ok(h) => h.iter().map(str::to_string).collect(),
        Err(e) => {
            if let Some(line) = line_too_long(&e) {
                return Err(InventoryError::TooLarge {
                    path: path.to_path_buf(),
                    line,
                    message: format!("the line is longer than {MAX_LINE} bytes"),
                });
            }
            return Err(InventoryError::Rejected {
                path: path.to_path_buf(),
                errors: vec![RowError {
                    line: 1,
                    column: "(header)".into(),
                    message: e.to_string(),
                    raw: String::new(),
                }],
                total: 1,
            });
        }
    };
    if headers.iter().all(|h| h.is_empty()) {
        return Err(InventoryError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok((reader, headers))
}

/// A record's fields, or the error for a row that is not valid CSV or UTF-8. A line or a row past
/// the limits is an error for the whole file.
fn next_row(
    path: &Path,
    reader: &mut Csv,
    record: &mut csv::StringRecord,
) -> Result<Option<Result<u64, RowError>>, InventoryError> {
    match reader.read_record(record) {
        Ok(false) => Ok(None),
        Ok(true) => {
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            if record.len() > MAX_FIELDS {
                return Err(InventoryError::TooLarge {
                    path: path.to_path_buf(),
                    line,
                    message: format!("the row has {} fields; at most {MAX_FIELDS}", record.len()),
                });
            }
            Ok(Some(Ok(line)))
        }
        Err(e) => {
            if let Some(line) = line_too_long(&e) {
                return Err(InventoryError::TooLarge {
                    path: path.to_path_buf(),
                    line,
                    message: format!("the line is longer than {MAX_LINE} bytes"),
                });
            }
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            Ok(Some(Err(RowError {
                line,
                column: "(row)".into(),
                message: match e.kind() {
                    csv::ErrorKind::Utf8 { .. } => "the row is not valid UTF-8".into(),
                    _ => e.to_string(),
                },
                raw: String::new(),
            })))
        }
    }
}

fn raw_of(record: &csv::StringRecord) -> String {
    clip(&record.iter().collect::<Vec<_>>().join(","), 500)
}

/// Reads a mailbox inventory. Returns the inventory (without groups) and the rows it rejected; with
/// `skip_invalid` off, any rejected row fails the whole import.
pub fn read_mailboxes(
    path: &Path,
    opts: &ImportOptions,
) -> Result<(Inventory, Vec<RowError>), InventoryError> {
    let (mut reader, headers) = open(path)?;
    let cols = Columns::find(&headers);
    let Some(addr_col) = cols.address else {
        return Err(InventoryError::MissingColumn {
            path: path.to_path_buf(),
            wanted: "address (EmailAddress or User Principal Name)".into(),
            found: clip(&headers.join(", "), 200),
        });
    };
    let header = |i: usize| headers[i].clone();

    let mut inv = Inventory::default();
    let mut orgs = Interner::default();
    let mut dbs = Interner::default();
    let mut seen = super::index::AddressIndex::default();
    let mut lines: Vec<u64> = Vec::new();
    let mut rejected = Vec::new();
    let mut record = csv::StringRecord::new();

    while let Some(row) = next_row(path, &mut reader, &mut record)? {
        let line = match row {
            Ok(line) => line,
            Err(e) => {
                rejected.push(e);
                continue;
            }
        };
        if record.iter().all(|f| f.trim().is_empty()) {
            continue; // a blank line at the end of a hand-edited file
        }
        let field = |i: Option<usize>| i.and_then(|i| record.get(i)).unwrap_or("").trim();
        let fail = |col: usize, message: String| RowError {
            line,
            column: header(col),
            message,
            raw: raw_of(&record),
        };
        let result = (|| -> Result<Option<Mailbox>, RowError> {
            if let Some(c) = cols.deleted
                && parse_bool(field(Some(c))).map_err(|m| fail(c, m))?
            {
                return Ok(None);
            }
            let address = field(Some(addr_col)).to_string();
            address::check(&address).map_err(|m| fail(addr_col, m))?;
            let number = |c: Option<usize>| match c {
                Some(c) => parse_count(field(Some(c))).map_err(|m| fail(c, m)),
                None => Ok(0),
            };
            let flag = |c: Option<usize>| match c {
                Some(c) => parse_bool(field(Some(c))).map_err(|m| fail(c, m)),
                None => Ok(false),
            };
            let priority = match cols.priority {
                Some(c) if !field(Some(c)).is_empty() => {
                    Some(field(Some(c)).parse::<i64>().map_err(|_| {
                        fail(
                            c,
                            format!("{:?} is not a whole number", clip(field(Some(c)), 60)),
                        )
                    })?)
                }
                _ => None,
            };
            let text = |c: Option<usize>| Some(field(c)).filter(|s| !s.is_empty());
            Ok(Some(Mailbox {
                size_bytes: number(cols.size)?,
                item_count: number(cols.items)?,
                pilot: flag(cols.pilot)?,
                exclude: flag(cols.exclude)?,
                has_archive: flag(cols.archive)?,
                priority,
                display_name: text(cols.display_name).map(str::to_string),
                organisation: text(cols.organisation).map(|o| orgs.intern(o)),
                source_database: text(cols.database).map(|d| dbs.intern(d)),
                address,
            }))
        })();
        match result {
            Ok(None) => inv.deleted_skipped += 1,
            Ok(Some(m)) => {
                let next = inv.mailboxes.len() as u32;
                let mailboxes = &inv.mailboxes;
                match seen.insert(&m.address, next, |j| &mailboxes[j as usize].address) {
                    Some(first) => rejected.push(fail(
                        addr_col,
                        format!(
                            "{} is a duplicate of line {} (addresses are case-insensitive)",
                            m.address, lines[first as usize]
                        ),
                    )),
                    None => {
                        lines.push(line);
                        inv.mailboxes.push(m);
                    }
                }
            }
            Err(e) => rejected.push(e),
        }
    }
    if inv.mailboxes.is_empty() && rejected.is_empty() {
        return Err(InventoryError::Empty {
            path: path.to_path_buf(),
        });
    }
    if !opts.skip_invalid && !rejected.is_empty() {
        let total = rejected.len();
        rejected.truncate(super::ERRORS_SHOWN);
        return Err(InventoryError::Rejected {
            path: path.to_path_buf(),
            errors: rejected,
            total,
        });
    }
    inv.organisations = orgs.names;
    inv.databases = dbs.names;
    Ok((inv, rejected))
}

/// Reads delegate permissions (`Mailbox`, `Delegate`; other columns ignored) into `inv.delegations`.
/// Both ends must be in the inventory.
pub fn read_delegates(
    path: &Path,
    inv: &mut Inventory,
    opts: &ImportOptions,
) -> Result<Vec<RowError>, InventoryError> {
    let (mut reader, headers) = open(path)?;
    let norm: Vec<String> = headers.iter().map(|h| normalise(h)).collect();
    let find = |name: &str| norm.iter().position(|h| h == name);
    let (Some(mcol), Some(dcol)) = (find("mailbox"), find("delegate").or(find("user"))) else {
        return Err(InventoryError::MissingColumn {
            path: path.to_path_buf(),
            wanted: "Mailbox and Delegate".into(),
            found: clip(&headers.join(", "), 200),
        });
    };
    let index = inv.index_by_address();
    let mut edges = Vec::new();
    let mut rejected = Vec::new();
    let mut record = csv::StringRecord::new();
    while let Some(row) = next_row(path, &mut reader, &mut record)? {
        let line = match row {
            Ok(line) => line,
            Err(e) => {
                rejected.push(e);
                continue;
            }
        };
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let mut ends = [0u32; 2];
        let mut ok = true;
        for (slot, col) in [(0, mcol), (1, dcol)] {
            let value = record.get(col).unwrap_or("").trim();
            match inv.find(&index, value) {
                Some(i) => ends[slot] = i,
                None => {
                    let message = match address::check(value) {
                        Err(m) => m,
                        Ok(()) => format!("{} is not in the inventory", clip(value, 100)),
                    };
                    rejected.push(RowError {
                        line,
                        column: headers[col].clone(),
                        message,
                        raw: raw_of(&record),
                    });
                    ok = false;
                    break;
                }
            }
        }
        if ok && ends[0] != ends[1] {
            edges.push((ends[0].min(ends[1]), ends[0].max(ends[1])));
        }
    }
    if !opts.skip_invalid && !rejected.is_empty() {
        let total = rejected.len();
        rejected.truncate(super::ERRORS_SHOWN);
        return Err(InventoryError::Rejected {
            path: path.to_path_buf(),
            errors: rejected,
            total,
        });
    }
    edges.sort_unstable();
    edges.dedup();
    inv.delegations = edges;
    Ok(rejected)
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
