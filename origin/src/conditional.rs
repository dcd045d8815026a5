//! Conditional requests (RFC 9110 §13): `If-Match`, `If-None-Match`,
//! `If-Modified-Since`, `If-Unmodified-Since` and `If-Range`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap, HeaderName};
use httpdate::HttpDate;

/// The validators of a selected representation.
#[derive(Debug, Clone, Default)]
pub struct Validators {
    /// Strong entity tag including its quotes, e.g. `"0a1b..."`.
    pub etag: Option<String>,
    /// Last modification time.
    pub last_modified: Option<SystemTime>,
}

/// The result of evaluating the preconditions of a GET or HEAD request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Send the representation (possibly a range of it).
    Proceed,
    /// Answer 304 Not Modified.
    NotModified,
    /// Answer 412 Precondition Failed.
    Failed,
}

/// One entity tag as received in a request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EntityTag<'a> {
    weak: bool,
    /// The opaque tag including its quotes.
    opaque: &'a str,
}

/// A parsed `If-Match` / `If-None-Match` value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TagList<'a> {
    Any,
    Tags(Vec<EntityTag<'a>>),
}

/// Converts a time to an HTTP date, clamped to the range HTTP dates can
/// express (1970 to 9999), at one-second precision.
pub fn to_http_date(t: SystemTime) -> HttpDate {
    const MAX_SECS: u64 = 253_402_300_799;
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(MAX_SECS);
    HttpDate::from(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Formats a time as an IMF-fixdate, as [`to_http_date`] clamps it.
pub fn fmt_http_date(t: SystemTime) -> String {
    to_http_date(t).to_string()
}

/// All values of a header joined by `, `, or `None` when absent or not text.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let parts: Option<Vec<&str>> = values.map(|v| v.to_str().ok()).collect();
    Some(parts?.join(", "))
}

fn date_header(headers: &HeaderMap, name: &HeaderName) -> Option<HttpDate> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Parses `*` or a comma-separated list of entity tags.
fn parse_tag_list(s: &str) -> Option<TagList<'_>> {
    if s.trim() == "*" {
        return Some(TagList::Any);
    }
    let mut tags = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let (weak, after) = match rest.strip_prefix("W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let inner = after.strip_prefix('"')?;
        let close = inner.find('"')?;
        tags.push(EntityTag {
            weak,
            opaque: &after[..close + 2],
        });
        rest = &inner[close + 1..];
        let next = rest.trim_start_matches([' ', '\t']);
        if !(next.is_empty() || next.starts_with(',')) {
            return None;
        }
    }
    Some(TagList::Tags(tags))
}

/// Strong comparison: both tags strong and identical.
fn strong_eq(tag: &EntityTag<'_>, ours: &str) -> bool {
    !tag.weak && tag.opaque == ours
}

/// Weak comparison: identical opaque tags, weakness ignored.
fn weak_eq(tag: &EntityTag<'_>, ours: &str) -> bool {
    tag.opaque == ours
}

/// Evaluates the preconditions of a GET or HEAD request in the order of
/// RFC 9110 §13.2.2.
pub fn evaluate(headers: &HeaderMap, v: &Validators) -> Precondition {
    // 1. If-Match (strong comparison).
    if let Some(value) = joined(headers, &header::IF_MATCH) {
        if let Some(list) = parse_tag_list(&value) {
            let ok = match (&list, &v.etag) {
                (TagList::Any, _) => true,
                (TagList::Tags(tags), Some(ours)) => tags.iter().any(|t| strong_eq(t, ours)),
                (TagList::Tags(_), None) => false,
            };
            if !ok {
                return Precondition::Failed;
            }
        }
    } else if let Some(date) = date_header(headers, &header::IF_UNMODIFIED_SINCE) {
        // 2. If-Unmodified-Since, only without If-Match.
        let ok = v.last_modified.is_some_and(|lm| to_http_date(lm) <= date);
        if !ok {
            return Precondition::Failed;
        }
    }
    // 3. If-None-Match (weak comparison).
    if let Some(value) = joined(headers, &header::IF_NONE_MATCH) {
        if let Some(list) = parse_tag_list(&value) {
            let matched = match (&list, &v.etag) {
                (TagList::Any, _) => true,
                (TagList::Tags(tags), Some(ours)) => tags.iter().any(|t| weak_eq(t, ours)),
                (TagList::Tags(_), None) => false,
            };
            if matched {
                return Precondition::NotModified;
            }
            return Precondition::Proceed;
        }
    } else if let Some(date) = date_header(headers, &header::IF_MODIFIED_SINCE) {
        // 4. If-Modified-Since, only without If-None-Match.
        if v.last_modified.is_some_and(|lm| to_http_date(lm) <= date) {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// Whether a `Range` header may be honoured given `If-Range`: true when
/// there is no `If-Range`, or when it names the current strong ETag or
/// exactly the current Last-Modified date.
pub fn if_range_passes(headers: &HeaderMap, v: &Validators) -> bool {
    let Some(value) = headers.get(header::IF_RANGE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return match (parse_tag_list(value), &v.etag) {
            (Some(TagList::Tags(tags)), Some(ours)) => tags.len() == 1 && strong_eq(&tags[0], ours),
            _ => false,
        };
    }
    match (value.parse::<HttpDate>(), v.last_modified) {
        (Ok(date), Some(lm)) => to_http_date(lm) == date,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn validators() -> Validators {
        Validators {
            etag: Some("\"abc\"".into()),
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(1_000_000_000)),
        }
    }

    fn headers(pairs: &[(HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(n.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const LM: &str = "Sun, 09 Sep 2001 01:46:40 GMT";
    const EARLIER: &str = "Sat, 08 Sep 2001 01:46:40 GMT";

    #[test]
    fn tag_lists_parse() {
        assert_eq!(parse_tag_list(" * "), Some(TagList::Any));
        let list = parse_tag_list("W/\"a\", \"b,c\" ,\"d\"").unwrap();
        let TagList::Tags(tags) = list else {
            panic!("expected tags")
        };
        assert_eq!(tags.len(), 3);
        assert!(tags[0].weak);
        assert_eq!(tags[1].opaque, "\"b,c\"");
        assert_eq!(parse_tag_list("abc"), None);
        assert_eq!(parse_tag_list("\"a\" \"b\""), None);
    }

    #[test]
    fn if_none_match() {
        let v = validators();
        let h = headers(&[(header::IF_NONE_MATCH, "\"x\", W/\"abc\"")]);
        assert_eq!(evaluate(&h, &v), Precondition::NotModified);
        let h = headers(&[(header::IF_NONE_MATCH, "*")]);
        assert_eq!(evaluate(&h, &v), Precondition::NotModified);
        let h = headers(&[(header::IF_NONE_MATCH, "\"x\"")]);
        assert_eq!(evaluate(&h, &v), Precondition::Proceed);
        // If-None-Match present: If-Modified-Since is ignored.
        let h = headers(&[
            (header::IF_NONE_MATCH, "\"x\""),
            (header::IF_MODIFIED_SINCE, LM),
        ]);
        assert_eq!(evaluate(&h, &v), Precondition::Proceed);
    }

    #[test]
    fn if_modified_since() {
        let v = validators();
        let h = headers(&[(header::IF_MODIFIED_SINCE, LM)]);
        assert_eq!(evaluate(&h, &v), Precondition::NotModified);
        let h = headers(&[(header::IF_MODIFIED_SINCE, EARLIER)]);
        assert_eq!(evaluate(&h, &v), Precondition::Proceed);
        let h = headers(&[(header::IF_MODIFIED_SINCE, "garbage")]);
        assert_eq!(evaluate(&h, &v), Precondition::Proceed);
    }

    #[test]
    fn if_match_and_if_unmodified_since() {
        let v = validators();
        let h = headers(&[(header::IF_MATCH, "\"abc\"")]);
        assert_eq!(evaluate(&h, &v), Precondition::Proceed);
        let h = headers(&[(header::IF_MATCH, "W/\"abc\"")]);
        assert_eq!(evaluate(&h, &v), Precondition::Failed);
        let h = headers(&[(header::IF_MATCH, "\"nope\"")]);
        assert_eq!(evaluate(&h, &v), Precondition::Failed);
        let h = headers(&[(header::IF_UNMODIFIED_SINCE, EARLIER)]);
        assert_eq!(evaluate(&h, &v), Precondition::Failed);
        let h = headers(&[(header::IF_UNMODIFIED_SINCE, LM)]);
        assert_eq!(evaluate(&h, &v), Precondition::Proceed);
    }

    #[test]
    fn if_range() {
        let v = validators();
        assert!(if_range_passes(&HeaderMap::new(), &v));
        assert!(if_range_passes(
            &headers(&[(header::IF_RANGE, "\"abc\"")]),
            &v
        ));
        assert!(!if_range_passes(
            &headers(&[(header::IF_RANGE, "W/\"abc\"")]),
            &v
        ));
        assert!(!if_range_passes(
            &headers(&[(header::IF_RANGE, "\"old\"")]),
            &v
        ));
        assert!(if_range_passes(&headers(&[(header::IF_RANGE, LM)]), &v));
        assert!(!if_range_passes(
            &headers(&[(header::IF_RANGE, EARLIER)]),
            &v
        ));
    }

    #[test]
    fn dates_are_clamped() {
        let before_epoch = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(fmt_http_date(before_epoch), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
