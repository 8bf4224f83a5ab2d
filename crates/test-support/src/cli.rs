//! The one runner of the product's binary in tests: [`Cli`], a builder over
//! the command with an environment that cannot leak in from the shell
//! running the tests, and [`Out`], its exit code and output as text.
//!
//! ```ignore
//! let out = test_support::bakong_poller!()
//!     .config(&cfg)
//!     .args(["status", "--json"])
//!     .run()
//!     .await;
//! assert_eq!(out.code, 0, "{}", out.stderr);
//! ```

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

/// The product's binary (`bakong-poller`) as a [`Cli`]. A macro, so that
/// `env!("CARGO_BIN_EXE_bakong-poller")` is read where it is defined: in
/// the product package's own integration tests.
#[macro_export]
macro_rules! bakong_poller {
    () => {
        $crate::cli::Cli::new(env!("CARGO_BIN_EXE_bakong-poller"))
    };
}

/// A command line of the binary under test, built up, then run (to its
/// end, blocking or async) or spawned.
#[derive(Debug)]
pub struct Cli {
    cmd: Command,
}

impl Cli {
    /// `program` without the variables a developer's shell or a systemd
    /// unit could have set: every `BAKONG_POLLER*` variable and
    /// `CREDENTIALS_DIRECTORY` (a test that wants one sets it again).
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        let mut cmd = Command::new(program);
        cmd.env_remove("CREDENTIALS_DIRECTORY");
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("BAKONG_POLLER") {
                cmd.env_remove(k);
            }
        }
        Cli { cmd }
    }

    /// `--config PATH`.
    pub fn config(mut self, path: impl AsRef<Path>) -> Self {
        self.cmd.arg("--config").arg(path.as_ref());
        self
    }

    /// One more argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.cmd.arg(arg);
        self
    }

    /// More arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// An environment variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    /// Environment variables.
    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.cmd.envs(vars);
        self
    }

    /// Without an environment variable.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.cmd.env_remove(key);
        self
    }

    /// The working directory.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// Standard input (for a spawned process; [`Cli::output`] and
    /// [`Cli::run`] give it none unless set).
    pub fn stdin(mut self, cfg: impl Into<Stdio>) -> Self {
        self.cmd.stdin(cfg);
        self
    }

    /// Standard output (for a spawned process).
    pub fn stdout(mut self, cfg: impl Into<Stdio>) -> Self {
        self.cmd.stdout(cfg);
        self
    }

    /// Standard error (for a spawned process).
    pub fn stderr(mut self, cfg: impl Into<Stdio>) -> Self {
        self.cmd.stderr(cfg);
        self
    }

    /// Runs it to its end, blocking the thread.
    ///
    /// # Panics
    ///
    /// When the program cannot be started.
    pub fn output(mut self) -> Out {
        let out = self
            .cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", self.cmd.get_program()));
        Out::from(out)
    }

    /// Runs it to its end without blocking the async runtime.
    ///
    /// # Panics
    ///
    /// When the program cannot be started.
    pub async fn run(self) -> Out {
        let mut cmd = tokio::process::Command::from(self.cmd);
        let out = cmd
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.as_std().get_program()));
        Out::from(out)
    }

    /// Starts it (std), e.g. a daemon a test stops with a signal.
    ///
    /// # Panics
    ///
    /// When the program cannot be started.
    pub fn spawn(mut self) -> Child {
        Child(Some(self.cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start {:?}: {e}", self.cmd.get_program())
        })))
    }

    /// Starts it (tokio): killed when the handle is dropped, so a failing
    /// test leaves no daemon behind.
    ///
    /// # Panics
    ///
    /// When the program cannot be started.
    pub fn spawn_async(self) -> tokio::process::Child {
        let mut cmd = tokio::process::Command::from(self.cmd);
        cmd.kill_on_drop(true);
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.as_std().get_program()))
    }

    /// The command itself, for what this builder does not cover.
    pub fn into_command(self) -> Command {
        self.cmd
    }
}

/// How a run ended: its exit code (-1 when a signal ended it) and its
/// output as text.
#[derive(Debug, Clone)]
pub struct Out {
    /// The exit code; -1 when a signal ended the process.
    pub code: i32,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

impl Out {
    /// Whether it exited with 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// Standard output as JSON.
    ///
    /// # Panics
    ///
    /// When it is not JSON (the message shows both outputs).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} / {}", self.stdout, self.stderr))
    }

    /// Standard output, then standard error: for assertion messages.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl From<std::process::Output> for Out {
    fn from(o: std::process::Output) -> Self {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A started program (a `std::process::Child` through `Deref`) that is
/// killed and reaped when dropped while still running, so a test that
/// fails (or forgets) leaves no daemon behind holding ports, locks or
/// inherited file descriptors.
#[derive(Debug)]
pub struct Child(Option<std::process::Child>);

impl Child {
    /// The inner child, no longer killed on drop.
    pub fn into_inner(mut self) -> std::process::Child {
        self.0
            .take()
            .unwrap_or_else(|| unreachable!("taken only here"))
    }
}

impl std::ops::Deref for Child {
    type Target = std::process::Child;

    fn deref(&self) -> &Self::Target {
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("taken only by into_inner"))
    }
}

impl std::ops::DerefMut for Child {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0
            .as_mut()
            .unwrap_or_else(|| unreachable!("taken only by into_inner"))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_child_is_killed_and_reaped_when_dropped() {
        let child = Child(Some(
            Command::new("sleep")
                .arg("30")
                .spawn()
                .expect("sleep starts"),
        ));
        let proc_dir = std::path::PathBuf::from(format!("/proc/{}", child.id()));
        assert!(proc_dir.exists(), "running before the drop");
        drop(child);
        // Reaped by the drop: its /proc entry is gone at once.
        assert!(!proc_dir.exists(), "{} still there", proc_dir.display());
    }
}
