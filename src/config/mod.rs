//! `mailwave.toml`: the operator's configuration, one file per section; each holds the section's
//! public form, the form as written, its defaults and its validation together.
//!
//! Every value mailwave validates itself is read as `toml::Spanned` so that an error can name the file,
//! the line and the key, the way an operator fixing the file needs it.

mod endpoints;
mod licences;
mod migration;
mod notices;
mod notify;
mod run;
mod schedule;
mod state;
mod tenant;
mod window;

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

pub use endpoints::Endpoints;
pub use licences::Licences;
pub use migration::Migration;
pub use notices::Notices;
pub use notify::Notify;
pub use run::{Collect, DcsApproval, Run};
pub use schedule::Schedule;
pub use state::DEFAULT_STATE;
pub use tenant::{Tenant, valid_tenant};
pub use window::Window;

/// Sets `[endpoints] base` from the environment, over the file (rehearsals).
pub const ENDPOINTS_BASE_ENV: &str = "MAILWAVE_ENDPOINTS_BASE";

/// The commented template `mailwave init` writes.
pub(crate) const TEMPLATE: &str = include_str!("template.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the configuration: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
    /// An environment variable that stands in for a key (`MAILWAVE_ENDPOINTS_BASE`).
    #[error("{name}: {message}")]
    Env { name: &'static str, message: String },
    #[error("{path}, line {line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from; relative paths inside it are resolved against its folder.
    pub path: PathBuf,
    pub tenant: Tenant,
    pub endpoints: Endpoints,
    pub migration: Migration,
    pub schedule: Schedule,
    pub run: Run,
    pub notify: Notify,
    pub notices: Notices,
    pub licences: Licences,
    /// The state database: `[state] path`, or `state/mailwave.db`, beside this file.
    pub state_path: PathBuf,
}

/// A notice offset as written: "7d", "36h", "90m".
pub(crate) fn parse_offset(text: &str) -> Option<jiff::SignedDuration> {
    const MOST: jiff::SignedDuration = jiff::SignedDuration::from_hours(24 * 60);
    let d = match text.strip_suffix('d') {
        // The day count is range-checked before it is turned into hours: "999999999999999d" is
        // refused, not multiplied past the end of a duration.
        Some(days) => match days.trim().parse::<i64>().ok()? {
            n @ 1..=60 => jiff::SignedDuration::from_hours(24 * n),
            _ => return None,
        },
        None => text.parse::<jiff::SignedDuration>().ok()?,
    };
    (d.is_positive() && d <= MOST).then_some(d)
}

/// A mail address as a sender list or reply-to holds one: one `@`, something on each side, no
/// spaces or separators.
pub(crate) fn plausible_address(a: &str) -> bool {
    let mut parts = a.split('@');
    matches!((parts.next(), parts.next(), parts.next()), (Some(l), Some(d), None)
        if !l.is_empty() && d.contains('.') && !a.chars().any(|c| c.is_whitespace() || c.is_control() || ",;<>\"\u{FFFD}".contains(c)))
}

impl Default for Config {
    fn default() -> Self {
        Config {
            path: PathBuf::from("mailwave.toml"),
            tenant: Tenant::default(),
            endpoints: Endpoints::default(),
            migration: Migration::default(),
            schedule: Schedule::default(),
            run: Run::default(),
            notify: Notify::default(),
            notices: Notices::default(),
            licences: Licences::default(),
            state_path: PathBuf::from(DEFAULT_STATE),
        }
    }
}

/// The file as written; each section's raw form lives beside its parse.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    tenant: tenant::RawTenant,
    #[serde(default)]
    endpoints: endpoints::RawEndpoints,
    #[serde(default)]
    migration: migration::RawMigration,
    #[serde(default)]
    schedule: schedule::RawSchedule,
    #[serde(default)]
    run: run::RawRun,
    #[serde(default)]
    notify: notify::RawNotify,
    #[serde(default)]
    notices: notices::RawNotices,
    #[serde(default)]
    licences: licences::RawLicences,
    #[serde(default)]
    state: state::RawState,
}

/// A duration as the configuration writes it: "15m", "90s", "2h".
pub(crate) fn format_duration(d: jiff::SignedDuration) -> String {
    let s = d.as_secs();
    if s != 0 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s != 0 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn syntax(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    ConfigError::Syntax {
        path: path.to_path_buf(),
        line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
        message: e.message().trim().to_string(),
    }
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn invalid(&self, span: Range<usize>, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line: line_of(self.text, span.start),
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// A whole number from 0 to `max`.
    fn count(
        &self,
        v: &Option<Spanned<i64>>,
        key: &str,
        max: u64,
    ) -> Result<Option<u64>, ConfigError> {
        match v {
            None => Ok(None),
            Some(s) if *s.get_ref() < 0 || *s.get_ref() as u64 > max => Err(self.invalid(
                s.span(),
                key,
                format!("must be from 0 to {max}, got {}", s.get_ref()),
            )),
            Some(s) => Ok(Some(*s.get_ref() as u64)),
        }
    }

    /// A duration between `min` and `max`: every one mailwave adds to a time must stay far from
    /// the ends of the calendar.
    fn duration(
        &self,
        v: &Option<Spanned<String>>,
        key: &str,
        default: jiff::SignedDuration,
        (min, max): (jiff::SignedDuration, jiff::SignedDuration),
    ) -> Result<jiff::SignedDuration, ConfigError> {
        let Some(s) = v else {
            return Ok(default);
        };
        let d = s.get_ref().parse::<jiff::SignedDuration>().map_err(|_| {
            self.invalid(
                s.span(),
                key,
                format!(
                    "{:?} is not a duration (for example \"30m\", \"2h\", \"90s\")",
                    s.get_ref()
                ),
            )
        })?;
        if d < min || d > max {
            return Err(self.invalid(
                s.span(),
                key,
                format!(
                    "{:?} is out of range: from {} to {}",
                    s.get_ref(),
                    format_duration(min),
                    format_duration(max)
                ),
            ));
        }
        Ok(d)
    }

    /// A duration the run waits in real time (a timer, a socket), bounded as [`Ctx::duration`]
    /// and turned into the type those take here, once.
    fn real_duration(
        &self,
        v: &Option<Spanned<String>>,
        key: &str,
        default: std::time::Duration,
        bounds: (jiff::SignedDuration, jiff::SignedDuration),
    ) -> Result<std::time::Duration, ConfigError> {
        match v {
            None => Ok(default),
            // Bounded below by a positive minimum, so the absolute value is the value.
            Some(_) => Ok(self
                .duration(v, key, jiff::SignedDuration::ZERO, bounds)?
                .unsigned_abs()),
        }
    }

    /// A whole number from 1 to `max`.
    fn bounded(
        &self,
        v: &Option<Spanned<i64>>,
        key: &str,
        default: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        let n = self.positive(v, key, default)?;
        match v {
            Some(s) if n > max => {
                Err(self.invalid(s.span(), key, format!("must be at most {max}, got {n}")))
            }
            _ => Ok(n),
        }
    }

    fn positive(
        &self,
        v: &Option<Spanned<i64>>,
        key: &str,
        default: u64,
    ) -> Result<u64, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) if *s.get_ref() <= 0 => Err(self.invalid(
                s.span(),
                key,
                format!("must be 1 or more, got {}", s.get_ref()),
            )),
            Some(s) => Ok(*s.get_ref() as u64),
        }
    }

    /// An endpoint: https, or http to a loopback address (the simulator).
    fn url(
        &self,
        v: &Option<Spanned<String>>,
        key: &str,
        default: &str,
    ) -> Result<String, ConfigError> {
        match v {
            None => Ok(default.to_string()),
            Some(s) => {
                let u = s.get_ref().trim_end_matches('/');
                // The address is echoed without what may be a credential in it (user:password@).
                crate::http::check_endpoint(u).map_err(|m| {
                    self.invalid(s.span(), key, format!("{}: {m}", crate::http::shown(u)))
                })?;
                Ok(u.to_string())
            }
        }
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Config::parse(path, &text)?;
        // A rehearsal points every endpoint at `mailwave sim serve` without editing the file, and
        // then nothing may still go to a real tenant: the variable wins over the file's keys.
        if let Some(base) = std::env::var_os(ENDPOINTS_BASE_ENV).filter(|v| !v.is_empty()) {
            let base = base.to_string_lossy();
            let base = base.trim().trim_end_matches('/');
            crate::http::check_endpoint(base).map_err(|m| ConfigError::Env {
                name: ENDPOINTS_BASE_ENV,
                message: format!("{base:?}: {m}"),
            })?;
            config.endpoints = Endpoints::all_at(base);
        }
        Ok(config)
    }

    /// Only the state database's path from the file at `path`. Commands that need nothing else
    /// from the config (status, reports, an import) still find the project's database while some
    /// other key is being fixed.
    pub fn state_path_of(path: &Path) -> Result<PathBuf, ConfigError> {
        #[derive(Deserialize)]
        struct OnlyState {
            #[serde(default)]
            state: state::RawState,
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let raw: OnlyState = toml::from_str(&text).map_err(|e| syntax(path, &text, &e))?;
        let cx = Ctx { path, text: &text };
        state::state_path(&cx, &raw.state, path.parent().unwrap_or(Path::new("")))
    }

    /// Validates configuration text; `path` is used for messages and to resolve relative paths.
    /// Validates configuration text; `path` is used for messages and to resolve relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| syntax(path, text, &e))?;
        let cx = Ctx { path, text };
        let base = path.parent().unwrap_or(Path::new("."));
        // Sections are checked in this order, so that of two mistakes the same one is named.
        let tenant = Tenant::from_raw(&cx, raw.tenant, base)?;
        let endpoints = Endpoints::from_raw(&cx, raw.endpoints)?;
        let migration = Migration::from_raw(raw.migration);
        let schedule = Schedule::from_raw(&cx, raw.schedule, base)?;
        let run = Run::from_raw(&cx, raw.run)?;
        let notify = Notify::from_raw(&cx, &raw.notify)?;
        let notices = Notices::from_raw(&cx, raw.notices, base)?;
        raw.notify.check_senders(&cx, &notices)?;
        let licences = Licences::from_raw(&cx, raw.licences)?;
        let state_path = state::state_path(&cx, &raw.state, base)?;
        Ok(Config {
            path: path.to_path_buf(),
            state_path,
            tenant,
            endpoints,
            migration,
            schedule,
            run,
            notify,
            notices,
            licences,
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::config) fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("mailwave.toml"), text)
    }

    #[test]
    fn template_is_valid_and_matches_defaults() {
        let c = parse(TEMPLATE).unwrap();
        assert_eq!(c.schedule.weekday_capacity, 22_000);
        assert_eq!(c.schedule.weekend_capacity, 83_000);
        assert_eq!(c.schedule.cutover_window.to_string(), "20:00-06:00");
        assert!(c.schedule.cutover_window.crosses_midnight());
        assert_eq!(c.schedule.timezone_name, "Europe/London");
        assert_eq!(
            c.tenant.client_secret_env.as_deref(),
            Some("MAILWAVE_CLIENT_SECRET")
        );
        assert_eq!(c.endpoints.exchange, "https://outlook.office365.com");
        assert!(c.schedule.blackout.is_empty(), "an example, commented out");
        assert!(c.notices.quiet_hours.is_none(), "an example, commented out");
    }

    /// Every key the template sets (uncommented) holds the default, so that `mailwave init`
    /// writes what a missing key means; placeholders an operator replaces are named here.
    #[test]
    fn template_keys_hold_the_defaults() {
        const PLACEHOLDERS: &[&str] = &[
            "tenant.id",
            "tenant.client_id",
            "tenant.client_secret_env",
            "migration.remote_host_name",
            "migration.target_delivery_domain",
            "schedule.bank_holidays",
        ];
        let from_template = parse(TEMPLATE).unwrap();
        let default = Config::default();
        let field = |c: &Config, key: &str| -> Option<String> {
            let (s, r, n, l) = (&c.schedule, &c.run, &c.notices, &c.licences);
            Some(match key {
                "state.path" => format!("{:?}", c.state_path),
                "endpoints.authority" => c.endpoints.authority.clone(),
                "endpoints.exchange" => c.endpoints.exchange.clone(),
                "endpoints.graph" => c.endpoints.graph.clone(),
                "schedule.timezone" => format!("{} {:?}", s.timezone_name, s.timezone.iana_name()),
                "schedule.weekday_capacity" => s.weekday_capacity.to_string(),
                "schedule.weekend_capacity" => s.weekend_capacity.to_string(),
                "schedule.cutover_window" => s.cutover_window.to_string(),
                "schedule.prestage_days" => s.prestage_days.to_string(),
                "schedule.bank_holiday_division" => s.bank_holiday_division.clone(),
                "run.max_in_flight" => r.max_in_flight.to_string(),
                "run.requests_per_second" => r.requests_per_second.to_string(),
                "run.burst" => r.burst.to_string(),
                "run.max_parallel_calls" => r.max_parallel_calls.to_string(),
                "run.resume_attempts" => r.resume_attempts.to_string(),
                "run.resume_backoff" => format!("{:?}", r.resume_backoff),
                "run.dcs_approval" => format!("{:?}", r.dcs_approval),
                "run.prestage_poll" => format!("{:?}", r.prestage_poll),
                "run.cutover_poll" => format!("{:?}", r.cutover_poll),
                "run.cutover_margin" => format!("{:?}", r.cutover_margin),
                "run.call_timeout" => format!("{:?}", r.call_timeout),
                "run.stop_grace" => format!("{:?}", r.stop_grace),
                "run.unreachable_timeout" => format!("{:?}", r.unreachable_timeout),
                "run.action_poll" => format!("{:?}", r.action_poll),
                "run.collect_statistics" => format!("{:?}", r.collect_statistics),
                "notify.failure_threshold" => c.notify.failure_threshold.to_string(),
                "notices.enabled" => n.enabled.to_string(),
                "notices.before" => format!("{:?}", n.before),
                "notices.correction_lead" => format!("{:?}", n.correction_lead),
                "notices.after" => n.after.to_string(),
                "notices.templates" => format!("{:?}", n.templates),
                "notices.per_minute" => n.per_minute.to_string(),
                "notices.per_day" => n.per_day.to_string(),
                "licences.assign" => l.assign.to_string(),
                "licences.before" => format!("{:?}", l.before),
                _ => return None,
            })
        };
        let table: toml::Table = toml::from_str(TEMPLATE).unwrap();
        let mut compared = 0;
        for (section, keys) in &table {
            for key in keys.as_table().unwrap().keys() {
                let key = format!("{section}.{key}");
                if PLACEHOLDERS.contains(&key.as_str()) {
                    continue;
                }
                let (Some(written), Some(default)) =
                    (field(&from_template, &key), field(&default, &key))
                else {
                    panic!("{key}: the template sets it; compare it here");
                };
                assert_eq!(
                    written, default,
                    "{key}: the template and the default differ"
                );
                compared += 1;
            }
        }
        assert!(compared >= 30, "only {compared} keys compared");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e =
            parse("[schedule]\ntimezone = \"Europe/London\"\nweekday_capacty = 5\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("weekday_capacty"), "{msg}");
    }

    #[test]
    fn every_duration_and_size_is_bounded() {
        for (text, key, why) in [
            (
                "[run]\nresume_backoff = \"0s\"\n",
                "run.resume_backoff",
                "out of range",
            ),
            (
                "[run]\nstop_grace = \"3000000h\"\n",
                "run.stop_grace",
                "out of range",
            ),
            (
                "[run]\nunreachable_timeout = \"-5m\"\n",
                "run.unreachable_timeout",
                "out of range",
            ),
            (
                "[run]\ncall_timeout = \"2h\"\n",
                "run.call_timeout",
                "out of range",
            ),
            (
                "[notices]\nbefore = [\"999999999999999d\"]\n",
                "notices.before",
                "at most 60d",
            ),
            (
                "[licences]\nbefore = \"999999999999999d\"\n",
                "licences.before",
                "at most 60d",
            ),
            (
                "[licences]\nbefore = \"9223372036854775807h\"\n",
                "licences.before",
                "at most 60d",
            ),
            (
                "[run]\nrequests_per_second = 1e-300\n",
                "run.requests_per_second",
                "from 0.01 to 10000",
            ),
            (
                "[run]\ncutover_margin = \"soon\"\n",
                "run.cutover_margin",
                "not a duration",
            ),
            (
                "[run]\nmax_parallel_calls = 100000\n",
                "run.max_parallel_calls",
                "at most 1024",
            ),
            (
                "[run]\nrequests_per_second = 1e300\n",
                "run.requests_per_second",
                "to 10000",
            ),
            (
                "[run]\nresume_attempts = 1000\n",
                "run.resume_attempts",
                "from 0 to 100",
            ),
            (
                "[schedule]\nweekday_capacity = 99999999999\n",
                "schedule.weekday_capacity",
                "from 0 to",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid { line: 2, key: k, message, .. } if k == key && message.contains(why)),
                "{text}: {e}"
            );
        }
        let c = parse("[run]\ncall_timeout = \"30s\"\n").unwrap();
        assert_eq!(c.run.http().call, std::time::Duration::from_secs(30));
    }
}
