//! Administrative areas (GB/T 2260): which codes an area covers, for regulators' scopes.

/// The prefix every area code inside `area` starts with: a province code (`330000`) covers
/// `33xxxx`, a city code (`330600`) covers `3306xx`, a district code only itself.
pub fn area_prefix(area: &str) -> &str {
    if area.len() != 6 {
        return area;
    }
    if area.ends_with("0000") {
        &area[..2]
    } else if area.ends_with("00") {
        &area[..4]
    } else {
        area
    }
}

/// Whether `code` is an area code: six digits (GB/T 2260), not all zero.
pub fn is_area_code(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) && code != "000000"
}

/// Whether `code` lies within `area`.
pub fn area_covers(area: &str, code: &str) -> bool {
    code.starts_with(area_prefix(area))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_city_covers_its_districts_and_a_province_its_cities() {
        assert!(area_covers("330600", "330602"));
        assert!(area_covers("330600", "330600"));
        assert!(!area_covers("330600", "330102"));
        assert!(area_covers("330000", "330102"));
        assert!(!area_covers("330000", "310101"));
        assert!(area_covers("330602", "330602"));
        assert!(!area_covers("330602", "330603"));
    }

    #[test]
    fn an_area_code_is_six_digits() {
        assert!(is_area_code("330600"));
        for bad in ["", "3306", "33060a", "3306000", "000000"] {
            assert!(!is_area_code(bad), "{bad:?}");
        }
    }
}
