//! The lab runs the purge control plane: its origin has a control listener
//! with a token the lab generated, every edge follows it, `lab.json` (and
//! `lab status --json`) name both, and `edgecache purge` reaches every
//! edge, through `--control` with the token or through the lab itself.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use edgecache::lab::LabFile;
use support::{TempDir, bin, client};

/// Second octet of this test's lab addresses: away from the default lab's
/// 127.0.x.x and from tests/geography.rs (150..249).
fn net() -> u8 {
    (40 + std::process::id() % 100) as u8
}

/// Two regions, three edges: `a` (origin, shield a-1 and a-2) and `b`
/// (b-1), 10 ms apart.
fn topology(net: u8) -> String {
    format!(
        r#"
cdn_name = "cdn.purge.test"
origin_region = "a"
subnet = "127.{net}.0.0/16"
intra_region_rtt_ms = 2

[[regions]]
name = "a"
clients = "127.{net}.1.0/24"
edges = ["a-1", "a-2"]
shield = "a-1"

[[regions]]
name = "b"
clients = "127.{net}.2.0/24"
edges = ["b-1"]

[rtt_ms]
"a/b" = 10
"#
    )
}

/// A running lab (no pointer file, ephemeral ports), killed when dropped.
struct Lab {
    child: Child,
    dir: TempDir,
}

impl Lab {
    fn start() -> Lab {
        bin("edge");
        bin("origin");
        let dir = TempDir::new("lab-purge");
        let topo = dir.write("topology.toml", topology(net()));
        let scratch = dir.path().join("scratch");
        let mut child = Command::new(bin("edgecache"))
            .args(["lab", "--no-pointer", "--topology"])
            .arg(&topo)
            .arg("--scratch")
            .arg(&scratch)
            .args(["--port", "0", "--admin-port", "0", "--dns-port", "0"])
            .args(["--control-port", "0", "--purge-port", "0"])
            .env_remove("CARGO")
            .env("RUST_LOG", "warn")
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
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("listening dns ") => break,
                Ok(line) => seen.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("the lab did not come up:\n{}", seen.join("\n"));
                }
            }
        }
        let text = seen.join("\n");
        assert!(
            text.contains("edgecache purge --url http://cdn.purge.test/"),
            "the commands to try show a purge:\n{text}"
        );
        Lab { child, dir }
    }

    fn lab_json(&self) -> PathBuf {
        self.dir.path().join("scratch").join("lab.json")
    }

    /// Runs `edgecache args...` with `envs` and no purge settings inherited.
    fn run(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut command = Command::new(bin("edgecache"));
        command
            .args(args)
            .env_remove("EDGECACHE_CONTROL")
            .env_remove("EDGECACHE_PURGE_TOKEN")
            .env_remove("EDGECACHE_LAB")
            .env("RUST_LOG", "warn");
        for (k, v) in envs {
            command.env(k, v);
        }
        command.output().expect("run edgecache")
    }

    /// SIGTERM, then waits (bounded) for the lab to exit.
    fn terminate(&mut self) {
        // SAFETY: kill(2) on our own, not yet reaped child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the lab did not stop within 30 s");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the edge itself (the last `Cache-Status` entry) answered from
/// its cache.
async fn edge_hit(lab: &LabFile, edge: &str, path: &str) -> bool {
    let addr = lab.node(edge).expect("edge").http;
    let resp = client()
        .get(format!("http://{addr}{path}"))
        .header("host", &lab.cdn_name)
        .send()
        .await
        .expect("the edge answers");
    assert_eq!(resp.status(), 200, "{edge} {path}");
    let cs: Vec<String> = resp
        .headers()
        .get_all("cache-status")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    let joined = cs.join(", ");
    let last = joined.rsplit(',').next().unwrap_or("");
    let _ = resp.bytes().await;
    last.split(';').skip(1).any(|p| p.trim() == "hit")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn as_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_purges_reach_every_edge() {
    let mut lab = Lab::start();
    let file = LabFile::read(&lab.lab_json()).expect("lab.json");
    let control = file.purge_control.expect("purge_control in lab.json");
    let token = file.purge_token.clone().expect("purge_token in lab.json");
    assert!(uuid::Uuid::parse_str(&token).is_ok(), "a UUID token");
    let edges = ["a-1", "a-2", "b-1"];

    // `lab status --json` shows the same control plane.
    let lab_json = lab.lab_json();
    let status = lab.run(
        &["lab", "status", "--json", "--lab", as_str(&lab_json)],
        &[],
    );
    assert!(status.status.success(), "{}", text(&status));
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(status["purge_control"], control.to_string());
    assert_eq!(status["purge_token"], token);

    // Cached on every edge.
    let path = format!(
        "/_gen/512/lab-purge-{}?ttl=600",
        uuid::Uuid::now_v7().simple()
    );
    for edge in edges {
        edge_hit(&file, edge, &path).await;
        assert!(edge_hit(&file, edge, &path).await, "{edge} caches {path}");
    }

    // Purged through --control, with the lab's token from the environment.
    let url = format!("http://{}{path}", file.cdn_name);
    let control_arg = control.to_string();
    let out = lab.run(
        &[
            "purge",
            "--control",
            &control_arg,
            "--url",
            &url,
            "--wait",
            "10000",
        ],
        &[("EDGECACHE_PURGE_TOKEN", &token)],
    );
    let shown = text(&out);
    assert!(out.status.success(), "purge failed:\n{shown}");
    for edge in edges {
        let line = shown
            .lines()
            .find(|l| l.starts_with(edge))
            .unwrap_or_else(|| panic!("{edge} missing:\n{shown}"));
        assert!(line.contains("applied"), "{line}");
    }
    assert!(shown.contains("3/3 edges applied"), "{shown}");
    assert!(
        !edge_hit(&file, "a-2", &path).await,
        "a miss after the purge"
    );
    assert!(
        !edge_hit(&file, "b-1", &path).await,
        "a miss after the purge"
    );

    // Without --control: the lab's control plane and token.
    assert!(edge_hit(&file, "b-1", &path).await, "cached again");
    let out = lab.run(
        &[
            "purge",
            "--lab",
            as_str(&lab_json),
            "--url",
            &url,
            "--wait",
            "10000",
        ],
        &[],
    );
    assert!(out.status.success(), "purge via the lab:\n{}", text(&out));
    assert!(
        !edge_hit(&file, "b-1", &path).await,
        "a miss after the purge"
    );

    // A wrong token in the environment overrides the lab's, and is refused.
    let out = lab.run(
        &["purge", "--lab", as_str(&lab_json), "--url", &url],
        &[("EDGECACHE_PURGE_TOKEN", "wrong")],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("401"), "{}", text(&out));

    // No flag and no lab: a clear error.
    let missing = lab.dir.path().join("no-lab.json");
    let out = lab.run(&["purge", "--lab", as_str(&missing), "--url", &url], &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no control address"), "{}", text(&out));

    lab.terminate();
}
