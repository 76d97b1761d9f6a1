//! The run engine: the coordinator (submitter, poller, completer) and its jobs on one clock, with
//! rate limits, the service's health, and the run session around them.

pub mod attention;
pub mod coordinator;
pub mod health;
pub mod jobs;
pub mod licences;
pub mod notices;
pub mod policy;
pub mod session;
pub mod state;
pub mod summary;

pub use coordinator::{EngineError, RunContext, RunOptions};
pub use summary::{Alert, RunOutcome, RunSummary, Snapshot, WaveProgress};
