//! The run engine: submitter, poller, completer and notifier on one clock, with rate limits.

pub mod jobs;
pub mod run;
pub mod state;
