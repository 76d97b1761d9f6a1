//! The cut-over calendar: which days have a window, how large it is, and when it starts and ends in
//! real time. All arithmetic is done in the plan's time zone with jiff, so a window over a DST change
//! is as long as the clocks make it (the window starting 2026-10-24 20:00 BST ends 2026-10-25 06:00 GMT,
//! eleven hours later).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{ToSpan, Zoned};
use serde::Deserialize;

use crate::config::{Schedule, Window};

#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error("{}: cannot read the bank-holiday file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}, line {line}, column {column}: {message}", path.display())]
    Format {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: no division {division:?} (found: {found})", path.display())]
    Division {
        path: PathBuf,
        division: String,
        found: String,
    },
    #[error("{date}: the cut-over window does not exist in {tz}: {message}")]
    Time {
        date: Date,
        tz: String,
        message: String,
    },
}

#[derive(Deserialize)]
struct GovUkDivision {
    events: Vec<GovUkEvent>,
}

#[derive(Deserialize)]
struct GovUkEvent {
    title: String,
    date: Date,
}

/// Reads one division of a GOV.UK bank-holidays JSON file into date -> title.
pub fn read_bank_holidays(
    path: &Path,
    division: &str,
) -> Result<BTreeMap<Date, String>, CalendarError> {
    let read = |source| CalendarError::Read {
        path: path.to_path_buf(),
        source,
    };
    // GOV.UK's file is 20 kB; a few MB is no calendar.
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(std::fs::File::open(path).map_err(read)?, 4 << 20),
        &mut text,
    )
    .map_err(read)?;
    let mut all: BTreeMap<String, GovUkDivision> =
        serde_json::from_str(&text).map_err(|e| CalendarError::Format {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
    let found = crate::format::clip(&all.keys().cloned().collect::<Vec<_>>().join(", "), 200);
    let div = all
        .remove(division)
        .ok_or_else(|| CalendarError::Division {
            path: path.to_path_buf(),
            division: division.to_string(),
            found,
        })?;
    Ok(div.events.into_iter().map(|e| (e.date, e.title)).collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DayKind {
    Weekday,
    Weekend,
}

/// One day's cut-over window with its capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub date: Date,
    pub(crate) kind: DayKind,
    pub capacity: u64,
    pub(crate) bytes_capacity: Option<u64>,
    pub start: Zoned,
    pub end: Zoned,
    /// When move requests for this wave are created (cut-over start less the pre-stage days).
    pub prestage_start: Zoned,
}

#[derive(Debug, Clone)]
pub struct Calendar {
    pub timezone: TimeZone,
    pub(crate) timezone_name: String,
    pub window: Window,
    pub weekday_capacity: u64,
    pub weekend_capacity: u64,
    pub weekday_bytes: Option<u64>,
    pub(crate) weekend_bytes: Option<u64>,
    pub prestage_days: u32,
    /// Days without a window, with the reason (a bank holiday's title, or "blackout").
    pub closed: BTreeMap<Date, String>,
}

/// How far ahead the calendar looks for an open day before it gives up (ten years).
const HORIZON_DAYS: usize = 3660;

impl Calendar {
    pub fn from_schedule(s: &Schedule) -> Result<Calendar, CalendarError> {
        let mut closed = match &s.bank_holidays {
            Some(path) => read_bank_holidays(path, &s.bank_holiday_division)?,
            None => BTreeMap::new(),
        };
        for day in &s.blackout {
            closed.insert(*day, "blackout".into());
        }
        Ok(Calendar {
            timezone: s.timezone.clone(),
            timezone_name: s.timezone_name.clone(),
            window: s.cutover_window,
            weekday_capacity: s.weekday_capacity,
            weekend_capacity: s.weekend_capacity,
            weekday_bytes: s.weekday_bytes,
            weekend_bytes: s.weekend_bytes,
            prestage_days: s.prestage_days,
            closed,
        })
    }

    pub(crate) fn kind_of(date: Date) -> DayKind {
        match date.weekday() {
            Weekday::Saturday | Weekday::Sunday => DayKind::Weekend,
            _ => DayKind::Weekday,
        }
    }

    /// The window that starts on `date`, in the plan's zone. A start or end inside a DST gap moves
    /// forward to the first real instant (jiff's "compatible" rule, as Windows and Exchange do).
    pub(crate) fn window_on(&self, date: Date) -> Result<(Zoned, Zoned), CalendarError> {
        let err = |e: jiff::Error| CalendarError::Time {
            date,
            tz: self.timezone_name.clone(),
            message: e.to_string(),
        };
        let start = date
            .to_datetime(self.window.start)
            .to_zoned(self.timezone.clone())
            .map_err(err)?;
        let end_date = if self.window.crosses_midnight() {
            date.tomorrow().map_err(err)?
        } else {
            date
        };
        let end = end_date
            .to_datetime(self.window.end)
            .to_zoned(self.timezone.clone())
            .map_err(err)?;
        Ok((start, end))
    }

    /// The slot on `date`, or `None` when the day is closed or has no capacity.
    pub fn slot(&self, date: Date) -> Result<Option<Slot>, CalendarError> {
        if self.closed.contains_key(&date) {
            return Ok(None);
        }
        let kind = Calendar::kind_of(date);
        let (capacity, bytes_capacity) = match kind {
            DayKind::Weekday => (self.weekday_capacity, self.weekday_bytes),
            DayKind::Weekend => (self.weekend_capacity, self.weekend_bytes),
        };
        if capacity == 0 || bytes_capacity == Some(0) {
            return Ok(None);
        }
        let (start, end) = self.window_on(date)?;
        let prestage_start = start
            .checked_sub((self.prestage_days as i64).days())
            .map_err(|e| CalendarError::Time {
                date,
                tz: self.timezone_name.clone(),
                message: e.to_string(),
            })?;
        Ok(Some(Slot {
            date,
            kind,
            capacity,
            bytes_capacity,
            start,
            end,
            prestage_start,
        }))
    }

    /// Open slots from `start` on, in date order, for at most ten years.
    pub(crate) fn slots_from(
        &self,
        start: Date,
    ) -> impl Iterator<Item = Result<Slot, CalendarError>> + '_ {
        start
            .series(1.day())
            .take(HORIZON_DAYS)
            .filter_map(move |d| self.slot(d).transpose())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn calendar() -> Calendar {
        let mut s = Schedule {
            bank_holidays: Some(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("schedules/uk-bank-holidays.json"),
            ),
            ..Default::default()
        };
        s.blackout.insert(date(2026, 12, 24));
        Calendar::from_schedule(&s).unwrap()
    }

    fn hours(a: &Zoned, b: &Zoned) -> i64 {
        (b.timestamp().as_second() - a.timestamp().as_second()) / 3600
    }

    #[test]
    fn autumn_change_makes_an_eleven_hour_window() {
        let c = calendar();
        let (start, end) = c.window_on(date(2026, 10, 24)).unwrap();
        assert_eq!(start.offset().seconds(), 3600, "BST at the start");
        assert_eq!(end.offset().seconds(), 0, "GMT at the end");
        assert_eq!(start.timestamp().to_string(), "2026-10-24T19:00:00Z");
        assert_eq!(end.timestamp().to_string(), "2026-10-25T06:00:00Z");
        assert_eq!(hours(&start, &end), 11);
    }

    #[test]
    fn spring_change_makes_a_nine_hour_window() {
        let c = calendar();
        let (start, end) = c.window_on(date(2027, 3, 27)).unwrap();
        assert_eq!(start.timestamp().to_string(), "2027-03-27T20:00:00Z");
        assert_eq!(end.timestamp().to_string(), "2027-03-28T05:00:00Z");
        assert_eq!(hours(&start, &end), 9);
    }

    #[test]
    fn window_start_in_a_dst_gap_moves_forward() {
        let mut c = calendar();
        c.window = Window::parse("01:30-05:00").unwrap();
        let (start, end) = c.window_on(date(2027, 3, 28)).unwrap();
        // 01:30 does not exist that night; the first real instant is 02:30 BST = 01:30 UTC.
        assert_eq!(start.timestamp().to_string(), "2027-03-28T01:30:00Z");
        assert_eq!(end.timestamp().to_string(), "2027-03-28T04:00:00Z");
    }

    #[test]
    fn same_day_window() {
        let mut c = calendar();
        c.window = Window::parse("09:00-17:30").unwrap();
        let (start, end) = c.window_on(date(2026, 7, 1)).unwrap();
        assert_eq!(start.date(), end.date());
        assert_eq!(end.timestamp().to_string(), "2026-07-01T16:30:00Z");
    }

    #[test]
    fn bank_holidays_blackouts_and_weekends() {
        let c = calendar();
        let days: Vec<(Date, DayKind, u64)> = c
            .slots_from(date(2026, 12, 23))
            .take(5)
            .map(|s| s.map(|s| (s.date, s.kind, s.capacity)))
            .collect::<Result<_, _>>()
            .unwrap();
        // 24th blackout, 25th Christmas, 28th substitute Boxing Day.
        assert_eq!(
            days,
            vec![
                (date(2026, 12, 23), DayKind::Weekday, 22_000),
                (date(2026, 12, 26), DayKind::Weekend, 83_000),
                (date(2026, 12, 27), DayKind::Weekend, 83_000),
                (date(2026, 12, 29), DayKind::Weekday, 22_000),
                (date(2026, 12, 30), DayKind::Weekday, 22_000),
            ]
        );
        assert_eq!(
            c.closed.get(&date(2027, 12, 28)).map(String::as_str),
            Some("Boxing Day")
        );
        assert!(c.closed.contains_key(&date(2028, 1, 3)));
    }

    #[test]
    fn prestage_start_is_calendar_days_before_across_dst() {
        let c = calendar();
        let slot = c.slot(date(2026, 10, 27)).unwrap().unwrap();
        // 20:00 local seven days earlier, in BST: 19:00 UTC on the 20th.
        assert_eq!(
            slot.prestage_start.timestamp().to_string(),
            "2026-10-20T19:00:00Z"
        );
        assert_eq!(slot.start.timestamp().to_string(), "2026-10-27T20:00:00Z");
    }

    #[test]
    fn bad_bank_holiday_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h.json");
        std::fs::write(
            &p,
            "{\n \"scotland\": {\"division\":\"scotland\",\"events\":[]}\n}",
        )
        .unwrap();
        let e = read_bank_holidays(&p, "england-and-wales").unwrap_err();
        assert!(e.to_string().contains("scotland"), "{e}");
        std::fs::write(&p, "{\n \"england-and-wales\": {\"events\":[{\"title\":\"x\",\"date\":\"2026-13-01\"}]}\n}").unwrap();
        let e = read_bank_holidays(&p, "england-and-wales").unwrap_err();
        assert!(matches!(e, CalendarError::Format { line: 2, .. }), "{e}");
    }
}
