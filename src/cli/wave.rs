//! `mailwave wave hold|release|reschedule`: the operator's actions on whole waves, one action (and
//! one audit event) per mailbox.

use std::collections::HashMap;

use super::actions::{self, Options};
use super::{BadInput, Cli};
use crate::config::Config;
use crate::engine::policy::{self, ActionStep};
use crate::plan::Calendar;
use crate::store::Store;
use crate::store::actions::{ActionKind, MailboxFacts};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Hold every mailbox of the waves that can still be held.
    Hold(WaveArgs),
    /// Release every held mailbox of the waves.
    Release(WaveArgs),
    /// Move a wave's mailboxes to another day's window (the wave is made if the plan has none
    /// that day).
    Reschedule {
        #[command(flatten)]
        wave: WaveArgs,
        /// The day, YYYY-MM-DD, in the plan's time zone.
        #[arg(long, value_name = "DATE")]
        to: String,
        /// Overfill that day's window.
        #[arg(long)]
        force: bool,
    },
}

#[derive(clap::Args, Debug)]
pub struct WaveArgs {
    /// Wave ids (`mw-YYYY-MM-DD`).
    #[arg(value_name = "WAVE", required = true)]
    pub waves: Vec<String>,
    #[command(flatten)]
    pub options: Options,
}

/// The waves' mailboxes for which `kind` is not refused (the rest are left as they are).
fn eligible(cli: &Cli, waves: &[String], kind: ActionKind) -> anyhow::Result<Vec<MailboxFacts>> {
    let store = Store::open_read_only(&cli.state)?;
    let mut out = Vec::new();
    for w in waves {
        super::wave_named(&store, w, "")?;
        for f in store.wave_facts(w)? {
            let class = f
                .failure_class
                .as_deref()
                .and_then(crate::store::FailureClass::from_name);
            let ok = match kind {
                // A wave's release lets its held mailboxes go; skipped ones stay skipped.
                ActionKind::Release => f.state == crate::store::State::Held,
                _ => !matches!(
                    policy::action_step(kind, f.state, class, f.has_request, false, false),
                    ActionStep::Refuse(_)
                ),
            };
            if ok {
                out.push(f);
            }
        }
    }
    if out.is_empty() {
        return Err(BadInput(format!(
            "no mailbox of {} can be {}",
            waves.join(", "),
            kind.name()
        ))
        .into());
    }
    Ok(out)
}

pub fn run(cli: &Cli, command: &Command) -> anyhow::Result<i32> {
    match command {
        Command::Hold(w) => {
            let facts = eligible(cli, &w.waves, ActionKind::Hold)?;
            // A delegation group is planned into one wave: a wave's action keeps it whole.
            actions::act(
                cli,
                ActionKind::Hold,
                facts,
                &w.options,
                false,
                None,
                &HashMap::new(),
            )
        }
        Command::Release(w) => {
            let facts = eligible(cli, &w.waves, ActionKind::Release)?;
            actions::act(
                cli,
                ActionKind::Release,
                facts,
                &w.options,
                false,
                None,
                &HashMap::new(),
            )
        }
        Command::Reschedule { wave, to, force } => {
            let date: jiff::civil::Date = to
                .parse()
                .map_err(|_| BadInput(format!("--to: {to:?} is not a date (YYYY-MM-DD)")))?;
            let config = Config::load(&cli.config)?;
            let calendar = Calendar::from_schedule(&config.schedule)?;
            let slot = calendar.slot(date)?.ok_or_else(|| {
                BadInput(format!(
                    "--to: {date} has no cut-over window (a blackout, a bank holiday, or no capacity that day)"
                ))
            })?;
            let facts = eligible(cli, &wave.waves, ActionKind::Reschedule)?;
            let name = format!("mw-{date}");
            if let Some(existing) = Store::open_read_only(&cli.state)?.wave_info(&name)? {
                let arriving = facts.iter().filter(|f| f.wave != name).count();
                actions::check_target(cli, &existing, arriving, *force)?;
            } else if cli.clock().now() >= slot.start.timestamp() {
                return Err(
                    BadInput(format!("--to: the window of {date} has already opened")).into(),
                );
            } else if facts.len() as u64 > slot.capacity && !*force {
                return Err(BadInput(format!(
                    "--to: {date}'s window takes {}; {} would overfill it (add --force to do it anyway)",
                    slot.capacity,
                    facts.len()
                ))
                .into());
            }
            let target = if wave.options.dry_run {
                Store::open_read_only(&cli.state)?
                    .wave_info(&name)?
                    .unwrap_or(crate::store::actions::WaveInfo {
                        id: 0,
                        name: name.clone(),
                        capacity: slot.capacity as i64,
                        window_start: slot.start.timestamp(),
                        window_end: slot.end.timestamp(),
                        mailboxes: 0,
                    })
            } else {
                let _lock =
                    crate::store::lock::RunLock::acquire(&cli.state, "mailwave wave reschedule");
                Store::open(&cli.state)?.ensure_wave(&slot)?
            };
            actions::act(
                cli,
                ActionKind::Reschedule,
                facts,
                &wave.options,
                *force,
                Some(&target),
                &HashMap::new(),
            )
        }
    }
}
