//! Time for everyone: the [`Clock`] (real, scaled or paused) that the engine, the clients and the
//! simulator read instead of the system clock, and request-rate limits on that clock. A leaf: it
//! imports nothing else of mailwave.

pub mod clock;
pub mod limits;

pub use clock::{Clock, ClockSpec};
