//! `mailwave mailbox`: one mailbox's facts, state and full history (`show`), and the operator's
//! actions on mailboxes (hold, release, retry, skip, reschedule, approve).

use super::actions::{self, Common};
use super::{Cli, exit};
use crate::format::human_bytes;
use crate::store::Store;
use crate::store::actions::ActionKind;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Facts, state, actions and every event of one mailbox.
    Show {
        /// The mailbox's address (case-insensitive).
        address: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Keep mailboxes from moving: no request is created, and one that exists cannot cut over
    /// (its CompleteAfter goes a year out; it keeps copying).
    Hold(Common),
    /// Let held or skipped mailboxes move again: back into their wave, or the next one with room
    /// if its window has passed.
    Release(Common),
    /// Try failed mailboxes again: the request is resumed (or removed and created again when the
    /// service will not resume it), its attempts counted afresh.
    Retry {
        #[command(flatten)]
        common: Common,
        /// Retry permanent failures too.
        #[arg(long)]
        force: bool,
    },
    /// Leave mailboxes out: an existing request is removed and no new one is made (release undoes it).
    Skip(Common),
    /// Move mailboxes to another wave (its batch and cut-over on the service too).
    Reschedule {
        #[command(flatten)]
        common: Common,
        /// The wave they go to (`mw-YYYY-MM-DD`).
        #[arg(long, value_name = "WAVE")]
        to: String,
        /// Overfill the wave.
        #[arg(long)]
        force: bool,
    },
    /// Approve the skipped items of mailboxes graded Investigate, so they can complete.
    Approve(Common),
}

pub fn run(cli: &Cli, command: &Command) -> anyhow::Result<i32> {
    let (kind, common, force, to) = match command {
        Command::Show { address, json } => return show(cli, address, *json),
        Command::Hold(c) => (ActionKind::Hold, c, false, None),
        Command::Release(c) => (ActionKind::Release, c, false, None),
        Command::Retry { common, force } => (ActionKind::Retry, common, *force, None),
        Command::Skip(c) => (ActionKind::Skip, c, false, None),
        Command::Reschedule { common, to, force } => {
            (ActionKind::Reschedule, common, *force, Some(to))
        }
        Command::Approve(c) => (ActionKind::Approve, c, false, None),
    };
    let addresses = actions::addresses(common)?;
    let facts = actions::facts_of(&cli.state, &addresses)?;
    let (facts, split) = actions::keep_groups_whole(
        &cli.state,
        kind,
        facts,
        actions::Groups::of(common),
        force,
        common.options.json,
    )?;
    let target = match to {
        Some(name) => {
            let arriving = facts.iter().filter(|f| &f.wave != name).count();
            Some(actions::target_wave(cli, name, arriving, force)?)
        }
        None => None,
    };
    actions::act(
        cli,
        kind,
        facts,
        &common.options,
        force,
        target.as_ref(),
        &split,
    )
}

fn show(cli: &Cli, address: &str, json: bool) -> anyhow::Result<i32> {
    let store = Store::open_read_only(&cli.state)?;
    let r = store.mailbox_report(address)?;
    let acts = store.actions_of(r.id)?;
    let group = store.group_members(r.id)?;
    if json {
        let mut v = serde_json::to_value(&r)?;
        v["actions"] = serde_json::to_value(&acts)?;
        v["group_members"] = serde_json::to_value(&group)?;
        outln!("{}", serde_json::to_string_pretty(&v)?);
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
            "; service account, not grouped".to_string()
        } else if group.is_empty() {
            String::new()
        } else {
            // An action on it alone would leave these behind (see --with-group, --split).
            format!(", with {}", crate::format::few(&group, 5))
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
    if !acts.is_empty() {
        outln!("  actions:");
        for a in &acts {
            outln!(
                "    {}  {}{} by {}{}{}{}  -> {}",
                a.at,
                a.kind.name(),
                if a.silent { " without notice" } else { "" },
                a.by,
                a.target_wave
                    .as_deref()
                    .map(|w| format!(" to {w}"))
                    .unwrap_or_default(),
                a.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                a.split
                    .as_deref()
                    .map(|g| format!(", split from its group: {g}"))
                    .unwrap_or_default(),
                a.outcome.as_deref().unwrap_or("pending")
            );
        }
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
