//! Charge order ids in the T/CEC 102 `StartChargeSeq` form: the 9-character OperatorID followed
//! by 18 characters unique within the operator, 27 in all. Ours are the local (UTC+8) time to
//! the second, `yyMMddHHmmss`, then 6 base-36 characters of randomness; the store's uniqueness
//! (and the duplicate-order rule of REQ MON-9) catches the rare clash.

use chrono::{DateTime, Utc};

use chargemesh_kit::Error;

pub const OPERATOR_ID_LEN: usize = 9;
pub const UNIQUE_LEN: usize = 18;

const BASE36: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A new order id for `operator_id` at `now`, from `entropy` (any random number).
pub fn new_order_id(operator_id: &str, now: DateTime<Utc>, entropy: u64) -> String {
    let stamp = now
        .with_timezone(&chargemesh_kit::clock::china_offset())
        .format("%y%m%d%H%M%S");
    let mut tail = [b'0'; 6];
    let mut n = entropy;
    for c in tail.iter_mut().rev() {
        *c = BASE36[usize::try_from(n % 36).unwrap_or(0)];
        n /= 36;
    }
    format!("{operator_id}{stamp}{}", String::from_utf8_lossy(&tail))
}

/// Checks an order id reported by a platform: 27 letters and digits, starting with the
/// reporting operator's id.
pub fn check_order_id(field: &str, order_id: &str, operator_id: &str) -> Result<(), Error> {
    let rule = "the T/CEC 102 StartChargeSeq: the 9-character OperatorID and 18 letters or digits";
    if order_id.len() != OPERATOR_ID_LEN + UNIQUE_LEN
        || !order_id.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(Error::bad_field(field, format!("must be {rule}")));
    }
    if !order_id.starts_with(operator_id) {
        return Err(Error::bad_field(
            field,
            format!("must start with the operator's id {operator_id} ({rule})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_are_the_operator_id_and_eighteen_unique_characters() {
        let now = DateTime::parse_from_rfc3339("2026-03-01T01:02:03Z")
            .expect("t")
            .to_utc();
        let id = new_order_id("MA2D3K7Q0", now, 36 * 36 + 5);
        assert_eq!(id.len(), 27);
        assert_eq!(id, "MA2D3K7Q0260301090203000105");
        check_order_id("order_id", &id, "MA2D3K7Q0").expect("valid");
        assert_ne!(new_order_id("MA2D3K7Q0", now, 7), id);
        assert!(check_order_id("order_id", &id, "MA2D3K7Q1").is_err());
        assert!(check_order_id("order_id", "MA2D3K7Q0-26030109020300010", "MA2D3K7Q0").is_err());
        assert!(check_order_id("order_id", "MA2D3K7Q0123", "MA2D3K7Q0").is_err());
    }
}
