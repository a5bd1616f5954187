//! Go durations (`1m30s`, `-1.5h`, `.5s`), the format of every interval and timeout in Flagger's
//! API, parsed exactly as Go's `time.ParseDuration` parses them (same accepted inputs, same
//! overflow limit), so a value means the same to serin as to Flagger.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration; write it like 30s, 1m or 1m30s")]
    Invalid(String),
    #[error("{0:?} is not a positive duration; write one such as 30s or 1m")]
    NotPositive(String),
}

/// Nanoseconds per unit, as Go's `unitMap` (both micro signs are accepted).
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => return None,
    })
}

/// The signed number of nanoseconds `input` stands for, as Go's `time.ParseDuration`.
pub fn parse_go(input: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid(input.to_string());
    let (negative, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        if !(rest.starts_with('.') || rest.starts_with(|c: char| c.is_ascii_digit())) {
            return Err(invalid());
        }
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let whole_text = &rest[..digits];
        let mut whole: u64 = 0;
        for digit in whole_text.bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|w| w.checked_add(u64::from(digit - b'0')))
                .filter(|w| *w <= LIMIT)
                .ok_or_else(invalid)?;
        }
        rest = &rest[digits..];
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut fraction_digits = 0;
        if let Some(after_dot) = rest.strip_prefix('.') {
            let digits = after_dot.find(|c: char| !c.is_ascii_digit()).unwrap_or(after_dot.len());
            fraction_digits = digits;
            for digit in after_dot[..digits].bytes() {
                // Like Go, digits beyond what fits are dropped rather than overflowing.
                if let Some(next) = fraction
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(digit - b'0')))
                    && next <= LIMIT
                {
                    fraction = next;
                    scale *= 10.0;
                }
            }
            rest = &after_dot[digits..];
        }
        if whole_text.is_empty() && fraction_digits == 0 {
            return Err(invalid());
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(invalid());
        }
        let unit = unit_nanos(&rest[..unit_len]).ok_or_else(invalid)?;
        rest = &rest[unit_len..];
        if whole > LIMIT / unit {
            return Err(invalid());
        }
        let mut value = whole * unit;
        if fraction > 0 {
            // Go computes this in float64 and truncates, so the same rounding applies here.
            value = value
                .checked_add((fraction as f64 * (unit as f64 / scale)) as u64)
                .ok_or_else(invalid)?;
            if value > LIMIT {
                return Err(invalid());
            }
        }
        total = total.checked_add(value).filter(|t| *t <= LIMIT).ok_or_else(invalid)?;
    }
    match (negative, i64::try_from(total)) {
        (true, _) => Ok(0i64.wrapping_sub_unsigned(total)),
        (false, Ok(nanos)) => Ok(nanos),
        (false, Err(_)) => Err(invalid()),
    }
}

/// A duration that must be longer than zero (an interval, a timeout).
pub fn parse_positive(input: &str) -> Result<Duration, DurationError> {
    let nanos = parse_go(input)?;
    u64::try_from(nanos)
        .ok()
        .filter(|n| *n > 0)
        .map(Duration::from_nanos)
        .ok_or_else(|| DurationError::NotPositive(input.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases from Go's own `time` package tests (parseDurationTests).
    #[test]
    fn parses_what_go_parses() {
        let cases: [(&str, i64); 28] = [
            ("0", 0),
            ("5s", 5_000_000_000),
            ("30s", 30_000_000_000),
            ("1478s", 1_478_000_000_000),
            ("-5s", -5_000_000_000),
            ("+5s", 5_000_000_000),
            ("-0", 0),
            ("+0", 0),
            ("5.0s", 5_000_000_000),
            ("5.6s", 5_600_000_000),
            ("5.s", 5_000_000_000),
            (".5s", 500_000_000),
            ("1.0s", 1_000_000_000),
            ("1.00s", 1_000_000_000),
            ("1.004s", 1_004_000_000),
            ("100.00100s", 100_001_000_000),
            ("10ns", 10),
            ("11us", 11_000),
            ("12\u{b5}s", 12_000),
            ("12\u{3bc}s", 12_000),
            ("13ms", 13_000_000),
            ("14s", 14_000_000_000),
            ("15m", 900_000_000_000),
            ("16h", 57_600_000_000_000),
            ("3h30m", 12_600_000_000_000),
            ("-1m30s", -90_000_000_000),
            ("9223372036854775807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
        ];
        for (input, nanos) in cases {
            assert_eq!(parse_go(input), Ok(nanos), "{input}");
        }
        assert_eq!(parse_go("0.3333333333333333333h"), Ok(1_200_000_000_000));
        assert_eq!(parse_go("0.100000000000000000000h"), Ok(360_000_000_000));
        assert_eq!(parse_go("-1s"), Ok(-1_000_000_000));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "",
            "3",
            "-",
            "s",
            ".",
            "-.",
            ".s",
            "+.s",
            "1d",
            "10sabc",
            "1..5s",
            "1m 30s",
            " 1s",
            "\u{0}",
            "9223372036854775808ns",
            "9223372036854775.808us",
            "9223372036854ms775us808ns",
            "2562048h",
        ] {
            assert!(parse_go(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn intervals_and_timeouts_must_be_positive() {
        assert_eq!(parse_positive("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_positive("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_positive("-1s"), Err(DurationError::NotPositive("-1s".into())));
        assert_eq!(parse_positive("0"), Err(DurationError::NotPositive("0".into())));
        assert_eq!(parse_positive("1x"), Err(DurationError::Invalid("1x".into())));
        assert_eq!(
            parse_positive("2562047h"),
            Ok(Duration::from_secs(2_562_047 * 3_600)),
            "the longest Go duration still parses"
        );
    }
}
