//! HTTPS: HTTP/2 by ALPN, SNI, certificate reload, and HTTPS to the origin.

use super::*;

/// Starts an edge in front of `origin` with an HTTPS listener serving
/// `certs` (certificate and key files); `extra` is TOML placed before the
/// `[tls]` table.
fn spawn_https_edge(
    dir: &TempDir,
    origin: &Proc,
    extra: &str,
    certs: &[(PathBuf, PathBuf)],
) -> Proc {
    let ip = next_ip();
    let certs: Vec<String> = certs
        .iter()
        .map(|(cert, key)| {
            format!(
                "{{ cert = \"{}\", key = \"{}\" }}",
                cert.display(),
                key.display()
            )
        })
        .collect();
    let config = dir.write(
        "edge.toml",
        format!(
            "origin = \"{}\"\n{extra}[tls]\nlisten = \"{ip}:0\"\ncerts = [{}]\n",
            origin.url("http"),
            certs.join(", ")
        ),
    );
    Proc::start(
        bin("edge"),
        config_args(&config, ip),
        ip,
        &["http", "https", "admin"],
    )
}

/// A client that trusts only `ca_pem` and finds each of `hosts` at `tls`.
fn https_client(ca_pem: &str, tls: SocketAddr, hosts: &[&str]) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA pem");
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(10));
    for host in hosts {
        builder = builder.resolve(host, tls);
    }
    builder
}

#[tokio::test]
async fn https_serves_h2_picks_cert_by_sni_and_reloads_certs_without_dropping() {
    let origin = spawn_origin(None, &[]);
    let dir = TempDir::new("tls");
    let ca = Ca::new("edgecache test CA");
    let certs = [
        ca.leaf(&dir, "a", &["a.test"]),
        ca.leaf(&dir, "b", &["b.test"]),
    ];
    let edge = spawn_https_edge(&dir, &origin, "", &certs);
    let tls = edge.addr("https");
    let client_for = |ca_pem: &str| {
        https_client(ca_pem, tls, &["a.test", "b.test", "c.test"])
            .build()
            .expect("client")
    };
    let old_client = client_for(&ca.pem());
    for host in ["a.test", "b.test"] {
        let resp = old_client
            .get(format!("https://{host}:{}/_gen/10?ttl=60", tls.port()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{host}: {e:?}"));
        assert_eq!(resp.status(), 200, "{host}");
        assert_eq!(resp.version(), reqwest::Version::HTTP_2, "{host}: ALPN h2");
        assert!(cache_status(&resp).starts_with("edgecache"), "{host}");
    }
    // No certificate for c.test: the default (a.test) does not match it.
    let err = old_client
        .get(format!("https://c.test:{}/", tls.port()))
        .send()
        .await;
    assert!(err.is_err(), "c.test must not verify: {err:?}");
    // The plain listener still serves beside it.
    let plain = client()
        .get(format!("{}/_gen/10?ttl=60", edge.url("http")))
        .send()
        .await;
    assert_eq!(plain.expect("plain http").status(), 200);

    // Reissue b.test from another CA and reload with SIGHUP.
    let ca2 = Ca::new("second test CA");
    ca2.leaf(&dir, "b", &["b.test"]);
    signal(&edge, libc::SIGHUP);
    let new_client = client_for(&ca2.pem());
    let url_b = format!("https://b.test:{}/_gen/11?ttl=60", tls.port());
    let mut reloaded = false;
    for _ in 0..50 {
        if new_client
            .get(&url_b)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reloaded,
        "the new b.test certificate is served after SIGHUP"
    );
    // The old client's open h2 connection (old certificate) still works: a
    // new handshake would fail, since it trusts only the first CA.
    let resp = old_client
        .get(&url_b)
        .send()
        .await
        .expect("old connection kept");
    assert_eq!(resp.status(), 200);
}

/// A body kept in a memory file is sent with sendfile on plain TCP only: on
/// an HTTP/1.1 TLS connection it must go through the TLS stream.
#[tokio::test]
async fn https_http1_sends_a_large_stored_body_through_tls() {
    let origin = spawn_origin(None, &[]);
    let dir = TempDir::new("tls-big");
    let ca = Ca::new("edgecache test CA");
    let certs = [ca.leaf(&dir, "a", &["a.test"])];
    let cache = "[cache]\nfile_body_threshold = \"64KiB\"\n";
    let edge = spawn_https_edge(&dir, &origin, cache, &certs);
    let tls = edge.addr("https");
    let c = https_client(&ca.pem(), tls, &["a.test"])
        .http1_only()
        .build()
        .expect("client");
    let path = "/_gen/200000/tls-big?ttl=600";
    let expected = origin_body(&origin, path).await;
    let url = format!("https://a.test:{}{path}", tls.port());
    let fill = c.get(&url).send().await.expect("https GET");
    assert_eq!(fill.version(), reqwest::Version::HTTP_11);
    assert_eq!(fill.status(), 200);
    let cs = cache_status(&fill);
    assert!(!cs.contains("hit"), "the first fills: {cs}");
    let body = fill.bytes().await.expect("https body");
    assert!(body == expected, "{cs}: the same bytes through TLS");
    let (cs, body) = get_until_hit(&c, &url).await;
    assert!(body == expected, "{cs}: the same bytes through TLS");
    let stats = edge_stats(&edge).await;
    assert_eq!(stats["body_files"], 1, "{stats}");
    assert_eq!(
        stats["sendfile_bytes"], 0,
        "nothing sent around TLS: {stats}"
    );
}

#[tokio::test]
async fn https_origin_is_verified_and_tls_failures_are_origin_failures() {
    let origin = spawn_origin(None, &[]);
    let dir = TempDir::new("origintls");
    let ca = Ca::new("origin CA");
    let (cert, key) = ca.leaf(&dir, "origin", &["origin.test"]);
    let ca_path = dir.write("ca.pem", ca.pem());
    // A TLS front for the origin: another edge with an HTTPS listener.
    let front_ip = next_ip();
    let front = Proc::start(
        bin("edge"),
        vec![
            "--origin".into(),
            origin.url("http"),
            "--listen".into(),
            format!("{front_ip}:0"),
            "--tls-listen".into(),
            format!("{front_ip}:0"),
            "--cert".into(),
            cert.display().to_string(),
            "--key".into(),
            key.display().to_string(),
        ],
        front_ip,
        &["http", "https"],
    );
    let port = front.addr("https").port();
    let edge_for = |host: &str, ca_file: Option<&Path>| {
        let ca_line = ca_file.map_or(String::new(), |p| {
            format!("ca_file = \"{}\"\n", p.display())
        });
        spawn_edge_config(&format!(
            "origin = \"https://{host}:{port}\"\n[origin_client]\naddresses = [\"{front_ip}\"]\n{ca_line}"
        ))
    };
    // Trusted CA and the right name (SNI from the origin URL's host): works.
    let (good, _d1) = edge_for("origin.test", Some(&ca_path));
    let resp = client()
        .get(format!("{}/_gen/20?ttl=60", good.url("http")))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200, "{}", cache_status(&resp));
    assert!(
        cache_status(&resp).contains("fwd=uri-miss"),
        "{}",
        cache_status(&resp)
    );
    // Wrong host name, then an untrusted certificate: origin failures of
    // kind tls, answered by the route policy (502, nothing stale to serve).
    let (wrong_host, _d2) = edge_for("wrong.test", Some(&ca_path));
    let (untrusted, _d3) = edge_for("origin.test", None);
    for edge in [&wrong_host, &untrusted] {
        let resp = client()
            .get(format!("{}/_gen/20?ttl=60", edge.url("http")))
            .send()
            .await
            .expect("request");
        let cs = cache_status(&resp);
        assert_eq!(resp.status(), 502, "{cs}");
        assert!(cs.contains("detail=tls"), "{cs}");
        let health: serde_json::Value = client()
            .get(format!("{}/_edge/health", edge.url("admin")))
            .send()
            .await
            .expect("health")
            .json()
            .await
            .expect("health json");
        let origins = health["origins"].to_string();
        assert!(
            origins.contains("tls") || origins.contains("certificate"),
            "{origins}"
        );
    }
}
