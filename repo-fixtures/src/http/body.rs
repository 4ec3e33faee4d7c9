//! Sending a response body with the plan's faults applied at exact byte counts.

use super::fault::{AfterStall, FaultPlan};
use super::stop::StopSignal;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// Bytes read from the file and written per step.
const CHUNK: usize = 64 * 1024;
/// What an `Endless` body sends once the file is exhausted (see [`Fault::Endless`](super::Fault::Endless)).
const FILLER: u8 = b' ';

/// Where a body's bytes come from.
pub(crate) struct BodySource<R> {
    /// The file, positioned at `offset`.
    pub(crate) file: R,
    /// Absolute file offset of the next byte, for `FlipByte`.
    pub(crate) offset: u64,
    /// File bytes still to send.
    pub(crate) remaining: u64,
    /// After the file, send filler for ever.
    pub(crate) endless: bool,
}

/// How a body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyEnd {
    /// Every byte was sent; the connection may be reused.
    Complete,
    /// A fault (or the server stopping) ends the connection here.
    Close,
}

/// Sends the body. `DropAfter` and `StallAfter` count body bytes sent; a stall or drop at or past the end of a
/// finite body happens after its last byte.
pub(crate) fn send_body<R: Read>(
    out: &mut impl Write,
    mut source: BodySource<R>,
    plan: &FaultPlan,
    stop: &StopSignal,
) -> io::Result<BodyEnd> {
    let mut buf = vec![0u8; CHUNK];
    let mut sent: u64 = 0;
    let mut stalls = plan.stalls.iter().peekable();
    let mut pacer = plan.rate.map(Pacer::new);

    loop {
        let n = if source.remaining > 0 {
            let want = usize::try_from(source.remaining).map_or(CHUNK, |r| r.min(CHUNK));
            let n = source.file.read(&mut buf[..want])?;
            if n == 0 {
                // The file shrank under us: the promised length cannot be kept, so end the connection.
                return Ok(BodyEnd::Close);
            }
            source.remaining -= n as u64;
            n
        } else if source.endless {
            buf.fill(FILLER);
            CHUNK
        } else {
            0
        };
        let chunk = &mut buf[..n];
        flip_bytes(chunk, source.offset, &plan.flips);
        source.offset += n as u64;

        if n == 0 {
            // End of a finite body: stalls and drops placed at or beyond its length happen now.
            for stall in stalls {
                out.flush()?;
                if stop.sleep(stall.duration) || stall.then == AfterStall::Close {
                    return Ok(BodyEnd::Close);
                }
            }
            return Ok(if plan.drop_after.is_some() {
                BodyEnd::Close
            } else {
                BodyEnd::Complete
            });
        }

        let mut pos = 0;
        loop {
            while let Some(stall) = stalls.next_if(|stall| stall.bytes <= sent) {
                out.flush()?;
                if stop.sleep(stall.duration) || stall.then == AfterStall::Close {
                    return Ok(BodyEnd::Close);
                }
            }
            if plan.drop_after.is_some_and(|limit| sent >= limit) {
                out.flush()?;
                return Ok(BodyEnd::Close);
            }
            if pos == chunk.len() {
                break;
            }
            // The limits are byte counts in u64: one beyond usize cannot shorten a chunk.
            let at_most = |bytes: u64| usize::try_from(bytes).unwrap_or(usize::MAX);
            let mut len = chunk.len() - pos;
            if let Some(limit) = plan.drop_after {
                len = len.min(at_most(limit - sent));
            }
            if let Some(stall) = stalls.peek() {
                len = len.min(at_most(stall.bytes - sent));
            }
            if let Some(pacer) = &pacer {
                len = len.min(at_most(pacer.step));
            }
            out.write_all(&chunk[pos..pos + len])?;
            pos += len;
            sent += len as u64;
            if let Some(pacer) = &mut pacer
                && pacer.wait(len as u64, stop)
            {
                return Ok(BodyEnd::Close);
            }
        }
    }
}

/// XORs the bytes of `chunk` (which starts at absolute `offset`) that the plan corrupts.
fn flip_bytes(chunk: &mut [u8], offset: u64, flips: &[u64]) {
    for &flip in flips {
        if let Some(i) = flip.checked_sub(offset)
            && let Ok(i) = usize::try_from(i)
            && i < chunk.len()
        {
            chunk[i] ^= 0xFF;
        }
    }
}

/// Keeps the average rate at or under `rate` bytes per second by sleeping after each small step.
struct Pacer {
    rate: u64,
    /// Bytes per write: about 1/20 s of data, so the rate is smooth over short transfers too.
    step: u64,
    start: Instant,
    sent: u64,
}

impl Pacer {
    fn new(rate: u64) -> Pacer {
        let rate = rate.max(1);
        Pacer {
            rate,
            step: (rate / 20).clamp(1, CHUNK as u64),
            start: Instant::now(),
            sent: 0,
        }
    }

    /// Records `bytes` as sent and sleeps until the average is back under the rate; true if the server stopped.
    fn wait(&mut self, bytes: u64, stop: &StopSignal) -> bool {
        self.sent += bytes;
        let due = Duration::from_secs_f64(self.sent as f64 / self.rate as f64);
        match due.checked_sub(self.start.elapsed()) {
            Some(ahead) if !ahead.is_zero() => stop.sleep(ahead),
            _ => stop.is_stopping(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::fault::{Fault, Stall};

    fn body(bytes: &[u8], offset: u64) -> BodySource<&[u8]> {
        BodySource {
            file: &bytes[usize::try_from(offset).unwrap()..],
            offset,
            remaining: (bytes.len() as u64) - offset,
            endless: false,
        }
    }

    fn send(bytes: &[u8], offset: u64, faults: &[Fault]) -> (Vec<u8>, BodyEnd) {
        let mut out = Vec::new();
        let end = send_body(
            &mut out,
            body(bytes, offset),
            &FaultPlan::new(faults),
            &StopSignal::default(),
        )
        .expect("writing to a Vec cannot fail");
        (out, end)
    }

    #[test]
    fn sends_the_body_unchanged_without_faults() {
        let data: Vec<u8> = (0..200_000u32).map(|i| i.to_le_bytes()[0]).collect();
        assert_eq!(send(&data, 0, &[]), (data.clone(), BodyEnd::Complete));
        assert_eq!(
            send(&data, 1000, &[]),
            (data[1000..].to_vec(), BodyEnd::Complete)
        );
    }

    #[test]
    fn drop_after_counts_body_bytes_from_the_range_start() {
        let data = vec![7u8; 100_000];
        assert_eq!(send(&data, 0, &[Fault::DropAfter(70_000)]).0.len(), 70_000);
        assert_eq!(
            send(&data, 50_000, &[Fault::DropAfter(10)]),
            (vec![7; 10], BodyEnd::Close)
        );
        assert_eq!(send(&data, 0, &[Fault::DropAfter(0)]).0.len(), 0);
        assert_eq!(
            send(&data, 0, &[Fault::DropAfter(200_000)]),
            (data, BodyEnd::Close)
        );
    }

    #[test]
    fn flip_byte_uses_absolute_file_offsets() {
        let data = vec![0u8; 100_000];
        let (out, _) = send(&data, 0, &[Fault::FlipByte(70_000)]);
        assert_eq!(out.iter().position(|&b| b != 0), Some(70_000));
        assert_eq!(out.iter().filter(|&&b| b != 0).count(), 1);
        let (out, _) = send(&data, 60_000, &[Fault::FlipByte(70_000)]);
        assert_eq!(out.iter().position(|&b| b != 0), Some(10_000));
        let (out, _) = send(&data, 80_000, &[Fault::FlipByte(70_000)]);
        assert!(out.iter().all(|&b| b == 0));
    }

    #[test]
    fn a_stall_that_closes_ends_the_body_at_its_byte_count() {
        let data = vec![1u8; 1000];
        let stall = Fault::StallAfter {
            bytes: 300,
            duration: Duration::from_millis(1),
            then: AfterStall::Close,
        };
        assert_eq!(send(&data, 0, &[stall]), (vec![1; 300], BodyEnd::Close));
    }

    #[test]
    fn a_stall_that_continues_sends_everything() {
        let data = vec![1u8; 1000];
        let plan = FaultPlan {
            stalls: vec![Stall {
                bytes: 300,
                duration: Duration::from_millis(1),
                then: AfterStall::Continue,
            }],
            ..FaultPlan::default()
        };
        let mut out = Vec::new();
        let end =
            send_body(&mut out, body(&data, 0), &plan, &StopSignal::default()).expect("Vec write");
        assert_eq!((out, end), (data, BodyEnd::Complete));
    }

    #[test]
    fn endless_sends_the_file_then_filler_until_dropped() {
        let data = b"{\"signed\":{}}".to_vec();
        let source = BodySource {
            endless: true,
            ..body(&data, 0)
        };
        let plan = FaultPlan::new(&[Fault::Endless, Fault::DropAfter(1_000_000)]);
        let mut out = Vec::new();
        send_body(&mut out, source, &plan, &StopSignal::default()).expect("Vec write");
        assert_eq!(out.len(), 1_000_000);
        assert_eq!(&out[..data.len()], &data[..]);
        assert!(out[data.len()..].iter().all(|&b| b == FILLER));
    }

    #[test]
    fn a_stopping_server_cuts_a_stall_short() {
        let stop = StopSignal::default();
        stop.stop();
        let plan = FaultPlan::new(&[Fault::StallAfter {
            bytes: 1,
            duration: Duration::from_secs(600),
            then: AfterStall::Continue,
        }]);
        let mut out = Vec::new();
        let end = send_body(&mut out, body(b"abc", 0), &plan, &stop).expect("Vec write");
        assert_eq!((out, end), (b"a".to_vec(), BodyEnd::Close));
    }
}
