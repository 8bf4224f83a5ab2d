//! What a command can fail with, and the exit codes: the one place that
//! decides which failure or outcome exits with which code.
//!
//! `0` ok / found, `1` runtime error, `2` usage or config, `3` not found.

use clap::error::{ContextKind, ErrorKind};

use crate::app::AppError;
use crate::bakong;
use crate::config::ConfigError;
use crate::store::StoreError;

/// Exit code: success, or found.
pub const EXIT_OK: i32 = 0;
/// Exit code: runtime error.
pub const EXIT_ERROR: i32 = 1;
/// Exit code: usage or config error.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: not found.
pub const EXIT_NOT_FOUND: i32 = 3;
/// Exit code: well formed but expired (`khqr verify`).
pub const EXIT_EXPIRED: i32 = 4;

/// Why a command could not do its job. [`CliError::exit_code`] maps each
/// to its exit code; the message is one line (except `Problems`, one line
/// per problem) and never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line itself is wrong (clap's verdict), as one line.
    #[error("{} (see --help)", usage_line(.0))]
    Args(clap::Error),
    /// An argument is wrong in a way clap cannot see (e.g. two options
    /// that contradict each other); the message names it.
    #[error("{0}")]
    Usage(String),
    /// The config could not be loaded or is invalid; the message names the key.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Building the application (store, client) failed.
    #[error(transparent)]
    App(#[from] AppError),
    /// A Bakong call failed.
    #[error(transparent)]
    Bakong(#[from] bakong::Error),
    /// A database statement failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Several config or environment problems found by a check, one per line.
    #[error("{}", .0.join("; "))]
    Problems(Vec<String>),
    /// Another runtime failure (signal handlers, the demo, the simulator).
    #[error("{0}")]
    Runtime(String),
}

impl CliError {
    /// The exit code this failure ends the program with.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Args(_) | CliError::Usage(_) | CliError::Config(_) => EXIT_USAGE,
            CliError::Problems(_) => EXIT_USAGE,
            CliError::App(AppError::Config(_)) => EXIT_USAGE,
            CliError::App(AppError::Database(_) | AppError::Runtime(_)) => EXIT_ERROR,
            CliError::Bakong(e) => match e {
                // errorCode 5 (missing or invalid field) and 12 (malformed
                // account id): the argument was bad, as the server judged it.
                bakong::Error::InvalidArgument { .. }
                | bakong::Error::NoToken
                | bakong::Error::Api { code: 5 | 12, .. } => EXIT_USAGE,
                bakong::Error::NotFound { .. } => EXIT_NOT_FOUND,
                _ => EXIT_ERROR,
            },
            CliError::Store(_) | CliError::Runtime(_) => EXIT_ERROR,
        }
    }
}

/// How a command that ran to its end came out; decides its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Done, or found.
    Done,
    /// Bakong does not know it (yet); the message says what.
    NotFound(String),
    /// Bakong answered that the transaction failed, or a KHQR is
    /// malformed; the message says which.
    Failed(String),
    /// A well-formed KHQR whose expiration has passed.
    Expired(String),
}

impl Verdict {
    /// The exit code of this outcome.
    pub fn exit_code(&self) -> i32 {
        match self {
            Verdict::Done => EXIT_OK,
            Verdict::NotFound(_) => EXIT_NOT_FOUND,
            Verdict::Failed(_) => EXIT_ERROR,
            Verdict::Expired(_) => EXIT_EXPIRED,
        }
    }

    /// The message of an outcome that is not a success.
    pub fn message(&self) -> Option<&str> {
        match self {
            Verdict::Done => None,
            Verdict::NotFound(m) | Verdict::Failed(m) | Verdict::Expired(m) => Some(m),
        }
    }
}

/// clap's error as one line built from its parts (kind, argument, value,
/// the value parser's own error, valid values, suggestion), without the
/// usage block that its rendered text carries.
fn usage_line(e: &clap::Error) -> String {
    let ctx = |k: ContextKind| e.get(k).map(ToString::to_string);
    let arg = ctx(ContextKind::InvalidArg).unwrap_or_default();
    let value = ctx(ContextKind::InvalidValue).unwrap_or_default();
    let mut line = match e.kind() {
        ErrorKind::ValueValidation => {
            let why = std::error::Error::source(e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            format!("invalid value '{value}' for '{arg}'{why}")
        }
        ErrorKind::InvalidValue if value.is_empty() => {
            format!("a value is required for '{arg}' but none was supplied")
        }
        ErrorKind::InvalidValue => format!("invalid value '{value}' for '{arg}'"),
        ErrorKind::UnknownArgument => format!("unexpected argument '{arg}' found"),
        ErrorKind::InvalidSubcommand => format!(
            "unrecognized subcommand '{}'",
            ctx(ContextKind::InvalidSubcommand).unwrap_or_default()
        ),
        ErrorKind::MissingRequiredArgument => {
            format!("the following required arguments were not provided: {arg}")
        }
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let valid = ctx(ContextKind::ValidSubcommand)
                .map(|v| format!(" (one of: {v})"))
                .unwrap_or_default();
            format!("a subcommand is required{valid}")
        }
        ErrorKind::ArgumentConflict => format!(
            "the argument '{arg}' cannot be used with '{}'",
            ctx(ContextKind::PriorArg).unwrap_or_default()
        ),
        ErrorKind::TooManyValues => format!("unexpected value '{value}' for '{arg}' found"),
        ErrorKind::TooFewValues | ErrorKind::WrongNumberOfValues => {
            format!("wrong number of values for '{arg}'")
        }
        ErrorKind::NoEquals => format!("equal sign is needed when assigning values to '{arg}'"),
        kind => {
            let what = kind.as_str().unwrap_or("invalid command line");
            match (arg.is_empty(), value.is_empty()) {
                (true, true) => what.to_string(),
                (false, true) => format!("{what}: '{arg}'"),
                _ => format!("{what}: '{value}' for '{arg}'"),
            }
        }
    };
    if let Some(valid) = ctx(ContextKind::ValidValue) {
        line += &format!(" [possible values: {valid}]");
    }
    let suggestion = ctx(ContextKind::SuggestedSubcommand)
        .or_else(|| ctx(ContextKind::SuggestedArg))
        .or_else(|| ctx(ContextKind::SuggestedValue));
    if let Some(s) = suggestion {
        line += &format!("; did you mean '{s}'?");
    }
    line
}

#[cfg(test)]
mod tests {
    use clap::{Arg, Command};

    use super::*;

    fn cmd() -> Command {
        Command::new("t")
            .arg(
                Arg::new("md5")
                    .long("md5")
                    .value_parser(|s: &str| s.parse::<u8>()),
            )
            .arg(
                Arg::new("shell")
                    .long("shell")
                    .value_parser(["bash", "zsh"]),
            )
    }

    #[test]
    fn a_value_parser_error_names_the_argument_and_keeps_the_parser_message() {
        let e = cmd()
            .try_get_matches_from(["t", "--md5", "xyz"])
            .expect_err("refused");
        let line = CliError::Args(e).to_string();
        assert!(line.contains("'--md5 <md5>'"), "{line}");
        assert!(line.contains("invalid digit"), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }

    #[test]
    fn an_unknown_value_lists_the_possible_ones_on_the_same_line() {
        let e = cmd()
            .try_get_matches_from(["t", "--shell", "tcsh"])
            .expect_err("refused");
        let err = CliError::Args(e);
        assert_eq!(err.exit_code(), EXIT_USAGE);
        let line = err.to_string();
        assert!(
            line.contains("'tcsh'") && line.contains("bash, zsh"),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
    }

    #[test]
    fn verdicts_map_to_the_documented_exit_codes() {
        assert_eq!(Verdict::Done.exit_code(), EXIT_OK);
        assert_eq!(Verdict::NotFound("x".into()).exit_code(), EXIT_NOT_FOUND);
        assert_eq!(Verdict::Failed("x".into()).exit_code(), EXIT_ERROR);
        let nf = CliError::Bakong(bakong::Error::NotFound {
            message: "x".into(),
        });
        assert_eq!(nf.exit_code(), EXIT_NOT_FOUND);
    }
}
