//! The run engine: submitter, poller, completer and notifier on one clock, with rate limits.

pub mod clock;
pub mod jobs;
pub mod limits;
pub mod run;
pub mod state;

pub use clock::{Clock, ClockSpec};
