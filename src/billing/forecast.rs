//! The seats used at the next renewal, forecast from their trend.
//!
//! Every plan records how many users hold each product on its site when it was made
//! (`plans.summary`, `products.<key>.users`): those are the seat counts over time, one
//! reading per plan. The forecast is the least-squares line through the readings of the
//! last 365 days (time → seats), read at the renewal date (`billing.renewal`, midnight
//! UTC), rounded to a whole seat and never below zero. With one reading the line is flat.
//! A straight line is simple and honest about what it is: it follows the trend the sweeps
//! make, it does not know about hiring plans.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::{Any, AnyConnection};

/// How far back readings count.
const WINDOW_MS: i64 = 365 * 86_400_000;

/// The forecast for one site and product: the least-squares trend of its seat counts (one
/// per plan), read at the renewal; `GET /api/v1/stats` shows it as it is.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SeatForecast {
    pub site: String,
    pub product: String,
    /// Seats held at the newest reading.
    pub current: u64,
    /// Seats forecast at the renewal date.
    pub at_renewal: u64,
    /// `2027-03-01`.
    pub renewal: String,
    /// Readings the line was fitted to.
    pub readings: u64,
    /// The change per 30 days the line shows (negative: falling).
    pub per_30_days: f64,
}

/// One reading: (UTC ms, seats).
pub type Reading = (i64, f64);

/// The forecasts at `renewal` from the plans of the last 365 days before `now`.
pub async fn forecast(
    conn: &mut AnyConnection,
    renewal: NaiveDate,
    now: i64,
) -> Result<Vec<SeatForecast>, sqlx::Error> {
    let rows: Vec<(String, String, i64, String)> = sqlx::query_as::<Any, (String, String, i64, String)>(
        "SELECT id, site, created_at, summary FROM plans WHERE created_at >= $1 ORDER BY created_at, id",
    )
    .bind(now - WINDOW_MS)
    .fetch_all(conn)
    .await?;
    let mut readings: BTreeMap<(String, String), Vec<Reading>> = BTreeMap::new();
    for (id, site, at, summary) in rows {
        let summary = match crate::sweep::plan::PlanSummary::parse(&id, &summary) {
            Ok(summary) => summary,
            Err(error) => {
                tracing::warn!(%error, "forecast: a plan's summary is left out");
                continue;
            }
        };
        for (product, counts) in summary.products {
            #[allow(clippy::cast_precision_loss)]
            let seats = counts.users as f64;
            readings
                .entry((site.clone(), product))
                .or_default()
                .push((at, seats));
        }
    }
    let target = renewal
        .and_hms_opt(0, 0, 0)
        .map_or(now, |at| at.and_utc().timestamp_millis());
    Ok(readings
        .into_iter()
        .map(|((site, product), points)| {
            let (value, slope) = fit(&points, target);
            SeatForecast {
                site,
                product,
                current: points.last().map_or(0, |p| p.1 as u64),
                at_renewal: value.round().max(0.0) as u64,
                renewal: renewal.format("%Y-%m-%d").to_string(),
                readings: points.len() as u64,
                per_30_days: (slope * 30.0 * 86_400_000.0 * 10.0).round() / 10.0,
            }
        })
        .collect())
}

/// The least-squares line through `points`, read at `at`: (value, slope per ms).
pub fn fit(points: &[Reading], at: i64) -> (f64, f64) {
    if points.is_empty() {
        return (0.0, 0.0);
    }
    #[allow(clippy::cast_precision_loss)]
    let n = points.len() as f64;
    // Times relative to the first reading keep the sums small.
    let origin = points[0].0;
    #[allow(clippy::cast_precision_loss)]
    let xs: Vec<f64> = points.iter().map(|p| (p.0 - origin) as f64).collect();
    let mean_x = xs.iter().sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = xs.iter().map(|x| (x - mean_x).powi(2)).sum();
    let sxy: f64 = xs
        .iter()
        .zip(points)
        .map(|(x, p)| (x - mean_x) * (p.1 - mean_y))
        .sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    #[allow(clippy::cast_precision_loss)]
    let x = (at - origin) as f64;
    (mean_y + slope * (x - mean_x), slope)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn the_line_through_falling_counts_reaches_the_renewal() {
        // 100, 90, 80 seats 10 days apart: 60 seats 20 days after the last.
        let points = [(0, 100.0), (10 * DAY, 90.0), (20 * DAY, 80.0)];
        let (value, slope) = fit(&points, 40 * DAY);
        assert!((value - 60.0).abs() < 1e-9, "{value}");
        assert!((slope * 30.0 * DAY as f64 + 30.0).abs() < 1e-9);
        // One reading: flat.
        assert_eq!(fit(&[(5, 42.0)], 99 * DAY), (42.0, 0.0));
        assert_eq!(fit(&[], 0), (0.0, 0.0));
    }
}
