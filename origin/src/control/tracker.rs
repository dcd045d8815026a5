//! Recent purges and what each edge reported for them, for the purge
//! answer and `GET /_purge/status/<id>`; and the routing of dry-run answers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use edgecache::purge::PurgeRecord;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::registry::EdgeView;

/// Purges remembered for `GET /_purge/status/<id>`.
const KEEP_PURGES: usize = 4096;

/// Sequence numbers whose per-edge affected counts are remembered.
const KEEP_ACKS: usize = 4096;

/// What is remembered of one purge.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PurgeSummary {
    pub id: Uuid,
    pub seq: u64,
    pub soft: bool,
}

#[derive(Default)]
struct Inner {
    purges: HashMap<Uuid, PurgeSummary>,
    order: VecDeque<Uuid>,
    /// seq -> edge id -> entries affected. Filled by acks, which may arrive
    /// before the purge is registered here.
    acks: BTreeMap<u64, HashMap<String, u64>>,
}

/// Recent purges and per-edge affected counts.
#[derive(Default)]
pub(crate) struct Tracker {
    inner: Mutex<Inner>,
}

impl Tracker {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers a purge just appended.
    pub fn insert(&self, record: &PurgeRecord) -> PurgeSummary {
        let summary = PurgeSummary {
            id: record.id,
            seq: record.seq,
            soft: record.soft,
        };
        let mut inner = self.lock();
        inner.purges.insert(record.id, summary);
        inner.order.push_back(record.id);
        while inner.order.len() > KEEP_PURGES {
            if let Some(old) = inner.order.pop_front() {
                inner.purges.remove(&old);
            }
        }
        summary
    }

    /// A purge by id.
    pub fn get(&self, id: &Uuid) -> Option<PurgeSummary> {
        self.lock().purges.get(id).copied()
    }

    /// `edge` applied `seq`, affecting `affected` entries.
    pub fn ack(&self, seq: u64, edge: &str, affected: u64) {
        let mut inner = self.lock();
        inner
            .acks
            .entry(seq)
            .or_default()
            .insert(edge.to_string(), affected);
        while inner.acks.len() > KEEP_ACKS {
            inner.acks.pop_first();
        }
    }

    /// The per-edge view of `purge` and whether every edge has applied it.
    pub fn view(&self, purge: &PurgeSummary, edges: &[EdgeView]) -> Value {
        let inner = self.lock();
        let acks = inner.acks.get(&purge.seq);
        let mut complete = true;
        let edges: Vec<Value> = edges
            .iter()
            .map(|e| {
                let applied = e.applied >= purge.seq;
                complete &= applied;
                let status = match (applied, e.connected) {
                    (true, _) => "applied",
                    (false, true) => "pending",
                    (false, false) => "unreachable",
                };
                let affected = acks
                    .filter(|_| applied)
                    .and_then(|a| a.get(&e.identity.id))
                    .copied();
                json!({
                    "id": e.identity.id,
                    "region": e.identity.region,
                    "address": e.identity.address,
                    "status": status,
                    "affected": affected,
                })
            })
            .collect();
        json!({
            "id": purge.id,
            "seq": purge.seq,
            "soft": purge.soft,
            "edges": edges,
            "complete": complete,
        })
    }
}

/// Routes `DryRunResult` frames to the request waiting for them.
#[derive(Default)]
pub(crate) struct DryRuns {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, mpsc::UnboundedSender<(String, u64)>>>,
}

impl DryRuns {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, mpsc::UnboundedSender<(String, u64)>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a request: its id and where answers arrive.
    pub fn open(&self) -> (u64, mpsc::UnboundedReceiver<(String, u64)>) {
        let request = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().insert(request, tx);
        (request, rx)
    }

    /// Closes a request; later answers are dropped.
    pub fn close(&self, request: u64) {
        self.lock().remove(&request);
    }

    /// An answer from `edge`.
    pub fn deliver(&self, request: u64, edge: &str, affected: u64) {
        if let Some(tx) = self.lock().get(&request) {
            let _ = tx.send((edge.to_string(), affected));
        }
    }
}
