//! Exactness checks for numbers on their way into typed columns: a JSON number keeps its digits
//! (serde_json's arbitrary precision), and a column may only take it if it keeps them too.

/// A decimal number as `digits × 10^exponent`, `digits` without leading or trailing zeros
/// (empty for zero).
#[derive(Debug, PartialEq, Eq)]
struct Canonical {
    negative: bool,
    digits: String,
    exponent: i64,
}

/// Reads JSON number syntax (`-12.50`, `1e3`, `2.5E-7`) into its canonical form.
fn canonical(text: &str) -> Option<Canonical> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], rest[at + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let all = format!("{whole}{fraction}");
    let mut exponent = exponent - fraction.len() as i64;
    let trimmed = all.trim_start_matches('0');
    let digits = trimmed.trim_end_matches('0');
    exponent += (trimmed.len() - digits.len()) as i64;
    Some(Canonical {
        negative: negative && !digits.is_empty(),
        digits: digits.to_owned(),
        exponent: if digits.is_empty() { 0 } else { exponent },
    })
}

/// True when `float` (parsed from `text`) is the number `text` says, digit for digit.
pub fn f64_keeps_digits(text: &str, float: f64) -> bool {
    float.is_finite()
        && canonical(text).is_some()
        && canonical(text) == canonical(&format!("{float:e}"))
}

/// The unscaled value of `text` in a `decimal(precision, scale)`, or why it does not fit.
pub fn fits_decimal(text: &str, precision: u8, scale: u8) -> Result<i128, String> {
    let number = canonical(text).ok_or_else(|| format!("{text} is not a number"))?;
    let shift = number.exponent + i64::from(scale);
    if shift < 0 {
        return Err(format!(
            "{text} has more than {scale} digits after the point"
        ));
    }
    let unscaled = format!("{}{}", number.digits, "0".repeat(shift as usize));
    let unscaled = unscaled.trim_start_matches('0');
    if unscaled.len() > usize::from(precision) {
        return Err(format!(
            "{text} has more than {precision} digits in all (decimal({precision},{scale}))"
        ));
    }
    let magnitude: i128 = if unscaled.is_empty() {
        0
    } else {
        unscaled
            .parse()
            .map_err(|_| format!("{text} is out of range"))?
    };
    Ok(if number.negative {
        -magnitude
    } else {
        magnitude
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_keep_short_decimals_and_refuse_long_ones() {
        for (text, keeps) in [
            ("0.1", true),
            ("1.50", true),
            ("1e3", true),
            ("-2.5E-7", true),
            ("123456789012345678", false),
            ("0.12345678901234567890123", false),
            ("9007199254740993", false),
            ("0", true),
        ] {
            let float: f64 = text.parse().expect("number");
            assert_eq!(f64_keeps_digits(text, float), keeps, "{text}");
        }
    }

    #[test]
    fn decimals_scale_exactly() {
        assert_eq!(fits_decimal("12.5", 10, 2), Ok(1250));
        assert_eq!(fits_decimal("-0.07", 4, 2), Ok(-7));
        assert_eq!(fits_decimal("1e2", 5, 2), Ok(10000));
        assert_eq!(fits_decimal("0", 3, 1), Ok(0));
        assert_eq!(
            fits_decimal("1.234", 10, 2),
            Err("1.234 has more than 2 digits after the point".into())
        );
        assert_eq!(
            fits_decimal("123456", 5, 0),
            Err("123456 has more than 5 digits in all (decimal(5,0))".into())
        );
        assert_eq!(
            fits_decimal("12345678901234567890123456789012345678", 38, 0),
            Ok(12345678901234567890123456789012345678)
        );
    }
}
