//! `deeplink`: a short link that opens a banking app on a dynamic KHQR.

use clap::Args;
use serde::Serialize;

use super::{CliError, Context, Report};
use crate::app;
use crate::bakong::SourceInfo;

/// `deeplink` arguments.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  bakong-poller deeplink --qr 000201... --app-name Shop --app-icon-url https://shop.example/icon.png --callback https://shop.example/paid"
)]
pub struct DeeplinkArgs {
    /// The KHQR string.
    #[arg(long)]
    pub qr: String,
    /// Your app's name.
    #[arg(long)]
    pub app_name: String,
    /// Your app's icon URL.
    #[arg(long)]
    pub app_icon_url: String,
    /// Deeplink to open your app after payment.
    #[arg(long)]
    pub callback: String,
}

/// `deeplink`'s result.
#[derive(Debug, Serialize)]
pub struct Deeplink {
    /// The link Bakong generated.
    pub short_link: String,
}

impl Report for Deeplink {
    fn human(&self) -> String {
        self.short_link.clone()
    }
}

/// Asks `generate_deeplink_by_qr`.
pub async fn run(ctx: &Context, a: &DeeplinkArgs) -> Result<Deeplink, CliError> {
    let settings = ctx.quiet_settings()?;
    let client = app::build_client(&settings, false)?;
    let source = SourceInfo {
        app_icon_url: a.app_icon_url.clone(),
        app_name: a.app_name.clone(),
        app_deep_link_callback: a.callback.clone(),
    };
    let short_link = client.generate_deeplink(&a.qr, &source).await?;
    Ok(Deeplink { short_link })
}
