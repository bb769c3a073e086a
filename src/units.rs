//! Quantities written by people: durations (`30s`, `1m30s`) and byte sizes
//! (`500MB`, `25MiB`), parsed one way wherever they are written (images.yaml
//! and the command line).

use serde::Deserialize;
use serde::de::{self, Deserializer};

/// A duration written as Docker writes them: `30s`, `1m30s`, `500ms`, `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// Parses a Go-style duration made of number+unit pairs (ns, us, ms, s, m,
    /// h, and d for days).
    pub fn parse(s: &str) -> Result<Self, String> {
        let expected =
            || format!("expected a duration like \"30s\", \"1m30s\" or \"500ms\", found \"{s}\"");
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(expected());
        }
        let mut total: u128 = 0;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(expected());
            }
            let n: u128 = rest[..digits].parse().map_err(|_| expected())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let nanos_per: u128 = match &rest[..unit_len] {
                "ns" => 1,
                "us" | "µs" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                "d" => 86_400_000_000_000,
                _ => return Err(expected()),
            };
            rest = &rest[unit_len..];
            total = total
                .checked_add(n.checked_mul(nanos_per).ok_or_else(expected)?)
                .ok_or_else(expected)?;
        }
        let nanos = u64::try_from(total).map_err(|_| expected())?;
        Ok(Self(std::time::Duration::from_nanos(nanos)))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d).map_err(|_| {
            de::Error::custom("expected a duration string like \"30s\" or \"1m30s\"")
        })?;
        Duration::parse(&s).map_err(de::Error::custom)
    }
}

/// A size written as `500MB`, `25MiB`, `1GB` or a plain number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses a size with an optional SI (k/kB, M/MB, G/GB) or IEC (KiB, MiB,
    /// GiB) unit.
    pub fn parse(s: &str) -> Result<Self, String> {
        let expected = || {
            format!("expected a size like \"500MB\", \"25MiB\" or a number of bytes, found \"{s}\"")
        };
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        if split == 0 {
            return Err(expected());
        }
        let n: u64 = t[..split].parse().map_err(|_| expected())?;
        let mult: u64 = match t[split..].trim() {
            "" | "B" => 1,
            "k" | "K" | "kB" | "KB" => 1_000,
            "M" | "MB" => 1_000_000,
            "G" | "GB" => 1_000_000_000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => return Err(expected()),
        };
        n.checked_mul(mult).map(Self).ok_or_else(expected)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u64),
            Str(String),
        }
        match Raw::deserialize(d)
            .map_err(|_| de::Error::custom("expected a size like \"500MB\""))?
        {
            Raw::Num(n) => Ok(Self(n)),
            Raw::Str(s) => ByteSize::parse(&s).map_err(de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ms = |s| Duration::parse(s).map(|d| d.0.as_millis());
        assert_eq!(ms("30s"), Ok(30_000));
        assert_eq!(ms("1m30s"), Ok(90_000));
        assert_eq!(ms("500ms"), Ok(500));
        assert_eq!(ms("1h"), Ok(3_600_000));
        assert_eq!(ms("7d"), Ok(604_800_000));
        for bad in ["", "30", "s", "1x", "-1s", "99999999999999999999h"] {
            assert!(Duration::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        let b = |s| ByteSize::parse(s).map(|b| b.0);
        assert_eq!(b("500MB"), Ok(500_000_000));
        assert_eq!(b("5MiB"), Ok(5 << 20));
        assert_eq!(b("65536"), Ok(65536));
        assert_eq!(b("1k"), Ok(1000));
        assert_eq!(b("2 GiB"), Ok(2 << 30));
        for bad in ["", "MB", "3XB", "1.5MB", "99999999999999999999GB"] {
            assert!(ByteSize::parse(bad).is_err(), "{bad}");
        }
    }
}

/// Formats a Unix time as RFC 3339 UTC (`1970-01-01T00:00:00Z`).
#[must_use]
pub fn rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod rfc3339_tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_epochs() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
