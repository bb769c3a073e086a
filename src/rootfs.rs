//! Files aelimg writes into the root layer of a `scratch` image.
//!
//! Like apko, the account files are synthesized from the spec (root plus the
//! image's user), never copied from the build host.

use base64::Engine as _;
use serde::Serialize;

/// The runtime user of an image.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Group name.
    pub group: String,
    /// Home directory.
    pub home: String,
}

/// `/etc/nsswitch.conf`: files first, then DNS (Go and some libcs read it).
pub const NSSWITCH: &str = "hosts: files dns\n";

/// uid and gid of `nobody` and `nogroup`.
const NOBODY: u32 = 65534;

/// `/etc/passwd` with root, the image's user and nobody: one line each,
/// the user's only when it is neither root nor nobody. The plan has
/// checked every field (no `:`, newline or NUL; root's and nobody's ids
/// only under their own names), so each field is one field and each
/// account one line.
#[must_use]
pub fn passwd(u: &User) -> Vec<u8> {
    let mut s = String::from("root:x:0:0:root:/root:/sbin/nologin\n");
    if u.uid != 0 && u.uid != NOBODY {
        s.push_str(&format!(
            "{}:x:{}:{}:{}:{}:/sbin/nologin\n",
            u.name, u.uid, u.gid, u.name, u.home
        ));
    }
    s.push_str("nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n");
    s.into_bytes()
}

/// `/etc/group` with root, the image's group and nogroup (the user's group
/// only when it is neither of those).
#[must_use]
pub fn group(u: &User) -> Vec<u8> {
    let mut s = String::from("root:x:0:\n");
    if u.gid != 0 && u.gid != NOBODY {
        s.push_str(&format!("{}:x:{}:{}\n", u.group, u.gid, u.name));
    }
    s.push_str("nogroup:x:65534:\n");
    s.into_bytes()
}

/// A PEM bundle of the Mozilla root store as pinned by the `webpki-root-certs`
/// crate: the same bytes on every machine for a given Cargo.lock.
#[must_use]
pub fn ca_bundle() -> Vec<u8> {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut out = String::new();
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = engine.encode(cert.as_ref());
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            name: "ael".into(),
            uid: 10001,
            gid: 10001,
            group: "ael".into(),
            home: "/app".into(),
        }
    }

    #[test]
    fn passwd_has_root_and_user() {
        let p = String::from_utf8(passwd(&user())).unwrap();
        assert!(p.starts_with("root:x:0:0:"));
        assert!(p.contains("ael:x:10001:10001:ael:/app:/sbin/nologin\n"));
        let g = String::from_utf8(group(&user())).unwrap();
        assert!(g.contains("ael:x:10001:ael\n"));
    }

    #[test]
    fn ca_bundle_is_pem() {
        let b = String::from_utf8(ca_bundle()).unwrap();
        assert!(b.matches("-----BEGIN CERTIFICATE-----").count() > 100);
    }
}
