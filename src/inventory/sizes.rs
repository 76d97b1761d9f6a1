//! `inventory import <csv> --sizes usage.csv`: sizes and item counts from Graph's mailbox usage
//! report (the CSV an administrator downloads), merged into an inventory that has none. Microsoft's
//! batch CSV holds only addresses, and a plan of mailboxes without sizes balances nothing.

use std::path::Path;

use rustc_hash::FxHashMap as HashMap;

use super::read::{each_row, open, parse_bool, parse_count};
use super::{ImportOptions, Inventory, InventoryError, RowError};
use crate::format::clip;

/// What merging a usage report did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Merged {
    /// Mailboxes of the inventory given a size.
    pub matched: u64,
    /// Mailboxes the report has no row for (their size stays as the inventory had it).
    pub without: u64,
    /// Rows that matched no mailbox: how many, and the first few names.
    pub unmatched: u64,
    pub unmatched_first: Vec<String>,
    /// Rows of deleted mailboxes, skipped.
    pub deleted: u64,
}

/// How many of the rows that matched nothing are named.
const NAMED: usize = 5;

/// Reads the usage report at `path` and sets the size, item count and archive flag of each
/// mailbox it has a row for, matched by user principal name against the inventory's address or
/// its User Principal Name column (they often differ). A report whose names are concealed is
/// refused, saying how to show them; a row that is not right refuses the whole report.
pub fn merge(path: &Path, inv: &mut Inventory) -> Result<Merged, InventoryError> {
    let mut sheet = open(path)?;
    let headers = sheet.headers().to_vec();
    let (Some(upn_col), Some(size_col)) = (
        sheet.column(&["User Principal Name"]),
        sheet.column(&["Storage Used (Byte)"]),
    ) else {
        return Err(InventoryError::MissingColumn {
            path: path.to_path_buf(),
            wanted: "User Principal Name and Storage Used (Byte) (Graph's mailbox usage report)"
                .into(),
            found: clip(&headers.join(", "), 200),
        });
    };
    let items_col = sheet.column(&["Item Count"]);
    let deleted_col = sheet.column(&["Is Deleted"]);
    let archive_col = sheet.column(&["Has Archive"]);

    // Concealed names are seen in the first rows; the report is read again from the start.
    let mut first = Vec::new();
    while let Some(Ok(row)) = sheet.next_row() {
        first.push(row.get(upn_col).into_owned());
        if first.len() == 200 {
            break;
        }
    }
    super::concealed(&first).map_err(|message| InventoryError::Unreadable {
        path: path.to_path_buf(),
        line: 0,
        message,
    })?;
    let mut sheet = open(path)?;

    let index = inv.index_by_address();
    let aliases: HashMap<String, u32> = inv
        .aliases
        .iter()
        .map(|(name, i)| (name.to_ascii_lowercase(), *i))
        .collect();
    let mut seen = vec![false; inv.mailboxes.len()];
    let mut merged = Merged::default();
    let mut updates = Vec::new();
    let rejected = each_row(path, &mut sheet, |row| {
        let fail = |col: usize, message: String| RowError {
            line: row.line,
            column: headers.get(col).cloned().unwrap_or_default(),
            message,
            raw: row.raw(),
        };
        if let Some(c) = deleted_col
            && parse_bool(&row.get(c)).map_err(|m| fail(c, m))?
        {
            merged.deleted += 1;
            return Ok(());
        }
        let upn = row.get(upn_col);
        let size = parse_count(&row.get(size_col)).map_err(|m| fail(size_col, m))?;
        let items = match items_col {
            Some(c) => Some(parse_count(&row.get(c)).map_err(|m| fail(c, m))?),
            None => None,
        };
        let archive = match archive_col {
            Some(c) => Some(parse_bool(&row.get(c)).map_err(|m| fail(c, m))?),
            None => None,
        };
        let found = inv
            .find(&index, &upn)
            .or_else(|| aliases.get(&upn.to_ascii_lowercase()).copied());
        let Some(i) = found else {
            merged.unmatched += 1;
            if merged.unmatched_first.len() < NAMED {
                merged.unmatched_first.push(clip(&upn, 100));
            }
            return Ok(());
        };
        updates.push((i, size, items, archive));
        Ok(())
    })?;
    super::read::settle(path, rejected, &ImportOptions::default())?;
    // Only a report read to its end is merged.
    for (i, size, items, archive) in updates {
        let Some(m) = inv.mailboxes.get_mut(i as usize) else {
            continue;
        };
        m.size_bytes = size;
        if let Some(items) = items {
            m.item_count = items;
        }
        if let Some(archive) = archive {
            m.has_archive = archive;
        }
        if let Some(s) = seen.get_mut(i as usize) {
            *s = true;
        }
    }
    merged.matched = seen.iter().filter(|&&s| s).count() as u64;
    merged.without = seen.len() as u64 - merged.matched;
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    const HEADER: &str = "Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Created Date,Last Activity Date,Item Count,Storage Used (Byte),Issue Warning Quota (Byte),Prohibit Send Quota (Byte),Prohibit Send/Receive Quota (Byte),Deleted Item Count,Deleted Item Size (Byte),Deleted Item Quota (Byte),Has Archive,Report Period\n";

    fn row(upn: &str, items: u64, bytes: impl std::fmt::Display, deleted: bool) -> String {
        format!(
            "2027-01-01,{upn},Someone,{deleted},,2019-01-01,2026-12-30,{items},{bytes},,,,0,0,,False,7\n"
        )
    }

    #[test]
    fn sizes_match_by_principal_name_or_address() {
        let inv_file = file(
            "EmailAddress,User Principal Name\nann@contoso.com,ann.smith@corp.contoso.com\nbob@contoso.com,\ncat@contoso.com,\n",
        );
        let (mut inv, _) =
            super::super::read_mailboxes(inv_file.path(), &Default::default()).unwrap();
        let report = file(&format!(
            "{HEADER}{}{}{}{}",
            row("ANN.SMITH@corp.contoso.com", 10, 1_000, false),
            row("bob@contoso.com", 20, 2_000, false),
            row("gone@contoso.com", 1, 1, false),
            row("cat@contoso.com", 0, 0, true),
        ));
        let merged = merge(report.path(), &mut inv).unwrap();
        assert_eq!(
            merged,
            Merged {
                matched: 2,
                without: 1,
                unmatched: 1,
                unmatched_first: vec!["gone@contoso.com".into()],
                deleted: 1,
            }
        );
        let sizes: Vec<(u64, u64)> = inv
            .mailboxes
            .iter()
            .map(|m| (m.size_bytes, m.item_count))
            .collect();
        assert_eq!(sizes, vec![(1_000, 10), (2_000, 20), (0, 0)]);
    }

    #[test]
    fn concealed_names_and_bad_rows_are_refused() {
        let inv_file = file("EmailAddress\nann@contoso.com\n");
        let (mut inv, _) =
            super::super::read_mailboxes(inv_file.path(), &Default::default()).unwrap();
        let hashed: String = (0..10)
            .map(|i| row(&format!("{i:032X}"), 1, 1, false))
            .collect();
        let e = merge(file(&format!("{HEADER}{hashed}")).path(), &mut inv).unwrap_err();
        assert!(e.to_string().contains("displayConcealedNames"), "{e}");
        let bad = file(&format!(
            "{HEADER}{}{}",
            row("ann@contoso.com", 1, 5, false),
            row("x@contoso.com", 1, "lots", false)
        ));
        let e = merge(bad.path(), &mut inv).unwrap_err();
        assert!(
            e.to_string().contains("line 3, column Storage Used (Byte)"),
            "{e}"
        );
        assert_eq!(
            inv.mailboxes[0].size_bytes, 0,
            "nothing merged from a refused report"
        );
        let e = merge(file("EmailAddress\nann@contoso.com\n").path(), &mut inv).unwrap_err();
        assert!(e.to_string().contains("Storage Used (Byte)"), "{e}");
    }
}
