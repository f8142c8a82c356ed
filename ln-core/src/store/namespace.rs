//! xln's own (non-LDK) records: a named sled tree whose writes are flushed before returning,
//! except the `*_unflushed` transactions, which a later [`Namespace::flush_durably`] makes durable.

use super::StoreError;

/// A stored key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// One xln namespace of the store: the sled tree `xln/<name>`, keys ordered bytewise.
///
/// Every write returns only after it was flushed and fsynced, except the `*_unflushed`
/// transactions (see [`Namespace::transaction_with_unflushed`]). A `Namespace` keeps the database
/// (and its directory lock) open, like a [`super::SledStore`] clone.
#[derive(Clone, Debug)]
pub struct Namespace {
    tree: sled::Tree,
    name: &'static str,
    durability: super::Durability,
}

impl Namespace {
    pub(super) fn open(
        db: &sled::Db,
        name: &'static str,
        durability: super::Durability,
    ) -> Result<Self, StoreError> {
        let tree_name = format!("xln/{name}");
        let tree = db.open_tree(&tree_name).map_err(|source| StoreError::Io {
            context: format!("open {tree_name}"),
            source,
        })?;
        Ok(Self {
            tree,
            name,
            durability,
        })
    }

    fn failure(&self, operation: &str, source: sled::Error) -> StoreError {
        let context = format!("{operation} in xln/{}", self.name);
        tracing::error!(%context, error = %source, "store operation failed");
        StoreError::Io { context, source }
    }

    fn flush(&self, operation: &str) -> Result<(), StoreError> {
        self.durability
            .flush(|| self.tree.flush())
            .map(drop)
            .map_err(|e| self.failure(operation, e))
    }

    /// The value under `key`, if any.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.tree.get(key).map_err(|e| self.failure("get", e))?;
        Ok(value.map(|v| v.to_vec()))
    }

    /// Stores `value` under `key` durably.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.tree
            .insert(key, value)
            .map_err(|e| self.failure("put", e))?;
        self.flush("put")
    }

    /// Stores all `entries` as one sled batch, durably: sled applies a batch atomically, so after a
    /// crash either all or none of them are present.
    pub fn put_many<K, V>(
        &self,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), StoreError>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut batch = sled::Batch::default();
        for (key, value) in entries {
            batch.insert(key.as_ref(), value.as_ref());
        }
        self.tree
            .apply_batch(batch)
            .map_err(|e| self.failure("put_many", e))?;
        self.flush("put_many")
    }

    /// Removes `key` durably; removing an absent key succeeds.
    pub fn remove(&self, key: &[u8]) -> Result<(), StoreError> {
        self.tree
            .remove(key)
            .map_err(|e| self.failure("remove", e))?;
        self.flush("remove")
    }

    /// Removes every key ordered before `key` (bytewise) as one batch, durably.
    pub fn remove_range_below(&self, key: &[u8]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for stored in self.tree.range(..key).keys() {
            batch.remove(stored.map_err(|e| self.failure("remove_range_below", e))?);
        }
        self.tree
            .apply_batch(batch)
            .map_err(|e| self.failure("remove_range_below", e))?;
        self.flush("remove_range_below")
    }

    /// Removes `key` and every key ordered after it (bytewise) as one batch, durably.
    pub fn remove_range_from(&self, key: &[u8]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for stored in self.tree.range(key..).keys() {
            batch.remove(stored.map_err(|e| self.failure("remove_range_from", e))?);
        }
        self.tree
            .apply_batch(batch)
            .map_err(|e| self.failure("remove_range_from", e))?;
        self.flush("remove_range_from")
    }

    /// All entries whose key starts with `prefix`, in key order.
    pub fn iter_prefix(&self, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        self.tree
            .scan_prefix(prefix)
            .map(|entry| {
                let (key, value) = entry.map_err(|e| self.failure("iter_prefix", e))?;
                Ok((key.to_vec(), value.to_vec()))
            })
            .collect()
    }

    /// The entry with the smallest key, if any.
    pub fn first(&self) -> Result<Option<Entry>, StoreError> {
        let entry = self.tree.first().map_err(|e| self.failure("first", e))?;
        Ok(entry.map(|(key, value)| (key.to_vec(), value.to_vec())))
    }

    /// The entry with the greatest key, if any.
    pub fn last(&self) -> Result<Option<Entry>, StoreError> {
        let entry = self.tree.last().map_err(|e| self.failure("last", e))?;
        Ok(entry.map(|(key, value)| (key.to_vec(), value.to_vec())))
    }

    /// The entry with the greatest key starting with `prefix`, if any.
    pub fn last_with_prefix(&self, prefix: &[u8]) -> Result<Option<Entry>, StoreError> {
        match self.tree.scan_prefix(prefix).next_back() {
            Some(entry) => {
                let (key, value) = entry.map_err(|e| self.failure("last_with_prefix", e))?;
                Ok(Some((key.to_vec(), value.to_vec())))
            }
            None => Ok(None),
        }
    }

    /// Up to `limit` entries with keys in `start..end` (bytewise), in key order.
    pub fn range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        self.tree
            .range(start..end)
            .take(limit)
            .map(|entry| {
                let (key, value) = entry.map_err(|e| self.failure("range", e))?;
                Ok((key.to_vec(), value.to_vec()))
            })
            .collect()
    }

    /// Runs `write` on this namespace as one sled transaction, durable only after a
    /// [`Self::flush_durably`] (see [`Self::transaction_with_unflushed`]).
    pub fn transaction_unflushed<R>(
        &self,
        write: impl Fn(
            &sled::transaction::TransactionalTree,
        ) -> Result<R, sled::transaction::ConflictableTransactionError<()>>,
    ) -> Result<R, StoreError> {
        self.tree
            .transaction(|tree| write(tree))
            .map_err(|error| self.failure("transaction", transaction_error(error)))
    }

    /// Runs `write` on this namespace and `other` (of the same store) as one sled transaction:
    /// after a crash, all of its writes to both are present or none is. It is durable only after
    /// a [`Self::flush_durably`] that began after it returned, which lets a caller that orders
    /// its transactions under a lock make them durable after releasing it, sharing the flush
    /// with others. sled may run `write` more than once (on a conflict with a concurrent
    /// transaction), so it must only read and write through the trees it is given.
    pub fn transaction_with_unflushed<R>(
        &self,
        other: &Namespace,
        write: impl Fn(
            &sled::transaction::TransactionalTree,
            &sled::transaction::TransactionalTree,
        ) -> Result<R, sled::transaction::ConflictableTransactionError<()>>,
    ) -> Result<R, StoreError> {
        use sled::Transactional;
        (&self.tree, &other.tree)
            .transaction(|(own, theirs)| write(own, theirs))
            .map_err(|error| self.failure("transaction", transaction_error(error)))
    }

    /// Makes every write made so far to the store durable (any namespace's: the store has one
    /// log).
    pub fn flush_durably(&self) -> Result<(), StoreError> {
        self.flush("flush")
    }
}

fn transaction_error(error: sled::transaction::TransactionError<()>) -> sled::Error {
    match error {
        sled::transaction::TransactionError::Storage(e) => e,
        sled::transaction::TransactionError::Abort(()) => {
            sled::Error::Unsupported("the transaction was aborted".to_owned())
        }
    }
}
