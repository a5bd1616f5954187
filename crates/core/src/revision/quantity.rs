//! How Go's `resource.ParseQuantity` (k8s.io/apimachinery) stores a quantity it decodes from JSON:
//! spew prints that internal form, so Flagger's hash depends on it.

/// A quantity as `resource.Quantity` holds it after decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// `i: int64Amount{value, scale}`, with the original text kept in `s` when it was canonical.
    Int {
        value: i64,
        scale: i32,
        text: String,
        format: &'static str,
    },
    /// `d: infDecAmount{*inf.Dec}` with scale 9 (nano): the magnitude of the unscaled value.
    Dec {
        negative: bool,
        unscaled: u128,
        format: &'static str,
    },
}

const DECIMAL_SI: &str = "DecimalSI";
const BINARY_SI: &str = "BinarySI";
const DECIMAL_EXPONENT: &str = "DecimalExponent";
const MAX_INT64_FACTORS: i32 = 18;
const NANO: i32 = -9;

/// `None` for text the API server would not have accepted, or beyond what serin reproduces
/// (magnitudes of 2^128 nano-units and more).
pub fn parse(text: &str) -> Option<Stored> {
    if text.is_empty() {
        return None;
    }
    if text == "0" {
        return Some(Stored::Int {
            value: 0,
            scale: 0,
            text: text.to_string(),
            format: DECIMAL_SI,
        });
    }
    let parts = split(text)?;
    let (base, exponent, format) = interpret(parts.suffix)?;
    let (num, denom) = (parts.num, parts.denom);
    let digits = (num.len() + denom.len()) as i32;
    let mut scale = 0;
    let mut mantissa: i64 = 1;
    let precision = match format {
        BINARY_SI if exponent >= 0 && denom.is_empty() => {
            mantissa <<= exponent;
            15 - num.len() as i32 - exponent * 3 / 10 - 1
        }
        BINARY_SI => -1,
        _ => {
            scale = exponent;
            MAX_INT64_FACTORS - digits
        }
    };
    if precision >= 0 {
        scale -= denom.len() as i32;
        if scale >= NANO {
            let shifted = format!("{num}{denom}");
            let value: i64 = shifted.parse().ok()?;
            if let Some(result) = value.checked_mul(mantissa) {
                let result = if parts.positive { result } else { -result };
                let canonical = match format {
                    BINARY_SI => exponent % 10 == 0 && value & 0x07 != 0,
                    _ => scale % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0'),
                };
                return Some(Stored::Int {
                    value: result,
                    scale,
                    text: if canonical { text.to_string() } else { String::new() },
                    format,
                });
            }
        }
    }
    decimal(&parts, base, exponent, format)
}

/// The slow path: an `inf.Dec` rounded up to nano units.
fn decimal(parts: &Parts, base: u32, exponent: i32, format: &'static str) -> Option<Stored> {
    let unscaled: u128 = format!("{}{}", parts.value_num, parts.value_denom).parse().ok()?;
    let mut scale = parts.value_denom.len() as i32;
    let mut unscaled = unscaled;
    if base == 10 {
        scale -= exponent;
    } else {
        unscaled = unscaled.checked_mul(1u128.checked_shl(exponent as u32)?)?;
    }
    if unscaled != 0 {
        // `Round(amount, 9, RoundUp)`: to scale 9, away from zero.
        if scale <= 9 {
            unscaled = unscaled.checked_mul(10u128.checked_pow((9 - scale) as u32)?)?;
        } else {
            let divisor = 10u128.checked_pow((scale - 9) as u32)?;
            unscaled = unscaled / divisor + u128::from(!unscaled.is_multiple_of(divisor));
        }
    } else {
        // Zero keeps its scale, which serin does not reproduce.
        return None;
    }
    let mut format = format;
    if format == BINARY_SI {
        let max = i64::MAX as u128 * 1_000_000_000;
        unscaled = unscaled.min(max);
        if unscaled < 1_000_000_000 {
            format = DECIMAL_SI;
        }
    }
    Some(Stored::Dec {
        negative: !parts.positive,
        unscaled,
        format,
    })
}

struct Parts<'a> {
    positive: bool,
    /// The digits before the point, leading zeros dropped ("0" when none are left).
    num: &'a str,
    denom: &'a str,
    /// What `inf.Dec.SetString` reads: the digits before and after the point as written.
    value_num: &'a str,
    value_denom: &'a str,
    suffix: &'a str,
}

/// `parseQuantityString`.
fn split(text: &str) -> Option<Parts<'_>> {
    let bytes = text.as_bytes();
    let (positive, sign_len) = match bytes.first() {
        Some(b'-') => (false, 1),
        Some(b'+') => (true, 1),
        _ => (true, 0),
    };
    let unsigned = &text[sign_len..];
    let digits_end = unsigned.find(|c: char| !c.is_ascii_digit()).unwrap_or(unsigned.len());
    let integer = &unsigned[..digits_end];
    let num = match integer.trim_start_matches('0') {
        "" => "0",
        trimmed => trimmed,
    };
    let rest = &unsigned[digits_end..];
    let (denom, rest) = match rest.strip_prefix('.') {
        Some(after) => {
            let end = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
            (&after[..end], &after[end..])
        }
        None => ("", rest),
    };
    let suffix_valid = {
        let letters = rest.trim_start_matches(|c: char| "eEinumkKMGTP".contains(c));
        let signless = letters.strip_prefix(['-', '+']).unwrap_or(letters);
        signless.bytes().all(|b| b.is_ascii_digit())
    };
    suffix_valid.then_some(Parts {
        positive,
        num,
        denom,
        value_num: integer,
        value_denom: denom,
        suffix: rest,
    })
}

/// `suffixHandler.interpret`: (base, exponent, format).
fn interpret(suffix: &str) -> Option<(u32, i32, &'static str)> {
    let decimal = match suffix {
        "n" => Some(-9),
        "u" => Some(-6),
        "m" => Some(-3),
        "" => Some(0),
        "k" => Some(3),
        "M" => Some(6),
        "G" => Some(9),
        "T" => Some(12),
        "P" => Some(15),
        "E" => Some(18),
        _ => None,
    };
    if let Some(exponent) = decimal {
        return Some((10, exponent, DECIMAL_SI));
    }
    let binary = match suffix {
        "Ki" => Some(10),
        "Mi" => Some(20),
        "Gi" => Some(30),
        "Ti" => Some(40),
        "Pi" => Some(50),
        "Ei" => Some(60),
        _ => None,
    };
    if let Some(exponent) = binary {
        return Some((2, exponent, BINARY_SI));
    }
    let exponent = suffix.strip_prefix(['e', 'E']).filter(|e| !e.is_empty())?;
    Some((10, exponent.parse::<i64>().ok()? as i32, DECIMAL_EXPONENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(value: i64, scale: i32, text: &str, format: &'static str) -> Option<Stored> {
        Some(Stored::Int {
            value,
            scale,
            text: text.to_string(),
            format,
        })
    }

    #[test]
    fn canonical_quantities_keep_their_text() {
        assert_eq!(parse("100m"), int(100, -3, "100m", DECIMAL_SI));
        assert_eq!(parse("1"), int(1, 0, "1", DECIMAL_SI));
        assert_eq!(parse("5Mi"), int(5 << 20, 0, "5Mi", BINARY_SI));
        assert_eq!(parse("0"), int(0, 0, "0", DECIMAL_SI));
        assert_eq!(parse("1e3"), int(1, 3, "1e3", DECIMAL_EXPONENT));
    }

    #[test]
    fn other_forms_lose_it() {
        assert_eq!(parse("1000m"), int(1000, -3, "", DECIMAL_SI));
        assert_eq!(parse("0.5"), int(5, -1, "", DECIMAL_SI));
        assert_eq!(parse("1024Mi"), int(1 << 30, 0, "", BINARY_SI));
        assert_eq!(parse("128Mi"), int(128 << 20, 0, "", BINARY_SI));
        assert_eq!(parse("-100m"), int(-100, -3, "-100m", DECIMAL_SI));
    }

    #[test]
    fn fractions_of_binary_units_become_decimals() {
        assert_eq!(
            parse("1.5Gi"),
            Some(Stored::Dec {
                negative: false,
                unscaled: 1_610_612_736 * 1_000_000_000,
                format: BINARY_SI
            })
        );
        assert_eq!(
            parse("0.5Ki"),
            Some(Stored::Dec {
                negative: false,
                unscaled: 512 * 1_000_000_000,
                format: BINARY_SI
            })
        );
    }

    #[test]
    fn nonsense_is_refused() {
        assert_eq!(parse(""), None);
        assert_eq!(parse("1x"), None);
        assert_eq!(parse("1e"), None);
    }
}
