//! `edgecache purge`: asks the origin's control API to purge content from
//! every edge, then prints which edges applied it.
//!
//! It exits non-zero when the API refuses the purge or when any edge did
//! not apply it in time (pending or unreachable), so scripts can rely on
//! the exit status.
//!
//! Without `--control` (or `EDGECACHE_CONTROL`) it purges through the
//! running lab's control plane, found like every other lab command does
//! (`--lab`, `EDGECACHE_LAB`, or the lab's pointer file), with the lab's
//! token unless `EDGECACHE_PURGE_TOKEN` is set.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// Environment variable holding the operator's bearer token.
pub const TOKEN_ENV: &str = "EDGECACHE_PURGE_TOKEN";

/// Largest answer read from the API.
const MAX_ANSWER: usize = 4 << 20;

/// Flags of `edgecache purge`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "The token comes from EDGECACHE_PURGE_TOKEN. Without --control (and \
    EDGECACHE_CONTROL), the running lab's control address is used, with the lab's \
    token unless EDGECACHE_PURGE_TOKEN is set.\n\nExamples:\n  \
    edgecache purge --url http://cdn.edgecache.test/index.html   # the running lab\n  \
    edgecache purge --control 127.0.0.10:9000 --url http://cdn.example/a.css\n  \
    edgecache purge --prefix http://cdn.example/img/ --soft --wait 5000\n  \
    edgecache purge --tag product-42 --dry-run\n  \
    edgecache purge --all"
)]
pub struct PurgeArgs {
    /// Purge this exact URL, every Vary variant (repeatable).
    #[arg(long = "url", value_name = "URL")]
    pub urls: Vec<String>,
    /// Purge every URL starting with this prefix (repeatable).
    #[arg(long = "prefix", value_name = "PREFIX")]
    pub prefixes: Vec<String>,
    /// Purge every object carrying this surrogate key (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Purge everything (sends the confirmation the API requires).
    #[arg(long)]
    pub all: bool,
    /// Mark entries stale instead of removing them.
    #[arg(long)]
    pub soft: bool,
    /// Only ask the edges how many entries would go; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long the API waits for the edges, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub wait: Option<u64>,
    /// The origin's control listener, `HOST:PORT` or `http://HOST:PORT`
    /// (default: the running lab's).
    #[arg(long, env = "EDGECACHE_CONTROL", value_name = "ADDR")]
    pub control: Option<String>,
    /// The lab whose control plane to use when no --control is given
    /// (default: the lab the pointer file in the temp dir names).
    #[arg(long, value_name = "LAB_JSON", env = crate::lab::state::LAB_ENV)]
    pub lab: Option<PathBuf>,
    /// Print the API's raw JSON answer instead of the table.
    #[arg(long)]
    pub json: bool,
}

impl PurgeArgs {
    /// The JSON body of the purge request.
    pub fn body(&self) -> anyhow::Result<Value> {
        let kinds = [
            !self.urls.is_empty(),
            !self.prefixes.is_empty(),
            !self.tags.is_empty(),
            self.all,
        ];
        match kinds.iter().filter(|k| **k).count() {
            0 => bail!("nothing to purge: give --url, --prefix, --tag or --all"),
            1 => {}
            _ => bail!("give only one kind of selector: --url, --prefix, --tag or --all"),
        }
        let mut body = if self.all {
            json!({ "all": true, "confirm": "all" })
        } else if !self.urls.is_empty() {
            json!({ "urls": self.urls })
        } else if !self.prefixes.is_empty() {
            json!({ "prefixes": self.prefixes })
        } else {
            json!({ "tags": self.tags })
        };
        body["soft"] = json!(self.soft);
        if self.dry_run {
            body["dry_run"] = json!(true);
        }
        if let Some(wait) = self.wait {
            body["wait_ms"] = json!(wait);
        }
        Ok(body)
    }
}

/// Runs `edgecache purge`: sends the purge, prints the per-edge table (or
/// the raw answer), and fails unless every edge applied it.
pub async fn run(args: PurgeArgs) -> anyhow::Result<()> {
    let body = args.body()?;
    let (authority, token) = target(&args)?;
    // The API waits up to wait_ms for the edges; allow for that and more.
    let timeout = Duration::from_millis(args.wait.unwrap_or(10_000)) + Duration::from_secs(30);
    let (status, text) = tokio::time::timeout(timeout, post_purge(&authority, &token, &body))
        .await
        .map_err(|_| anyhow!("no answer from the control API at {authority} in {timeout:?}"))??;
    if !status.is_success() {
        bail!(
            "control API at {authority} answered {status}: {}",
            text.trim()
        );
    }
    let answer: Value = serde_json::from_str(&text)
        .with_context(|| format!("control API answer is not JSON: {}", text.trim()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", render(&answer, args.dry_run));
    }
    let missing = not_applied(&answer);
    if !missing.is_empty() {
        let what = if args.dry_run {
            "answer the dry run"
        } else {
            "apply the purge"
        };
        bail!(
            "{} edge(s) did not {what}: {}",
            missing.len(),
            missing.join(", ")
        );
    }
    if answer.get("complete").and_then(Value::as_bool) == Some(false) {
        bail!("the control API reports the purge incomplete");
    }
    Ok(())
}

/// The control API's authority (`HOST:PORT`) and the bearer token: from
/// `--control` (or `EDGECACHE_CONTROL`) and `EDGECACHE_PURGE_TOKEN`, else
/// from the running lab (its token unless `EDGECACHE_PURGE_TOKEN` is set).
fn target(args: &PurgeArgs) -> anyhow::Result<(String, String)> {
    let env_token = std::env::var(TOKEN_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty());
    if let Some(control) = &args.control {
        let token = env_token.ok_or_else(|| {
            anyhow!("no token: set {TOKEN_ENV} to the control API's bearer token")
        })?;
        let authority = control
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        return Ok((authority, token));
    }
    let lab = crate::lab::find_lab(args.lab.as_deref()).map_err(|e| {
        anyhow!(
            "no control address: pass --control ADDR or set EDGECACHE_CONTROL, or start \
             the lab (`edgecache lab`) to purge through it\n  (looking for a lab: {e:#})"
        )
    })?;
    let (addr, lab_token) = lab.purge_access()?;
    Ok((addr.to_string(), env_token.unwrap_or(lab_token)))
}

/// POSTs `body` to `http://AUTHORITY/_purge` with the bearer `token`, on a
/// new connection; returns the status and body.
pub async fn post_purge(
    authority: &str,
    token: &str,
    body: &Value,
) -> anyhow::Result<(StatusCode, String)> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .with_context(|| format!("cannot connect to the control API at {authority}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake with the control API")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::post("/_purge")
        .header(header::HOST, authority)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .context("building the request")?;
    let resp = sender
        .send_request(req)
        .await
        .context("sending the purge request")?;
    let status = resp.status();
    let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| anyhow!("reading the answer: {e}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// The edges (`id (status)`) that did not apply the purge (or, for a dry
/// run, did not answer).
pub fn not_applied(answer: &Value) -> Vec<String> {
    edges(answer)
        .iter()
        .filter(|e| {
            let status = e.get("status").and_then(Value::as_str);
            !matches!(status, Some("applied" | "answered"))
        })
        .map(|e| format!("{} ({})", field(e, "id"), field(e, "status")))
        .collect()
}

/// The purge id and sequence, then one line per edge.
pub fn render(answer: &Value, dry_run: bool) -> String {
    let mut out = String::new();
    if dry_run {
        let _ = writeln!(out, "dry run: nothing was purged");
    } else {
        let _ = writeln!(
            out,
            "purge {} seq {}{}",
            field(answer, "id"),
            field(answer, "seq"),
            if answer.get("soft").and_then(Value::as_bool) == Some(true) {
                " (soft)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        out,
        "{:<20} {:<12} {:<22} {:<12} {:>8}",
        "EDGE", "REGION", "ADDRESS", "STATUS", "AFFECTED"
    );
    let list = edges(answer);
    for e in &list {
        let _ = writeln!(
            out,
            "{:<20} {:<12} {:<22} {:<12} {:>8}",
            field(e, "id"),
            field(e, "region"),
            field(e, "address"),
            field(e, "status"),
            field(e, "affected"),
        );
    }
    if list.is_empty() {
        let _ = writeln!(out, "(no edges connected)");
    }
    let done = list.len() - not_applied(answer).len();
    let verb = if dry_run { "answered" } else { "applied" };
    let _ = writeln!(out, "{done}/{} edges {verb}", list.len());
    out
}

fn edges(answer: &Value) -> Vec<Value> {
    answer
        .get("edges")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn field(v: &Value, name: &str) -> String {
    match v.get(name) {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> PurgeArgs {
        PurgeArgs {
            urls: Vec::new(),
            prefixes: Vec::new(),
            tags: Vec::new(),
            all: false,
            soft: false,
            dry_run: false,
            wait: None,
            control: None,
            lab: None,
            json: false,
        }
    }

    #[test]
    fn bodies() {
        assert!(args().body().is_err());
        let mut a = args();
        a.all = true;
        a.soft = true;
        a.wait = Some(500);
        assert_eq!(
            a.body().unwrap(),
            json!({"all": true, "confirm": "all", "soft": true, "wait_ms": 500})
        );
        a.tags = vec!["t".into()];
        assert!(a.body().is_err());
        let mut a = args();
        a.urls = vec!["http://h/a".into(), "http://h/b".into()];
        a.dry_run = true;
        assert_eq!(
            a.body().unwrap(),
            json!({"urls": ["http://h/a", "http://h/b"], "soft": false, "dry_run": true})
        );
    }

    #[test]
    fn control_from_the_flag_or_the_lab() {
        let dir = std::env::temp_dir().join(format!("edgecache-purge-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.json");
        let mut a = args();
        a.lab = Some(missing);
        let err = target(&a).unwrap_err().to_string();
        assert!(err.contains("no control address"), "{err}");

        let path = dir.join("lab.json");
        crate::lab::state::tests::sample(&dir, Some("lab-token"))
            .write(&path)
            .unwrap();
        a.lab = Some(path);
        let (authority, token) = target(&a).unwrap();
        assert_eq!(authority, "127.0.0.11:3");
        // EDGECACHE_PURGE_TOKEN, when set, overrides the lab's token.
        let env = std::env::var(TOKEN_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty());
        assert_eq!(token, env.unwrap_or_else(|| "lab-token".into()));

        a.control = Some("http://127.0.0.9:7/".into());
        if std::env::var_os(TOKEN_ENV).is_none() {
            assert!(target(&a).unwrap_err().to_string().contains("no token"));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn table_and_failures() {
        let answer = json!({
            "id": "0190-x", "seq": 7, "soft": false, "complete": false,
            "edges": [
                {"id": "e1", "region": "r1", "address": "127.0.0.2:1", "status": "applied", "affected": 2},
                {"id": "e2", "region": "r2", "address": "127.0.0.3:1", "status": "unreachable", "affected": null},
            ]
        });
        let text = render(&answer, false);
        assert!(text.contains("purge 0190-x seq 7"), "{text}");
        assert!(
            text.contains("e2") && text.contains("unreachable"),
            "{text}"
        );
        assert!(text.contains("1/2 edges applied"), "{text}");
        assert_eq!(not_applied(&answer), vec!["e2 (unreachable)"]);
    }
}
