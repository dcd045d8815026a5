//! Edge membership: who is (or was) connected to the control listener, from
//! where, and how far each edge has applied the purge log.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use edgecache::purge::PurgeSelector;
use tokio::sync::{Notify, mpsc, watch};

/// Commands the HTTP API sends to an edge's session.
#[derive(Debug)]
pub(crate) enum SessionCmd {
    /// Ask the edge how many entries `selector` would affect.
    DryRun {
        /// Correlation id.
        request: u64,
        /// What would be purged.
        selector: PurgeSelector,
    },
}

/// Who an edge says it is, from its Hello.
#[derive(Debug, Clone)]
pub(crate) struct EdgeIdentity {
    pub id: String,
    pub region: String,
    pub address: String,
}

/// A point-in-time view of one edge.
#[derive(Debug, Clone)]
pub(crate) struct EdgeView {
    pub identity: EdgeIdentity,
    pub connected: bool,
    pub last_heard: Instant,
    pub applied: u64,
}

struct Entry {
    identity: EdgeIdentity,
    connected: bool,
    last_heard: Instant,
    applied: u64,
    /// The session that owns this entry; updates from older ones are ignored.
    session: u64,
    kick: Arc<Notify>,
    cmds: mpsc::Sender<SessionCmd>,
}

/// What a session gets when it joins.
pub(crate) struct Membership {
    pub session: u64,
    /// Notified when a newer session for the same edge id takes over.
    pub kick: Arc<Notify>,
    pub cmds: mpsc::Receiver<SessionCmd>,
}

/// Every edge ever seen since the origin started.
pub(crate) struct Registry {
    edges: Mutex<BTreeMap<String, Entry>>,
    next_session: AtomicU64,
    /// Bumped on every change of membership or progress.
    progress: watch::Sender<u64>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry {
            edges: Mutex::new(BTreeMap::new()),
            next_session: AtomicU64::new(1),
            progress: watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.edges.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.progress.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes whenever an edge joins, leaves or applies.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.progress.subscribe()
    }

    /// Registers a new session for `identity`, taking over (and kicking) any
    /// older session of the same edge id.
    pub fn join(&self, identity: EdgeIdentity, applied: u64) -> Membership {
        let session = self.next_session.fetch_add(1, Ordering::Relaxed);
        let kick = Arc::new(Notify::new());
        let (cmds_tx, cmds_rx) = mpsc::channel(64);
        let entry = Entry {
            identity: identity.clone(),
            connected: true,
            last_heard: Instant::now(),
            applied,
            session,
            kick: Arc::clone(&kick),
            cmds: cmds_tx,
        };
        if let Some(old) = self.lock().insert(identity.id.clone(), entry) {
            if old.connected {
                old.kick.notify_one();
            }
        }
        self.bump();
        Membership {
            session,
            kick,
            cmds: cmds_rx,
        }
    }

    /// Runs `f` on the entry if `session` still owns it.
    fn with_entry(&self, id: &str, session: u64, f: impl FnOnce(&mut Entry)) -> bool {
        let mut edges = self.lock();
        match edges.get_mut(id) {
            Some(entry) if entry.session == session => {
                f(entry);
                true
            }
            _ => false,
        }
    }

    /// The session ended: the edge is unreachable until it reconnects.
    pub fn leave(&self, id: &str, session: u64) {
        if self.with_entry(id, session, |e| e.connected = false) {
            self.bump();
        }
    }

    /// A frame arrived from the edge.
    pub fn heard(&self, id: &str, session: u64) {
        self.with_entry(id, session, |e| e.last_heard = Instant::now());
    }

    /// The edge has applied everything up to `seq`.
    pub fn applied(&self, id: &str, session: u64, seq: u64) {
        let mut changed = false;
        self.with_entry(id, session, |e| {
            if seq > e.applied {
                e.applied = seq;
                changed = true;
            }
        });
        if changed {
            self.bump();
        }
    }

    /// Every known edge, by id.
    pub fn snapshot(&self) -> Vec<EdgeView> {
        self.lock()
            .values()
            .map(|e| EdgeView {
                identity: e.identity.clone(),
                connected: e.connected,
                last_heard: e.last_heard,
                applied: e.applied,
            })
            .collect()
    }

    /// Whether every connected edge has applied `seq`.
    pub fn connected_applied(&self, seq: u64) -> bool {
        self.lock()
            .values()
            .all(|e| !e.connected || e.applied >= seq)
    }

    /// Connected edges with their command channels.
    pub fn connected(&self) -> Vec<(EdgeIdentity, mpsc::Sender<SessionCmd>)> {
        self.lock()
            .values()
            .filter(|e| e.connected)
            .map(|e| (e.identity.clone(), e.cmds.clone()))
            .collect()
    }

    /// How many edges are connected.
    pub fn connected_count(&self) -> usize {
        self.lock().values().filter(|e| e.connected).count()
    }
}
