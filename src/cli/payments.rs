//! `add`, `list` and `status`: the payments table as an operator sees it.
//! `add` inserts exactly as a merchant's application would, so the table's
//! own checks have the last word.

use chrono::{DateTime, TimeDelta, Utc};
use clap::Args;
use serde::Serialize;

use super::args::{
    amount_text_arg, currency_arg, metadata_arg, order_id_arg, qr_arg, table_md5_arg,
};
use super::{CliError, Context, Report};
use crate::app;
use crate::money::Currency;
use crate::payment::{PaymentId, Status as PaymentStatus};
use crate::store::{Counts, NewPayment, PaymentRow};

/// `add` arguments.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  bakong-poller add --md5 b1c250304b8594e4c6b53dd44791b57a --amount 500 --currency KHR --expires-in 10m\n  bakong-poller add --qr '00020101021229...6304ABCD' --order-id order-1042"
)]
pub struct AddArgs {
    /// md5 of the KHQR string (32 lowercase hex); with --qr, computed.
    #[arg(long, value_parser = table_md5_arg, required_unless_present = "qr")]
    pub md5: Option<String>,
    /// Expected amount, e.g. 1.50 or 4000 (stored as written); with --qr,
    /// the QR's unless given.
    #[arg(long, allow_hyphen_values = true, value_parser = amount_text_arg, required_unless_present = "qr")]
    pub amount: Option<String>,
    /// USD or KHR; with --qr, the QR's unless given.
    #[arg(long, value_parser = currency_arg, required_unless_present = "qr")]
    pub currency: Option<Currency>,
    /// The KHQR string shown to the customer: kept in the row's qr column;
    /// md5, amount, currency (and the expiry of tag 99) are taken from it,
    /// and a given --md5, --amount or --currency must agree with it.
    #[arg(long, value_parser = qr_arg)]
    pub qr: Option<String>,
    /// Lifetime (default: the QR's expiry with --qr, else poller.payment_ttl).
    #[arg(long, value_parser = lifetime_arg)]
    pub expires_in: Option<TimeDelta>,
    /// The shop's order reference (not unique: retries of an order are normal).
    #[arg(long, value_parser = order_id_arg)]
    pub order_id: Option<String>,
    /// A JSON object of at most 4 KB, carried by the events.
    #[arg(long, value_parser = metadata_arg)]
    pub metadata: Option<String>,
}

/// What `add` inserts once its arguments and the QR agree.
struct Resolved {
    md5: String,
    amount: String,
    currency: Currency,
    expires_at: Option<DateTime<Utc>>,
}

/// md5, amount, currency and expiry from the arguments and the QR; a
/// disagreement between them is a usage error naming both values.
fn resolve(a: &AddArgs) -> Result<Resolved, CliError> {
    let usage = |m: String| CliError::Usage(m);
    let lifetime = match a.expires_in {
        Some(d) => Some(
            Utc::now()
                .checked_add_signed(d)
                .ok_or_else(|| usage("--expires-in: too far in the future".into()))?,
        ),
        None => None,
    };
    let Some(qr) = &a.qr else {
        let (Some(md5), Some(amount), Some(currency)) = (&a.md5, &a.amount, a.currency) else {
            return Err(usage("give --md5, --amount and --currency, or --qr".into()));
        };
        return Ok(Resolved {
            md5: md5.clone(),
            amount: amount.clone(),
            currency,
            expires_at: lifetime,
        });
    };
    let decoded = crate::khqr::decode(qr).map_err(|e| usage(format!("--qr: {e}")))?;
    let md5 = crate::khqr::md5_hex(qr);
    if let Some(given) = &a.md5 {
        if *given != md5 {
            return Err(usage(format!(
                "--md5 {given} is not the md5 of --qr ({md5}); leave --md5 out with --qr"
            )));
        }
    }
    let currency = match (a.currency, decoded.currency) {
        (Some(given), Some(q)) if given != q => {
            return Err(usage(format!(
                "--currency {given} disagrees with the QR's currency {q}"
            )))
        }
        (_, Some(q)) => q,
        (Some(given), None) => given,
        (None, None) => {
            return Err(usage(
                "--qr carries no currency (tag 53); give --currency".into(),
            ))
        }
    };
    let amount = match (&a.amount, decoded.amount) {
        (_, None) => {
            return Err(usage(
                "--qr is a static KHQR (no amount, tag 54): a payment without an amount cannot be confirmed by md5; make a QR with the amount (`bakong-poller new`)".into(),
            ))
        }
        (Some(given), Some(q)) => {
            let v = crate::money::parse_amount(given)
                .map_err(|e| usage(format!("--amount: {e}")))?;
            if v != q {
                return Err(usage(format!(
                    "--amount {given} disagrees with the QR's amount {q}"
                )));
            }
            given.clone()
        }
        (None, Some(q)) => crate::money::amount_text(q),
    };
    let expires_at = lifetime.or(decoded.timestamps.and_then(|t| t.expires_at));
    Ok(Resolved {
        md5,
        amount,
        currency,
        expires_at,
    })
}

/// A lifetime chrono cannot represent.
#[derive(Debug, thiserror::Error)]
pub enum BadLifetime {
    /// Not a humantime duration.
    #[error(transparent)]
    Parse(#[from] humantime::DurationError),
    /// Too long to add to a date.
    #[error("too long a lifetime")]
    TooLong,
}

fn lifetime_arg(s: &str) -> Result<TimeDelta, BadLifetime> {
    let d = humantime::parse_duration(s)?;
    TimeDelta::from_std(d).map_err(|_| BadLifetime::TooLong)
}

/// `add`'s result.
#[derive(Debug, Serialize)]
pub struct Added {
    /// Row id.
    pub id: PaymentId,
    /// md5.
    pub md5: String,
    /// Expected amount, as written.
    pub amount: String,
    /// Expected currency.
    pub currency: Currency,
    /// `expires_at`, if given.
    pub expires_at: Option<DateTime<Utc>>,
    /// The public id (for links).
    pub public_id: String,
    /// The order reference, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

impl Report for Added {
    fn human(&self) -> String {
        let order = self
            .order_id
            .as_deref()
            .map(|o| format!(", order {o}"))
            .unwrap_or_default();
        format!(
            "added payment {} ({}): {} {} {} (pending{order})",
            self.id, self.public_id, self.md5, self.amount, self.currency
        )
    }
}

/// Inserts a pending payment.
pub async fn add(ctx: &Context, a: &AddArgs) -> Result<Added, CliError> {
    let r = resolve(a)?;
    // The table refuses it too; saying so here names the argument.
    let value = crate::money::parse_amount(&r.amount)
        .map_err(|e| CliError::Usage(format!("--amount: {e}")))?;
    crate::money::check_precision(value, r.currency)
        .map_err(|e| CliError::Usage(format!("--amount: {e}")))?;
    let settings = ctx.quiet_settings()?;
    let public_id = crate::payment::new_public_id();
    let store = app::open_store(&settings).await?;
    let inserted = store
        .insert_payment(&NewPayment {
            md5: r.md5.clone(),
            amount: r.amount.clone(),
            currency: r.currency,
            expires_at: r.expires_at,
            order_id: a.order_id.clone(),
            metadata: a.metadata.clone(),
            qr: a.qr.clone(),
            public_id: Some(public_id.clone()),
            redirect_url: None,
        })
        .await;
    store.close().await;
    Ok(Added {
        id: inserted?,
        md5: r.md5,
        amount: r.amount,
        currency: r.currency,
        expires_at: r.expires_at,
        public_id,
        order_id: a.order_id.clone(),
    })
}

/// `list` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  bakong-poller list --status pending --limit 50")]
pub struct ListArgs {
    /// Only this status.
    #[arg(long, value_parser = status_arg())]
    pub status: Option<PaymentStatus>,
    /// At most this many rows.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=100000))]
    pub limit: i64,
}

/// The statuses, from the one enum that names them.
fn status_arg() -> impl clap::builder::TypedValueParser<Value = PaymentStatus> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(PaymentStatus::ALL.map(PaymentStatus::as_str))
        .try_map(|s| s.parse::<PaymentStatus>())
}

/// `list`'s result: the rows, newest first (a JSON array).
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Listed(pub Vec<PaymentRow>);

impl Report for Listed {
    fn human(&self) -> String {
        let line = |id: &dyn std::fmt::Display,
                    md5: &str,
                    amount: &str,
                    cur: &str,
                    status: &str,
                    created: &str,
                    hash: &str,
                    order: &str| {
            format!(
                "{id:>6}  {md5:32}  {amount:>12}  {cur:3}  {status:9}  {created:23}  {order:16}  {hash}"
            )
        };
        let mut lines = vec![line(
            &"id",
            "md5",
            "amount",
            "cur",
            "status",
            "created_at",
            "hash",
            "order_id",
        )];
        lines.extend(self.0.iter().map(|r| {
            line(
                &r.id,
                &r.md5,
                &r.amount,
                &r.currency,
                r.status.as_str(),
                &r.created_at,
                r.bakong_hash.as_deref().unwrap_or("-"),
                r.order_id.as_deref().unwrap_or("-"),
            )
        }));
        lines.join("\n").trim_end().to_string()
    }
}

/// Lists the newest rows.
pub async fn list(ctx: &Context, a: &ListArgs) -> Result<Listed, CliError> {
    let settings = ctx.quiet_settings()?;
    let store = app::open_store(&settings).await?;
    let rows = store.list(a.status, a.limit).await;
    store.close().await;
    Ok(Listed(rows?))
}

/// `status`'s result.
#[derive(Debug, Serialize)]
pub struct Status {
    /// Counts per status and scheduling facts.
    pub counts: Counts,
    /// When the next check is due.
    pub next_check_at: Option<DateTime<Utc>>,
    /// When the daemon last got a readable answer.
    pub last_answer_at: Option<String>,
    /// The token's `exp`, if readable.
    pub token_expires_at: Option<DateTime<Utc>>,
    /// Where the token in use comes from (`token show`'s source; on
    /// PostgreSQL usually the database, shared by the daemons).
    pub token_source: Option<String>,
    /// The newest answer, when it was an error (e.g. every endpoint
    /// answering 404 because of the base URL).
    pub last_problem: Option<String>,
    /// Event deliveries per status (webhook and hook together).
    pub deliveries: crate::store::DeliveryCounts,
    /// `daily quota exhausted since ...` while the quota pause is in force.
    pub quota: Option<String>,
    /// Requests the daemon sent today (UTC).
    pub requests_today: i64,
    /// `poller.daily_request_budget`, if set.
    pub daily_request_budget: Option<u64>,
    /// The live daemons' receivers, when they differ (one line each).
    pub receiver_conflicts: Vec<String>,
    /// Late payments (money found after expired, failed or cancelled):
    /// today's count and the newest.
    pub late: crate::store::LateSummary,
}

impl Report for Status {
    fn human(&self) -> String {
        let c = &self.counts;
        let static_qr = |n: i64| {
            if n > 0 {
                format!(" ({n} static QR)")
            } else {
                String::new()
            }
        };
        let mut s = format!(
            "pending {}{}  paid {}  mismatch {}  failed {}  expired {}{}  cancelled {}  paid_late {}\noldest pending   {}\nnext check due   {}\nlast API answer  {}\ntoken expires    {}",
            c.pending,
            static_qr(c.pending_static_qr),
            c.paid,
            c.mismatch,
            c.failed,
            c.expired,
            static_qr(c.expired_static_qr),
            c.cancelled,
            c.paid_late,
            c.oldest_pending.as_deref().unwrap_or("-"),
            self.next_check_at
                .map(|d| d.to_rfc3339())
                .unwrap_or_else(|| "-".into()),
            self.last_answer_at.as_deref().unwrap_or("-"),
            self.token_expires_at
                .map(|d| d.to_rfc3339())
                .unwrap_or_else(|| "unknown".into()),
        );
        if let Some(src) = &self.token_source {
            s += &format!("\ntoken source     {src}");
        }
        if let Some(p) = &self.last_problem {
            s += &format!("\nlast problem     {p}");
        }
        let l = &self.late;
        s += &format!(
            "\nlate today       paid_late {}  mismatch {}",
            l.paid_late_today, l.mismatch_late_today
        );
        if let Some((md5, status, at)) = &l.last {
            s += &format!("  (last: {md5} {status} at {at})");
        }
        let d = &self.deliveries;
        s += &format!(
            "\ndeliveries       pending {}  delivered {}  dead {}",
            d.pending, d.delivered, d.dead
        );
        if d.dead > 0 {
            s += " (see `bakong-poller events list --status dead`)";
        }
        if let Some(q) = &self.quota {
            s += &format!("\nquota            {q}");
        }
        s += &format!("\nrequests today   {}", self.requests_today);
        if let Some(b) = self.daily_request_budget {
            s += &format!(" of {b} (poller.daily_request_budget)");
        }
        for c in &self.receiver_conflicts {
            s += &format!("\nreceivers        {c}");
        }
        s
    }
}

/// Counts per status, next check, last answer and token expiry.
pub async fn status(ctx: &Context) -> Result<Status, CliError> {
    let settings = ctx.quiet_settings()?;
    let store = app::open_store(&settings).await?;
    let counts = store.counts().await;
    let expired_static_qr = store.expired_static_qr().await;
    let last = store.last_answer_at().await;
    let newest = store.last_answer().await;
    let deliveries = store.delivery_counts().await;
    let late = store.late_summary().await;
    let gate = store.gate_state().await;
    let live = store
        .live_receivers(Utc::now().timestamp_millis(), crate::store::LIVE_MS)
        .await;
    store.close().await;
    let receiver_conflicts = crate::store::receiver_conflicts(&live?);
    let mut counts = counts?;
    counts.expired_static_qr = expired_static_qr?;
    let gate = gate?;
    let today = crate::bakong::quota::utc_day(Utc::now().timestamp_millis());
    let requests_today = if gate.spend_day.as_deref() == Some(today.as_str()) {
        gate.spend
    } else {
        0
    };
    let quota = gate.quota_since_ms.map(|since_ms| {
        crate::bakong::Pause {
            since_ms,
            next_probe_ms: gate.quota_next_probe_ms.unwrap_or(since_ms),
        }
        .describe()
    });
    let last_problem = newest?.and_then(|a| {
        let e = a.error?;
        Some(match a.answer.as_deref() {
            Some("endpoint_not_found") => {
                format!("{e} (every endpoint answering 404 means bakong.base_url is wrong)")
            }
            _ => e,
        })
    });
    // An unreadable token is `token show`'s and `config check`'s business;
    // here it is only "unknown".
    // On PostgreSQL, the token the daemons share in the database counts.
    let token_choice = app::token_choice(&settings).await.ok().flatten();
    let token_source = token_choice.as_ref().map(|c| c.source.to_string());
    let token_expires_at = token_choice.and_then(|c| c.token.claims().expires_at);
    Ok(Status {
        next_check_at: counts
            .next_check_ms
            .and_then(DateTime::<Utc>::from_timestamp_millis),
        counts,
        last_answer_at: last?,
        token_expires_at,
        token_source,
        last_problem,
        deliveries: deliveries?,
        quota,
        requests_today,
        daily_request_budget: settings.poller.daily_request_budget,
        receiver_conflicts,
        late: late?,
    })
}
