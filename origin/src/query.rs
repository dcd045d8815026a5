//! Query string parsing (`a=1&b=x%20y`).

use crate::path::{PathError, percent_decode};

/// Decodes a query string into name/value pairs, in order. `+` is a space;
/// a name without `=` has an empty value.
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, PathError> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

fn decode(s: &str) -> Result<String, PathError> {
    String::from_utf8(percent_decode(s, true)?).map_err(|_| PathError::NotUtf8)
}

/// The last value of `name` in a query string, if present and decodable.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    let pairs = parse_query(query?).ok()?;
    pairs
        .into_iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs() {
        let q = parse_query("ttl=5&cc=public%2C+max-age%3D9&flag&&x=").unwrap();
        assert_eq!(
            q,
            vec![
                ("ttl".into(), "5".into()),
                ("cc".into(), "public, max-age=9".into()),
                ("flag".into(), String::new()),
                ("x".into(), String::new()),
            ]
        );
        assert!(parse_query("a=%zz").is_err());
        assert_eq!(
            query_param(Some("location=/x&location=/y"), "location").as_deref(),
            Some("/y")
        );
        assert_eq!(query_param(None, "location"), None);
    }
}
