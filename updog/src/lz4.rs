//! An lz4 frame decoder that can say where it is and start again there: what [`crate::write`] decodes images with,
//! so a download can continue from a checkpoint ([`crate::checkpoint`]).
//!
//! lz4_flex's `FrameDecoder` cannot start mid-frame, so the frame format (lz4's `lz4_Frame_format.md`) is read
//! here and each block decoded with `lz4_flex::block`: a frame header (magic, FLG, BD, optional content size, the
//! header checksum), then blocks (a 4-byte little-endian size whose high bit marks a stored block, the data, an
//! optional block checksum), an end mark (size 0) and an optional content checksum; frames may follow each other,
//! and skippable frames are skipped.
//!
//! Where decoding can start again ([`Position`]): between frames always, and inside a frame after any block when the
//! frame's blocks are independent (FLG bit 5, what the publisher's lz4_flex and the `lz4` CLI write by default:
//! 64 KiB blocks, independent, no checksums). Blocks of a linked frame refer to the 64 KiB before them, so such a
//! frame can only be started again from its beginning; the decoder then reports no position inside it (the update
//! starts that image over, and says so).
//!
//! A frame's content checksum (XXH32 of its content), when present, is checked when the frame was decoded from its
//! start; a frame resumed in the middle cannot be (XXH32's state is not saved), which loses nothing: the compressed
//! stream's sha256 is checked against the signed metadata either way, and decoding is deterministic.

use serde::{Deserialize, Serialize};
use std::hash::Hasher as _;
use std::io::{self, Read};
use twox_hash::XxHash32;

const MAGIC: u32 = 0x184D_2204;
const SKIPPABLE: std::ops::RangeInclusive<u32> = 0x184D_2A50..=0x184D_2A5F;
/// The window a linked block may refer back to.
const WINDOW: usize = 64 << 10;

/// What a frame's descriptor says about its blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameFormat {
    pub block_max: usize,
    pub independent: bool,
    pub block_checksums: bool,
    pub content_checksum: bool,
}

/// A point of the stream where decoding can start again: the offsets in the compressed stream and in the image,
/// and the frame it is inside (`None`: before a frame header, or at the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub compressed: u64,
    pub decompressed: u64,
    pub frame: Option<FrameFormat>,
}

/// The frame being decoded.
struct Frame {
    format: FrameFormat,
    /// XXH32 of the content so far, when the frame has a content checksum and was decoded from its start.
    content: Option<XxHash32>,
}

/// Decodes an lz4 frame stream block by block from `R`, keeping count of the compressed bytes it consumed; every
/// consumed byte also goes to `observe` (the caller's hash of the compressed stream).
pub struct Decoder<R> {
    input: R,
    compressed: u64,
    decompressed: u64,
    frame: Option<Frame>,
    /// The decoded block (and, before it, for a linked frame, up to [`WINDOW`] bytes of the previous output).
    out: Vec<u8>,
    /// Where the last block starts in `out`.
    block_start: usize,
    raw: Vec<u8>,
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl<R: Read> Decoder<R> {
    /// A decoder at `at` (use [`Position::default`]-like zero position, `frame: None`, for a whole stream).
    pub fn new(input: R, at: Position) -> Self {
        Self {
            input,
            compressed: at.compressed,
            decompressed: at.decompressed,
            frame: at.frame.map(|format| Frame {
                format,
                content: None,
            }),
            out: Vec::new(),
            block_start: 0,
            raw: Vec::new(),
        }
    }

    /// Where decoding could start again now, if it can: between frames, or after a block of an independent frame.
    pub fn position(&self) -> Option<Position> {
        match &self.frame {
            Some(frame) if !frame.format.independent => None,
            frame => Some(Position {
                compressed: self.compressed,
                decompressed: self.decompressed,
                frame: frame.as_ref().map(|f| f.format),
            }),
        }
    }

    /// Whether the frame being decoded has linked blocks (no position inside it).
    pub fn in_linked_frame(&self) -> bool {
        self.frame.as_ref().is_some_and(|f| !f.format.independent)
    }

    pub fn compressed(&self) -> u64 {
        self.compressed
    }

    pub fn decompressed(&self) -> u64 {
        self.decompressed
    }

    fn read_exact(&mut self, buf_len: usize, observe: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        self.raw.resize(buf_len, 0);
        self.input.read_exact(&mut self.raw)?;
        observe(&self.raw);
        self.compressed += buf_len as u64;
        Ok(())
    }

    fn read_u32(&mut self, observe: &mut dyn FnMut(&[u8])) -> io::Result<u32> {
        self.read_exact(4, observe)?;
        Ok(u32::from_le_bytes(
            self.raw[..4].try_into().expect("4 bytes"),
        ))
    }

    /// The next frame's first 4 bytes, or `None` at a clean end of the stream.
    fn read_magic(&mut self, observe: &mut dyn FnMut(&[u8])) -> io::Result<Option<u32>> {
        let mut first = [0u8; 1];
        loop {
            match self.input.read(&mut first) {
                Ok(0) => return Ok(None),
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        observe(&first);
        self.compressed += 1;
        self.read_exact(3, observe)?;
        Ok(Some(u32::from_le_bytes([
            first[0],
            self.raw[0],
            self.raw[1],
            self.raw[2],
        ])))
    }

    /// Reads frame headers (skipping skippable frames) until a frame starts; `false` at the end of the stream.
    fn start_frame(&mut self, observe: &mut dyn FnMut(&[u8])) -> io::Result<bool> {
        loop {
            // An empty stream is no image (the caller says so), but not a broken lz4 stream.
            let Some(magic) = self.read_magic(observe)? else {
                return Ok(false);
            };
            if SKIPPABLE.contains(&magic) {
                let len = self.read_u32(observe)?;
                let mut rest = u64::from(len);
                while rest > 0 {
                    let step = usize::try_from(rest.min(64 << 10)).expect("at most 64 KiB");
                    self.read_exact(step, observe)?;
                    rest -= step as u64;
                }
                continue;
            }
            if magic != MAGIC {
                return Err(invalid(format!("not an lz4 frame (magic {magic:#010x})")));
            }
            self.read_exact(2, observe)?;
            let (flg, bd) = (self.raw[0], self.raw[1]);
            if flg >> 6 != 0b01 {
                return Err(invalid(format!(
                    "unsupported lz4 frame version (FLG {flg:#04x})"
                )));
            }
            if flg & 0b10 != 0 || bd & 0b1000_1111 != 0 {
                return Err(invalid("reserved bits set in the lz4 frame descriptor"));
            }
            if flg & 1 != 0 {
                return Err(invalid("lz4 frames with a dictionary are not supported"));
            }
            let block_max = match (bd >> 4) & 0b111 {
                4 => 64 << 10,
                5 => 256 << 10,
                6 => 1 << 20,
                7 => 4 << 20,
                other => return Err(invalid(format!("invalid lz4 block size code {other}"))),
            };
            let mut descriptor = vec![flg, bd];
            if flg & 0b1000 != 0 {
                self.read_exact(8, observe)?;
                descriptor.extend_from_slice(&self.raw);
            }
            self.read_exact(1, observe)?;
            let want = self.raw[0];
            // The header checksum is the second byte of the descriptor's XXH32.
            let got = XxHash32::oneshot(0, &descriptor).to_le_bytes()[1];
            if got != want {
                return Err(invalid(format!(
                    "lz4 frame header checksum {want:#04x}, computed {got:#04x}"
                )));
            }
            let format = FrameFormat {
                block_max,
                independent: flg & 0b10_0000 != 0,
                block_checksums: flg & 0b1_0000 != 0,
                content_checksum: flg & 0b100 != 0,
            };
            self.frame = Some(Frame {
                format,
                content: format.content_checksum.then(|| XxHash32::with_seed(0)),
            });
            self.out.clear();
            self.block_start = 0;
            return Ok(true);
        }
    }

    /// Decodes the next block: its bytes, or `None` at the end of the stream. Every compressed byte consumed goes
    /// to `observe` first.
    pub fn next_block(&mut self, observe: &mut dyn FnMut(&[u8])) -> io::Result<Option<&[u8]>> {
        loop {
            if self.frame.is_none() && !self.start_frame(observe)? {
                return Ok(None);
            }
            let format = self.frame.as_ref().expect("a frame was started").format;
            let word = self.read_u32(observe)?;
            if word == 0 {
                if format.content_checksum {
                    let want = self.read_u32(observe)?;
                    if let Some(hasher) = self.frame.as_ref().and_then(|f| f.content.as_ref())
                        && hasher.finish_32() != want
                    {
                        return Err(invalid(format!(
                            "lz4 content checksum {want:#010x}, computed {:#010x}",
                            hasher.finish_32()
                        )));
                    }
                }
                self.frame = None;
                continue;
            }
            let stored = word & 0x8000_0000 != 0;
            let len = (word & 0x7FFF_FFFF) as usize;
            if len > format.block_max {
                return Err(invalid(format!(
                    "an lz4 block of {len} bytes in a frame of {} byte blocks",
                    format.block_max
                )));
            }
            self.read_exact(len, observe)?;
            if format.block_checksums {
                let block = std::mem::take(&mut self.raw);
                let want = self.read_u32(observe)?;
                let got = XxHash32::oneshot(0, &block);
                self.raw = block;
                if got != want {
                    return Err(invalid(format!(
                        "lz4 block checksum {want:#010x}, computed {got:#010x}"
                    )));
                }
                self.raw.truncate(len);
            }
            // A linked block may refer to the previous 64 KiB of output: keep them in front of it.
            let keep = if format.independent {
                0
            } else {
                self.out.len().min(WINDOW)
            };
            let drop = self.out.len() - keep;
            self.out.drain(..drop);
            self.block_start = keep;
            if stored {
                self.out.extend_from_slice(&self.raw[..len]);
            } else {
                self.out.resize(keep + format.block_max, 0);
                let (dict, space) = self.out.split_at_mut(keep);
                let n = lz4_flex::block::decompress_into_with_dict(&self.raw[..len], space, dict)
                    .map_err(|e| invalid(format!("an lz4 block does not decode: {e}")))?;
                self.out.truncate(keep + n);
            }
            let block = &self.out[self.block_start..];
            if let Some(hasher) = self.frame.as_mut().and_then(|f| f.content.as_mut()) {
                hasher.write(block);
            }
            self.decompressed += block.len() as u64;
            if block.is_empty() {
                continue;
            }
            return Ok(Some(&self.out[self.block_start..]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
    use std::io::Write;

    // Low bytes on purpose: the pattern wraps.
    #[allow(clippy::cast_possible_truncation)]
    fn image(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| {
                if i % 9000 < 3000 {
                    0
                } else {
                    (i * 7 / 5 + i / 1001) as u8
                }
            })
            .collect()
    }

    fn encode(data: &[u8], info: FrameInfo) -> Vec<u8> {
        let mut encoder = FrameEncoder::with_frame_info(info, Vec::new());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// Decodes all of `compressed[from.compressed..]` from `from`, returning the bytes and every position seen.
    fn decode_from(compressed: &[u8], from: Position) -> io::Result<(Vec<u8>, Vec<Position>)> {
        let start = usize::try_from(from.compressed).unwrap();
        let mut decoder = Decoder::new(&compressed[start..], from);
        let (mut out, mut positions) = (Vec::new(), Vec::new());
        while let Some(block) = decoder.next_block(&mut |_| {})? {
            out.extend_from_slice(block);
            positions.extend(decoder.position());
        }
        assert_eq!(decoder.compressed(), compressed.len() as u64);
        Ok((out, positions))
    }

    fn start() -> Position {
        Position {
            compressed: 0,
            decompressed: 0,
            frame: None,
        }
    }

    #[test]
    fn the_publishers_frames_have_independent_64k_blocks_and_decode_from_any_block() {
        let data = image(1_000_000);
        // What repo-fixtures and tuftool-config publish: lz4_flex's defaults.
        let compressed = repo_fixtures::chain::lz4_compress(&data);
        let (out, positions) = decode_from(&compressed, start()).unwrap();
        assert!(out == data);
        assert_eq!(positions.len(), 1_000_000_usize.div_ceil(64 << 10));
        let format = positions[0].frame.unwrap();
        assert_eq!(
            (format.block_max, format.independent, format.block_checksums),
            (64 << 10, true, false)
        );
        for at in &positions {
            let (rest, _) = decode_from(&compressed, *at).unwrap();
            let from = usize::try_from(at.decompressed).unwrap();
            assert!(rest == data[from..], "resumed at {at:?}");
        }
    }

    #[test]
    fn checksummed_frames_in_sequence_decode_and_verify() {
        let data = image(300_000);
        let info = FrameInfo::new()
            .block_size(BlockSize::Max256KB)
            .block_checksums(true)
            .content_checksum(true)
            .content_size(Some(300_000));
        let mut compressed = encode(&data, info.clone());
        let info = info.content_size(Some(1000));
        // A skippable frame, then a second frame.
        compressed.extend_from_slice(&0x184D_2A53u32.to_le_bytes());
        compressed.extend_from_slice(&5u32.to_le_bytes());
        compressed.extend_from_slice(b"hello");
        compressed.extend_from_slice(&encode(&data[..1000], info));
        let (out, positions) = decode_from(&compressed, start()).unwrap();
        assert!(out[..300_000] == data[..] && out[300_000..] == data[..1000]);
        for at in positions {
            let (rest, _) = decode_from(&compressed, at).unwrap();
            assert!(rest == out[usize::try_from(at.decompressed).unwrap()..]);
        }
        // A changed content byte fails a checksum.
        let mut bad = compressed.clone();
        bad[200] ^= 1;
        assert!(decode_from(&bad, start()).is_err());
    }

    #[test]
    fn linked_frames_decode_but_offer_no_position_inside_them() {
        let data = image(500_000);
        let info = FrameInfo::new().block_mode(BlockMode::Linked);
        let compressed = encode(&data, info);
        let (out, positions) = decode_from(&compressed, start()).unwrap();
        assert!(out == data);
        // Only the end of the frame.
        assert_eq!(positions.len(), 0);
    }

    #[test]
    fn not_lz4_truncated_and_empty_streams_fail() {
        assert!(decode_from(b"definitely not lz4", start()).is_err());
        assert!(decode_from(b"", start()).unwrap().0.is_empty());
        let compressed = encode(&image(200_000), FrameInfo::new());
        let mut decoder = Decoder::new(&compressed[..compressed.len() - 100], start());
        let error = loop {
            match decoder.next_block(&mut |_| {}) {
                Ok(Some(_)) => {}
                Ok(None) => panic!("a truncated stream ended cleanly"),
                Err(e) => break e,
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn every_consumed_byte_is_observed() {
        let compressed = encode(&image(200_000), FrameInfo::new());
        let mut seen = Vec::new();
        let mut decoder = Decoder::new(&compressed[..], start());
        while decoder
            .next_block(&mut |b| seen.extend_from_slice(b))
            .unwrap()
            .is_some()
        {}
        assert!(seen == compressed);
    }
}
