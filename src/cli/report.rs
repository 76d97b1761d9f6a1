//! `mailwave report`: what an operator hands on: Markdown for terminals and tickets, one html file
//! for mail, or one row per mailbox (csv, json) for spreadsheets.

use std::path::PathBuf;

use super::{Cli, exit};
use crate::store::Store;
use crate::store::figures::{REPORT_FIELDS, report_values};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write the report here instead of printing it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// md: for terminals and tickets; html: one self-contained file with charts, to mail; csv or
    /// json: one row per mailbox (wave, state, times, size, attempts, the last error and the
    /// service's message, the operator's actions, the move's figures).
    #[arg(long, value_enum, default_value = "md")]
    pub format: Format,
    /// Only this wave's mailboxes (csv, json).
    #[arg(long, value_name = "ID")]
    pub wave: Option<String>,
    /// Only what changed since then: a span back from now ("24h", "7d"), a date (midnight in the
    /// plan's zone) or an RFC 3339 time. csv/json: mailboxes whose state changed since; md/html:
    /// the attention lists, failures, throughput and runs (the standing figures stay current).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Md,
    Html,
    Csv,
    Json,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<i32> {
    let store = Store::open_read_only(&cli.state)?;
    if let Some(w) = &args.wave {
        super::wave_named(&store, w, "--wave: ")?;
    }
    let now = cli.clock().now();
    let since = match &args.since {
        Some(s) => {
            let tz = store
                .plan_timezone()?
                .and_then(|z| jiff::tz::TimeZone::get(&z).ok())
                .unwrap_or(jiff::tz::TimeZone::UTC);
            Some(super::moment(s, "--since", now, &tz, true)?)
        }
        None => None,
    };
    let running = crate::store::lock::holder(&cli.state);
    let text = match args.format {
        Format::Csv | Format::Json => return rows(&store, args, since),
        Format::Md => crate::ui::report::markdown(&store, now, running.as_deref(), since)?,
        Format::Html => crate::ui::report::html(&store, now, running.as_deref(), since)?,
    };
    match &args.out {
        Some(path) => {
            crate::private::write(path, text)?;
            outln!("report written to {}", path.display());
        }
        None => out!("{text}"),
    }
    Ok(exit::OK)
}

/// One row per mailbox, streamed (csv or json) to `--out` or standard output.
fn rows(store: &Store, args: &Args, since: Option<jiff::Timestamp>) -> anyhow::Result<i32> {
    let sink: Box<dyn std::io::Write> = match &args.out {
        Some(path) => Box::new(crate::private::create(path)?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut sink = std::io::BufWriter::new(sink);
    let mut count = 0u64;
    let written = match args.format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut sink);
            let mut header: Vec<String> = [
                "address",
                "wave",
                "state",
                "submitted_at",
                "synced_at",
                "completed_at",
                "size_bytes",
                "attempts",
                "failure_class",
                "last_error",
                "actions",
            ]
            .map(String::from)
            .into();
            header.extend(REPORT_FIELDS.iter().map(|f| format!("move_{f}")));
            w.write_record(&header)?;
            let none = vec![String::new(); REPORT_FIELDS.len()];
            let result = store.each_mailbox_row(args.wave.as_deref(), since, |r| {
                count += 1;
                let figures: Vec<String> = match &r.figures {
                    Some(f) => report_values(f)
                        .into_iter()
                        .map(|v| match v {
                            serde_json::Value::Null => String::new(),
                            serde_json::Value::String(s) => s,
                            v => v.to_string(),
                        })
                        .collect(),
                    None => none.clone(),
                };
                let fixed = [
                    r.address.as_str(),
                    r.wave.as_str(),
                    r.state.name(),
                    r.submitted_at.as_deref().unwrap_or(""),
                    r.synced_at.as_deref().unwrap_or(""),
                    r.completed_at.as_deref().unwrap_or(""),
                    &r.size_bytes.to_string(),
                    &r.attempts.to_string(),
                    r.failure_class.as_deref().unwrap_or(""),
                    r.last_error.as_deref().unwrap_or(""),
                    r.actions.as_deref().unwrap_or(""),
                ];
                // A spreadsheet shows text from outside (a message, a server name), never runs it.
                w.write_record(
                    fixed
                        .into_iter()
                        .chain(figures.iter().map(String::as_str))
                        .map(crate::text::sheet_field),
                )
                .map_err(std::io::Error::other)
            })?;
            result.and_then(|()| w.flush())
        }
        Format::Json | Format::Md | Format::Html => {
            use std::io::Write;
            let mut first = true;
            let result = sink.write_all(b"[").and_then(|()| {
                store
                    .each_mailbox_row(args.wave.as_deref(), since, |r| {
                        count += 1;
                        sink.write_all(if first { b"\n" } else { b",\n" })?;
                        first = false;
                        serde_json::to_writer(&mut sink, &r).map_err(std::io::Error::other)
                    })
                    .map_err(std::io::Error::other)?
            });
            result.and_then(|()| sink.write_all(b"\n]\n"))
        }
    };
    match written.and_then(|()| std::io::Write::flush(&mut sink)) {
        Ok(()) => {}
        // A reader that stops early (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(exit::OK),
        Err(e) => return Err(e.into()),
    }
    if let Some(path) = &args.out {
        outln!("{count} mailboxes written to {}", path.display());
    }
    Ok(exit::OK)
}
