//! LDK's `Logger` routed into `tracing`, with the peer, channel and payment a record concerns as
//! structured fields (so an operator can filter one channel's history out of `xlnd.log`).

use lightning::util::logger::{Level, Logger, Record};

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

    #[test]
    fn ldk_records_arrive_in_tracing_with_channel_and_level() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .finish();
        let channel_id = ChannelId::from_bytes([7; 32]);
        tracing::subscriber::with_default(subscriber, || {
            let args = format_args!("funding confirmed");
            TracingLogger.log(Record::new(
                Level::Warn,
                None,
                Some(channel_id),
                args,
                "m",
                "f",
                1,
                None,
            ));
            let args = format_args!("gossip noise");
            TracingLogger.log(Record::new(
                Level::Gossip,
                None,
                None,
                args,
                "m",
                "f",
                2,
                None,
            ));
        });
        let output = String::from_utf8_lossy(&captured.0.lock().unwrap_or_else(|p| p.into_inner()))
            .into_owned();
        assert!(output.contains("WARN"), "{output}");
        assert!(output.contains("funding confirmed"), "{output}");
        assert!(output.contains(&channel_id.to_string()), "{output}");
        assert!(
            !output.contains("gossip noise"),
            "Gossip maps to TRACE, below DEBUG: {output}"
        );
    }
}
