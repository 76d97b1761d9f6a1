//! `[notices]`: the mail users get before and after their move.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Ctx, Window, parse_offset, plausible_address};

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotices {
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

impl Notices {
    /// `[notices]`, validated; the senders file is read here, so a bad address names its line.
    pub(super) fn from_raw(cx: &Ctx, n: RawNotices, base: &Path) -> Result<Notices, ConfigError> {
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
        let enabled = n.enabled.unwrap_or(d.enabled);
        if enabled && senders.is_empty() {
            return Err(ConfigError::Invalid {
                path: cx.path.to_path_buf(),
                line: 1,
                key: "notices.senders".into(),
                message: "notices are enabled but no sender is given (senders or senders_file)"
                    .into(),
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
        let address =
            |v: &Option<Spanned<String>>, key: &str| -> Result<Option<String>, ConfigError> {
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
}
