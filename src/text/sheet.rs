//! Reading the CSV files operators bring (inventories, delegates, usage reports, batch files,
//! `--from-file`, sender lists) as Excel and other tools save them: UTF-8 with or without a BOM,
//! UTF-16 LE or BE with a BOM (Excel's "Unicode Text"), fields between `,`, `;` or tabs (decided
//! from the header line), CRLF or LF line ends. An encoding it cannot read is named.
//!
//! Every record is held to caps before it is held in memory: a row of at most [`MAX_RECORD`]
//! bytes however many lines its quoted fields span, at most [`MAX_FIELDS`] fields, each at most
//! [`MAX_FIELD`] bytes. Every field read is trimmed, loses the `'` a spreadsheet-safe writer put
//! before a formula character, and is cleaned of control characters: the one door for CSV text.

use std::borrow::Cow;
use std::io::{self, Read};
use std::path::Path;

/// The longest row, in bytes, counting every line of its quoted fields.
pub const MAX_RECORD: usize = 64 * 1024;
/// The most fields a row (or the header) may have.
pub const MAX_FIELDS: usize = 256;
/// The longest field, in bytes.
pub const MAX_FIELD: usize = 4 * 1024;

/// What stopped or spoiled a read. Lines count from 1, the header's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Nothing of the file can be trusted from here: it cannot be opened, is in an encoding this
    /// reader does not read, or a row passes the caps.
    File { line: u64, message: String },
    /// One row is wrong (not CSV, a field too long); the rows after it still read.
    Row {
        line: u64,
        /// The field at fault, when one is.
        column: Option<usize>,
        message: String,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::File { line: 0, message } => write!(f, "{message}"),
            Problem::File { line, message } | Problem::Row { line, message, .. } => {
                write!(f, "line {line}: {message}")
            }
        }
    }
}

impl Problem {
    /// The line it is at (0: the file as a whole).
    pub fn line(&self) -> u64 {
        match self {
            Problem::File { line, .. } | Problem::Row { line, .. } => *line,
        }
    }

    /// What is wrong, without the line.
    pub fn message(&self) -> &str {
        match self {
            Problem::File { message, .. } | Problem::Row { message, .. } => message,
        }
    }

    /// The problem as an operator reads it, naming the file: `file, line N: ...`.
    pub fn at(&self, path: &Path) -> String {
        match self {
            Problem::File { line: 0, message } => format!("{}: {message}", path.display()),
            p => format!("{}, {p}", path.display()),
        }
    }
}

/// Why a read stopped, carried through the CSV parser as an I/O error.
#[derive(Debug)]
struct Stop {
    line: u64,
    message: String,
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for Stop {}

fn stop(line: u64, message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, Stop { line, message })
}

/// The advice for a file in an encoding mailwave does not read.
const SAVE_AS: &str =
    "save it from Excel as \"CSV UTF-8 (Comma delimited)\" or \"Unicode Text\", and use that file";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Utf16 { big_endian: bool },
}

/// Line ends in bytes not yet made one kind: LF, CRLF or a lone CR.
fn line_ends(bytes: &[u8]) -> u64 {
    let mut n = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
            n += 1;
        }
    }
    n
}

/// Decodes the file into UTF-8, checking it as it goes, so the CSV parser only ever sees valid
/// UTF-8 and a file in another encoding is named at the line where it shows.
struct Decoder<R> {
    inner: R,
    encoding: Encoding,
    /// Bytes read but not yet decoded: the start of a character a read cut in two.
    raw: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    /// The line the next decoded byte is on.
    line: u64,
    eof: bool,
    /// The last byte handed on was a CR, so an LF first in the next read ends the same line.
    after_cr: bool,
    chunk: Vec<u8>,
}

impl<R: Read> Decoder<R> {
    fn new(inner: R, encoding: Encoding, start: Vec<u8>) -> Decoder<R> {
        Decoder {
            inner,
            encoding,
            raw: start,
            out: Vec::new(),
            pos: 0,
            line: 1,
            eof: false,
            after_cr: false,
            chunk: vec![0; 64 * 1024],
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        self.out.clear();
        self.pos = 0;
        let n = loop {
            match self.inner.read(&mut self.chunk) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.eof = n == 0;
        self.raw.extend_from_slice(&self.chunk[..n]);
        match self.encoding {
            Encoding::Utf8 => self.utf8()?,
            Encoding::Utf16 { big_endian } => self.utf16(big_endian)?,
        }
        self.one_line_end();
        self.line += self.out.iter().filter(|&&b| b == b'\n').count() as u64;
        Ok(())
    }

    /// CRLF and a lone CR (old Macs) become LF, so that the parser, the guard and the errors count
    /// lines alike (the CSV parser counts a CRLF row's line before its LF).
    fn one_line_end(&mut self) {
        let Some(&last) = self.out.last() else {
            return;
        };
        let skip_lf = self.after_cr && self.out.first() == Some(&b'\n');
        self.after_cr = last == b'\r';
        if !skip_lf && !self.out.contains(&b'\r') {
            return;
        }
        let mut out = Vec::with_capacity(self.out.len());
        let mut rest = self.out.get(usize::from(skip_lf)..).unwrap_or_default();
        while let Some(cr) = rest.iter().position(|&b| b == b'\r') {
            let (line, after) = rest.split_at(cr);
            out.extend_from_slice(line);
            out.push(b'\n');
            let after = after.get(1..).unwrap_or_default();
            rest = after.strip_prefix(b"\n").unwrap_or(after);
        }
        out.extend_from_slice(rest);
        self.out = out;
    }

    fn utf8(&mut self) -> io::Result<()> {
        let (good, bad) = match std::str::from_utf8(&self.raw) {
            Ok(_) => (self.raw.len(), None),
            // A character cut by the end of this read: the next read completes it.
            Err(e) if e.error_len().is_none() && !self.eof => (e.valid_up_to(), None),
            Err(e) => (e.valid_up_to(), Some(e.valid_up_to())),
        };
        if let Some(at) = bad {
            let line = self.line + line_ends(&self.raw[..at]);
            let byte = self.raw.get(at).copied().unwrap_or(0);
            return Err(stop(
                line,
                format!(
                    "the file is not UTF-8 (byte 0x{byte:02X} here): it looks saved in a legacy code page \
                     such as Windows-1252, which Excel's \"CSV (Comma delimited)\" writes; {SAVE_AS}"
                ),
            ));
        }
        if good == self.raw.len() {
            // The whole read is good (nearly always): hand it on without a copy.
            std::mem::swap(&mut self.out, &mut self.raw);
        } else {
            self.out.extend(self.raw.drain(..good));
        }
        Ok(())
    }

    fn utf16(&mut self, big_endian: bool) -> io::Result<()> {
        let mut whole = self.raw.len() & !1;
        let unit = |p: &[u8]| {
            let pair = [p[0], p[1]];
            if big_endian {
                u16::from_be_bytes(pair)
            } else {
                u16::from_le_bytes(pair)
            }
        };
        // A surrogate pair cut by the end of this read waits for its second half.
        if !self.eof && whole >= 2 && (0xD800..0xDC00).contains(&unit(&self.raw[whole - 2..whole]))
        {
            whole -= 2;
        }
        let units = self.raw[..whole].chunks_exact(2).map(unit);
        let mut buf = [0u8; 4];
        for c in char::decode_utf16(units) {
            match c {
                Ok(c) => self
                    .out
                    .extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
                Err(_) => {
                    let line = self.line + line_ends(&self.out);
                    return Err(stop(
                        line,
                        format!(
                            "the file is not valid UTF-16 here (a broken surrogate pair); {SAVE_AS}"
                        ),
                    ));
                }
            }
        }
        self.raw.drain(..whole);
        if self.eof && !self.raw.is_empty() {
            return Err(stop(
                self.line + line_ends(&self.out),
                "the file ends in half a UTF-16 character".into(),
            ));
        }
        Ok(())
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.out.len() {
            if self.eof {
                return Ok(0);
            }
            self.fill()?;
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Where the parser stands inside a record, as the CSV grammar has it: a quote opens a quoted
/// field only at the start of a field, and only outside a quoted field does a line end a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: the end of it, or the first of a doubled quote.
    QuoteInQuoted,
    /// A comment line (in a list), which ends at the line's end whatever it holds.
    Comment,
}

/// Fails, for good, as soon as one record passes [`MAX_RECORD`] bytes, so a quoted field left
/// open (or one endless line) is refused before it is held in memory. It follows the CSV grammar
/// byte by byte, so it knows where records end exactly as the parser after it does.
struct Guard<R> {
    inner: R,
    delimiter: u8,
    comment: Option<u8>,
    at: At,
    line: u64,
    record_line: u64,
    record_bytes: usize,
    failed: Option<(u64, String)>,
    /// Bytes followed so far.
    offset: u64,
    /// Where each line end not yet asked about is (as byte offsets), and how many were before
    /// them: a row's line from its byte position, blank lines counted (the parser skips them
    /// without counting).
    ends: std::collections::VecDeque<(u64, bool)>,
    ends_before: u64,
}

impl<R> Guard<R> {
    fn new(inner: R, delimiter: u8, comment: Option<u8>) -> Guard<R> {
        Guard {
            inner,
            delimiter,
            comment,
            at: At::FieldStart,
            line: 1,
            record_line: 1,
            record_bytes: 0,
            failed: None,
            offset: 0,
            ends: std::collections::VecDeque::new(),
            ends_before: 0,
        }
    }

    /// The line of the byte at `offset` (positions are asked in order, so what is behind is let go).
    /// A row's position is where the parser began on it, before the blank lines it skipped:
    /// those count, and the row is on the line after them.
    fn line_at(&mut self, offset: u64) -> u64 {
        while self.ends.front().is_some_and(|&(end, _)| end < offset) {
            self.ends.pop_front();
            self.ends_before += 1;
        }
        // The lines the parser skipped (blank, or a comment in a list) end with a mark.
        while self.ends.front().is_some_and(|&(_, skipped)| skipped) {
            self.ends.pop_front();
            self.ends_before += 1;
        }
        self.ends_before + 1
    }
}

impl<R> Guard<R> {
    /// Follows `data` through the grammar. Runs of bytes that cannot change where a record ends
    /// (inside a quoted field up to its quote; outside one up to a quote or a line end; a comment)
    /// are taken at once: outside quotes, only whether a run ended on a delimiter matters, as a
    /// quote opens a quoted field only at a field's start.
    fn follow(&mut self, data: &[u8]) -> Result<(), (u64, String)> {
        let mut i = 0;
        while let Some(&b) = data.get(i) {
            let rest = data.get(i..).unwrap_or_default();
            let record_start = self.record_bytes == 0 && self.at == At::FieldStart;
            let run = match self.at {
                _ if record_start => Some(0),
                At::Quoted => rest.iter().position(|&c| c == b'"'),
                At::FieldStart | At::Unquoted => rest.iter().position(|&c| c == b'"' || c == b'\n'),
                At::Comment => rest.iter().position(|&c| c == b'\n'),
                At::QuoteInQuoted => Some(0),
            }
            .unwrap_or(rest.len());
            if let Some(&last) = rest.get(..run).and_then(<[u8]>::last) {
                match self.at {
                    At::Quoted => {
                        let taken = rest.get(..run).unwrap_or_default();
                        for (k, _) in taken.iter().enumerate().filter(|(_, c)| **c == b'\n') {
                            self.ends.push_back((self.offset + (i + k) as u64, false));
                            self.line += 1;
                        }
                    }
                    At::FieldStart | At::Unquoted if last == self.delimiter => {
                        self.at = At::FieldStart
                    }
                    At::FieldStart | At::Unquoted => self.at = At::Unquoted,
                    At::Comment | At::QuoteInQuoted => {}
                }
                self.record_bytes += run;
                i += run;
                self.check()?;
                continue;
            }
            // The decoder made every line end an LF.
            let ends_line = b == b'\n';
            if ends_line {
                self.line += 1;
                // A line the parser skips: nothing in it, or a comment.
                let skipped = record_start || self.at == At::Comment;
                self.ends.push_back((self.offset + i as u64, skipped));
            }
            self.at = match (self.at, b) {
                (_, c) if record_start && Some(c) == self.comment => At::Comment,
                (At::Quoted, _) => At::QuoteInQuoted,
                (At::FieldStart, b'"') | (At::QuoteInQuoted, b'"') => At::Quoted,
                (_, _) if ends_line => {
                    self.record_bytes = 0;
                    At::FieldStart
                }
                (_, d) if d == self.delimiter => At::FieldStart,
                _ => At::Unquoted,
            };
            if self.record_bytes == 0 && !ends_line {
                self.record_line = self.line;
            }
            if !(ends_line && self.at == At::FieldStart) {
                self.record_bytes += 1;
            }
            i += 1;
            self.check()?;
        }
        Ok(())
    }

    fn check(&self) -> Result<(), (u64, String)> {
        if self.record_bytes <= MAX_RECORD {
            return Ok(());
        }
        let spans = self.line - self.record_line + 1;
        let message = if spans > 1 {
            format!(
                "the row is longer than {MAX_RECORD} bytes (it runs over {spans} lines from here: is a quote left open?)"
            )
        } else {
            format!("the row is longer than {MAX_RECORD} bytes")
        };
        Err((self.record_line, message))
    }
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some((line, message)) = &self.failed {
            return Err(stop(*line, message.clone()));
        }
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && self.at == At::Quoted {
            // The file ended inside a quoted field: every row after its quote would be read
            // into that one field.
            let message = format!(
                "a quote opened in this row is never closed (the file ends inside it, {} line(s) on): is a quote left open?",
                self.line - self.record_line + 1
            );
            self.failed = Some((self.record_line, message.clone()));
            return Err(stop(self.record_line, message));
        }
        let result = self.follow(buf.get(..n).unwrap_or_default());
        self.offset += n as u64;
        if let Err((line, message)) = result {
            self.failed = Some((line, message.clone()));
            return Err(stop(line, message));
        }
        Ok(n)
    }
}

/// The delimiter a first line `sep=;` names (a hint some tools write for Excel), which is then
/// made a blank line, so that the header is the next one and lines still count from the top.
fn excel_separator(head: &mut Vec<u8>) -> Option<u8> {
    let end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = head.get(..end)?;
    let d = match line.strip_suffix(b"\r").unwrap_or(line) {
        [b's', b'e', b'p', b'=', d] if matches!(d, b',' | b';' | b'\t' | b'|') => *d,
        _ => return None,
    };
    head.drain(..end);
    Some(d)
}

/// The delimiter of a header line: whichever of `,` `;` and tab it has most of outside quotes
/// (a comma when it has none: a file of one column).
fn delimiter_of(header: &[u8]) -> u8 {
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for &b in header {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => break,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let best = (0..3).max_by_key(|&i| (counts[i], 3 - i)).unwrap_or(0);
    if counts[best] == 0 {
        b','
    } else {
        [b',', b';', b'\t'][best]
    }
}

/// The encoding the first bytes show, with how many of them are a byte-order mark; or why the
/// file cannot be read.
fn sniff(start: &[u8]) -> Result<(Encoding, usize), String> {
    let named = |what: &str| {
        Err(format!(
            "the file is {what}, not a CSV this reader can read; {SAVE_AS}"
        ))
    };
    match start {
        [0xFF, 0xFE, 0, 0, ..] => named("UTF-32 LE"),
        [0, 0, 0xFE, 0xFF, ..] => named("UTF-32 BE"),
        [0xEF, 0xBB, 0xBF, ..] => Ok((Encoding::Utf8, 3)),
        [0xFF, 0xFE, ..] => Ok((Encoding::Utf16 { big_endian: false }, 2)),
        [0xFE, 0xFF, ..] => Ok((Encoding::Utf16 { big_endian: true }, 2)),
        [b'P', b'K', 3, 4, ..] => named("an Excel workbook (.xlsx) or another zip archive"),
        [0xD0, 0xCF, 0x11, 0xE0, ..] => named("an Excel 97-2003 workbook (.xls)"),
        [0x1F, 0x8B, ..] => named("gzip-compressed"),
        [a, 0, b, 0, ..] if *a != 0 && *b != 0 => named("UTF-16 LE without a byte-order mark"),
        [0, a, 0, b, ..] if *a != 0 && *b != 0 => named("UTF-16 BE without a byte-order mark"),
        _ => Ok((Encoding::Utf8, 0)),
    }
}

/// `"Storage Used (Byte)"` -> `"storageusedbyte"`: header names compared without case, spaces or
/// punctuation.
pub fn normalise(header: &str) -> String {
    header
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

type Input<'a> = Guard<io::Chain<io::Cursor<Vec<u8>>, Decoder<Box<dyn Read + 'a>>>>;

/// A CSV file being read, row by row.
pub struct Sheet<'a> {
    reader: csv::Reader<Input<'a>>,
    headers: Vec<String>,
    record: csv::StringRecord,
}

/// The problem a CSV error stands for.
fn problem(e: csv::Error) -> Problem {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    if let csv::ErrorKind::Io(io) = e.kind() {
        if let Some(s) = io.get_ref().and_then(|i| i.downcast_ref::<Stop>()) {
            return Problem::File {
                line: s.line,
                message: s.message.clone(),
            };
        }
        return Problem::File {
            line,
            message: format!("cannot read: {io}"),
        };
    }
    Problem::Row {
        line,
        column: None,
        message: match e.kind() {
            csv::ErrorKind::Utf8 { .. } => "the row is not valid UTF-8".into(),
            _ => crate::text::message(&e.to_string()),
        },
    }
}

impl Sheet<'static> {
    /// Opens a CSV file whose first row is its header.
    pub fn open(path: &Path) -> Result<Sheet<'static>, Problem> {
        Sheet::new(file(path)?, true)
    }

    /// Opens a list: one value a line, or a CSV without a header; lines starting with `#` are
    /// comments.
    pub fn open_list(path: &Path) -> Result<Sheet<'static>, Problem> {
        Sheet::new(file(path)?, false)
    }
}

fn file(path: &Path) -> Result<Box<dyn Read>, Problem> {
    match std::fs::File::open(path) {
        Ok(f) => Ok(Box::new(f)),
        Err(e) => Err(Problem::File {
            line: 0,
            message: format!("cannot read: {e}"),
        }),
    }
}

impl<'a> Sheet<'a> {
    /// A CSV already in memory, header first.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Sheet<'a>, Problem> {
        Sheet::new(Box::new(bytes), true)
    }

    fn new(mut inner: Box<dyn Read + 'a>, headers: bool) -> Result<Sheet<'a>, Problem> {
        let file_problem = |line, message| Problem::File { line, message };
        let mut start = Vec::with_capacity(4);
        (&mut inner)
            .take(4)
            .read_to_end(&mut start)
            .map_err(|e| file_problem(0, format!("cannot read: {e}")))?;
        let (encoding, bom) = sniff(&start).map_err(|m| file_problem(1, m))?;
        let mut decoder = Decoder::new(inner, encoding, start.split_off(bom));
        // The header line decides the delimiter; it is read ahead, then handed on.
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.contains(&b'\n') && head.len() <= MAX_RECORD {
            let n = decoder.read(&mut buf).map_err(|e| {
                match e.get_ref().and_then(|i| i.downcast_ref::<Stop>()) {
                    Some(s) => file_problem(s.line, s.message.clone()),
                    None => file_problem(0, format!("cannot read: {e}")),
                }
            })?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let delimiter = excel_separator(&mut head).unwrap_or_else(|| delimiter_of(&head));
        let comment = (!headers).then_some(b'#');
        let input = Guard::new(io::Cursor::new(head).chain(decoder), delimiter, comment);
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .has_headers(headers)
            .comment(comment)
            .buffer_capacity(1 << 16)
            .from_reader(input);
        let headers = if headers {
            let h = reader.headers().map_err(|e| match problem(e) {
                Problem::Row { message, .. } => file_problem(1, message),
                file => file,
            })?;
            if h.len() > MAX_FIELDS {
                return Err(file_problem(
                    1,
                    format!("the header has {} columns; at most {MAX_FIELDS}", h.len()),
                ));
            }
            h.iter().map(|f| field(f).into_owned()).collect()
        } else {
            Vec::new()
        };
        Ok(Sheet {
            reader,
            headers,
            record: csv::StringRecord::new(),
        })
    }

    /// The header row, each name trimmed and cleaned (empty for a list).
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// The first of `names` the header has (compared by [`normalise`]), as a column index.
    pub fn column(&self, names: &[&str]) -> Option<usize> {
        let norm: Vec<String> = self.headers.iter().map(|h| normalise(h)).collect();
        names
            .iter()
            .find_map(|n| norm.iter().position(|h| h == &normalise(n)))
    }

    /// The next row that is not blank; `None` at the end. After a [`Problem::File`] nothing more
    /// is read.
    pub fn next_row(&mut self) -> Option<Result<Row<'_>, Problem>> {
        loop {
            match self.reader.read_record(&mut self.record) {
                Ok(false) => return None,
                Ok(true) => {}
                Err(e) => return Some(Err(problem(e))),
            }
            let line = match self.record.position() {
                Some(p) => self.reader.get_mut().line_at(p.byte()),
                None => 0,
            };
            if self.record.len() > MAX_FIELDS {
                return Some(Err(Problem::File {
                    line,
                    message: format!(
                        "the row has {} fields; at most {MAX_FIELDS}",
                        self.record.len()
                    ),
                }));
            }
            if let Some(column) = self.record.iter().position(|f| f.len() > MAX_FIELD) {
                return Some(Err(Problem::Row {
                    line,
                    column: Some(column),
                    message: format!("the field is longer than {MAX_FIELD} bytes"),
                }));
            }
            if self.record.iter().all(|f| f.trim().is_empty()) {
                continue; // a blank line, or a row of empty cells, as hand-edited files end
            }
            return Some(Ok(Row {
                line,
                record: &self.record,
            }));
        }
    }
}

/// A field as every reader takes it: trimmed, without a spreadsheet's formula guard, cleaned.
fn field(raw: &str) -> Cow<'_, str> {
    crate::text::clean(crate::text::from_sheet(raw.trim()), MAX_FIELD)
}

/// One row of a [`Sheet`].
pub struct Row<'r> {
    /// The line it starts on.
    pub line: u64,
    record: &'r csv::StringRecord,
}

impl<'r> Row<'r> {
    /// Field `i`, trimmed and cleaned; empty when the row is shorter.
    pub fn get(&self, i: usize) -> Cow<'r, str> {
        field(self.record.get(i).unwrap_or(""))
    }

    /// The row as read (cleaned, at most 500 characters), for a rejected-rows report.
    pub fn raw(&self) -> String {
        let joined = self.record.iter().collect::<Vec<_>>().join(",");
        crate::text::clean(&joined, 500).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header, and each row's line and first three fields.
    type Rows = (Vec<String>, Vec<(u64, Vec<String>)>);

    fn rows(bytes: &[u8]) -> Result<Rows, Problem> {
        let mut sheet = Sheet::from_bytes(bytes)?;
        let headers = sheet.headers().to_vec();
        let mut out = Vec::new();
        while let Some(row) = sheet.next_row() {
            let row = row?;
            out.push((row.line, (0..3).map(|i| row.get(i).into_owned()).collect()));
        }
        Ok((headers, out))
    }

    fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
        let mut out = if big_endian {
            vec![0xFE, 0xFF]
        } else {
            vec![0xFF, 0xFE]
        };
        for u in text.encode_utf16() {
            out.extend_from_slice(&if big_endian {
                u.to_be_bytes()
            } else {
                u.to_le_bytes()
            });
        }
        out
    }

    #[test]
    fn excel_files_read_alike() {
        let want = (
            vec!["EmailAddress".to_string(), "Display Name".into()],
            vec![
                (
                    2,
                    vec![
                        "zoë@contoso.com".to_string(),
                        "Zoë 🚀".into(),
                        String::new(),
                    ],
                ),
                (
                    3,
                    vec![
                        "bob@contoso.com".to_string(),
                        "Bob; Jr".into(),
                        String::new(),
                    ],
                ),
            ],
        );
        let text = "EmailAddress,Display Name\r\nzoë@contoso.com,Zoë 🚀\r\nbob@contoso.com,\"Bob; Jr\"\r\n";
        assert_eq!(rows(text.as_bytes()).unwrap(), want, "comma, CRLF");
        let bom = [b"\xef\xbb\xbf".as_slice(), text.as_bytes()].concat();
        assert_eq!(rows(&bom).unwrap(), want, "UTF-8 with BOM");
        let semi =
            "EmailAddress;Display Name\nzoë@contoso.com;Zoë 🚀\nbob@contoso.com;\"Bob; Jr\"\n";
        assert_eq!(
            rows(semi.as_bytes()).unwrap(),
            want,
            "semicolons (European Excel)"
        );
        let tabs =
            "EmailAddress\tDisplay Name\r\nzoë@contoso.com\tZoë 🚀\r\nbob@contoso.com\tBob; Jr\r\n";
        assert_eq!(rows(&utf16(tabs, false)).unwrap(), want, "Unicode Text, LE");
        assert_eq!(rows(&utf16(tabs, true)).unwrap(), want, "UTF-16 BE");
    }

    #[test]
    fn a_character_cut_by_a_read_is_whole() {
        // Reads end every 64 KiB: put a four-byte character and a surrogate pair across one.
        for big_endian in [false, true] {
            let mut text = String::from("EmailAddress,Note\n");
            let mut line = 2;
            while text.len() < 200_000 {
                text.push_str(&format!(
                    "u{line}@contoso.com,🚀 {}\n",
                    "é".repeat(line % 7)
                ));
                line += 1;
            }
            let (_, utf8_rows) = rows(text.as_bytes()).unwrap();
            let (_, utf16_rows) = rows(&utf16(&text, big_endian)).unwrap();
            assert_eq!(utf8_rows.len(), line - 2);
            assert_eq!(utf8_rows, utf16_rows);
        }
    }

    #[test]
    fn encodings_it_cannot_read_are_named() {
        let mut latin1 = b"EmailAddress,Display Name\na@contoso.com,Ann\nz@contoso.com,Zo".to_vec();
        latin1.extend_from_slice(&[0xEB, b'\n']);
        let e = rows(&latin1).unwrap_err();
        assert!(matches!(e, Problem::File { line: 3, .. }), "{e}");
        assert!(e.to_string().contains("Windows-1252"), "{e}");
        assert!(e.to_string().contains("CSV UTF-8"), "{e}");
        for (bytes, named) in [
            (b"PK\x03\x04rest".to_vec(), ".xlsx"),
            (vec![0xD0, 0xCF, 0x11, 0xE0, 1], ".xls"),
            (vec![0xFF, 0xFE, 0, 0, b'a', 0, 0, 0], "UTF-32 LE"),
            (b"E\0m\0a\0".to_vec(), "UTF-16 LE without a byte-order mark"),
            (vec![0x1F, 0x8B, 8, 0], "gzip"),
        ] {
            let e = rows(&bytes).unwrap_err();
            assert!(e.to_string().contains(named), "{named}: {e}");
        }
        let mut broken = utf16("EmailAddress\na@contoso.com\n", false);
        broken.extend_from_slice(&[0x00, 0xD8, b'x', 0]);
        assert!(rows(&broken).unwrap_err().to_string().contains("UTF-16"));
    }

    #[test]
    fn rows_are_named_by_their_line_in_the_file_blank_lines_counted() {
        // The parser skips blank lines without counting them: an error after them named the
        // wrong line (the walk of issue 19). Quoted line breaks count too.
        let text = "EmailAddress,Display Name,SizeBytes\r\nx1@contoso.com,A,1\r\n\r\n\r\n\r\nx2@contoso.com,B,bad\r\n\nx3@contoso.com,\"two\nlines\",3\nx4@contoso.com,D,4\n";
        let (_, r) = rows(text.as_bytes()).unwrap();
        let lines: Vec<u64> = r.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [2, 6, 8, 10]);
        // In a list, comment lines count as well.
        let list = b"# leavers\na@contoso.com\n# more\n\nb@contoso.com\n";
        let mut sheet = Sheet::new(Box::new(&list[..]), false).unwrap();
        let mut lines = Vec::new();
        while let Some(row) = sheet.next_row() {
            lines.push(row.unwrap().line);
        }
        assert_eq!(lines, [2, 5]);
    }

    #[test]
    fn a_quote_left_open_to_the_end_of_the_file_is_refused_where_it_began() {
        let text = "EmailAddress,Display Name\r\nu1@contoso.com,Alice\r\nu2@contoso.com,\"Bob\r\nu3@contoso.com,Carol\r\n";
        let mut sheet = Sheet::from_bytes(text.as_bytes()).unwrap();
        let mut rows = 0;
        let err = loop {
            match sheet.next_row() {
                Some(Ok(_)) => rows += 1,
                Some(Err(e)) => break e,
                None => panic!("the open quote was read as a field"),
            }
        };
        assert_eq!(rows, 1);
        assert_eq!(err.line(), 3, "{err:?}");
        assert!(err.message().contains("never closed"), "{err:?}");
    }

    #[test]
    fn a_quoted_field_cannot_swallow_the_file() {
        // One display name opened and never closed, 800 lines of 100 bytes.
        let mut text =
            String::from("EmailAddress,DisplayName\na@contoso.com,Ann\nb@contoso.com,\"Bob");
        for _ in 0..800 {
            text.push_str(&format!("{}\n", "x".repeat(99)));
        }
        let e = rows(text.as_bytes()).unwrap_err();
        assert!(
            matches!(&e, Problem::File { line: 3, message } if message.contains("longer than 65536 bytes") && message.contains("quote left open")),
            "{e}"
        );
        // Quoted line breaks and doubled quotes within the caps are fine, and count lines right.
        let ok =
            "EmailAddress,Note\na@contoso.com,\"two\nlines, \"\"quoted\"\"\"\nb@contoso.com,x\n";
        let (_, r) = rows(ok.as_bytes()).unwrap();
        assert_eq!(r[0].1[1], "two lines, \"quoted\"");
        assert_eq!((r[0].0, r[1].0), (2, 4));
        // Old Macs ended lines with a CR alone; lines still count right.
        let (_, r) =
            rows(b"EmailAddress,Note\ra@contoso.com,\"x\r\ny\"\rb@contoso.com,z\r").unwrap();
        assert_eq!((r[0].0, r[1].0), (2, 4));
        // A quote inside an unquoted field is a character, not the start of a quoted one.
        let (_, r) =
            rows(b"EmailAddress,Note\na@contoso.com,5\" floppy\nb@contoso.com,x\n").unwrap();
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn the_guard_ends_records_where_the_parser_does() {
        // Fields with quotes in every place the grammar gives them a meaning, or none: a file of
        // 8,748 short rows (well over 64 KiB in all) reads row by row.
        let fields = [
            "plain",
            "5\" floppy",
            "\"a,b\"",
            "\"two\nlines\"",
            "\"\"",
            "\"he said \"\"hi\"\"\"",
            "a\"b\"c",
            "\"x\"y",
            "",
        ];
        for sep in [",", ";", "\t"] {
            let mut text = format!("A{sep}B{sep}C\n");
            let mut written = 0;
            for a in fields {
                for b in fields {
                    for c in fields {
                        for _ in 0..12 {
                            text.push_str(&format!("{a}{sep}{b}{sep}{c}z\n"));
                            written += 1;
                        }
                    }
                }
            }
            assert!(text.len() > 2 * MAX_RECORD);
            let (_, read) = rows(text.as_bytes()).unwrap_or_else(|e| panic!("{sep:?}: {e}"));
            assert_eq!(read.len(), written, "{sep:?}");
        }
    }

    #[test]
    fn excel_s_separator_hint_is_taken() {
        let (h, r) = rows(b"sep=;\r\nEmailAddress;Note\r\na@contoso.com;x,y\r\n").unwrap();
        assert_eq!(h, ["EmailAddress", "Note"]);
        assert_eq!(
            r,
            [(
                3,
                vec!["a@contoso.com".to_string(), "x,y".into(), String::new()]
            )]
        );
    }

    #[test]
    fn field_caps_name_the_row_and_column() {
        let text = format!(
            "EmailAddress,Note\na@contoso.com,{}\nb@contoso.com,x\n",
            "n".repeat(5000)
        );
        let mut sheet = Sheet::from_bytes(text.as_bytes()).unwrap();
        assert!(matches!(
            sheet.next_row(),
            Some(Err(Problem::Row {
                line: 2,
                column: Some(1),
                ..
            }))
        ));
        assert_eq!(sheet.next_row().unwrap().unwrap().get(0), "b@contoso.com");
        let wide = format!("EmailAddress\na@contoso.com{}\n", ",x".repeat(300));
        assert!(matches!(
            rows(wide.as_bytes()),
            Err(Problem::File { line: 2, ref message }) if message.contains("301 fields")
        ));
    }

    #[test]
    fn fields_are_cleaned_and_unguarded() {
        let (h, r) = rows(
            "EmailAddress,Display Name\n'=1+2@contoso.com,\"\u{1b}[2J\u{1b}[31mEve\"\n,,\n  c@contoso.com ,'-Carl\n"
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(h[1], "Display Name");
        assert_eq!(r.len(), 2, "the row of empty cells is skipped");
        assert_eq!(r[0].1[0], "=1+2@contoso.com");
        assert_eq!(r[0].1[1], "\u{FFFD}[2J\u{FFFD}[31mEve");
        assert_eq!(r[1].1[..2], ["c@contoso.com".to_string(), "-Carl".into()]);
    }
}
