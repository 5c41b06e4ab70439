//! The Atlassian client against a recording fake server (and a scripted transport for the
//! paused-clock tests): pagination, retries, errors, membership idempotence, secrets.

mod fake;
mod spec;
