//! `mailwave analyze`: how fast the moves went and what held them up, from the figures a run keeps.

use super::{Cli, exit};
use crate::analytics::{self, By};
use crate::store::Store;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this wave's moves.
    #[arg(long, value_name = "ID")]
    pub wave: Option<String>,
    /// Group by wave, source database or size band.
    #[arg(long, value_enum, default_value = "wave")]
    pub by: By,
    /// The figures as JSON (rates in GB/h, durations in minutes or hours as named, shares 0-1).
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<i32> {
    let store = Store::open_read_only(&cli.state)?;
    if let Some(w) = &args.wave {
        super::wave_named(&store, w, "--wave: ")?;
    }
    let analysis = analytics::analyze(&store, args.by, args.wave.as_deref())?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&analysis)?);
    } else {
        out!("{}", analytics::text(&analysis));
    }
    Ok(exit::OK)
}
