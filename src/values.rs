//! Strings written by people that end up in synthesized files and in the
//! image config: account names, paths inside the image, environment names,
//! label keys, argv elements and stop signals. Each rule is one function
//! returning what was expected when the string breaks it, so images.yaml's
//! parser and the plan give the same message wherever the value is written.
//!
//! The rules exist because these strings are pasted into line-oriented files
//! (`/etc/passwd`, `/etc/group`), handed to `execve` (which ends a string at
//! NUL) or read back by engines that split on `=` and `:`. A value that could
//! add a line to `/etc/passwd` or cut an argument short is refused here, with
//! its place in the file, never written.

/// Longest path inside the image, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH: usize = 4096;
/// Longest component of a path inside the image, in bytes (Linux `NAME_MAX`).
pub const MAX_COMPONENT: usize = 255;
/// Longest user or group name (what `useradd` accepts).
pub const MAX_ACCOUNT_NAME: usize = 32;

/// A user or group name: `[A-Za-z_][A-Za-z0-9_.-]*`, at most 32 bytes. No
/// `:` or newline can reach `/etc/passwd`, no leading `-` can pass for an
/// option, and no all-digit name can pass for an id.
pub fn account_name(what: &str, s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    let first_ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_');
    if first_ok
        && s.len() <= MAX_ACCOUNT_NAME
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} name {}: expected a letter or `_`, then letters, digits, `_`, `-` or `.` (at most {MAX_ACCOUNT_NAME})",
            quoted(s)
        ))
    }
}

/// An absolute path inside the image as images.yaml writes it: starts with
/// `/`, no `..` component, no NUL, every component at most 255 bytes and
/// the whole at most 4096. Returns it normalized (`/a//b/./c/` → `/a/b/c`).
pub fn absolute_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err("expected an absolute path (starting with `/`)".into());
    }
    if s.contains('\0') {
        return Err("expected a path without NUL".into());
    }
    if s.len() > MAX_PATH {
        return Err(format!(
            "the path is {} bytes long: expected at most {MAX_PATH}",
            s.len()
        ));
    }
    let mut parts = Vec::new();
    for part in s.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("expected a path without `..`".into()),
            p if p.len() > MAX_COMPONENT => {
                return Err(format!(
                    "a component of the path is {} bytes long: expected at most {MAX_COMPONENT}",
                    p.len()
                ));
            }
            p => parts.push(p),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// A relative path as it goes into a layer tar (`a/b/c`): not empty, no
/// empty, `.` or `..` component, no NUL, within the length limits. Checked
/// on every entry of the plan, so the tar writer never refuses a path.
pub fn entry_path(s: &str) -> Result<(), String> {
    if s.is_empty() || s.starts_with('/') {
        return Err("expected a path below the root".into());
    }
    if s.contains('\0') {
        return Err("expected a path without NUL".into());
    }
    if s.len() + 1 > MAX_PATH {
        return Err(format!(
            "the path is {} bytes long: expected at most {MAX_PATH}",
            s.len() + 1
        ));
    }
    for part in s.split('/') {
        match part {
            "" | "." | ".." => {
                return Err("expected a path without empty, `.` or `..` components".into());
            }
            p if p.len() > MAX_COMPONENT => {
                return Err(format!(
                    "a component of the path is {} bytes long: expected at most {MAX_COMPONENT}",
                    p.len()
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A home directory for `/etc/passwd`: an absolute path (see
/// [`absolute_path`]) with no `:` and no control character anywhere, since
/// either would change the lines of `/etc/passwd`. Returns it normalized.
pub fn home(s: &str) -> Result<String, String> {
    if let Some(c) = s.chars().find(|c| *c == ':' || c.is_control()) {
        return Err(format!(
            "invalid home {}: expected no {} in a home directory (it would change /etc/passwd)",
            quoted(s),
            describe(c)
        ));
    }
    absolute_path(s).map_err(|e| format!("invalid home {}: {e}", quoted(s)))
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`, what a POSIX
/// shell can name and what every engine splits `KEY=value` on correctly.
pub fn env_name(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid environment variable name {}: expected a letter or `_`, then letters, digits or `_`",
            quoted(s)
        ))
    }
}

/// A label or annotation key: not empty, no whitespace or control character
/// and no `=` (engines print and take labels as `key=value`).
pub fn label_key(s: &str) -> Result<(), String> {
    match s
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '=')
    {
        _ if s.is_empty() => {
            Err("empty key: expected a key such as org.opencontainers.image.title".into())
        }
        Some(c) => Err(format!(
            "invalid key {}: expected no {} in a label or annotation key",
            quoted(s),
            describe(c)
        )),
        None => Ok(()),
    }
}

/// A string that must not hold NUL: an argv element, an environment value,
/// a label value (`execve` and C strings end at NUL, silently).
pub fn no_nul(what: &str, s: &str) -> Result<(), String> {
    if s.contains('\0') {
        Err(format!(
            "{what} {} holds a NUL character: expected text without NUL",
            quoted(s)
        ))
    } else {
        Ok(())
    }
}

/// An exec-form command (entrypoint, cmd, health check test): no element
/// with NUL, and a program (the first element) that is not empty and has
/// no control character.
pub fn argv(what: &str, args: &[String]) -> Result<(), String> {
    for a in args {
        no_nul(&format!("{what} argument"), a)?;
    }
    if let Some(first) = args.first() {
        if first.trim().is_empty() {
            return Err(format!(
                "{what}: the program (first element) is empty: expected a program name or path"
            ));
        }
        if let Some(c) = first.chars().find(|c| c.is_control()) {
            return Err(format!(
                "{what}: the program {} holds {}: expected a program name or path",
                quoted(first),
                describe(c)
            ));
        }
    }
    Ok(())
}

/// Linux signal names, without `SIG`, as Docker's `signal.ParseSignal` knows them.
const SIGNALS: [&str; 34] = [
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "UNUSED", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU",
];
/// Highest real-time signal number on Linux.
const SIGRTMAX: u32 = 64;

/// A stop signal as Docker and podman take it: a name with or without `SIG`
/// (`SIGTERM`, `TERM`, any case; `SIGRTMIN+3`) or a number 1-64 (`15`).
pub fn stop_signal(s: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "invalid stop_signal {}: expected a signal name such as SIGTERM, TERM or SIGINT, or a number 1-{SIGRTMAX} such as 15",
            quoted(s)
        )
    };
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<u32>() {
            Ok(n) if (1..=SIGRTMAX).contains(&n) => Ok(()),
            _ => Err(bad()),
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if SIGNALS.contains(&name) || name == "XFSZ" || realtime(name) {
        Ok(())
    } else {
        Err(bad())
    }
}

/// `RTMIN`, `RTMIN+n`, `RTMAX`, `RTMAX-n`, within the real-time range.
fn realtime(name: &str) -> bool {
    let offset = |rest: &str, sign: char| match rest.strip_prefix(sign) {
        None => rest.is_empty(),
        Some(n) => {
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && n.parse::<u32>().is_ok_and(|n| (1..=30).contains(&n))
        }
    };
    match (name.strip_prefix("RTMIN"), name.strip_prefix("RTMAX")) {
        (Some(rest), _) => offset(rest, '+'),
        (_, Some(rest)) => offset(rest, '-'),
        _ => false,
    }
}

/// The candidate closest to `word`, when it is close enough to be a typo
/// (`volumse` → `volumes`, `layerz` → `layers`).
#[must_use]
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `s` in backticks, with control characters escaped so a message stays on one line.
#[must_use]
pub fn quoted(s: &str) -> String {
    let shown: String = s.chars().take(80).collect();
    let more = if shown.len() < s.len() { "…" } else { "" };
    format!("`{}{more}`", shown.escape_debug())
}

fn describe(c: char) -> String {
    match c {
        '\n' => "newline".into(),
        '\r' => "carriage return".into(),
        '\0' => "NUL".into(),
        '\t' => "tab".into(),
        ':' => "`:`".into(),
        '=' => "`=`".into(),
        c if c.is_whitespace() => "whitespace".into(),
        c => format!("control character {:?}", c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts() {
        assert!(account_name("user", "ael").is_ok());
        assert!(account_name("user", "_svc-1.x").is_ok());
        for bad in ["", "-x", "1000", "a:b", "a\nb", "a b", &"a".repeat(33)] {
            assert!(account_name("user", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn homes() {
        assert_eq!(home("/home//ael/").as_deref(), Ok("/home/ael"));
        assert_eq!(home("/").as_deref(), Ok("/"));
        for bad in [
            "relative",
            "/app/..",
            "/a:b",
            "/a\nroot::0:0::/:/bin/sh",
            "/a\0",
        ] {
            assert!(home(bad).is_err(), "{bad:?}");
        }
        let e = home("/a\nb").unwrap_err();
        assert!(e.contains("newline") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn path_limits() {
        let long = format!("/{}", "a".repeat(256));
        assert!(absolute_path(&long).unwrap_err().contains("256 bytes"));
        assert!(absolute_path(&format!("/{}", "a".repeat(255))).is_ok());
        let deep = "/abcdefgh".repeat(600);
        assert!(absolute_path(&deep).unwrap_err().contains("at most 4096"));
        assert!(entry_path("a/b").is_ok());
        for bad in ["", "/a", "a//b", "a/./b", "a/../b", "a/", "a\0"] {
            assert!(entry_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn env_and_labels() {
        assert!(env_name("AEL_HTTP_PORT").is_ok() && env_name("_x1").is_ok());
        for bad in ["", "1X", "A-B", "A=B", "A\nB", "A B", "A\0"] {
            assert!(env_name(bad).is_err(), "{bad:?}");
        }
        assert!(label_key("org.opencontainers.image.title").is_ok());
        for bad in ["", "a b", "a=b", "a\nb", "a\0"] {
            assert!(label_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn argv_rules() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(argv("cmd", &v(&["ael", "line1\nline2"])).is_ok());
        assert!(argv("cmd", &v(&["ael", "a\0b"])).is_err());
        assert!(argv("cmd", &v(&[""])).is_err());
        assert!(argv("cmd", &v(&["a\nb"])).is_err());
    }

    #[test]
    fn signals() {
        for good in [
            "SIGTERM",
            "TERM",
            "term",
            "sigint",
            "15",
            "9",
            "64",
            "SIGRTMIN",
            "SIGRTMIN+3",
            "RTMAX-2",
            "SIGWINCH",
        ] {
            assert!(stop_signal(good).is_ok(), "{good}");
        }
        for bad in [
            "", "SIGFOO", "0", "65", "-1", "SIG", "SIGTERM ", "15s", "RTMIN+", "RTMIN+99",
        ] {
            assert!(stop_signal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn suggestions() {
        let fields = ["name", "volumes", "layers", "ports"];
        assert_eq!(did_you_mean("volumse", &fields), Some("volumes"));
        assert_eq!(did_you_mean("layerz", &fields), Some("layers"));
        assert_eq!(did_you_mean("entrypoint", &fields), None);
    }
}
