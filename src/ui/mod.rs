//! What operators see: progress while a run goes, the run summary, and reports to hand on.
//! Nothing here changes a run: the reporter only reads [`Snapshot`](crate::engine::Snapshot)s.

pub mod metrics;
pub mod progress;
pub mod report;
pub mod summary;
pub mod watch;
