//! Page sizes and opaque page tokens for `List*` methods (AIP-158).

use base64::Engine as _;

use crate::Error;

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;

/// 0 means the default; negative sizes are refused; large ones are capped.
pub fn page_size(requested: i32) -> Result<u32, Error> {
    match requested {
        n if n < 0 => Err(Error::bad_field("page_size", "must not be negative")),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok((n as u32).min(MAX_PAGE_SIZE)),
    }
}

/// Encodes the key of the last item of a page.
pub fn encode_token(parts: &[&str]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(parts.join("\u{1f}"))
}

/// Decodes a token made by [`encode_token`] with `arity` parts; empty means the first page.
pub fn decode_token(token: &str, arity: usize) -> Result<Option<Vec<String>>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || Error::bad_field("page_token", "is not a token this service issued");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let parts: Vec<String> = text.split('\u{1f}').map(str::to_owned).collect();
    if parts.len() != arity {
        return Err(bad());
    }
    Ok(Some(parts))
}

/// A newest-first page of a listing keyed by (time, id): at most `limit` items, all before
/// `before` in that order. The first page starts after every key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyset {
    pub limit: u32,
    pub before_at: chrono::DateTime<chrono::Utc>,
    pub before_id: String,
}

/// A key greater than any record's: the start of a first page.
fn end_of_time() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(253_402_300_799, 0).unwrap_or_default()
}

impl Keyset {
    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Self {
        Self {
            limit,
            before_at: end_of_time(),
            before_id: "\u{10ffff}".to_owned(),
        }
    }

    /// The page a request asks for (`page_size`, `page_token`).
    pub fn from_request(page_size_: i32, token: &str) -> Result<Self, Error> {
        let limit = page_size(page_size_)?;
        match decode_token(token, 2)? {
            None => Ok(Self::first(limit)),
            Some(parts) => {
                let at = chrono::DateTime::parse_from_rfc3339(&parts[0])
                    .map_err(|_| {
                        Error::bad_field("page_token", "is not a token this service issued")
                    })?
                    .to_utc();
                Ok(Self {
                    limit,
                    before_at: at,
                    before_id: parts[1].clone(),
                })
            }
        }
    }

    /// How many rows a store reads: one more than the page, to learn whether another follows.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// The page of `rows` read newest first with [`Keyset::fetch`], each with the (time, id) key
    /// the store ordered it by, and the token of the page after it (empty when it was the last).
    pub fn page<T>(&self, mut rows: Vec<Keyed<T>>) -> Page<T> {
        let more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        let next_page_token = match rows.last() {
            Some(last) if more => encode_token(&[&last.at.to_rfc3339(), &last.id]),
            _ => String::new(),
        };
        Page {
            items: rows.into_iter().map(|r| r.item).collect(),
            next_page_token,
        }
    }
}

/// A row with the key a listing is ordered by, as the database holds it (so a token names
/// exactly the row, whatever precision the column keeps).
#[derive(Debug, Clone, PartialEq)]
pub struct Keyed<T> {
    pub item: T,
    pub at: chrono::DateTime<chrono::Utc>,
    pub id: String,
}

impl<T> Keyed<T> {
    /// The same key over another form of the item (a document decoded, say).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Keyed<U> {
        Keyed {
            item: f(self.item),
            at: self.at,
            id: self.id,
        }
    }

    /// As [`Keyed::map`], for a conversion that can fail.
    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Keyed<U>, E> {
        Ok(Keyed {
            item: f(self.item)?,
            at: self.at,
            id: self.id,
        })
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let t = encode_token(&["OP", "S1"]);
        assert_eq!(
            decode_token(&t, 2).ok().flatten(),
            Some(vec!["OP".to_owned(), "S1".to_owned()])
        );
        assert!(decode_token("%%%", 2).is_err());
        assert!(decode_token(&t, 1).is_err());
        assert_eq!(decode_token("", 2).ok().flatten(), None);
        assert!(page_size(-1).is_err());
        assert_eq!(page_size(0).ok(), Some(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(10_000).ok(), Some(MAX_PAGE_SIZE));
    }

    #[test]
    fn keyset_pages_start_after_everything_and_carry_on_from_the_last_item() {
        let first = Keyset::from_request(2, "").expect("first");
        assert_eq!((first.limit, first.fetch()), (2, 3));
        let at = chrono::DateTime::from_timestamp(1_750_000_000, 0).expect("t");
        assert!(first.before_at > at);
        let row = |id: &str| Keyed {
            item: id.to_owned(),
            at,
            id: id.to_owned(),
        };
        let page = first.page(vec![row("c"), row("b"), row("a")]);
        assert_eq!(page.items, ["c", "b"]);
        let next = Keyset::from_request(2, &page.next_page_token).expect("next");
        assert_eq!((next.before_at, next.before_id.as_str()), (at, "b"));
        let last = next.page(vec![row("a")]);
        assert_eq!((last.items.len(), last.next_page_token.as_str()), (1, ""));
        assert!(Keyset::from_request(2, &encode_token(&["yesterday", "x"])).is_err());
    }
}
