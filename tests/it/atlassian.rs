//! The Atlassian client against a recording fake server (and a scripted transport for the
//! paused-clock tests): spec conformance, pagination, retries, errors, membership
//! idempotence, secrets.

mod failures;
mod fake;
mod paging;
mod spec;
// `against_sim.rs` runs the client against `reseat::sim` (branch `sim`): enable it with
// `mod against_sim;` once that branch is merged. It passed against sim commit 3a3d149.
