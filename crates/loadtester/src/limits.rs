//! The bounds every number and duration in a payload must keep, so that no input overflows a
//! computation, exhausts the machine or holds a task slot for ever. A value out of bounds is
//! refused (400) with the field and the limit named.

use std::time::Duration;

/// The longest load, remote test or poll timeout a payload may ask for.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// The longest pause between two polls of a remote test.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(3600);
/// Requests per second of one load, all workers together.
pub const MAX_RATE: f64 = 1_000_000.0;
/// Workers (connections) of one load.
pub const MAX_CONCURRENCY: usize = 10_000;
/// The request body of a load.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Header lines of a load.
pub const MAX_HEADERS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("{field} {value:?} is not {expected}")]
    Invalid {
        field: String,
        value: String,
        expected: &'static str,
    },
    #[error("{field} {value:?} is out of bounds: {limit}")]
    OutOfBounds {
        field: String,
        value: String,
        limit: String,
    },
}

fn invalid(field: &str, value: &str, expected: &'static str) -> LimitError {
    LimitError::Invalid {
        field: field.to_string(),
        value: value.to_string(),
        expected,
    }
}

fn out_of_bounds(field: &str, value: &str, limit: String) -> LimitError {
    LimitError::OutOfBounds {
        field: field.to_string(),
        value: value.to_string(),
        limit,
    }
}

/// A Go duration (`30s`, `1m30s`, `1.5h`), longer than zero and at most `max`.
pub fn duration(field: &str, text: &str, max: Duration) -> Result<Duration, LimitError> {
    let parsed = serin_api::duration::parse_positive(text.trim())
        .map_err(|_| invalid(field, text, "a positive duration such as 30s, 5m or 1h"))?;
    if parsed > max {
        return Err(out_of_bounds(field, text, format!("at most {}", go_duration(max))));
    }
    Ok(parsed)
}

/// A whole number of seconds, at most `max`.
pub fn seconds(field: &str, text: &str, max: Duration) -> Result<Duration, LimitError> {
    let seconds: u64 = text
        .trim()
        .parse()
        .map_err(|_| invalid(field, text, "a whole number of seconds"))?;
    if seconds > max.as_secs() {
        return Err(out_of_bounds(field, text, format!("at most {} seconds", max.as_secs())));
    }
    Ok(Duration::from_secs(seconds))
}

/// Requests per second: 0 (as fast as possible) up to [`MAX_RATE`].
pub fn rate(field: &str, text: &str) -> Result<f64, LimitError> {
    let rate: f64 = text
        .trim()
        .parse()
        .ok()
        .filter(|r: &f64| r.is_finite())
        .ok_or_else(|| invalid(field, text, "a number of requests per second"))?;
    check_rate(field, text, rate)?;
    Ok(rate)
}

/// A rate already read as a number; below one request a second would leave a load waiting
/// longer than it may last.
pub fn check_rate(field: &str, text: &str, rate: f64) -> Result<(), LimitError> {
    if !rate.is_finite() || !(0.0..=MAX_RATE).contains(&rate) || (rate > 0.0 && rate < 0.001) {
        return Err(out_of_bounds(
            field,
            text,
            format!("0 (as fast as possible) or from 0.001 to {MAX_RATE}"),
        ));
    }
    Ok(())
}

/// A whole number from `min` to `max`.
pub fn count(field: &str, text: &str, min: usize, max: usize) -> Result<usize, LimitError> {
    let count: usize = text
        .trim()
        .parse()
        .map_err(|_| invalid(field, text, "a whole number"))?;
    check_count(field, text, count, min, max)?;
    Ok(count)
}

pub fn check_count(field: &str, text: &str, count: usize, min: usize, max: usize) -> Result<(), LimitError> {
    if count < min || count > max {
        return Err(out_of_bounds(field, text, format!("from {min} to {max}")));
    }
    Ok(())
}

/// The duration as Go prints it for the whole hours, minutes and seconds the limits use.
fn go_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match (seconds / 3600, seconds % 3600 / 60, seconds % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

/// A flag's duration (`-timeout 1h`), in Go's syntax as Flagger's load tester reads it.
pub fn flag_duration(text: &str) -> Result<Duration, String> {
    serin_api::duration::parse_positive(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hostile_values_are_refused_with_the_field_and_the_limit() {
        let refused = [
            duration("metadata.duration", "18446744073709551615s", MAX_DURATION),
            duration("metadata.duration", "9999999999h", MAX_DURATION),
            duration("metadata.duration", "25h", MAX_DURATION),
            duration("metadata.duration", "-1s", MAX_DURATION),
        ];
        for result in refused {
            assert!(result.is_err(), "{result:?}");
        }
        assert_eq!(
            duration("metadata.duration", "25h", MAX_DURATION)
                .map_err(|e| e.to_string())
                .expect_err("refused"),
            "metadata.duration \"25h\" is out of bounds: at most 24h0m0s"
        );
        assert!(rate("metadata.rate", "1e-300").is_err());
        assert!(rate("metadata.rate", "inf").is_err());
        assert!(rate("metadata.rate", "NaN").is_err());
        assert_eq!(
            count("metadata.concurrency", "1e19", 1, MAX_CONCURRENCY)
                .map_err(|e| e.to_string())
                .expect_err("refused"),
            "metadata.concurrency \"1e19\" is not a whole number"
        );
        assert_eq!(
            count("metadata.concurrency", "18446744073709551615", 1, MAX_CONCURRENCY)
                .map_err(|e| e.to_string())
                .expect_err("refused"),
            "metadata.concurrency \"18446744073709551615\" is out of bounds: from 1 to 10000"
        );
        assert_eq!(duration("d", "1m30s", MAX_DURATION), Ok(Duration::from_secs(90)));
        assert_eq!(rate("r", "0"), Ok(0.0));
    }

    proptest! {
        /// Whatever the text, a duration either fits the bound or is refused: never a panic.
        #[test]
        fn any_text_is_a_bounded_duration_or_an_error(text in "\\PC{0,24}") {
            if let Ok(parsed) = duration("d", &text, MAX_DURATION) {
                prop_assert!(parsed > Duration::ZERO && parsed <= MAX_DURATION);
            }
        }

        #[test]
        fn any_number_of_units_is_a_bounded_duration_or_an_error(value in any::<u64>(), unit in "(ns|us|ms|s|m|h)") {
            if let Ok(parsed) = duration("d", &format!("{value}{unit}"), MAX_DURATION) {
                prop_assert!(parsed <= MAX_DURATION);
            }
        }

        #[test]
        fn any_rate_is_bounded_or_an_error(value in any::<f64>()) {
            if let Ok(parsed) = rate("r", &value.to_string()) {
                prop_assert!(parsed.is_finite() && (0.0..=MAX_RATE).contains(&parsed));
            }
        }

        #[test]
        fn any_count_is_bounded_or_an_error(text in "[0-9eE.+-]{0,24}") {
            if let Ok(parsed) = count("c", &text, 1, MAX_CONCURRENCY) {
                prop_assert!((1..=MAX_CONCURRENCY).contains(&parsed));
            }
        }
    }
}
