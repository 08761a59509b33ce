//! `application/x-www-form-urlencoded` bodies, with repeated fields (a crew of several people
//! is several `crew` fields), and the cookies of a request.

use axum::http::HeaderMap;

/// A submitted form: its fields in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    /// Reads a body; a field that is not valid UTF-8 after decoding is kept lossily.
    pub fn parse(body: &[u8]) -> Self {
        let fields = body
            .split(|b| *b == b'&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let mut parts = pair.splitn(2, |b| *b == b'=');
                let name = decode(parts.next().unwrap_or_default());
                let value = decode(parts.next().unwrap_or_default());
                (name, value)
            })
            .collect();
        Self { fields }
    }

    /// The first value of `name`, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// Every non-empty value of `name`, trimmed.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(n, v)| n == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }
}

impl Form {
    /// The items of a text field given one per line or separated by commas, blanks dropped
    /// (evidence references, station ids).
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .split(['\n', ','])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decoding, `+` as a space.
fn decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < raw.len() => match (hex(raw[i + 1]), hex(raw[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_fields_and_encodings_are_read() {
        let form = Form::parse(b"crew=R-001&crew=R-002&note=a+b%20c%E4%B8%AD&empty=&crew=");
        assert_eq!(form.all("crew"), ["R-001", "R-002"]);
        assert_eq!(form.get("note"), "a b c中");
        assert_eq!(form.get("missing"), "");
        let odd = Form::parse(b"a=%&b=%4&c=%zz&d=100%25");
        assert_eq!(
            (odd.get("a"), odd.get("b"), odd.get("c"), odd.get("d")),
            ("%", "%4", "%zz", "100%")
        );
    }

    #[test]
    fn mon_4_a_list_field_is_read_one_item_per_line_or_comma() {
        let form = Form::parse(
            b"evidence=photo-1.jpg%0A+photo-2.jpg%2C+%2Cwork+order+WO-1%0A&none=+%0A+%2C",
        );
        assert_eq!(
            form.list("evidence"),
            ["photo-1.jpg", "photo-2.jpg", "work order WO-1"]
        );
        assert!(form.list("none").is_empty());
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            "cm_lang=en; cm_session=abc".parse().expect("header"),
        );
        assert_eq!(cookie(&headers, "cm_session"), Some("abc"));
        assert_eq!(cookie(&headers, "cm_lang"), Some("en"));
        assert_eq!(cookie(&headers, "other"), None);
    }
}
