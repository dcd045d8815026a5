//! The built-in purge log file: replay, torn tails, middle damage and
//! compaction, through the library.

mod support;

use edgecache::purge::{FileLog, FileLogConfig, PurgeLog, PurgeSelector};
use support::TempDir;

async fn seqs(log: &FileLog, after: u64) -> Vec<u64> {
    log.read_from(after)
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect()
}

async fn append_n(log: &FileLog, n: usize) {
    for i in 0..n {
        log.append(PurgeSelector::Tags(vec![format!("t{i}")]), i % 2 == 0)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn file_log_replays_and_continues_the_sequence() {
    let dir = TempDir::new("purgelog-replay");
    let path = dir.path().join("purge.log");
    let log = FileLog::open(&path).unwrap();
    assert_eq!(log.head_seq().await.unwrap(), 0);
    assert_eq!(log.oldest_seq().await.unwrap(), 1);
    let mut live = log.subscribe();
    let first = log
        .append(PurgeSelector::Urls(vec!["http://x/a".into()]), true)
        .await
        .unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(live.recv().await.unwrap(), first);
    append_n(&log, 2).await;
    drop(log);

    let log = FileLog::open(&path).unwrap();
    assert_eq!(log.head_seq().await.unwrap(), 3);
    assert_eq!(seqs(&log, 0).await, [1, 2, 3]);
    assert_eq!(seqs(&log, 2).await, [3]);
    let replayed = log.read_from(0).await.unwrap();
    assert_eq!(replayed[0], first);
    let next = log.append(PurgeSelector::All, false).await.unwrap();
    assert_eq!(next.seq, 4);
    assert!(next.issued_at_ms >= first.issued_at_ms);
    assert_ne!(next.id, first.id);
}

#[tokio::test]
async fn file_log_cuts_torn_tails_and_refuses_middle_damage() {
    let dir = TempDir::new("purgelog-torn");
    let path = dir.path().join("purge.log");
    let log = FileLog::open(&path).unwrap();
    append_n(&log, 3).await;
    drop(log);
    let full = std::fs::metadata(&path).unwrap().len();

    // Cut in the middle of the last record.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(full - 5).unwrap();
    drop(file);
    let log = FileLog::open(&path).unwrap();
    assert_eq!(seqs(&log, 0).await, [1, 2]);
    let good = std::fs::metadata(&path).unwrap().len();
    assert!(good < full - 5, "the torn record was cut from the file");
    assert_eq!(log.append(PurgeSelector::All, false).await.unwrap().seq, 3);
    drop(log);

    // A flipped checksum byte on the last record.
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x5a;
    std::fs::write(&path, &bytes).unwrap();
    let log = FileLog::open(&path).unwrap();
    assert_eq!(seqs(&log, 0).await, [1, 2]);
    assert_eq!(log.append(PurgeSelector::All, false).await.unwrap().seq, 3);
    append_n(&log, 1).await;
    drop(log);
    assert_eq!(seqs(&FileLog::open(&path).unwrap(), 0).await, [1, 2, 3, 4]);

    // Damage followed by good records is not a torn tail.
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let err = FileLog::open(&path).unwrap_err().to_string();
    assert!(err.contains("offset"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing was cut");
}

#[tokio::test]
async fn file_log_compaction_keeps_numbering() {
    let dir = TempDir::new("purgelog-compact");
    let path = dir.path().join("purge.log");
    let log = FileLog::open(&path).unwrap();
    append_n(&log, 5).await;
    assert_eq!(log.compact(3).unwrap(), 3);
    assert_eq!(log.oldest_seq().await.unwrap(), 4);
    assert_eq!(log.head_seq().await.unwrap(), 5);
    assert_eq!(seqs(&log, 0).await, [4, 5]);
    assert_eq!(log.append(PurgeSelector::All, false).await.unwrap().seq, 6);
    drop(log);

    let log = FileLog::open(&path).unwrap();
    assert_eq!(log.oldest_seq().await.unwrap(), 4);
    assert_eq!(seqs(&log, 0).await, [4, 5, 6]);
    // Compacting everything still keeps the head.
    log.compact(u64::MAX).unwrap();
    assert_eq!(log.oldest_seq().await.unwrap(), 7);
    drop(log);
    let log = FileLog::open(&path).unwrap();
    assert_eq!(log.head_seq().await.unwrap(), 6);
    assert!(seqs(&log, 0).await.is_empty());
    assert_eq!(log.append(PurgeSelector::All, false).await.unwrap().seq, 7);
    drop(log);

    // The automatic policy bounds the log as it grows.
    let config = FileLogConfig {
        max_records: 2,
        ..FileLogConfig::default()
    };
    let log = FileLog::open_with(&path, config.clone()).unwrap();
    append_n(&log, 10).await;
    assert_eq!(log.head_seq().await.unwrap(), 17);
    assert_eq!(seqs(&log, 0).await, [16, 17]);
    assert_eq!(log.oldest_seq().await.unwrap(), 16);
    drop(log);
    let log = FileLog::open_with(&path, config).unwrap();
    assert_eq!(seqs(&log, 0).await, [16, 17]);
}
