//! Bar charts drawn on the server: the geometry is computed here and the SVG is written by
//! the page's template (so it is escaped like the rest of the page and needs no script).

use super::store::DayCount;

/// Plot area and margins of every chart, in SVG user units.
pub const WIDTH: i64 = 600;
pub const HEIGHT: i64 = 180;
const LEFT: i64 = 36;
const TOP: i64 = 10;
const BOTTOM: i64 = 24;

/// One bar, in SVG coordinates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub x: i64,
    pub y: i64,
    pub width: i64,
    pub height: i64,
    pub value: i64,
    /// `2025-01-31: 4`, the bar's tooltip.
    pub label: String,
    /// The series' CSS class: `value` (the first series) or `second`.
    pub class: &'static str,
}

/// A chart ready for the template.
#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub width: i64,
    pub height: i64,
    pub bars: Vec<Bar>,
    pub max: i64,
    pub total: i64,
    /// Where the plot area starts and ends, for the axes.
    pub left: i64,
    pub top: i64,
    pub baseline: i64,
    pub first_day: String,
    pub last_day: String,
    /// The sentence under the chart (and its accessible name).
    pub caption: String,
    /// The series and their CSS classes, for the legend (empty for one series).
    pub legend: Vec<(&'static str, String)>,
}

/// One bar per day for the `days` days ending with `today` (days since the epoch); days
/// without a count are zero.
pub fn daily(title: &str, today: i64, days: i64, counts: &[DayCount]) -> Chart {
    let days = days.max(1);
    let first = today - days + 1;
    let mut values = vec![0i64; usize::try_from(days).unwrap_or(1)];
    for count in counts {
        if let Ok(index) = usize::try_from(count.day - first)
            && let Some(slot) = values.get_mut(index)
        {
            *slot += count.count;
        }
    }
    let max = values.iter().copied().max().unwrap_or(0);
    let total = values.iter().sum();
    let baseline = HEIGHT - BOTTOM;
    let plot_height = baseline - TOP;
    let step = (WIDTH - LEFT) / days;
    let bars = values
        .iter()
        .enumerate()
        .map(|(index, &value)| {
            let index = i64::try_from(index).unwrap_or(0);
            let height = if max > 0 {
                (value * plot_height / max).max(i64::from(value > 0))
            } else {
                0
            };
            Bar {
                x: LEFT + index * step + 1,
                y: baseline - height,
                width: (step - 2).max(1),
                height,
                value,
                label: format!("{}: {value}", day_label(first + index)),
                class: "value",
            }
        })
        .collect();
    Chart {
        caption: format!("{title}: {total} in the last {days} days."),
        legend: Vec::new(),
        title: title.to_string(),
        width: WIDTH,
        height: HEIGHT,
        bars,
        max,
        total,
        left: LEFT,
        top: TOP,
        baseline,
        first_day: day_label(first),
        last_day: day_label(today),
    }
}

/// Two series side by side per day (e.g. seats reclaimed and seats given back) for the
/// `days` days ending with `today`, on one scale.
pub fn daily_pair(title: &str, today: i64, days: i64, series: [(&str, &[DayCount]); 2]) -> Chart {
    let first_series = daily(title, today, days, series[0].1);
    let second_series = daily(title, today, days, series[1].1);
    let max = first_series.max.max(second_series.max);
    let plot_height = first_series.baseline - TOP;
    let mut bars = Vec::new();
    for (class, name, chart) in [
        ("value", series[0].0, &first_series),
        ("second", series[1].0, &second_series),
    ] {
        for bar in &chart.bars {
            let half = (bar.width / 2).max(1);
            let height = if max > 0 {
                (bar.value * plot_height / max).max(i64::from(bar.value > 0))
            } else {
                0
            };
            bars.push(Bar {
                x: if class == "value" {
                    bar.x
                } else {
                    bar.x + half
                },
                y: chart.baseline - height,
                width: half,
                height,
                value: bar.value,
                label: format!("{} {name}", bar.label),
                class,
            });
        }
    }
    Chart {
        caption: format!(
            "{title}: {} {}, {} {} in the last {} days.",
            first_series.total,
            series[0].0,
            second_series.total,
            series[1].0,
            days.max(1)
        ),
        legend: vec![
            ("value", series[0].0.to_string()),
            ("second", series[1].0.to_string()),
        ],
        bars,
        max,
        total: first_series.total + second_series.total,
        ..first_series
    }
}

fn day_label(day: i64) -> String {
    super::pages::date(day * 86_400_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_day_and_missing_days_are_zero() {
        let today = 20_000;
        let chart = daily(
            "t",
            today,
            3,
            &[
                DayCount {
                    day: today,
                    count: 4,
                },
                DayCount {
                    day: today - 2,
                    count: 2,
                },
                DayCount {
                    day: today - 10,
                    count: 99,
                },
            ],
        );
        assert_eq!(chart.bars.len(), 3);
        assert_eq!(chart.max, 4);
        assert_eq!(chart.total, 6);
        let heights: Vec<i64> = chart.bars.iter().map(|b| b.height).collect();
        let full = chart.baseline - chart.top;
        assert_eq!(heights, vec![full / 2, 0, full]);
        assert!(chart.bars[2].label.ends_with(": 4"));
        assert!(chart.bars.iter().all(|b| b.y + b.height == chart.baseline));
    }

    #[test]
    fn two_series_share_one_scale_side_by_side() {
        let today = 20_000;
        let chart = daily_pair(
            "t",
            today,
            2,
            [
                (
                    "reclaimed",
                    &[DayCount {
                        day: today,
                        count: 4,
                    }],
                ),
                (
                    "restored",
                    &[DayCount {
                        day: today,
                        count: 2,
                    }],
                ),
            ],
        );
        assert_eq!(chart.bars.len(), 4);
        assert_eq!(chart.max, 4);
        let full = chart.baseline - chart.top;
        assert_eq!(chart.bars[1].height, full);
        assert_eq!(chart.bars[3].height, full / 2);
        assert!(chart.bars[3].x > chart.bars[1].x);
        assert_eq!(chart.bars[3].class, "second");
        assert!(
            chart.caption.contains("4 reclaimed, 2 restored"),
            "{}",
            chart.caption
        );
    }
}
