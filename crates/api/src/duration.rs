//! Go-style durations (`1m30s`), the format of every interval and timeout in Flagger's API.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a duration; write it like 30s, 1m or 1m30s")]
pub struct InvalidDuration {
    pub input: String,
}

/// Parses a sequence of decimal numbers with units ns, us, µs, ms, s, m or h.
pub fn parse(input: &str) -> Result<Duration, InvalidDuration> {
    let invalid = || InvalidDuration {
        input: input.to_string(),
    };
    let mut rest = input.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("2h0m1s"), Ok(Duration::from_secs(7201)));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in ["", "10", "s", "1x", "10sabc", "1..5s", "-1s", "1m 30s"] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
