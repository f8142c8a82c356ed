//! HTLC interception, for LSPs and gateways: HTLCs whose next hop is one of our intercept SCIDs
//! (`ChannelManager::get_intercept_scid`) are held by LDK until the operator forwards or fails
//! them.
//!
//! Each one is recorded durably (`record`), and kept in step with what LDK holds (`tracking`):
//!
//! - LDK keeps pending intercepted HTLCs in its `ChannelManager` across restarts, and fails one
//!   back by itself once the chain reaches `HTLC_FAIL_BACK_BUFFER` (39) blocks before the CLTV
//!   expiry of the HTLC it would send on; it drops one silently at start-up if the HTLC was
//!   already forwarded to a channel that has since closed. A record whose HTLC LDK no longer
//!   holds is therefore marked failed, and a resolved record whose HTLC LDK still holds (xlnd
//!   stopped before LDK's state with the resolution was written) is pending again.
//! - An HTLC nobody answers within the node's time limit (`intercept_timeout_secs`) is failed
//!   back, as LND's interceptor does.
//!
//! Why no block margin of our own: LDK forwards to an intercept SCID only if the incoming HTLC's
//! expiry is at least `MIN_CLTV_EXPIRY_DELTA` (48) blocks above the outgoing one, and fails the
//! HTLC back 39 blocks before the outgoing expiry, so at least 87 blocks before the incoming HTLC
//! expires. The previous hop goes on chain only once its HTLC has expired.

mod record;
mod tracking;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

pub use record::{InterceptStatus, InterceptedHtlcRecord, NotPending};
pub(crate) use tracking::{end_pending, intercept_loop, Intercepted};

/// How long an intercepted HTLC may wait for `resolvehtlc` by default before it is failed back:
/// more than the 90 s an LSP must hold a JIT channel's HTLCs under LSPS2 (BOLT 4's 60 s of MPP
/// waiting plus 30 s for the LSP and its client), little enough that a forgotten HTLC does not
/// lock the payer's funds for long.
pub const DEFAULT_INTERCEPT_TIMEOUT: Duration = Duration::from_secs(120);

/// How many arrivals a slow subscriber may fall behind before it misses some
/// ([`broadcast::error::RecvError::Lagged`]; it should then read `list_intercepted_htlcs`).
const ARRIVALS_BUFFER: usize = 256;

/// The intercepted HTLCs still pending.
#[derive(Default)]
pub(crate) struct Pending {
    /// Their records by intercept id (a copy of their stored form).
    pub(crate) records: HashMap<String, InterceptedHtlcRecord>,
    /// When each one LDK does not hold was first found missing. Right after a restart LDK may
    /// not have taken an HTLC in again yet (it decodes it anew, or once the peer is back), so a
    /// record is failed only once it has been missing for a while.
    pub(crate) missing_since: HashMap<String, Instant>,
}

/// The node's interception state: the pending records and the time limit.
pub(crate) struct Intercepts {
    /// Held while an HTLC is resolved or reconciled, so that LDK's state and the records change
    /// together.
    pending: Mutex<Pending>,
    /// The time limit; none: only LDK's own fail-back near the CLTV expiry.
    pub(crate) timeout: Option<Duration>,
    /// Every newly intercepted HTLC, for subscribers (see `NodeInner::on_htlc_intercepted`).
    pub(crate) arrivals: broadcast::Sender<InterceptedHtlcRecord>,
}

impl Intercepts {
    /// No pending records yet (they are loaded at start), with the time limit `timeout`.
    pub(crate) fn new(timeout: Option<Duration>) -> Self {
        let (arrivals, _) = broadcast::channel(ARRIVALS_BUFFER);
        Self {
            pending: Mutex::new(Pending::default()),
            timeout,
            arrivals,
        }
    }

    /// The pending records, locked.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
