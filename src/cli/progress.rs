//! How the command shows what it is doing, on stderr: progress bars
//! (indicatif) when stderr is a terminal, one plain line per step when it
//! is not (CI logs), nothing but errors with `--quiet`. stdout is left to
//! the results (`--json`, references), whatever the mode.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use aelimg::platform::Platform;
use aelimg::progress::{BlobOutcome, BlobRef, Event, LayerRef, LayerSource};
use aelimg::report::human;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// indicatif bars on stderr, finished steps as lines above them.
    Bars,
    /// One line per finished step on stderr.
    Plain,
    /// Nothing but errors (cargo's messages are kept, and shown only when
    /// the command fails).
    Quiet,
}

impl Mode {
    /// `Quiet` when asked, else `Bars` when stderr is a terminal (and
    /// `TERM` is not `dumb`), else `Plain`.
    pub fn detect(quiet: bool) -> Self {
        if quiet {
            Self::Quiet
        } else if std::io::stderr().is_terminal()
            && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
        {
            Self::Bars
        } else {
            Self::Plain
        }
    }
}

/// Shows progress events and the command's own notes on stderr.
pub struct Renderer {
    mode: Mode,
    multi: MultiProgress,
    payload: Option<ProgressBar>,
    layers: HashMap<usize, (ProgressBar, Instant)>,
    blobs: HashMap<String, ProgressBar>,
    /// cargo's lines under `--quiet`, shown if the command fails.
    held: Vec<String>,
}

impl Renderer {
    /// A renderer in `mode`.
    pub fn new(mode: Mode) -> Self {
        let target = if mode == Mode::Bars {
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            mode,
            multi: MultiProgress::with_draw_target(target),
            payload: None,
            layers: HashMap::new(),
            blobs: HashMap::new(),
            held: Vec::new(),
        }
    }

    /// A finished step or a note: a line on stderr (above the bars), none
    /// under `--quiet`.
    pub fn line(&self, msg: &str) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Plain => eprintln!("{msg}"),
            Mode::Bars => self.multi.suspend(|| eprintln!("{msg}")),
        }
    }

    /// Runs `f` (which prints on stdout) with the bars out of the way.
    pub fn suspend<T>(&self, f: impl FnOnce() -> T) -> T {
        self.multi.suspend(f)
    }

    /// The command failed: under `--quiet`, show what cargo said (its
    /// diagnostics, not its status lines), which may be why; clear the bars.
    pub fn failed(&mut self) {
        if self.mode == Mode::Quiet {
            for l in self.held.drain(..) {
                if !is_status_line(&l) {
                    eprintln!("{l}");
                }
            }
        }
        self.clear();
    }

    fn clear(&mut self) {
        for b in self.payload.take().into_iter().chain(
            self.layers
                .drain()
                .map(|(_, (b, _))| b)
                .chain(self.blobs.drain().map(|(_, b)| b)),
        ) {
            b.finish_and_clear();
            self.multi.remove(&b);
        }
        let _ = self.multi.clear();
    }

    fn bar(&self, len: Option<u64>, template: &str) -> ProgressBar {
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let b = match len {
            Some(l) => ProgressBar::new(l),
            None => ProgressBar::no_length(),
        };
        let b = self.multi.add(b.with_style(style));
        b.enable_steady_tick(Duration::from_millis(200));
        b
    }

    fn done(&self, bar: &ProgressBar) {
        bar.finish_and_clear();
        self.multi.remove(bar);
    }

    /// Shows one progress event.
    pub fn event(&mut self, e: &Event<'_>) {
        let bars = self.mode == Mode::Bars;
        match *e {
            Event::PayloadStarted {
                package,
                platforms,
                estimate,
            } => {
                let about = estimate.map_or(String::new(), |n| format!(" (about {n} crates)"));
                self.line(&format!(
                    "compiling {package} for {}{about}",
                    platform_list(platforms)
                ));
                if bars {
                    let b = match estimate {
                        Some(n) => self.bar(
                            Some(n),
                            "{spinner} payload  [{bar:30}] {pos}/{len} crates {elapsed} {wide_msg}",
                        ),
                        None => {
                            self.bar(None, "{spinner} payload  {pos} crates {elapsed} {wide_msg}")
                        }
                    };
                    self.payload = Some(b);
                }
            }
            Event::PayloadUnit {
                name,
                package,
                fresh,
                done,
                total,
            } => {
                if let Some(b) = &self.payload {
                    if let Some(t) = total {
                        b.set_length(t);
                    }
                    b.set_position(done);
                    let what = if name == "build-script-build" {
                        format!("{package} (build script)")
                    } else {
                        name.to_string()
                    };
                    b.set_message(if fresh {
                        format!("{what} (fresh)")
                    } else {
                        what
                    });
                }
            }
            Event::PayloadOutput { line } => match self.mode {
                Mode::Quiet => self.held.push(line.to_string()),
                Mode::Plain => eprintln!("{line}"),
                // The bar names each crate: cargo's own per-crate lines
                // would only scroll it away.
                Mode::Bars if is_unit_line(line) => {}
                Mode::Bars => self.line(line),
            },
            Event::PayloadFinished {
                units,
                fresh,
                elapsed,
            } => {
                if let Some(b) = self.payload.take() {
                    self.done(&b);
                }
                self.line(&format!(
                    "compiled {units} crates ({fresh} fresh) in {:.1}s",
                    elapsed.as_secs_f64()
                ));
            }
            Event::PayloadUpToDate {
                package,
                platforms,
                binaries,
            } => self.line(&format!(
                "{package}: {binaries} binaries for {} up to date (no source changed since cargo built them)",
                platform_list(platforms)
            )),
            Event::PayloadReused {
                package,
                platforms,
                binaries,
            } => self.line(&format!(
                "{package}: {binaries} binaries for {} reused (cargo built them from files with the same contents and inputs)",
                platform_list(platforms)
            )),
            Event::PayloadForeign { package, members } => self.line(&format!(
                "{package}: cargo took {} from another checkout sharing the target directory, built from other files; compiling again",
                members.join(", ")
            )),
            Event::PayloadRelinked { package, platforms } => self.line(&format!(
                "{package}: the binaries for {} hold another dependency list than aelimg links now; compiling again",
                platform_list(platforms)
            )),
            Event::PayloadPrebuilt {
                platforms,
                binaries,
            } => self.line(&format!(
                "payload: {binaries} prebuilt binaries for {}",
                platform_list(platforms)
            )),
            Event::SourceExcluded {
                image,
                layer,
                path,
                rule,
            } => self.line(&format!(
                "excluded {path} from {image} `{layer}` ({rule})"
            )),
            Event::LayerStarted { layer, total } => {
                let b = if bars {
                    self.bar(
                        total,
                        "{spinner} {prefix} [{bar:30}] {decimal_bytes}/{decimal_total_bytes}",
                    )
                    .with_prefix(layer_name(&layer))
                } else {
                    ProgressBar::hidden()
                };
                self.layers.insert(layer.job, (b, Instant::now()));
            }
            Event::LayerProgress { layer, bytes } => {
                if let Some((b, _)) = self.layers.get(&layer.job) {
                    if b.length().is_some_and(|l| bytes > l) {
                        b.set_length(bytes);
                    }
                    b.set_position(bytes);
                }
            }
            Event::LayerDone {
                layer,
                source,
                digest,
                size,
                uncompressed_size,
            } => {
                let took = match self.layers.remove(&layer.job) {
                    Some((b, started)) => {
                        self.done(&b);
                        started.elapsed()
                    }
                    None => Duration::ZERO,
                };
                let how = match source {
                    LayerSource::Cached => "cached".to_string(),
                    LayerSource::Built => "built".to_string(),
                };
                let when = match source {
                    LayerSource::Cached => String::new(),
                    LayerSource::Built => format!(" in {:.2}s", took.as_secs_f64()),
                };
                self.line(&format!(
                    "layer {}: {how} {} -> {} {}{when}",
                    layer_name(&layer),
                    human(uncompressed_size),
                    human(size),
                    digest.short()
                ));
            }
            Event::BlobStarted { blob } if bars => {
                let b = self
                    .bar(
                        Some(blob.size),
                        "{spinner} {prefix} [{bar:30}] {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec}",
                    )
                    .with_prefix(format!("push {}", blob.digest.short()));
                self.blobs.insert(blob_key(&blob), b);
            }
            Event::BlobProgress { blob, bytes } => {
                if let Some(b) = self.blobs.get(&blob_key(&blob)) {
                    b.set_position(bytes);
                }
            }
            Event::BlobDone { blob, outcome } => {
                if let Some(b) = self.blobs.remove(&blob_key(&blob)) {
                    self.done(&b);
                }
                let (d, size, repo) = (blob.digest.short(), human(blob.size), blob.repository);
                self.line(&match outcome {
                    BlobOutcome::Pushed => format!("pushed blob {d} {size} to {repo}"),
                    BlobOutcome::Exists => format!("blob {d} {size} exists in {repo}"),
                    BlobOutcome::Mounted { from } => {
                        format!("mounted blob {d} {size} into {repo} from {from}")
                    }
                });
            }
            Event::BlobRetry { blob, error } => self.line(&format!(
                "upload of {} interrupted ({error}); retrying",
                blob.digest.short()
            )),
            Event::LockWaiting { .. } | Event::LockAcquired { .. } => {
                if let Some(l) = lock_line(e) {
                    self.line(&l);
                }
            }
            _ => {}
        }
    }
}

impl Drop for Renderer {
    fn drop(&mut self) {
        self.clear();
    }
}

/// The line that tells of waiting for a layout's lock, and of getting it.
pub fn lock_line(e: &Event<'_>) -> Option<String> {
    match *e {
        Event::LockWaiting {
            layout,
            lock_file,
            shared,
        } => Some(format!(
            "waiting for {}: another process holds its lock ({}) to {} it; going on once it is released",
            layout.display(),
            lock_file.display(),
            if shared { "write" } else { "write or read" },
        )),
        Event::LockAcquired { layout, waited } => Some(format!(
            "locked {} after waiting {:.1}s",
            layout.display(),
            waited.as_secs_f64()
        )),
        _ => None,
    }
}

/// Shows only the lock lines (for a command with no other progress: `pull`).
pub struct LockNotes(pub Mode);

impl aelimg::progress::Progress for LockNotes {
    fn event(&self, e: &Event<'_>) {
        if self.0 != Mode::Quiet
            && let Some(l) = lock_line(e)
        {
            eprintln!("{l}");
        }
    }
}

/// `linux/amd64, linux/arm64`.
fn platform_list(platforms: &[Platform]) -> String {
    platforms
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// ``ael linux/amd64 `binaries` `` (platforms joined by `,`).
fn layer_name(l: &LayerRef<'_>) -> String {
    let platforms: Vec<String> = l.platforms.iter().map(ToString::to_string).collect();
    format!("{} {} `{}`", l.image, platforms.join(","), l.layer)
}

fn blob_key(b: &BlobRef<'_>) -> String {
    format!("{}/{}@{}", b.registry, b.repository, b.digest)
}

/// A cargo status line (`   Compiling serde v1.0.2`, `    Finished …`):
/// a capitalized verb right-aligned in twelve columns.
fn is_status_line(line: &str) -> bool {
    let verb = line.trim_start();
    let indent = line.len() - verb.len();
    let word = verb.split(' ').next().unwrap_or("");
    indent > 0
        && indent + word.len() == 12
        && word.chars().next().is_some_and(char::is_uppercase)
        && word.chars().skip(1).all(char::is_lowercase)
}

/// A status line about one unit (`Compiling`, `Fresh`, `Checking`), which
/// the payload bar shows by itself.
fn is_unit_line(line: &str) -> bool {
    let l = strip_ansi(line);
    is_status_line(&l)
        && matches!(
            l.trim_start().split(' ').next(),
            Some("Compiling" | "Fresh" | "Checking")
        )
}

/// `s` without ANSI escape sequences (cargo colors its lines for a
/// terminal).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_status_lines_are_told_from_diagnostics() {
        for l in [
            "   Compiling serde v1.0.228",
            "    Finished `release` profile [optimized] target(s) in 1m 02s",
            "       Fresh ring v0.17.14",
            "\u{1b}[1m\u{1b}[32m   Compiling\u{1b}[0m ael v0.1.0 (/ws/runtime)",
        ] {
            assert!(is_status_line(&strip_ansi(l)), "{l}");
        }
        for l in [
            "warning: unused variable: `x`",
            "error[E0425]: cannot find value `y` in this scope",
            " --> runtime/src/main.rs:3:5",
            "  |",
            "",
        ] {
            assert!(!is_status_line(l), "{l}");
        }
        assert!(is_unit_line("   Compiling serde v1.0.228"));
        assert!(!is_unit_line(
            "    Finished `release` profile [optimized] target(s) in 1m 02s"
        ));
    }
}
