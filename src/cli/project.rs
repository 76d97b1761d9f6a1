//! Where a command finds its project: one config file, and one state database beside it, whatever
//! the working directory (cron and systemd run from `/`).
//!
//! The database is `state/mailwave.db` beside the config, or the config's `[state] path` (relative
//! to the config's folder, like every path in it), or `--state` / `MAILWAVE_STATE` (the operator's
//! own, relative to the working directory). Only the commands that start a project (`init`, the
//! first `inventory import`) create one; every other command that finds none says where it
//! looked and how to point at the right one.

use std::path::{Path, PathBuf};

use super::{BadInput, Cli, Command};
use crate::config::{Config, DEFAULT_STATE};

/// How the state path was chosen, for the message when nothing is there.
enum Source {
    Option,
    ConfigKey,
    BesideConfig,
}

/// What a command does with the state database.
#[derive(PartialEq)]
enum Need {
    /// Nothing (`sim serve`), or its own (`init`, `demo`).
    Nothing,
    /// It must exist.
    Existing,
    /// It may create it (the first `inventory import`).
    MayCreate,
}

fn need(command: &Command) -> Need {
    match command {
        Command::Init(_) | Command::Demo(_) | Command::Sim(_) => Need::Nothing,
        Command::Inventory(super::inventory::Command::Import(_)) => Need::MayCreate,
        _ => Need::Existing,
    }
}

/// The commands that only read the estate and the config's zone (and so do not load it whole).
fn reads_only(command: &Command) -> bool {
    matches!(
        command,
        Command::Status(_)
            | Command::Watch(_)
            | Command::Report(_)
            | Command::Analyze(_)
            | Command::Inventory(super::inventory::Command::Show { .. })
            | Command::Mailbox(super::mailbox::Command::Show { .. })
    )
}

/// A path as the operator should read it: absolute and without `..`, whether or not it exists yet.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    let Ok(full) = std::path::absolute(path) else {
        return path.to_path_buf();
    };
    // The longest part that exists is resolved by the system; the rest is joined on.
    let mut missing = Vec::new();
    let mut at = full.as_path();
    loop {
        if let Ok(real) = std::fs::canonicalize(at) {
            return missing.iter().rev().fold(real, |p, name| p.join(name));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name);
                at = parent;
            }
            _ => return full,
        }
    }
}

/// Resolves `cli.state` for the command: the database it works on, refusing (exit 2, nothing
/// created) when it must exist and does not, or when a database would be started with no project
/// around it.
pub(crate) fn locate(cli: &mut Cli) -> anyhow::Result<()> {
    let need = need(&cli.command);
    if need == Need::Nothing {
        return Ok(());
    }
    let config_exists = cli.config.is_file();
    // The commands that only look read on with a config that has a mistake in it (an operator
    // looks at the estate while fixing it), but never in silence: the commands that act refuse
    // the same file.
    if config_exists
        && reads_only(&cli.command)
        && let Err(e) = Config::load(&cli.config)
    {
        errln!(
            "mailwave: warning: {e} (this command reads on; plan, run, preflight and the actions refuse the file until it is fixed)"
        );
    }
    let (path, source) = match &cli.state_option {
        Some(p) => (p.clone(), Source::Option),
        None if config_exists => {
            let path = Config::state_path_of(&cli.config)?;
            let beside = cli
                .config
                .parent()
                .unwrap_or(Path::new(""))
                .join(DEFAULT_STATE);
            let source = if path == beside {
                Source::BesideConfig
            } else {
                Source::ConfigKey
            };
            (path, source)
        }
        None => (
            cli.config
                .parent()
                .unwrap_or(Path::new(""))
                .join(DEFAULT_STATE),
            Source::BesideConfig,
        ),
    };
    let exists = path.exists();
    let config = absolute(&cli.config);
    let pointers = "run the command in the project's folder, or point at it from anywhere with \
                    --config /path/to/mailwave.toml (or MAILWAVE_CONFIG); --state FILE (or \
                    MAILWAVE_STATE) names the database itself";
    if need == Need::Existing && !exists {
        let looked = match source {
            Source::Option => "named by --state or MAILWAVE_STATE".to_string(),
            Source::ConfigKey => format!("the [state] path of {}", config.display()),
            Source::BesideConfig if config_exists => {
                format!("beside the config {}", config.display())
            }
            Source::BesideConfig => format!(
                "beside the config {}, which does not exist",
                config.display()
            ),
        };
        return Err(BadInput(format!(
            "no state database at {} ({looked}); {pointers}. A new project starts with `mailwave init`, \
             its database with `mailwave inventory import`",
            absolute(&path).display()
        ))
        .into());
    }
    if need == Need::MayCreate && !exists && !config_exists && cli.state_option.is_none() {
        return Err(BadInput(format!(
            "no config at {}, so no project to start a state database in; nothing was created. \
             Start one with `mailwave init`, or {pointers}",
            config.display()
        ))
        .into());
    }
    cli.state = path;
    Ok(())
}
