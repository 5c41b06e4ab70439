//! Savings in money, from the times the ledger says each reclaimed seat was free
//! ([`crate::ledger::free_periods`]) and the configured prices.
//!
//! The rule, exactly:
//! - A free period counts in whole days: a seat free from `from` to `to` (its give-back, or
//!   now) saved `floor((to - from) / 24 h)` days. Day `k` is the 24 hours from
//!   `from + k × 24 h`, and belongs to the UTC calendar month (and year) it starts in. A seat
//!   removed on day 1 and given back on day 11 saved 10 days; one given back the same day
//!   saved nothing. A seat whose removal ended `still_billed` has no free period at all.
//! - A day is worth, with a `monthly` price, the price divided by the days of its month;
//!   with an `annual` price, the price divided by the days of its year (365 or 366). A seat
//!   free for a whole month (or year) saved exactly its monthly (or annual) price.
//! - The price is the one configured now, the site's own where it has one; periods of a
//!   product without a price count seats and days but no money.
//! - Sums are exact; each cell of the report (site × product × month) is rounded once, to
//!   the currency's minor unit, half away from zero. Every total (per site and product, and
//!   realised savings to date) is the sum of those rounded cells, so the overview, the API,
//!   the digest and the report always agree to the cent.
//! - The run rate per month is the seats free now times their monthly price (an annual price
//!   over 12), rounded once per site and product.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::Serialize;

use super::config::{Cycle, PriceList};
use super::money::{Currency, Exact, Minor};
use crate::ledger::FreePeriod;

const DAY: i64 = 86_400_000;

/// A (site, product) pair: every figure is kept per site and product.
pub type SeatKey = (String, String);

/// One row of the monthly report: one site, one product, one month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthRow {
    pub site: String,
    pub product: String,
    /// `2026-11`.
    pub month: String,
    /// Free periods that began this month (seats reclaimed).
    pub reclaimed: u64,
    /// Free periods that ended this month (seats given back).
    pub restored: u64,
    /// Seats free at the end of the month (now, for the current month).
    pub free_at_end: u64,
    /// Whole free days that began this month, summed over seats.
    pub seat_days: u64,
    /// Saved this month, in minor units; `None` without a price.
    pub saved: Option<Minor>,
}

/// The figures of one site and product.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SeatTotals {
    pub site: String,
    pub product: String,
    /// Free periods begun (seats reclaimed, counting a seat again after a give-back).
    pub reclaimed: u64,
    /// Free periods ended (seats given back).
    pub restored: u64,
    /// Seats free now.
    pub free_now: u64,
    pub seat_days: u64,
    /// Realised savings to date: the sum of the month rows.
    pub saved: Option<Minor>,
    /// Seats free now × their monthly price.
    pub run_rate: Option<Minor>,
}

/// Savings to date, by site, product and month.
#[derive(Debug, Clone, Default)]
pub struct Savings {
    /// The currency of every price; `None` when no price is configured.
    pub currency: Option<Currency>,
    /// Ordered by site, product, month.
    pub months: Vec<MonthRow>,
    /// Ordered by site, product.
    pub totals: Vec<SeatTotals>,
    pub free_periods: Vec<FreePeriod>,
}

impl Savings {
    /// Realised savings to date over every site and product.
    pub fn saved(&self) -> Minor {
        self.totals.iter().filter_map(|t| t.saved).sum()
    }

    /// The run rate per month over every site and product.
    pub fn run_rate(&self) -> Minor {
        self.totals.iter().filter_map(|t| t.run_rate).sum()
    }

    /// Seats free now, over every site and product.
    pub fn free_now(&self) -> u64 {
        self.totals.iter().map(|t| t.free_now).sum()
    }

    /// An amount as the pages and the report write it (`1234.50`), or empty without prices.
    pub fn format(&self, amount: Option<Minor>) -> String {
        match (self.currency, amount) {
            (Some(currency), Some(amount)) => amount.format(currency),
            _ => String::new(),
        }
    }

    /// `USD 1234.50`, or `-` without prices.
    pub fn label(&self, amount: Minor) -> String {
        match self.currency {
            Some(currency) => format!("{currency} {}", amount.format(currency)),
            None => "-".into(),
        }
    }
}

/// Computes savings from the free periods at `now` (UTC ms).
pub fn compute(periods: Vec<FreePeriod>, prices: &PriceList, now: i64) -> Savings {
    let currency = prices.currency();
    // Per seat key and month (year, month): counters and the exact amount.
    #[derive(Default)]
    struct Cell {
        reclaimed: u64,
        restored: u64,
        seat_days: u64,
        exact: Exact,
    }
    let mut cells: BTreeMap<SeatKey, BTreeMap<(i32, u32), Cell>> = BTreeMap::new();
    let mut free_now: BTreeMap<SeatKey, u64> = BTreeMap::new();
    // Intervals per key, for the seats free at each month's end.
    let mut intervals: BTreeMap<SeatKey, Vec<(i64, i64)>> = BTreeMap::new();
    let current = month_of(now);
    for period in &periods {
        let key = (period.site.clone(), period.product.clone());
        let price = prices.price(&period.site, &period.product);
        let end = period.to.unwrap_or(now).max(period.from);
        let months = cells.entry(key.clone()).or_default();
        months.entry(month_of(period.from)).or_default().reclaimed += 1;
        if let Some(to) = period.to {
            months.entry(month_of(to)).or_default().restored += 1;
        } else {
            *free_now.entry(key.clone()).or_default() += 1;
        }
        intervals
            .entry(key)
            .or_default()
            .push((period.from, period.to.unwrap_or(i64::MAX)));
        let days = (end - period.from) / DAY;
        // Walk the months the days start in.
        let mut k = 0;
        while k < days {
            let start = period.from + k * DAY;
            let (year, month) = month_of(start);
            let next = month_start(next_month((year, month)));
            // Days whose start falls before the next month.
            let in_month = ((next - period.from + DAY - 1) / DAY).min(days) - k;
            let cell = months.entry((year, month)).or_default();
            cell.seat_days += u64::try_from(in_month).unwrap_or(0);
            if let Some(price) = price {
                let length = match price.cycle {
                    Cycle::Monthly => days_in_month(year, month),
                    Cycle::Annual => days_in_year(year),
                };
                cell.exact += Exact::share(price.amount, length, i128::from(in_month));
            }
            k += in_month.max(1);
        }
    }
    let mut savings = Savings {
        currency,
        free_periods: periods,
        ..Savings::default()
    };
    for (key, months) in cells {
        let price = prices.price(&key.0, &key.1);
        let first = months.keys().next().copied().unwrap_or(current);
        let mut totals = SeatTotals {
            site: key.0.clone(),
            product: key.1.clone(),
            free_now: free_now.get(&key).copied().unwrap_or(0),
            saved: price.map(|_| Minor(0)),
            ..SeatTotals::default()
        };
        let mut month = first;
        while month <= current.max(first) {
            let cell = months.get(&month);
            let end = month_start(next_month(month)).min(now);
            let free_at_end = intervals.get(&key).map_or(0, |list| {
                list.iter()
                    .filter(|(from, to)| *from <= end && *to > end)
                    .count()
            }) as u64;
            let saved = match (price, currency) {
                (Some(_), Some(currency)) => {
                    Some(cell.map_or(Minor(0), |c| c.exact.round(currency)))
                }
                _ => None,
            };
            let row = MonthRow {
                site: key.0.clone(),
                product: key.1.clone(),
                month: format!("{:04}-{:02}", month.0, month.1),
                reclaimed: cell.map_or(0, |c| c.reclaimed),
                restored: cell.map_or(0, |c| c.restored),
                free_at_end,
                seat_days: cell.map_or(0, |c| c.seat_days),
                saved,
            };
            totals.reclaimed += row.reclaimed;
            totals.restored += row.restored;
            totals.seat_days += row.seat_days;
            if let (Some(total), Some(saved)) = (totals.saved.as_mut(), saved) {
                *total = *total + saved;
            }
            savings.months.push(row);
            month = next_month(month);
        }
        if let (Some(price), Some(currency)) = (price, currency) {
            let monthly = match price.cycle {
                Cycle::Monthly => Exact::share(price.amount, 1, i128::from(totals.free_now)),
                Cycle::Annual => Exact::share(price.amount, 12, i128::from(totals.free_now)),
            };
            totals.run_rate = Some(monthly.round(currency));
        }
        savings.totals.push(totals);
    }
    savings
}

fn month_of(ms: i64) -> (i32, u32) {
    let at: DateTime<Utc> = crate::store::time::from_ms(ms);
    (at.year(), at.month())
}

fn next_month((year, month): (i32, u32)) -> (i32, u32) {
    if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    }
}

fn month_start((year, month): (i32, u32)) -> i64 {
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(i64::MAX, |d| d.and_utc().timestamp_millis())
}

fn days_in_month(year: i32, month: u32) -> i128 {
    let start = NaiveDate::from_ymd_opt(year, month, 1);
    let (ny, nm) = next_month((year, month));
    let next = NaiveDate::from_ymd_opt(ny, nm, 1);
    match (start, next) {
        (Some(start), Some(next)) => i128::from((next - start).num_days()),
        _ => 30,
    }
}

fn days_in_year(year: i32) -> i128 {
    if NaiveDate::from_ymd_opt(year, 2, 29).is_some() {
        366
    } else {
        365
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::billing::config::BillingConfig;

    fn prices(text: &str) -> PriceList {
        let config: BillingConfig = toml::from_str(text).unwrap();
        PriceList::new(config.prices(&["acme"]).unwrap())
    }

    fn ms(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    fn period(product: &str, from: &str, to: Option<&str>) -> FreePeriod {
        FreePeriod {
            account_id: format!("a-{from}"),
            product: product.into(),
            site: "acme".into(),
            from: ms(from),
            to: to.map(ms),
        }
    }

    const PRICES: &str = r#"
        [[prices]]
        product = "jira-software"
        price = "9.30"
        currency = "USD"
        cycle = "monthly"
        [[prices]]
        product = "confluence"
        price = "73.00"
        currency = "USD"
        cycle = "annual"
    "#;

    #[test]
    fn a_seat_free_from_day_1_to_day_11_saved_ten_days() {
        let savings = compute(
            vec![period(
                "jira-software",
                "2026-11-01T09:00:00Z",
                Some("2026-11-11T09:30:00Z"),
            )],
            &prices(PRICES),
            ms("2026-11-20T00:00:00Z"),
        );
        // 10 days of 9.30 over November's 30 days: 3.10.
        assert_eq!(savings.saved(), Minor(310));
        assert_eq!(savings.run_rate(), Minor(0));
        assert_eq!(savings.months.len(), 1);
        assert_eq!(savings.months[0].seat_days, 10);
        assert_eq!(savings.months[0].restored, 1);
    }

    #[test]
    fn days_belong_to_the_month_they_start_in_and_annual_prices_spread_over_the_year() {
        let savings = compute(
            vec![
                // 20 days: 15 in November (30 days), 5 in December (31 days).
                period(
                    "jira-software",
                    "2026-11-16T12:00:00Z",
                    Some("2026-12-06T13:00:00Z"),
                ),
                // Still free: 5 days of 73.00 a year = 1.00.
                period("confluence", "2026-12-01T00:00:00Z", None),
                // Given back the same day: nothing saved.
                period(
                    "confluence",
                    "2026-12-02T00:00:00Z",
                    Some("2026-12-02T20:00:00Z"),
                ),
            ],
            &prices(PRICES),
            ms("2026-12-06T23:00:00Z"),
        );
        let jira: Vec<_> = savings
            .months
            .iter()
            .filter(|m| m.product == "jira-software")
            .collect();
        assert_eq!(jira.len(), 2);
        assert_eq!((jira[0].month.as_str(), jira[0].seat_days), ("2026-11", 15));
        assert_eq!(jira[0].saved, Some(Minor(465))); // 9.30 × 15/30
        assert_eq!(jira[1].saved, Some(Minor(150))); // 9.30 × 5/31 = 1.4999..
        let confluence = savings
            .totals
            .iter()
            .find(|t| t.product == "confluence")
            .unwrap();
        assert_eq!(confluence.saved, Some(Minor(100)));
        assert_eq!(confluence.free_now, 1);
        assert_eq!(confluence.reclaimed, 2);
        // 73.00 a year is 6.0833 a month.
        assert_eq!(confluence.run_rate, Some(Minor(608)));
        assert_eq!(savings.saved(), Minor(465 + 150 + 100));
    }

    #[test]
    fn a_product_without_a_price_counts_seats_but_no_money() {
        let savings = compute(
            vec![period("jira-service-desk", "2026-11-01T00:00:00Z", None)],
            &prices(PRICES),
            ms("2026-11-04T00:00:00Z"),
        );
        assert_eq!(savings.totals[0].seat_days, 3);
        assert_eq!(savings.totals[0].saved, None);
        assert_eq!(savings.saved(), Minor(0));
        assert_eq!(savings.months[0].free_at_end, 1);
    }
}
