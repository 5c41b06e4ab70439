//! Money: what a seat costs (`[billing]`, [`config`]), exact amounts ([`money`]), the
//! savings the ledger's reclaimed seats stand for ([`savings`]: realised to date and the
//! run rate per month, per site and product), the monthly report ([`report`]: CSV and
//! JSON, for `reseat report savings` and the overview's download), and the seats forecast
//! at the next renewal ([`forecast`]).
//!
//! Nothing here records anything: savings are computed from the ledger
//! ([`crate::ledger::free_periods`]) and seat counts from the stored plans, every time.

pub mod config;
pub mod forecast;
pub mod money;
pub mod report;
pub mod savings;

pub use config::{BillingConfig, Cycle, Price, PriceList};
pub use forecast::SeatForecast;
pub use money::{Currency, Minor};
pub use savings::{MonthRow, Savings, SeatTotals};

use crate::app::AppState;

/// The prices in force (config validated them at start).
pub fn price_list(state: &AppState) -> PriceList {
    let sites = state.site_names();
    let sites: Vec<&str> = sites.iter().map(String::as_str).collect();
    PriceList::new(state.config.billing.prices(&sites).unwrap_or_default())
}

/// Savings to date, now.
pub async fn savings(state: &AppState) -> Result<Savings, sqlx::Error> {
    let mut conn = state.db.pool().acquire().await?;
    let periods = crate::ledger::free_periods(&mut conn).await?;
    Ok(savings::compute(
        periods,
        &price_list(state),
        state.db.now_ms(),
    ))
}

/// The seat forecasts at the configured renewal date; none without one.
pub async fn forecasts(state: &AppState) -> Result<Vec<SeatForecast>, sqlx::Error> {
    let Ok(Some(renewal)) = state.config.billing.renewal_date() else {
        return Ok(Vec::new());
    };
    let mut conn = state.db.pool().acquire().await?;
    forecast::forecast(&mut conn, renewal, state.db.now_ms()).await
}
