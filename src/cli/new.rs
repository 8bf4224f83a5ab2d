//! `new`: opens a payment in one step. Builds the dynamic KHQR from
//! `[merchant]` (its expiration is the row's `expires_at`), inserts the
//! pending row through the store, and shows the QR (terminal, SVG, PNG),
//! its md5 and its string. Needs no network and no token unless
//! `--deeplink` asks Bakong for a short link.

use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};
use clap::Args;
use serde::Serialize;

use super::args::currency_arg;
use super::{CliError, Context, Report};
use crate::app;
use crate::bakong::SourceInfo;
use crate::khqr::{self, render, KhqrError};
use crate::money::{parse_amount, Currency};
use crate::payment::PaymentId;
use crate::store::NewPayment;

/// `new` arguments.
#[derive(Debug, Args)]
#[command(after_help = "\
The receiving account, name and city come from [merchant] in the config.

Examples:
  bakong-poller new --amount 5.00 --currency USD --bill INV-1042 --expires-in 10m
  bakong-poller new --amount 20000 --currency KHR --png qr.png --json")]
pub struct NewArgs {
    /// Amount to pay: USD with at most 2 decimals, KHR whole (a KHQR without
    /// an amount is static and cannot be tracked, so it is required).
    #[arg(long, allow_hyphen_values = true)]
    pub amount: Option<String>,
    /// USD or KHR.
    #[arg(long, value_parser = currency_arg)]
    pub currency: Currency,
    /// Bill number (tag 62), at most 25 characters, e.g. your invoice id.
    #[arg(long)]
    pub bill: Option<String>,
    /// Purpose of transaction (tag 62), at most 25 characters.
    #[arg(long)]
    pub purpose: Option<String>,
    /// Lifetime of the QR and of the payment row (default: poller.payment_ttl).
    #[arg(long, value_parser = lifetime_arg)]
    pub expires_in: Option<TimeDelta>,
    /// Also write the QR as an SVG file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Also write the QR as a PNG file.
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// Draw the terminal QR for a light background (default: dark).
    #[arg(long)]
    pub light_terminal: bool,
    /// Also ask Bakong for a deeplink (generate_deeplink_by_qr; needs a token).
    #[arg(long, requires_all = ["app_name", "app_icon_url", "callback"])]
    pub deeplink: bool,
    /// With --deeplink: your app's name.
    #[arg(long, requires = "deeplink")]
    pub app_name: Option<String>,
    /// With --deeplink: your app's icon URL.
    #[arg(long, requires = "deeplink")]
    pub app_icon_url: Option<String>,
    /// With --deeplink: the deeplink that opens your app after payment.
    #[arg(long, requires = "deeplink")]
    pub callback: Option<String>,
    /// The shop's order reference, kept in the row and carried by its
    /// events (not unique: retries of an order are normal).
    #[arg(long, value_parser = super::args::order_id_arg)]
    pub order_id: Option<String>,
    /// A JSON object of at most 4 KB, kept in the row and carried by its
    /// events.
    #[arg(long, value_parser = super::args::metadata_arg)]
    pub metadata: Option<String>,
}

/// A lifetime chrono cannot represent, or zero.
#[derive(Debug, thiserror::Error)]
pub enum BadLifetime {
    /// Not a humantime duration.
    #[error(transparent)]
    Parse(#[from] humantime::DurationError),
    /// Zero or too long to add to a date.
    #[error("a lifetime must be longer than zero and shorter than a few centuries")]
    Range,
}

fn lifetime_arg(s: &str) -> Result<TimeDelta, BadLifetime> {
    let d = humantime::parse_duration(s)?;
    match TimeDelta::from_std(d) {
        Ok(t) if t > TimeDelta::zero() => Ok(t),
        _ => Err(BadLifetime::Range),
    }
}

/// `new`'s result.
#[derive(Debug, Serialize)]
pub struct Opened {
    /// Row id in the payments table.
    pub id: PaymentId,
    /// The unguessable id for links.
    pub public_id: String,
    /// The order reference, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// The metadata, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// md5 of the KHQR string: the row's key.
    pub md5: String,
    /// The KHQR string.
    pub qr: String,
    /// Expected amount, as the KHQR writes it.
    pub amount: String,
    /// Expected currency.
    pub currency: Currency,
    /// When the QR and the row expire (UTC, RFC 3339).
    pub expires_at: DateTime<Utc>,
    /// When the QR was created (tag 99).
    pub created_at: DateTime<Utc>,
    /// The receiving account.
    pub account_id: String,
    /// The bill number, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bill_number: Option<String>,
    /// The deeplink, with `--deeplink`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deeplink: Option<String>,
    /// The SVG file written, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub svg: Option<PathBuf>,
    /// The PNG file written, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub png: Option<PathBuf>,
    /// The QR in Unicode half blocks (human output only).
    #[serde(skip)]
    pub terminal: String,
}

impl Report for Opened {
    fn human(&self) -> String {
        let mut s = self.terminal.clone();
        s += &format!(
            "payment {} pending: {} {} to {}, expires {}\nmd5 {}\nqr  {}",
            self.id,
            self.amount,
            self.currency,
            self.account_id,
            self.expires_at.format("%Y-%m-%d %H:%M:%S UTC"),
            self.md5,
            self.qr
        );
        if let Some(l) = &self.deeplink {
            s += &format!("\ndeeplink {l}");
        }
        for f in [&self.svg, &self.png].into_iter().flatten() {
            s += &format!("\nwrote {}", f.display());
        }
        s
    }
}

/// The command-line argument (or config key) behind an encoder field.
fn argument_of(field: &str) -> String {
    match field {
        "amount" => "--amount".into(),
        "bill_number" => "--bill".into(),
        "purpose" => "--purpose".into(),
        "expires_at" | "created_at" => "--expires-in".into(),
        "additional_data" => "--bill and --purpose together with merchant.mobile_number, merchant.store_label and merchant.terminal_label".into(),
        "upi_merchant_account" => "--currency".into(),
        other => format!("config key merchant.{other}"),
    }
}

fn usage(e: KhqrError) -> CliError {
    match e.field() {
        Some(f) => CliError::Usage(format!("{}: {e}", argument_of(f))),
        None => CliError::Usage(e.to_string()),
    }
}

/// Builds the KHQR, inserts the pending row, writes the images.
pub async fn run(ctx: &Context, a: &NewArgs) -> Result<Opened, CliError> {
    let Some(amount_text) = &a.amount else {
        return Err(CliError::Usage(
            "--amount is required: a static KHQR (no amount) can be paid any number of times with any amount, and Bakong cannot look it up by md5, so `new` only opens dynamic ones".into(),
        ));
    };
    let amount = parse_amount(amount_text).map_err(|e| {
        let zero = amount_text
            .trim()
            .parse::<rust_decimal::Decimal>()
            .is_ok_and(|d| d.is_zero());
        CliError::Usage(if zero {
            "--amount: 0 would make a static KHQR, which cannot be tracked by md5; give the amount to pay".into()
        } else {
            format!("--amount: {e}")
        })
    })?;
    let settings = ctx.quiet_settings()?;
    let order = crate::open::Order {
        amount,
        currency: a.currency,
        bill: a.bill.clone(),
        purpose: a.purpose.clone(),
        ttl: a.expires_in,
    };
    let open_err = |e: crate::open::OpenError| match e {
        crate::open::OpenError::Config(c) => CliError::Config(c),
        crate::open::OpenError::Khqr(k) => usage(k),
        crate::open::OpenError::TooLong => {
            CliError::Usage("--expires-in: too far in the future".into())
        }
    };
    // Values NBC's SDK accepts but bank apps are known to refuse (a
    // mobile number that is not digits only): said, not refused.
    let req = crate::open::request(&settings, &order).map_err(open_err)?;
    for w in khqr::field_warnings(&req) {
        ctx.notice(&format!("warning: {}: {w}", argument_of(w.field)));
    }
    let opened = crate::open::build(&settings, &order).map_err(open_err)?;
    let (qr, md5, amount_text, now, expires_at) = (
        opened.qr,
        opened.md5,
        opened.amount,
        opened.created_at,
        opened.expires_at,
    );
    let background = if a.light_terminal {
        render::Background::Light
    } else {
        render::Background::Dark
    };
    let render_err = |e: render::RenderError| CliError::Runtime(e.to_string());
    let terminal = render::terminal(&qr, background).map_err(render_err)?;
    let svg = match &a.svg {
        Some(_) => Some(render::svg(&qr).map_err(render_err)?),
        None => None,
    };
    let png = match &a.png {
        Some(_) => Some(render::png(&qr, 8).map_err(render_err)?),
        None => None,
    };
    // The network goes first: if Bakong refuses, nothing was inserted.
    let deeplink = if a.deeplink {
        let client = app::build_client(&settings, true)?;
        let source = SourceInfo {
            app_icon_url: a.app_icon_url.clone().unwrap_or_default(),
            app_name: a.app_name.clone().unwrap_or_default(),
            app_deep_link_callback: a.callback.clone().unwrap_or_default(),
        };
        Some(client.generate_deeplink(&qr, &source).await?)
    } else {
        None
    };
    let public_id = crate::payment::new_public_id();
    let store = app::open_store(&settings).await?;
    let inserted = store
        .insert_payment(&NewPayment {
            md5: md5.clone(),
            amount: amount_text.clone(),
            currency: a.currency,
            expires_at: Some(expires_at),
            order_id: a.order_id.clone(),
            metadata: a.metadata.clone(),
            qr: Some(qr.clone()),
            public_id: Some(public_id.clone()),
            redirect_url: None,
        })
        .await;
    store.close().await;
    let id = inserted?;
    let write = |path: &PathBuf, bytes: &[u8]| {
        std::fs::write(path, bytes).map_err(|e| {
            CliError::Runtime(format!(
                "payment {id} ({md5}) is open, but {} could not be written: {e}",
                path.display()
            ))
        })
    };
    if let (Some(p), Some(s)) = (&a.svg, &svg) {
        write(p, s.as_bytes())?;
    }
    if let (Some(p), Some(b)) = (&a.png, &png) {
        write(p, b)?;
    }
    Ok(Opened {
        id,
        public_id,
        order_id: a.order_id.clone(),
        metadata: a
            .metadata
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok()),
        md5: md5.clone(),
        qr,
        amount: amount_text,
        currency: a.currency,
        expires_at,
        created_at: now,
        account_id: opened.account_id,
        bill_number: a.bill.clone(),
        deeplink,
        svg: a.svg.clone(),
        png: a.png.clone(),
        terminal,
    })
}
