//! Sweep: finding inactive users per product, planning, warning and removing with a journal.

pub mod config;
