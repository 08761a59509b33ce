//! Distances for the on-site check-in (REQ FAULT-7).

/// Great-circle distance in metres between two (longitude, latitude) points in degrees.
pub fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    const EARTH_RADIUS_M: f64 = 6_371_008.8;
    let (lon1, lat1) = (a.0.to_radians(), a.1.to_radians());
    let (lon2, lat2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kilometre_of_latitude_is_about_a_kilometre() {
        let d = distance_m((120.58, 30.0), (120.58, 30.009));
        assert!((d - 1000.8).abs() < 5.0, "{d}");
        assert!(distance_m((120.58, 30.0), (120.58, 30.0)) < 1e-6);
    }
}
