//! Reconnect delays: exponential backoff with jitter, shared by every adapter.

use std::time::Duration;

/// Exponential backoff with "full jitter": each delay is drawn uniformly between zero and a
/// cap that doubles per failed attempt, up to a maximum.
///
/// The machine owns no randomness: the adapter passes a random `u64` to
/// [`next_delay`](Self::next_delay).
#[derive(Debug, Clone)]
pub struct Backoff {
    /// Cap of the first delay. Default 50 ms.
    pub initial: Duration,
    /// Largest cap. Default 5 s.
    pub max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(50), Duration::from_secs(5))
    }
}

impl Backoff {
    /// Backoff starting at `initial` and doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max, attempt: 0 }
    }

    /// The delay before the next attempt; `random` is any uniformly random number.
    pub fn next_delay(&mut self, random: u64) -> Duration {
        let cap = self.initial.saturating_mul(1u32 << self.attempt.min(20)).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        // Scale `random` into [0, cap) without modulo bias.
        let drawn = ((u128::from(random) * u128::from(nanos)) >> 64) as u64;
        // Never zero, so a flapping server is not hammered in a tight loop.
        Duration::from_nanos(drawn).max(self.initial / 10)
    }

    /// Call after a connection succeeded: the next failure starts from `initial` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failed attempts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(80));
        let caps: Vec<Duration> = (0..6).map(|_| b.next_delay(u64::MAX - 1)).collect();
        assert!(caps.windows(2).all(|w| w[0] <= w[1]), "{caps:?}");
        assert!(caps.iter().all(|d| *d < Duration::from_millis(80)));
        assert!(caps[5] > Duration::from_millis(40));
        b.reset();
        assert!(b.next_delay(u64::MAX - 1) < Duration::from_millis(10));
        assert!(b.next_delay(0) >= Duration::from_millis(1), "never zero");
    }
}
