//! Exponential reconnect backoff with ±20 % jitter, so that edges cut off
//! together do not all reconnect in the same instant.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Delays that double from `initial` up to `max`, each jittered by ±20 %.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// A backoff starting at `initial` and capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            current: initial,
        }
    }

    /// Starts over from the initial delay (after a successful session).
    pub fn reset(&mut self) {
        self.current = self.initial;
    }

    /// The next delay to wait, jittered; doubles the base for the one after.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        // A factor in [0.8, 1.2).
        let unit = (random_u64() % 10_000) as f64 / 10_000.0;
        base.mul_f64(0.8 + 0.4 * unit)
    }
}

/// A random number from the standard library's per-instance hash keys.
fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x9e37_79b9_7f4a_7c15);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut bases = Vec::new();
        for _ in 0..10 {
            let d = b.next_delay();
            bases.push(d);
        }
        assert!(bases[0] >= Duration::from_millis(80) && bases[0] < Duration::from_millis(120));
        assert!(bases[1] >= Duration::from_millis(160) && bases[1] < Duration::from_millis(240));
        assert!(bases[9] >= Duration::from_secs(4) && bases[9] < Duration::from_secs(6));
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(120));
    }
}
