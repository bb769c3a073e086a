//! Server-side enforcement of the numeric bounds advertised in tool schemas.

use std::fmt::Display;

/// A numeric argument outside its advertised bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} must be between {min} and {max} (got {got})")]
pub struct OutOfRange {
    /// Argument name.
    pub name: String,
    /// Lower bound (inclusive), formatted.
    pub min: String,
    /// Upper bound (inclusive), formatted.
    pub max: String,
    /// The value given, formatted.
    pub got: String,
}

/// Return `value` (or `default` when absent), refusing values outside `min..=max`
/// with a clear message instead of silently clamping.
pub fn arg<T: PartialOrd + Display + Copy>(
    name: &str,
    value: Option<T>,
    default: T,
    min: T,
    max: T,
) -> Result<T, OutOfRange> {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        return Err(OutOfRange {
            name: name.to_string(),
            min: min.to_string(),
            max: max.to_string(),
            got: v.to_string(),
        });
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert_eq!(arg("n", None, 5u32, 1, 10), Ok(5));
        assert_eq!(arg("n", Some(10u32), 5, 1, 10), Ok(10));
        assert_eq!(
            arg("n", Some(0u32), 5, 1, 10).unwrap_err().to_string(),
            "n must be between 1 and 10 (got 0)"
        );
        assert!(arg("n", Some(-1i64), 0, 0, i64::MAX).is_err());
    }
}
