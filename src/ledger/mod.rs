//! The ledger: what reseat took away and gave back, kept in the database.

pub mod roles;
