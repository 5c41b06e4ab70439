//! reseat's integration tests: one binary, a module per area.
#![allow(clippy::unwrap_used)]

mod cli;
mod notify;
mod queue;
mod server;
mod smtp;
mod support;
