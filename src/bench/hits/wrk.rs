//! Driving a target with wrk: the Lua scripts, the run, and its figures.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

/// A `done` callback printing wrk's exact figures on one line.
const DONE: &str = r#"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "edgecache-bench: requests=%.0f duration_us=%.0f bytes=%.0f connect=%.0f read=%.0f write=%.0f status=%.0f timeout=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f mean_us=%.1f\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, latency.mean))
end
"#;

/// A script for one URL: only the `done` report.
pub fn single_script() -> String {
    DONE.to_string()
}

/// The fields a desktop browser sends with a navigation, less Cookie
/// (Varnish's built-in policy passes requests that carry one).
const BROWSER_FIELDS: [(&str, &str); 10] = [
    (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    ),
    (
        "Accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    ("Accept-Language", "en-US,en;q=0.5"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("Referer", "https://www.example.com/"),
    ("Sec-Fetch-Dest", "document"),
    ("Sec-Fetch-Mode", "navigate"),
    ("Sec-Fetch-Site", "same-origin"),
    ("Upgrade-Insecure-Requests", "1"),
    ("Priority", "u=0, i"),
];

/// A script for one URL requested with a browser's fields: what a request
/// from a real client costs to parse and read, besides wrk's bare Host.
pub fn browser_script() -> String {
    let mut script = String::new();
    for (name, value) in BROWSER_FIELDS {
        script.push_str(&format!("wrk.headers[\"{name}\"] = \"{value}\"\n"));
    }
    script.push_str(DONE);
    script
}

/// A script that sends GETs for random paths read from `paths_file` (one a
/// line), the requests formatted once per thread.
pub fn many_keys_script(paths_file: &Path) -> anyhow::Result<String> {
    let file = paths_file.display().to_string();
    if file.contains("]]") || file.contains('\n') {
        bail!("unusable path for a Lua long string: {file}");
    }
    Ok(format!(
        r#"local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  math.randomseed(os.time() + (id or 0) * 7919)
  reqs = {{}}
  for line in io.lines([[{file}]]) do
    reqs[#reqs + 1] = wrk.format("GET", line)
  end
end
function request()
  return reqs[math.random(#reqs)]
end
{DONE}"#
    ))
}

/// What one wrk run measured.
#[derive(Debug, Clone, Serialize)]
pub struct WrkResult {
    /// Completed requests.
    pub requests: u64,
    /// Run time, seconds.
    pub duration_secs: f64,
    /// Requests per second.
    pub rps: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Largest latency, microseconds.
    pub max_us: f64,
    /// Mean latency, microseconds.
    pub mean_us: f64,
    /// Bytes read.
    pub bytes: u64,
    /// Socket errors (connect, read, write, timeout).
    pub socket_errors: u64,
    /// Answers that were not 2xx or 3xx.
    pub non_2xx_3xx: u64,
    /// wrk's `--latency` text output.
    pub raw: String,
}

/// How to run wrk.
pub struct WrkRun<'a> {
    /// The wrk binary.
    pub wrk: &'a Path,
    /// CPUs for `taskset -c`.
    pub cpus: &'a str,
    /// wrk threads.
    pub threads: u32,
    /// Open connections.
    pub connections: u32,
    /// Run length.
    pub duration: Duration,
    /// Script file.
    pub script: PathBuf,
}

impl WrkRun<'_> {
    /// Runs wrk against `url` and parses its report.
    pub async fn run(&self, url: &str) -> anyhow::Result<WrkResult> {
        let secs = self.duration.as_secs().max(1);
        let child = tokio::process::Command::new("taskset")
            .args(["-c", self.cpus])
            .arg(self.wrk)
            .arg(format!("-t{}", self.threads))
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{secs}s"))
            .args(["--latency", "--timeout", "5s", "-s"])
            .arg(&self.script)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(secs + 60), child)
            .await
            .context("wrk did not finish in time")?
            .context("running wrk")?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "wrk failed ({}): {}{}",
                out.status,
                stdout,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        parse(&stdout)
    }
}

/// Parses wrk's output, with the `edgecache-bench:` line of [`DONE`].
pub fn parse(stdout: &str) -> anyhow::Result<WrkResult> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("edgecache-bench:"))
        .context("wrk printed no edgecache-bench line")?;
    let get = |key: &str| -> f64 {
        line.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0.0)
    };
    let duration_secs = get("duration_us") / 1e6;
    let requests = get("requests") as u64;
    Ok(WrkResult {
        requests,
        duration_secs,
        rps: if duration_secs > 0.0 {
            requests as f64 / duration_secs
        } else {
            0.0
        },
        p50_us: get("p50_us"),
        p99_us: get("p99_us"),
        max_us: get("max_us"),
        mean_us: get("mean_us"),
        bytes: get("bytes") as u64,
        socket_errors: (get("connect") + get("read") + get("write") + get("timeout")) as u64,
        non_2xx_3xx: get("status") as u64,
        raw: stdout
            .lines()
            .filter(|l| !l.starts_with("edgecache-bench:"))
            .collect::<Vec<_>>()
            .join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browser_script_sets_every_field() {
        let script = browser_script();
        for (name, value) in BROWSER_FIELDS {
            assert!(!value.contains('"'), "{value}");
            assert!(script.contains(&format!("wrk.headers[\"{name}\"] = \"{value}\"")));
        }
        assert!(script.contains("function done"));
    }

    #[test]
    fn parses_the_done_line() {
        let out = "Running 2s test @ http://127.0.0.1:1/\n  Latency Distribution\n     50%  600.00us\nedgecache-bench: requests=2000 duration_us=2000000 bytes=4096 connect=0 read=1 write=0 status=3 timeout=0 p50_us=600 p99_us=1200 max_us=5000 mean_us=631.5\nRequests/sec:   1000.00\n";
        let r = parse(out).unwrap();
        assert_eq!(r.requests, 2000);
        assert!((r.rps - 1000.0).abs() < 1e-9);
        assert_eq!(r.p99_us, 1200.0);
        assert_eq!(r.socket_errors, 1);
        assert_eq!(r.non_2xx_3xx, 3);
        assert!(!r.raw.contains("edgecache-bench"));
    }

    #[test]
    fn many_keys_script_reads_the_list() {
        let s = many_keys_script(Path::new("/tmp/keys.txt")).unwrap();
        assert!(s.contains("io.lines([[/tmp/keys.txt]])") && s.contains("function done"));
        assert!(many_keys_script(Path::new("/tmp/a]]b")).is_err());
    }
}
