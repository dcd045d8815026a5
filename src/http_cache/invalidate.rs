//! Invalidation after unsafe requests (RFC 9111 §4.4).

use http::header::{CONTENT_LOCATION, LOCATION};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, StatusCode, Uri};

/// The method is unsafe (RFC 9110 §9.2.1), so a non-error answer to it
/// invalidates stored responses (see [`invalidation_targets`]).
pub fn is_unsafe_method(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The `path?query` targets to invalidate after a 2xx/3xx answer to an
/// unsafe request (the caller checks the method, e.g. with
/// [`is_unsafe_method`]): the request target, plus Location and
/// Content-Location when they are relative or name `request_authority`
/// (compared case-insensitively, default ports ignored). Relative
/// references are resolved against the request path; fragments are dropped;
/// other hosts, ports and schemes are ignored. Each string starts with `/`.
pub fn invalidation_targets(
    request_uri: &Uri,
    request_authority: &str,
    status: StatusCode,
    resp: &HeaderMap,
) -> Vec<String> {
    if !(status.is_success() || status.is_redirection()) {
        return Vec::new();
    }
    let base = request_uri
        .path_and_query()
        .map_or("/", PathAndQuery::as_str);
    let base = if base.starts_with('/') { base } else { "/" };
    let mut out = vec![base.to_owned()];
    let base_path = base.split('?').next().unwrap_or("/");
    let req_scheme = request_uri.scheme_str();
    for name in [&LOCATION, &CONTENT_LOCATION] {
        let Some(v) = resp.get(name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        if let Some(t) = resolve(v, base_path, request_authority, req_scheme)
            && !out.contains(&t)
        {
            out.push(t);
        }
    }
    out
}

/// Resolves a URI reference to a `path?query` on the request's authority.
fn resolve(
    reference: &str,
    base_path: &str,
    authority: &str,
    req_scheme: Option<&str>,
) -> Option<String> {
    let r = reference.split('#').next().unwrap_or("").trim();
    let (scheme, rest) = match split_scheme(r) {
        Some((s, rest)) => {
            if !s.eq_ignore_ascii_case("http") && !s.eq_ignore_ascii_case("https") {
                return None;
            }
            (Some(s), rest)
        }
        None => (None, r),
    };
    let joined = if let Some(net) = rest.strip_prefix("//") {
        let end = net.find(['/', '?']).unwrap_or(net.len());
        let scheme = scheme.or(req_scheme);
        if !same_authority(&net[..end], authority, scheme) {
            return None;
        }
        let pq = &net[end..];
        if pq.starts_with('?') || pq.is_empty() {
            format!("/{pq}")
        } else {
            pq.to_owned()
        }
    } else if scheme.is_some() || rest.is_empty() {
        return None;
    } else if rest.starts_with('/') {
        rest.to_owned()
    } else if rest.starts_with('?') {
        format!("{base_path}{rest}")
    } else {
        let dir = base_path.rfind('/').map_or("/", |i| &base_path[..=i]);
        format!("{dir}{rest}")
    };
    let (path, query) = match joined.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (joined.as_str(), None),
    };
    let mut s = remove_dot_segments(path);
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    PathAndQuery::try_from(s.as_str()).ok()?;
    Some(s)
}

/// Splits `scheme:` off a reference (RFC 3986 §3.1).
fn split_scheme(r: &str) -> Option<(&str, &str)> {
    let colon = r.find([':', '/', '?'])?;
    if r.as_bytes()[colon] != b':' {
        return None;
    }
    let scheme = &r[..colon];
    let mut bytes = scheme.bytes();
    let first = bytes.next()?;
    (first.is_ascii_alphabetic()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
    .then(|| (scheme, &r[colon + 1..]))
}

/// Splits `host[:port]`, handling IPv6 literals.
fn split_host_port(a: &str) -> (&str, Option<&str>) {
    let a = a.rsplit('@').next().unwrap_or(a);
    if a.starts_with('[') {
        return match a.find(']') {
            Some(i) => (
                &a[..=i],
                a[i + 1..].strip_prefix(':').filter(|p| !p.is_empty()),
            ),
            None => (a, None),
        };
    }
    match a.rsplit_once(':') {
        Some((h, p)) => (h, Some(p).filter(|p| !p.is_empty())),
        None => (a, None),
    }
}

/// Same host (case-insensitive) and port, a missing port standing for the
/// scheme's default (80 or 443 when the scheme is unknown).
fn same_authority(a: &str, b: &str, scheme: Option<&str>) -> bool {
    let (ha, pa) = split_host_port(a);
    let (hb, pb) = split_host_port(b);
    if ha.is_empty() || !ha.eq_ignore_ascii_case(hb) {
        return false;
    }
    let is_default = |p: &str| match scheme {
        Some(s) if s.eq_ignore_ascii_case("https") => p == "443",
        Some(s) if s.eq_ignore_ascii_case("http") => p == "80",
        _ => p == "80" || p == "443",
    };
    match (pa, pb) {
        (None, None) => true,
        (Some(x), Some(y)) => x == y,
        (Some(p), None) | (None, Some(p)) => is_default(p),
    }
}

/// RFC 3986 §5.2.4 for an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut segs: Vec<&str> = Vec::new();
    let mut trailing = false;
    for seg in path.trim_start_matches('/').split('/') {
        trailing = false;
        match seg {
            "." => trailing = true,
            ".." => {
                segs.pop();
                trailing = true;
            }
            s => segs.push(s),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    out.push('/');
    out.push_str(&segs.join("/"));
    if trailing && !out.ends_with('/') {
        out.push('/');
    }
    out
}

#[cfg(test)]
#[path = "invalidate_tests.rs"]
mod tests;
