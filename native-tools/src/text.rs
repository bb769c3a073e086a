//! Turning bytes from files, HTTP bodies and Kafka records into JSON text.

use base64::Engine as _;

/// Standard base64 (with padding) of `data`.
pub fn base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// `bytes` as UTF-8 text when they are, else as base64; returns the text and
/// its encoding ("utf-8" or "base64"). When `truncated` (the bytes are a
/// prefix of something longer), a multi-byte character cut at the end is
/// dropped and the valid prefix is kept as text.
pub fn text_or_base64(bytes: Vec<u8>, truncated: bool) -> (String, &'static str) {
    match String::from_utf8(bytes) {
        Ok(s) => (s, "utf-8"),
        Err(e) => {
            let bytes = e.into_bytes();
            match std::str::from_utf8(&bytes) {
                Err(u) if truncated && u.error_len().is_none() => (
                    String::from_utf8_lossy(&bytes[..u.valid_up_to()]).into_owned(),
                    "utf-8",
                ),
                _ => (base64(&bytes), "base64"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
    }

    #[test]
    fn text_binary_and_cut_characters() {
        assert_eq!(
            text_or_base64(b"hi".to_vec(), false),
            ("hi".into(), "utf-8")
        );
        assert_eq!(text_or_base64(vec![0xff, 0x00], false).1, "base64");
        // "é" is c3 a9: cut after c3 it is text when truncated, binary when whole.
        assert_eq!(
            text_or_base64(vec![b'a', 0xc3], true),
            ("a".into(), "utf-8")
        );
        assert_eq!(text_or_base64(vec![b'a', 0xc3], false).1, "base64");
    }
}
