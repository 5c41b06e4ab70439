//! Sweep: finding inactive users per product, planning, warning and removing with a journal.
//!
//! - [`population`]: access groups per product, their members, protections, governance;
//! - [`policy`]: the decision for one user × product, with its reason;
//! - [`plan`]: `reseat sweep plan`, stored in `plans` / `plan_items`;
//! - [`apply`]: `reseat sweep apply`, guards, the ladder, the journal, resumable;
//! - [`roles`]: how each seat is held (groups, direct, inferred, IdP-managed), taking
//!   direct roles away, verifying the seat is gone, re-granting on restore;
//! - [`notify`]: the seam for warning emails;
//! - [`scope`]: whether a credential's role and scope cover a plan or its items;
//! - [`store`]: the SQL.
//!
//! Activity data comes from [`crate::activity`].

pub mod apply;
pub mod config;
pub mod item;
pub mod job;
pub mod notify;
pub mod plan;
pub mod policy;
pub mod population;
pub mod roles;
pub mod run_lease;
pub mod schedule;
pub mod scope;
pub mod store;

pub use apply::{ApplyOptions, ApplyReport, apply};
pub use plan::{Planned, Source, plan, plan_sharing};
pub use policy::Decision;

use crate::activity::csv::CsvError;
use crate::atlassian::AtlassianError;
use population::PopulationError;

/// Why a plan or an apply stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("sweep: {0}")]
    Config(String),
    #[error("sweep: {0}")]
    Population(#[from] PopulationError),
    #[error("sweep: governance check failed (see sweep.governance): {}", .0.join("; "))]
    Governance(Vec<String>),
    #[error("sweep: --source csv: {0}")]
    Csv(#[from] CsvError),
    #[error("sweep: Atlassian: {0}")]
    Atlassian(#[from] AtlassianError),
    #[error("sweep: database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("sweep: aborted before any change: {0}")]
    Aborted(String),
    #[error("sweep: no plan {}; run `reseat sweep plan` first", .0.as_deref().map(|id| format!("with id {id}")).unwrap_or_else(|| "yet".to_owned()))]
    NoPlan(Option<String>),
    #[error("sweep: sweep.mode is live and this changes Atlassian: re-run with --yes to confirm")]
    NeedsConfirmation,
    /// A stored plan or run summary that does not parse, or does not match its items.
    #[error("sweep: {0}")]
    Summary(String),
    /// Another apply holds the site's lease ([`run_lease`]).
    #[error("sweep: another apply is running on {site}: {running}")]
    Busy {
        site: String,
        running: String,
        holder: String,
    },
    /// Outside the credential's role or scope ([`scope`]); nothing was changed.
    #[error("sweep: {0}")]
    Refused(#[from] crate::web::config::Refused),
}

/// What one site's part of a run of several sites came to.
pub type SiteOutcome<T> = (String, Result<T, SweepError>);

/// Plans every site in `sites` side by side, reading the org's directory listing once for
/// all of them. Each site gets its own plan; one site's error does not stop the others.
pub async fn plan_sites(
    sites: &[crate::app::AppState],
    sources: &[Source],
    now: chrono::DateTime<chrono::Utc>,
    bar: &indicatif::ProgressBar,
) -> Vec<SiteOutcome<Planned>> {
    let listing = crate::activity::api::OrgListing::new();
    let listing = &listing;
    futures_util::future::join_all(sites.iter().map(|state| async move {
        let planned = plan_sharing(state, sources, now, bar, Some(listing)).await;
        (state.site().to_owned(), planned)
    }))
    .await
}

/// `reseat sweep` and the schedule over every site in `sites`, side by side: each site
/// under its own apply lease, from before its plan to the end of its apply; the org's
/// listing read once for all of them. The admin API's limit is the org's and shared; each
/// site's Jira and Confluence limits are its own.
pub async fn plan_and_apply_sites(
    sites: &[crate::app::AppState],
    sources: &[Source],
    bar: &indicatif::ProgressBar,
    options: &ApplyOptions,
) -> Vec<SiteOutcome<(Planned, ApplyReport)>> {
    let listing = crate::activity::api::OrgListing::new();
    let listing = &listing;
    futures_util::future::join_all(sites.iter().map(|state| async move {
        let result = async {
            let lease = run_lease::acquire(&state.db, state.site()).await?;
            let result = async {
                let planned = plan_sharing(state, sources, options.now, bar, Some(listing)).await?;
                let report =
                    apply::apply_leased(state, &lease, Some(&planned.plan_id), options).await;
                Ok((planned, report?))
            }
            .await;
            lease.release().await;
            result
        }
        .await;
        (state.site().to_owned(), result)
    }))
    .await
}
