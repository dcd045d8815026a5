//! What an edge is sent right after its Hello: the records it missed, or a
//! ResetCache when the log no longer holds what it needs.

use edgecache::purge::PurgeRecord;
use edgecache::wire::ControlFrame;

/// What an edge said in its Hello.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EdgeProgress {
    /// The last sequence it applied (0: none).
    pub last_applied: u64,
    /// When its cache began filling (ms since the epoch).
    pub cache_since_ms: u64,
}

/// The frames to send after Welcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// ResetCache and / or Records, in order.
    pub frames: Vec<ControlFrame>,
    /// The highest sequence these frames cover (live records above it follow).
    pub covered: u64,
    /// How far the edge counts as having applied the log before it acks
    /// anything (records skipped as older than its cache count as applied).
    pub applied: u64,
}

/// Plans the catch-up of an edge, given the log's `head` and `oldest`
/// sequence numbers read after subscribing to live records, and the
/// `backlog` read after those: every held record with `seq >
/// read_from_seq(progress, head)`.
///
/// - `last_applied > head`: the edge is ahead of the log (the log was
///   replaced): ResetCache up to `head`.
/// - `last_applied != 0` and `last_applied < oldest - 1`: records it needs
///   were compacted away: ResetCache up to `head`.
/// - `last_applied == 0`: the leading records issued before
///   `cache_since_ms` are skipped (they cannot concern its cache); if
///   compacted records may have been issued after it, ResetCache instead.
/// - otherwise every record after `last_applied`.
///
/// After a ResetCache up to `h`, backlog records above `h` follow.
pub(crate) fn plan(
    progress: EdgeProgress,
    head: u64,
    oldest: u64,
    backlog: Vec<PurgeRecord>,
) -> Plan {
    let EdgeProgress {
        last_applied,
        cache_since_ms,
    } = progress;
    if last_applied > head {
        let reason = format!(
            "the edge has applied up to {last_applied} but the purge log ends at {head} \
             (the log was replaced)"
        );
        return reset(head, &backlog, reason, 0);
    }
    if last_applied != 0 && last_applied.saturating_add(1) < oldest {
        let reason = format!(
            "the edge has applied up to {last_applied} but the purge log now starts at {oldest}"
        );
        return reset(head, &backlog, reason, last_applied);
    }
    let mut records = backlog;
    let mut applied = last_applied;
    if last_applied == 0 {
        let compacted = oldest > 1;
        let older_than_cache = |r: &PurgeRecord| r.issued_at_ms < cache_since_ms;
        // Issue times are monotonic: if the first record still held predates
        // the cache, so does everything compacted before it.
        let compacted_safe = records.first().is_some_and(older_than_cache);
        if compacted && !compacted_safe {
            let reason = format!(
                "purges up to {} were compacted and may concern a cache filled since \
                 {cache_since_ms} ms",
                oldest - 1
            );
            return reset(head, &records, reason, 0);
        }
        let skip = records.iter().take_while(|r| older_than_cache(r)).count();
        if let Some(last_skipped) = records[..skip].last() {
            applied = last_skipped.seq;
        }
        records.drain(..skip);
        // Nothing it needs is missing up to the head.
        if records.is_empty() {
            applied = applied.max(head);
        }
    }
    let covered = records.last().map_or(head, |r| r.seq.max(head));
    Plan {
        frames: records.into_iter().map(ControlFrame::Record).collect(),
        covered,
        applied,
    }
}

/// ResetCache up to `head`, then the backlog records above it.
fn reset(head: u64, backlog: &[PurgeRecord], reason: String, applied: u64) -> Plan {
    let mut frames = vec![ControlFrame::ResetCache {
        up_to_seq: head,
        reason,
    }];
    let mut covered = head;
    for record in backlog.iter().filter(|r| r.seq > head) {
        covered = record.seq;
        frames.push(ControlFrame::Record(record.clone()));
    }
    Plan {
        frames,
        covered,
        applied,
    }
}

/// The sequence to read the backlog after.
pub(crate) fn read_from_seq(progress: EdgeProgress, head: u64) -> u64 {
    progress.last_applied.min(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgecache::purge::PurgeSelector;

    fn rec(seq: u64, at: u64) -> PurgeRecord {
        PurgeRecord {
            id: uuid::Uuid::now_v7(),
            seq,
            issued_at_ms: at,
            selector: PurgeSelector::All,
            soft: false,
        }
    }

    fn seqs(plan: &Plan) -> Vec<String> {
        plan.frames
            .iter()
            .map(|f| match f {
                ControlFrame::Record(r) => r.seq.to_string(),
                ControlFrame::ResetCache { up_to_seq, .. } => format!("reset{up_to_seq}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn p(last_applied: u64, cache_since_ms: u64) -> EdgeProgress {
        EdgeProgress {
            last_applied,
            cache_since_ms,
        }
    }

    #[test]
    fn missed_records_follow_last_applied() {
        let plan = plan(p(2, 0), 4, 1, vec![rec(3, 30), rec(4, 40)]);
        assert_eq!(seqs(&plan), ["3", "4"]);
        assert_eq!((plan.covered, plan.applied), (4, 2));
        let plan = super::plan(p(4, 0), 4, 1, vec![]);
        assert!(plan.frames.is_empty());
        assert_eq!(plan.covered, 4);
    }

    #[test]
    fn resets() {
        // Compacted past what the edge applied.
        let plan = plan(p(2, 0), 9, 6, vec![rec(6, 60), rec(10, 100)]);
        assert_eq!(seqs(&plan), ["reset9", "10"]);
        assert_eq!(plan.covered, 10);
        // Just at the edge of compaction: fine.
        let plan = super::plan(p(5, 0), 9, 6, vec![rec(6, 60)]);
        assert_eq!(seqs(&plan), ["6"]);
        // Edge ahead of the log.
        let plan = super::plan(p(20, 0), 9, 1, vec![]);
        assert_eq!(seqs(&plan), ["reset9"]);
        assert_eq!(plan.applied, 0);
    }

    #[test]
    fn fresh_edges_skip_records_older_than_their_cache() {
        let backlog = vec![rec(1, 10), rec(2, 20), rec(3, 30)];
        let plan = plan(p(0, 25), 3, 1, backlog.clone());
        assert_eq!(seqs(&plan), ["3"]);
        assert_eq!(plan.applied, 2);
        let plan = super::plan(p(0, 0), 3, 1, backlog.clone());
        assert_eq!(seqs(&plan), ["1", "2", "3"]);
        let plan = super::plan(p(0, 99), 3, 1, backlog);
        assert!(plan.frames.is_empty());
        assert_eq!(plan.applied, 3);
        // Compacted records are older than the cache: no reset.
        let plan = super::plan(p(0, 25), 3, 2, vec![rec(2, 20), rec(3, 30)]);
        assert_eq!(seqs(&plan), ["3"]);
        // They may not be: reset.
        let plan = super::plan(p(0, 15), 3, 2, vec![rec(2, 20), rec(3, 30)]);
        assert_eq!(seqs(&plan), ["reset3"]);
    }
}
