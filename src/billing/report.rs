//! The monthly savings report: one row per site × product × month, from the first month a
//! seat of that site and product was reclaimed to the current one. As CSV (through the one
//! CSV writer, [`crate::spreadsheet`]) or JSON; `reseat report savings` and the overview's
//! download links write it.

use serde::Serialize;

use super::savings::Savings;

/// The CSV columns.
pub const COLUMNS: [&str; 10] = [
    "month",
    "site",
    "product",
    "product_name",
    "reclaimed",
    "restored",
    "free_at_end",
    "seat_days",
    "currency",
    "saved",
];

/// The report as CSV.
pub fn csv(savings: &Savings) -> Result<Vec<u8>, String> {
    let mut writer = crate::spreadsheet::CsvWriter::in_memory();
    let failed = |e: csv::Error| format!("cannot write the report: {e}");
    writer.row(COLUMNS).map_err(failed)?;
    let currency = savings.currency.map(|c| c.code()).unwrap_or_default();
    for row in &savings.months {
        writer
            .row([
                row.month.clone(),
                row.site.clone(),
                row.product.clone(),
                crate::web::admin::pages::product_label(&row.product),
                row.reclaimed.to_string(),
                row.restored.to_string(),
                row.free_at_end.to_string(),
                row.seat_days.to_string(),
                if row.saved.is_some() {
                    currency.to_string()
                } else {
                    String::new()
                },
                savings.format(row.saved),
            ])
            .map_err(failed)?;
    }
    writer
        .into_inner()
        .map_err(|e| format!("cannot write the report: {e}"))
}

#[derive(Serialize)]
struct JsonReport<'a> {
    /// ISO 4217; null without prices.
    currency: Option<&'static str>,
    /// Realised savings to date (the sum of `rows[].saved`).
    saved: Option<String>,
    /// Seats free now × their monthly price.
    run_rate_per_month: Option<String>,
    rows: Vec<JsonRow<'a>>,
}

#[derive(Serialize)]
struct JsonRow<'a> {
    month: &'a str,
    site: &'a str,
    product: &'a str,
    reclaimed: u64,
    restored: u64,
    free_at_end: u64,
    seat_days: u64,
    /// A decimal string (exact), null without a price.
    saved: Option<String>,
}

/// The report as JSON.
pub fn json(savings: &Savings) -> Result<Vec<u8>, String> {
    let priced = savings.currency.is_some();
    let report = JsonReport {
        currency: savings.currency.map(|c| c.code()),
        saved: priced.then(|| savings.format(Some(savings.saved()))),
        run_rate_per_month: priced.then(|| savings.format(Some(savings.run_rate()))),
        rows: savings
            .months
            .iter()
            .map(|row| JsonRow {
                month: &row.month,
                site: &row.site,
                product: &row.product,
                reclaimed: row.reclaimed,
                restored: row.restored,
                free_at_end: row.free_at_end,
                seat_days: row.seat_days,
                saved: row.saved.map(|_| savings.format(row.saved)),
            })
            .collect(),
    };
    let mut out = serde_json::to_vec_pretty(&report).map_err(|e| e.to_string())?;
    out.push(b'\n');
    Ok(out)
}

/// `csv` or `json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    pub fn render(self, savings: &Savings) -> Result<Vec<u8>, String> {
        match self {
            Format::Csv => csv(savings),
            Format::Json => json(savings),
        }
    }
}
