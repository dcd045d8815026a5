//! Geography: the lab (origin, tiered edges in three regions, emulated WAN
//! links, steering DNS) comes up and goes down without orphans; the steering
//! DNS answers the nearest healthy edge and fails over to the next region;
//! measured hit latency follows the configured round trips; tiered fill
//! reaches the origin once; `probe --json` has the documented fields.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgecache::lab::LabFile;
use edgecache::probe::{client_ip, resolve};
use support::{TempDir, bin, client};

/// Second octet of this test process's lab addresses: away from the
/// default lab's 127.0.x.x and (very likely) from other test processes.
fn net() -> u8 {
    (150 + std::process::id() % 100) as u8
}

/// Three regions with small round trips: `north` (origin, 2 edges),
/// `south` (3 edges, 60 ms from north) and `west` (1 edge, 100 ms from
/// north, 80 ms from south).
fn topology(net: u8) -> String {
    format!(
        r#"
cdn_name = "cdn.geo.test"
origin_region = "north"
subnet = "127.{net}.0.0/16"
intra_region_rtt_ms = 2

[[regions]]
name = "north"
clients = "127.{net}.1.0/24"
edges = ["n-1", "n-2"]
shield = "n-1"

[[regions]]
name = "south"
clients = "127.{net}.2.0/24"
edges = ["s-1", "s-2", "s-3"]
shield = "s-1"

[[regions]]
name = "west"
clients = "127.{net}.3.0/24"
edges = ["w-1"]

[rtt_ms]
"north/south" = 60
"north/west" = 100
"south/west" = 80
"#
    )
}

/// A running lab process, killed when dropped.
struct Lab {
    child: Child,
    dir: TempDir,
}

impl Lab {
    /// Starts `edgecache lab` with `topology` in a scratch dir, ephemeral
    /// ports and no pointer file, and waits for its `listening dns` line.
    fn start(topology: &str, extra: &[&str]) -> Lab {
        bin("edge");
        bin("origin");
        let dir = TempDir::new("geo");
        let topo = dir.write("topology.toml", topology);
        let scratch = dir.path().join("scratch");
        let mut args: Vec<String> = vec![
            "lab".into(),
            "--topology".into(),
            topo.display().to_string(),
            "--scratch".into(),
            scratch.display().to_string(),
            "--no-pointer".into(),
        ];
        for flag in ["--port", "--admin-port", "--dns-port", "--control-port"] {
            args.push(flag.into());
            args.push("0".into());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut child = Command::new(bin("edgecache"))
            .args(&args)
            // The node binaries are built above: no cargo run inside.
            .env_remove("CARGO")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn edgecache lab");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("listening dns ") => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    panic!("the lab did not come up");
                }
            }
        }
        Lab { child, dir }
    }

    fn lab_json(&self) -> PathBuf {
        self.dir.path().join("scratch").join("lab.json")
    }

    fn file(&self) -> LabFile {
        LabFile::read(&self.lab_json()).expect("lab.json")
    }

    /// Runs `edgecache <args> --lab lab.json`, answers stdout.
    fn command(&self, args: &[&str]) -> String {
        let out = Command::new(bin("edgecache"))
            .args(args)
            .arg("--lab")
            .arg(self.lab_json())
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit())
            .output()
            .expect("run edgecache");
        assert!(out.status.success(), "edgecache {args:?} failed");
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.command(&["lab", "status", "--json"])).expect("status JSON")
    }

    /// SIGTERM, then waits for the lab to exit.
    fn terminate(&mut self) {
        // SAFETY: kill(2) on our own, not yet reaped child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        wait_exit(&mut self.child, Duration::from_secs(30));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_exit(child: &mut Child, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("process {} did not exit within {within:?}", child.id());
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits until none of `pids` is alive.
fn assert_all_gone(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while pids.iter().any(|p| alive(*p)) {
        assert!(
            Instant::now() < deadline,
            "orphan processes left: {:?}",
            pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn node_pids(lab: &LabFile) -> Vec<u32> {
    lab.nodes
        .iter()
        .map(|n| n.pid)
        .filter(|p| *p != 0)
        .collect()
}

/// The edge names the steering DNS answers for a client of `region`.
async fn steered(lab: &LabFile, region: &str) -> Result<Vec<String>, String> {
    let r = lab.topology.region(region).expect("region");
    let ips = resolve(lab.dns, client_ip(r), &lab.cdn_name)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ips
        .iter()
        .map(|ip| {
            lab.edge_at((*ip).into())
                .map_or_else(|| format!("unknown {ip}"), |n| n.name.clone())
        })
        .collect())
}

/// Polls until the steering DNS answers `want` for `region`.
async fn wait_steered(lab: &LabFile, region: &str, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = steered(lab, region).await;
        if got.as_ref().is_ok_and(|g| g == want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{region}: steered to {got:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_steers_fills_measures_and_stops_cleanly() {
    let mut lab = Lab::start(&topology(net()), &[]);
    let file = lab.file();
    assert_eq!(file.nodes.len(), 7);

    // Status: every node with its region, role, addresses and state.
    let status = lab.status();
    for node in status["nodes"].as_array().expect("nodes") {
        for field in ["name", "region", "role", "http", "pid", "state", "healthy"] {
            assert!(node.get(field).is_some(), "{field} missing in {node}");
        }
        assert_eq!(node["state"], "running", "{node}");
        assert_eq!(node["healthy"], true, "{node}");
    }
    assert_eq!(status["nodes"][0]["role"], "origin");

    // Steering: each region gets its own healthy edges.
    wait_steered(&file, "north", &["n-1", "n-2"]).await;
    wait_steered(&file, "south", &["s-1", "s-2", "s-3"]).await;
    wait_steered(&file, "west", &["w-1"]).await;

    // Tiered fill: every south edge missing at once costs the origin one
    // request.
    let label = format!("tier-{}", uuid::Uuid::now_v7().simple());
    let path = format!("/_gen/2048/{label}");
    let mut requests = Vec::new();
    for edge in ["s-1", "s-2", "s-3"] {
        let addr = file.node(edge).expect("edge").http;
        for _ in 0..3 {
            let url = format!("http://{addr}{path}?ttl=300");
            let host = file.cdn_name.clone();
            requests.push(tokio::spawn(async move {
                let resp = client().get(url).header("host", host).send().await;
                let resp = resp.expect("edge answers");
                assert_eq!(resp.status(), 200);
                resp.bytes().await.expect("body").len()
            }));
        }
    }
    for r in requests {
        assert_eq!(r.await.expect("request task"), 2048);
    }
    let origin = file.node("origin").expect("origin").http;
    let stats: serde_json::Value = client()
        .get(format!("http://{origin}/_stats"))
        .send()
        .await
        .expect("origin stats")
        .json()
        .await
        .expect("stats JSON");
    assert_eq!(
        stats["by_path"][&path], 1,
        "origin requests for {path}: {stats}"
    );

    // Latency: from south, hits at south edges are faster than hits at
    // north edges by about the 58 ms round-trip difference.
    let out = lab.command(&[
        "probe",
        "--region",
        "south",
        "--all-edges",
        "--requests",
        "6",
        "--json",
    ]);
    let records: Vec<serde_json::Value> = serde_json::from_str(&out).expect("probe JSON");
    assert!(!records.is_empty());
    for r in &records {
        for field in [
            "region", "edge", "kind", "count", "p50_ms", "p90_ms", "p99_ms", "max_ms",
        ] {
            assert!(r.get(field).is_some(), "{field} missing in {r}");
        }
        assert_eq!(r["region"], "south");
    }
    let hit_p50 = |prefix: &str| {
        let hits: Vec<f64> = records
            .iter()
            .filter(|r| {
                r["kind"] == "hit" && r["edge"].as_str().is_some_and(|e| e.starts_with(prefix))
            })
            .filter_map(|r| r["p50_ms"].as_f64())
            .collect();
        assert!(!hits.is_empty(), "no hits at {prefix}*: {out}");
        hits.iter().sum::<f64>() / hits.len() as f64
    };
    let (near, far) = (hit_p50("s-"), hit_p50("n-"));
    assert!(
        far - near >= 29.0,
        "hit p50 near {near:.1} ms, far {far:.1} ms: expected about 58 ms apart"
    );
    assert!(
        records.iter().any(|r| r["kind"] == "miss"),
        "misses measured: {out}"
    );

    // Failover: with north's edges dead, north's clients go to south (60
    // ms) rather than west (100 ms), and come back after a restart.
    let killed = node_pids(&file);
    lab.command(&["lab", "kill", "n-1"]);
    lab.command(&["lab", "kill", "n-2"]);
    wait_steered(&file, "north", &["s-1", "s-2", "s-3"]).await;
    lab.command(&["lab", "restart", "n-2"]);
    wait_steered(&file, "north", &["n-2"]).await;

    // Partition and heal, as the status shows them.
    lab.command(&["lab", "partition", "south", "origin"]);
    let mode = |status: &serde_json::Value| {
        status["links"]
            .as_array()
            .expect("links")
            .iter()
            .find(|l| l["name"] == "south--origin")
            .map(|l| l["mode"].clone())
    };
    assert_eq!(mode(&lab.status()), Some("blackhole".into()));
    lab.command(&["lab", "heal", "south", "origin"]);
    assert_eq!(mode(&lab.status()), Some("up".into()));

    // Down: every node process goes with the lab.
    let mut pids = killed;
    pids.extend(node_pids(&lab.file()));
    lab.terminate();
    assert_all_gone(&pids);
}

/// A lab killed outright (SIGKILL) takes its nodes with it.
#[test]
fn killed_lab_leaves_no_orphans() {
    let net = net();
    let small = format!(
        r#"
origin_region = "solo"
subnet = "127.{net}.0.0/16"
[[regions]]
name = "solo"
clients = "127.{net}.9.0/24"
edges = ["solo-1"]
[rtt_ms]
"#
    );
    let mut lab = Lab::start(&small, &[]);
    let pids = node_pids(&lab.file());
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|p| alive(*p)));
    let _ = lab.child.kill();
    let _ = lab.child.wait();
    assert_all_gone(&pids);
}

/// `lab --check` starts everything, prints the tables and stops.
#[test]
fn check_starts_prints_and_stops() {
    let net = net();
    let small = format!(
        r#"
origin_region = "a"
subnet = "127.{net}.0.0/16"
[[regions]]
name = "a"
clients = "127.{net}.7.0/24"
edges = ["a-1", "a-2"]
shield = "a-1"
[[regions]]
name = "b"
clients = "127.{net}.8.0/24"
edges = ["b-1"]
[rtt_ms]
"a/b" = 10
"#
    );
    let dir = TempDir::new("geo-check");
    let topo = dir.write("topology.toml", &small);
    bin("edge");
    bin("origin");
    let scratch = dir.path().join("scratch");
    let out = Command::new(bin("edgecache"))
        .args(["lab", "--check", "--no-pointer", "--topology"])
        .arg(&topo)
        .arg("--scratch")
        .arg(&scratch)
        .args(["--port", "0", "--admin-port", "0", "--dns-port", "0"])
        .env_remove("CARGO")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .output()
        .expect("run lab --check");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "a-1",
        "shield",
        "b-1",
        "origin",
        "listening dns",
        "lab stopped",
    ] {
        assert!(text.contains(needle), "{needle} missing in:\n{text}");
    }
    let file = LabFile::read(&scratch.join("lab.json")).expect("lab.json");
    assert_eq!(file.links.iter().filter(|l| l.clients).count(), 2 * 3);
    assert_all_gone(&node_pids(&file));
}
