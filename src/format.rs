//! Numbers and lists as operators read them. A leaf.

/// The first `n` items joined with ", ", then "and N more": a long list in one line.
pub(crate) fn few(list: &[String], n: usize) -> String {
    let mut s = list.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if list.len() > n {
        s.push_str(&format!(" and {} more", list.len() - n));
    }
    s
}

/// Groups digits in threes: 2095779 -> "2,095,779".
pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in decimal units: 1_234_000_000 -> "1.23 GB".
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

/// Minutes as an operator reads a wait: "45m", "2h05m", "3d04h".
pub(crate) fn minutes(m: f64) -> String {
    if !m.is_finite() {
        return "-".into();
    }
    let sign = if m < 0.0 { "-" } else { "" };
    let total = m.abs().round() as u64;
    let (d, h, mm) = (total / 1440, total % 1440 / 60, total % 60);
    if d > 0 {
        format!("{sign}{d}d{h:02}h")
    } else if h > 0 {
        format!("{sign}{h}h{mm:02}m")
    } else {
        format!("{sign}{mm}m")
    }
}

/// A moment as people read it, in the plan's zone with its abbreviation: "Mon 11 Jan 2027 20:00
/// GMT". Every time a person reads (status, watch, summaries, reports, errors) goes through here;
/// JSON and csv carry RFC 3339 UTC instead.
pub fn local(t: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%a %-d %b %Y %H:%M %Z")
        .to_string()
}

/// [`local`] of a time stored as RFC 3339 text (the status JSON's fields); text that is not a
/// time is shown as it is.
pub fn local_text(rfc3339: &str, tz: &jiff::tz::TimeZone) -> String {
    rfc3339
        .parse::<jiff::Timestamp>()
        .map(|t| local(t, tz))
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// How long ago, in words: "40 minutes", "5 hours", "3 days".
pub fn age(d: jiff::SignedDuration) -> String {
    let minutes = (d.as_secs() / 60).max(0);
    let (n, unit) = match minutes {
        0..120 => (minutes, "minute"),
        120..2880 => (minutes / 60, "hour"),
        _ => (minutes / 1440, "day"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// At most `width` characters of a text, for a message or a column: a longer one is cut and ends
/// in "...".
pub(crate) fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut s: String = text.chars().take(width.saturating_sub(3)).collect();
    s.push_str("...");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_and_human() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(2_095_779), "2,095,779");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_234_000_000), "1.23 GB");
        assert_eq!(human_bytes(2_500_000_000_000), "2.50 TB");
        assert_eq!(minutes(44.6), "45m");
        assert_eq!(minutes(125.0), "2h05m");
        assert_eq!(minutes(-30.0), "-30m");
        assert_eq!(minutes(1440.0 * 3.0 + 240.0), "3d04h");
        assert_eq!(clip("abcdefgh", 6), "abc...");
        assert_eq!(clip("abc", 4), "abc");
    }

    #[test]
    fn local_times_name_the_zone_and_follow_its_clock_changes() {
        let london = jiff::tz::TimeZone::get("Europe/London").unwrap();
        let winter: jiff::Timestamp = "2027-01-11T20:00:00Z".parse().unwrap();
        assert_eq!(local(winter, &london), "Mon 11 Jan 2027 20:00 GMT");
        let summer: jiff::Timestamp = "2027-07-05T19:00:00Z".parse().unwrap();
        assert_eq!(local(summer, &london), "Mon 5 Jul 2027 20:00 BST");
        assert_eq!(
            local_text("2027-01-11T20:00:00Z", &jiff::tz::TimeZone::UTC),
            "Mon 11 Jan 2027 20:00 UTC"
        );
        assert_eq!(local_text("-", &london), "-");
        let mins = jiff::SignedDuration::from_mins;
        assert_eq!(age(mins(1)), "1 minute");
        assert_eq!(age(mins(119)), "119 minutes");
        assert_eq!(age(mins(300)), "5 hours");
        assert_eq!(age(mins(3 * 1440 + 100)), "3 days");
    }
}
