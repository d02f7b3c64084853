//! Deterministic ids: the same trip and source position always give the same id,
//! so a redelivered bus produces the same passenger ids and output keys.

use xxhash_rust::xxh3::Xxh3;

/// A 16-hex-digit id derived from `parts` (stable across runs and platforms).
pub fn stable_id(parts: &[&str]) -> String {
    let mut hasher = Xxh3::new();
    for part in parts {
        hasher.update(part.as_bytes());
        // A separator keeps ["ab", "c"] and ["a", "bc"] apart.
        hasher.update(&[0]);
    }
    format!("{:016x}", hasher.digest())
}

/// A new trip id from the start time, safe in S3 keys and paths, e.g.
/// `20261122T013718Z-3f2a9c01`. The suffix comes from the nanoseconds and `discriminator`
/// (e.g. a request id), so trips started in the same second differ.
pub fn trip_id(started: chrono::DateTime<chrono::Utc>, discriminator: &str) -> String {
    let stamp = started.format("%Y%m%dT%H%M%SZ").to_string();
    let nanos = started.timestamp_subsec_nanos().to_string();
    let suffix = stable_id(&[&stamp, &nanos, discriminator]);
    format!("{stamp}-{}", &suffix[..8])
}

/// Checks that a trip id is usable as one segment of an object key.
pub fn validate_trip_id(trip: &str) -> Result<(), String> {
    let ok = !trip.is_empty()
        && trip.len() <= 128
        && trip
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && trip != "."
        && trip != "..";
    if ok {
        Ok(())
    } else {
        Err(format!(
            "trip id {trip:?} must be 1-128 characters of letters, digits, '-', '_' or '.'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_id_is_deterministic_and_separates_parts() {
        assert_eq!(stable_id(&["t", "a.csv"]), stable_id(&["t", "a.csv"]));
        assert_ne!(stable_id(&["ab", "c"]), stable_id(&["a", "bc"]));
        assert_eq!(stable_id(&["x"]).len(), 16);
    }

    #[test]
    fn trip_ids_are_key_safe() {
        let t = chrono::DateTime::from_timestamp(1_795_000_000, 0).expect("valid time");
        let id = trip_id(t, "abc");
        assert!(id.starts_with("2026"), "{id}");
        assert!(validate_trip_id(&id).is_ok());
        assert!(validate_trip_id("../etc").is_err());
        assert!(validate_trip_id("").is_err());
    }
}
