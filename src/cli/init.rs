//! `mailwave init`: a commented configuration and the folders mailwave uses.

use std::path::PathBuf;

use super::{BadInput, Cli, exit};
use crate::config::{DEFAULT_STATE, TEMPLATE};

const BANK_HOLIDAYS: &str = include_str!("../../schedules/uk-bank-holidays.json");

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to create mailwave.toml, schedules/ and state/ with the state database.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<i32> {
    let config = args.dir.join("mailwave.toml");
    if config.exists() {
        return Err(BadInput(format!(
            "{} already exists; it was not changed (remove it first to start again)",
            config.display()
        ))
        .into());
    }
    crate::private::create_dir(&args.dir.join("schedules"))?;
    crate::private::create_dir(&args.dir.join("state"))?;
    let holidays = args.dir.join("schedules/uk-bank-holidays.json");
    if !holidays.exists() {
        crate::private::write(&holidays, BANK_HOLIDAYS)?;
    }
    let notices = args.dir.join("schedules/notices");
    if !notices.exists() {
        crate::private::create_dir(&notices)?;
        for (name, text) in crate::engine::notices::template::STARTERS {
            crate::private::write(&notices.join(name), text)?;
        }
    }
    crate::private::write(&config, TEMPLATE)?;
    // The project's one database, where every later command finds it from any folder.
    let state = cli
        .state_option
        .clone()
        .unwrap_or_else(|| args.dir.join(DEFAULT_STATE));
    drop(crate::store::Store::create(&state)?);
    outln!("wrote {}", config.display());
    outln!(
        "wrote starter notice templates in {} ([notices] is off until you enable it)",
        notices.display()
    );
    outln!(
        "created {}/ and the state database {}",
        args.dir.join("schedules").display(),
        super::project::absolute(&state).display()
    );
    outln!("next: edit [tenant] and [migration], then `mailwave inventory import mailboxes.csv`");
    Ok(exit::OK)
}
