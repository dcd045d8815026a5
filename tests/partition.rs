//! Partitions: a table of origin faults × route policies × cache entry states,
//! run against real processes (origin, edge and, where a link is cut, the WAN
//! emulator).
//!
//! Each fault is its own test with ONE origin and ONE edge (plus a WAN link or
//! a fake DNS server where the fault needs one). Routes are picked by Host:
//!
//! | host               | policy        | max_stale |
//! |--------------------|---------------|-----------|
//! | `stale.test`       | `serve-stale` | 1h        |
//! | `short.test`       | `serve-stale` | 300ms     |
//! | `error.test`       | `error`       | default   |
//! | `error-short.test` | `error`       | 300ms     |
//!
//! Every entry is primed first (fresh: `ttl=600`; stale: `ttl=1`;
//! must-revalidate: `max-age=1, must-revalidate`), then one sleep makes the
//! `ttl=1` entries stale (by more than 300ms, less than 1h), the fault is
//! applied and every case of [`TABLE`] runs at once. Then the fault is healed
//! and every case is asked again: the answer must be the complete body, which
//! shows no partial body was stored while the origin failed.
//!
//! Generated content is requested with `etag=0&lm=0`: without validators the
//! refetch of a stale entry is a full GET, so a fault that cuts bodies reaches
//! it (a conditional request would be answered by a body-less 304).
//!
//! DNS: the edge's origin is `http://origin.test:PORT` and its `[dns]`
//! server is a tiny DNS responder inside this test (answering A queries with
//! the origin's loopback address, TTL 0). That lets the entries be primed
//! through the name; the fault stops the responder, so nothing listens on
//! the configured UDP port and lookups fail; healing starts it again on the
//! same port. The edge keeps no idle origin connections there
//! (`pool_max_idle = 0`) so every fetch resolves the name.

mod support;

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use edgecache::wan::{AdminClient, Mode};
use support::*;

/// Size of every generated body; the WAN reset fault cuts inside it.
const BODY_LEN: usize = 4000;
/// Bytes a `reset-mid-stream` link lets through: past the response head,
/// well before the end of the body.
const RESET_AFTER_BYTES: u64 = 1000;
/// How long after priming the faults are applied: the `ttl=1` entries are
/// then stale by more than `short.test`'s 300ms and far less than 1h.
const STALE_WAIT: Duration = Duration::from_millis(2200);
/// Longest error body accepted as "a short text".
const MAX_ERROR_BODY: usize = 512;
/// Bound on a single request of this suite.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// A marker of generated content: never in an error body.
const CONTENT_MARKER: &str = "edgecache-origin";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    ServeStale,
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cached {
    /// Stored with `max-age=600`: fresh throughout.
    Fresh,
    /// Stored with `max-age=1`, stale by a second or more: within the 1h
    /// `max_stale` of `stale.test`.
    StaleWithin,
    /// Stored with `max-age=1` on a route whose `max_stale` is 300ms.
    StaleBeyond,
    /// Stored with `max-age=1, must-revalidate`, now stale.
    MustRevalidate,
    /// No entry: never requested before the fault.
    NoEntry,
}

/// What the edge must answer while the fault lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// 200 from the cache, as a plain fresh hit.
    Hit,
    /// 200 with the stored body, marked `hit; fwd=stale; ttl=-N; detail=...`.
    ServeStale,
    /// The fault's 502 or 504, a short text body, never the stored one.
    Error,
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
struct Case {
    policy: Policy,
    entry: Cached,
    outcome: Outcome,
}

/// Policy × entry state → outcome; the same for every fault, which only
/// decides the error's status and detail (see [`Fault::shape`]).
const TABLE: [Case; 10] = [
    case(Policy::ServeStale, Cached::Fresh, Outcome::Hit),
    case(Policy::ServeStale, Cached::StaleWithin, Outcome::ServeStale),
    case(Policy::ServeStale, Cached::StaleBeyond, Outcome::Error),
    case(Policy::ServeStale, Cached::MustRevalidate, Outcome::Error),
    case(Policy::ServeStale, Cached::NoEntry, Outcome::Error),
    case(Policy::Error, Cached::Fresh, Outcome::Hit),
    case(Policy::Error, Cached::StaleWithin, Outcome::Error),
    case(Policy::Error, Cached::StaleBeyond, Outcome::Error),
    case(Policy::Error, Cached::MustRevalidate, Outcome::Error),
    case(Policy::Error, Cached::NoEntry, Outcome::Error),
];

const fn case(policy: Policy, entry: Cached, outcome: Outcome) -> Case {
    Case {
        policy,
        entry,
        outcome,
    }
}

impl Case {
    fn host(&self) -> &'static str {
        match (self.policy, self.entry) {
            (Policy::ServeStale, Cached::StaleBeyond) => "short.test",
            (Policy::ServeStale, _) => "stale.test",
            (Policy::Error, Cached::StaleBeyond) => "error-short.test",
            (Policy::Error, _) => "error.test",
        }
    }

    /// The request target; the label names host and entry so every case has
    /// its own content.
    fn path(&self) -> String {
        let (name, query) = match self.entry {
            Cached::Fresh => ("fresh", "ttl=600"),
            Cached::StaleWithin => ("stale", "ttl=1"),
            Cached::StaleBeyond => ("beyond", "ttl=1"),
            Cached::MustRevalidate => ("must-revalidate", "cc=max-age%3D1%2C%20must-revalidate"),
            Cached::NoEntry => ("none", "ttl=600"),
        };
        format!(
            "/_gen/{BODY_LEN}/{}/{name}?{query}&etag=0&lm=0",
            self.host()
        )
    }

    fn primed(&self) -> bool {
        self.entry != Cached::NoEntry
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} × {:?} ({})", self.policy, self.entry, self.host())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// The origin process is killed (SIGKILL).
    OriginKilled,
    /// The WAN link between edge and origin is blackholed.
    Blackhole,
    /// The WAN link resets every connection.
    Refuse,
    /// The origin answers every request with 503.
    Status503,
    /// The origin declares the full length but aborts the body after 100 bytes.
    TruncatedBody,
    /// The WAN link resets connections after 1000 bytes of response.
    ResetMidStream,
    /// The origin waits 3s before its response head (first-byte timeout 1s).
    Slow,
    /// The origin's host name does not resolve (its DNS server is gone).
    Dns,
}

/// The error answer a fault must produce when no stored copy may serve.
struct ErrorShape {
    status: u16,
    detail: &'static str,
    fwd_status: Option<u16>,
}

impl Fault {
    fn shape(self) -> ErrorShape {
        let unreachable = ErrorShape {
            status: 504,
            detail: "origin-unreachable",
            fwd_status: None,
        };
        match self {
            Fault::OriginKilled | Fault::Blackhole | Fault::Refuse | Fault::Slow | Fault::Dns => {
                unreachable
            }
            Fault::Status503 => ErrorShape {
                status: 502,
                detail: "bad-status",
                fwd_status: Some(503),
            },
            Fault::TruncatedBody | Fault::ResetMidStream => ErrorShape {
                status: 502,
                detail: "truncated-body",
                fwd_status: None,
            },
        }
    }

    fn uses_wan(self) -> bool {
        matches!(
            self,
            Fault::Blackhole | Fault::Refuse | Fault::ResetMidStream
        )
    }
}

#[path = "partition/fake_dns.rs"]
mod fake_dns;
use fake_dns::FakeDns;

/// The processes (and fake DNS) one fault test runs against.
struct Lab {
    origin: Proc,
    wan: Option<Proc>,
    dns: Option<FakeDns>,
    edge: Proc,
    _config: TempDir,
}

const LINK: &str = "origin";

/// The edge config: short timeouts, health never marking the origin DOWN
/// (this suite is about single requests), and the four routes.
fn edge_toml(origin: &str, origin_client_extra: &str, dns: &str) -> String {
    format!(
        r#"origin = "{origin}"

[origin_client]
connect_timeout = "1s"
first_byte_timeout = "1s"
body_timeout = "1s"
{origin_client_extra}

[health]
failure_threshold = 1000

{dns}

[[routes]]
host = "stale.test"
on_origin_failure = "serve-stale"
max_stale = "1h"

[[routes]]
host = "short.test"
on_origin_failure = "serve-stale"
max_stale = "300ms"

[[routes]]
host = "error.test"
on_origin_failure = "error"

[[routes]]
host = "error-short.test"
on_origin_failure = "error"
max_stale = "300ms"
"#
    )
}

impl Lab {
    async fn start(fault: Fault) -> Lab {
        let origin = spawn_origin(None, &[]);
        let origin_addr = origin.addr("http");
        let mut wan = None;
        let mut dns = None;
        let toml = if fault.uses_wan() {
            let w = spawn_wan(LINK, origin_addr);
            let toml = edge_toml(&format!("http://{}", w.addr(LINK)), "", "");
            wan = Some(w);
            toml
        } else if fault == Fault::Dns {
            let origin_ip = match origin_addr.ip() {
                std::net::IpAddr::V4(ip) => ip,
                std::net::IpAddr::V6(_) => panic!("origin on IPv6"),
            };
            let server = FakeDns::start(SocketAddr::from((next_ip(), 0)), origin_ip).await;
            let toml = edge_toml(
                &format!("http://origin.test:{}", origin_addr.port()),
                "pool_max_idle = 0",
                &format!(
                    "[dns]\nservers = [\"{}\"]\ntimeout = \"300ms\"",
                    server.addr
                ),
            );
            dns = Some(server);
            toml
        } else {
            edge_toml(&origin.url("http"), "", "")
        };
        let (edge, config) = spawn_edge_config(&toml);
        Lab {
            origin,
            wan,
            dns,
            edge,
            _config: config,
        }
    }

    fn wan_admin(&self) -> AdminClient {
        AdminClient::new(self.wan.as_ref().expect("WAN emulator").addr("admin"))
    }

    async fn set_link(&self, mode: Mode) {
        self.wan_admin()
            .set_mode(LINK, mode)
            .await
            .unwrap_or_else(|e| panic!("set link mode {mode}: {e}"));
    }

    async fn origin_fault(&self, json: &'static str) {
        let resp = client()
            .put(format!("{}/_fault", self.origin.url("http")))
            .header("content-type", "application/json")
            .body(json)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .expect("PUT /_fault");
        assert!(
            resp.status().is_success(),
            "PUT /_fault {json}: {}",
            resp.status()
        );
    }

    async fn apply(&mut self, fault: Fault) {
        match fault {
            Fault::OriginKilled => self.origin.kill(),
            Fault::Blackhole => self.set_link(Mode::Blackhole).await,
            Fault::Refuse => self.set_link(Mode::Refuse).await,
            Fault::ResetMidStream => {
                self.set_link(Mode::ResetMidStream {
                    after_bytes: RESET_AFTER_BYTES,
                })
                .await
            }
            Fault::Status503 => self.origin_fault(r#"{"status":503}"#).await,
            Fault::TruncatedBody => self.origin_fault(r#"{"truncate":100}"#).await,
            Fault::Slow => self.origin_fault(r#"{"delay_ms":3000}"#).await,
            Fault::Dns => self.dns.as_mut().expect("fake DNS").stop().await,
        }
    }

    async fn heal(&mut self, fault: Fault) {
        match fault {
            Fault::OriginKilled => self.origin = spawn_origin_at(self.origin.addr("http")),
            Fault::Blackhole | Fault::Refuse | Fault::ResetMidStream => {
                self.set_link(Mode::Up).await
            }
            Fault::Status503 | Fault::TruncatedBody | Fault::Slow => self.origin_fault("{}").await,
            Fault::Dns => self.dns.as_mut().expect("fake DNS").restart().await,
        }
    }

    /// GET through the edge with the case's Host.
    async fn get(&self, case: &Case) -> Result<Answer, String> {
        let resp = client()
            .get(format!("{}{}", self.edge.url("http"), case.path()))
            .header("host", case.host())
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let cache_status = header("cache-status").unwrap_or_default();
        let content_type = header("content-type").unwrap_or_default();
        let retry_after = header("retry-after");
        let body = resp.bytes().await.map_err(|e| {
            format!("status {status}, cache-status {cache_status:?}: body failed: {e}")
        })?;
        Ok(Answer {
            status,
            cache_status,
            content_type,
            retry_after,
            body,
        })
    }

    /// The complete content, straight from the (healed) origin.
    async fn origin_body(&self, case: &Case) -> Bytes {
        let resp = client()
            .get(format!("{}{}", self.origin.url("http"), case.path()))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .expect("GET from origin");
        assert_eq!(resp.status(), 200, "origin {}", case.path());
        resp.bytes().await.expect("origin body")
    }
}

#[path = "partition/judge.rs"]
mod judge;
use judge::{Answer, has_param, judge};

/// Runs the whole table against one fault, then heals it and checks that
/// every case gets its complete body; panics listing every mismatch.
async fn run_fault(fault: Fault) {
    let mut lab = Lab::start(fault).await;

    // Prime every entry that the table expects stored.
    let mut stored: HashMap<String, Bytes> = HashMap::new();
    for case in TABLE.iter().filter(|c| c.primed()) {
        let got = lab
            .get(case)
            .await
            .unwrap_or_else(|e| panic!("[{fault:?}] priming {case}: {e}"));
        assert!(
            got.status == 200
                && got.body.len() == BODY_LEN
                && has_param(&got.cache_status, "stored"),
            "[{fault:?}] priming {case}: {got}"
        );
        stored.insert(case.path(), got.body);
    }
    tokio::time::sleep(STALE_WAIT).await;

    lab.apply(fault).await;
    let answers = futures_util::future::join_all(TABLE.iter().map(|case| lab.get(case))).await;
    let mut mismatches = Vec::new();
    for (case, answer) in TABLE.iter().zip(answers) {
        let stored = stored.get(&case.path());
        let wrong = match &answer {
            Ok(got) => judge(fault, case, stored, got),
            Err(e) => vec![e.clone()],
        };
        if !wrong.is_empty() {
            let got = answer
                .as_ref()
                .map_or_else(Clone::clone, ToString::to_string);
            mismatches.push(format!(
                "during fault, {case}, expected {:?}: {}\n      got {got}",
                case.outcome,
                wrong.join("; ")
            ));
        }
    }

    // Healed: every case gets its complete body; what was never stored is
    // still a miss (a partial body stored during the fault would be a hit).
    lab.heal(fault).await;
    for case in &TABLE {
        let full = lab.origin_body(case).await;
        let answer = lab.get(case).await;
        let mut wrong = Vec::new();
        match &answer {
            Ok(got) => {
                if got.status != 200 || got.body != full {
                    wrong.push(format!(
                        "should be 200 with the complete {} bytes",
                        full.len()
                    ));
                }
                if !case.primed() && !has_param(&got.cache_status, "fwd=uri-miss") {
                    wrong.push("should be a miss (nothing stored during the fault)".into());
                }
            }
            Err(e) => wrong.push(e.clone()),
        }
        if !wrong.is_empty() {
            let got = answer
                .as_ref()
                .map_or_else(Clone::clone, ToString::to_string);
            mismatches.push(format!(
                "after healing, {case}: {}\n      got {got}",
                wrong.join("; ")
            ));
        }
    }

    assert!(
        mismatches.is_empty(),
        "[{fault:?}] {} mismatch(es):\n  - {}",
        mismatches.len(),
        mismatches.join("\n  - ")
    );
}

#[tokio::test]
async fn origin_killed() {
    run_fault(Fault::OriginKilled).await;
}

#[tokio::test]
async fn link_blackholed() {
    run_fault(Fault::Blackhole).await;
}

#[tokio::test]
async fn link_refusing() {
    run_fault(Fault::Refuse).await;
}

#[tokio::test]
async fn origin_answers_503() {
    run_fault(Fault::Status503).await;
}

#[tokio::test]
async fn origin_truncates_body() {
    run_fault(Fault::TruncatedBody).await;
}

#[tokio::test]
async fn link_resets_mid_stream() {
    run_fault(Fault::ResetMidStream).await;
}

#[tokio::test]
async fn origin_slower_than_first_byte_timeout() {
    run_fault(Fault::Slow).await;
}

// Multi-threaded: the fake DNS server must answer while the test thread
// blocks in `Proc::start`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_name_does_not_resolve() {
    run_fault(Fault::Dns).await;
}

/// Origin killed: a serve-stale route answers from the stale copy; the
/// origin restarts on the same address: the next request fetches again.
#[tokio::test]
async fn recovery_after_origin_restart() {
    let mut lab = Lab::start(Fault::OriginKilled).await;
    let row = case(Policy::ServeStale, Cached::StaleWithin, Outcome::ServeStale);
    let primed = lab.get(&row).await.expect("prime");
    assert_eq!(primed.status, 200, "prime: {primed}");
    assert!(has_param(&primed.cache_status, "stored"), "prime: {primed}");
    tokio::time::sleep(STALE_WAIT).await;

    lab.apply(Fault::OriginKilled).await;
    let stale = lab
        .get(&row)
        .await
        .expect("request while the origin is dead");
    let wrong = judge(Fault::OriginKilled, &row, Some(&primed.body), &stale);
    assert!(
        wrong.is_empty(),
        "while dead: {}: {stale}",
        wrong.join("; ")
    );

    lab.heal(Fault::OriginKilled).await;
    let fresh = lab.get(&row).await.expect("request after the restart");
    let cs = &fresh.cache_status;
    assert_eq!(fresh.status, 200, "after restart: {fresh}");
    assert!(
        has_param(cs, "fwd=stale")
            && (has_param(cs, "fwd-status=200") || has_param(cs, "fwd-status=304"))
            && !cs.contains("detail="),
        "after restart the edge fetches from the origin again: {fresh}"
    );
    assert_eq!(fresh.body, primed.body, "after restart: {fresh}");
    let again = lab.get(&row).await.expect("request after the refetch");
    assert!(
        again.cache_status.starts_with("edgecache; hit; ttl="),
        "the refetched copy is fresh again: {again}"
    );
}
