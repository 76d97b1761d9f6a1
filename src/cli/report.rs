//! `mailwave report`: a Markdown report to hand on.

use std::path::PathBuf;

use super::{Cli, exit};
use crate::store::Store;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write the report here instead of printing it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// md: waves and who needs attention, for people; csv or json: one row per mailbox (wave,
    /// state, times, size, attempts, the last error and the service's message, the operator's
    /// actions), for spreadsheets and tickets.
    #[arg(long, value_enum, default_value = "md")]
    pub format: Format,
    /// Only this wave's mailboxes (csv, json).
    #[arg(long, value_name = "ID")]
    pub wave: Option<String>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Md,
    Csv,
    Json,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<i32> {
    let store = Store::open_read_only(&cli.state)?;
    if let Some(w) = &args.wave {
        super::wave_named(&store, w, "--wave: ")?;
    }
    if args.format != Format::Md {
        return rows(&store, args);
    }
    let running = crate::store::lock::holder(&cli.state);
    let text = crate::ui::report::markdown(&store, cli.clock().now(), running.as_deref())?;
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
fn rows(store: &Store, args: &Args) -> anyhow::Result<i32> {
    let sink: Box<dyn std::io::Write> = match &args.out {
        Some(path) => Box::new(crate::private::create(path)?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut sink = std::io::BufWriter::new(sink);
    let mut count = 0u64;
    let written = match args.format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut sink);
            w.write_record([
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
            ])?;
            let result = store.each_mailbox_row(args.wave.as_deref(), |r| {
                count += 1;
                w.write_record([
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
                ])
                .map_err(std::io::Error::other)
            })?;
            result.and_then(|()| w.flush())
        }
        Format::Json | Format::Md => {
            use std::io::Write;
            let mut first = true;
            let result = sink.write_all(b"[").and_then(|()| {
                store
                    .each_mailbox_row(args.wave.as_deref(), |r| {
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
