//! Writing one image into one partition of the inactive set (a pipeline over both cores): the verified download stream → lz4
//! frame decoder → large aligned writes, with a checksum of the image computed while writing; every written part
//! flushed to the device and then read back from it, and the read-back must give the same checksum.
//!
//! ```text
//!  caller (async)          decoder thread         writer thread                read-back thread
//!  tough stream ─chunks─►  lz4 frame decode ───►  checksum, write at    ──►    read each flushed range
//!  (download, TUF sha256)  into 4 MiB aligned     offset (O_DIRECT),           back (O_DIRECT), checksum
//!                          buffers ◄──── free ─── fdatasync every 64 MiB,
//!                                                 fsync at the end
//! ```
//!
//! Four stages on their own threads, joined by bounded channels, so on two cores downloading and hashing the
//! compressed stream, decoding, checksumming the image, waiting for the device and reading back overlap (run one
//! after the other, the read-back alone would add half to the time of an update). Memory is a fixed number of
//! buffers whatever the image size, and nothing is staged in a file.
//!
//! - **The checksum.** XXH3-128 of the decompressed image, on both sides. What the image *is* is settled by TUF:
//!   tough checks the sha256 of the compressed stream against the signed metadata, and the decoder is
//!   deterministic. The read-back only has to catch what the storage path did to those bytes (a lost, misdirected
//!   or corrupted write), which a 128-bit checksum does (2^-128 odds of missing a change). A second and third
//!   sha256 of the image (write side and read side) cost 1.3 CPU-seconds per GiB here, as much as everything else
//!   the update does, and on two cores made it slower than `curl | lz4 -d | dd` (docs/performance.md).
//!
//! - **Aligned direct I/O.** Buffers are 4 MiB and 4096-byte aligned, written with `O_DIRECT` (no page cache: the
//!   write goes to the device, and a second copy of the image does not crowd the cache), except for a last piece
//!   shorter than 4096 bytes, which goes through a buffered handle. A target that refuses `O_DIRECT` (a file on
//!   tmpfs) is written buffered.
//! - **Bounds.** An image that decompresses to more than its partition fails before a byte past the partition is
//!   written; the partition's neighbours are never touched.
//! - **Durability, then proof.** The writer flushes (`fdatasync`) every [`WINDOW`] bytes and `fsync`s at the end;
//!   only a flushed range is read back, with `O_DIRECT` (or after dropping its cached pages), so the bytes come from
//!   the device. [`ImageWriter::finish`] succeeds only when the whole image was flushed, read back, and the
//!   read-back's checksum equals the checksum of what was written. ([`verify_image`] repeats the read-back.)
//! - **The TUF check comes last.** tough checks the compressed stream's length and sha256 only when it ends. The
//!   caller must call [`ImageWriter::finish`] only after the stream ended `Ok`, and on any stream error
//!   [`ImageWriter::abort`]: a finished, verified image is the only thing that may be marked valid.

use crate::checkpoint::ResumableSha256;
use crate::lz4::{self, Position};
use bytes::Bytes;
use signpost::{PartitionFile, PartitionTarget};
use snafu::{ResultExt, Snafu};
use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;
use twox_hash::XxHash3_128;

/// The size of each write buffer.
pub const BUFFER_SIZE: usize = 4 << 20;
/// The size of the read-back buffer (larger reads go faster with `O_DIRECT`).
const READ_BACK_SIZE: usize = 8 << 20;
/// Direct I/O alignment: of buffers in memory, of offsets and of lengths (4096 covers 512- and 4K-sector devices).
pub const ALIGN: usize = 4096;
/// Buffers in flight between the decoder and the writer.
const BUFFERS: usize = 4;
/// Compressed chunks waiting for the decoder.
const CHUNKS_QUEUED: usize = 16;
/// The writer flushes every this many bytes, and the read-back follows it.
pub const WINDOW: u64 = 64 << 20;

#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
pub enum WriteError {
    #[snafu(display("Failed to open {partition} for writing: {source}"))]
    Open {
        partition: String,
        #[snafu(source(from(signpost::Error, Box::new)))]
        source: Box<signpost::Error>,
    },

    #[snafu(display("The {image} image is not a valid lz4 frame stream: {source}"))]
    Decode { image: String, source: io::Error },

    #[snafu(display(
        "The {image} image decompresses to more than {partition}'s {partition_len} bytes; nothing past the \
         partition was written"
    ))]
    TooLarge {
        image: String,
        partition: String,
        partition_len: u64,
    },

    #[snafu(display("The {image} image is empty"))]
    Empty { image: String },

    #[snafu(display(
        "Failed to write the {image} image to {partition} at byte {offset}: {source}"
    ))]
    Write {
        image: String,
        partition: String,
        offset: u64,
        source: io::Error,
    },

    #[snafu(display("Failed to flush the {image} image to {partition}: {source}"))]
    Sync {
        image: String,
        partition: String,
        #[snafu(source(from(signpost::Error, Box::new)))]
        source: Box<signpost::Error>,
    },

    #[snafu(display(
        "Failed to read the {image} image back from {partition} at byte {offset}: {source}"
    ))]
    ReadBack {
        image: String,
        partition: String,
        offset: u64,
        source: io::Error,
    },

    #[snafu(display(
        "The {image} image read back from {partition} does not match what was written (XXH3-128 {read} read, \
         {written} written)"
    ))]
    Mismatch {
        image: String,
        partition: String,
        written: String,
        read: String,
    },

    #[snafu(display(
        "The first {len} bytes of the {image} image on {partition} are not what the download checkpoint recorded \
         (XXH3-128 {read} read, {recorded} recorded)"
    ))]
    PrefixMismatch {
        image: String,
        partition: String,
        len: u64,
        recorded: String,
        read: String,
    },

    #[snafu(display("Failed to start a thread for the {image} image: {source}"))]
    Thread { image: String, source: io::Error },

    #[snafu(display("The {stage} of the {image} image stopped unexpectedly"))]
    Stopped { image: String, stage: &'static str },
}

/// An image written, flushed, read back and verified: its length and the checksum of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenImage {
    pub len: u64,
    /// XXH3-128 of the image's bytes.
    pub checksum: u128,
    /// Whether the writes went around the page cache (`O_DIRECT`).
    pub direct: bool,
}

impl WrittenImage {
    /// The checksum as 32 hex digits.
    pub fn checksum_hex(&self) -> String {
        format!("{:032x}", self.checksum)
    }
}

/// A heap buffer whose usable part starts at an [`ALIGN`]-aligned address, as `O_DIRECT` requires.
struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    size: usize,
    /// How many bytes at the start hold data.
    filled: usize,
}

impl AlignedBuf {
    fn with_size(size: usize) -> Self {
        let storage = vec![0u8; size + ALIGN];
        let start = storage.as_ptr().align_offset(ALIGN);
        Self {
            storage,
            start,
            size,
            filled: 0,
        }
    }

    fn space(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.size]
    }

    fn data(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.filled]
    }
}

/// What the decoder hands on.
enum Decoded {
    Data(AlignedBuf),
    /// The image up to here (exactly what the writer has written when it gets this) can be resumed from: flush it
    /// and offer it as durable.
    Mark(Resumable),
    End,
}

/// A point an image's write can continue from: the decoder's position, the SHA-256 state of the compressed bytes
/// before it, and the XXH3-128 of the image before it (as written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumable {
    pub position: Position,
    pub sha256: ResumableSha256,
    pub prefix_checksum: u128,
}

/// How a write starts: from the beginning or from a checkpoint, and how often it offers checkpoints.
#[derive(Debug, Clone, Default)]
pub struct Start {
    /// Continue after the image's first `position.decompressed` bytes, already on the partition (they are read back
    /// and must give `prefix_checksum`); the stream pushed starts at `position.compressed`.
    pub resume: Option<Resumable>,
    /// Offer a durable [`Resumable`] at the first block boundary after every this many compressed bytes.
    pub checkpoint_every: Option<u64>,
}

/// What the writer tells the read-back: how far the image is on the device.
enum Flushed {
    /// Bytes up to here are written and flushed.
    UpTo(u64),
    /// The whole image (this long) is written and `fsync`ed.
    Complete(u64),
}

/// `O_DIRECT` for this architecture, as `custom_flags` takes it (open(2)'s flags are a bit pattern in a C int).
fn o_direct() -> i32 {
    rustix::fs::OFlags::DIRECT.bits().cast_signed()
}

/// The partition as the writer sees it: a direct handle when the target takes `O_DIRECT`, and a buffered one for
/// the unaligned tail (and for everything when direct I/O is refused).
struct PartitionIo {
    direct: Option<PartitionFile>,
    buffered: PartitionFile,
}

impl PartitionIo {
    fn open(target: &PartitionTarget, image: &str) -> Result<Self, WriteError> {
        let buffered = target.open_write().context(OpenSnafu {
            partition: target.to_string(),
        })?;
        let direct = match target.open_with(
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(o_direct()),
        ) {
            Ok(file) => Some(file),
            Err(e) => {
                log::debug!(
                    "{target} does not take O_DIRECT ({e}); writing the {image} image buffered"
                );
                None
            }
        };
        Ok(Self { direct, buffered })
    }

    /// Writes `data` (at an aligned address) at `offset` of the partition.
    fn write_at(&mut self, data: &[u8], offset: u64) -> io::Result<()> {
        let aligned = data.len() - data.len() % ALIGN;
        if let Some(direct) = &self.direct
            && offset.is_multiple_of(ALIGN as u64)
            && aligned > 0
        {
            match direct.write_all_at(&data[..aligned], offset) {
                Ok(()) => {
                    return self
                        .buffered
                        .write_all_at(&data[aligned..], offset + aligned as u64);
                }
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                    log::debug!(
                        "O_DIRECT write refused ({e}); writing buffered from byte {offset}"
                    );
                    self.direct = None;
                }
                Err(e) => return Err(e),
            }
        }
        self.buffered.write_all_at(data, offset)
    }

    /// Flushes the data written so far (`fdatasync`), mid-image.
    fn sync_data(&self) -> io::Result<()> {
        if let Some(direct) = &self.direct {
            direct.file().0.sync_data()?;
        }
        self.buffered.file().0.sync_data()
    }

    /// Flushes everything (`fsync`), at the end of the image.
    fn sync_all(&self) -> Result<(), signpost::Error> {
        if let Some(direct) = &self.direct {
            direct.sync_all()?;
        }
        self.buffered.sync_all()
    }
}

/// Reads a partition back from the device: with `O_DIRECT` when the target takes it, else buffered after dropping
/// the range's cached pages (clean after a flush) so that the read goes to the device.
struct ReadBack {
    file: PartitionFile,
    direct: bool,
    partition: String,
    image: String,
    part_len: u64,
    buf: AlignedBuf,
    hasher: XxHash3_128,
    /// Bytes read and checksummed so far.
    offset: u64,
}

impl ReadBack {
    fn open(target: &PartitionTarget, image: &str) -> Result<Self, WriteError> {
        let partition = target.to_string();
        let (file, direct) =
            match target.open_with(OpenOptions::new().read(true).custom_flags(o_direct())) {
                Ok(file) => (file, true),
                Err(_) => (
                    target.open_read().context(OpenSnafu {
                        partition: &partition,
                    })?,
                    false,
                ),
            };
        Ok(Self {
            file,
            direct,
            partition,
            image: image.to_string(),
            part_len: target.len(),
            buf: AlignedBuf::with_size(READ_BACK_SIZE),
            hasher: XxHash3_128::new(),
            offset: 0,
        })
    }

    /// Reads and checksums up to byte `end` (flushed by then), reporting the bytes done.
    fn advance(&mut self, end: u64, progress: &dyn Fn(u64)) -> Result<(), WriteError> {
        let (fd, base) = self.file.file();
        if !self.direct
            && end > self.offset
            && let Err(e) = rustix::fs::fadvise(
                fd,
                base + self.offset,
                std::num::NonZeroU64::new(end - self.offset),
                rustix::fs::Advice::DontNeed,
            )
        {
            log::debug!("fadvise(DONTNEED) on {}: {e}", self.partition);
        }
        while self.offset < end {
            // A remainder beyond usize is more than one read anyway.
            let at_most = |bytes: u64| usize::try_from(bytes).unwrap_or(usize::MAX);
            let want = at_most(end - self.offset).min(READ_BACK_SIZE);
            // Direct reads need an aligned length; the partition (MiB-aligned) has room for it.
            let read_len = if self.direct {
                want.next_multiple_of(ALIGN)
                    .min(at_most(self.part_len - self.offset))
            } else {
                want
            };
            fd.read_exact_at(&mut self.buf.space()[..read_len], base + self.offset)
                .context(ReadBackSnafu {
                    image: &self.image,
                    partition: &self.partition,
                    offset: self.offset,
                })?;
            self.buf.filled = want;
            self.hasher.write(self.buf.data());
            self.offset += want as u64;
            progress(self.offset);
        }
        Ok(())
    }

    fn finish(self) -> u128 {
        self.hasher.finish_128()
    }
}

/// A running write of one image (see the module documentation).
pub struct ImageWriter {
    image: String,
    partition: String,
    chunks: Option<tokio::sync::mpsc::Sender<Bytes>>,
    decoder: Option<JoinHandle<Result<u64, WriteError>>>,
    writer: Option<JoinHandle<Result<WrittenImage, WriteError>>>,
    reader: Option<JoinHandle<Result<u128, WriteError>>>,
    written: Arc<AtomicU64>,
    verified: Arc<AtomicU64>,
    aborted: Arc<AtomicBool>,
    durable: tokio::sync::watch::Receiver<Option<Resumable>>,
}

/// Spawns a named pipeline thread.
fn spawn<T: Send + 'static>(
    name: String,
    image: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, WriteError> {
    std::thread::Builder::new()
        .name(name)
        .spawn(work)
        .context(ThreadSnafu { image })
}

impl ImageWriter {
    /// Opens `target` and starts the pipeline's threads for the image named `image` (in messages).
    pub fn start(target: &PartitionTarget, image: &str) -> Result<Self, WriteError> {
        Self::start_with(target, image, Start::default())
    }

    /// [`ImageWriter::start`], from a checkpoint and offering checkpoints as `start` says.
    pub fn start_with(
        target: &PartitionTarget,
        image: &str,
        start: Start,
    ) -> Result<Self, WriteError> {
        let io = PartitionIo::open(target, image)?;
        let read_back = ReadBack::open(target, image)?;
        // The prefix is read back by the writer before it writes on (its checksum continues from it).
        let prefix = match &start.resume {
            Some(resume) => Some((ReadBack::open(target, image)?, resume.clone())),
            None => None,
        };
        let (chunk_tx, chunk_rx) = tokio::sync::mpsc::channel::<Bytes>(CHUNKS_QUEUED);
        let (decoded_tx, decoded_rx) = sync_channel::<Decoded>(BUFFERS);
        let (free_tx, free_rx) = sync_channel::<AlignedBuf>(BUFFERS);
        let (flushed_tx, flushed_rx) = channel::<Flushed>();
        for _ in 0..BUFFERS {
            free_tx
                .send(AlignedBuf::with_size(BUFFER_SIZE))
                .expect("the receiver is alive and the channel has room");
        }
        let written = Arc::new(AtomicU64::new(0));
        let verified = Arc::new(AtomicU64::new(0));
        let aborted = Arc::new(AtomicBool::new(false));

        let (durable_tx, durable) = tokio::sync::watch::channel(None);
        let decode = Decode {
            image: image.to_string(),
            partition: target.to_string(),
            limit: target.len(),
            resume: start.resume,
            checkpoint_every: start.checkpoint_every,
        };
        let input = ChannelReader {
            rx: chunk_rx,
            current: Bytes::new(),
            aborted: aborted.clone(),
        };
        let decoder = spawn(format!("decode-{image}"), image, move || {
            decode.run(input, free_rx, decoded_tx)
        })?;
        let write = Write {
            image: image.to_string(),
            partition: target.to_string(),
            written: written.clone(),
            durable: durable_tx,
        };
        let writer = spawn(format!("write-{image}"), image, move || {
            write.run(io, prefix, decoded_rx, free_tx, flushed_tx)
        })?;
        let reader = spawn(format!("verify-{image}"), image, {
            let verified = verified.clone();
            let image = image.to_string();
            move || read_back_stage(read_back, flushed_rx, &verified, &image)
        })?;

        Ok(Self {
            image: image.to_string(),
            partition: target.to_string(),
            chunks: Some(chunk_tx),
            decoder: Some(decoder),
            writer: Some(writer),
            reader: Some(reader),
            written,
            verified,
            aborted,
            durable,
        })
    }

    /// The latest point of the image that is flushed to the partition and can be resumed from (see
    /// [`Start::checkpoint_every`]).
    pub fn durable(&self) -> Option<Resumable> {
        self.durable.borrow().clone()
    }

    /// Waits until [`ImageWriter::durable`] has a newer point (for ever once the writer has stopped).
    pub async fn durable_changed(&mut self) {
        if self.durable.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Passes the next piece of the compressed stream on. Fails (with the pipeline's error) when a stage has
    /// stopped.
    pub async fn push(&mut self, chunk: Bytes) -> Result<(), WriteError> {
        let sent = match &self.chunks {
            Some(chunks) => chunks.send(chunk).await.is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            // The decoder hung up: its error (or a later stage's) says why.
            Err(self.stop().err().unwrap_or_else(|| WriteError::Stopped {
                image: self.image.clone(),
                stage: "decoder",
            }))
        }
    }

    /// Bytes of the image written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Bytes of the image flushed, read back and checksummed so far.
    pub fn verified(&self) -> u64 {
        self.verified.load(Ordering::Relaxed)
    }

    /// The stream ended `Ok` (tough checked its length and sha256): decode and write the rest and `fsync`
    /// (then `written` sees the image's length), read the rest back (`verified` sees the bytes read back while
    /// this waits), and compare.
    pub fn finish(
        mut self,
        written: &mut dyn FnMut(u64),
        verified: &mut dyn FnMut(u64),
    ) -> Result<WrittenImage, WriteError> {
        self.chunks = None;
        let image = match self.join_writing() {
            Ok(image) => image,
            Err(e) => {
                drop(self.join_read_back());
                return Err(e);
            }
        };
        written(image.len);
        while self.reader.as_ref().is_some_and(|r| !r.is_finished()) {
            verified(self.verified());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let read = self.join_read_back()?;
        self.compare(image, read)
            .inspect(|image| verified(image.len))
    }

    /// The stream failed: stop the threads. The decoder sees an error instead of the end of its input, so no
    /// partial image is flushed as if it were complete (the caller reports the stream's error either way).
    pub fn abort(mut self) {
        self.aborted.store(true, Ordering::Release);
        drop(self.stop());
    }

    /// Closes the input and joins the threads: the verified image, or the first stage's error.
    fn stop(&mut self) -> Result<WrittenImage, WriteError> {
        self.chunks = None;
        let image = self.join_writing();
        let read = self.join_read_back();
        self.compare(image?, read?)
    }

    /// Joins the decoder and the writer: the image as written and flushed (its read-back not yet checked), or
    /// the first stage's error (the decoder's, then the writer's; a stage that stopped because another did has
    /// nothing of its own to say).
    fn join_writing(&mut self) -> Result<WrittenImage, WriteError> {
        let decoded = match self.decoder.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(self.stopped("decoder")),
        };
        let written = match self.writer.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(self.stopped("writer")),
        };
        let decoded = decoded?;
        let written = written?;
        debug_assert_eq!(decoded, written.len);
        Ok(written)
    }

    /// Joins the read-back: the checksum of the image as read back from the device.
    fn join_read_back(&mut self) -> Result<u128, WriteError> {
        match self.reader.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(self.stopped("read-back")),
        }
    }

    fn compare(&self, image: WrittenImage, read: u128) -> Result<WrittenImage, WriteError> {
        if read != image.checksum {
            return MismatchSnafu {
                image: &self.image,
                partition: &self.partition,
                written: image.checksum_hex(),
                read: format!("{read:032x}"),
            }
            .fail();
        }
        Ok(image)
    }

    fn stopped(&self, stage: &'static str) -> WriteError {
        WriteError::Stopped {
            image: self.image.clone(),
            stage,
        }
    }
}

impl Drop for ImageWriter {
    fn drop(&mut self) {
        if self.decoder.is_some() || self.writer.is_some() || self.reader.is_some() {
            drop(self.stop());
        }
    }
}

/// The compressed stream as `Read`, for the frame decoder: chunks from the async side. The end of the channel is
/// the end of the stream, unless the writer was aborted.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
    aborted: Arc<AtomicBool>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None if self.aborted.load(Ordering::Acquire) => {
                    return Err(io::Error::other("the download failed"));
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// The decoder thread.
struct Decode {
    image: String,
    partition: String,
    limit: u64,
    resume: Option<Resumable>,
    checkpoint_every: Option<u64>,
}

impl Decode {
    /// Decodes block by block ([`lz4::Decoder`]) into free buffers and hands them on full; returns the image's
    /// length. Every `checkpoint_every` compressed bytes, at the next block boundary it can resume from whose image
    /// offset is [`ALIGN`]ed (so direct writes stay aligned), it hands on the buffer as filled so far and a
    /// [`Decoded::Mark`]. Any error (or a later stage that stopped) drops the channel without an `End`, so the
    /// writer never flushes a partial image as complete.
    // The stage owns its channel ends: returning drops them, which is how the stages next to it learn that it
    // stopped (the module's diagram).
    #[allow(clippy::needless_pass_by_value)]
    fn run(
        self,
        input: ChannelReader,
        free: Receiver<AlignedBuf>,
        decoded: SyncSender<Decoded>,
    ) -> Result<u64, WriteError> {
        let (at, mut sha256) = match self.resume {
            Some(resume) => (resume.position, resume.sha256),
            None => (
                Position {
                    compressed: 0,
                    decompressed: 0,
                    frame: None,
                },
                ResumableSha256::new(),
            ),
        };
        let hashing = self.checkpoint_every.is_some();
        let mut decoder = lz4::Decoder::new(input, at);
        let mut last_mark = at.compressed;
        let mut said_linked = false;
        let mut total = at.decompressed;
        let Ok(mut buf) = free.recv() else {
            return Ok(total);
        };
        buf.filled = 0;
        loop {
            let block = match decoder.next_block(&mut |bytes| {
                if hashing {
                    sha256.update(bytes);
                }
            }) {
                Ok(Some(block)) => block,
                Ok(None) => break,
                Err(source) => {
                    return Err(WriteError::Decode {
                        image: self.image,
                        source,
                    });
                }
            };
            total += block.len() as u64;
            if total > self.limit {
                return TooLargeSnafu {
                    image: self.image,
                    partition: self.partition,
                    partition_len: self.limit,
                }
                .fail();
            }
            let mut rest = block;
            while !rest.is_empty() {
                let n = rest.len().min(BUFFER_SIZE - buf.filled);
                let filled = buf.filled;
                buf.space()[filled..filled + n].copy_from_slice(&rest[..n]);
                buf.filled += n;
                rest = &rest[n..];
                if buf.filled == BUFFER_SIZE {
                    if decoded.send(Decoded::Data(buf)).is_err() {
                        return Ok(total);
                    }
                    let Ok(next) = free.recv() else {
                        // The writer stopped; its error is the one to report.
                        return Ok(total);
                    };
                    buf = next;
                    buf.filled = 0;
                }
            }
            let Some(every) = self.checkpoint_every else {
                continue;
            };
            if decoder.compressed() - last_mark < every {
                continue;
            }
            match decoder.position() {
                Some(position) if position.decompressed.is_multiple_of(ALIGN as u64) => {
                    if buf.filled > 0 {
                        if decoded.send(Decoded::Data(buf)).is_err() {
                            return Ok(total);
                        }
                        let Ok(next) = free.recv() else {
                            return Ok(total);
                        };
                        buf = next;
                        buf.filled = 0;
                    }
                    let mark = Resumable {
                        position,
                        sha256: sha256.clone(),
                        // The writer knows it.
                        prefix_checksum: 0,
                    };
                    if decoded.send(Decoded::Mark(mark)).is_err() {
                        return Ok(total);
                    }
                    last_mark = position.compressed;
                }
                None if !said_linked && decoder.in_linked_frame() => {
                    log::warn!(
                        "The {} image is an lz4 frame with linked blocks: its download cannot be resumed from a \
                         checkpoint inside the frame (after a crash it starts over)",
                        self.image
                    );
                    said_linked = true;
                }
                _ => {}
            }
        }
        if total == 0 {
            return EmptySnafu { image: self.image }.fail();
        }
        if buf.filled > 0 && decoded.send(Decoded::Data(buf)).is_err() {
            return Ok(total);
        }
        // A later stage may have stopped on an error of its own; it reports that.
        let _ = decoded.send(Decoded::End);
        Ok(total)
    }
}

/// The writer thread.
struct Write {
    image: String,
    partition: String,
    written: Arc<AtomicU64>,
    durable: tokio::sync::watch::Sender<Option<Resumable>>,
}

impl Write {
    /// Checksums each buffer, writes it at its place and returns it to the decoder, flushing every [`WINDOW`]
    /// bytes and telling the read-back; at the end, `fsync`s.
    // The stage owns its channel ends: returning drops them, which is how the stages next to it learn that it
    // stopped (the module's diagram).
    #[allow(clippy::needless_pass_by_value)]
    fn run(
        self,
        mut io: PartitionIo,
        prefix: Option<(ReadBack, Resumable)>,
        decoded: Receiver<Decoded>,
        free: SyncSender<AlignedBuf>,
        flushed: Sender<Flushed>,
    ) -> Result<WrittenImage, WriteError> {
        let (mut checksum, mut offset) = match prefix {
            Some((read_back, resume)) => self.read_prefix(read_back, &resume)?,
            None => (XxHash3_128::new(), 0),
        };
        let mut next_flush = offset + WINDOW;
        loop {
            match decoded.recv() {
                Ok(Decoded::Data(buf)) => {
                    let data = buf.data();
                    checksum.write(data);
                    io.write_at(data, offset).context(WriteSnafu {
                        image: &self.image,
                        partition: &self.partition,
                        offset,
                    })?;
                    offset += data.len() as u64;
                    self.written.store(offset, Ordering::Relaxed);
                    // The decoder may be done; then the buffer is simply freed.
                    let _ = free.send(buf);
                    if offset >= next_flush {
                        io.sync_data().context(WriteSnafu {
                            image: &self.image,
                            partition: &self.partition,
                            offset,
                        })?;
                        // The read-back may have failed; it reports that.
                        let _ = flushed.send(Flushed::UpTo(offset));
                        next_flush = offset + WINDOW;
                    }
                }
                Ok(Decoded::Mark(mark)) => {
                    // The decoder cut its buffer at the mark, so everything before it is written.
                    debug_assert_eq!(mark.position.decompressed, offset);
                    if mark.position.decompressed != offset {
                        continue;
                    }
                    io.sync_data().context(WriteSnafu {
                        image: &self.image,
                        partition: &self.partition,
                        offset,
                    })?;
                    let _ = flushed.send(Flushed::UpTo(offset));
                    next_flush = offset + WINDOW;
                    self.durable.send_replace(Some(Resumable {
                        prefix_checksum: checksum.clone().finish_128(),
                        ..mark
                    }));
                }
                Ok(Decoded::End) => break,
                // An earlier stage failed (it reports why): what was written is not an image.
                Err(_) => {
                    return StoppedSnafu {
                        image: self.image,
                        stage: "decoder",
                    }
                    .fail();
                }
            }
        }
        io.sync_all().context(SyncSnafu {
            image: &self.image,
            partition: &self.partition,
        })?;
        let _ = flushed.send(Flushed::Complete(offset));
        Ok(WrittenImage {
            len: offset,
            checksum: checksum.finish_128(),
            direct: io.direct.is_some(),
        })
    }
}

impl Write {
    /// Resuming: reads the image's first bytes back from the device and checks them against the checksum the
    /// checkpoint recorded for them; the checksum of the whole image continues from them.
    fn read_prefix(
        &self,
        mut read_back: ReadBack,
        resume: &Resumable,
    ) -> Result<(XxHash3_128, u64), WriteError> {
        let len = resume.position.decompressed;
        read_back.advance(len, &|_| {})?;
        let read = read_back.hasher.clone().finish_128();
        if read != resume.prefix_checksum {
            return PrefixMismatchSnafu {
                image: &self.image,
                partition: &self.partition,
                len,
                recorded: format!("{:032x}", resume.prefix_checksum),
                read: format!("{read:032x}"),
            }
            .fail();
        }
        self.written.store(len, Ordering::Relaxed);
        Ok((read_back.hasher, len))
    }
}

/// The read-back thread: follows the writer's flushes, reading each flushed range back and checksumming it; the
/// checksum of the whole image as read back once the writer has `fsync`ed it.
// The stage owns its channel ends: returning drops them, which is how the stages next to it learn that it
// stopped (the module's diagram).
#[allow(clippy::needless_pass_by_value)]
fn read_back_stage(
    mut read_back: ReadBack,
    flushed: Receiver<Flushed>,
    verified: &AtomicU64,
    image: &str,
) -> Result<u128, WriteError> {
    let progress = |done| verified.store(done, Ordering::Relaxed);
    loop {
        match flushed.recv() {
            Ok(Flushed::UpTo(end)) => read_back.advance(end, &progress)?,
            Ok(Flushed::Complete(len)) => {
                read_back.advance(len, &progress)?;
                return Ok(read_back.finish());
            }
            // The writer stopped without finishing (it reports why).
            Err(_) => {
                return StoppedSnafu {
                    image,
                    stage: "writer",
                }
                .fail();
            }
        }
    }
}

/// Reads the first `written.len` bytes of `target` back from the device (all of it, on this thread) and checks
/// them against `written.checksum`; `progress` sees the bytes checked so far. [`ImageWriter::finish`] already does
/// this while writing; this is for checking an image written earlier.
pub fn verify_image(
    target: &PartitionTarget,
    image: &str,
    written: &WrittenImage,
    progress: &mut dyn FnMut(u64),
) -> Result<(), WriteError> {
    let mut read_back = ReadBack::open(target, image)?;
    let done = AtomicU64::new(0);
    let mut end = 0;
    while end < written.len {
        end = (end + WINDOW).min(written.len);
        read_back.advance(end, &|n| done.store(n, Ordering::Relaxed))?;
        progress(done.load(Ordering::Relaxed));
    }
    let read = read_back.finish();
    if read != written.checksum {
        return MismatchSnafu {
            image,
            partition: target.to_string(),
            written: written.checksum_hex(),
            read: format!("{read:032x}"),
        }
        .fail();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use signpost::Guid;
    use std::io::Write as _;

    /// A partition of `len` bytes at 1 MiB into a 4 MiB-larger image file, and the file.
    fn partition(dir: &std::path::Path, len: u64) -> PartitionTarget {
        let disk = dir.join("disk.img");
        let file = std::fs::File::create(&disk).unwrap();
        file.set_len(len + (4 << 20)).unwrap();
        PartitionTarget {
            disk,
            number: 9,
            partuuid: Guid::from_disk_bytes([9; 16]),
            label: "BOTTLEROCKET-ROOT-B".into(),
            first_lba: 2048,
            last_lba: 2048 + len / 512 - 1,
            sector_size: 512,
            node: None,
        }
    }

    fn compress(data: &[u8]) -> Vec<u8> {
        let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    // Low bytes on purpose: the pattern wraps.
    #[allow(clippy::cast_possible_truncation)]
    fn pattern(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| ((i / 7) as u8).wrapping_mul(13) ^ (i % 251) as u8)
            .collect()
    }

    /// Streams `compressed` in 100 000-byte chunks through a writer into `target`.
    fn stream(target: &PartitionTarget, compressed: &[u8]) -> Result<WrittenImage, WriteError> {
        stream_reporting(target, compressed, &mut Vec::new(), &mut Vec::new())
    }

    /// [`stream`], recording what `finish` reports as written and as read back.
    fn stream_reporting(
        target: &PartitionTarget,
        compressed: &[u8],
        written: &mut Vec<u64>,
        verified: &mut Vec<u64>,
    ) -> Result<WrittenImage, WriteError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut writer = ImageWriter::start(target, "root")?;
            for chunk in compressed.chunks(100_000) {
                writer.push(Bytes::copy_from_slice(chunk)).await?;
            }
            writer.finish(&mut |n| written.push(n), &mut |n| verified.push(n))
        })
    }

    fn disk_bytes(target: &PartitionTarget, from: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        std::fs::File::open(&target.disk)
            .unwrap()
            .read_exact_at(&mut buf, from)
            .unwrap();
        buf
    }

    #[test]
    fn an_image_lands_in_the_partition_with_its_hash_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let target = partition(dir.path(), 16 << 20);
        // Not a multiple of the buffer or of the alignment: a buffered tail.
        let data = pattern((9 << 20) + 1234);
        let written = stream(&target, &compress(&data)).unwrap();
        assert_eq!(written.len, data.len() as u64);
        assert_eq!(written.checksum, XxHash3_128::oneshot(&data));
        assert!(disk_bytes(&target, 1 << 20, data.len()) == data);
        assert!(disk_bytes(&target, 0, 1 << 20).iter().all(|&b| b == 0));

        let mut seen = Vec::new();
        verify_image(&target, "root", &written, &mut |done| seen.push(done)).unwrap();
        assert_eq!(seen.last(), Some(&written.len));
    }

    #[test]
    fn a_large_image_is_flushed_and_read_back_window_by_window() {
        let dir = tempfile::tempdir().unwrap();
        let len = usize::try_from(WINDOW).unwrap() + (5 << 20) + 512;
        let target = partition(dir.path(), len as u64 + (1 << 20));
        let data = pattern(len);
        let (mut written, mut verified) = (Vec::new(), Vec::new());
        let image =
            stream_reporting(&target, &compress(&data), &mut written, &mut verified).unwrap();
        assert_eq!(image.len, len as u64);
        assert_eq!(image.checksum, XxHash3_128::oneshot(&data));
        assert_eq!(written, [len as u64]);
        assert_eq!(verified.last(), Some(&(len as u64)));
        assert!(verified.windows(2).all(|w| w[0] <= w[1]), "{verified:?}");
        assert!(disk_bytes(&target, 1 << 20, len) == data);
    }

    #[test]
    fn an_image_larger_than_its_partition_fails_without_writing_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let target = partition(dir.path(), 8 << 20);
        let data = pattern((8 << 20) + 1);
        let error = stream(&target, &compress(&data)).unwrap_err();
        assert!(matches!(error, WriteError::TooLarge { .. }), "{error}");
        assert_eq!(
            error.to_string(),
            format!(
                "The root image decompresses to more than {target}'s 8388608 bytes; nothing past the partition was written"
            )
        );
        let after = disk_bytes(&target, (1 << 20) + (8 << 20), 3 << 20);
        assert!(
            after.iter().all(|&b| b == 0),
            "the next partition is untouched"
        );
    }

    #[test]
    fn a_truncated_or_corrupt_lz4_stream_fails() {
        let dir = tempfile::tempdir().unwrap();
        let target = partition(dir.path(), 16 << 20);
        let compressed = compress(&pattern(6 << 20));
        let error = stream(&target, &compressed[..compressed.len() - 1000]).unwrap_err();
        assert!(matches!(error, WriteError::Decode { .. }), "{error}");

        let error = stream(&target, b"definitely not lz4").unwrap_err();
        assert!(matches!(error, WriteError::Decode { .. }), "{error}");

        let error = stream(&target, b"").unwrap_err();
        assert!(matches!(error, WriteError::Empty { .. }), "{error}");
    }

    #[test]
    fn a_changed_byte_on_the_device_fails_the_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let target = partition(dir.path(), 8 << 20);
        let data = pattern(5 << 20);
        let written = stream(&target, &compress(&data)).unwrap();
        let disk = OpenOptions::new().write(true).open(&target.disk).unwrap();
        disk.write_all_at(&[data[4_000_000] ^ 1], (1 << 20) + 4_000_000)
            .unwrap();
        disk.sync_all().unwrap();
        let error = verify_image(&target, "root", &written, &mut |_| {}).unwrap_err();
        assert!(matches!(error, WriteError::Mismatch { .. }), "{error}");
    }

    /// Pushes `compressed` until `stop_at` bytes went in with checkpoints every `every` bytes, aborts (a crash),
    /// and returns the last durable point.
    fn interrupted(
        target: &PartitionTarget,
        compressed: &[u8],
        stop_at: usize,
        every: u64,
    ) -> Resumable {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let start = Start {
                resume: None,
                checkpoint_every: Some(every),
            };
            let mut writer = ImageWriter::start_with(target, "root", start).unwrap();
            for chunk in compressed[..stop_at].chunks(10_000) {
                writer.push(Bytes::copy_from_slice(chunk)).await.unwrap();
            }
            // The decoder has everything pushed; wait for the writer to flush what it can.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let durable = loop {
                let durable = writer.durable();
                if durable
                    .as_ref()
                    .is_some_and(|d| d.position.compressed + every + (64 << 10) >= stop_at as u64)
                    || std::time::Instant::now() > deadline
                {
                    break durable.unwrap();
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            };
            writer.abort();
            durable
        })
    }

    fn resumed(
        target: &PartitionTarget,
        compressed: &[u8],
        from: Resumable,
    ) -> Result<WrittenImage, WriteError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let at = usize::try_from(from.position.compressed).unwrap();
            let start = Start {
                resume: Some(from),
                checkpoint_every: Some(1 << 20),
            };
            let mut writer = ImageWriter::start_with(target, "root", start)?;
            for chunk in compressed[at..].chunks(100_000) {
                writer.push(Bytes::copy_from_slice(chunk)).await?;
            }
            writer.finish(&mut |_| {}, &mut |_| {})
        })
    }

    #[test]
    fn a_write_resumed_from_its_last_durable_point_gives_the_whole_image() {
        let dir = tempfile::tempdir().unwrap();
        let target = partition(dir.path(), 16 << 20);
        let data = pattern((9 << 20) + 4096 * 3);
        let compressed = compress(&data);
        let stop_at = compressed.len() * 9 / 10;
        let every = 200_000;
        let durable = interrupted(&target, &compressed, stop_at, every);
        // The durable point is at most one interval (and a block) before where the input stopped, aligned, with
        // the sha256 state of the compressed bytes before it and the checksum of the image before it.
        let (c, d) = (durable.position.compressed, durable.position.decompressed);
        assert!(
            c + every + (64 << 10) >= stop_at as u64,
            "{c} for {stop_at}"
        );
        assert!(d.is_multiple_of(ALIGN as u64));
        let mut sha = ResumableSha256::new();
        sha.update(&compressed[..usize::try_from(c).unwrap()]);
        assert_eq!(durable.sha256, sha);
        let d = usize::try_from(d).unwrap();
        assert_eq!(durable.prefix_checksum, XxHash3_128::oneshot(&data[..d]));
        assert!(
            disk_bytes(&target, 1 << 20, d) == data[..d],
            "the prefix is on the partition"
        );

        let written = resumed(&target, &compressed, durable.clone()).unwrap();
        assert_eq!(written.len, data.len() as u64);
        assert_eq!(
            written.checksum,
            XxHash3_128::oneshot(&data),
            "the whole image"
        );
        assert!(disk_bytes(&target, 1 << 20, data.len()) == data);

        // A prefix changed on the partition since: the resume is refused.
        let disk = OpenOptions::new().write(true).open(&target.disk).unwrap();
        disk.write_all_at(&[data[5000] ^ 1], (1 << 20) + 5000)
            .unwrap();
        disk.sync_all().unwrap();
        let error = resumed(&target, &compressed, durable).unwrap_err();
        assert!(
            matches!(error, WriteError::PrefixMismatch { .. }),
            "{error}"
        );
    }

    #[test]
    fn an_aborted_write_joins_its_threads() {
        let dir = tempfile::tempdir().unwrap();
        let target = partition(dir.path(), 8 << 20);
        let compressed = compress(&pattern(6 << 20));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut writer = ImageWriter::start(&target, "root").unwrap();
            writer
                .push(Bytes::copy_from_slice(&compressed[..200_000]))
                .await
                .unwrap();
            writer.abort();
        });
    }
}
