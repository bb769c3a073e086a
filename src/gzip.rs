//! Block-parallel gzip whose bytes do not depend on the number of threads
//! (pigz's scheme).
//!
//! The input is cut into blocks of [`BLOCK`] bytes. Each block is deflated
//! on its own, primed with the last 32 KiB of the block before it as the
//! dictionary, so matches still reach back across the cut; every block but
//! the last ends with a sync flush (an empty stored block, byte-aligned), the
//! last one ends the stream. Concatenated, the blocks are one ordinary deflate
//! stream in one gzip member: any gzip reader reads it, and its bytes are a
//! function of the input, the level and [`BLOCK`] only. Threads change when a
//! block is compressed, never what it becomes, so `threads` is free to follow
//! the machine (docs/decisions/0020-block-parallel-gzip.md).
//!
//! Memory is bounded: at most `2 × threads` blocks (and their output) are in
//! flight, whatever the size of the stream.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// The size of the blocks compressed independently. Part of the format: a
/// different size gives different bytes (the layer cache key names it).
pub const BLOCK: usize = 128 * 1024;

/// What deflate can look back: the dictionary each block is primed with.
const WINDOW: usize = 32 * 1024;

/// One block to deflate, and where its result goes.
struct Job {
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
    reply: SyncSender<io::Result<Deflated>>,
}

/// A deflated block with the CRC-32 of its input.
struct Deflated {
    bytes: Vec<u8>,
    crc: Crc,
}

/// Deflates one block with a new compressor, so the result depends on
/// `level`, `dict`, `data` and `last` only. (A compressor reused after
/// `reset` was measured to write other bytes, depending on what it had
/// compressed before: not a function of the block alone.)
fn deflate_block(level: Compression, dict: &[u8], data: &[u8], last: bool) -> io::Result<Deflated> {
    let c = &mut Compress::new(level, false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut bytes = Vec::with_capacity(data.len() / 2 + 1024);
    let mut input = data;
    loop {
        if bytes.capacity() - bytes.len() < 1024 {
            bytes.reserve(bytes.capacity().max(64 * 1024));
        }
        let before = c.total_in();
        let status = c
            .compress_vec(input, &mut bytes, flush)
            .map_err(io::Error::other)?;
        let consumed = usize::try_from(c.total_in() - before).unwrap_or(usize::MAX);
        input = &input[consumed.min(input.len())..];
        let room_left = bytes.len() < bytes.capacity();
        let done = if last {
            status == Status::StreamEnd
        } else {
            input.is_empty() && room_left
        };
        if done {
            break;
        }
    }
    let mut crc = Crc::new();
    crc.update(data);
    Ok(Deflated { bytes, crc })
}

/// The worker threads of one stream: they take jobs from a shared queue.
struct Pool {
    jobs: Option<SyncSender<Job>>,
    queue: Arc<Mutex<Receiver<Job>>>,
    workers: Vec<JoinHandle<()>>,
    max: usize,
    level: Compression,
}

impl Pool {
    fn new(threads: usize, level: Compression) -> Self {
        let (tx, rx) = sync_channel::<Job>(threads * 2);
        Self {
            jobs: Some(tx),
            queue: Arc::new(Mutex::new(rx)),
            workers: Vec::new(),
            max: threads,
            level,
        }
    }

    /// Queues a job, starting another worker if fewer than `max` run.
    fn submit(&mut self, job: Job) -> io::Result<()> {
        if self.workers.len() < self.max {
            let queue = Arc::clone(&self.queue);
            let level = self.level;
            let handle = std::thread::Builder::new()
                .name("aelimg-gzip".into())
                .spawn(move || {
                    loop {
                        let job = {
                            let q = queue.lock().unwrap_or_else(PoisonError::into_inner);
                            q.recv()
                        };
                        let Ok(job) = job else { break };
                        let r = deflate_block(level, &job.dict, &job.data, job.last);
                        // The writer may have given up (an error): nobody waits.
                        let _ = job.reply.send(r);
                    }
                })?;
            self.workers.push(handle);
        }
        let jobs = self.jobs.as_ref().expect("the pool is open until dropped");
        jobs.send(job)
            .map_err(|_| io::Error::other("the gzip workers stopped"))
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A gzip writer that compresses blocks of its input on up to `threads`
/// threads; its output is the same bytes whatever `threads` is.
///
/// The gzip header has no name and mtime 0, its OS byte is 255 and its XFL
/// byte follows the level, as `flate2::GzBuilder` writes them.
pub struct ParGzWriter<W: Write> {
    out: W,
    level: Compression,
    /// The block being filled.
    buf: Vec<u8>,
    /// The last [`WINDOW`] bytes before `buf`.
    tail: Vec<u8>,
    crc: Crc,
    /// Blocks handed to the pool, oldest first.
    pending: VecDeque<Receiver<io::Result<Deflated>>>,
    pool: Option<Pool>,
    threads: usize,
}

impl<W: Write> ParGzWriter<W> {
    /// Starts a gzip stream on `out` at `level` (0–9), compressing on up to
    /// `threads` threads (at least 1: with 1 the caller's thread does it).
    ///
    /// # Errors
    /// When the header cannot be written.
    pub fn new(mut out: W, level: u32, threads: usize) -> io::Result<Self> {
        let level = Compression::new(level);
        let xfl = if level.level() >= Compression::best().level() {
            2
        } else if level.level() <= Compression::fast().level() {
            4
        } else {
            0
        };
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255])?;
        Ok(Self {
            out,
            level,
            buf: Vec::with_capacity(BLOCK),
            tail: Vec::new(),
            crc: Crc::new(),
            pending: VecDeque::new(),
            pool: None,
            threads: threads.max(1),
        })
    }

    /// Hands the full block in `buf` on (`last`: it ends the stream).
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK));
        let dict = std::mem::take(&mut self.tail);
        self.tail = data[data.len().saturating_sub(WINDOW)..].to_vec();
        if self.threads == 1 {
            let d = deflate_block(self.level, &dict, &data, last)?;
            return self.emit(d);
        }
        let (reply, result) = sync_channel(1);
        let level = self.level;
        let threads = self.threads;
        self.pool
            .get_or_insert_with(|| Pool::new(threads, level))
            .submit(Job {
                dict,
                data,
                last,
                reply,
            })?;
        self.pending.push_back(result);
        while self.pending.len() >= 2 * self.threads {
            self.collect_one()?;
        }
        Ok(())
    }

    /// Waits for the oldest block in flight and writes it.
    fn collect_one(&mut self) -> io::Result<()> {
        let Some(r) = self.pending.pop_front() else {
            return Ok(());
        };
        let d = r
            .recv()
            .map_err(|_| io::Error::other("a gzip worker stopped"))??;
        self.emit(d)
    }

    fn emit(&mut self, d: Deflated) -> io::Result<()> {
        self.crc.combine(&d.crc);
        self.out.write_all(&d.bytes)
    }

    /// Ends the stream (last block, CRC-32 and size) and returns the writer.
    ///
    /// # Errors
    /// When compressing or writing fails.
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while !self.pending.is_empty() {
            self.collect_one()?;
        }
        self.pool = None;
        let crc = self.crc.sum();
        let size = self.crc.amount();
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(&size.to_le_bytes())?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParGzWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(BLOCK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BLOCK {
            self.dispatch(false)?;
        }
        Ok(n)
    }

    /// Writes what is finished; the block being filled stays (a flush must
    /// not change the bytes).
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn gz(data: &[u8], level: u32, threads: usize) -> Vec<u8> {
        let mut w = ParGzWriter::new(Vec::new(), level, threads).unwrap();
        // Odd write sizes: block cuts must not depend on them.
        for chunk in data.chunks(7919) {
            w.write_all(chunk).unwrap();
        }
        w.finish().unwrap()
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// Compressible but not trivially: text-like, with repeats that reach
    /// back across block boundaries.
    fn sample(len: usize) -> Vec<u8> {
        let mut s = Vec::with_capacity(len);
        let mut x: u32 = 12345;
        while s.len() < len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let word = format!("w{} ", (x >> 16) % 500);
            s.extend_from_slice(word.as_bytes());
        }
        s.truncate(len);
        s
    }

    #[test]
    fn bytes_do_not_depend_on_threads_and_round_trip() {
        for len in [0, 1, WINDOW, BLOCK - 1, BLOCK, BLOCK + 1, 5 * BLOCK + 333] {
            let data = sample(len);
            let one = gz(&data, 6, 1);
            for threads in [2, 3, 8] {
                assert!(gz(&data, 6, threads) == one, "len {len}, {threads} threads");
            }
            assert_eq!(gunzip(&one), data, "len {len}");
        }
    }

    #[test]
    fn header_and_trailer_are_what_flate2_writes() {
        let data = sample(3 * BLOCK);
        for level in [1, 6, 9] {
            let ours = gz(&data, level, 2);
            let mut theirs = flate2::GzBuilder::new()
                .mtime(0)
                .operating_system(255)
                .write(Vec::new(), Compression::new(level));
            theirs.write_all(&data).unwrap();
            let theirs = theirs.finish().unwrap();
            assert_eq!(ours[..10], theirs[..10], "header at level {level}");
            assert_eq!(
                ours[ours.len() - 8..],
                theirs[theirs.len() - 8..],
                "CRC-32 and size at level {level}"
            );
            // Priming with the previous block's window keeps the ratio.
            assert!(ours.len() <= theirs.len() * 101 / 100, "level {level}");
        }
    }
}
