//! `mailwave notices preview|status`: what a user will be sent, and what has gone so far.

use std::collections::BTreeMap;

use super::{BadInput, Cli, exit};
use crate::config::Config;
use crate::engine::notices::{self, template::Templates};
use crate::store::Store;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Render the notices one user will get (from the templates and the plan as they stand).
    Preview {
        /// The user's mailbox address.
        address: String,
    },
    /// Notices due, sent, failed, dropped and uncertain, per wave and per sender.
    Status {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cli: &Cli, command: &Command) -> anyhow::Result<i32> {
    match command {
        Command::Preview { address } => preview(cli, address),
        Command::Status { json } => status(cli, *json),
    }
}

fn preview(cli: &Cli, address: &str) -> anyhow::Result<i32> {
    let config = Config::load(&cli.config)?;
    let n = &config.notices;
    let templates =
        Templates::load(&n.templates, &[]).map_err(|e| BadInput(format!("notice template {e}")))?;
    let store = Store::open_read_only(&cli.state)?;
    let Some((due, wave)) = store.notice_subject(address)? else {
        return Err(BadInput(format!(
            "{address} is not in the plan (see `mailwave mailbox show`)"
        ))
        .into());
    };
    let tz = &config.schedule.timezone;
    let window = Some((wave.name.as_str(), wave.window_start, wave.window_end));
    if !n.enabled {
        outln!(
            "(notices are not enabled in {}: nothing is sent)\n",
            cli.config.display()
        );
    }
    let from = n
        .senders
        .first()
        .map(String::as_str)
        .unwrap_or("(no sender)");
    let mut shown = 0;
    let mut cases: Vec<(String, &str, crate::engine::notices::template::Values)> = n
        .before
        .iter()
        .map(|off| {
            (
                format!(
                    "{} before the window, {}",
                    notices::offset_label(*off),
                    crate::format::local(wave.window_start - *off, tz)
                ),
                "before",
                notices::values(n, tz, &due, window, None),
            )
        })
        .collect();
    if n.after {
        cases.push((
            "after the move".into(),
            "after",
            notices::values(n, tz, &due, window, None),
        ));
    }
    if !n.before.is_empty() {
        cases.push((
            "if the date changes (here: the mailbox held)".into(),
            "correction",
            notices::values(n, tz, &due, None, Some(wave.window_start)),
        ));
    }
    for (when, kind, values) in cases {
        match templates.render(kind, due.organisation.as_deref(), &values) {
            Some((subject, body, html)) => {
                shown += 1;
                outln!("--- {kind} notice: {when}");
                outln!("From:     {from}");
                if let Some(r) = &n.reply_to {
                    outln!("Reply-To: {r}");
                }
                outln!("To:       {}", due.address);
                outln!("Subject:  {subject}{}", if html { "   (html)" } else { "" });
                outln!("\n{body}");
            }
            None => outln!(
                "--- {kind} notice: no template ({}/{kind}.txt or .html)\n",
                n.templates.display()
            ),
        }
    }
    Ok(if shown > 0 { exit::OK } else { exit::BAD_INPUT })
}

fn status(cli: &Cli, json: bool) -> anyhow::Result<i32> {
    let store = Store::open_read_only(&cli.state)?;
    let counts = store.notice_counts()?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&counts)?);
        return Ok(exit::OK);
    }
    if counts.is_empty() {
        outln!("no notice has been due yet ([notices] enabled = true, then `mailwave run`)");
        return Ok(exit::OK);
    }
    const STATUSES: [&str; 6] = ["sent", "sending", "retry", "failed", "dropped", "uncertain"];
    let mut by_wave: BTreeMap<(&str, &str), [u64; 6]> = BTreeMap::new();
    let mut by_sender: BTreeMap<&str, [u64; 6]> = BTreeMap::new();
    for c in &counts {
        let Some(i) = STATUSES.iter().position(|s| *s == c.status) else {
            continue;
        };
        by_wave.entry((&c.wave, &c.kind)).or_default()[i] += c.count;
        if !c.sender.is_empty() {
            by_sender.entry(&c.sender).or_default()[i] += c.count;
        }
    }
    let head = |first: &str| {
        format!(
            "{first:<30} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
            "sent", "sending", "retry", "failed", "dropped", "uncertain"
        )
    };
    let row = |name: String, n: &[u64; 6]| {
        format!(
            "{name:<30} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
            n[0], n[1], n[2], n[3], n[4], n[5]
        )
    };
    outln!("{}", head("wave / notice"));
    for ((wave, kind), n) in &by_wave {
        outln!("{}", row(format!("{wave} {kind}"), n));
    }
    outln!("\n{}", head("sender"));
    for (sender, n) in &by_sender {
        outln!("{}", row(sender.to_string(), n));
    }
    outln!(
        "\nsending: a run was sending it (a crash leaves it for the next run to mark uncertain); \
         dropped: too late (the window opened) or superseded by a later notice; uncertain: a \
         call cut off, never sent again"
    );
    Ok(exit::OK)
}
