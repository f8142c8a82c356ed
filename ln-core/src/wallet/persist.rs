//! The wallet's durable form: bdk's [`ChangeSet`]s, appended one per mutation to the store's
//! `wallet` namespace under increasing big-endian `u64` keys (serde_json values), merged in key
//! order on load.
//!
//! Order matters when merging: a later change set may replace a block hash at a height (a reorg).
//! Big-endian keys make sled's bytewise order the numeric order.

use bdk_wallet::chain::Merge;
use bdk_wallet::ChangeSet;

use super::WalletError;
use crate::store::{Namespace, SledStore};

/// The store namespace holding the wallet's change sets.
const NAMESPACE: &str = "wallet";

/// Above this many stored change sets, loading rewrites them as one. Every connected block adds
/// one, so this keeps a week or so of Bitcoin blocks between compactions.
pub(super) const COMPACT_ABOVE_ENTRIES: usize = 1000;

/// The append-only log of the wallet's change sets.
pub(super) struct ChangeSetLog {
    namespace: Namespace,
    next_key: u64,
}

impl ChangeSetLog {
    /// Opens the log in `store` and returns it with the merge of everything stored (empty for a
    /// new wallet). Compacts the log first if it holds more than `compact_above` entries.
    pub(super) fn open(
        store: &SledStore,
        compact_above: usize,
    ) -> Result<(Self, ChangeSet), WalletError> {
        let namespace = store.namespace(NAMESPACE)?;
        let (merged, entries, last_key) = read_merged(&namespace)?;
        let next_key = match last_key {
            Some(key) => key.checked_add(1).ok_or_else(|| {
                WalletError::Corrupt("the wallet's change-set counter is exhausted".to_owned())
            })?,
            None => 0,
        };
        let log = Self {
            namespace,
            next_key,
        };
        if let Some(last_key) = last_key.filter(|_| entries > compact_above) {
            log.compact(last_key, &merged)?;
        }
        Ok((log, merged))
    }

    /// The merge of everything stored, as [`Self::open`] returned it plus what was appended since.
    pub(super) fn merged(&self) -> Result<ChangeSet, WalletError> {
        Ok(read_merged(&self.namespace)?.0)
    }

    /// Durably appends `changeset`.
    pub(super) fn append(&mut self, changeset: &ChangeSet) -> Result<(), WalletError> {
        let value = encode(changeset)?;
        self.namespace.put(&self.next_key.to_be_bytes(), &value)?;
        self.next_key += 1;
        Ok(())
    }

    /// Replaces the entries up to `last_key` by their merge, stored under `last_key`.
    ///
    /// Writing the merge over the *last* entry before removing the older ones keeps a crash in
    /// between harmless: the leftover older entries merge first and the full merge overrides them.
    fn compact(&self, last_key: u64, merged: &ChangeSet) -> Result<(), WalletError> {
        let last_key = last_key.to_be_bytes();
        self.namespace.put(&last_key, &encode(merged)?)?;
        self.namespace.remove_range_below(&last_key)?;
        tracing::debug!("compacted the on-chain wallet's change sets");
        Ok(())
    }
}

/// The merge of the stored change sets in key order, how many there are, and the last key.
fn read_merged(namespace: &Namespace) -> Result<(ChangeSet, usize, Option<u64>), WalletError> {
    let entries = namespace.iter_prefix(&[])?;
    let mut merged = ChangeSet::default();
    let mut last_key = None;
    for (key, value) in &entries {
        let key = decode_key(key)?;
        let changeset: ChangeSet = serde_json::from_slice(value)
            .map_err(|e| WalletError::Corrupt(format!("wallet change set {key}: {e}")))?;
        merged.merge(changeset);
        last_key = Some(key);
    }
    Ok((merged, entries.len(), last_key))
}

fn encode(changeset: &ChangeSet) -> Result<Vec<u8>, WalletError> {
    serde_json::to_vec(changeset).map_err(|e| WalletError::Persist(e.to_string()))
}

fn decode_key(key: &[u8]) -> Result<u64, WalletError> {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| {
            WalletError::Corrupt(format!("wallet change-set key {key:02x?} is not 8 bytes"))
        })
}
