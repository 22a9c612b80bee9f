//! Resource quantities (`resource.Quantity`) and int-or-string values
//! (`intstr.IntOrString`).
//!
//! A [`Quantity`] keeps the text the user wrote, so its JSON is always the
//! same string back; it is parsed to a number only when asked, with the
//! suffixes Kubernetes accepts: binary (`Ki` `Mi` `Gi` `Ti` `Pi` `Ei`),
//! decimal (`n` `u` `m` `k` `M` `G` `T` `P` `E`) and exponents (`1e3`,
//! `5E-2`). Conversions round away from zero, as Kubernetes' `Value` and
//! `MilliValue` do, and report overflow instead of wrapping. On input a
//! JSON number (`cpu: 1` in YAML) is accepted and kept as its text.
//!
//! [`IntOrString`] resolves percentages against a total the way the
//! deployment controller resolves `maxSurge` (rounded up) and
//! `maxUnavailable` (rounded down).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Why a quantity could not be parsed or converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantity {quantity:?} is not valid: {reason}")]
    Invalid {
        quantity: String,
        reason: &'static str,
    },
    #[error("quantity {quantity:?} does not fit in a 64-bit integer")]
    Overflow { quantity: String },
}

/// An amount of a resource, as written by the user (`"100m"`, `"128Mi"`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Quantity(pub String);

/// A quantity split into `mantissa * 10^exp10 * 2^exp2`, with a sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Parsed {
    negative: bool,
    mantissa: u128,
    exp10: i32,
    exp2: u32,
}

impl Quantity {
    pub fn new(text: impl Into<String>) -> Quantity {
        Quantity(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A CPU-style quantity from thousandths: `1000` gives `"1"`, `250`
    /// gives `"250m"`.
    pub fn from_milli(milli: i64) -> Quantity {
        if milli % 1000 == 0 {
            Quantity((milli / 1000).to_string())
        } else {
            Quantity(format!("{milli}m"))
        }
    }

    /// A memory-style quantity from bytes, with the largest binary suffix
    /// that divides it exactly: `134217728` gives `"128Mi"`.
    pub fn from_bytes(bytes: i64) -> Quantity {
        const SUFFIXES: [(&str, u32); 6] = [
            ("Ei", 60),
            ("Pi", 50),
            ("Ti", 40),
            ("Gi", 30),
            ("Mi", 20),
            ("Ki", 10),
        ];
        if bytes != 0 {
            for (suffix, shift) in SUFFIXES {
                let unit = 1i64 << shift;
                if bytes % unit == 0 {
                    return Quantity(format!("{}{suffix}", bytes / unit));
                }
            }
        }
        Quantity(bytes.to_string())
    }

    /// Checks the syntax without converting.
    pub fn validate(&self) -> Result<(), QuantityError> {
        self.parse().map(|_| ())
    }

    /// The value in thousandths, rounded away from zero: `"100m"` is 100,
    /// `"1"` is 1000, `"0.5"` is 500.
    pub fn to_milli(&self) -> Result<i64, QuantityError> {
        self.scaled(3)
    }

    /// The value as a whole number, rounded away from zero: `"128Mi"` is
    /// 134217728, `"1G"` is 1000000000, `"100m"` is 1.
    pub fn to_i64(&self) -> Result<i64, QuantityError> {
        self.scaled(0)
    }

    /// The value in bytes; the same as [`Quantity::to_i64`], named for
    /// memory and storage.
    pub fn to_bytes(&self) -> Result<i64, QuantityError> {
        self.to_i64()
    }

    /// The value as a float, for scoring and display where exactness does
    /// not matter.
    pub fn to_f64(&self) -> Result<f64, QuantityError> {
        let p = self.parse()?;
        let magnitude = p.mantissa as f64 * 10f64.powi(p.exp10) * 2f64.powi(p.exp2 as i32);
        Ok(if p.negative { -magnitude } else { magnitude })
    }

    /// `value * 10^scale`, rounded away from zero.
    fn scaled(&self, scale: i32) -> Result<i64, QuantityError> {
        let p = self.parse()?;
        let overflow = || QuantityError::Overflow {
            quantity: self.0.clone(),
        };
        if p.mantissa == 0 {
            return Ok(0);
        }

        let mut numerator = p
            .mantissa
            .checked_mul(1u128 << p.exp2)
            .ok_or_else(overflow)?;
        let exponent = p.exp10 + scale;
        let magnitude = if exponent >= 0 {
            let factor = 10u128.checked_pow(exponent as u32).ok_or_else(overflow)?;
            numerator = numerator.checked_mul(factor).ok_or_else(overflow)?;
            numerator
        } else {
            match 10u128.checked_pow(exponent.unsigned_abs()) {
                // The divisor is larger than any u128: the value is a
                // nonzero fraction below one, which rounds up to one.
                None => 1,
                Some(divisor) => numerator.div_ceil(divisor),
            }
        };

        let magnitude = i64::try_from(magnitude).map_err(|_| overflow())?;
        Ok(if p.negative { -magnitude } else { magnitude })
    }

    fn parse(&self) -> Result<Parsed, QuantityError> {
        let text = self.0.as_str();
        let invalid = |reason| QuantityError::Invalid {
            quantity: text.to_string(),
            reason,
        };
        if text.is_empty() {
            return Err(invalid("it is empty"));
        }

        let (negative, rest) = match text.as_bytes()[0] {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_len);
        let (mantissa, mut exp10) = parse_decimal(number).map_err(invalid)?;

        let mut exp2 = 0;
        match suffix {
            "" => {}
            "Ki" => exp2 = 10,
            "Mi" => exp2 = 20,
            "Gi" => exp2 = 30,
            "Ti" => exp2 = 40,
            "Pi" => exp2 = 50,
            "Ei" => exp2 = 60,
            "n" => exp10 -= 9,
            "u" => exp10 -= 6,
            "m" => exp10 -= 3,
            "k" => exp10 += 3,
            "M" => exp10 += 6,
            "G" => exp10 += 9,
            "T" => exp10 += 12,
            "P" => exp10 += 15,
            "E" => exp10 += 18,
            _ if suffix.starts_with(['e', 'E']) => {
                let exponent: i32 = suffix[1..]
                    .parse()
                    .map_err(|_| invalid("the exponent is not an integer"))?;
                if exponent.unsigned_abs() > 1000 {
                    return Err(invalid("the exponent is out of range"));
                }
                exp10 += exponent;
            }
            _ => return Err(invalid("unknown suffix")),
        }

        Ok(Parsed {
            negative: negative && mantissa != 0,
            mantissa,
            exp10,
            exp2,
        })
    }
}

/// Parses `12`, `1.5`, `1.` or `.5` into a mantissa and a power of ten,
/// without trailing zeros after the point.
fn parse_decimal(number: &str) -> Result<(u128, i32), &'static str> {
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    if whole.is_empty() && fraction.is_empty() {
        return Err("it has no digits");
    }
    if fraction.contains('.') {
        return Err("it has more than one decimal point");
    }

    let fraction = fraction.trim_end_matches('0');
    let mut mantissa: u128 = 0;
    for digit in whole.bytes().chain(fraction.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(digit - b'0')))
            .ok_or("it has too many digits")?;
    }
    let exp10 = -i32::try_from(fraction.len()).map_err(|_| "it has too many digits")?;
    Ok((mantissa, exp10))
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Quantity {
    fn from(text: &str) -> Quantity {
        Quantity(text.to_string())
    }
}

impl From<String> for Quantity {
    fn from(text: String) -> Quantity {
        Quantity(text)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Quantity, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = Quantity;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity as a string or a number")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Quantity, E> {
                Ok(Quantity(v))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                if !v.is_finite() {
                    return Err(E::custom("a quantity must be a finite number"));
                }
                Ok(Quantity(v.to_string()))
            }
        }

        d.deserialize_any(Visitor)
    }
}

/// Why an int-or-string could not be resolved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid int-or-string value {value:?}: {reason}")]
pub struct IntOrStringError {
    pub value: String,
    pub reason: &'static str,
}

/// A value that is either an integer or a string such as `"25%"`
/// (`intstr.IntOrString`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i32),
    String(String),
}

impl Default for IntOrString {
    fn default() -> IntOrString {
        IntOrString::Int(0)
    }
}

impl IntOrString {
    /// The value against `total`, a percentage rounded up (as for
    /// `maxSurge`).
    pub fn resolve_round_up(&self, total: i32) -> Result<i32, IntOrStringError> {
        self.scaled_value(total, true)
    }

    /// The value against `total`, a percentage rounded down (as for
    /// `maxUnavailable`).
    pub fn resolve_round_down(&self, total: i32) -> Result<i32, IntOrStringError> {
        self.scaled_value(total, false)
    }

    /// An integer as itself; `"N%"` as N percent of `total`, rounded up or
    /// down. Any other string is an error.
    pub fn scaled_value(&self, total: i32, round_up: bool) -> Result<i32, IntOrStringError> {
        let text = match self {
            IntOrString::Int(value) => return Ok(*value),
            IntOrString::String(text) => text,
        };
        let error = |reason| IntOrStringError {
            value: text.clone(),
            reason,
        };
        let percent: i64 = text
            .strip_suffix('%')
            .ok_or_else(|| error("a string must be a percentage"))?
            .parse()
            .map_err(|_| error("the percentage is not an integer"))?;

        let product = percent * i64::from(total);
        let scaled = if round_up {
            div_ceil_signed(product, 100)
        } else {
            product.div_euclid(100)
        };
        i32::try_from(scaled).map_err(|_| error("the result does not fit in a 32-bit integer"))
    }
}

fn div_ceil_signed(numerator: i64, denominator: i64) -> i64 {
    let floor = numerator.div_euclid(denominator);
    if numerator.rem_euclid(denominator) == 0 {
        floor
    } else {
        floor + 1
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(value) => write!(f, "{value}"),
            IntOrString::String(text) => f.write_str(text),
        }
    }
}

impl From<i32> for IntOrString {
    fn from(value: i32) -> IntOrString {
        IntOrString::Int(value)
    }
}

impl From<&str> for IntOrString {
    fn from(text: &str) -> IntOrString {
        IntOrString::String(text.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        Quantity::from(text)
    }

    #[test]
    fn cpu_quantities_convert_to_millicores() {
        assert_eq!(q("100m").to_milli(), Ok(100));
        assert_eq!(q("1").to_milli(), Ok(1000));
        assert_eq!(q("0.5").to_milli(), Ok(500));
        assert_eq!(q(".25").to_milli(), Ok(250));
        assert_eq!(q("2.").to_milli(), Ok(2000));
        assert_eq!(q("1500u").to_milli(), Ok(2));
        assert_eq!(q("+3").to_milli(), Ok(3000));
        assert_eq!(q("-250m").to_milli(), Ok(-250));
        assert_eq!(q("0").to_milli(), Ok(0));
    }

    #[test]
    fn memory_quantities_convert_with_binary_and_decimal_suffixes() {
        assert_eq!(q("128Mi").to_bytes(), Ok(128 * 1024 * 1024));
        assert_eq!(q("1Gi").to_bytes(), Ok(1 << 30));
        assert_eq!(q("1G").to_bytes(), Ok(1_000_000_000));
        assert_eq!(q("500k").to_bytes(), Ok(500_000));
        assert_eq!(q("1e3").to_bytes(), Ok(1000));
        assert_eq!(q("5E-1").to_bytes(), Ok(1));
        assert_eq!(q("1.5Ki").to_bytes(), Ok(1536));
        assert_eq!(q("2Ti").to_bytes(), Ok(2 << 40));
        assert_eq!(q("1Pi").to_bytes(), Ok(1 << 50));
        assert_eq!(q("4Ei").to_bytes(), Ok(4 << 60));
        assert_eq!(q("3T").to_bytes(), Ok(3_000_000_000_000));
        assert_eq!(q("3P").to_bytes(), Ok(3_000_000_000_000_000));
        assert_eq!(q("1E").to_bytes(), Ok(1_000_000_000_000_000_000));
        assert_eq!(q("7M").to_bytes(), Ok(7_000_000));
    }

    #[test]
    fn fractions_round_away_from_zero() {
        assert_eq!(q("100m").to_i64(), Ok(1));
        assert_eq!(q("1n").to_i64(), Ok(1));
        assert_eq!(q("1n").to_milli(), Ok(1));
        assert_eq!(q("-100m").to_i64(), Ok(-1));
        assert_eq!(q("1e-900").to_i64(), Ok(1));
    }

    #[test]
    fn a_single_upper_e_is_exa_and_followed_by_digits_is_an_exponent() {
        assert_eq!(q("2E").to_i64(), Ok(2_000_000_000_000_000_000));
        assert_eq!(q("2E2").to_i64(), Ok(200));
        assert_eq!(q("2e+2").to_i64(), Ok(200));
    }

    #[test]
    fn values_past_i64_are_reported_as_overflow() {
        assert!(matches!(
            q("16Ei").to_i64(),
            Err(QuantityError::Overflow { .. })
        ));
        assert!(matches!(
            q("1e100").to_i64(),
            Err(QuantityError::Overflow { .. })
        ));
        assert!(matches!(
            q("9223372036854775807").to_milli(),
            Err(QuantityError::Overflow { .. })
        ));
        assert_eq!(q("9223372036854775807").to_i64(), Ok(i64::MAX));
    }

    #[test]
    fn malformed_quantities_are_rejected_with_the_text() {
        for bad in [
            "", "abc", "1.2.3", "1x", "1KiB", " 1", "1 ", "Mi", ".", "1ee", "-", "1e1.5",
        ] {
            let err = q(bad).to_i64().unwrap_err();
            assert!(
                matches!(err, QuantityError::Invalid { .. }),
                "{bad:?} gave {err:?}"
            );
            assert!(err.to_string().contains(&format!("{bad:?}")));
        }
    }

    #[test]
    fn floats_are_approximate_values() {
        assert_eq!(q("1.5").to_f64(), Ok(1.5));
        assert_eq!(q("1Ki").to_f64(), Ok(1024.0));
        assert_eq!(q("-2m").to_f64(), Ok(-0.002));
    }

    #[test]
    fn constructors_choose_compact_suffixes() {
        assert_eq!(Quantity::from_milli(250).as_str(), "250m");
        assert_eq!(Quantity::from_milli(2000).as_str(), "2");
        assert_eq!(Quantity::from_bytes(128 << 20).as_str(), "128Mi");
        assert_eq!(
            Quantity::from_bytes(16_318_044 * 1024).as_str(),
            "16318044Ki"
        );
        assert_eq!(Quantity::from_bytes(1000).as_str(), "1000");
        assert_eq!(Quantity::from_bytes(0).as_str(), "0");
    }

    #[test]
    fn quantities_serialize_as_strings_and_accept_numbers() {
        assert_eq!(serde_json::to_string(&q("1Gi")).unwrap(), r#""1Gi""#);
        let from_int: Quantity = serde_json::from_str("2").unwrap();
        let from_float: Quantity = serde_json::from_str("0.5").unwrap();
        assert_eq!((from_int.as_str(), from_float.as_str()), ("2", "0.5"));
        assert_eq!(from_float.to_milli(), Ok(500));
    }

    #[test]
    fn percentages_resolve_rounding_up_or_down() {
        let quarter = IntOrString::from("25%");
        assert_eq!(quarter.resolve_round_up(10), Ok(3));
        assert_eq!(quarter.resolve_round_down(10), Ok(2));
        assert_eq!(quarter.resolve_round_up(4), Ok(1));
        assert_eq!(IntOrString::from("0%").resolve_round_up(7), Ok(0));
        assert_eq!(IntOrString::from("100%").resolve_round_down(7), Ok(7));
        assert_eq!(IntOrString::Int(5).resolve_round_down(100), Ok(5));
    }

    #[test]
    fn non_percentage_strings_do_not_resolve() {
        assert!(IntOrString::from("5").resolve_round_up(10).is_err());
        assert!(IntOrString::from("x%").resolve_round_up(10).is_err());
    }

    #[test]
    fn int_or_string_json_is_untagged() {
        assert_eq!(serde_json::to_string(&IntOrString::Int(1)).unwrap(), "1");
        assert_eq!(
            serde_json::to_string(&IntOrString::from("25%")).unwrap(),
            r#""25%""#
        );
        let parsed: IntOrString = serde_json::from_str(r#""10%""#).unwrap();
        assert_eq!(parsed, IntOrString::from("10%"));
        let parsed: IntOrString = serde_json::from_str("3").unwrap();
        assert_eq!(parsed, IntOrString::Int(3));
    }
}
