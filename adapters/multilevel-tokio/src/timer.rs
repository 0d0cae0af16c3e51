//! The timer of the server's connection loops (the client's is in multilevel-proto's driver).

/// A connection loop's timer, armed lazily: a deadline that moves later (the idle timeout after
/// each input, a keepalive) leaves it as it is, to fire early and be re-armed then, so a busy
/// connection does not register a new timer with the runtime for every read.
pub(crate) struct Timer {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    armed: Option<std::time::Instant>,
}

impl Timer {
    pub(crate) fn new() -> Self {
        Self { sleep: Box::pin(tokio::time::sleep(std::time::Duration::ZERO)), armed: None }
    }

    /// Makes the timer fire at `deadline` or earlier (never later); `None` disarms it.
    pub(crate) fn arm(&mut self, deadline: Option<std::time::Instant>) {
        match (deadline, self.armed) {
            (None, _) => self.armed = None,
            (Some(deadline), Some(armed)) if armed <= deadline => {}
            (Some(deadline), _) => {
                self.sleep.as_mut().reset(tokio::time::Instant::from_std(deadline));
                self.armed = Some(deadline);
            }
        }
    }

    /// Completes when the armed time passes; never, when disarmed. It then disarms itself.
    pub(crate) async fn fired(&mut self) {
        if self.armed.is_none() {
            return std::future::pending().await;
        }
        self.sleep.as_mut().await;
        self.armed = None;
    }
}
