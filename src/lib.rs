//! mailwave: orchestrates bulk mailbox migrations into Exchange Online.
//!
//! The binary is a thin shell over this library: [`cli::main`] parses the command line and calls the
//! modules below, so integration tests can drive the same code in-process.

pub mod analytics;
pub mod auth;
pub mod cli;
pub mod config;
pub mod directory;
pub mod engine;
pub mod exchange;
pub mod forecast;
pub mod format;
pub mod http;
pub mod inventory;
pub mod plan;
pub mod private;
pub mod secrets;
pub mod sim;
pub mod store;
pub mod text;
pub mod time;
pub mod ui;
