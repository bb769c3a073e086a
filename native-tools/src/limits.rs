//! Server-side enforcement of the numeric bounds advertised in tool schemas.

use std::fmt::Display;

/// Return `value` (or `default` when absent), refusing values outside `min..=max`
/// with a clear message instead of silently clamping.
pub fn arg<T: PartialOrd + Display + Copy>(
    name: &str,
    value: Option<T>,
    default: T,
    min: T,
    max: T,
) -> Result<T, String> {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        return Err(format!("{name} must be between {min} and {max} (got {v})"));
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
            arg("n", Some(0u32), 5, 1, 10).unwrap_err(),
            "n must be between 1 and 10 (got 0)"
        );
        assert!(arg("n", Some(-1i64), 0, 0, i64::MAX).is_err());
    }
}
