//! The run engine: submitter, poller, completer and notifier on one clock, with rate limits.

pub mod clock;
pub mod limits;

pub use clock::{Clock, ClockSpec};
