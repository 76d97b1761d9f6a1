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
    }
}
