//! What the stages report as they go: the payload compile (units done of
//! an estimated total), each layer (bytes through the tar stream), each
//! blob pushed (bytes sent), and waiting for another process's lock on a
//! layout.
//!
//! The library prints nothing. The stages send [`Event`]s to a [`Progress`],
//! from whichever thread does the work (layers are written, and blobs
//! uploaded, several at once), so a `Progress` is `Sync`;
//! [`crate::pipeline`] hands the events to its caller's `Observer` (see
//! `Observer::progress`). Reporting never changes what is built: the
//! layer's bytes go through a counter that only counts.

use std::path::Path;
use std::time::Duration;

use crate::digest::Digest;
use crate::platform::Platform;

/// Something that receives progress events, from any thread.
pub trait Progress: Sync {
    /// One event. Called while the work goes on: keep it short.
    fn event(&self, event: &Event<'_>);
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn event(&self, _event: &Event<'_>) {}
}

/// One distinct layer of a build: the same blob may serve several
/// platforms of the image (a layer with no per-platform file).
#[derive(Debug, Clone, Copy)]
pub struct LayerRef<'a> {
    /// Number of the layer among the layers this build writes (unique in a
    /// build, stable from its start to its end: a key for a renderer).
    pub job: usize,
    /// The image.
    pub image: &'a str,
    /// The layer's name in images.yaml.
    pub layer: &'a str,
    /// The platforms whose images hold this blob.
    pub platforms: &'a [Platform],
}

/// Whether a layer was taken from the layer cache or written now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerSource {
    /// Taken from the layer cache: nothing read or compressed.
    Cached,
    /// Written (tar, compressed, hashed) by this build.
    Built,
}

/// A blob of a push.
#[derive(Debug, Clone, Copy)]
pub struct BlobRef<'a> {
    /// The registry (`host[:port]`).
    pub registry: &'a str,
    /// The repository it goes to.
    pub repository: &'a str,
    /// The blob.
    pub digest: &'a Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// What happened to a blob of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome<'a> {
    /// Uploaded by this push.
    Pushed,
    /// The repository had it already: nothing sent.
    Exists,
    /// Mounted from another repository of the registry: nothing sent.
    Mounted {
        /// The repository it was mounted from.
        from: &'a str,
    },
}

/// A progress event.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Event<'a> {
    /// cargo is about to build the payload.
    PayloadStarted {
        /// The package cargo builds (one invocation per package).
        package: &'a str,
        /// The platforms built for.
        platforms: &'a [Platform],
        /// How many units (crates, binaries, build scripts) cargo is expected
        /// to report, when it can be told (cargo announces no total).
        estimate: Option<u64>,
    },
    /// cargo finished a unit (a compiler artifact: a library, a binary, a
    /// build script), compiled now or fresh from an earlier build.
    PayloadUnit {
        /// The target's name (`serde`, `build-script-build`, `ael`).
        name: &'a str,
        /// The package's name.
        package: &'a str,
        /// Whether it was up to date (nothing compiled).
        fresh: bool,
        /// Units done so far, this one included.
        done: u64,
        /// The expected total: the estimate, raised to `done` when cargo
        /// has reported more than expected.
        total: Option<u64>,
    },
    /// A line cargo wrote on stderr (status lines, warnings, errors),
    /// without its line ending. The library never prints it.
    PayloadOutput {
        /// The line.
        line: &'a str,
    },
    /// cargo built the payload.
    PayloadFinished {
        /// Units reported.
        units: u64,
        /// Of which were fresh.
        fresh: u64,
        /// How long cargo ran.
        elapsed: Duration,
    },
    /// Nothing the payload is built from changed since cargo last built it
    /// (the stamp in the target directory): cargo was not run.
    PayloadUpToDate {
        /// The package.
        package: &'a str,
        /// The platforms.
        platforms: &'a [Platform],
        /// Binaries taken.
        binaries: usize,
    },
    /// The binaries in the target directory were built by cargo from
    /// files with the same contents and the same inputs, in another
    /// checkout sharing the target directory (or at an earlier state of
    /// this one): cargo was not run (see `cargo::reuse`).
    PayloadReused {
        /// The package.
        package: &'a str,
        /// The platforms.
        platforms: &'a [Platform],
        /// Binaries taken.
        binaries: usize,
    },
    /// Cargo took units of these workspace members from another checkout
    /// sharing the target directory, built from other files than this
    /// checkout's (see `cargo::foreign`): they are cleaned and the package
    /// is built again.
    PayloadForeign {
        /// The package being built.
        package: &'a str,
        /// The members whose units were stale.
        members: &'a [String],
    },
    /// Binaries cargo found fresh hold another dependency list than the one
    /// aelimg links into them now (an older aelimg wrote it): the package
    /// is compiled again for every platform.
    PayloadRelinked {
        /// The package being built.
        package: &'a str,
        /// The platforms whose binaries held another list.
        platforms: &'a [Platform],
    },
    /// The payload came from somewhere else than cargo (`--prebuilt`).
    PayloadPrebuilt {
        /// The platforms.
        platforms: &'a [Platform],
        /// Binaries taken.
        binaries: usize,
    },
    /// A file or directory of a directory source that an ignore file (or
    /// the rule that ignore files themselves stay out) left out of a layer.
    /// Sent for each one the plan holds, before any layer is written.
    SourceExcluded {
        /// The image.
        image: &'a str,
        /// The layer's name.
        layer: &'a str,
        /// The path relative to the context (`/` at the end: a directory).
        path: &'a str,
        /// The rule: `FILE:LINE: PATTERN`.
        rule: &'a str,
    },
    /// A layer is being looked up in the cache, or written.
    LayerStarted {
        /// The layer.
        layer: LayerRef<'a>,
        /// Size of its uncompressed tar, when known beforehand.
        total: Option<u64>,
    },
    /// Bytes of a layer's uncompressed tar written so far (sent now and
    /// then, not for every write).
    LayerProgress {
        /// The layer.
        layer: LayerRef<'a>,
        /// Uncompressed bytes so far.
        bytes: u64,
    },
    /// A layer is done.
    LayerDone {
        /// The layer.
        layer: LayerRef<'a>,
        /// Cached or built.
        source: LayerSource,
        /// The compressed blob's digest.
        digest: &'a Digest,
        /// Compressed size.
        size: u64,
        /// Uncompressed size.
        uncompressed_size: u64,
    },
    /// A blob of a push is being checked, mounted or uploaded.
    BlobStarted {
        /// The blob.
        blob: BlobRef<'a>,
    },
    /// Bytes of a blob the registry has accepted so far (after each
    /// request that carried some; after a fault, where the upload resumes).
    BlobProgress {
        /// The blob.
        blob: BlobRef<'a>,
        /// Bytes so far.
        bytes: u64,
    },
    /// A blob is in the repository.
    BlobDone {
        /// The blob.
        blob: BlobRef<'a>,
        /// How it got there.
        outcome: BlobOutcome<'a>,
    },
    /// An upload failed in a way worth another try, which follows.
    BlobRetry {
        /// The blob.
        blob: BlobRef<'a>,
        /// What went wrong.
        error: &'a str,
    },
    /// Another process holds the lock of a layout this command must write
    /// (or, `shared`, read): the command waits until it is released.
    LockWaiting {
        /// The layout.
        layout: &'a Path,
        /// Its lock file (what `fuser` or `lsof` names the holder of).
        lock_file: &'a Path,
        /// Whether the lock wanted is shared (a push reading the layout).
        shared: bool,
    },
    /// The lock of a layout was taken, after [`Event::LockWaiting`].
    LockAcquired {
        /// The layout.
        layout: &'a Path,
        /// How long the command waited.
        waited: Duration,
    },
}
