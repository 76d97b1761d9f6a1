//! `mailwave report`: a Markdown report to hand on.

use std::path::PathBuf;

use super::{Cli, exit};
use crate::store::Store;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write the report here instead of printing it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<i32> {
    let store = Store::open_read_only(&cli.state)?;
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
