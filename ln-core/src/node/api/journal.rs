//! The event journal as programs read it: every stream's events after an index, a wake-up when
//! more arrive, and Core Lightning's `waitanyinvoice`.

use std::time::Duration;

use tokio::sync::watch;

use crate::node::journal::{JournalEvent, Stream};
use crate::node::records::InvoiceRecord;
use crate::node::{Error, Node};

/// How many events one read returns at most.
pub const EVENTS_PER_READ: usize = 1000;

/// A paid invoice and its `pay_index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidInvoice {
    /// The invoice, as stored when it was paid.
    pub invoice: InvoiceRecord,
    /// The index of its `paid` event in the `invoices` stream: give it as `lastpay_index` to
    /// wait for the next paid invoice.
    pub pay_index: u64,
}

impl Node {
    /// Up to `limit` events of `stream` with an index above `after`, in order.
    pub fn events(
        &self,
        stream: Stream,
        after: u64,
        limit: usize,
    ) -> Result<Vec<JournalEvent>, Error> {
        let journal = self.inner.records.journal();
        let inner = journal.clone();
        let events = crate::store::outside_the_runtime(move || inner.read(stream, after, limit))?;
        Ok(events)
    }

    /// The index of the last event of `stream` (0 if none yet).
    pub fn last_event_index(&self, stream: Stream) -> u64 {
        self.inner.records.journal().last_index(stream)
    }

    /// A receiver that changes whenever an event of `stream` is written.
    pub fn watch_events(&self, stream: Stream) -> watch::Receiver<u64> {
        self.inner.records.journal().watch(stream)
    }

    /// The first invoice paid after `lastpay_index` (Core Lightning's `waitanyinvoice`): at once
    /// if there is one, else the next one to be paid, waiting at most `timeout`.
    pub async fn wait_any_invoice(
        &self,
        lastpay_index: u64,
        timeout: Duration,
    ) -> Result<PaidInvoice, Error> {
        let mut changes = self.watch_events(Stream::Invoices);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut after = lastpay_index;
        loop {
            // Mark the current value seen before reading, so an event written during the read
            // wakes the wait below.
            changes.borrow_and_update();
            loop {
                let events = self.events(Stream::Invoices, after, EVENTS_PER_READ)?;
                let Some(last) = events.last() else { break };
                after = last.index;
                if let Some(paid) = events.into_iter().find(|e| e.kind == "paid") {
                    let invoice = serde_json::from_value(paid.data).map_err(|e| {
                        Error::Store(format!("a paid invoice event is unreadable: {e}"))
                    })?;
                    return Ok(PaidInvoice {
                        invoice,
                        pay_index: paid.index,
                    });
                }
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_closed)) => return Err(Error::ShuttingDown),
                Err(_elapsed) => {
                    return Err(Error::Timeout(format!(
                        "no invoice was paid after pay_index {lastpay_index}"
                    )))
                }
            }
        }
    }
}
