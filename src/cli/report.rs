//! `report`: what a merchant's accountant asks for. Per UTC day and
//! currency, how many payments and how much money were paid, paid late,
//! mismatched, failed, expired and cancelled, with totals; exact decimals,
//! USD and KHR never added together.
//!
//! A row counts on the day its money arrived (`paid_at`), or, without one,
//! the day it became final (`confirmed_at`). Paid, paid-late and mismatched
//! rows count the money received (`paid_amount` in `paid_currency`: a
//! mismatch paid in the other currency counts there); failed, expired and
//! cancelled rows count the amount that was asked for.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use clap::Args;
use rust_decimal::Decimal;
use serde::Serialize;

use super::{CliError, Context, Report};
use crate::app;
use crate::money::Currency;
use crate::payment::Status;
use crate::store::ReportRow;

/// `report` arguments.
#[derive(Debug, Args)]
#[command(after_help = "\
Days are UTC. A row counts on the day its money arrived (paid_at), else the
day it became final. Paid, paid late and mismatch count the money received;
failed, expired and cancelled the amount asked for.

Examples:
  bakong-poller report --from 2026-12-01 --to 2026-12-31
  bakong-poller report --from 2026-12-01 --to 2026-12-01 --csv > day.csv")]
pub struct ReportArgs {
    /// First day (YYYY-MM-DD, UTC), included.
    #[arg(long, value_parser = date_arg)]
    pub from: NaiveDate,
    /// Last day (YYYY-MM-DD, UTC), included.
    #[arg(long, value_parser = date_arg)]
    pub to: NaiveDate,
    /// Print CSV (one line per day and currency, then the totals).
    #[arg(long)]
    pub csv: bool,
}

/// A date that is not `YYYY-MM-DD`.
#[derive(Debug, thiserror::Error)]
#[error("not a date: expected YYYY-MM-DD, got {0:?}")]
pub struct BadDate(String);

fn date_arg(s: &str) -> Result<NaiveDate, BadDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| BadDate(s.to_string()))
}

/// The statuses a report has a column for, in column order.
pub const COLUMNS: [Status; 6] = [
    Status::Paid,
    Status::PaidLate,
    Status::Mismatch,
    Status::Failed,
    Status::Expired,
    Status::Cancelled,
];

/// How many rows and how much money.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    /// Rows.
    pub count: i64,
    /// Their money, a decimal string in the line's currency.
    #[serde(serialize_with = "decimal_text")]
    pub amount: Decimal,
}

fn decimal_text<S: serde::Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&d.normalize().to_string())
}

/// One line: a day (or `total`) and a currency.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// `YYYY-MM-DD`, or `total`.
    pub day: String,
    /// USD or KHR.
    pub currency: Currency,
    /// Per status (the names of `COLUMNS`).
    pub paid: Tally,
    /// Paid late.
    pub paid_late: Tally,
    /// Mismatch.
    pub mismatch: Tally,
    /// Failed.
    pub failed: Tally,
    /// Expired.
    pub expired: Tally,
    /// Cancelled.
    pub cancelled: Tally,
}

impl Line {
    fn new(day: String, currency: Currency) -> Self {
        Line {
            day,
            currency,
            paid: Tally::default(),
            paid_late: Tally::default(),
            mismatch: Tally::default(),
            failed: Tally::default(),
            expired: Tally::default(),
            cancelled: Tally::default(),
        }
    }

    fn tally(&mut self, s: Status) -> Option<&mut Tally> {
        Some(match s {
            Status::Paid => &mut self.paid,
            Status::PaidLate => &mut self.paid_late,
            Status::Mismatch => &mut self.mismatch,
            Status::Failed => &mut self.failed,
            Status::Expired => &mut self.expired,
            Status::Cancelled => &mut self.cancelled,
            Status::Pending => return None,
        })
    }

    fn get(&self, s: Status) -> &Tally {
        match s {
            Status::Paid | Status::Pending => &self.paid,
            Status::PaidLate => &self.paid_late,
            Status::Mismatch => &self.mismatch,
            Status::Failed => &self.failed,
            Status::Expired => &self.expired,
            Status::Cancelled => &self.cancelled,
        }
    }
}

/// `report`'s result.
#[derive(Debug, Serialize)]
pub struct Reported {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// Per day and currency, days in order, USD before KHR.
    pub days: Vec<Line>,
    /// Per currency over the whole range.
    pub totals: Vec<Line>,
    #[serde(skip)]
    csv: bool,
}

/// Amounts as a currency writes them: USD with cents, KHR whole.
fn money(d: Decimal, c: Currency) -> String {
    match c {
        Currency::Usd => format!("{:.2}", d),
        Currency::Khr => format!("{:.0}", d),
    }
}

impl Report for Reported {
    fn human(&self) -> String {
        if self.csv {
            let mut head = vec!["day".to_string(), "currency".to_string()];
            for s in COLUMNS {
                head.push(format!("{s}_count"));
                head.push(format!("{s}_amount"));
            }
            let mut out = vec![head.join(",")];
            for l in self.days.iter().chain(&self.totals) {
                let mut f = vec![l.day.clone(), l.currency.code().to_string()];
                for s in COLUMNS {
                    let t = l.get(s);
                    f.push(t.count.to_string());
                    f.push(money(t.amount, l.currency));
                }
                out.push(f.join(","));
            }
            return out.join("\n");
        }
        let mut out = vec![format!(
            "{:10}  {:3}  {:>18}  {:>18}  {:>18}  {:>18}  {:>18}  {:>18}",
            "day", "cur", "paid", "paid_late", "mismatch", "failed", "expired", "cancelled"
        )];
        if self.days.is_empty() {
            out.push(format!(
                "no final payment from {} to {}",
                self.from, self.to
            ));
        }
        for l in self.days.iter().chain(&self.totals) {
            let cell = |s: Status| {
                let t = l.get(s);
                format!("{} / {}", t.count, money(t.amount, l.currency))
            };
            out.push(format!(
                "{:10}  {:3}  {:>18}  {:>18}  {:>18}  {:>18}  {:>18}  {:>18}",
                l.day,
                l.currency.code(),
                cell(Status::Paid),
                cell(Status::PaidLate),
                cell(Status::Mismatch),
                cell(Status::Failed),
                cell(Status::Expired),
                cell(Status::Cancelled),
            ));
        }
        out.push("(count / amount; days UTC)".into());
        out.join("\n")
    }
}

/// Folds report rows into lines per day and currency, and totals.
pub fn fold(rows: &[ReportRow]) -> Result<(Vec<Line>, Vec<Line>), String> {
    let mut days: BTreeMap<(String, Currency), Line> = BTreeMap::new();
    let mut totals: BTreeMap<Currency, Line> = BTreeMap::new();
    for r in rows {
        let status: Status = r.status.parse().map_err(|e| format!("{e}"))?;
        let money_row = matches!(status, Status::Paid | Status::PaidLate | Status::Mismatch);
        let (amount, currency) = match (money_row, &r.paid_amount, &r.paid_currency) {
            (true, Some(a), Some(c)) => (a.as_str(), c.as_str()),
            _ => (r.amount.as_str(), r.currency.as_str()),
        };
        let amount = crate::money::parse_amount(amount)
            .map_err(|e| format!("payment amount {amount:?}: {e}"))?;
        let currency: Currency = currency
            .parse()
            .map_err(|e| format!("payment currency {currency:?}: {e}"))?;
        for line in [
            days.entry((r.day.clone(), currency))
                .or_insert_with(|| Line::new(r.day.clone(), currency)),
            totals
                .entry(currency)
                .or_insert_with(|| Line::new("total".into(), currency)),
        ] {
            if let Some(t) = line.tally(status) {
                t.count += 1;
                t.amount += amount;
            }
        }
    }
    Ok((days.into_values().collect(), totals.into_values().collect()))
}

/// Reads the final rows of the range and folds them.
pub async fn run(ctx: &Context, a: &ReportArgs) -> Result<Reported, CliError> {
    if a.csv && ctx.json {
        return Err(CliError::Usage(
            "--csv and --json: choose one output format".into(),
        ));
    }
    if a.to < a.from {
        return Err(CliError::Usage(format!(
            "--to {} is before --from {}",
            a.to, a.from
        )));
    }
    let settings = ctx.quiet_settings()?;
    let store = app::open_store(&settings).await?;
    let rows = store.report_rows(a.from, a.to).await;
    store.close().await;
    let (days, totals) = fold(&rows?).map_err(CliError::Runtime)?;
    Ok(Reported {
        from: a.from,
        to: a.to,
        days,
        totals,
        csv: a.csv,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        day: &str,
        status: &str,
        amount: &str,
        cur: &str,
        paid: Option<(&str, &str)>,
    ) -> ReportRow {
        ReportRow {
            day: day.into(),
            status: status.into(),
            amount: amount.into(),
            currency: cur.into(),
            paid_amount: paid.map(|p| p.0.into()),
            paid_currency: paid.map(|p| p.1.into()),
        }
    }

    #[test]
    fn sums_are_exact_per_day_and_currency_and_never_mix_currencies() {
        let rows = [
            row("2026-12-01", "paid", "0.10", "USD", Some(("0.1", "USD"))),
            row("2026-12-01", "paid", "0.20", "USD", Some(("0.2", "USD"))),
            row("2026-12-01", "paid", "4000", "KHR", Some(("4000", "KHR"))),
            row(
                "2026-12-01",
                "mismatch",
                "1.00",
                "USD",
                Some(("4100", "KHR")),
            ),
            row("2026-12-02", "expired", "5.00", "USD", None),
            row("2026-12-02", "paid_late", "5.00", "USD", Some(("5", "USD"))),
            row("2026-12-02", "cancelled", "2.50", "USD", None),
        ];
        let (days, totals) = fold(&rows).expect("rows fold");
        assert_eq!(days.len(), 3);
        let usd1 = &days[0];
        assert_eq!(
            (usd1.day.as_str(), usd1.currency),
            ("2026-12-01", Currency::Usd)
        );
        assert_eq!(usd1.paid.count, 2);
        assert_eq!(
            usd1.paid.amount.to_string(),
            "0.3",
            "exact, not 0.30000000000000004"
        );
        let khr1 = &days[1];
        assert_eq!(khr1.currency, Currency::Khr);
        assert_eq!(khr1.paid.amount, Decimal::from(4000));
        assert_eq!(
            khr1.mismatch.count, 1,
            "money received counts in its own currency"
        );
        assert_eq!(khr1.mismatch.amount, Decimal::from(4100));
        let usd = totals
            .iter()
            .find(|t| t.currency == Currency::Usd)
            .expect("USD");
        assert_eq!(
            (
                usd.paid.count,
                usd.paid_late.count,
                usd.expired.count,
                usd.cancelled.count
            ),
            (2, 1, 1, 1)
        );
        assert_eq!(money(usd.cancelled.amount, Currency::Usd), "2.50");
        let khr = totals
            .iter()
            .find(|t| t.currency == Currency::Khr)
            .expect("KHR");
        assert_eq!(
            money(khr.paid.amount + khr.mismatch.amount, Currency::Khr),
            "8100"
        );
    }
}
