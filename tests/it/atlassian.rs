//! The Atlassian client against a recording fake server (and a scripted transport for the
//! paused-clock tests): spec conformance, pagination, retries, errors, membership
//! idempotence, secrets.

mod against_sim;
mod failures;
mod fake;
mod paging;
mod spec;
