//! Hands `ChannelMonitorUpdate`s to the `ChainMonitor` strictly in `update_id` order, holding back
//! any that arrives before the one it follows.
//!
//! LDK 0.2.7 can pass a monitor update out of order once, at start-up, and then panics in
//! `ChannelMonitor::update_monitor` ("Attempted to apply ChannelMonitorUpdates out of order") at
//! every start, so the node can never run again. The crash storm found it
//! (docs/faults.md, "a restart that cannot start"); the sequence is:
//!
//! 1. A forwarding node applies update N of the inbound channel (monitor writes are asynchronous,
//!    so N is in flight) and LDK holds update N+1 of that channel back until the outbound
//!    channel's claim is durable (an RAA blocker).
//! 2. The process dies after the manager was written (N in flight, N+1 blocked) and before
//!    monitor N was.
//! 3. At start the manager queues N as a replay, a background event behind the outbound
//!    channel's "updates completed" event. Processing that event completes the outbound
//!    channel, which releases the blocker, and LDK applies N+1 directly to a monitor still at
//!    N-1: the panic, before the replay of N ever runs.
//!
//! [`OrderedMonitorUpdates`] sits between the `ChannelManager` and the `ChainMonitor`. An update
//! more than one ahead of its monitor is held and reported `InProgress` (the manager keeps the
//! channel paused, exactly as for a monitor write still on its way to disk); as soon as the
//! missing update arrives it is applied, then every held update that now follows in order. Each
//! one reaches the `ChainMonitor` and its persister as usual, so completion is reported by the
//! monitor writer like any other update. Nothing else changes: in-order updates, which is all of
//! them in normal operation, go straight through.

use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;
use std::sync::{Mutex, MutexGuard};

use super::channel_signer::NodeChannelSigner;
use bitcoin::secp256k1::PublicKey;
use lightning::chain::chaininterface::{BroadcasterInterface, FeeEstimator};
use lightning::chain::chainmonitor::{ChainMonitor, Persist};
use lightning::chain::channelmonitor::{ChannelMonitor, ChannelMonitorUpdate, MonitorEvent};
use lightning::chain::transaction::OutPoint;
use lightning::chain::Filter;
use lightning::chain::{ChannelMonitorUpdateStatus, Watch};
use lightning::ln::types::ChannelId;
use lightning::sign::EntropySource;
use lightning::util::logger::Logger;

/// The `update_id` LDK before 0.1 gave every update after a channel closed; such updates carry
/// no order and are always passed through.
const LEGACY_CLOSED_CHANNEL_UPDATE_ID: u64 = u64::MAX;

/// What [`OrderedMonitorUpdates`] needs of the monitors it guards: LDK's `Watch`, and the update
/// id each monitor is at.
pub trait MonitorSet: Watch<NodeChannelSigner> {
    /// The `update_id` of the last update applied to `channel_id`'s monitor, or `None` when no
    /// monitor watches that channel.
    fn latest_update_id(&self, channel_id: ChannelId) -> Option<u64>;
}

// Generic rather than for our `ChainMonitor` alias alone: that alias names a `dyn Filter`, and the
// node's futures need the impl for every lifetime of it.
impl<C: Deref, T: Deref, F: Deref, L: Deref, P: Deref, ES: Deref> MonitorSet
    for ChainMonitor<NodeChannelSigner, C, T, F, L, P, ES>
where
    C::Target: Filter,
    T::Target: BroadcasterInterface,
    F::Target: FeeEstimator,
    L::Target: Logger,
    P::Target: Persist<NodeChannelSigner>,
    ES::Target: EntropySource,
{
    fn latest_update_id(&self, channel_id: ChannelId) -> Option<u64> {
        self.get_monitor(channel_id)
            .ok()
            .map(|monitor| monitor.get_latest_update_id())
    }
}

/// The `chain::Watch` the `ChannelManager` is given: LDK's monitor set, with updates applied in
/// order (see the module documentation).
pub struct OrderedMonitorUpdates<M: Deref>
where
    M::Target: MonitorSet,
{
    monitors: M,
    held: Mutex<HashMap<ChannelId, BTreeMap<u64, ChannelMonitorUpdate>>>,
}

impl<M: Deref> OrderedMonitorUpdates<M>
where
    M::Target: MonitorSet,
{
    /// Guards `monitors`.
    pub fn new(monitors: M) -> Self {
        Self {
            monitors,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// How many updates are held back, waiting for the one before them (for diagnostics and
    /// tests; zero in normal operation).
    pub fn held_update_count(&self) -> usize {
        self.lock().values().map(BTreeMap::len).sum()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ChannelId, BTreeMap<u64, ChannelMonitorUpdate>>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies the held updates of `channel_id` that now follow its monitor in order.
    fn apply_held_successors(&self, channel_id: ChannelId) {
        loop {
            let next = {
                let mut held = self.lock();
                let Some(queue) = held.get_mut(&channel_id) else {
                    return;
                };
                let Some(latest) = self.monitors.latest_update_id(channel_id) else {
                    return;
                };
                let Some(entry) = queue.first_entry() else {
                    held.remove(&channel_id);
                    return;
                };
                if *entry.key() != latest.saturating_add(1) {
                    return;
                }
                let update = entry.remove();
                if queue.is_empty() {
                    held.remove(&channel_id);
                }
                update
            };
            tracing::info!(
                channel_id = %channel_id,
                update_id = next.update_id,
                "applying a channel monitor update held back until the one before it was applied"
            );
            // The manager already has this update in flight and hears of its completion from
            // the persister through the `ChainMonitor`, like any other update. `InProgress`
            // is what our persister answers; anything else is logged, as LDK does.
            match self.monitors.update_channel(channel_id, &next) {
                ChannelMonitorUpdateStatus::InProgress => {}
                status => tracing::warn!(
                    channel_id = %channel_id,
                    update_id = next.update_id,
                    ?status,
                    "a held-back channel monitor update was not taken as in progress"
                ),
            }
        }
    }
}

impl<M: Deref> Watch<NodeChannelSigner> for OrderedMonitorUpdates<M>
where
    M::Target: MonitorSet,
{
    fn watch_channel(
        &self,
        channel_id: ChannelId,
        monitor: ChannelMonitor<NodeChannelSigner>,
    ) -> Result<ChannelMonitorUpdateStatus, ()> {
        self.monitors.watch_channel(channel_id, monitor)
    }

    fn update_channel(
        &self,
        channel_id: ChannelId,
        update: &ChannelMonitorUpdate,
    ) -> ChannelMonitorUpdateStatus {
        if update.update_id != LEGACY_CLOSED_CHANNEL_UPDATE_ID {
            let mut held = self.lock();
            let latest = self.monitors.latest_update_id(channel_id);
            if let Some(latest) = latest.filter(|l| update.update_id > l.saturating_add(1)) {
                tracing::warn!(
                    channel_id = %channel_id,
                    update_id = update.update_id,
                    monitor_update_id = latest,
                    "holding back a channel monitor update that LDK passed before the one it \
                     follows; it is applied as soon as that one is"
                );
                held.entry(channel_id)
                    .or_default()
                    .insert(update.update_id, update.clone());
                return ChannelMonitorUpdateStatus::InProgress;
            }
        }
        let status = self.monitors.update_channel(channel_id, update);
        self.apply_held_successors(channel_id);
        status
    }

    fn release_pending_monitor_events(
        &self,
    ) -> Vec<(OutPoint, ChannelId, Vec<MonitorEvent>, PublicKey)> {
        self.monitors.release_pending_monitor_events()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lightning::util::ser::Readable;
    use std::sync::Arc;

    /// A monitor set of one channel that, like LDK's `ChannelMonitor`, panics on an update out
    /// of order, and records the order it was given updates in.
    struct StrictMonitors {
        channel_id: ChannelId,
        latest: Mutex<u64>,
        applied: Mutex<Vec<u64>>,
    }

    impl StrictMonitors {
        fn at(channel_id: ChannelId, latest: u64) -> Arc<Self> {
            Arc::new(Self {
                channel_id,
                latest: Mutex::new(latest),
                applied: Mutex::new(Vec::new()),
            })
        }

        fn applied(&self) -> Vec<u64> {
            self.applied.lock().map(|a| a.clone()).unwrap_or_default()
        }
    }

    impl MonitorSet for StrictMonitors {
        fn latest_update_id(&self, channel_id: ChannelId) -> Option<u64> {
            (channel_id == self.channel_id).then(|| *self.latest.lock().expect("test lock"))
        }
    }

    impl Watch<NodeChannelSigner> for StrictMonitors {
        fn watch_channel(
            &self,
            _: ChannelId,
            _: ChannelMonitor<NodeChannelSigner>,
        ) -> Result<ChannelMonitorUpdateStatus, ()> {
            Err(())
        }

        fn update_channel(
            &self,
            channel_id: ChannelId,
            update: &ChannelMonitorUpdate,
        ) -> ChannelMonitorUpdateStatus {
            assert_eq!(channel_id, self.channel_id);
            let mut latest = self.latest.lock().expect("test lock");
            assert!(
                update.update_id == LEGACY_CLOSED_CHANNEL_UPDATE_ID
                    || update.update_id == *latest + 1,
                "Attempted to apply ChannelMonitorUpdates out of order: {} after {}",
                update.update_id,
                *latest
            );
            if update.update_id != LEGACY_CLOSED_CHANNEL_UPDATE_ID {
                *latest = update.update_id;
            }
            self.applied
                .lock()
                .expect("test lock")
                .push(update.update_id);
            ChannelMonitorUpdateStatus::InProgress
        }

        fn release_pending_monitor_events(
            &self,
        ) -> Vec<(OutPoint, ChannelId, Vec<MonitorEvent>, PublicKey)> {
            Vec::new()
        }
    }

    /// An update with no steps: what matters here is only its id.
    fn update(update_id: u64) -> ChannelMonitorUpdate {
        let mut bytes = vec![1, 1];
        bytes.extend_from_slice(&update_id.to_be_bytes());
        bytes.extend_from_slice(&0u64.to_be_bytes());
        bytes.push(0);
        ChannelMonitorUpdate::read(&mut lightning::io::Cursor::new(bytes)).expect("valid update")
    }

    #[test]
    fn in_order_updates_go_straight_through() {
        let channel = ChannelId([7; 32]);
        let monitors = StrictMonitors::at(channel, 10);
        let ordered = OrderedMonitorUpdates::new(monitors.clone());
        for id in 11..=14 {
            assert_eq!(
                ordered.update_channel(channel, &update(id)),
                ChannelMonitorUpdateStatus::InProgress
            );
        }
        assert_eq!(monitors.applied(), vec![11, 12, 13, 14]);
        assert_eq!(ordered.held_update_count(), 0);
    }

    /// The start-up sequence the crash storm found: the monitor is at 1005, LDK releases the
    /// blocked 1007 before it replays 1006.
    #[test]
    fn an_update_ahead_of_its_monitor_waits_for_the_one_before_it() {
        let channel = ChannelId([9; 32]);
        let monitors = StrictMonitors::at(channel, 1005);
        let ordered = OrderedMonitorUpdates::new(monitors.clone());

        assert_eq!(
            ordered.update_channel(channel, &update(1007)),
            ChannelMonitorUpdateStatus::InProgress
        );
        assert!(
            monitors.applied().is_empty(),
            "1007 must not reach the monitor at 1005"
        );
        assert_eq!(ordered.held_update_count(), 1);

        assert_eq!(
            ordered.update_channel(channel, &update(1006)),
            ChannelMonitorUpdateStatus::InProgress
        );
        assert_eq!(monitors.applied(), vec![1006, 1007]);
        assert_eq!(ordered.held_update_count(), 0);

        ordered.update_channel(channel, &update(1008));
        assert_eq!(monitors.applied(), vec![1006, 1007, 1008]);
    }

    #[test]
    fn several_held_updates_are_applied_in_order_once_the_gap_closes() {
        let channel = ChannelId([3; 32]);
        let monitors = StrictMonitors::at(channel, 1);
        let ordered = OrderedMonitorUpdates::new(monitors.clone());
        for id in [5, 3, 4] {
            ordered.update_channel(channel, &update(id));
        }
        assert!(monitors.applied().is_empty());
        assert_eq!(ordered.held_update_count(), 3);
        ordered.update_channel(channel, &update(2));
        assert_eq!(monitors.applied(), vec![2, 3, 4, 5]);
        assert_eq!(ordered.held_update_count(), 0);
    }

    #[test]
    fn legacy_closed_channel_updates_pass_through() {
        let channel = ChannelId([4; 32]);
        let monitors = StrictMonitors::at(channel, 20);
        let ordered = OrderedMonitorUpdates::new(monitors.clone());
        ordered.update_channel(channel, &update(LEGACY_CLOSED_CHANNEL_UPDATE_ID));
        assert_eq!(monitors.applied(), vec![LEGACY_CLOSED_CHANNEL_UPDATE_ID]);
        assert_eq!(ordered.held_update_count(), 0);
    }
}
