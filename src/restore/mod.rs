//! Restore: requests for access from the JSM portal, signed links and webhooks, decided by
//! one rule engine, processed from the durable queue, answered where they came from.

pub mod rules;
pub mod config;
pub mod signature;
