//! `[state]`: where the state database is.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Ctx};

/// Where the state database is, beside the config file, unless `[state] path` says otherwise.
pub const DEFAULT_STATE: &str = "state/mailwave.db";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    path: Option<Spanned<String>>,
}

/// `[state] path` against the config's folder, or the default beside it.
pub(super) fn state_path(cx: &Ctx, raw: &RawState, base: &Path) -> Result<PathBuf, ConfigError> {
    match &raw.path {
        None => Ok(base.join(DEFAULT_STATE)),
        Some(p) if p.get_ref().trim().is_empty() => Err(cx.invalid(
            p.span(),
            "state.path",
            format!("is empty: name the state database file (default {DEFAULT_STATE:?})"),
        )),
        Some(p) => Ok(base.join(p.get_ref())),
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::super::Config;

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let c = Config::parse(
            Path::new("/srv/mw/mailwave.toml"),
            "[schedule]\nbank_holidays = \"schedules/uk.json\"\n",
        )
        .unwrap();
        assert_eq!(
            c.schedule.bank_holidays.unwrap(),
            PathBuf::from("/srv/mw/schedules/uk.json")
        );
        assert_eq!(c.state_path, PathBuf::from("/srv/mw/state/mailwave.db"));
        let c = Config::parse(
            Path::new("/srv/mw/mailwave.toml"),
            "[state]\npath = \"db/estate.db\"\n",
        )
        .unwrap();
        assert_eq!(c.state_path, PathBuf::from("/srv/mw/db/estate.db"));
        let e = Config::parse(
            Path::new("/srv/mw/mailwave.toml"),
            "\n[state]\npath = \" \"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 3") && e.contains("state.path"), "{e}");
    }

    #[test]
    fn the_state_path_is_found_while_another_key_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mailwave.toml");
        std::fs::write(
            &file,
            "[schedule]\ncutover_window = \"25:00-06:00\"\n[state]\npath = \"db/x.db\"\n",
        )
        .unwrap();
        assert!(Config::load(&file).is_err());
        assert_eq!(
            Config::state_path_of(&file).unwrap(),
            dir.path().join("db/x.db")
        );
        std::fs::write(&file, "[state\n").unwrap();
        let e = Config::state_path_of(&file).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
