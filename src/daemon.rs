//! The composition root: the daemon is built here, and only here, from its
//! settings ([`Daemon::build`]: the database, its migrations and the
//! instance lock, the API client with its token, gate and quota, the
//! receivers, the metrics listener), then run until shutdown
//! ([`Daemon::run`]: the scheduling loop, the recorder, the event sender,
//! the token renewer, the status reporter and `/metrics`). `run`, the
//! demo and the tests all start it through [`run`].

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::app::AppError;
use crate::bakong::Client;
use crate::config::Settings;
use crate::counters::{Confirmations, Counters};
use crate::notify::Receivers;
use crate::poller::classify::Verdict;
use crate::poller::gate_state::GateSync;
use crate::poller::{recorder, report, schedule_loop, Observer, CHECK_DRAIN};
use crate::store::{InstanceGuard, Store};

/// A daemon built and ready to run: every part made, nothing started.
pub struct Daemon {
    settings: Arc<Settings>,
    store: Store,
    client: Client,
    receivers: Receivers,
    gate_sync: GateSync,
    listener: Option<tokio::net::TcpListener>,
    api_listener: Option<tokio::net::TcpListener>,
    instruments: Option<crate::metrics::Instruments>,
    counters: Arc<Counters>,
    observer: Arc<dyn Observer>,
    // Held while the daemon lives: one daemon per SQLite database.
    _instance: InstanceGuard,
}

impl Daemon {
    /// Builds the daemon from `settings`: opens and migrates the database
    /// (after taking the instance lock, so a second daemon never migrates
    /// the schema under the running one), makes the client, registers the
    /// receivers, makes the event key, binds the metrics listener. An error
    /// names what failed; nothing has started.
    pub async fn build(settings: Settings, observer: Arc<dyn Observer>) -> Result<Self, AppError> {
        let store = Store::connect(&settings.database.url, settings.database.busy_timeout)
            .await
            .map_err(AppError::Database)?;
        let instance = store
            .lock_instance()
            .map_err(|e| AppError::Runtime(e.to_string()))?;
        store.migrate().await.map_err(AppError::Database)?;
        let client = crate::app::build_daemon_client(&settings, &store).await?;
        // Events are recorded whatever is configured; deliveries are made
        // for the receivers configured now.
        let receivers =
            Receivers::from_settings(&settings).map_err(|e| AppError::Config(e.to_string()))?;
        store
            .set_receivers(&receivers.names())
            .await
            .map_err(AppError::Database)?;
        // The event key, made (and the older events signed) before the
        // sender or the recorder can need it.
        store.event_key().await.map_err(AppError::Database)?;
        client
            .quota()
            .set_probe_interval(settings.poller.quota_probe);
        client
            .quota()
            .set_budget(settings.poller.daily_request_budget);
        let gate_sync =
            GateSync::load(&store, &client, crate::notify::receiver_configs(&settings)).await;
        // Bound before READY, so a port in use stops the start with its key.
        let listener = match settings.metrics.listen_addr() {
            Some(addr) => Some(
                crate::metrics::server::bind(addr)
                    .await
                    .map_err(|e| AppError::Runtime(e.to_string()))?,
            ),
            None => None,
        };
        let api_listener = match settings.api.listen_addr() {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                AppError::Runtime(format!(
                    "config key api.listen: cannot listen on {addr}: {e}"
                ))
            })?),
            None => None,
        };
        let instruments = listener
            .as_ref()
            .map(|_| crate::metrics::Instruments::new());
        if let Some(i) = &instruments {
            client.install_instruments(i.api.clone());
        }
        let counters = Arc::new(Counters {
            confirmations: instruments
                .as_ref()
                .map(|i| Arc::new(i.payments.clone()) as Arc<dyn Confirmations>),
            ..Counters::default()
        });
        Ok(Daemon {
            settings: Arc::new(settings),
            store,
            client,
            receivers,
            gate_sync,
            listener,
            api_listener,
            instruments,
            counters,
            observer,
            _instance: instance,
        })
    }

    /// Starts every task and runs the scheduling loop until `shutdown` is
    /// cancelled; then lets the writes in hand finish (within
    /// `poller.shutdown_timeout`) and closes the database.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AppError> {
        let Daemon {
            settings,
            store,
            client,
            receivers,
            gate_sync,
            listener,
            api_listener,
            instruments,
            counters,
            observer,
            _instance,
        } = self;
        let tracker = TaskTracker::new();
        if let Some(api) = api_listener {
            if let Ok(addr) = api.local_addr() {
                observer.api_listening(addr);
            }
            let state = crate::api::ApiState {
                store: store.clone(),
                settings: settings.clone(),
                http: instruments.as_ref().map(|i| i.http.clone()),
                client: Some(client.clone()),
                deeplinks: Arc::new(tokio::sync::Semaphore::new(2)),
            };
            tracker.spawn(crate::api::serve(api, state, shutdown.clone()));
        }
        if let (Some(listener), Some(instruments)) = (listener, instruments) {
            if let Ok(addr) = listener.local_addr() {
                observer.listening(addr);
            }
            let sources = crate::metrics::server::Sources {
                store: store.clone(),
                client: client.clone(),
                poller: counters.clone(),
                settings: settings.clone(),
                loop_limit: observer
                    .watchdog()
                    .map_or(crate::metrics::server::DEFAULT_LOOP_LIMIT, |w| w / 2),
            };
            tracker.spawn(crate::metrics::server::serve(
                listener,
                instruments,
                sources,
                shutdown.clone(),
            ));
        }
        observer.ready();
        let (tx, rx) = mpsc::channel::<Verdict>(1024);
        let wake = Arc::new(tokio::sync::Notify::new());
        let recorder_handle = tracker.spawn(recorder(
            store.clone(),
            rx,
            counters.clone(),
            wake.clone(),
            settings.poller.clone(),
        ));
        // Delivery runs beside the checks, with its own task and requests:
        // a slow receiver costs only its own retries.
        tracker.spawn(crate::notify::run(
            store.clone(),
            settings.clone(),
            receivers,
            wake,
            counters.clone(),
            shutdown.clone(),
        ));
        tracker.spawn(
            client
                .tokens()
                .clone()
                .renew_ahead(client.clone(), shutdown.clone()),
        );
        tracker.spawn(report::run(
            store.clone(),
            client.clone(),
            counters.clone(),
            settings.clone(),
            observer.clone(),
            shutdown.clone(),
        ));
        tracker.close();

        for w in settings.warnings() {
            warn!(key = w.key, "{}", w.message);
        }
        info!(
            database = %crate::redact::redact_url(&settings.database.url),
            base_url = %crate::redact::redact_url(&settings.api_base_url()),
            max_rps = settings.poller.max_requests_per_second,
            concurrency = settings.poller.concurrency,
            "bakong-poller running"
        );

        schedule_loop(
            &store,
            &client,
            &settings,
            tx,
            &shutdown,
            &counters,
            observer.as_ref(),
            gate_sync,
        )
        .await;
        observer.stopping();
        info!("stopping: finishing writes in hand");
        // The recorder ends when every sender is gone; the renewer on the
        // token.
        shutdown.cancel();
        let waited = tokio::time::timeout(
            settings.poller.shutdown_timeout.saturating_sub(CHECK_DRAIN),
            tracker.wait(),
        )
        .await;
        if waited.is_err() {
            error!("shutdown: writes did not finish within poller.shutdown_timeout; rows stay leased and are checked again after the lease");
        }
        // A recorder still waiting on a lock held by another process is
        // stopped: its rows stay leased and are checked again after the
        // lease.
        recorder_handle.abort();
        if tokio::time::timeout(CHECK_DRAIN, store.close())
            .await
            .is_err()
        {
            error!("shutdown: the database did not close in time");
        }
        info!("stopped");
        Ok(())
    }
}

/// Builds the daemon and runs it until `shutdown` is cancelled.
pub async fn run(
    settings: Settings,
    shutdown: CancellationToken,
    observer: Arc<dyn Observer>,
) -> Result<(), AppError> {
    Daemon::build(settings, observer).await?.run(shutdown).await
}
