//! reseat's integration tests: one binary, a module per area.
#![allow(clippy::unwrap_used)]

mod atlassian;
mod cli;
mod queue;
mod restore;
mod schedule;
mod server;
mod sim;
mod support;
mod sweep;
