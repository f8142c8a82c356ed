//! The node's background processor: hands out LDK's events, forwards HTLCs, asks for the
//! `ChannelManager` to be written, and runs LDK's periodic timers.
//!
//! It does what `lightning-background-processor`'s loop does, with the same timers, except in
//! two things:
//!
//! - **It never serializes the `ChannelManager` itself.** LDK's loop serializes it (twice: once to
//!   size the buffer) whenever LDK flags that it needs persisting, which is after nearly every
//!   message and event, and does so under the lock every peer's message and every payment waits
//!   for, before it hands out the events that woke it. Our store discarded those bytes: the
//!   monitor writer writes the manager with every batch, from its own serialization (see
//!   [`super::monitor_writer`]). Here a flagged manager becomes a request to that writer, which
//!   its next batch answers. Traced over 300 keysends at one in flight, LDK's loop had written
//!   the manager 2,266 times on the payer and 2,606 on the payee, each two serializations, and
//!   each event a payment waits for (`PaymentClaimable`, `PaymentSent`) came after one.
//! - **It forwards HTLCs as soon as they are ready** unless [`HtlcBatching::Ldk`] is chosen (then
//!   after a random delay drawn as LDK's is). Every change that makes an HTLC ready ends with
//!   LDK's notifier, which this loop waits on, so none waits for a timer.
//!
//! The scorer is written on its timer and at stop, not after each payment: its estimates are
//! worth no write per payment, and a crash loses at most the last [`SCORER_PERSIST_TIMER`] of
//! them, which only route less well for a while.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lightning::events::{Event, PathFailure, ReplayEvent};
use lightning::ln::msgs::OnionMessageHandler;
use lightning::routing::scoring::ScoreUpdate;
use lightning::util::persist::{
    KVStoreSync, NETWORK_GRAPH_PERSISTENCE_KEY, NETWORK_GRAPH_PERSISTENCE_PRIMARY_NAMESPACE,
    NETWORK_GRAPH_PERSISTENCE_SECONDARY_NAMESPACE, SCORER_PERSISTENCE_KEY,
    SCORER_PERSISTENCE_PRIMARY_NAMESPACE, SCORER_PERSISTENCE_SECONDARY_NAMESPACE,
};
use lightning::util::ser::Writeable;

use super::{HtlcBatching, NodeInner};

/// `ChannelManager::timer_tick_occurred`: LDK's freshness timer.
const FRESHNESS_TIMER: Duration = Duration::from_secs(60);
/// Peer pings. Signatures take much longer without optimisations, so a debug build pings less
/// often, as LDK's processor does.
const PING_TIMER: Duration = if cfg!(debug_assertions) {
    Duration::from_secs(30)
} else {
    Duration::from_secs(10)
};
const ONION_MESSAGE_HANDLER_TIMER: Duration = Duration::from_secs(10);
/// The first prune comes a minute after start, so a node that never runs an hour still prunes.
const FIRST_NETWORK_PRUNE_TIMER: Duration = Duration::from_secs(60);
const NETWORK_PRUNE_TIMER: Duration = Duration::from_secs(60 * 60);
/// The scorer's decay and write.
pub(crate) const SCORER_PERSIST_TIMER: Duration = Duration::from_secs(5 * 60);
/// Rebroadcast of the chain monitor's pending claims.
const REBROADCAST_TIMER: Duration = Duration::from_secs(30);
/// The output sweeper's rebroadcast of its spends.
const SWEEPER_TIMER: Duration = Duration::from_secs(30);
/// HTLCs waiting at start are first forwarded after this, giving the node time to reconnect
/// its peers so that they are not failed for want of a connection (as LDK's processor waits).
const FIRST_FORWARD_DELAY: Duration = Duration::from_secs(2);

type EventFuture = Pin<Box<dyn Future<Output = Result<(), ReplayEvent>> + Send>>;

/// Runs until the node stops, then asks for a last manager write and writes the scorer and the
/// network graph.
pub(crate) async fn run(inner: Arc<NodeInner>) {
    let mut stop = inner.stop_sender.subscribe();
    let scorer_changed = Arc::new(AtomicBool::new(false));
    let handler = {
        let inner = Arc::clone(&inner);
        let scorer_changed = Arc::clone(&scorer_changed);
        move |event: Event| -> EventFuture {
            learn_from(&inner, &event, &scorer_changed);
            Box::pin(Arc::clone(&inner).handle_event(event))
        }
    };

    inner.channel_manager.timer_tick_occurred();
    inner.chain_monitor.rebroadcast_pending_claims();
    decay_scorer(&inner);

    let started = Instant::now();
    let mut timers = Timers::new(started);
    // When the HTLCs waiting now are to be forwarded; `None` while none wait.
    let mut forward_at = Some(started + FIRST_FORWARD_DELAY);

    loop {
        inner
            .channel_manager
            .process_pending_events_async(&handler)
            .await;
        inner
            .chain_monitor
            .process_pending_events_async(&handler)
            .await;
        inner
            .onion_messenger
            .process_pending_events_async(&handler)
            .await;
        inner.peer_manager.process_events();
        let mut wake_at = timers.next_due();
        if inner.channel_manager.needs_pending_htlc_processing() {
            let now = Instant::now();
            // The delay runs from when HTLCs are first seen waiting, so that each one waits
            // for it, as behind LDK's timer.
            let due =
                *forward_at.get_or_insert_with(|| now + forwarding_delay(inner.htlc_batching));
            if now >= due {
                inner.channel_manager.process_pending_htlc_forwards();
                forward_at = None;
            } else {
                wake_at = wake_at.min(due);
            }
        }
        tokio::select! {
            _ = inner.channel_manager.get_event_or_persistence_needed_future() => {}
            _ = inner.chain_monitor.get_update_future() => {}
            _ = inner.onion_messenger.get_update_future() => {}
            _ = tokio::time::sleep_until(wake_at.into()) => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }

        let now = Instant::now();
        if timers.freshness.due(now) {
            inner.channel_manager.timer_tick_occurred();
        }
        if inner.channel_manager.get_and_clear_needs_persistence() {
            if let Err(error) = inner.monitor_writer.request_manager_write() {
                tracing::error!(%error, "the channel manager could not be written");
            }
        }
        if timers.prune.due(now) {
            timers.prune.every = NETWORK_PRUNE_TIMER;
            prune_and_write_graph(&inner).await;
        }
        if timers.scorer.due(now) {
            decay_scorer(&inner);
            write_scorer(&inner).await;
            scorer_changed.store(false, Ordering::Relaxed);
        }
        if timers.sweeper.due(now) {
            let sweeper = Arc::clone(&inner.sweeper);
            // It reads and writes its tracked outputs in the store: off the runtime.
            let _ = tokio::task::spawn_blocking(move || {
                sweeper.regenerate_and_broadcast_spend_if_necessary()
            })
            .await;
        }
        if timers.onion_messages.due(now) {
            inner.onion_messenger.timer_tick_occurred();
        }
        if timers.pings.due(now) {
            inner.peer_manager.timer_tick_occurred();
        }
        if timers.rebroadcast.due(now) {
            inner.chain_monitor.rebroadcast_pending_claims();
        }
    }

    // Monitor updates made while the node stopped are on disk without a manager that knows
    // them; the writer writes one more, and the node's stop waits for it.
    if let Err(error) = inner.monitor_writer.request_manager_write() {
        tracing::error!(%error, "the channel manager could not be written at stop");
    }
    if scorer_changed.load(Ordering::Relaxed) {
        write_scorer(&inner).await;
    }
    write_graph(&inner).await;
}

/// What LDK's processor learns from an event before handing it out: a channel update a failed
/// payment carried back, for the graph, and how a path fared, for the scorer.
fn learn_from(inner: &NodeInner, event: &Event, scorer_changed: &AtomicBool) {
    if let Event::PaymentPathFailed {
        failure: PathFailure::OnPath {
            network_update: Some(update),
        },
        ..
    } = event
    {
        inner.graph.handle_network_update(update);
    }
    let now = since_epoch();
    let scorer = || inner.scorer.write().unwrap_or_else(|p| p.into_inner());
    match event {
        Event::PaymentPathFailed {
            path,
            short_channel_id: Some(scid),
            ..
        } => scorer().payment_path_failed(path, *scid, now),
        // The payee itself failed it: the path carried it all the way, as a probe would.
        Event::PaymentPathFailed {
            path,
            payment_failed_permanently: true,
            ..
        } => scorer().probe_successful(path, now),
        Event::PaymentPathSuccessful { path, .. } => scorer().payment_path_successful(path, now),
        Event::ProbeSuccessful { path, .. } => scorer().probe_successful(path, now),
        Event::ProbeFailed {
            path,
            short_channel_id: Some(scid),
            ..
        } => scorer().probe_failed(path, *scid, now),
        _ => return,
    }
    scorer_changed.store(true, Ordering::Relaxed);
}

fn decay_scorer(inner: &NodeInner) {
    let mut scorer = inner.scorer.write().unwrap_or_else(|p| p.into_inner());
    scorer.time_passed(since_epoch());
}

async fn write_scorer(inner: &Arc<NodeInner>) {
    let bytes = inner
        .scorer
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .encode();
    write(
        inner,
        "scorer",
        SCORER_PERSISTENCE_PRIMARY_NAMESPACE,
        SCORER_PERSISTENCE_SECONDARY_NAMESPACE,
        SCORER_PERSISTENCE_KEY,
        bytes,
    )
    .await;
}

async fn prune_and_write_graph(inner: &Arc<NodeInner>) {
    inner
        .graph
        .remove_stale_channels_and_tracking_with_time(since_epoch().as_secs());
    write_graph(inner).await;
}

async fn write_graph(inner: &Arc<NodeInner>) {
    let bytes = inner.graph.encode();
    write(
        inner,
        "network graph",
        NETWORK_GRAPH_PERSISTENCE_PRIMARY_NAMESPACE,
        NETWORK_GRAPH_PERSISTENCE_SECONDARY_NAMESPACE,
        NETWORK_GRAPH_PERSISTENCE_KEY,
        bytes,
    )
    .await;
}

/// Writes through the store LDK's objects persist through, off the runtime; a failure is
/// logged (the next timer writes again), as LDK's processor does.
async fn write(
    inner: &Arc<NodeInner>,
    what: &'static str,
    primary: &'static str,
    secondary: &'static str,
    key: &'static str,
    bytes: Vec<u8>,
) {
    let store = Arc::clone(&inner.ldk_store);
    let written =
        tokio::task::spawn_blocking(move || store.write(primary, secondary, key, bytes)).await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(%error, "the {what} could not be written"),
        Err(error) => tracing::error!(%error, "the {what} could not be written"),
    }
}

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// How long after a forwarding pass the next one may run.
fn forwarding_delay(batching: HtlcBatching) -> Duration {
    match batching {
        HtlcBatching::None => Duration::ZERO,
        HtlcBatching::Ldk => ldk_forwarding_delay(),
    }
}

/// A delay drawn as LDK's processor draws it: log-normal with a median of 50 ms and a spread
/// (sdlog) of 0.5, at most 200 ms, plus up to a millisecond. HTLCs arriving close together
/// leave together, so an observer of a routing node cannot pair each incoming HTLC with its
/// outgoing one by timing.
fn ldk_forwarding_delay() -> Duration {
    loop {
        // Box-Muller: a standard normal draw from two uniform ones in (0, 1].
        let (u1, u2) = (uniform(), uniform());
        let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let millis = (50.0 * (0.5 * normal).exp()).round();
        if millis <= 200.0 {
            return Duration::from_micros((millis * 1_000.0 + uniform() * 1_000.0) as u64);
        }
    }
}

/// A uniform draw in (0, 1].
fn uniform() -> f64 {
    let mut bytes = [0u8; 8];
    // Without the system's randomness the delay is its median's neighbourhood; nothing else
    // depends on it.
    let _ = getrandom::fill(&mut bytes);
    ((u64::from_le_bytes(bytes) >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

/// A periodic timer.
struct Timer {
    last: Instant,
    every: Duration,
}

impl Timer {
    fn new(now: Instant, every: Duration) -> Self {
        Self { last: now, every }
    }

    fn due_at(&self) -> Instant {
        self.last + self.every
    }

    /// Whether the timer has run out; if so it starts again from `now`.
    fn due(&mut self, now: Instant) -> bool {
        if now < self.due_at() {
            return false;
        }
        self.last = now;
        true
    }
}

struct Timers {
    freshness: Timer,
    pings: Timer,
    onion_messages: Timer,
    prune: Timer,
    scorer: Timer,
    rebroadcast: Timer,
    sweeper: Timer,
}

impl Timers {
    fn new(now: Instant) -> Self {
        Self {
            freshness: Timer::new(now, FRESHNESS_TIMER),
            pings: Timer::new(now, PING_TIMER),
            onion_messages: Timer::new(now, ONION_MESSAGE_HANDLER_TIMER),
            prune: Timer::new(now, FIRST_NETWORK_PRUNE_TIMER),
            scorer: Timer::new(now, SCORER_PERSIST_TIMER),
            rebroadcast: Timer::new(now, REBROADCAST_TIMER),
            sweeper: Timer::new(now, SWEEPER_TIMER),
        }
    }

    fn next_due(&self) -> Instant {
        [
            &self.freshness,
            &self.pings,
            &self.onion_messages,
            &self.prune,
            &self.scorer,
            &self.rebroadcast,
            &self.sweeper,
        ]
        .iter()
        .map(|timer| timer.due_at())
        .min()
        .unwrap_or_else(Instant::now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldk_forwarding_delays_have_a_median_near_50_ms_and_stay_within_201_ms() {
        let mut delays: Vec<Duration> = (0..2_000).map(|_| ldk_forwarding_delay()).collect();
        delays.sort();
        let median = delays[delays.len() / 2];
        assert!(
            (Duration::from_millis(44)..=Duration::from_millis(56)).contains(&median),
            "median {median:?}"
        );
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(201)));
        assert!(
            delays[0] < Duration::from_millis(30),
            "no spread: {:?}",
            delays[0]
        );
    }

    #[test]
    fn without_batching_htlcs_are_forwarded_at_once() {
        assert_eq!(forwarding_delay(HtlcBatching::None), Duration::ZERO);
    }

    #[test]
    fn a_timer_runs_out_after_its_period_and_starts_again() {
        let start = Instant::now();
        let mut timer = Timer::new(start, Duration::from_secs(10));
        assert!(!timer.due(start + Duration::from_secs(9)));
        assert!(timer.due(start + Duration::from_secs(10)));
        assert!(!timer.due(start + Duration::from_secs(11)));
        assert_eq!(timer.due_at(), start + Duration::from_secs(20));
    }
}
