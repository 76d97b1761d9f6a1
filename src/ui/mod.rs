//! What operators see: progress while a run goes, the run summary, and reports to hand on.
//! Nothing here changes a run: the reporter only reads [`Snapshot`](crate::engine::run::Snapshot)s.

pub mod progress;
pub mod report;
pub mod summary;
pub mod watch;

/// Groups digits in threes: 2095779 -> "2,095,779".
pub fn thousands(n: u64) -> String {
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
