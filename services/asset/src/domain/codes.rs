//! Identifier and code rules: organisation codes (GB 11714), unified social credit codes
//! (GB 32100), administrative area codes (GB/T 2260), T/CEC 102 ids, phone numbers and dates.

use chargemesh_kit::Error;
use chrono::NaiveDate;

const ORG_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];
const USCC_CHARSET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// The GB 11714 check character of an 8-character organisation code body.
fn org_check_char(body: &str) -> Option<char> {
    let mut sum = 0;
    for (c, w) in body.chars().zip(ORG_WEIGHTS) {
        let value = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return None,
        };
        sum += value * w;
    }
    Some(match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        n => char::from_digit(n, 10)?,
    })
}

/// The GB 32100 check character of a 17-character credit code body.
fn uscc_check_char(body: &str) -> Option<char> {
    let mut sum = 0;
    for (c, w) in body.chars().zip(USCC_WEIGHTS) {
        sum += USCC_CHARSET.find(c)? as u32 * w;
    }
    USCC_CHARSET.chars().nth(((31 - sum % 31) % 31) as usize)
}

/// Validates a 9-character organisation code or an 18-character unified social credit code and
/// returns the T/CEC 102 OperatorID: the organisation code itself, or characters 9 to 17 of the
/// credit code.
pub fn operator_id_from_credit_code(field: &str, code: &str) -> Result<String, Error> {
    let code = code.trim();
    match code.len() {
        9 => {
            let (body, check) = code.split_at(8);
            match org_check_char(body) {
                Some(expected) if check.starts_with(expected) => Ok(code.to_owned()),
                Some(_) => Err(Error::bad_field(
                    field,
                    "organisation code check character is wrong (GB 11714)",
                )),
                None => Err(Error::bad_field(
                    field,
                    "organisation code has characters other than 0-9 and A-Z",
                )),
            }
        }
        18 => {
            let (body, check) = code.split_at(17);
            match uscc_check_char(body) {
                Some(expected) if check.starts_with(expected) => {}
                Some(_) => {
                    return Err(Error::bad_field(
                        field,
                        "unified social credit code check character is wrong (GB 32100)",
                    ));
                }
                None => {
                    return Err(Error::bad_field(
                        field,
                        "unified social credit code has a character outside its alphabet",
                    ));
                }
            }
            let org = &code[8..17];
            operator_id_from_credit_code(field, org).map_err(|_| {
                Error::bad_field(
                    field,
                    "the organisation code inside the credit code is not valid (GB 11714)",
                )
            })
        }
        _ => Err(Error::bad_field(
            field,
            "must be a 9-character organisation code or an 18-character unified social credit code",
        )),
    }
}

/// Province-level prefixes of GB/T 2260.
const PROVINCES: &[&str] = &[
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
    "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71",
    "81", "82",
];

/// A GB/T 2260 administrative area code: 6 digits under a known province.
pub fn validate_area_code(field: &str, code: &str) -> Result<(), Error> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::bad_field(
            field,
            "must be a 6-digit GB/T 2260 area code such as 330602",
        ));
    }
    if !PROVINCES.contains(&&code[..2]) {
        return Err(Error::bad_field(field, "is not under a GB/T 2260 province"));
    }
    Ok(())
}

pub use chargemesh_kit::area::{area_covers, area_prefix};

/// A T/CEC 102 style id: 1 to `max` ASCII letters, digits, '-' or '_'.
pub fn validate_id(field: &str, id: &str, max: usize) -> Result<(), Error> {
    if id.is_empty() || id.len() > max {
        return Err(Error::bad_field(
            field,
            format!("must have 1 to {max} characters"),
        ));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::bad_field(
            field,
            "may hold only letters, digits, '-' and '_'",
        ));
    }
    Ok(())
}

/// Required free text: trimmed, non-empty, at most `max` characters.
pub fn required_text(
    field: &str,
    value: &str,
    max: usize,
    rule: Option<&'static str>,
) -> Result<String, Error> {
    let value = value.trim();
    let problem = if value.is_empty() {
        "is required".to_owned()
    } else if value.chars().count() > max {
        format!("is longer than {max} characters")
    } else {
        return Ok(value.to_owned());
    };
    Err(match rule {
        Some(rule) => Error::invalid(field, rule, problem),
        None => Error::bad_field(field, problem),
    })
}

/// A published phone number: digits with optional '+', '-' and spaces, 5 to 20 digits
/// (hotlines such as 12345, 0575-88888888, 400-800-0000).
pub fn validate_phone(field: &str, phone: &str, rule: &'static str) -> Result<String, Error> {
    let phone = phone.trim();
    let digits = phone.bytes().filter(u8::is_ascii_digit).count();
    let allowed = phone
        .bytes()
        .enumerate()
        .all(|(i, b)| b.is_ascii_digit() || b == b'-' || b == b' ' || (b == b'+' && i == 0));
    if !allowed || !(5..=20).contains(&digits) {
        return Err(Error::invalid(
            field,
            rule,
            "must be a published phone number of 5 to 20 digits",
        ));
    }
    Ok(phone.to_owned())
}

/// A calendar date "YYYY-MM-DD".
pub fn parse_date(field: &str, value: &str) -> Result<NaiveDate, Error> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
        .map_err(|_| Error::bad_field(field, "must be a date YYYY-MM-DD"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_3_organisation_codes_carry_a_valid_check_character() {
        assert_eq!(
            operator_id_from_credit_code("c", "MA2D3K7Q0")
                .ok()
                .as_deref(),
            Some("MA2D3K7Q0")
        );
        assert_eq!(
            operator_id_from_credit_code("c", "123456788")
                .ok()
                .as_deref(),
            Some("123456788")
        );
        assert!(operator_id_from_credit_code("c", "MA2D3K7Q1").is_err());
        assert!(operator_id_from_credit_code("c", "ma2d3k7q0").is_err());
    }

    #[test]
    fn base_3_credit_codes_yield_their_embedded_operator_id() {
        assert_eq!(
            operator_id_from_credit_code("c", "91330602MA2D3K7Q02")
                .ok()
                .as_deref(),
            Some("MA2D3K7Q0")
        );
        assert!(operator_id_from_credit_code("c", "91330602MA2D3K7Q03").is_err());
        assert!(operator_id_from_credit_code("c", "91330602MA2D3K7Q0").is_err());
        assert!(operator_id_from_credit_code("c", "").is_err());
    }

    #[test]
    fn area_codes_follow_gb_t_2260() {
        assert!(validate_area_code("a", "330602").is_ok());
        assert!(validate_area_code("a", "990602").is_err());
        assert!(validate_area_code("a", "33060").is_err());
        assert!(validate_area_code("a", "3306O2").is_err());
    }

    #[test]
    fn ids_phones_and_dates() {
        assert!(validate_id("id", "SX-001_a", 20).is_ok());
        assert!(validate_id("id", "", 20).is_err());
        assert!(validate_id("id", "a/b", 20).is_err());
        assert!(validate_id("id", &"x".repeat(21), 20).is_err());
        assert!(validate_phone("p", "0575-88888888", "SIGN-2").is_ok());
        assert!(validate_phone("p", "12345", "SVC-1").is_ok());
        assert!(validate_phone("p", "call us", "SVC-1").is_err());
        assert!(parse_date("d", "2026-02-29").is_err());
        assert!(parse_date("d", "2028-02-29").is_ok());
    }
}
