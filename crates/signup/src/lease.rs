//! The run lease of a flow's connectors: of every request and instance that finds a
//! flow running its connectors, exactly one runs them — the one holding the lease in
//! the database. The holder renews it while the run is alive, so a run whose instance
//! stopped (a crash, a deploy) is taken over within [`TERM`], and never beyond the
//! slot's worst case (the sum of its connectors' budgets), so a run that cannot be
//! alive any more never blocks the flow.

use std::time::Duration;

use std::sync::Arc;

use usher_domain::Clock;
use usher_storage::{StorageError, Store};

use crate::Engine;

/// How long a lease lasts between renewals, and so how soon a run whose instance
/// stopped is taken over.
const TERM: Duration = Duration::from_secs(10);
/// Beyond the sum of the budgets: the run's own work around the calls (saving the
/// flow, creating the user).
const MARGIN: Duration = Duration::from_secs(15);

/// A held lease; renewed in the background until released or dropped.
pub(crate) struct RunLease {
    flow_id: String,
    holder: String,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl RunLease {
    /// Takes the flow's lease for a run whose connectors can take `worst_case`;
    /// `None` while another run holds it.
    pub(crate) async fn take(
        engine: &Engine,
        flow_id: &str,
        worst_case: Duration,
    ) -> Result<Option<Self>, StorageError> {
        let now = engine.clock.now();
        let cap = now + chrono_duration(worst_case + MARGIN);
        let until = (now + chrono_duration(TERM)).min(cap);
        let holder = engine.random.new_id();
        if !engine
            .store
            .take_flow_lease(flow_id, &holder, now, until)
            .await?
        {
            return Ok(None);
        }
        let heartbeat = tokio::spawn(renew(
            engine.store.clone(),
            engine.clock.clone(),
            flow_id.to_owned(),
            holder.clone(),
            cap,
        ));
        Ok(Some(Self {
            flow_id: flow_id.to_owned(),
            holder,
            heartbeat,
        }))
    }

    /// Gives the lease up once the run's outcome is saved. A failure only means the
    /// next run waits for the lease to run out.
    pub(crate) async fn release(self, engine: &Engine) {
        self.heartbeat.abort();
        if let Err(e) = engine
            .store
            .release_flow_lease(&self.flow_id, &self.holder)
            .await
        {
            tracing::warn!(flow = %self.flow_id, error = %e, "could not release a flow's run lease");
        }
    }
}

impl Drop for RunLease {
    /// A run cancelled halfway (its request dropped) stops renewing: the lease runs
    /// out and the next request for the flow resumes the run.
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

async fn renew(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    flow_id: String,
    holder: String,
    cap: chrono::DateTime<chrono::Utc>,
) {
    loop {
        tokio::time::sleep(TERM / 3).await;
        let now = clock.now();
        if now >= cap {
            // Past every budget the run cannot be alive as it should: let it go.
            return;
        }
        let until = (now + chrono_duration(TERM)).min(cap);
        match store.renew_flow_lease(&flow_id, &holder, until).await {
            Ok(true) => {}
            // Taken over: this run's outcome will be refused as stale when it saves.
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(flow = %flow_id, error = %e, "could not renew a flow's run lease");
            }
        }
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
