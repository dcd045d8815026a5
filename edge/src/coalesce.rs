//! Request coalescing (the cache lock): concurrent misses for one key make
//! one origin fetch; the others wait for its outcome.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgecache::cache_key::CacheKey;
use tokio::sync::watch;

use crate::object::CachedObject;
use crate::origin_client::OriginError;

/// What waiters learn when the fetch they waited for ends.
#[derive(Clone)]
pub enum Outcome {
    /// A response was stored; serve it. `fwd_status` is the origin's status
    /// (304 for a revalidation).
    Stored {
        /// The stored object.
        object: Arc<CachedObject>,
        /// Status the origin answered with.
        fwd_status: u16,
    },
    /// A large answer is being stored while it streams in: serve its head
    /// now and its body as it arrives (a streaming miss).
    Streaming {
        /// The object's head (status, headers, times); its body is empty.
        head: Arc<CachedObject>,
        /// The body as it grows.
        body: Arc<crate::growing::Growing>,
        /// Status the origin answered with.
        fwd_status: u16,
    },
    /// The answer may not be shared: fetch on your own.
    Uncacheable,
    /// The origin failed.
    Failed(OriginError),
}

/// Progress of one fetch, as seen by its waiters.
#[derive(Clone)]
enum Progress {
    /// No response head yet.
    Waiting,
    /// The head arrived; the body is being read.
    HeadReceived,
    /// The body streams in and can be joined (`Outcome::Streaming`).
    Streaming(Outcome),
    /// Finished.
    Done(Outcome),
}

/// The fetches in flight, by cache key.
#[derive(Default)]
pub struct Inflight {
    flights: Mutex<HashMap<CacheKey, Arc<watch::Sender<Progress>>>>,
}

/// The caller's part in a fetch.
pub enum Role {
    /// Fetch, then `finish` the guard.
    Leader(LeaderGuard),
    /// Wait on this.
    Waiter(Waiter),
}

/// Held by the one request that fetches. Dropping it without `finish`
/// releases the waiters to fetch on their own.
pub struct LeaderGuard {
    inflight: Arc<Inflight>,
    key: CacheKey,
    tx: Arc<watch::Sender<Progress>>,
    finished: bool,
}

/// Held by a request that waits for another's fetch.
pub struct Waiter {
    rx: watch::Receiver<Progress>,
}

impl Inflight {
    /// Joins the fetch for `key`, or becomes its leader.
    pub fn join(self: &Arc<Self>, key: &CacheKey) -> Role {
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = flights.get(key) {
            return Role::Waiter(Waiter { rx: tx.subscribe() });
        }
        let (tx, _rx) = watch::channel(Progress::Waiting);
        let tx = Arc::new(tx);
        flights.insert(key.clone(), tx.clone());
        Role::Leader(LeaderGuard {
            inflight: self.clone(),
            key: key.clone(),
            tx,
            finished: false,
        })
    }

    /// Number of fetches in flight.
    pub fn len(&self) -> usize {
        self.flights.lock().map(|f| f.len()).unwrap_or(0)
    }

    /// Whether no fetch is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn remove(&self, key: &CacheKey, tx: &Arc<watch::Sender<Progress>>) {
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        if flights.get(key).is_some_and(|t| Arc::ptr_eq(t, tx)) {
            flights.remove(key);
        }
    }
}

impl LeaderGuard {
    /// Tells waiters the response head has arrived (they stop counting the
    /// first-byte timeout).
    pub fn head_received(&self) {
        self.tx.send_replace(Progress::HeadReceived);
    }

    /// Lets waiters (and later arrivals) join a body that is still
    /// streaming in; the flight stays open until `finish`.
    pub fn streaming(&self, outcome: Outcome) {
        self.tx.send_replace(Progress::Streaming(outcome));
    }

    /// Publishes the outcome and leaves the flight.
    pub fn finish(mut self, outcome: Outcome) {
        self.finished = true;
        self.inflight.remove(&self.key, &self.tx);
        self.tx.send_replace(Progress::Done(outcome));
    }

    /// The outcome published so far (a streaming fill's), if any.
    pub fn current(&self) -> Option<Outcome> {
        match &*self.tx.borrow() {
            Progress::Streaming(outcome) | Progress::Done(outcome) => Some(outcome.clone()),
            _ => None,
        }
    }

    /// The key being fetched.
    pub fn key(&self) -> &CacheKey {
        &self.key
    }
}

impl Drop for LeaderGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.inflight.remove(&self.key, &self.tx);
            self.tx.send_replace(Progress::Done(Outcome::Uncacheable));
        }
    }
}

impl Waiter {
    /// Waits for the outcome. The head must arrive within `head_timeout`;
    /// after that the leader's own body timeouts bound the wait.
    pub async fn wait(mut self, head_timeout: Duration) -> Result<Outcome, OriginError> {
        let head = tokio::time::timeout(
            head_timeout,
            self.rx.wait_for(|p| !matches!(p, Progress::Waiting)),
        )
        .await;
        let head = head.map(|r| r.map(|_| ()));
        match head {
            Err(_) => {
                return Err(OriginError::new(
                    edgecache::config::FailureKind::FirstByteTimeout,
                    "coalesced fetch gave no response head in time",
                ));
            }
            // The sender went away without an outcome: fetch alone.
            Ok(Err(_)) => return Ok(Outcome::Uncacheable),
            Ok(Ok(_)) => {}
        }
        let ready = |p: &Progress| matches!(p, Progress::Done(_) | Progress::Streaming(_));
        match self.rx.wait_for(ready).await {
            Ok(progress) => match &*progress {
                Progress::Done(outcome) | Progress::Streaming(outcome) => Ok(outcome.clone()),
                _ => Ok(Outcome::Uncacheable),
            },
            Err(_) => Ok(Outcome::Uncacheable),
        }
    }
}
