//! `mailwave mailbox show`: one mailbox's facts, state and full history.

use super::{Cli, exit};
use crate::format::human_bytes;
use crate::store::Store;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Facts, state and every event of one mailbox.
    Show {
        /// The mailbox's address (case-insensitive).
        address: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cli: &Cli, command: &Command) -> anyhow::Result<i32> {
    let Command::Show { address, json } = command;
    let store = Store::open_read_only(&cli.state)?;
    let r = store.mailbox_report(address)?;
    if *json {
        outln!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(exit::OK);
    }
    outln!(
        "{}{}",
        r.address,
        r.display_name
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default()
    );
    outln!(
        "  size            {} in {} items",
        human_bytes(r.size_bytes as u64),
        r.item_count
    );
    outln!(
        "  organisation    {}",
        r.organisation.as_deref().unwrap_or("-")
    );
    outln!(
        "  source database {}",
        r.source_database.as_deref().unwrap_or("-")
    );
    outln!(
        "  priority        {}{}{}",
        r.priority
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into()),
        if r.pilot { ", pilot" } else { "" },
        if r.exclude { ", excluded" } else { "" }
    );
    outln!(
        "  affinity group  {} mailbox(es){}",
        r.group_size,
        if r.service_account {
            "; service account, not grouped"
        } else {
            ""
        }
    );
    match (&r.wave, r.state) {
        (Some(wave), Some(state)) => {
            outln!("  wave            {wave}");
            outln!("  state           {state} (attempts {})", r.attempts);
        }
        _ => outln!("  state           not planned"),
    }
    if let Some(d) = &r.status_detail {
        outln!(
            "  service status  {d}{}",
            r.percent.map(|p| format!(", {p}%")).unwrap_or_default()
        );
    }
    if let Some(e) = &r.last_error {
        outln!(
            "  last error      {} ({})",
            e,
            r.failure_class.as_deref().unwrap_or("-")
        );
    }
    if let Some(id) = &r.request_id {
        outln!("  move request    {id}");
    }
    outln!("  history:");
    for e in &r.events {
        let from = e.from.map(|s| s.name()).unwrap_or("-");
        outln!(
            "    {}  {from} -> {}  {}{}{}",
            e.at,
            e.to,
            e.cause,
            e.detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default(),
            e.correlation
                .as_deref()
                .map(|c| format!("  [{c}]"))
                .unwrap_or_default()
        );
    }
    Ok(exit::OK)
}
