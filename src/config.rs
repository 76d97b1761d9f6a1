//! `mailwave.toml`: the operator's configuration.
//!
//! Every value mailwave validates itself is read as `toml::Spanned` so that an error can name the file,
//! the line and the key, the way an operator fixing the file needs it.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde::Deserialize;
use toml::Spanned;

/// Where the state database is, beside the config file, unless `[state] path` says otherwise.
pub const DEFAULT_STATE: &str = "state/mailwave.db";

/// Sets `[endpoints] base` from the environment, over the file (rehearsals).
pub const ENDPOINTS_BASE_ENV: &str = "MAILWAVE_ENDPOINTS_BASE";

/// The commented template `mailwave init` writes.
pub(crate) const TEMPLATE: &str = include_str!("config_template.toml");

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

/// Whether the completer approves skipped items (Data Consistency Score) so a move can complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DcsApproval {
    /// Never: any move that asks for approval waits for the operator.
    Never,
    /// Only moves graded Good; Investigate waits for the operator.
    GoodOnly,
    /// Good and Investigate.
    Investigate,
}

/// `[run]`: how hard and how often the engine works.
#[derive(Debug, Clone)]
pub struct Run {
    /// Moves submitted and still copying at once, at most (further capped by the endpoint's
    /// MaxConcurrentMigrations times two, read from the service).
    pub max_in_flight: u64,
    /// Exchange requests a second, sustained, and at once.
    pub requests_per_second: f64,
    pub burst: u32,
    /// API calls in flight at once.
    pub max_parallel_calls: usize,
    /// Resume-MoveRequest attempts for a transiently failed move before it is left to the operator.
    pub resume_attempts: u32,
    /// Wait before the first resume; doubles each attempt.
    pub resume_backoff: jiff::SignedDuration,
    pub dcs_approval: DcsApproval,
    /// How often a wave's batch is listed while it pre-stages, and around its cut-over.
    pub prestage_poll: jiff::SignedDuration,
    pub cutover_poll: jiff::SignedDuration,
    /// This long before a window ends, every mailbox of the wave not yet cutting over is moved to
    /// the next wave, so that no cut-over starts after the window.
    pub cutover_margin: jiff::SignedDuration,
    /// Restricts when move requests are created (local time); any time when unset.
    pub prestage_window: Option<Window>,
    /// How long in-flight calls may take to finish after a stop signal.
    pub stop_grace: std::time::Duration,
    /// With no good answer from the service for this long, the run gives up (exit 5).
    pub unreachable_timeout: jiff::SignedDuration,
    /// The longest one cmdlet or Graph call (or a listing page) may take, and the longest gap
    /// between two reads of an answer.
    pub call_timeout: std::time::Duration,
    /// How often a run looks for operator actions (it also looks at once when a command says so).
    pub action_poll: jiff::SignedDuration,
    /// Which finished moves get one `Get-MoveRequestStatistics` for the analytics.
    pub collect_statistics: Collect,
}

/// `run.collect_statistics`: `"all"`, `"sample:N%"` or `"none"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Collect {
    All,
    /// Per ten thousand mailboxes (so `sample:12.5%` is 1250).
    Sample(u32),
    None,
}

impl Collect {
    pub fn parse(s: &str) -> Result<Collect, String> {
        match s {
            "all" => Ok(Collect::All),
            "none" => Ok(Collect::None),
            _ => {
                let share = s
                    .strip_prefix("sample:")
                    .and_then(|r| r.strip_suffix('%'))
                    .and_then(|n| n.trim().parse::<f64>().ok())
                    .filter(|n| (0.0..=100.0).contains(n))
                    .ok_or_else(|| {
                        format!(
                            "{s:?} is not \"all\", \"none\" or \"sample:N%\" with N from 0 to 100"
                        )
                    })?;
                Ok(Collect::Sample((share * 100.0).round() as u32))
            }
        }
    }

    /// Whether the mailbox with this id is collected: the same mailboxes every run (a sample is
    /// chosen by a hash of the id, so a resumed run does not pick others).
    pub fn takes(self, mailbox_id: i64) -> bool {
        match self {
            Collect::All => true,
            Collect::None => false,
            Collect::Sample(per_10k) => {
                let h = (mailbox_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
                (h % 10_000) < per_10k as u64
            }
        }
    }
}

impl Run {
    /// The HTTP policy of every client a run builds.
    pub fn http(&self) -> crate::http::Policy {
        crate::http::Policy {
            call: self.call_timeout,
            ..crate::http::Policy::default()
        }
    }
}

/// Cut-overs in one window, at most (NHSmail's busiest day was 83,000).
const MAX_CAPACITY: u64 = 10_000_000;
/// A window's byte budget, at most (10 PB).
const MAX_BYTES: u64 = 10_000_000_000_000_000;

fn secs(n: i64) -> jiff::SignedDuration {
    jiff::SignedDuration::from_secs(n)
}

fn hours(n: i64) -> jiff::SignedDuration {
    jiff::SignedDuration::from_hours(n)
}

fn days(n: i64) -> jiff::SignedDuration {
    jiff::SignedDuration::from_hours(24 * n)
}

impl Default for Run {
    fn default() -> Self {
        Run {
            max_in_flight: 2_000,
            requests_per_second: 10.0,
            burst: 20,
            max_parallel_calls: 8,
            resume_attempts: 5,
            resume_backoff: jiff::SignedDuration::from_mins(15),
            dcs_approval: DcsApproval::GoodOnly,
            prestage_poll: jiff::SignedDuration::from_mins(30),
            cutover_poll: jiff::SignedDuration::from_mins(5),
            cutover_margin: jiff::SignedDuration::from_mins(30),
            prestage_window: None,
            stop_grace: std::time::Duration::from_secs(60),
            unreachable_timeout: jiff::SignedDuration::from_mins(15),
            call_timeout: std::time::Duration::from_secs(120),
            action_poll: jiff::SignedDuration::from_secs(30),
            collect_statistics: Collect::All,
        }
    }
}

/// `[notices]`: the mail users get before and after their move, sent by the run from a pool of
/// sending mailboxes through Graph `sendMail`.
#[derive(Debug, Clone)]
pub struct Notices {
    pub enabled: bool,
    pub senders: Vec<String>,
    /// How long before the window opens each "before" notice goes, longest first.
    pub before: Vec<jiff::SignedDuration>,
    /// A user told a date that no longer holds is corrected this long before the earlier of the
    /// told and the new date (at once when less remains), if the told date still does not hold.
    pub correction_lead: jiff::SignedDuration,
    pub after: bool,
    /// The templates folder (before, after, correction; `.txt` or `.html`; per organisation in a
    /// sub-folder of that name).
    pub templates: PathBuf,
    /// Local time (schedule.timezone) in which nothing is sent.
    pub quiet_hours: Option<Window>,
    pub reply_to: Option<String>,
    pub help_link: Option<String>,
    /// Messages a sender may send a minute, and recipients a rolling day (Exchange Online's limits).
    pub per_minute: u32,
    pub per_day: u32,
}

impl Default for Notices {
    fn default() -> Notices {
        Notices {
            enabled: false,
            senders: Vec::new(),
            before: vec![
                jiff::SignedDuration::from_hours(7 * 24),
                jiff::SignedDuration::from_hours(24),
            ],
            correction_lead: jiff::SignedDuration::from_hours(24),
            after: true,
            templates: PathBuf::from("schedules/notices"),
            quiet_hours: None,
            reply_to: None,
            help_link: None,
            per_minute: 30,
            per_day: 10_000,
        }
    }
}

/// `[licences]`: every mailbox's user holds an Exchange Online licence before its cut-over.
#[derive(Debug, Clone)]
pub struct Licences {
    /// The SKU to assign (part number such as ENTERPRISEPACK, or its GUID); None: not checked.
    pub sku: Option<String>,
    /// Assign it to users who lack an Exchange Online plan (else they are listed for attention).
    pub assign: bool,
    /// A wave's users are checked (and licensed) this long before its window opens.
    pub before: jiff::SignedDuration,
}

impl Default for Licences {
    fn default() -> Licences {
        Licences {
            sku: None,
            assign: false,
            before: jiff::SignedDuration::from_hours(48),
        }
    }
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

/// `[notify]`: where the run's summary goes.
#[derive(Debug, Clone, Default)]
pub struct Notify {
    /// A Teams or Slack incoming webhook. It holds a token: it is never logged.
    pub webhook_url: Option<crate::secrets::Secret>,
    /// Post as soon as this many mailboxes have failed in a run (0: only at the end).
    pub failure_threshold: u64,
    /// Mail the html report here after each window closes (sent by the `[notices]` senders).
    pub report_to: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Tenant {
    pub id: String,
    pub client_id: String,
    /// Name of the environment variable that holds the client secret. The secret itself is never
    /// in the file.
    pub client_secret_env: Option<String>,
    pub certificate: Option<PathBuf>,
    /// Signature of certificate client assertions: PS256 (default) or RS256.
    pub assertion_algorithm: crate::secrets::Algorithm,
}

#[derive(Debug, Clone)]
pub struct Endpoints {
    pub authority: String,
    pub exchange: String,
    pub graph: String,
}

impl Endpoints {
    /// Authority, Exchange and Graph all at one address: the simulator serves the three.
    pub fn all_at(base: &str) -> Endpoints {
        Endpoints {
            authority: base.to_string(),
            exchange: base.to_string(),
            graph: base.to_string(),
        }
    }
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            authority: "https://login.microsoftonline.com".into(),
            exchange: "https://outlook.office365.com".into(),
            graph: "https://graph.microsoft.com".into(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Migration {
    pub remote_host_name: String,
    pub target_delivery_domain: String,
    pub source_endpoint: Option<String>,
}

/// A daily cut-over window in local time. `end <= start` means it ends the next day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Time,
    pub end: Time,
}

impl Window {
    pub(crate) fn crosses_midnight(&self) -> bool {
        self.end <= self.start
    }

    pub fn parse(text: &str) -> Result<Window, String> {
        let (a, b) = text
            .split_once('-')
            .ok_or_else(|| format!("expected \"HH:MM-HH:MM\", got {text:?}"))?;
        let parse = |s: &str| -> Result<Time, String> {
            let s = s.trim();
            let (h, m) = s
                .split_once(':')
                .ok_or_else(|| format!("{s:?} is not a time of day (HH:MM)"))?;
            let h: i8 = h
                .parse()
                .map_err(|_| format!("{s:?} is not a time of day (HH:MM)"))?;
            let m: i8 = m
                .parse()
                .map_err(|_| format!("{s:?} is not a time of day (HH:MM)"))?;
            if !(0..=23).contains(&h) || !(0..=59).contains(&m) {
                return Err(format!("{s:?} is not a time of day (00:00 to 23:59)"));
            }
            Ok(Time::constant(h, m, 0, 0))
        };
        let window = Window {
            start: parse(a)?,
            end: parse(b)?,
        };
        if window.start == window.end {
            return Err(format!("{text:?} is empty: start and end are the same"));
        }
        Ok(window)
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start.hour(),
            self.start.minute(),
            self.end.hour(),
            self.end.minute()
        )
    }
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub timezone_name: String,
    pub timezone: TimeZone,
    pub weekday_capacity: u64,
    pub weekend_capacity: u64,
    pub weekday_bytes: Option<u64>,
    pub weekend_bytes: Option<u64>,
    pub cutover_window: Window,
    pub prestage_days: u32,
    pub blackout: BTreeSet<Date>,
    pub bank_holidays: Option<PathBuf>,
    /// GOV.UK division to read from the bank-holiday file.
    pub bank_holiday_division: String,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            timezone_name: "Europe/London".into(),
            timezone: TimeZone::get("Europe/London")
                .expect("bundled tz database has Europe/London"),
            weekday_capacity: 22_000,
            weekend_capacity: 83_000,
            weekday_bytes: None,
            weekend_bytes: None,
            cutover_window: Window {
                start: Time::constant(20, 0, 0, 0),
                end: Time::constant(6, 0, 0, 0),
            },
            prestage_days: 7,
            blackout: BTreeSet::new(),
            bank_holidays: None,
            bank_holiday_division: "england-and-wales".into(),
        }
    }
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

// ---- the file as written -------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    tenant: RawTenant,
    #[serde(default)]
    endpoints: RawEndpoints,
    #[serde(default)]
    migration: RawMigration,
    #[serde(default)]
    schedule: RawSchedule,
    #[serde(default)]
    run: RawRun,
    #[serde(default)]
    notify: RawNotify,
    #[serde(default)]
    notices: RawNotices,
    #[serde(default)]
    licences: RawLicences,
    #[serde(default)]
    state: RawState,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawState {
    path: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLicences {
    sku: Option<Spanned<String>>,
    assign: Option<bool>,
    before: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNotices {
    enabled: Option<bool>,
    senders: Option<Spanned<Vec<Spanned<String>>>>,
    senders_file: Option<Spanned<String>>,
    before: Option<Spanned<Vec<Spanned<String>>>>,
    correction_lead: Option<Spanned<String>>,
    after: Option<bool>,
    templates: Option<Spanned<String>>,
    quiet_hours: Option<Spanned<String>>,
    reply_to: Option<Spanned<String>>,
    help_link: Option<Spanned<String>>,
    per_minute: Option<Spanned<i64>>,
    per_day: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRun {
    max_in_flight: Option<Spanned<i64>>,
    requests_per_second: Option<Spanned<f64>>,
    burst: Option<Spanned<i64>>,
    max_parallel_calls: Option<Spanned<i64>>,
    resume_attempts: Option<Spanned<i64>>,
    resume_backoff: Option<Spanned<String>>,
    dcs_approval: Option<Spanned<String>>,
    prestage_poll: Option<Spanned<String>>,
    cutover_poll: Option<Spanned<String>>,
    cutover_margin: Option<Spanned<String>>,
    prestage_window: Option<Spanned<String>>,
    stop_grace: Option<Spanned<String>>,
    unreachable_timeout: Option<Spanned<String>>,
    call_timeout: Option<Spanned<String>>,
    action_poll: Option<Spanned<String>>,
    collect_statistics: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    report_to: Option<Spanned<Vec<Spanned<String>>>>,
    webhook_url: Option<Spanned<String>>,
    webhook_url_env: Option<Spanned<String>>,
    failure_threshold: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    id: Option<Spanned<String>>,
    client_id: Option<String>,
    client_secret_env: Option<Spanned<String>>,
    certificate: Option<String>,
    assertion_algorithm: Option<Spanned<String>>,
    /// Refused with a clear message: secrets do not belong in the file.
    client_secret: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEndpoints {
    base: Option<Spanned<String>>,
    authority: Option<Spanned<String>>,
    exchange: Option<Spanned<String>>,
    graph: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMigration {
    remote_host_name: Option<String>,
    target_delivery_domain: Option<String>,
    source_endpoint: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    timezone: Option<Spanned<String>>,
    weekday_capacity: Option<Spanned<i64>>,
    weekend_capacity: Option<Spanned<i64>>,
    weekday_bytes: Option<Spanned<i64>>,
    weekend_bytes: Option<Spanned<i64>>,
    cutover_window: Option<Spanned<String>>,
    prestage_days: Option<Spanned<i64>>,
    blackout: Option<Vec<Spanned<String>>>,
    bank_holidays: Option<String>,
    bank_holiday_division: Option<String>,
}

/// A tenant id: a GUID, or a domain name (it goes into URLs and a header, so nothing else).
pub fn valid_tenant(id: &str) -> bool {
    if uuid::Uuid::try_parse(id).is_ok() && id.len() == 36 {
        return true;
    }
    id.len() <= 253
        && id.contains('.')
        && id.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
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

/// `[state] path` against the config's folder, or the default beside it.
fn state_path(cx: &Ctx, raw: &RawState, base: &Path) -> Result<PathBuf, ConfigError> {
    match &raw.path {
        None => Ok(base.join(DEFAULT_STATE)),
        Some(p) if p.get_ref().trim().is_empty() => Err(cx.invalid(
            p.span(),
            "state.path",
            "is empty: name the state database file (default \"state/mailwave.db\")",
        )),
        Some(p) => Ok(base.join(p.get_ref())),
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
            state: RawState,
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let raw: OnlyState = toml::from_str(&text).map_err(|e| syntax(path, &text, &e))?;
        let cx = Ctx { path, text: &text };
        state_path(&cx, &raw.state, path.parent().unwrap_or(Path::new("")))
    }

    /// Validates configuration text; `path` is used for messages and to resolve relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| syntax(path, text, &e))?;
        let cx = Ctx { path, text };
        let defaults = Schedule::default();

        if let Some(secret) = &raw.tenant.client_secret {
            return Err(cx.invalid(
                secret.span(),
                "tenant.client_secret",
                "secrets are not read from the config file; put the secret in an environment \
                 variable and name it with client_secret_env",
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let assertion_algorithm = match &raw.tenant.assertion_algorithm {
            None => crate::secrets::Algorithm::Ps256,
            Some(a) => match a.get_ref().as_str() {
                "PS256" => crate::secrets::Algorithm::Ps256,
                "RS256" => crate::secrets::Algorithm::Rs256,
                other => {
                    return Err(cx.invalid(
                        a.span(),
                        "tenant.assertion_algorithm",
                        format!("{other:?} is not PS256 or RS256"),
                    ));
                }
            },
        };
        let id_span = raw.tenant.id.as_ref().map(|s| s.span()).unwrap_or(0..0);
        let given = raw.tenant.id.is_some();
        let id = raw.tenant.id.map(|s| s.into_inner()).unwrap_or_default();
        // Absent is fine for commands that never sign in; given, it must be a tenant (an empty
        // one would make the token address `{authority}//oauth2/...`).
        if given && !valid_tenant(&id) {
            let span = id_span;
            return Err(cx.invalid(
                span,
                "tenant.id",
                "is neither a tenant GUID nor a domain name (for example \"contoso.onmicrosoft.com\")",
            ));
        }
        let tenant = Tenant {
            assertion_algorithm,
            id,
            client_id: raw.tenant.client_id.unwrap_or_default(),
            client_secret_env: raw.tenant.client_secret_env.map(|s| s.into_inner()),
            certificate: raw.tenant.certificate.map(|c| base.join(c)),
        };
        let mut d = Endpoints::default();
        if raw.endpoints.base.is_some() {
            let base = cx.url(&raw.endpoints.base, "endpoints.base", "")?;
            d = Endpoints::all_at(&base);
        }
        let endpoints = Endpoints {
            authority: cx.url(
                &raw.endpoints.authority,
                "endpoints.authority",
                &d.authority,
            )?,
            exchange: cx.url(&raw.endpoints.exchange, "endpoints.exchange", &d.exchange)?,
            graph: cx.url(&raw.endpoints.graph, "endpoints.graph", &d.graph)?,
        };
        let migration = Migration {
            remote_host_name: raw.migration.remote_host_name.unwrap_or_default(),
            target_delivery_domain: raw.migration.target_delivery_domain.unwrap_or_default(),
            source_endpoint: raw.migration.source_endpoint,
        };

        let s = raw.schedule;
        let (timezone_name, timezone) = match &s.timezone {
            None => (defaults.timezone_name.clone(), defaults.timezone.clone()),
            Some(tz) => match TimeZone::get(tz.get_ref()) {
                Ok(zone) => (tz.get_ref().clone(), zone),
                Err(_) => {
                    return Err(cx.invalid(
                        tz.span(),
                        "schedule.timezone",
                        format!(
                            "{:?} is not an IANA time zone (for example \"Europe/London\")",
                            tz.get_ref()
                        ),
                    ));
                }
            },
        };
        let cutover_window = match &s.cutover_window {
            None => defaults.cutover_window,
            Some(w) => Window::parse(w.get_ref())
                .map_err(|m| cx.invalid(w.span(), "schedule.cutover_window", m))?,
        };
        let weekday_capacity = cx
            .count(
                &s.weekday_capacity,
                "schedule.weekday_capacity",
                MAX_CAPACITY,
            )?
            .unwrap_or(defaults.weekday_capacity);
        let weekend_capacity = cx
            .count(
                &s.weekend_capacity,
                "schedule.weekend_capacity",
                MAX_CAPACITY,
            )?
            .unwrap_or(defaults.weekend_capacity);
        if weekday_capacity == 0 && weekend_capacity == 0 {
            let span = s
                .weekday_capacity
                .as_ref()
                .or(s.weekend_capacity.as_ref())
                .map(|v| v.span())
                .unwrap_or(0..0);
            return Err(cx.invalid(
                span,
                "schedule.weekday_capacity",
                "weekday and weekend capacity are both zero: no wave could ever be planned",
            ));
        }
        let weekday_bytes = cx.count(&s.weekday_bytes, "schedule.weekday_bytes", MAX_BYTES)?;
        let weekend_bytes = cx.count(&s.weekend_bytes, "schedule.weekend_bytes", MAX_BYTES)?;
        let prestage_days = match &s.prestage_days {
            None => defaults.prestage_days,
            Some(v) if !(0..=90).contains(v.get_ref()) => {
                return Err(cx.invalid(
                    v.span(),
                    "schedule.prestage_days",
                    format!("must be between 0 and 90 days, got {}", v.get_ref()),
                ));
            }
            Some(v) => *v.get_ref() as u32,
        };
        let mut blackout = BTreeSet::new();
        for day in s.blackout.iter().flatten() {
            let date: Date = day.get_ref().parse().map_err(|_| {
                cx.invalid(
                    day.span(),
                    "schedule.blackout",
                    format!("{:?} is not a date (YYYY-MM-DD)", day.get_ref()),
                )
            })?;
            blackout.insert(date);
        }
        let schedule = Schedule {
            timezone_name,
            timezone,
            weekday_capacity,
            weekend_capacity,
            weekday_bytes,
            weekend_bytes,
            cutover_window,
            prestage_days,
            blackout,
            bank_holidays: s.bank_holidays.map(|p| base.join(p)),
            bank_holiday_division: s
                .bank_holiday_division
                .unwrap_or(defaults.bank_holiday_division),
        };
        let r = raw.run;
        let d = Run::default();
        let requests_per_second = match &r.requests_per_second {
            None => d.requests_per_second,
            // At least one request every 100 seconds: the run divides by it to know how long
            // a wave's moves take to send, and that must stay a time, not infinity.
            Some(v) if !(*v.get_ref() >= 0.01 && *v.get_ref() <= 10_000.0) => {
                return Err(cx.invalid(
                    v.span(),
                    "run.requests_per_second",
                    format!("must be from 0.01 to 10000, got {}", v.get_ref()),
                ));
            }
            Some(v) => *v.get_ref(),
        };
        let dcs_approval = match &r.dcs_approval {
            None => d.dcs_approval,
            Some(v) => match v.get_ref().as_str() {
                "never" => DcsApproval::Never,
                "good-only" => DcsApproval::GoodOnly,
                "investigate" => DcsApproval::Investigate,
                other => {
                    return Err(cx.invalid(
                        v.span(),
                        "run.dcs_approval",
                        format!("{other:?} is not never, good-only or investigate"),
                    ));
                }
            },
        };
        let prestage_window = match &r.prestage_window {
            None => None,
            Some(w) => Some(
                Window::parse(w.get_ref())
                    .map_err(|m| cx.invalid(w.span(), "run.prestage_window", m))?,
            ),
        };
        let run = Run {
            max_in_flight: cx.bounded(
                &r.max_in_flight,
                "run.max_in_flight",
                d.max_in_flight,
                10_000_000,
            )?,
            requests_per_second,
            burst: cx.bounded(&r.burst, "run.burst", d.burst as u64, 100_000)? as u32,
            max_parallel_calls: cx.bounded(
                &r.max_parallel_calls,
                "run.max_parallel_calls",
                d.max_parallel_calls as u64,
                1_024,
            )? as usize,
            resume_attempts: match &r.resume_attempts {
                Some(v) if !(0..=100).contains(v.get_ref()) => {
                    return Err(cx.invalid(
                        v.span(),
                        "run.resume_attempts",
                        format!("must be from 0 to 100, got {}", v.get_ref()),
                    ));
                }
                Some(v) => *v.get_ref() as u32,
                None => d.resume_attempts,
            },
            resume_backoff: cx.duration(
                &r.resume_backoff,
                "run.resume_backoff",
                d.resume_backoff,
                (secs(1), days(7)),
            )?,
            dcs_approval,
            prestage_poll: cx.duration(
                &r.prestage_poll,
                "run.prestage_poll",
                d.prestage_poll,
                (secs(1), days(1)),
            )?,
            cutover_poll: cx.duration(
                &r.cutover_poll,
                "run.cutover_poll",
                d.cutover_poll,
                (secs(1), hours(6)),
            )?,
            cutover_margin: cx.duration(
                &r.cutover_margin,
                "run.cutover_margin",
                d.cutover_margin,
                (secs(1), hours(12)),
            )?,
            prestage_window,
            stop_grace: cx
                .duration(
                    &r.stop_grace,
                    "run.stop_grace",
                    jiff::SignedDuration::from_secs(60),
                    (secs(1), hours(1)),
                )?
                .unsigned_abs(),
            unreachable_timeout: cx.duration(
                &r.unreachable_timeout,
                "run.unreachable_timeout",
                d.unreachable_timeout,
                (secs(5), days(7)),
            )?,
            call_timeout: cx
                .duration(
                    &r.call_timeout,
                    "run.call_timeout",
                    jiff::SignedDuration::try_from(d.call_timeout).unwrap_or_default(),
                    (secs(1), jiff::SignedDuration::from_mins(15)),
                )?
                .unsigned_abs(),
            action_poll: cx.duration(
                &r.action_poll,
                "run.action_poll",
                d.action_poll,
                (secs(1), hours(1)),
            )?,
            collect_statistics: match &r.collect_statistics {
                None => d.collect_statistics,
                Some(v) => Collect::parse(v.get_ref())
                    .map_err(|m| cx.invalid(v.span(), "run.collect_statistics", m))?,
            },
        };
        let n = raw.notify;
        // The URL carries a token: an error names where it came from, never the URL itself.
        let webhook_url = match (&n.webhook_url, &n.webhook_url_env) {
            (Some(u), _) => {
                if let Err(m) = crate::http::check_endpoint(u.get_ref()) {
                    return Err(cx.invalid(u.span(), "notify.webhook_url", m));
                }
                Some(crate::secrets::Secret::new(u.get_ref().clone()))
            }
            (None, Some(var)) => {
                match std::env::var(var.get_ref()).ok().filter(|v| !v.is_empty()) {
                    Some(url) => {
                        if let Err(m) = crate::http::check_endpoint(&url) {
                            return Err(cx.invalid(
                                var.span(),
                                "notify.webhook_url_env",
                                format!("the URL in {} {m}", var.get_ref()),
                            ));
                        }
                        Some(crate::secrets::Secret::new(url))
                    }
                    None => None,
                }
            }
            (None, None) => None,
        };
        let notify = Notify {
            webhook_url,
            failure_threshold: match &n.failure_threshold {
                Some(v) if *v.get_ref() < 0 => {
                    return Err(cx.invalid(
                        v.span(),
                        "notify.failure_threshold",
                        "must be zero or more",
                    ));
                }
                Some(v) => *v.get_ref() as u64,
                None => 0,
            },
            report_to: Vec::new(),
        };
        let mut notify = notify;
        if let Some(list) = &n.report_to {
            for a in list.get_ref() {
                if !plausible_address(a.get_ref()) {
                    return Err(cx.invalid(
                        a.span(),
                        "notify.report_to",
                        format!("{:?} is not a mail address", a.get_ref()),
                    ));
                }
                notify.report_to.push(a.get_ref().clone());
            }
        }
        let notices = notices(&cx, raw.notices, base)?;
        if let Some(list) = &n.report_to
            && !list.get_ref().is_empty()
            && notices.senders.is_empty()
        {
            return Err(cx.invalid(
                list.span(),
                "notify.report_to",
                "the report is mailed by the [notices] senders: name at least one",
            ));
        }
        let l = raw.licences;
        let licences = Licences {
            sku: match &l.sku {
                Some(v) if v.get_ref().trim().is_empty() => {
                    return Err(cx.invalid(
                        v.span(),
                        "licences.sku",
                        "must name a SKU (ENTERPRISEPACK) or its GUID",
                    ));
                }
                Some(v) => Some(v.get_ref().trim().to_string()),
                None => None,
            },
            assign: l.assign.unwrap_or(false),
            before: match &l.before {
                Some(v) => parse_offset(v.get_ref()).ok_or_else(|| {
                    cx.invalid(
                        v.span(),
                        "licences.before",
                        format!(
                            "{:?} is not a time before the window (\"2d\", \"36h\"; at most 60d)",
                            v.get_ref()
                        ),
                    )
                })?,
                None => Licences::default().before,
            },
        };
        if l.assign.unwrap_or(false) && licences.sku.is_none() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                line: 1,
                key: "licences.sku".into(),
                message: "assign = true needs the SKU to assign".into(),
            });
        }
        let state_path = state_path(&cx, &raw.state, base)?;
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

/// `[notices]`, validated; the senders file is read here, so a bad address names its line.
fn notices(cx: &Ctx, n: RawNotices, base: &Path) -> Result<Notices, ConfigError> {
    let d = Notices::default();
    let mut senders = Vec::new();
    if let Some(list) = &n.senders {
        for a in list.get_ref() {
            if !plausible_address(a.get_ref()) {
                return Err(cx.invalid(
                    a.span(),
                    "notices.senders",
                    format!("{:?} is not a mail address", a.get_ref()),
                ));
            }
            senders.push(a.get_ref().to_ascii_lowercase());
        }
    }
    if let Some(file) = &n.senders_file {
        let path = base.join(file.get_ref());
        let invalid = |line: u64, message: String| ConfigError::Invalid {
            path: path.clone(),
            line: line as usize,
            key: "sender".into(),
            message,
        };
        let mut list = crate::text::sheet::Sheet::open_list(&path).map_err(|p| match p {
            crate::text::sheet::Problem::File { line: 0, .. } => {
                cx.invalid(file.span(), "notices.senders_file", p.at(&path))
            }
            p => invalid(p.line(), p.message().to_string()),
        })?;
        let mut first = true;
        while let Some(row) = list.next_row() {
            let row = row.map_err(|p| invalid(p.line(), p.message().to_string()))?;
            // One address a line, or the first column of a CSV whose header is skipped.
            let a = row.get(0);
            let header = std::mem::take(&mut first) && !a.contains('@');
            if header {
                continue;
            }
            if !plausible_address(&a) {
                return Err(invalid(row.line, format!("{a:?} is not a mail address")));
            }
            senders.push(a.to_ascii_lowercase());
        }
    }
    senders.sort();
    senders.dedup();
    let enabled = n.enabled.unwrap_or(false);
    if enabled && senders.is_empty() {
        return Err(ConfigError::Invalid {
            path: cx.path.to_path_buf(),
            line: 1,
            key: "notices.senders".into(),
            message: "notices are enabled but no sender is given (senders or senders_file)".into(),
        });
    }
    let before = match &n.before {
        None => d.before,
        Some(list) => {
            let mut v = Vec::new();
            for o in list.get_ref() {
                v.push(parse_offset(o.get_ref()).ok_or_else(|| {
                    cx.invalid(
                        o.span(),
                        "notices.before",
                        format!(
                            "{:?} is not a time before the window (for example \"7d\", \"36h\"; at most 60d)",
                            o.get_ref()
                        ),
                    )
                })?);
            }
            v.sort_by(|a, b| b.cmp(a));
            v.dedup();
            v
        }
    };
    let address = |v: &Option<Spanned<String>>, key: &str| -> Result<Option<String>, ConfigError> {
        match v {
            Some(a) if !plausible_address(a.get_ref()) => Err(cx.invalid(
                a.span(),
                key,
                format!("{:?} is not a mail address", a.get_ref()),
            )),
            Some(a) => Ok(Some(a.get_ref().clone())),
            None => Ok(None),
        }
    };
    let limit = |v: &Option<Spanned<i64>>, key: &str, default: u32| match v {
        Some(x) if !(1..=1_000_000).contains(x.get_ref()) => {
            Err(cx.invalid(x.span(), key, "must be from 1 to 1000000"))
        }
        Some(x) => Ok(*x.get_ref() as u32),
        None => Ok(default),
    };
    let correction_lead = match &n.correction_lead {
        None => d.correction_lead,
        Some(l) => parse_offset(l.get_ref()).ok_or_else(|| {
            cx.invalid(
                l.span(),
                "notices.correction_lead",
                format!(
                    "{:?} is not a time before the date (for example \"24h\", \"2d\", \"90m\"; at most 60d)",
                    l.get_ref()
                ),
            )
        })?,
    };
    Ok(Notices {
        enabled,
        senders,
        before,
        correction_lead,
        after: n.after.unwrap_or(d.after),
        templates: n
            .templates
            .as_ref()
            .map_or_else(|| base.join(&d.templates), |t| base.join(t.get_ref())),
        quiet_hours: match &n.quiet_hours {
            Some(q) => Some(
                Window::parse(q.get_ref())
                    .map_err(|m| cx.invalid(q.span(), "notices.quiet_hours", m))?,
            ),
            None => None,
        },
        reply_to: address(&n.reply_to, "notices.reply_to")?,
        help_link: n.help_link.as_ref().map(|h| h.get_ref().clone()),
        per_minute: limit(&n.per_minute, "notices.per_minute", d.per_minute)?,
        per_day: limit(&n.per_day, "notices.per_day", d.per_day)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
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

    #[test]
    fn unknown_key_names_key_and_line() {
        let e =
            parse("[schedule]\ntimezone = \"Europe/London\"\nweekday_capacty = 5\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("weekday_capacty"), "{msg}");
    }

    #[test]
    fn bad_timezone_window_and_capacity_are_named() {
        let e = parse("[schedule]\n\ntimezone = \"Europe/Londn\"\n").unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { line: 3, key, .. } if key == "schedule.timezone"),
            "{e}"
        );

        let e = parse("[schedule]\ncutover_window = \"25:00-06:00\"\n").unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { line: 2, key, .. } if key == "schedule.cutover_window"),
            "{e}"
        );
        assert!(e.to_string().contains("25:00"));

        let e = parse("[schedule]\nweekday_capacity = 10\nweekend_capacity = -5\n").unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { line: 3, key, .. } if key == "schedule.weekend_capacity"),
            "{e}"
        );
    }

    #[test]
    fn secret_in_file_is_refused_without_echoing_it() {
        let e = parse("[tenant]\nclient_secret = \"hunter2-very-secret\"\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("client_secret_env"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[test]
    fn run_and_notify_sections() {
        let c = parse("[run]\nrequests_per_second = 2.5\ncutover_margin = \"45m\"\ndcs_approval = \"investigate\"\n[notify]\nwebhook_url = \"https://hooks.example/abc\"\nfailure_threshold = 10\n").unwrap();
        assert_eq!(c.run.requests_per_second, 2.5);
        assert_eq!(c.run.cutover_margin, jiff::SignedDuration::from_mins(45));
        assert_eq!(c.run.dcs_approval, DcsApproval::Investigate);
        assert_eq!(c.notify.failure_threshold, 10);
        assert_eq!(format!("{:?}", c.notify.webhook_url), "Some(***)");
        let e = parse("[run]\ncutover_poll = \"soon\"\n").unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { line: 2, key, .. } if key == "run.cutover_poll"),
            "{e}"
        );
        let e = parse("[run]\ncollect_statistics = \"sample:150%\"\n").unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { line: 2, key, .. } if key == "run.collect_statistics"),
            "{e}"
        );
        let c = parse("[run]\ncollect_statistics = \"sample:10%\"\n").unwrap();
        assert_eq!(c.run.collect_statistics, Collect::Sample(1000));
        let taken = (1..=100_000)
            .filter(|&id| c.run.collect_statistics.takes(id))
            .count();
        assert!(
            (9_000..11_000).contains(&taken),
            "{taken} of 100000 sampled at 10%"
        );
        let e = parse("[run]\n\ndcs_approval = \"always\"\n").unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { line: 3, key, .. } if key == "run.dcs_approval"),
            "{e}"
        );
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

    #[test]
    fn tenants_endpoints_and_webhooks_are_checked() {
        for ok in [
            "contoso.onmicrosoft.com",
            "3fa85f64-5717-4562-b3fc-2c963f66afa6",
            "a-b.example.org",
        ] {
            assert!(parse(&format!("[tenant]\nid = \"{ok}\"\n")).is_ok(), "{ok}");
        }
        for bad in [
            "contoso",
            "../../etc",
            "a b.com",
            "contoso.com/x",
            "-x.com",
            "x.com\r\nX-Evil: 1",
            "",
        ] {
            let e = parse(&format!("[tenant]\nid = {bad:?}\n")).unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid { key, .. } if key == "tenant.id"),
                "{bad}: {e}"
            );
        }
        for key in ["authority", "exchange", "graph"] {
            let e = parse(&format!(
                "[endpoints]\n{key} = \"https://admin:hunter2-pw@evil.example/x\"\n"
            ))
            .unwrap_err();
            let text = e.to_string();
            assert!(
                text.contains("user name or password")
                    && text.contains("\"https://evil.example/x\""),
                "{text}"
            );
            assert!(
                !text.contains("hunter2") && !text.contains("admin"),
                "{text}"
            );
        }
        let e = parse("[endpoints]\nexchange = \"http://outlook.office365.com\"\n").unwrap_err();
        assert!(e.to_string().contains("only allowed to a loopback"), "{e}");
        assert!(parse("[endpoints]\nexchange = \"http://127.0.0.1:8080\"\n").is_ok());
        let e = parse("[notify]\nwebhook_url = \"http://hooks.example/secret-token-abc\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("notify.webhook_url"), "{e}");
        assert!(
            !e.to_string().contains("secret-token-abc"),
            "the URL is never echoed: {e}"
        );
    }

    #[test]
    fn window_parsing() {
        let w = Window::parse("09:30-17:00").unwrap();
        assert!(!w.crosses_midnight());
        assert!(Window::parse("20:00-20:00").is_err());
        assert!(Window::parse("20:60-06:00").is_err());
        assert!(Window::parse("2000-0600").is_err());
    }

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

    #[test]
    fn one_base_sets_every_endpoint_and_the_three_keys_still_win() {
        let c = parse("[endpoints]\nbase = \"http://127.0.0.1:4100/\"\n").unwrap();
        assert_eq!(c.endpoints.authority, "http://127.0.0.1:4100");
        assert_eq!(c.endpoints.exchange, "http://127.0.0.1:4100");
        assert_eq!(c.endpoints.graph, "http://127.0.0.1:4100");
        let c = parse(
            "[endpoints]\nbase = \"http://127.0.0.1:4100\"\ngraph = \"https://graph.microsoft.com\"\n",
        )
        .unwrap();
        assert_eq!(c.endpoints.exchange, "http://127.0.0.1:4100");
        assert_eq!(c.endpoints.graph, "https://graph.microsoft.com");
        let e = parse("[endpoints]\nbase = \"http://example.com\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("endpoints.base"), "{e}");
    }
}
