//! reseat's integration tests: one binary, a module per area.
#![allow(clippy::unwrap_used)]

mod admin;
mod api;
mod atlassian;
mod browser;
mod cli;
mod clock;
mod csv_files;
mod csv_truth;
mod digest;
mod grants;
mod ledger;
mod notify;
mod queue;
mod restore;
mod roles;
mod savings;
mod schedule;
mod server;
mod signin;
mod sim;
mod sites;
mod slack;
mod smtp;
mod support;
mod sweep;
mod teams;
