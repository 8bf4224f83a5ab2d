//! `events list|show|redeliver|test`: the notification outbox as an
//! operator sees it. `list` and `show` read `payment_events` and the
//! deliveries; `redeliver` makes an event's deliveries pending again (a
//! running daemon sends them at its next look); `test` sends a signed
//! `webhook.test` event to each configured receiver, now, and reports
//! what it answered.

use std::time::Instant;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::args::{delivery_status_arg, event_id_arg};
use super::{CliError, Context, Output, Report, Verdict};
use crate::app;
use crate::event;
use crate::notify::Receivers;
use crate::store::{DeliveryStatus, EventRow};

/// `events` subcommands.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List the newest events with each receiver's delivery.
    #[command(after_help = "Example:\n  bakong-poller events list --status dead")]
    List(ListArgs),
    /// Show one event: its body, deliveries and every attempt with its answer.
    #[command(after_help = "Example:\n  bakong-poller events show msg_01JDZ3K6C9V4Q8M2T7R5X1W0YB")]
    Show(IdArgs),
    /// Make an event's deliveries pending again (a running daemon sends them).
    #[command(
        after_help = "Example:\n  bakong-poller events redeliver msg_01JDZ3K6C9V4Q8M2T7R5X1W0YB"
    )]
    Redeliver(IdArgs),
    /// Send a signed test event (webhook.test) to each configured receiver now.
    #[command(after_help = "Example:\n  bakong-poller --config bakong-poller.toml events test")]
    Test,
}

/// `events list` arguments.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only events with a delivery in this state: pending, delivered or dead.
    #[arg(long, value_parser = delivery_status_arg)]
    pub status: Option<DeliveryStatus>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}

/// An event id argument.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The event id (msg_ + ULID), as `events list` shows it.
    #[arg(value_parser = event_id_arg)]
    pub id: String,
}

/// Runs an `events` subcommand.
pub async fn run(ctx: &Context, c: &EventsCommand) -> Result<Output, CliError> {
    Ok(match c {
        EventsCommand::List(a) => list(ctx, a).await?.into(),
        EventsCommand::Show(a) => show(ctx, a).await?.into(),
        EventsCommand::Redeliver(a) => redeliver(ctx, a).await?.into(),
        EventsCommand::Test => test(ctx).await?.into(),
    })
}

fn deliveries_text(e: &EventRow) -> String {
    if e.deliveries.is_empty() {
        return "(no receiver)".into();
    }
    e.deliveries
        .iter()
        .map(|d| format!("{} {} ({})", d.receiver, d.status.as_str(), d.attempts))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `events list`'s result.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Listed(pub Vec<EventRow>);

impl Report for Listed {
    fn human(&self) -> String {
        if self.0.is_empty() {
            return "no events".into();
        }
        let mut lines = vec![format!(
            "{:<30}  {:<16}  {:<32}  {:<23}  deliveries (attempts)",
            "id", "type", "md5", "created_at"
        )];
        lines.extend(self.0.iter().map(|e| {
            format!(
                "{:<30}  {:<16}  {:<32}  {:<23}  {}",
                e.id,
                e.event_type,
                e.md5,
                e.created_at,
                deliveries_text(e)
            )
        }));
        lines.join("\n")
    }
}

async fn list(ctx: &Context, a: &ListArgs) -> Result<Listed, CliError> {
    let settings = ctx.quiet_settings()?;
    let store = app::open_store(&settings).await?;
    let rows = store.list_events(a.status, a.limit.max(0)).await;
    store.close().await;
    Ok(Listed(rows?))
}

/// `events show`'s result.
#[derive(Debug, Serialize)]
pub struct Shown {
    /// The event, or none.
    #[serde(flatten)]
    pub event: Option<EventRow>,
    /// The id asked for.
    #[serde(skip)]
    pub id: String,
}

impl Report for Shown {
    fn human(&self) -> String {
        let Some(e) = &self.event else {
            return String::new();
        };
        let mut s = format!(
            "{}  {}  md5 {}  recorded {}\n",
            e.id, e.event_type, e.md5, e.created_at
        );
        if let Some(p) = &e.payload {
            s += &format!("body {p}\n");
        }
        for d in &e.deliveries {
            s += &format!(
                "{}: {} after {} attempt(s){}{}\n",
                d.receiver,
                d.status.as_str(),
                d.attempts,
                d.next_attempt_ms
                    .and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
                    .map(|t| format!(", next at {}", event::rfc3339(t)))
                    .unwrap_or_default(),
                d.delivered_at
                    .as_deref()
                    .map(|t| format!(", delivered at {t}"))
                    .unwrap_or_default(),
            );
        }
        for a in &e.attempts {
            s += &format!(
                "  {} #{} at {} ({} ms): {}{}\n",
                a.receiver,
                a.attempt,
                a.at,
                a.latency_ms,
                a.error
                    .clone()
                    .or_else(|| a.http_status.map(|c| format!("ok ({c})")))
                    .unwrap_or_else(|| "ok".into()),
                a.answer
                    .as_deref()
                    .map(|t| format!(" answer {t:?}"))
                    .unwrap_or_default(),
            );
        }
        s.trim_end().to_string()
    }

    fn verdict(&self) -> Verdict {
        match self.event {
            Some(_) => Verdict::Done,
            None => Verdict::NotFound(format!("no event {}", self.id)),
        }
    }
}

async fn show(ctx: &Context, a: &IdArgs) -> Result<Shown, CliError> {
    let settings = ctx.quiet_settings()?;
    let store = app::open_store(&settings).await?;
    let event = store.event(&a.id).await;
    store.close().await;
    Ok(Shown {
        event: event?,
        id: a.id.clone(),
    })
}

/// `events redeliver`'s result.
#[derive(Debug, Serialize)]
pub struct Redelivered {
    /// The event.
    pub id: String,
    /// Deliveries made pending (0: no such event or no receiver).
    pub pending: u64,
    /// Whether the event exists.
    #[serde(skip)]
    found: bool,
}

impl Report for Redelivered {
    fn human(&self) -> String {
        if self.found {
            format!(
                "{}: {} deliver{} pending; a running daemon sends {} at its next look",
                self.id,
                self.pending,
                if self.pending == 1 { "y" } else { "ies" },
                if self.pending == 1 { "it" } else { "them" }
            )
        } else {
            String::new()
        }
    }

    fn verdict(&self) -> Verdict {
        if self.found {
            Verdict::Done
        } else {
            Verdict::NotFound(format!("no event {}", self.id))
        }
    }
}

async fn redeliver(ctx: &Context, a: &IdArgs) -> Result<Redelivered, CliError> {
    let settings = ctx.quiet_settings()?;
    let store = app::open_store(&settings).await?;
    let result = async {
        let found = store.event(&a.id).await?.is_some();
        let pending = if found {
            store.redeliver(&a.id).await?
        } else {
            0
        };
        Ok::<_, crate::store::StoreError>((found, pending))
    }
    .await;
    store.close().await;
    let (found, pending) = result?;
    Ok(Redelivered {
        id: a.id.clone(),
        pending,
        found,
    })
}

/// One receiver's answer to `events test`.
#[derive(Debug, Serialize)]
pub struct TestAnswer {
    /// `webhook` or `hook`.
    pub receiver: String,
    /// Its host (webhook) or program name (hook).
    pub target: String,
    /// Whether it took the event.
    pub ok: bool,
    /// HTTP status or exit code.
    pub status: Option<i64>,
    /// What went wrong.
    pub error: Option<String>,
    /// The first bytes of its answer.
    pub answer: Option<String>,
    /// How long it took.
    pub latency_ms: u64,
}

/// `events test`'s result.
#[derive(Debug, Serialize)]
pub struct Tested {
    /// The test event's id.
    pub id: String,
    /// Per receiver.
    pub answers: Vec<TestAnswer>,
}

impl Report for Tested {
    fn human(&self) -> String {
        let mut lines = vec![format!("sent webhook.test {}", self.id)];
        for a in &self.answers {
            lines.push(format!(
                "{} ({}): {} in {} ms{}",
                a.receiver,
                a.target,
                a.error
                    .clone()
                    .unwrap_or_else(|| format!("ok ({})", a.status.unwrap_or(0))),
                a.latency_ms,
                a.answer
                    .as_deref()
                    .map(|t| format!(", answered {t:?}"))
                    .unwrap_or_default()
            ));
        }
        lines.join("\n")
    }

    fn verdict(&self) -> Verdict {
        match self.answers.iter().find(|a| !a.ok) {
            None => Verdict::Done,
            Some(a) => Verdict::Failed(format!(
                "{} did not take the test event: {}",
                a.receiver,
                a.error.as_deref().unwrap_or("no answer")
            )),
        }
    }
}

async fn test(ctx: &Context) -> Result<Tested, CliError> {
    let settings = ctx.quiet_settings()?;
    let receivers =
        Receivers::from_settings(&settings).map_err(|e| CliError::Usage(e.to_string()))?;
    let names = receivers.names();
    if names.is_empty() {
        return Err(CliError::Usage(
            "no receiver configured: set [webhook] url and secret, or [hook] command".into(),
        ));
    }
    let e = event::test_event(chrono::Utc::now());
    let mut answers = Vec::new();
    for name in names {
        let started = Instant::now();
        let (target, a) = receivers
            .attempt(name, &e.id, &e.event_type, &e.payload)
            .await;
        answers.push(TestAnswer {
            receiver: name.to_string(),
            target,
            ok: a.ok,
            status: a.code,
            error: a.error,
            answer: a.answer,
            latency_ms: started.elapsed().as_millis() as u64,
        });
    }
    Ok(Tested { id: e.id, answers })
}
