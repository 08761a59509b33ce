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
}
