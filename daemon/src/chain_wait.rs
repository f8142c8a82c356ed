//! Waiting for the chain node at start-up.
//!
//! xlnd is often started together with its chain node (one systemd target, one test harness), so
//! at first the node may not be listening yet, may not have written its cookie, may answer
//! "Loading block index…", or may still be catching up with the chain. None of that is a
//! mistake in xlnd's configuration, so xlnd waits and says what it is waiting for, as
//! Core Lightning and LND do. A node that cannot be reached at all for a minute is most likely a
//! wrong URL or port, and that is reported as an error; so are wrong credentials and a node on
//! another network, at once.

use std::future::Future;
use std::time::Duration;

use ln_core::ChainSourceError;
use tokio::time::Instant;

/// How long an unreachable node (or one failing calls) is retried before xlnd gives up.
pub const UNREACHABLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between attempts.
const RETRY_PAUSE: Duration = Duration::from_secs(2);
/// How often a wait is reported in the log.
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// Runs `connect` until it succeeds. A node that is starting up (`WarmingUp`) or syncing
/// (`InitialBlockDownload`) is waited for as long as it takes; an unreachable or failing one for
/// [`UNREACHABLE_TIMEOUT`]; any other error is returned at once. `name` ("bitcoind", "qtumd")
/// is for the log.
pub async fn connect_when_ready<S, F, Fut>(
    name: &str,
    mut connect: F,
) -> Result<S, ChainSourceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<S, ChainSourceError>>,
{
    let started = Instant::now();
    let mut failing_since: Option<Instant> = None;
    let mut last_report: Option<Instant> = None;
    loop {
        let error = match connect().await {
            Ok(source) => {
                if last_report.is_some() {
                    tracing::info!(waited_secs = started.elapsed().as_secs(), "{name} is ready");
                }
                return Ok(source);
            }
            Err(error) => error,
        };
        if !error.is_transient() {
            return Err(error);
        }
        let starting_or_syncing = matches!(
            error,
            ChainSourceError::WarmingUp { .. } | ChainSourceError::InitialBlockDownload { .. }
        );
        if starting_or_syncing {
            failing_since = None;
        } else if failing_since.get_or_insert_with(Instant::now).elapsed() >= UNREACHABLE_TIMEOUT {
            return Err(error);
        }
        if last_report.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
            tracing::warn!(
                waited_secs = started.elapsed().as_secs(),
                "waiting for {name}: {error}"
            );
            last_report = Some(Instant::now());
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;

    fn unreachable() -> ChainSourceError {
        ChainSourceError::Unreachable {
            url: "http://127.0.0.1:1".into(),
            reason: "connection refused".into(),
        }
    }

    fn syncing() -> ChainSourceError {
        ChainSourceError::InitialBlockDownload {
            blocks: 10,
            headers: 100,
            progress_percent: 10.0,
        }
    }

    /// Answers the given results in turn, then keeps answering the last one.
    struct Answers(Mutex<VecDeque<Result<u32, ChainSourceError>>>);

    impl Answers {
        fn new(answers: Vec<Result<u32, ChainSourceError>>) -> Self {
            Self(Mutex::new(answers.into()))
        }

        async fn next(&self) -> Result<u32, ChainSourceError> {
            let mut answers = self.0.lock().expect("test lock");
            if answers.len() > 1 {
                answers.pop_front().expect("non-empty")
            } else {
                answers.front().cloned().expect("non-empty")
            }
        }

        fn left(&self) -> usize {
            self.0.lock().expect("test lock").len()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_starting_up_then_syncing_is_waited_for() {
        let warming = ChainSourceError::WarmingUp {
            message: "Loading block index…".into(),
        };
        let mut answers = vec![Err(unreachable()), Err(warming)];
        // Syncing for far longer than an unreachable node would be retried.
        answers.extend((0..100).map(|_| Err(syncing())));
        answers.push(Ok(7));
        let answers = Answers::new(answers);
        let started = Instant::now();
        assert_eq!(connect_when_ready("qtumd", || answers.next()).await, Ok(7));
        assert!(started.elapsed() > UNREACHABLE_TIMEOUT);
        assert_eq!(answers.left(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_node_is_given_up_after_the_timeout() {
        let answers = Answers::new(vec![Err(unreachable())]);
        let started = Instant::now();
        let result = connect_when_ready("bitcoind", || answers.next()).await;
        assert_eq!(result, Err(unreachable()));
        let waited = started.elapsed();
        assert!(
            waited >= UNREACHABLE_TIMEOUT && waited < UNREACHABLE_TIMEOUT + RETRY_PAUSE * 2,
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn configuration_mistakes_are_returned_at_once() {
        let refused = ChainSourceError::AuthenticationFailed {
            url: "http://127.0.0.1:1".into(),
        };
        let answers = Answers::new(vec![Err(unreachable()), Err(refused.clone())]);
        let started = Instant::now();
        let result = connect_when_ready("bitcoind", || answers.next()).await;
        assert_eq!(result, Err(refused));
        assert_eq!(started.elapsed(), RETRY_PAUSE);
    }
}
