//! reseat: reclaims idle Atlassian Cloud seats and gives access back on request.
//!
//! The binary in `main.rs` only parses the command line; everything else lives here,
//! one module per area of the domain (see `docs/architecture.md`).
#![forbid(unsafe_code)]

pub mod activity;
pub mod app;
pub mod atlassian;
pub mod audit;
pub mod billing;
pub mod cli;
pub mod config;
pub mod demo;
pub mod ledger;
pub mod metrics;
pub mod notify;
pub mod queue;
pub mod restore;
pub mod schedule;
pub use reseat_sim as sim;
pub mod spreadsheet;
pub mod store;
pub mod sweep;
pub mod telemetry;
pub mod web;
