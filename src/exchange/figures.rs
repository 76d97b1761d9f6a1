//! The figures of `Get-MoveRequestStatistics` that explain a move's speed, as Microsoft's
//! AnalyzeMoveRequestStats script reads them: sizes, durations (TimeSpan strings), stalls by cause,
//! the key timestamps, the data consistency score and where the mailbox came from and went.

use jiff::Timestamp;
use serde_json::Value;

/// Where a stall comes from: Read* stalls wait on the source (on-premises) side, Write*, content
/// indexing and high availability on the target (Exchange Online); a locked mailbox is neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
    Either,
}

/// A stall cause: the statistics field, the short name used in the store and in reports, its side.
pub struct StallCause {
    pub field: &'static str,
    pub name: &'static str,
    pub side: Side,
}

/// Every `TotalStalledDueTo...` field, in the order the store and the reports keep them.
pub const STALL_CAUSES: [StallCause; 9] = [
    StallCause {
        field: "TotalStalledDueToCIDuration",
        name: "content_indexing",
        side: Side::Target,
    },
    StallCause {
        field: "TotalStalledDueToHADuration",
        name: "high_availability",
        side: Side::Target,
    },
    StallCause {
        field: "TotalStalledDueToMailboxLockedDuration",
        name: "mailbox_locked",
        side: Side::Either,
    },
    StallCause {
        field: "TotalStalledDueToReadThrottle",
        name: "read_throttle",
        side: Side::Source,
    },
    StallCause {
        field: "TotalStalledDueToWriteThrottle",
        name: "write_throttle",
        side: Side::Target,
    },
    StallCause {
        field: "TotalStalledDueToReadCpu",
        name: "read_cpu",
        side: Side::Source,
    },
    StallCause {
        field: "TotalStalledDueToWriteCpu",
        name: "write_cpu",
        side: Side::Target,
    },
    StallCause {
        field: "TotalStalledDueToReadUnknown",
        name: "read_unknown",
        side: Side::Source,
    },
    StallCause {
        field: "TotalStalledDueToWriteUnknown",
        name: "write_unknown",
        side: Side::Target,
    },
];

/// The durations of a move besides its stalls, statistics field and store name.
pub const DURATIONS: [(&str, &str); 7] = [
    ("OverallDuration", "overall"),
    ("TotalQueuedDuration", "queued"),
    ("TotalInProgressDuration", "in_progress"),
    ("TotalIdleDuration", "idle"),
    ("TotalSuspendedDuration", "suspended"),
    ("TotalFailedDuration", "failed"),
    ("TotalTransientFailureDuration", "transient_failure"),
];
pub const OVERALL: usize = 0;
pub const QUEUED: usize = 1;
pub const IN_PROGRESS: usize = 2;
pub const SUSPENDED: usize = 4;
pub const FAILED: usize = 5;
pub const TRANSIENT_FAILURE: usize = 6;

/// The timestamps of a move, statistics field and store name.
pub const TIMESTAMPS: [(&str, &str); 6] = [
    ("QueuedTimestamp", "queued_at"),
    ("StartTimestamp", "started_at"),
    ("InitialSeedingCompletedTimestamp", "seeded_at"),
    ("FinalSyncTimestamp", "final_sync_at"),
    ("CompletionTimestamp", "completed_at"),
    ("CompleteAfter", "complete_after"),
];
pub const STARTED_AT: usize = 1;
pub const SEEDED_AT: usize = 2;
pub const COMPLETED_AT: usize = 4;
pub const COMPLETE_AFTER: usize = 5;

/// What one `Get-MoveRequestStatistics` answer says about a move's speed. Every field may be
/// missing: the service leaves out what does not apply yet, and older builds leave out more.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MoveFigures {
    pub status: String,
    pub total_size: Option<u64>,
    pub archive_size: Option<u64>,
    pub bytes_transferred: Option<u64>,
    pub items_transferred: Option<u64>,
    /// Seconds, by [`DURATIONS`].
    pub durations: [Option<f64>; 7],
    /// Seconds, by [`STALL_CAUSES`].
    pub stalls: [Option<f64>; 9],
    /// By [`TIMESTAMPS`].
    pub times: [Option<Timestamp>; 6],
    pub dcs: Option<String>,
    pub source_server: Option<String>,
    pub source_database: Option<String>,
    pub target_database: Option<String>,
}

impl MoveFigures {
    pub fn parse(v: &Value) -> MoveFigures {
        let text = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(crate::text::name)
        };
        let size = |k: &str| v.get(k).and_then(super::parse_byte_quantified);
        MoveFigures {
            status: text("Status").unwrap_or_default(),
            total_size: size("TotalMailboxSize"),
            archive_size: size("TotalArchiveSize"),
            bytes_transferred: size("BytesTransferred"),
            items_transferred: v.get("ItemsTransferred").and_then(Value::as_u64),
            durations: DURATIONS.map(|(field, _)| v.get(field).and_then(timespan_value)),
            stalls: STALL_CAUSES
                .each_ref()
                .map(|c| v.get(c.field).and_then(timespan_value)),
            times: TIMESTAMPS.map(|(field, _)| v.get(field).and_then(timestamp_value)),
            dcs: text("DataConsistencyScore"),
            source_server: text("SourceServer"),
            source_database: text("SourceDatabase"),
            target_database: text("TargetDatabase"),
        }
    }

    /// Stalled seconds in all.
    pub fn stalled(&self) -> f64 {
        self.stalls.iter().flatten().sum()
    }
}

/// A .NET TimeSpan as the REST API renders it: `[-][d.]hh:mm:ss[.fffffff]`, in seconds. Also takes
/// the object form (`{"TotalSeconds": ...}`) some serializers produce, and a bare number of seconds.
pub fn timespan_value(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => parse_timespan(s),
        Value::Number(n) => n.as_f64().filter(|x| x.is_finite()),
        Value::Object(o) => o
            .get("TotalSeconds")
            .and_then(Value::as_f64)
            .or_else(|| {
                o.get("TotalMilliseconds")
                    .and_then(Value::as_f64)
                    .map(|m| m / 1000.0)
            })
            .or_else(|| o.get("Ticks").and_then(Value::as_f64).map(|t| t / 1e7))
            .filter(|x| x.is_finite()),
        _ => None,
    }
}

pub fn parse_timespan(s: &str) -> Option<f64> {
    let s = s.trim();
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let mut parts = s.split(':');
    let (head, minutes, seconds) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (days, hours) = match head.split_once('.') {
        Some((d, h)) => (digits(d)?, digits(h)?),
        None => (0, digits(head)?),
    };
    let minutes = digits(minutes)?;
    let (whole, fraction) = match seconds.split_once('.') {
        Some((w, f)) => (digits(w)?, f),
        None => (digits(seconds)?, ""),
    };
    if hours > 23 || minutes > 59 || whole > 59 || fraction.len() > 7 {
        return None;
    }
    let fraction = if fraction.is_empty() {
        0.0
    } else {
        digits(fraction)? as f64 / 10f64.powi(fraction.len() as i32)
    };
    let total = ((days * 24 + hours) * 60 + minutes) as f64 * 60.0 + whole as f64 + fraction;
    Some(if negative { -total } else { total })
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A .NET TimeSpan string for `seconds` (the simulator writes what the service writes).
pub fn timespan(seconds: f64) -> String {
    let ticks = (seconds.max(0.0) * 1e7).round() as u64;
    let (whole, fraction) = (ticks / 10_000_000, ticks % 10_000_000);
    let (days, rest) = (whole / 86_400, whole % 86_400);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    let mut out = String::with_capacity(20);
    if days > 0 {
        out.push_str(&format!("{days}."));
    }
    out.push_str(&format!("{h:02}:{m:02}:{s:02}"));
    if fraction > 0 {
        out.push_str(&format!(".{fraction:07}"));
    }
    out
}

/// A timestamp as the service renders it (ISO 8601, with or without a zone; a bare one is UTC), or
/// the older `/Date(ms)/` form.
fn timestamp_value(v: &Value) -> Option<Timestamp> {
    let s = v.as_str()?.trim();
    if let Some(ms) = s
        .strip_prefix("/Date(")
        .and_then(|r| r.strip_suffix(")/"))
        .and_then(|r| r.split(['+', '-']).next())
        .and_then(|n| n.parse::<i64>().ok())
    {
        return Timestamp::from_millisecond(ms).ok();
    }
    super::parse_time(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timespans_in_every_shape_the_service_uses() {
        assert_eq!(parse_timespan("00:00:00"), Some(0.0));
        assert_eq!(parse_timespan("01:02:03"), Some(3723.0));
        assert_eq!(parse_timespan("1.02:03:04.5000000"), Some(93_784.5));
        assert_eq!(
            parse_timespan("12.00:00:00.0000001"),
            Some(1_036_800.000_000_1)
        );
        assert_eq!(parse_timespan("-00:00:01.5"), Some(-1.5));
        for bad in [
            "",
            "1:2",
            "25:00:00",
            "00:60:00",
            "00:00:60",
            "a.00:00:00",
            "00:00:00.12345678",
            "1:2:3:4",
            "00:00:0x",
        ] {
            assert_eq!(parse_timespan(bad), None, "{bad:?}");
        }
        assert_eq!(timespan_value(&json!({"TotalSeconds": 90.0})), Some(90.0));
        assert_eq!(timespan_value(&json!({"Ticks": 15_000_000})), Some(1.5));
        assert_eq!(timespan_value(&json!(null)), None);
        for s in [0.0, 59.9999999, 3600.0, 93_784.5, 1_036_800.25] {
            let text = timespan(s);
            assert!(
                (parse_timespan(&text).unwrap() - s).abs() < 1e-6,
                "{s} -> {text}"
            );
        }
        assert_eq!(timespan(93_784.5), "1.02:03:04.5000000");
    }

    #[test]
    fn figures_read_what_is_there_and_leave_the_rest_empty() {
        let v = json!({
            "Status": "Completed",
            "TotalMailboxSize": "2.5 GB (2,684,354,560 bytes)",
            "TotalArchiveSize": "0 B (0 bytes)",
            "BytesTransferred": "2.6 GB (2,791,728,742 bytes)",
            "ItemsTransferred": 41000,
            "OverallDuration": "1.01:00:00",
            "TotalInProgressDuration": "02:00:00.5000000",
            "TotalStalledDueToWriteThrottle": "00:12:00",
            "TotalStalledDueToReadCpu": {"TotalSeconds": 60},
            "StartTimestamp": "2026-11-20T18:00:00",
            "CompletionTimestamp": "/Date(1763834400000)/",
            "DataConsistencyScore": "Good",
            "SourceServer": "EXCH01.contoso.local",
            "TargetDatabase": ""
        });
        let f = MoveFigures::parse(&v);
        assert_eq!(f.total_size, Some(2_684_354_560));
        assert_eq!(f.archive_size, Some(0));
        assert_eq!(f.bytes_transferred, Some(2_791_728_742));
        assert_eq!(f.durations[OVERALL], Some(90_000.0));
        assert_eq!(f.durations[IN_PROGRESS], Some(7200.5));
        assert_eq!(f.durations[QUEUED], None);
        assert_eq!(f.stalled(), 780.0);
        assert_eq!(
            f.times[1].map(|t| t.to_string()).as_deref(),
            Some("2026-11-20T18:00:00Z")
        );
        assert_eq!(
            f.times[COMPLETED_AT].map(|t| t.as_millisecond()),
            Some(1_763_834_400_000)
        );
        assert_eq!(f.source_server.as_deref(), Some("EXCH01.contoso.local"));
        assert_eq!(f.target_database, None);
        assert_eq!(MoveFigures::parse(&json!({})), MoveFigures::default());
    }
}
