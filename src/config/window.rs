//! A daily window in local time: `schedule.cutover_window`, `run.prestage_window`,
//! `notices.quiet_hours`.

use jiff::civil::Time;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_parsing() {
        let w = Window::parse("09:30-17:00").unwrap();
        assert!(!w.crosses_midnight());
        assert!(Window::parse("20:00-20:00").is_err());
        assert!(Window::parse("20:60-06:00").is_err());
        assert!(Window::parse("2000-0600").is_err());
    }
}
