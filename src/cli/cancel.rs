//! `cancel`: the shop cancels a pending payment (its QR may still be on a
//! screen). The row becomes `cancelled` with its event, its fresh checks
//! stop at once, and it stays under the late watch: money the customer
//! still sends to that QR is recorded as `paid_late` (or `mismatch`).

use chrono::Utc;
use clap::Args;
use serde::Serialize;

use super::args::{order_id_arg, table_md5_arg};
use super::{CliError, Context, Report, Verdict};
use crate::app;
use crate::payment::{PaymentId, Status};
use crate::store::{CancelOutcome, Target};

/// `cancel` arguments.
#[derive(Debug, Args)]
#[command(
    group(clap::ArgGroup::new("target").required(true).args(["id", "md5", "order_id"])),
    after_help = "\
Exit status: 0 cancelled, 1 already final (the status is named), 3 no such payment.

Examples:
  bakong-poller cancel 42
  bakong-poller cancel 9f86d081884c7d659a2feaa0c55ad015
  bakong-poller cancel --md5 b1c250304b8594e4c6b53dd44791b57a
  bakong-poller cancel --order-id order-1042 --json"
)]
pub struct CancelArgs {
    /// The payment: its row id (an integer) or its public id (32 hex).
    #[arg(value_parser = id_arg)]
    pub id: Option<Target>,
    /// The payment with this md5.
    #[arg(long, value_parser = table_md5_arg)]
    pub md5: Option<String>,
    /// Every pending payment of this order.
    #[arg(long, value_parser = order_id_arg)]
    pub order_id: Option<String>,
}

/// An ID that is neither a row id nor a public id.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is neither a row id (a positive integer) nor a public id (32 lowercase hex)")]
pub struct BadId(String);

fn id_arg(s: &str) -> Result<Target, BadId> {
    if let Ok(n) = s.parse::<i64>() {
        if n > 0 {
            return Ok(Target::Id(n));
        }
    }
    if crate::payment::is_public_id(s) {
        return Ok(Target::PublicId(s.to_string()));
    }
    Err(BadId(s.to_string()))
}

/// `cancel`'s result.
#[derive(Debug, Serialize)]
pub struct Cancelled {
    /// What was asked for.
    pub target: String,
    /// Rows cancelled now.
    pub cancelled: Vec<PaymentId>,
    /// When nothing was cancelled: the target's rows and their (final)
    /// statuses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub already_final: Vec<(PaymentId, Status)>,
    /// Whether no row is the target.
    pub unknown: bool,
}

impl Report for Cancelled {
    fn human(&self) -> String {
        if self.cancelled.is_empty() {
            return self.verdict().message().unwrap_or_default().to_string();
        }
        let ids: Vec<String> = self.cancelled.iter().map(ToString::to_string).collect();
        format!(
            "cancelled {} (payment {}); still watched for late money (poller.late_watch)",
            self.target,
            ids.join(", ")
        )
    }

    fn verdict(&self) -> Verdict {
        if !self.cancelled.is_empty() {
            return Verdict::Done;
        }
        if self.unknown {
            return Verdict::NotFound(format!("no payment is {}", self.target));
        }
        let finals: Vec<String> = self
            .already_final
            .iter()
            .map(|(id, s)| format!("payment {id} is {s}"))
            .collect();
        Verdict::Failed(format!(
            "{} is already final ({}): only a pending payment can be cancelled",
            self.target,
            finals.join(", ")
        ))
    }
}

/// Cancels the pending rows of the target.
pub async fn run(ctx: &Context, a: &CancelArgs) -> Result<Cancelled, CliError> {
    let target = match (&a.id, &a.md5, &a.order_id) {
        (Some(t), _, _) => t.clone(),
        (_, Some(m), _) => Target::Md5(m.clone()),
        (_, _, Some(o)) => Target::OrderId(o.clone()),
        _ => return Err(CliError::Usage("give ID, --md5 or --order-id".into())),
    };
    let settings = ctx.quiet_settings()?;
    let store = app::open_store(&settings).await?;
    let outcome = store.cancel(&target, Utc::now()).await;
    store.close().await;
    let mut out = Cancelled {
        target: target.to_string(),
        cancelled: Vec::new(),
        already_final: Vec::new(),
        unknown: false,
    };
    match outcome? {
        CancelOutcome::Cancelled(ids) => out.cancelled = ids,
        CancelOutcome::Final(rows) => out.already_final = rows,
        CancelOutcome::Unknown => out.unknown = true,
    }
    Ok(out)
}
