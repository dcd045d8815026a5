//! The body of `POST /_purge`: parsing, validation, and normalisation of
//! URLs and prefixes to the form edges key their caches on.

use std::time::Duration;

use edgecache::cache_key::CacheKey;
use edgecache::purge::PurgeSelector;
use serde::Deserialize;

/// The longest `wait_ms` honoured.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(60);

/// `wait_ms` when the body gives none.
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_secs(5);

/// Most items in one selector list.
const MAX_ITEMS: usize = 1000;

/// Longest single URL, prefix or tag.
const MAX_ITEM_LEN: usize = 8192;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    urls: Option<Vec<String>>,
    prefixes: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    all: Option<bool>,
    confirm: Option<String>,
    #[serde(default)]
    soft: bool,
    wait_ms: Option<u64>,
    #[serde(default)]
    dry_run: bool,
}

/// A validated purge request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PurgeRequest {
    pub selector: PurgeSelector,
    pub soft: bool,
    pub wait: Duration,
    pub dry_run: bool,
}

/// Parses and validates a `POST /_purge` body; the error is a message for
/// the operator (answered with 400).
pub(crate) fn parse(body: &[u8]) -> Result<PurgeRequest, String> {
    let body: Body =
        serde_json::from_slice(body).map_err(|e| format!("invalid purge request: {e}"))?;
    let all = body.all.unwrap_or(false);
    let given = [
        body.urls.is_some(),
        body.prefixes.is_some(),
        body.tags.is_some(),
        all,
    ];
    match given.iter().filter(|g| **g).count() {
        0 => {
            return Err(
                "no selector: give exactly one of \"urls\", \"prefixes\", \"tags\" or \"all\""
                    .into(),
            );
        }
        1 => {}
        _ => {
            return Err(
                "more than one selector: give exactly one of \"urls\", \"prefixes\", \"tags\" or \"all\""
                    .into(),
            );
        }
    }
    if all && body.confirm.as_deref() != Some("all") {
        return Err("purging everything needs \"confirm\": \"all\"".into());
    }
    if !all && body.confirm.is_some() {
        return Err("\"confirm\" only goes with \"all\": true".into());
    }
    let selector = if let Some(urls) = body.urls {
        PurgeSelector::Urls(items("urls", urls, normalize_url)?)
    } else if let Some(prefixes) = body.prefixes {
        PurgeSelector::Prefixes(items("prefixes", prefixes, normalize_url)?)
    } else if let Some(tags) = body.tags {
        PurgeSelector::Tags(items("tags", tags, check_tag)?)
    } else {
        PurgeSelector::All
    };
    let wait = body
        .wait_ms
        .map_or(DEFAULT_WAIT, Duration::from_millis)
        .min(MAX_WAIT);
    Ok(PurgeRequest {
        selector,
        soft: body.soft,
        wait,
        dry_run: body.dry_run,
    })
}

fn items(
    field: &str,
    list: Vec<String>,
    check: fn(&str) -> Result<String, String>,
) -> Result<Vec<String>, String> {
    if list.is_empty() {
        return Err(format!("\"{field}\" is empty"));
    }
    if list.len() > MAX_ITEMS {
        return Err(format!(
            "\"{field}\" has {} items, at most {MAX_ITEMS} are allowed",
            list.len()
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for item in list {
        if item.len() > MAX_ITEM_LEN {
            return Err(format!(
                "an item of \"{field}\" is longer than {MAX_ITEM_LEN} bytes"
            ));
        }
        let value = check(&item).map_err(|why| format!("\"{field}\": {item:?}: {why}"))?;
        if !out.contains(&value) {
            out.push(value);
        }
    }
    Ok(out)
}

/// An absolute `http(s)://host[:port]/path?query`, normalised like a cache
/// key: lowercase scheme and host, default port dropped, `/` for an empty
/// path.
pub(crate) fn normalize_url(raw: &str) -> Result<String, String> {
    let uri: http::Uri = raw
        .trim()
        .parse()
        .map_err(|e| format!("not a valid URL ({e})"))?;
    let scheme = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http") => "http",
        Some("https") => "https",
        _ => return Err("must be absolute, starting with http:// or https://".into()),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| "has no host".to_string())?
        .as_str();
    if authority.contains('@') {
        return Err("must not carry user information".into());
    }
    if authority.is_empty() {
        return Err("has no host".into());
    }
    let pq = uri.path_and_query().map_or("/", |pq| pq.as_str());
    Ok(CacheKey::new(scheme, authority, pq).as_str().to_string())
}

fn check_tag(raw: &str) -> Result<String, String> {
    let tag = raw.trim();
    if tag.is_empty() {
        return Err("is empty".into());
    }
    if tag.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace".into());
    }
    Ok(tag.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let r = parse(br#"{"urls": ["HTTP://CDN.Example:80/a.css?v=1"], "soft": true}"#).unwrap();
        assert_eq!(
            r.selector,
            PurgeSelector::Urls(vec!["http://cdn.example/a.css?v=1".into()])
        );
        assert!(r.soft);
        assert_eq!(r.wait, DEFAULT_WAIT);
        let r = parse(br#"{"prefixes": ["https://x:443"], "wait_ms": 10}"#).unwrap();
        assert_eq!(
            r.selector,
            PurgeSelector::Prefixes(vec!["https://x/".into()])
        );
        assert_eq!(r.wait, Duration::from_millis(10));
        let r = parse(br#"{"tags": ["a", "b"], "dry_run": true}"#).unwrap();
        assert!(r.dry_run);
        let r = parse(br#"{"all": true, "confirm": "all"}"#).unwrap();
        assert_eq!(r.selector, PurgeSelector::All);
    }

    #[test]
    fn rejections() {
        for bad in [
            &br#"{}"#[..],
            br#"not json"#,
            br#"{"urls": []}"#,
            br#"{"tags": [""]}"#,
            br#"{"urls": ["/relative"]}"#,
            br#"{"urls": ["ftp://x/a"]}"#,
            br#"{"urls": ["http://u@x/a"]}"#,
            br#"{"all": true}"#,
            br#"{"all": true, "confirm": "yes"}"#,
            br#"{"all": false}"#,
            br#"{"urls": ["http://x/"], "tags": ["a"]}"#,
            br#"{"urls": ["http://x/"], "confirm": "all"}"#,
            br#"{"urls": ["http://x/"], "bogus": 1}"#,
            br#"{"urls": ["http://x/"], "soft": "yes"}"#,
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
