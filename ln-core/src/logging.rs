//! LDK's `Logger` routed into `tracing`, with the peer, channel and payment a record concerns as
//! structured fields (so an operator can filter one channel's history out of `xlnd.log`).

use lightning::util::logger::{Level, Logger, Record};
use std::cell::Cell;

/// The start of LDK's record when `send_payment` finds no route (`outbound_payment.rs`).
const NO_ROUTE_FOR_SEND: &str = "Failed to find route for payment";

thread_local! {
    /// Whether this thread is inside a send whose "no route" the caller handles.
    static NO_ROUTE_HANDLED: Cell<bool> = const { Cell::new(false) };
}

/// While alive, LDK's ERROR record that a send found no route is written at DEBUG on this
/// thread. A send of ours that finds no route is not over: it waits in the send queue while our
/// own HTLCs fill the channel, or looks again while gossip arrives, and when it does fail, xln
/// logs why in its own words. LDK's ERROR for each such send made a busy node's log read as if
/// hundreds of payments had failed that then succeeded.
pub(crate) struct NoRouteHandled {
    /// The flag as the scope found it, put back when it ends.
    outer: bool,
}

impl NoRouteHandled {
    /// Marks this thread's LDK calls until the value is dropped.
    pub(crate) fn scope() -> Self {
        Self {
            outer: NO_ROUTE_HANDLED.with(|handled| handled.replace(true)),
        }
    }
}

impl Drop for NoRouteHandled {
    fn drop(&mut self) {
        NO_ROUTE_HANDLED.with(|handled| handled.set(self.outer));
    }
}

/// Whether `record` is LDK's "no route" for a send that [`NoRouteHandled`] covers.
fn is_handled_no_route(record: &Record) -> bool {
    record.level == Level::Error
        && NO_ROUTE_HANDLED.with(Cell::get)
        && record.args.to_string().starts_with(NO_ROUTE_FOR_SEND)
}

/// Forwards LDK's log records to `tracing` under the target `ldk`. LDK's `Gossip` level (very
/// chatty) maps to `TRACE`, like `Trace`.
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingLogger;

impl Logger for TracingLogger {
    fn log(&self, record: Record) {
        // The fields are formatted only for a record that is written: LDK logs many records
        // per commitment below the default level, and hex-encoding their ids up front was a
        // few percent of a busy node's CPU.
        let peer_id = OrEmpty(record.peer_id.as_ref());
        let channel_id = OrEmpty(record.channel_id.as_ref());
        let payment_hash = OrEmpty(record.payment_hash.as_ref());
        let module = record.module_path;
        macro_rules! emit {
            ($macro:ident) => {
                tracing::$macro!(
                    target: "ldk",
                    module,
                    line = record.line,
                    peer_id = %peer_id,
                    channel_id = %channel_id,
                    payment_hash = %payment_hash,
                    "{}",
                    record.args
                )
            };
        }
        if is_handled_no_route(&record) {
            emit!(debug);
            return;
        }
        match record.level {
            Level::Gossip | Level::Trace => emit!(trace),
            Level::Debug => emit!(debug),
            Level::Info => emit!(info),
            Level::Warn => emit!(warn),
            Level::Error => emit!(error),
        }
    }
}

/// Shows the value, or nothing when there is none.
struct OrEmpty<'a, T>(Option<&'a T>);

impl<T: std::fmt::Display> std::fmt::Display for OrEmpty<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(value) => value.fmt(f),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lightning::ln::types::ChannelId;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What `TracingLogger` writes while `log` runs, at `max_level` and above.
    fn written(max_level: tracing::Level, log: impl FnOnce()) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(max_level)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let bytes = captured.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Hands `TracingLogger` an LDK record of `level` from `module`.
    fn ldk_log(
        level: Level,
        channel_id: Option<ChannelId>,
        module: &'static str,
        args: std::fmt::Arguments,
    ) {
        TracingLogger.log(Record::new(
            level, None, channel_id, args, module, "f", 1, None,
        ));
    }

    #[test]
    fn ldk_records_arrive_in_tracing_with_channel_and_level() {
        let channel_id = ChannelId::from_bytes([7; 32]);
        let output = written(tracing::Level::DEBUG, || {
            ldk_log(
                Level::Warn,
                Some(channel_id),
                "m",
                format_args!("funding confirmed"),
            );
            ldk_log(Level::Gossip, None, "m", format_args!("gossip noise"));
        });
        assert!(output.contains("WARN"), "{output}");
        assert!(output.contains("funding confirmed"), "{output}");
        assert!(output.contains(&channel_id.to_string()), "{output}");
        assert!(
            !output.contains("gossip noise"),
            "Gossip maps to TRACE, below DEBUG: {output}"
        );
    }

    #[test]
    fn no_route_of_a_send_we_handle_is_debug_and_other_errors_stay_errors() {
        const OUTBOUND_PAYMENT: &str = "lightning::ln::outbound_payment";
        // LDK's record for a send that found no route, as `outbound_payment.rs` writes it.
        let log_no_route = || {
            ldk_log(
                Level::Error,
                None,
                OUTBOUND_PAYMENT,
                format_args!("{NO_ROUTE_FOR_SEND} with id 00 and hash 00"),
            )
        };
        let output = written(tracing::Level::INFO, || {
            {
                let _handled = NoRouteHandled::scope();
                log_no_route();
                ldk_log(
                    Level::Error,
                    None,
                    OUTBOUND_PAYMENT,
                    format_args!("Your router is buggy"),
                );
            }
            log_no_route();
        });
        assert!(output.contains("Your router is buggy"), "{output}");
        assert_eq!(
            output.matches(NO_ROUTE_FOR_SEND).count(),
            1,
            "only the no-route outside the scope is an ERROR: {output}"
        );
    }
}
