//! The server: one [`App`] built from settings, run until a shutdown signal. Tests build the
//! same `App` on port 0 with their own clock and shutdown trigger.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::{TcpListener, TcpSocket};

use crate::checkout::guard::{CheckoutLimits, FormKey};
use crate::checkout::Checkout;
use crate::clock::Clock;
use crate::compliance::Packs;
use crate::http::{router, AppState, Limits, PageSettings, Services};
use crate::ids::Slug;
use crate::intake::worker::{self, IntakeWorker, WorkerOptions};
use crate::intake::Inbox;
use crate::journal::{Journal, JournalOptions};
use crate::provider::demo::DemoProvider;
use crate::provider::stripe::client::StripeClient;
use crate::provider::stripe::StripeSettings;
use crate::store::{Store, StoreOptions};
use crate::{demo, sealer};

#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub database_url: String,
    pub listen: SocketAddr,
    pub store: StoreOptions,
    pub limits: Limits,
    pub stripe: StripeSettings,
    /// The campaign of the Stripe account (`STRIPE_CAMPAIGN`): payouts post to it, and so do
    /// payments that name no campaign (flagged for review).
    pub stripe_campaign: Option<Slug>,
    pub intake: WorkerOptions,
    /// Seed the demo campaign (`obole serve --demo`).
    pub demo: bool,
    /// Rule packs to load instead of the ones shipped in the binary.
    pub compliance_dir: Option<PathBuf>,
    /// Where donors and the provider reach this server (`OBOLE_PUBLIC_URL`); default
    /// `http://` + the listening address.
    pub public_url: Option<String>,
    /// How many checkouts a client address and a donor may start.
    pub checkout_limits: CheckoutLimits,
    /// The key of form tokens and signed links (`OBOLE_FORM_SECRET`); random per process
    /// when unset.
    pub form_secret: Option<String>,
}

pub struct App {
    listener: TcpListener,
    state: AppState,
    limits: Limits,
    /// Posts inbox events; present when a Stripe secret key is configured.
    intake: Option<Arc<IntakeWorker>>,
    /// The offline payment provider of `serve --demo`.
    demo: Option<Arc<DemoProvider>>,
}

impl App {
    /// Connects, migrates, seeds the demo if asked, and binds the listener.
    pub async fn build(settings: &ServeSettings, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
        // A pack that does not validate stops the server before it touches anything.
        let packs = Arc::new(match &settings.compliance_dir {
            Some(dir) => Packs::load_dir(dir)?,
            None => Packs::embedded()?,
        });
        let store = Store::connect(&settings.database_url, &settings.store).await?;
        store.migrate().await.context("migrating the database")?;
        for campaign in store.campaigns().await? {
            if packs.get(&campaign.rule_pack).is_none() {
                anyhow::bail!(
                    "campaign {} follows rule pack {:?}, which is not loaded (loaded: {})",
                    campaign.slug,
                    campaign.rule_pack,
                    packs.ids().collect::<Vec<_>>().join(", ")
                );
            }
        }
        if settings.demo {
            let campaign = demo::seed(&store, clock.as_ref())
                .await
                .context("seeding the demo campaign")?;
            tracing::info!(campaign = %campaign.slug, "demo campaign ready");
        }
        let listener =
            listen(settings.listen).with_context(|| format!("listening on {}", settings.listen))?;
        let local = listener.local_addr()?;
        // The demo provider calls back on loopback, whatever address is listened on.
        let loopback = SocketAddr::from(([127, 0, 0, 1], local.port()));
        let public_url = match &settings.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None if local.ip().is_unspecified() => format!("http://{loopback}"),
            None => format!("http://{local}"),
        };
        let demo = if settings.demo {
            let webhooks = format!("http://{loopback}/webhooks/stripe");
            Some(DemoProvider::start(webhooks, clock.clone()).await?)
        } else {
            None
        };
        let stripe = match &demo {
            Some(demo) => demo.stripe_settings(settings.stripe.tolerance_secs)?,
            None => settings.stripe.clone(),
        };
        let api = match stripe.secret_key() {
            None => {
                tracing::warn!("no STRIPE_SECRET_KEY: webhook events are stored but not posted, and the checkout cannot open payments");
                None
            }
            Some(_) => Some(StripeClient::new(&stripe).context("configuring Stripe")?),
        };
        let intake = api.clone().map(|api| {
            let journal = Journal::start(
                store.clone(),
                clock.clone(),
                JournalOptions::for_store(&store),
            );
            IntakeWorker::new(
                journal,
                api,
                packs.clone(),
                clock.clone(),
                settings.stripe_campaign.clone(),
                settings.intake,
            )
        });
        let checkout = Checkout::new(
            store.clone(),
            clock.clone(),
            packs.clone(),
            api,
            &public_url,
            FormKey::new(settings.form_secret.as_deref())?,
            settings.checkout_limits,
        );
        let pages = PageSettings {
            secure: public_url.starts_with("https://"),
            checkout_origin: demo
                .as_ref()
                .map_or(STRIPE_CHECKOUT_ORIGIN.to_owned(), |d| {
                    d.base_url().to_owned()
                }),
        };
        Ok(App {
            listener,
            state: AppState::new(Services {
                packs,
                inbox: Inbox::start(store.clone()),
                store,
                clock,
                stripe: Arc::new(stripe),
                intake_wake: intake.as_ref().map(|w| w.waker()),
                checkout: Arc::new(checkout),
                pages,
            }),
            limits: settings.limits,
            intake,
            demo,
        })
    }

    /// The demo provider, when serving `--demo`.
    pub fn demo(&self) -> Option<&Arc<DemoProvider>> {
        self.demo.as_ref()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Serves until `shutdown` completes, lets requests in flight finish, then stops the
    /// intake worker (after its round in progress) and the sealer (which seals what is
    /// queued), and closes the database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let store = self.state.store.clone();
        let sealer = sealer::spawn(store.clone(), self.state.clock.clone());
        let intake = self.intake.map(worker::spawn);
        tracing::info!(addr = %self.listener.local_addr()?, store = store.kind(), "serving");
        let app = router(self.state, self.limits);
        // Client addresses feed the checkout's rate limits.
        let served = axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        if let Some(demo) = &self.demo {
            demo.stop();
        }
        if let Some(intake) = intake {
            intake.stop().await;
        }
        sealer.stop().await;
        store.close().await;
        tracing::info!("stopped");
        Ok(served?)
    }
}

/// A listener whose accept queue holds a burst of new connections (a campaign's email going
/// out brings hundreds at once): the standard library's default of 128 drops the rest, and
/// each dropped donor waits a second for their SYN to be sent again.
fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(4096)
}

/// Where Stripe serves hosted Checkout pages (the checkout form leads there).
pub const STRIPE_CHECKOUT_ORIGIN: &str = "https://checkout.stripe.com";

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested");
}
