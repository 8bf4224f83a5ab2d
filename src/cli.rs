//! The command line: the daemon, the simulator, the demo, and operator
//! commands over the Bakong client and the payments table.
//!
//! Exit codes: 0 ok / found, 1 runtime error, 2 usage or config error,
//! 3 not found.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};
use rust_decimal::Decimal;
use serde_json::json;

use crate::bakong::{self, SourceInfo, Transaction};
use crate::config::Settings;
use crate::khqr::is_md5;
use crate::money::{parse_amount, Currency};
use crate::app::{self, AppError};

/// Exit code: success, or found.
pub const EXIT_OK: i32 = 0;
/// Exit code: runtime error.
pub const EXIT_ERROR: i32 = 1;
/// Exit code: usage or config error.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: not found.
pub const EXIT_NOT_FOUND: i32 = 3;

const AFTER_HELP: &str = "\
Exit codes: 0 ok/found, 1 error, 2 usage or config, 3 not found.

Examples:
  bakong-poller demo                              # simulator + daemon on a temporary database
  bakong-poller --config /etc/bakong-poller/bakong-poller.toml run
  bakong-poller simulate --listen 127.0.0.1:8080
  bakong-poller check md5 b1c250304b8594e4c6b53dd44791b57a";

/// bakong-poller: confirms Bakong (KHQR) payments for merchants.
#[derive(Debug, Parser)]
#[command(name = "bakong-poller", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Config file (TOML). Without it: built-in defaults and BAKONG_POLLER__* variables.
    #[arg(
        long,
        short,
        global = true,
        env = "BAKONG_POLLER_CONFIG",
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,
    /// Print results as JSON (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: confirm pending payments until SIGTERM/SIGINT.
    #[command(
        after_help = "Example:\n  bakong-poller --config /etc/bakong-poller/bakong-poller.toml run"
    )]
    Run,
    /// Create or upgrade the database schema, then exit.
    #[command(after_help = "Example:\n  bakong-poller --config bakong-poller.toml migrate")]
    Migrate,
    /// Run the simulator and the daemon on a temporary database with simulated customers.
    #[command(after_help = "Example:\n  bakong-poller demo --payments 24")]
    Demo(DemoArgs),
    /// Benchmark the daemon against the simulator under a rate limit, with a naive baseline.
    #[command(
        after_help = "Example:\n  cargo run --release -- bench\n  bakong-poller bench --duration 10s --bulk-levels 50 --single-levels 2 --baseline-levels 2"
    )]
    Bench(BenchArgs),
    /// Serve a local Bakong Open API simulator until SIGINT/SIGTERM.
    #[command(
        after_help = "Example:\n  bakong-poller simulate --listen 127.0.0.1:8080 --scenario scenario.toml"
    )]
    Simulate {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Scenario file (TOML): settings, faults, registrations, accounts, transactions.
        #[arg(long, value_name = "FILE")]
        scenario: Option<PathBuf>,
    },
    /// Get, verify, renew and inspect the access token.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Look up a transaction.
    #[command(subcommand)]
    Check(CheckCommand),
    /// Whether a Bakong account exists.
    #[command(after_help = "Example:\n  bakong-poller account shop@aclb")]
    Account {
        /// The account id (name@bank).
        account_id: String,
    },
    /// Generate a deeplink for a dynamic KHQR.
    #[command(
        after_help = "Example:\n  bakong-poller deeplink --qr 000201... --app-name Shop --app-icon-url https://shop.example/icon.png --callback https://shop.example/paid"
    )]
    Deeplink {
        /// The KHQR string.
        #[arg(long)]
        qr: String,
        /// Your app's name.
        #[arg(long)]
        app_name: String,
        /// Your app's icon URL.
        #[arg(long)]
        app_icon_url: String,
        /// Deeplink to open your app after payment.
        #[arg(long)]
        callback: String,
    },
    /// Insert a pending payment, as a merchant's application would.
    #[command(
        after_help = "Example:\n  bakong-poller add --md5 b1c250304b8594e4c6b53dd44791b57a --amount 500 --currency KHR --expires-in 10m"
    )]
    Add {
        /// md5 of the KHQR string (32 lowercase hex).
        #[arg(long, value_parser = parse_md5)]
        md5: String,
        /// Expected amount, e.g. 1.50 or 4000 (stored as written).
        #[arg(long, allow_hyphen_values = true, value_parser = parse_amount_text)]
        amount: String,
        /// USD or KHR.
        #[arg(long, value_parser = parse_currency)]
        currency: Currency,
        /// Lifetime (default: poller.payment_ttl).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<Duration>,
    },
    /// List payments, newest first.
    #[command(after_help = "Example:\n  bakong-poller list --status pending --limit 50")]
    List {
        /// Only this status.
        #[arg(long, value_parser = ["pending", "paid", "mismatch", "failed", "expired"])]
        status: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=100000))]
        limit: i64,
    },
    /// Counts per status, oldest pending, next check, last answer, token expiry.
    #[command(after_help = "Example:\n  bakong-poller status --json")]
    Status,
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the commented default config.
    #[command(
        after_help = "Example:\n  bakong-poller print-config > /etc/bakong-poller/bakong-poller.toml"
    )]
    PrintConfig,
    /// Print shell completions.
    #[command(
        after_help = "Example:\n  bakong-poller completions bash > /etc/bash_completion.d/bakong-poller"
    )]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// `demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many payments the simulated customers make.
    #[arg(long, default_value_t = 36, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub payments: u32,
}

/// `bench` options.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// How long payments are created at each load level.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// The simulator's request limit, requests per second.
    #[arg(long, default_value_t = 10.0)]
    pub limit: f64,
    /// New payments per second in bulk mode (comma-separated; empty for none).
    #[arg(long, default_value = "2,10,25,50,75", value_parser = crate::bench::parse_levels)]
    pub bulk_levels: std::vec::Vec<f64>,
    /// New payments per second in single-lookup mode.
    #[arg(long, default_value = "1,2,4", value_parser = crate::bench::parse_levels)]
    pub single_levels: std::vec::Vec<f64>,
    /// Levels at which the naive baseline runs too.
    #[arg(long, default_value = "2,10", value_parser = crate::bench::parse_levels)]
    pub baseline_levels: std::vec::Vec<f64>,
    /// Pending payments for the RSS / CPU measurement.
    #[arg(long, default_value_t = 10_000)]
    pub pending: usize,
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Register and have Bakong email a verification code.
    #[command(
        after_help = "Example:\n  bakong-poller token request --email shop@example.com --organization Shop --project checkout"
    )]
    Request {
        /// Email (at most 30 characters).
        #[arg(long)]
        email: String,
        /// Organization name.
        #[arg(long)]
        organization: String,
        /// Project name.
        #[arg(long)]
        project: String,
    },
    /// Exchange the emailed code for a token and save it to bakong.token_file.
    #[command(after_help = "Example:\n  bakong-poller token verify --code ABCDEFGHJKLMNPQRSTUV")]
    Verify {
        /// The 20-character code.
        #[arg(long)]
        code: String,
    },
    /// Renew the token now (needs bakong.email) and save it.
    #[command(after_help = "Example:\n  bakong-poller token renew")]
    Renew,
    /// Show the token's source, issue and expiry dates and days left.
    #[command(after_help = "Example:\n  bakong-poller token show")]
    Show {
        /// Print the token itself too.
        #[arg(long)]
        reveal: bool,
    },
}

/// `check` subcommands.
#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// By md5 of the KHQR string.
    #[command(after_help = "Example:\n  bakong-poller check md5 b1c250304b8594e4c6b53dd44791b57a")]
    Md5 {
        /// The md5.
        md5: String,
    },
    /// By full transaction hash.
    #[command(
        after_help = "Example:\n  bakong-poller check hash 8465d722d7d5065f2886f0a474a4d34dc6a7855355b611836f7b6111228893e9"
    )]
    Hash {
        /// The hash.
        hash: String,
    },
    /// By the first 8 characters of the hash, with amount and currency.
    #[command(
        after_help = "Example:\n  bakong-poller check short-hash 8465d722 --amount 1.00 --currency USD"
    )]
    ShortHash {
        /// The short hash.
        hash: String,
        /// Amount paid.
        #[arg(long, allow_hyphen_values = true, value_parser = parse_decimal)]
        amount: Decimal,
        /// USD or KHR.
        #[arg(long, value_parser = parse_currency)]
        currency: Currency,
    },
    /// Many md5s, 50 per request.
    #[command(after_help = "Example:\n  bakong-poller check md5-list MD5 MD5 ...")]
    Md5List {
        /// The md5s.
        #[arg(required = true)]
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

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate config, database, journal mode and token; one line per problem.
    #[command(
        after_help = "Example:\n  bakong-poller --config /etc/bakong-poller/bakong-poller.toml config check"
    )]
    Check,
}

fn parse_md5(s: &str) -> Result<String, String> {
    if is_md5(s) {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not an md5 (32 lowercase hex characters)"))
    }
}
fn parse_decimal(s: &str) -> Result<Decimal, String> {
    parse_amount(s).map_err(|e| e.to_string())
}
fn parse_amount_text(s: &str) -> Result<String, String> {
    parse_amount(s)
        .map(|_| s.trim().to_string())
        .map_err(|e| e.to_string())
}
fn parse_currency(s: &str) -> Result<Currency, String> {
    s.parse::<Currency>().map_err(|e| e.to_string())
}

/// A command's failure: the message for stderr and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub code: i32,
    /// One line for stderr.
    pub message: String,
}

impl Failure {
    fn usage(m: impl Into<String>) -> Self {
        Failure {
            code: EXIT_USAGE,
            message: m.into(),
        }
    }
    fn runtime(m: impl Into<String>) -> Self {
        Failure {
            code: EXIT_ERROR,
            message: m.into(),
        }
    }
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        Failure {
            code: match e {
                AppError::Config(_) => EXIT_USAGE,
                AppError::Database(_) | AppError::Runtime(_) => EXIT_ERROR,
            },
            message: e.to_string(),
        }
    }
}

impl From<bakong::Error> for Failure {
    fn from(e: bakong::Error) -> Self {
        let code = match &e {
            // errorCode 5 (missing or invalid field) and 12 (malformed
            // account id): the argument was bad, as the server judged it.
            bakong::Error::InvalidArgument { .. }
            | bakong::Error::NoToken
            | bakong::Error::Api { code: 5 | 12, .. } => EXIT_USAGE,
            bakong::Error::NotFound { .. } => EXIT_NOT_FOUND,
            _ => EXIT_ERROR,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

/// Parses the command line; a usage error prints one line and exits 2.
pub fn parse() -> Cli {
    match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            // One line: the message and what it lists, without usage text.
            let text = e.render().to_string();
            let body = text
                .split("\n\nUsage:")
                .next()
                .unwrap_or_default()
                .split("\n\nFor more information")
                .next()
                .unwrap_or_default();
            let line = body.split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("{line} (see --help)");
            std::process::exit(EXIT_USAGE);
        }
    }
}

fn load(cli: &Cli) -> Result<Settings, Failure> {
    Settings::load(cli.config.as_deref()).map_err(|e| Failure::usage(e.to_string()))
}

/// Runs a parsed command; returns the exit code.
pub async fn dispatch(cli: Cli) -> Result<i32, Failure> {
    match &cli.command {
        Command::Run => {
            let settings = load(&cli)?;
            crate::telemetry::init(settings.log.format, &settings.log.level);
            let shutdown = crate::shutdown::on_signal()
                .map_err(|e| Failure::runtime(format!("cannot install signal handlers: {e}")))?;
            let notify = crate::systemd::SdNotify::from_env();
            if let Some(w) = notify.watchdog() {
                if settings.poller.scan_interval > w / 2 {
                    return Err(Failure::usage(format!(
                        "config key poller.scan_interval: {} is longer than half of systemd's WatchdogSec ({}); shorten it",
                        humantime::format_duration(settings.poller.scan_interval),
                        humantime::format_duration(w)
                    )));
                }
            }
            crate::poller::run(settings, shutdown, Arc::new(notify)).await?;
            Ok(EXIT_OK)
        }
        Command::Migrate => {
            let settings = load(&cli)?;
            crate::telemetry::init(settings.log.format, &settings.log.level);
            app::open_store(&settings).await?.close().await;
            println!("database {} is at the latest schema", settings.database.url);
            Ok(EXIT_OK)
        }
        Command::Demo(args) => {
            crate::demo::run(args.payments as usize)
                .await
                .map_err(Failure::runtime)?;
            Ok(EXIT_OK)
        }
        Command::Simulate { listen, scenario } => simulate(*listen, scenario.as_deref()).await,
        Command::Bench(a) => {
            if !(a.limit.is_finite() && a.limit > 0.0) {
                return Err(Failure::usage(format!(
                    "--limit {} must be a positive number",
                    a.limit
                )));
            }
            crate::bench::run(crate::bench::BenchOptions {
                duration: a.duration,
                limit: a.limit,
                bulk_levels: a.bulk_levels.clone(),
                single_levels: a.single_levels.clone(),
                baseline_levels: a.baseline_levels.clone(),
                pending: a.pending,
            })
            .await
            .map_err(Failure::runtime)?;
            Ok(EXIT_OK)
        }
        Command::PrintConfig => {
            print!("{}", crate::config::EXAMPLE);
            Ok(EXIT_OK)
        }
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "bakong-poller", &mut std::io::stdout());
            Ok(EXIT_OK)
        }
        Command::Config(ConfigCommand::Check) => config_check(&cli).await,
        Command::Token(t) => token(&cli, t).await,
        Command::Check(c) => check(&cli, c).await,
        Command::Account { account_id } => {
            let settings = quiet(&cli)?;
            let client = app::build_client(&settings, true)?;
            let exists = client.check_account(account_id).await?;
            output(
                &cli,
                json!({ "account_id": account_id, "exists": exists }),
                || {
                    format!(
                        "{account_id}: {}",
                        if exists { "exists" } else { "not found" }
                    )
                },
            );
            Ok(if exists { EXIT_OK } else { EXIT_NOT_FOUND })
        }
        Command::Deeplink {
            qr,
            app_name,
            app_icon_url,
            callback,
        } => {
            let settings = quiet(&cli)?;
            let client = app::build_client(&settings, true)?;
            let link = client
                .generate_deeplink(
                    qr,
                    &SourceInfo {
                        app_icon_url: app_icon_url.clone(),
                        app_name: app_name.clone(),
                        app_deep_link_callback: callback.clone(),
                    },
                )
                .await?;
            output(&cli, json!({ "short_link": link }), || link.clone());
            Ok(EXIT_OK)
        }
        Command::Add {
            md5,
            amount,
            currency,
            expires_in,
        } => {
            let settings = quiet(&cli)?;
            let store = app::open_store(&settings).await?;
            let expires = expires_in
                .map(|d| chrono::Utc::now() + chrono::Duration::from_std(d).unwrap_or_default())
                .map(crate::store::sql_time);
            let id = store
                .insert_payment(
                    md5,
                    &amount.to_string(),
                    currency.code(),
                    expires.as_deref(),
                )
                .await
                .map_err(|e| Failure::runtime(e.to_string()))?;
            store.close().await;
            output(
                &cli,
                json!({ "id": id, "md5": md5, "amount": amount, "currency": currency.code(), "expires_at": expires }),
                || format!("added payment {id}: {md5} {amount} {currency} (pending)"),
            );
            Ok(EXIT_OK)
        }
        Command::List { status, limit } => {
            let settings = quiet(&cli)?;
            let store = app::open_store(&settings).await?;
            let rows = store
                .list(status.as_deref(), *limit)
                .await
                .map_err(|e| Failure::runtime(e.to_string()))?;
            store.close().await;
            output(&cli, json!(rows), || {
                let mut s = format!(
                    "{:>6}  {:32}  {:>12}  {:3}  {:8}  {:23}  {}\n",
                    "id", "md5", "amount", "cur", "status", "created_at", "hash"
                );
                for r in &rows {
                    s += &format!(
                        "{:>6}  {:32}  {:>12}  {:3}  {:8}  {:23}  {}\n",
                        r.id,
                        r.md5,
                        r.amount,
                        r.currency,
                        r.status,
                        r.created_at,
                        r.bakong_hash.as_deref().unwrap_or("-")
                    );
                }
                s.trim_end().to_string()
            });
            Ok(EXIT_OK)
        }
        Command::Status => status(&cli).await,
    }
}

/// Loads settings and logs only warnings for one-shot commands.
fn quiet(cli: &Cli) -> Result<Settings, Failure> {
    let settings = load(cli)?;
    crate::telemetry::init(settings.log.format, "warn");
    Ok(settings)
}

fn output(cli: &Cli, v: serde_json::Value, human: impl FnOnce() -> String) {
    if cli.json {
        println!("{v}");
    } else {
        println!("{}", human());
    }
}

fn show_tx(t: &Transaction) -> String {
    let when = t
        .created_date_ms
        .and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".into());
    format!(
        "paid {} {} from {} to {} at {}\nhash {}{}",
        t.amount,
        t.currency,
        t.from_account_id,
        t.to_account_id,
        when,
        t.hash,
        t.description
            .as_deref()
            .map(|d| format!("\ndescription {d}"))
            .unwrap_or_default()
    )
}

async fn check(cli: &Cli, c: &CheckCommand) -> Result<i32, Failure> {
    let settings = quiet(cli)?;
    let client = app::build_client(&settings, true)?;
    if let CheckCommand::Md5List { md5s } = c {
        let mut all = serde_json::Map::new();
        let mut human = Vec::new();
        let mut found_all = true;
        for chunk in md5s.chunks(bakong::MAX_LIST) {
            let answers = client.check_md5_list(chunk).await?;
            for m in chunk {
                let st = answers.get(m);
                let (label, v) = match st {
                    Some(bakong::ListStatus::Success { transaction }) => (
                        "paid",
                        json!({"status": "SUCCESS", "transaction": transaction}),
                    ),
                    Some(bakong::ListStatus::NotFound) | None => {
                        ("not found", json!({"status": "NOT_FOUND"}))
                    }
                    Some(bakong::ListStatus::Failed) => ("failed", json!({"status": "FAILED"})),
                    Some(bakong::ListStatus::StaticQr) => {
                        ("static QR", json!({"status": "STATIC_QR"}))
                    }
                };
                found_all &= label == "paid";
                human.push(format!("{m}  {label}"));
                all.insert(m.clone(), v);
            }
        }
        output(cli, serde_json::Value::Object(all), || human.join("\n"));
        return Ok(if found_all { EXIT_OK } else { EXIT_NOT_FOUND });
    }
    let result = match c {
        CheckCommand::Md5 { md5 } => client.check_md5(md5).await,
        CheckCommand::Hash { hash } => client.check_hash(hash).await,
        CheckCommand::ShortHash {
            hash,
            amount,
            currency,
        } => client.check_short_hash(hash, *amount, *currency).await,
        CheckCommand::InstructionRef { reference } => client.check_instruction_ref(reference).await,
        CheckCommand::ExternalRef { reference } => client.check_external_ref(reference).await,
        CheckCommand::Md5List { .. } => unreachable!("handled above"),
    };
    match result {
        Ok(t) => {
            output(cli, json!(t), || show_tx(&t));
            Ok(EXIT_OK)
        }
        Err(bakong::Error::NotFound { message }) => {
            output(
                cli,
                json!({ "status": "not_found", "message": message }),
                || format!("not found: {message}"),
            );
            Ok(EXIT_NOT_FOUND)
        }
        Err(bakong::Error::TransactionFailed { message }) => {
            output(
                cli,
                json!({ "status": "failed", "message": message }),
                || format!("transaction failed: {message}"),
            );
            Ok(EXIT_ERROR)
        }
        Err(e) => Err(e.into()),
    }
}

async fn token(cli: &Cli, t: &TokenCommand) -> Result<i32, Failure> {
    let settings = quiet(cli)?;
    match t {
        TokenCommand::Request {
            email,
            organization,
            project,
        } => {
            let client = app::build_client(&settings, false)?;
            let msg = client
                .request_token(&bakong::RequestTokenBody {
                    email: email.clone(),
                    organization: organization.clone(),
                    project: project.clone(),
                })
                .await?;
            output(cli, json!({ "message": msg }), || {
                format!("{msg}: Bakong emailed a 20-character code to {email}; run `bakong-poller token verify --code CODE`")
            });
            Ok(EXIT_OK)
        }
        TokenCommand::Verify { code } => {
            let client = app::build_client(&settings, false)?;
            let token = client.verify(code).await?;
            bakong::token::save_token_file(&settings.bakong.token_file, &token)
                .map_err(Failure::runtime)?;
            let exp = token.claims().expires_at;
            output(
                cli,
                json!({ "token_file": settings.bakong.token_file, "expires_at": exp }),
                || {
                    format!(
                        "token saved to {} (expires {})",
                        settings.bakong.token_file.display(),
                        exp.map(|e| e.to_rfc3339())
                            .unwrap_or_else(|| "unknown".into())
                    )
                },
            );
            Ok(EXIT_OK)
        }
        TokenCommand::Renew => {
            if settings.bakong.email.is_none() {
                return Err(Failure::usage(
                    "config key bakong.email: needed to renew the token",
                ));
            }
            let client = app::build_client(&settings, false)?;
            let generation = client.keeper().map(|k| k.generation()).unwrap_or(0);
            client.renew_if_current(generation).await?;
            let exp = client
                .keeper()
                .and_then(|k| k.current())
                .and_then(|(t, _)| t.claims().expires_at);
            output(
                cli,
                json!({ "token_file": settings.bakong.token_file, "expires_at": exp }),
                || {
                    format!(
                        "token renewed and saved to {}",
                        settings.bakong.token_file.display()
                    )
                },
            );
            Ok(EXIT_OK)
        }
        TokenCommand::Show { reveal } => {
            let picked = settings.initial_token().map_err(Failure::usage)?;
            let Some((token, source)) = picked else {
                return Err(Failure::usage(format!(
                    "no access token: set bakong.token or put one in bakong.token_file ({})",
                    settings.bakong.token_file.display()
                )));
            };
            let c = token.claims();
            let days_left = c
                .expires_at
                .map(|e| (e - chrono::Utc::now()).num_seconds() as f64 / 86400.0);
            let mut v = json!({ "source": source.to_string(), "issued_at": c.issued_at, "expires_at": c.expires_at, "days_left": days_left });
            if *reveal {
                v["token"] = json!(token.expose());
            }
            output(cli, v, || {
                let mut s = format!(
                    "source     {source}\nissued     {}\nexpires    {}\ndays left  {}",
                    c.issued_at
                        .map(|d| d.to_rfc3339())
                        .unwrap_or_else(|| "unknown".into()),
                    c.expires_at
                        .map(|d| d.to_rfc3339())
                        .unwrap_or_else(|| "unknown".into()),
                    days_left
                        .map(|d| format!("{d:.1}"))
                        .unwrap_or_else(|| "unknown".into()),
                );
                if *reveal {
                    s += &format!("\ntoken      {}", token.expose());
                }
                s
            });
            Ok(EXIT_OK)
        }
    }
}

async fn status(cli: &Cli) -> Result<i32, Failure> {
    let settings = quiet(cli)?;
    let store = app::open_store(&settings).await?;
    let counts = store
        .counts()
        .await
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let last = store
        .last_answer_at()
        .await
        .map_err(|e| Failure::runtime(e.to_string()))?;
    store.close().await;
    let token_exp = settings
        .initial_token()
        .ok()
        .flatten()
        .and_then(|(t, _)| t.claims().expires_at);
    let next = counts
        .next_check_ms
        .and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis);
    output(
        cli,
        json!({ "counts": counts, "next_check_at": next, "last_answer_at": last, "token_expires_at": token_exp }),
        || {
            format!(
                "pending {}  paid {}  mismatch {}  failed {}  expired {}\noldest pending   {}\nnext check due   {}\nlast API answer  {}\ntoken expires    {}",
                counts.pending, counts.paid, counts.mismatch, counts.failed, counts.expired,
                counts.oldest_pending.as_deref().unwrap_or("-"),
                next.map(|d| d.to_rfc3339()).unwrap_or_else(|| "-".into()),
                last.as_deref().unwrap_or("-"),
                token_exp.map(|d| d.to_rfc3339()).unwrap_or_else(|| "unknown".into()),
            )
        },
    );
    Ok(EXIT_OK)
}

async fn config_check(cli: &Cli) -> Result<i32, Failure> {
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(EXIT_USAGE);
        }
    };
    let mut problems = Vec::new();
    match crate::store::Store::connect(&settings.database.url, settings.database.busy_timeout).await
    {
        Ok(store) => {
            match store.journal_mode().await {
                Ok(m) if m.eq_ignore_ascii_case("wal") => {}
                Ok(m) => problems.push(format!("database.url: journal mode is {m}, expected wal")),
                Err(e) => problems.push(format!("database.url: {e}")),
            }
            store.close().await;
        }
        Err(e) => problems.push(format!("database.url: {e}")),
    }
    match settings.initial_token() {
        Ok(Some((t, src))) => {
            if let Some(exp) = t.claims().expires_at {
                if exp <= chrono::Utc::now() {
                    problems.push(format!("bakong.token: the token from {src} expired at {exp}; renew it"));
                }
            }
        }
        Ok(None) => problems.push(format!(
            "bakong.token: no token in bakong.token, bakong.token_file ({}) or $CREDENTIALS_DIRECTORY/token",
            settings.bakong.token_file.display()
        )),
        Err(e) => problems.push(format!("bakong.token_file: {e}")),
    }
    if settings.bakong.email.is_none() {
        problems.push("bakong.email: not set, so an expired token cannot be renewed".into());
    }
    for p in &problems {
        eprintln!("{p}");
    }
    if problems.is_empty() {
        println!("config ok");
        Ok(EXIT_OK)
    } else {
        Ok(EXIT_USAGE)
    }
}

async fn simulate(listen: SocketAddr, scenario: Option<&std::path::Path>) -> Result<i32, Failure> {
    crate::telemetry::init(crate::config::LogFormat::Text, "info");
    let scenario = match scenario {
        Some(p) => crate::simulator::Scenario::load(p).map_err(Failure::usage)?,
        None => crate::simulator::Scenario::default(),
    };
    let shutdown = crate::shutdown::on_signal()
        .map_err(|e| Failure::runtime(format!("cannot install signal handlers: {e}")))?;
    let handle = crate::simulator::spawn(listen, &scenario, shutdown.clone())
        .await
        .map_err(Failure::runtime)?;
    println!("{}", handle.base_url());
    tracing::info!(base_url = %handle.base_url(), "Bakong simulator serving; control API under /_sim");
    shutdown.cancelled().await;
    handle.stop().await;
    Ok(EXIT_OK)
}
