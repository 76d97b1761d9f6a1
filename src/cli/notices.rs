//! `mailwave notices preview|status`: what a user got and will be sent, what has gone so far; and
//! what each action command says its users will be told, and when.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::{BadInput, Cli, exit};
use crate::config::Config;
use crate::engine::notices::follow_up::{self, Kind, Standing, Told};
use crate::engine::notices::{self, template::Templates};
use crate::store::actions::{ActionKind, MailboxFacts, WaveInfo};
use crate::store::{State, Store};

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
    let now = cli.clock().now();
    if !n.enabled {
        outln!(
            "(notices are not enabled in {}: nothing is sent)\n",
            cli.config.display()
        );
    }
    let unset = notices::unset_placeholders(n, &templates);
    if !unset.is_empty() {
        outln!(
            "warning: the templates use {}, not set in {}: users read them empty\n",
            unset.join(" and "),
            cli.config.display()
        );
    }
    let history = store.notices_of(due.mailbox_id)?;
    // A sent notice is shown with the date it told, whatever the plan says now.
    let windows: HashMap<Timestamp, (String, Timestamp)> = store
        .waves()?
        .into_iter()
        .map(|w| (w.window_start, (w.name, w.window_end)))
        .collect();
    let told_window = |start: Option<Timestamp>| {
        start.map(|s| match windows.get(&s) {
            Some((name, end)) => (name.clone(), s, *end),
            None => (wave.name.clone(), s, s),
        })
    };
    let fill = |start: Option<Timestamp>, old: Option<Timestamp>| {
        let w = told_window(start);
        notices::values(
            n,
            tz,
            &due,
            w.as_ref().map(|(name, s, e)| (name.as_str(), *s, *e)),
            old,
        )
    };
    let mut cases: Vec<(String, &str, Option<&str>, notices::template::Values)> = Vec::new();
    for row in &history {
        let base = row.kind.split(':').next().unwrap_or(&row.kind);
        let when = match row.status.as_str() {
            "sent" => format!("sent {}", local(row.at, tz)),
            "sending" | "uncertain" => format!(
                "may have gone {} (the call was cut off; never sent again)",
                local(row.at, tz)
            ),
            "retry" => format!(
                "to be tried again ({})",
                row.reason.as_deref().unwrap_or("-")
            ),
            other => format!(
                "not sent: {other} {} ({})",
                local(row.at, tz),
                row.reason.as_deref().unwrap_or("-")
            ),
        };
        cases.push((
            format!("{}{when}", label(&row.kind)),
            base,
            row.sender.as_deref(),
            fill(row.told_start, row.old_start),
        ));
    }
    let sent_before = |kind: &str| {
        history
            .iter()
            .any(|r| r.kind == kind && r.told_start == Some(wave.window_start))
    };
    // The "before" notices go only to a mailbox still moving (not held, skipped, failed for
    // good or moved), and of those already due only the latest goes: it supersedes the others.
    let facts = store.mailbox_facts(&due.address)?;
    let stopped = facts.as_ref().and_then(|f| {
        let moving = matches!(
            f.state,
            State::Planned | State::Submitted | State::Syncing | State::Synced
        ) || (f.state == State::Failed
            && matches!(
                f.failure_class.as_deref(),
                Some("transient" | "needs_approval")
            ));
        (!moving).then(|| f.state.name())
    });
    let latest_due = n
        .before
        .iter()
        .filter(|off| wave.window_start - **off <= now)
        .min()
        .copied();
    for off in &n.before {
        let kind = notices::before_kind(*off);
        if sent_before(&kind) {
            continue;
        }
        let at = wave.window_start - *off;
        let when = match (stopped, latest_due) {
            (Some(state), _) => format!(
                "not sent while the mailbox is {state} (due {})",
                local(at, tz)
            ),
            (None, Some(latest)) if at <= now && *off != latest => format!(
                "not sent: superseded by the {} notice (due {})",
                notices::offset_label(latest),
                local(at, tz)
            ),
            (None, _) if at <= now => format!("due since {}", local(at, tz)),
            (None, _) => format!("goes {}", local(at, tz)),
        };
        cases.push((
            format!("{}{when}", label(&kind)),
            "before",
            None,
            fill(Some(wave.window_start), None),
        ));
    }
    if n.after && !history.iter().any(|r| r.kind == "after") {
        cases.push((
            "after notice: once the mailbox has moved".into(),
            "after",
            None,
            fill(Some(wave.window_start), None),
        ));
    }
    // What a change owes this user now, or what a hold would send them.
    let owed = store
        .owed_follow_ups(Some(i64::MAX), &[due.mailbox_id], now)?
        .into_iter()
        .next();
    let pending = owed.as_ref().and_then(|o| {
        let f = follow_up::owed(o, n.correction_lead, now)?;
        Some((f, Told::of(o.told_id, o.told_start), o.silenced))
    });
    match pending {
        Some((_, _, true)) => outln!(
            "(the latest change to this mailbox was made with --no-notice: it is not told)\n"
        ),
        Some((f, told, false)) => cases.push((
            format!(
                "{}due {}, unless the told date holds again by then",
                label(f.kind.name()),
                if f.at <= now {
                    "now".to_string()
                } else {
                    local(f.at, tz)
                }
            ),
            f.kind.name(),
            None,
            fill(f.to, told.start),
        )),
        // Told "a date we will confirm" and still off: a release re-confirms the date.
        None if store
            .told(&[due.mailbox_id])?
            .get(&due.mailbox_id)
            .is_some_and(|(_, start)| *start == 0) =>
        {
            cases.push((
                format!(
                    "{}if the mailbox is released (it goes at once)",
                    label("reconfirm")
                ),
                "reconfirm",
                None,
                fill(Some(wave.window_start), None),
            ))
        }
        None if !n.before.is_empty() => cases.push((
            format!(
                "{}if the date changes (here: the mailbox held; it goes {} before the told date)",
                label("correction"),
                notices::offset_label(n.correction_lead)
            ),
            "correction",
            None,
            fill(None, Some(wave.window_start)),
        )),
        None => {}
    }
    let pool_sender = n
        .senders
        .first()
        .map(String::as_str)
        .unwrap_or("(no sender)");
    let mut shown = 0;
    for (when, kind, sender, values) in cases {
        match templates.render(kind, due.organisation.as_deref(), &values) {
            Some((subject, body, html)) => {
                shown += 1;
                outln!("--- {when}");
                outln!("From:     {}", sender.unwrap_or(pool_sender));
                if let Some(r) = &n.reply_to {
                    outln!("Reply-To: {r}");
                }
                outln!("To:       {}", due.address);
                outln!("Subject:  {subject}{}", if html { "   (html)" } else { "" });
                outln!("\n{body}");
            }
            None => outln!(
                "--- {when}: no template ({}/{kind}.txt or .html)\n",
                n.templates.display()
            ),
        }
    }
    Ok(if shown > 0 { exit::OK } else { exit::BAD_INPUT })
}

/// A notice's kind as the preview heads it: "before notice, 7d: ", "correction notice: ".
fn label(kind: &str) -> String {
    match kind.split_once(':') {
        Some((base, offset)) => format!("{base} notice, {offset} before the window: "),
        None if kind == "reconfirm" => "re-confirmation: ".into(),
        None => format!("{kind} notice: "),
    }
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

use crate::format::local;

/// Where a mailbox stands after `kind`, as its user would be told it: the run decides a release's
/// wave when it applies it (its own while that window has not ended, else a later one), so a
/// window already over is predicted as "a later wave" (whose correction goes at once anyway).
fn standing_after(
    kind: ActionKind,
    f: &MailboxFacts,
    target: Option<&WaveInfo>,
    own: Option<&WaveInfo>,
    now: Timestamp,
) -> Standing {
    let moving = |w: &WaveInfo| Standing::Moving {
        start: w.window_start,
        end: w.window_end,
    };
    let own_or_later = || match own {
        Some(w) if now < w.window_end => moving(w),
        _ => Standing::Moving {
            start: Timestamp::MAX,
            end: Timestamp::MAX,
        },
    };
    match kind {
        ActionKind::Hold | ActionKind::Skip => Standing::Off,
        ActionKind::Reschedule if f.state == State::Held => Standing::Off,
        ActionKind::Reschedule => target.map_or_else(own_or_later, moving),
        ActionKind::Retry | ActionKind::Release | ActionKind::Approve => own_or_later(),
    }
}

/// What the users of `mailboxes` will be told of `kind`, and when, in lines for the operator.
pub(super) fn what_users_hear(
    cli: &Cli,
    kind: ActionKind,
    mailboxes: &[MailboxFacts],
    target: Option<&WaveInfo>,
    silent: bool,
) -> anyhow::Result<Vec<String>> {
    let config = if cli.config.exists() {
        Config::load(&cli.config)?
    } else {
        Config::default()
    };
    let n = &config.notices;
    if !n.enabled {
        return Ok(vec![
            "notices: users are told nothing ([notices] enabled = false)".into(),
        ]);
    }
    let store = Store::open_read_only(&cli.state)?;
    let ids: Vec<i64> = mailboxes.iter().map(|f| f.id).collect();
    let told = store.told(&ids)?;
    let tz = store
        .plan_timezone()?
        .and_then(|z| TimeZone::get(&z).ok())
        .unwrap_or_else(|| config.schedule.timezone.clone());
    let now = cli.clock().now();
    let mut waves: HashMap<String, Option<WaveInfo>> = HashMap::new();
    let (mut untold, mut holds, mut reconfirm) = (0u64, 0u64, 0u64);
    let mut corrections: BTreeMap<Timestamp, u64> = BTreeMap::new();
    for f in mailboxes {
        let Some(&(id, start)) = told.get(&f.id) else {
            untold += 1;
            continue;
        };
        if !waves.contains_key(&f.wave) {
            waves.insert(f.wave.clone(), store.wave_info(&f.wave)?);
        }
        let own = waves.get(&f.wave).and_then(Option::as_ref);
        match follow_up::follow_up(
            Told::of(id, start),
            standing_after(kind, f, target, own, now),
            n.correction_lead,
            now,
        ) {
            None => holds += 1,
            Some(u) if u.kind == Kind::Reconfirm => reconfirm += 1,
            Some(u) => *corrections.entry(u.at).or_default() += 1,
        }
    }
    let th = crate::format::thousands;
    let mut lines = Vec::new();
    let told_of_it = holds + reconfirm + corrections.values().sum::<u64>();
    if silent {
        lines.push(if told_of_it == 0 {
            "notices: --no-notice (the audit records it): nobody here was told a date yet; their \"before\" notices go as usual".to_string()
        } else {
            format!(
                "notices: --no-notice (the audit records it): nothing is sent about this change to the {} user(s) told a date; their \"before\" notices go as usual",
                th(told_of_it)
            )
        });
        return Ok(lines);
    }
    let unless = match kind {
        ActionKind::Hold | ActionKind::Skip => " unless released before",
        ActionKind::Reschedule => " unless moved back before",
        _ => "",
    };
    for (at, count) in &corrections {
        lines.push(if *at <= now {
            format!(
                "notices: {} user(s) will be told of the change at once (less than {} before their date)",
                th(*count),
                notices::offset_label(n.correction_lead)
            )
        } else {
            format!(
                "notices: {} user(s) will be told of the change at {}{unless}",
                th(*count),
                local(*at, &tz)
            )
        });
    }
    if reconfirm > 0 {
        lines.push(format!(
            "notices: {} user(s) told their date would be confirmed will be sent their date at once",
            th(reconfirm)
        ));
    }
    if holds > 0 {
        lines.push(format!(
            "notices: nothing is sent to {} user(s): the date they were told holds",
            th(holds)
        ));
    }
    if untold > 0 {
        lines.push(format!(
            "notices: {} user(s) not yet told a date are told nothing now",
            th(untold)
        ));
    }
    Ok(lines)
}
