//! `[schedule]`: when cut-overs happen and how many fit in a window.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Ctx, Window};

/// `schedule.timezone` when absent.
const TIMEZONE: &str = "Europe/London";

/// Cut-overs in one window, at most (NHSmail's busiest day was 83,000).
const MAX_CAPACITY: u64 = 10_000_000;
/// A window's byte budget, at most (10 PB).
const MAX_BYTES: u64 = 10_000_000_000_000_000;

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
            timezone_name: TIMEZONE.into(),
            timezone: TimeZone::get(TIMEZONE).expect("the bundled tz database has Europe/London"),
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSchedule {
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

impl Schedule {
    pub(super) fn from_raw(cx: &Ctx, s: RawSchedule, base: &Path) -> Result<Schedule, ConfigError> {
        let defaults = Schedule::default();
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
        Ok(Schedule {
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::ConfigError;
    use super::super::tests::parse;

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
}
