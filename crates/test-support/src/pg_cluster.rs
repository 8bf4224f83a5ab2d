//! A throwaway PostgreSQL cluster for the tests and the benchmarks: `initdb`
//! into a temporary directory, a server listening only on a unix socket in
//! that directory, `fsync=off`, and a fresh database per caller.
//!
//! The server binaries come from PATH or the Debian package's
//! `/usr/lib/postgresql/*/bin`. `initdb` and `postgres` refuse to run as
//! root, and tests and CI run as root: then every server command runs as
//! the package's `postgres` user (through `setpriv`), in a directory that
//! user owns.
//!
//! Cleanup does not depend on destructors (a test binary never drops its
//! statics, and may be killed): a small watchdog shell reads its stdin,
//! which only this process holds open; when this process ends, however it
//! ends, the read sees end-of-file and the watchdog stops the server and
//! removes the directory.

use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use sqlx::Connection;

/// Why a cluster could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No `initdb`/`pg_ctl` anywhere we look.
    #[error(
        "PostgreSQL server binaries not found (initdb and pg_ctl, in PATH or \
         /usr/lib/postgresql/*/bin): install the postgresql package"
    )]
    NotFound,
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A server command exited with an error.
    #[error("{what} failed ({status}): {output}")]
    Command {
        /// The command.
        what: String,
        /// Its exit status.
        status: String,
        /// Its stderr and stdout, or the server log.
        output: String,
    },
    /// Creating a database failed.
    #[error("create a test database: {0}")]
    Sql(#[from] sqlx::Error),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// The directory holding `initdb` and `pg_ctl`: PATH first, then the
/// newest `/usr/lib/postgresql/<version>/bin`. Symlinks are followed, so
/// `pg_ctl` finds its `postgres` beside it.
pub fn find_bin_dir() -> Option<PathBuf> {
    let has_both = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if has_both(&d) {
                if let Some(real) = std::fs::canonicalize(d.join("pg_ctl"))
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                {
                    if has_both(&real) {
                        return Some(real);
                    }
                }
                return Some(d);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has_both(d))
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d)
}

/// A running throwaway cluster. Dropping it stops the server and removes
/// its directory; so does the end of the process.
#[derive(Debug)]
pub struct TempCluster {
    root: PathBuf,
    bin: PathBuf,
    run_as_postgres: bool,
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
    next_db: AtomicU64,
}

impl TempCluster {
    /// Creates and starts a cluster (blocking: `initdb` takes a second or
    /// two). [`ClusterError::NotFound`] when no server binaries exist.
    pub fn start() -> Result<Self, ClusterError> {
        let bin = find_bin_dir().ok_or(ClusterError::NotFound)?;
        let run_as_postgres = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let root = tempfile::Builder::new()
            .prefix("bakong-pg-")
            .tempdir()
            .map_err(io("create the cluster directory"))?
            .keep();
        let mut cluster = TempCluster {
            root,
            bin,
            run_as_postgres,
            watchdog: Mutex::new(None),
            next_db: AtomicU64::new(0),
        };
        if run_as_postgres {
            let (uid, gid) = (id_of("-u")?, id_of("-g")?);
            std::os::unix::fs::chown(&cluster.root, Some(uid), Some(gid))
                .map_err(io(format!("chown {} to postgres", cluster.root.display())))?;
        }
        cluster.spawn_watchdog()?;
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth=trust".as_ref(),
                "--no-locale".as_ref(),
                "--encoding=UTF8".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        let socket_dir = cluster.root.display().to_string().replace('\'', "''");
        // Only a socket in our own directory: no port to collide on.
        let conf = format!(
            "\nlisten_addresses = ''\nunix_socket_directories = '{socket_dir}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
             max_connections = 300\nshared_buffers = 32MB\n"
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(conf.as_bytes()))
            .map_err(io("write postgresql.conf"))?;
        cluster.start_again()?;
        Ok(cluster)
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The directory holding the server's socket.
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// A URL for `database` on this cluster, as the `postgres` superuser.
    pub fn url(&self, database: &str) -> String {
        let mut u = url::Url::parse("postgres://postgres@localhost/")
            .unwrap_or_else(|_| unreachable!("a constant URL parses"));
        u.set_path(database);
        u.query_pairs_mut()
            .append_pair("host", &self.root.display().to_string());
        u.to_string()
    }

    /// Creates a fresh, empty database and returns its URL.
    pub async fn create_database(&self) -> Result<String, ClusterError> {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            self.next_db.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres")).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok(self.url(&name))
    }

    /// Stops the server (fast shutdown: clients are disconnected), keeping
    /// its data, e.g. to test reconnection.
    pub fn stop(&self) -> Result<(), ClusterError> {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "stop".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-w".as_ref(),
            ],
        )
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn start_again(&self) -> Result<(), ClusterError> {
        let data = self.data_dir();
        let log = self.root.join("server.log");
        let r = self.run(
            "pg_ctl",
            &[
                "start".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
            ],
        );
        r.map_err(|e| match e {
            ClusterError::Command { what, status, .. } => ClusterError::Command {
                what,
                status,
                output: std::fs::read_to_string(&log).unwrap_or_default(),
            },
            other => other,
        })
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        let mut c = if self.run_as_postgres {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--clear-groups",
                "--",
            ])
            .arg(exe);
            c
        } else {
            Command::new(exe)
        };
        // The server user may not enter the caller's working directory.
        c.current_dir(&self.root);
        c
    }

    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<(), ClusterError> {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(io(format!("run {program}")))?;
        if out.status.success() {
            return Ok(());
        }
        Err(ClusterError::Command {
            what: program.into(),
            status: out.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ),
        })
    }

    /// Starts the shell that stops the server and removes the directory
    /// when its stdin reaches end-of-file, i.e. when this process ends.
    fn spawn_watchdog(&mut self) -> Result<(), ClusterError> {
        let mut c = if self.run_as_postgres {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--clear-groups",
                "--",
                "sh",
            ]);
            c
        } else {
            Command::new("sh")
        };
        let script = "trap '' INT HUP TERM; read -r _; \
                      \"$0\" stop -D \"$1\" -m immediate -w >/dev/null 2>&1; rm -rf \"$2\"";
        let mut child = c
            .arg("-c")
            .arg(script)
            .arg(self.bin.join("pg_ctl"))
            .arg(self.data_dir())
            .arg(&self.root)
            .current_dir(&self.root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("start the cluster watchdog"))?;
        let stdin = child.stdin.take().ok_or_else(|| ClusterError::Io {
            what: "start the cluster watchdog".into(),
            source: std::io::Error::other("no stdin pipe"),
        })?;
        if let Ok(mut w) = self.watchdog.lock() {
            *w = Some((child, stdin));
        }
        Ok(())
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        let taken = self.watchdog.lock().ok().and_then(|mut w| w.take());
        if let Some((mut child, stdin)) = taken {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// `id -u postgres` or `id -g postgres`.
fn id_of(flag: &str) -> Result<u32, ClusterError> {
    let out = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .map_err(io("run id"))?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| ClusterError::Command {
            what: format!("id {flag} postgres"),
            status: out.status.to_string(),
            output: "no user postgres: install the postgresql package".into(),
        })
}
