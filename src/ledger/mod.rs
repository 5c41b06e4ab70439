//! The ledger: what reseat took and gave back, in one place.
//!
//! - [`journal`]: every membership reseat took away (`removing` before the call is sent,
//!   `removed` once it answered, `not_member` in the one case documented there) and gave
//!   back (`restored`), and [`journal::reclaimed_seats`], the one count of seats reclaimed
//!   that every report reads (sweep, restore, digest, admin pages, API), and
//!   [`journal::free_periods`], the times each reclaimed seat was free, that savings in
//!   money are computed from (`crate::billing`);
//! - [`keeps`]: "keep my access" until a date;
//! - [`suspensions`]: the org-level suspensions the sweep's ladder made, and how they ended;
//! - [`roles`]: the direct roles a sweep revoked and a restore granted back
//!   (`role_journal`), and the items whose seat stayed billed;
//! - [`seat`]: taking and giving back one seat (account, product, site) never interleave:
//!   a claim on the seat is held while either runs.
//!
//! All the SQL of these tables lives here; sweep, restore, the digest and the pages call it.

pub mod grants;
pub mod journal;
pub mod keeps;
pub mod roles;
pub mod seat;
pub mod suspensions;

pub use journal::{
    FreePeriod, JournalEntry, JournalRecord, ReclaimedSeats, RemovalIntent, free_periods,
    journal_counts, journal_of, reclaimed_seats, taken_groups,
};
pub use seat::{Seat, SeatBusy, SeatClaim};
pub use suspensions::SuspensionEnd;
