//! `check md5|hash|short-hash|md5-list|instruction-ref|external-ref`:
//! one-off transaction lookups. Arguments with a known shape (md5, hash,
//! short hash) are refused by clap before anything is sent; a list whose
//! endpoint is closed (HTTP 403/404) falls back to single lookups, as the
//! daemon does.

use clap::Subcommand;
use rust_decimal::Decimal;
use serde::{Serialize, Serializer};

use super::args::{amount_arg, currency_arg, hash_arg, md5_arg, short_hash_arg};
use super::{CliError, Context, Output, Report, Verdict};
use crate::app;
use crate::bakong::{self, Client, ListStatus, Transaction, MAX_LIST};
use crate::money::Currency;

/// `check` subcommands.
#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// By md5 of the KHQR string.
    #[command(after_help = "Example:\n  bakong-poller check md5 b1c250304b8594e4c6b53dd44791b57a")]
    Md5 {
        /// The md5 (32 hex characters).
        #[arg(value_parser = md5_arg)]
        md5: String,
    },
    /// By full transaction hash.
    #[command(
        after_help = "Example:\n  bakong-poller check hash 8465d722d7d5065f2886f0a474a4d34dc6a7855355b611836f7b6111228893e9"
    )]
    Hash {
        /// The hash (64 hex characters).
        #[arg(value_parser = hash_arg)]
        hash: String,
    },
    /// By the first 8 characters of the hash, with amount and currency.
    #[command(
        after_help = "Example:\n  bakong-poller check short-hash 8465d722 --amount 1.00 --currency USD"
    )]
    ShortHash {
        /// The short hash (the hash's first 8 hex characters).
        #[arg(value_parser = short_hash_arg)]
        hash: String,
        /// Amount paid.
        #[arg(long, allow_hyphen_values = true, value_parser = amount_arg)]
        amount: Decimal,
        /// USD or KHR.
        #[arg(long, value_parser = currency_arg)]
        currency: Currency,
    },
    /// Many md5s, 50 per request.
    #[command(after_help = "Example:\n  bakong-poller check md5-list MD5 MD5 ...")]
    Md5List {
        /// The md5s (32 hex characters each).
        #[arg(required = true, value_parser = md5_arg)]
        md5s: Vec<String>,
    },
    /// By instruction reference.
    #[command(after_help = "Example:\n  bakong-poller check instruction-ref IR1234")]
    InstructionRef {
        /// The reference.
        reference: String,
    },
    /// By external reference.
    #[command(after_help = "Example:\n  bakong-poller check external-ref EXT0000000001")]
    ExternalRef {
        /// The reference (at most 35 characters).
        reference: String,
    },
}

/// Runs a `check` subcommand.
pub async fn run(ctx: &Context, c: &CheckCommand) -> Result<Output, CliError> {
    let settings = ctx.quiet_settings()?;
    let client = app::build_client(&settings, true)?;
    let result = match c {
        CheckCommand::Md5List { md5s } => return Ok(md5_list(ctx, &client, md5s).await?.into()),
        CheckCommand::Md5 { md5 } => client.check_md5(md5).await,
        CheckCommand::Hash { hash } => client.check_hash(hash).await,
        CheckCommand::ShortHash {
            hash,
            amount,
            currency,
        } => client.check_short_hash(hash, *amount, *currency).await,
        CheckCommand::InstructionRef { reference } => client.check_instruction_ref(reference).await,
        CheckCommand::ExternalRef { reference } => client.check_external_ref(reference).await,
    };
    let lookup = match result {
        Ok(t) => Lookup::Found(Box::new(t)),
        Err(bakong::Error::NotFound { message }) => Lookup::Missing {
            status: Missing::NotFound,
            message,
        },
        Err(bakong::Error::TransactionFailed { message }) => Lookup::Missing {
            status: Missing::Failed,
            message,
        },
        Err(e) => return Err(e.into()),
    };
    Ok(lookup.into())
}

/// A single lookup's result: the transaction itself, or why there is none.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Lookup {
    /// Found: the transaction as Bakong reports it.
    Found(Box<Transaction>),
    /// Not found (yet), or failed.
    Missing {
        /// `not_found` or `failed`.
        status: Missing,
        /// Bakong's message.
        message: String,
    },
}

/// Why a lookup found no paid transaction.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// errorCode 1.
    NotFound,
    /// errorCode 3.
    Failed,
}

impl Report for Lookup {
    fn human(&self) -> String {
        match self {
            Lookup::Found(t) => show_tx(t),
            Lookup::Missing {
                status: Missing::NotFound,
                message,
            } => format!("not found: {message}"),
            Lookup::Missing {
                status: Missing::Failed,
                message,
            } => format!("transaction failed: {message}"),
        }
    }

    fn verdict(&self) -> Verdict {
        match self {
            Lookup::Found(_) => Verdict::Done,
            Lookup::Missing {
                status: Missing::NotFound,
                message,
            } => Verdict::NotFound(format!("transaction not found: {message}")),
            Lookup::Missing {
                status: Missing::Failed,
                message,
            } => Verdict::Failed(format!("transaction failed: {message}")),
        }
    }
}

fn show_tx(t: &Transaction) -> String {
    let when = t
        .created_date_ms
        .and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".into());
    let description = t
        .description
        .as_deref()
        .map(|d| format!("\ndescription {d}"))
        .unwrap_or_default();
    format!(
        "paid {} {} from {} to {} at {when}\nhash {}{description}",
        t.amount,
        t.currency,
        t.from_account_id.as_deref().unwrap_or("-"),
        t.to_account_id,
        t.hash,
    )
}

/// `check md5-list`'s result: one answer per md5, in the order given;
/// JSON is an object keyed by md5.
#[derive(Debug)]
pub struct ListReport {
    /// Each md5 and its answer.
    pub results: Vec<(String, ListStatus)>,
}

impl Serialize for ListReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.results.iter().map(|(m, st)| (m, st)))
    }
}

impl Report for ListReport {
    fn human(&self) -> String {
        let label = |st: &ListStatus| match st {
            ListStatus::Success { .. } => "paid",
            ListStatus::NotFound => "not found",
            ListStatus::Failed => "failed",
            ListStatus::StaticQr => "static QR",
        };
        self.results
            .iter()
            .map(|(m, st)| format!("{m}  {}", label(st)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn verdict(&self) -> Verdict {
        let unpaid = self
            .results
            .iter()
            .filter(|(_, st)| !matches!(st, ListStatus::Success { .. }))
            .count();
        if unpaid == 0 {
            Verdict::Done
        } else {
            Verdict::NotFound(format!(
                "{unpaid} of {} md5s not found or not paid",
                self.results.len()
            ))
        }
    }
}

/// Up to 50 md5s per request. When the list endpoint is closed (HTTP 403
/// or 404, as production does for some tokens) the rest is looked up one
/// by one, and a notice says so once.
async fn md5_list(ctx: &Context, client: &Client, md5s: &[String]) -> Result<ListReport, CliError> {
    let mut unique: Vec<String> = Vec::with_capacity(md5s.len());
    for m in md5s {
        if !unique.contains(m) {
            unique.push(m.clone());
        }
    }
    let mut results = Vec::with_capacity(unique.len());
    let mut singles = false;
    for chunk in unique.chunks(MAX_LIST) {
        let answers = if singles {
            None
        } else {
            // check_md5_batch tells a 403 apart first: a refused token is
            // renewed and the list asked again; only a list closed to this
            // token (or missing, 404) falls back.
            match client.check_md5_batch(chunk).await {
                Ok(a) => Some(a),
                Err(e) if e.endpoint_closed() => {
                    ctx.notice(&format!(
                        "{e}; looking up the {} md5s one by one with check_transaction_by_md5",
                        unique.len() - results.len()
                    ));
                    singles = true;
                    None
                }
                Err(e) => return Err(e.into()),
            }
        };
        match answers {
            Some(answers) => {
                for (m, answer) in chunk.iter().zip(answers) {
                    results.push((m.clone(), as_list(answer)?));
                }
            }
            None => {
                for m in chunk {
                    results.push((m.clone(), as_list(client.check_md5(m).await)?));
                }
            }
        }
    }
    Ok(ListReport { results })
}

/// An answer shaped as a single lookup's, in the list's terms.
fn as_list(answer: Result<bakong::Transaction, bakong::Error>) -> Result<ListStatus, CliError> {
    match answer {
        Ok(t) => Ok(ListStatus::Success {
            transaction: Box::new(t),
        }),
        Err(bakong::Error::NotFound { .. }) => Ok(ListStatus::NotFound),
        Err(bakong::Error::TransactionFailed { .. }) => Ok(ListStatus::Failed),
        Err(bakong::Error::StaticQr { .. }) => Ok(ListStatus::StaticQr),
        Err(e) => Err(e.into()),
    }
}
