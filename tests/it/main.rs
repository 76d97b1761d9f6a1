//! Integration tests: the real binary, a real SQLite file, the simulator on loopback.

mod actions;
mod attention;
mod cli;
mod contract;
mod crash;
mod cutover;
mod engine;
mod forecast;
mod fuzz;
mod helpers;
mod hostile;
mod layout;
mod live;
mod misbehave;
mod notices;
mod preflight;
mod project;
mod realtime;
mod report;
mod secrets;
mod security;
mod store;
