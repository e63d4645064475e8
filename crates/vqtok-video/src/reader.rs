//! Streaming decode of one video file to RGB24 frames on a constant frame grid.
//!
//! Frame indices are *slots* of a constant rate `r` (the stream's average frame rate, or a
//! requested fps): slot `i` shows the frame on screen at `i / r` seconds after the stream start,
//! i.e. the last decoded frame whose timestamp is ≤ `i / r + ε`, with `ε` a quarter of the
//! shorter of the slot and the average frame period (absorbs timestamp rounding). For
//! constant-frame-rate files slot `i` is exactly frame `i`;
//! variable-frame-rate files are resampled to the grid (frames repeat over gaps and are dropped
//! where they come faster than `r`), which is what a fixed-rate video model expects.
//!
//! Memory is flat: at most two decoded frames are held, and only frames that are handed out are
//! converted to RGB. Seeking goes to the key frame before the first wanted slot; until
//! [`PREROLL_MARGIN_S`] before it, frames no other frame references (B-frames) are not even
//! decoded, which cannot change any later picture.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ff::{Error as FfError, ffi};
use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SkipReason, VideoError};
use crate::frame::{Frame, Rotation};
use crate::scale::Scaler;

/// After a seek, non-reference frames earlier than this many seconds before the first wanted
/// slot are skipped by the decoder. The margin keeps every frame that could be shown in that
/// slot, unless a variable-rate stream holds one frame longer than this (then an earlier frame
/// may be shown).
pub(crate) const PREROLL_MARGIN_S: f64 = 0.5;

/// How [`VideoReader::open_with`] opens a file.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenOptions {
    /// Longest time opening, or producing one requested frame, may take before the read fails
    /// with [`SkipReason::Timeout`] (checked through FFmpeg's interrupt callback and between
    /// packets). `None`: no limit.
    pub timeout: Option<Duration>,
    /// Decoder threads; 0 lets FFmpeg choose (one per core). The loader uses 1 per worker.
    pub threads: usize,
    /// Largest accepted width or height; larger (or zero) sizes are
    /// [`SkipReason::AbsurdResolution`].
    pub max_side: u32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            timeout: None,
            threads: 0,
            max_side: 16384,
        }
    }
}

/// What a video file says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoMeta {
    /// Displayed size, after rotation.
    pub width: u32,
    pub height: u32,
    /// Size as stored in the stream.
    pub coded_width: u32,
    pub coded_height: u32,
    pub rotation: Rotation,
    /// Average frame rate: the slot rate of [`VideoReader::frames`] unless `fps` is given.
    pub fps: f64,
    pub duration_s: Option<f64>,
    /// Frames (slots at `fps`) by the container's count or duration; 0 when unknown.
    pub frame_count: u64,
    pub codec: String,
    pub container: String,
}

/// Which frames [`VideoReader::frames`] yields.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameSelect {
    /// Seconds from the stream start of the first slot (rounded up to the slot grid).
    pub start_s: f64,
    /// Seconds of video to cover from `start_s`; `None`: to the end.
    pub duration_s: Option<f64>,
    /// Yield every `stride`-th slot.
    pub stride: usize,
    /// Slot rate; `None`: the video's average rate.
    pub fps: Option<f64>,
    pub max_frames: Option<usize>,
    /// Output size (after rotation); `None`: the displayed size.
    pub size: Option<(usize, usize)>,
}

impl Default for FrameSelect {
    fn default() -> Self {
        FrameSelect {
            start_s: 0.0,
            duration_s: None,
            stride: 1,
            fps: None,
            max_frames: None,
            size: None,
        }
    }
}

/// One decoded frame with its place in the video.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedFrame {
    /// Slot index at the selection's rate (= frame index for constant-rate video).
    pub index: u64,
    /// Timestamp of the decoded frame shown in this slot, seconds from the stream start.
    pub pts_s: f64,
    pub frame: Frame,
}

/// Monotonic nanoseconds since the first call; 0 is reserved for "no deadline".
fn now_ns() -> u64 {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
}

/// A deadline shared with FFmpeg's interrupt callback, so blocking demuxer I/O aborts too.
#[derive(Debug, Clone, Default)]
struct Deadline(Arc<AtomicU64>);

impl Deadline {
    fn set(&self, at: Option<Instant>) {
        let ns = at.map_or(0, |t| {
            let from_now = t.saturating_duration_since(Instant::now()).as_nanos() as u64;
            now_ns() + from_now
        });
        self.0.store(ns, Ordering::Relaxed);
    }

    fn passed(&self) -> bool {
        let d = self.0.load(Ordering::Relaxed);
        d != 0 && now_ns() > d
    }
}

/// A decoded picture and its timing in seconds from the stream start.
struct Decoded {
    frame: ff::frame::Video,
    pts: f64,
    duration: f64,
}

/// Slot-to-frame matching state; reset by every seek.
#[derive(Default)]
struct Cursor {
    rate: f64,
    next_slot: u64,
    /// Latest frame at or before the current slot's time.
    prev: Option<Decoded>,
    /// One frame read past it.
    ahead: Option<Decoded>,
    /// A forward seek happened, so a first frame later than the target means it overshot.
    seeked: bool,
}

enum Pick {
    Prev,
    Ahead,
    None,
}

/// An open video file; see the module docs for the frame model.
pub struct VideoReader {
    path: PathBuf,
    input: ff::format::context::Input,
    stream: usize,
    decoder: ff::decoder::Video,
    time_base: f64,
    start_pts: i64,
    meta: VideoMeta,
    deadline: Deadline,
    /// Re-armed before each frame; `None` with a fixed deadline or no limit.
    progress_timeout: Option<Duration>,
    scaler: Scaler,
    cursor: Cursor,
    /// Nothing has been read since opening or rewinding.
    at_start: bool,
    eof_sent: bool,
    last_pts: Option<f64>,
    /// Most recent demux/decode error, for messages about short reads.
    last_error: Option<String>,
    /// Decode errors and corrupt frames so far.
    errors: u64,
    /// `errors` at the last seek: a clip read is clean when none happened since.
    errors_at_seek: u64,
    /// Stream time (s) before which non-reference frames are skipped after a seek.
    preroll_until: Option<f64>,
    /// The decoder currently discards non-reference frames.
    skipping: bool,
}

impl VideoReader {
    pub fn open(path: impl AsRef<Path>) -> Result<VideoReader> {
        VideoReader::open_with(path, &OpenOptions::default())
    }

    pub fn open_with(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<VideoReader> {
        let path = path.as_ref();
        crate::ensure_ffmpeg();
        check_file(path)?;
        let deadline = Deadline::default();
        deadline.set(opts.timeout.map(|t| Instant::now() + t));
        let watch = deadline.clone();
        let input = ff::format::input_with_interrupt(path, move || watch.passed())
            .map_err(|e| open_error(path, e, &deadline))?;

        let stream = pick_stream(&input).ok_or_else(|| {
            let kinds: Vec<String> = input
                .streams()
                .map(|s| format!("{:?}", s.parameters().medium()).to_lowercase())
                .collect();
            let detail = if kinds.is_empty() {
                "the file has no streams".to_string()
            } else {
                format!("streams: {}", kinds.join(", "))
            };
            VideoError::file(path, SkipReason::NoVideoStream, detail)
        })?;
        let st = input.stream(stream).ok_or_else(|| {
            VideoError::file(path, SkipReason::Unreadable, "video stream vanished")
        })?;
        let tb = st.time_base();
        let time_base = if tb.numerator() > 0 && tb.denominator() > 0 {
            f64::from(tb)
        } else {
            1.0 / ffi::AV_TIME_BASE as f64
        };
        let start_pts = match st.start_time() {
            ffi::AV_NOPTS_VALUE => 0,
            t => t,
        };
        let params = st.parameters();
        let codec_id = params.id();
        let mut ctx = ff::codec::context::Context::from_parameters(params).map_err(|e| {
            VideoError::file(
                path,
                SkipReason::Unreadable,
                format!("codec parameters: {e}"),
            )
        })?;
        ctx.set_threading(ff::codec::threading::Config {
            kind: ff::codec::threading::Type::Frame,
            count: opts.threads,
            ..ff::codec::threading::Config::default()
        });
        let mut dec = ctx.decoder();
        dec.set_packet_time_base(tb);
        let decoder = dec.video().map_err(|e| {
            VideoError::file(
                path,
                SkipReason::Unreadable,
                format!("no decoder for codec {codec_id:?}: {e}"),
            )
        })?;
        let (cw, ch) = (decoder.width(), decoder.height());
        if cw == 0 || ch == 0 || cw > opts.max_side || ch > opts.max_side {
            return Err(VideoError::file(
                path,
                SkipReason::AbsurdResolution,
                format!("{cw}×{ch} (limit 1…{} per side)", opts.max_side),
            ));
        }
        let rotation = display_rotation(&st);
        let fps = [st.avg_frame_rate(), st.rate()]
            .into_iter()
            .filter(|r| r.numerator() > 0 && r.denominator() > 0)
            .map(f64::from)
            .find(|f| (0.01..=1000.0).contains(f))
            .unwrap_or(25.0);
        let duration_s = if st.duration() > 0 {
            Some(st.duration() as f64 * time_base)
        } else if input.duration() > 0 {
            Some(input.duration() as f64 / ffi::AV_TIME_BASE as f64)
        } else {
            None
        };
        let frame_count = if st.frames() > 0 {
            st.frames() as u64
        } else {
            duration_s.map_or(0, |d| (d * fps).round().max(0.0) as u64)
        };
        let (width, height) = if rotation.swaps_axes() {
            (ch, cw)
        } else {
            (cw, ch)
        };
        let meta = VideoMeta {
            width,
            height,
            coded_width: cw,
            coded_height: ch,
            rotation,
            fps,
            duration_s,
            frame_count,
            codec: format!("{codec_id:?}").to_lowercase(),
            container: input.format().name().to_string(),
        };
        Ok(VideoReader {
            path: path.to_path_buf(),
            input,
            stream,
            decoder,
            time_base,
            start_pts,
            meta,
            deadline,
            progress_timeout: opts.timeout,
            scaler: Scaler::new(),
            cursor: Cursor::default(),
            at_start: true,
            eof_sent: false,
            last_pts: None,
            last_error: None,
            errors: 0,
            errors_at_seek: 0,
            preroll_until: None,
            skipping: false,
        })
    }

    pub fn meta(&self) -> &VideoMeta {
        &self.meta
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames chosen by `sel`, decoded lazily; seeks to `sel.start_s` first.
    pub fn frames(&mut self, sel: &FrameSelect) -> Result<Frames<'_>> {
        if sel.stride == 0 {
            return Err(VideoError::invalid("stride", "must be ≥ 1"));
        }
        let rate = sel.fps.unwrap_or(self.meta.fps);
        if !(rate.is_finite() && rate > 0.0) {
            return Err(VideoError::invalid(
                "fps",
                format!("must be > 0, got {rate}"),
            ));
        }
        if !(sel.start_s.is_finite() && sel.start_s >= 0.0) {
            return Err(VideoError::invalid(
                "start",
                format!("must be ≥ 0 s, got {}", sel.start_s),
            ));
        }
        let first = slot_at(sel.start_s, rate);
        let end = match sel.duration_s {
            Some(d) if !(d.is_finite() && d >= 0.0) => {
                return Err(VideoError::invalid(
                    "duration",
                    format!("must be ≥ 0 s, got {d}"),
                ));
            }
            Some(d) => Some(slot_at(sel.start_s + d, rate)),
            None => None,
        };
        let size = match sel.size {
            Some((w, h)) if w == 0 || h == 0 => {
                return Err(VideoError::invalid(
                    "size",
                    format!("must be > 0, got {w}×{h}"),
                ));
            }
            Some(s) => s,
            None => (self.meta.width as usize, self.meta.height as usize),
        };
        self.arm_progress();
        self.position(rate, first)?;
        Ok(Frames {
            reader: self,
            next: first,
            end,
            stride: sel.stride as u64,
            remaining: sel.max_frames,
            size,
            done: false,
        })
    }

    /// Replaces the progress timeout by one deadline for everything that follows (the
    /// loader bounds a whole clip this way).
    pub(crate) fn set_fixed_deadline(&mut self, at: Instant) {
        self.progress_timeout = None;
        self.deadline.set(Some(at));
    }

    /// Decodes the given slots (ascending, unique) at `rate`, scaled to `size` (displayed
    /// orientation). Returns the frames found and whether the video ended before the last one.
    ///
    /// Unlike [`VideoReader::frames`], which hands out whatever the decoder conceals, any decode
    /// error since the seek fails the read: a damaged frame or one repeated over lost frames
    /// must not become training data.
    pub(crate) fn read_slots(
        &mut self,
        slots: &[u64],
        rate: f64,
        size: (usize, usize),
    ) -> Result<(Vec<Frame>, bool)> {
        let Some(&first) = slots.first() else {
            return Ok((Vec::new(), false));
        };
        self.position(rate, first)?;
        let mut out = Vec::with_capacity(slots.len());
        let mut ended = false;
        for &s in slots {
            match self.read_slot(s, size)? {
                Some(tf) => out.push(tf.frame),
                None => {
                    ended = true;
                    break;
                }
            }
        }
        if self.errors > self.errors_at_seek {
            return Err(VideoError::file(
                &self.path,
                SkipReason::Corrupt,
                format!(
                    "decode errors in the clip ({})",
                    self.last_error.as_deref().unwrap_or("corrupt frames")
                ),
            ));
        }
        Ok((out, ended))
    }

    /// Exact number of slots at `rate`, by decoding the whole stream (no RGB conversion).
    /// Only for files whose container gives neither a frame count nor a duration.
    pub(crate) fn count_slots(&mut self, rate: f64) -> Result<u64> {
        self.position(rate, 0)?;
        let mut n = 0;
        while !matches!(self.pick(n)?, Pick::None) {
            n += 1;
        }
        Ok(n)
    }

    /// Why the stream ended early, if FFmpeg said.
    pub(crate) fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    fn note_error(&mut self, what: String) {
        self.errors += 1;
        self.last_error = Some(what);
    }

    fn arm_progress(&self) {
        if let Some(t) = self.progress_timeout {
            self.deadline.set(Some(Instant::now() + t));
        }
    }

    fn timeout_error(&self) -> VideoError {
        VideoError::file(
            &self.path,
            SkipReason::Timeout,
            "no progress before the deadline",
        )
    }

    /// Prepares the cursor so that `first` is the next slot, seeking when that is ahead.
    fn position(&mut self, rate: f64, first: u64) -> Result<()> {
        let t = first as f64 / rate;
        // Seeking costs a key-frame decode; for clips near the start reading on is cheaper.
        if first == 0 || t < 0.5 {
            if !self.at_start {
                self.seek_us(self.start_us())?;
                self.at_start = true;
            }
            self.reset_cursor(rate, false);
        } else {
            let target = self.start_us() + (t * ffi::AV_TIME_BASE as f64) as i64;
            self.seek_us(target)?;
            self.at_start = false;
            self.reset_cursor(rate, true);
            self.preroll_until = Some(t - PREROLL_MARGIN_S).filter(|&u| u > 0.0);
        }
        self.errors_at_seek = self.errors;
        Ok(())
    }

    fn start_us(&self) -> i64 {
        (self.start_pts as f64 * self.time_base * ffi::AV_TIME_BASE as f64) as i64
    }

    fn reset_cursor(&mut self, rate: f64, seeked: bool) {
        self.cursor = Cursor {
            rate,
            seeked,
            ..Cursor::default()
        };
    }

    fn seek_us(&mut self, target: i64) -> Result<()> {
        // The key frame at or before `target` (avformat_seek_file with max_ts = target).
        self.input
            .seek(target, i64::MIN..target.saturating_add(1))
            .map_err(|e| {
                if matches!(e, FfError::Exit) {
                    self.timeout_error()
                } else {
                    VideoError::file(&self.path, SkipReason::Corrupt, format!("cannot seek: {e}"))
                }
            })?;
        self.decoder.flush();
        self.eof_sent = false;
        self.last_pts = None;
        self.errors_at_seek = self.errors;
        self.preroll_until = None;
        Ok(())
    }

    /// The frame for `slot` converted to RGB at `size`, or `None` past the end.
    fn read_slot(&mut self, slot: u64, size: (usize, usize)) -> Result<Option<TimedFrame>> {
        // The progress timeout counts from the request, so a slow consumer never trips it.
        self.arm_progress();
        let pick = self.pick(slot)?;
        let decoded = match pick {
            Pick::Prev => self.cursor.prev.as_ref(),
            Pick::Ahead => self.cursor.ahead.as_ref(),
            Pick::None => None,
        };
        let Some(d) = decoded else { return Ok(None) };
        let rot = self.meta.rotation;
        let (pw, ph) = if rot.swaps_axes() {
            (size.1, size.0)
        } else {
            size
        };
        let data = self
            .scaler
            .frame_to_rgb(&d.frame, pw, ph)
            .map_err(|e| VideoError::file(&self.path, SkipReason::Corrupt, e.to_string()))?;
        let upright = Frame::new(pw, ph, data)?;
        let frame = if rot == Rotation::R0 {
            upright
        } else {
            upright.rotated(rot)
        };
        let pts_s = d.pts;
        Ok(Some(TimedFrame {
            index: slot,
            pts_s,
            frame,
        }))
    }

    /// Matches `slot` (≥ the cursor's next slot) to a decoded frame.
    fn pick(&mut self, slot: u64) -> Result<Pick> {
        let rate = self.cursor.rate;
        self.cursor.next_slot = slot.max(self.cursor.next_slot);
        let t = self.cursor.next_slot as f64 / rate + 0.25 / rate.max(self.meta.fps);
        loop {
            if let Some(a) = &self.cursor.ahead {
                if a.pts <= t {
                    self.cursor.prev = self.cursor.ahead.take();
                    continue;
                }
                if self.cursor.prev.is_some() {
                    return Ok(Pick::Prev);
                }
                if self.cursor.seeked && a.pts > t + 0.5 / rate {
                    // The demuxer landed after the wanted time: read from the start instead.
                    let first = self.cursor.next_slot;
                    self.seek_us(self.start_us())?;
                    self.at_start = true;
                    self.reset_cursor(rate, false);
                    self.cursor.next_slot = first;
                    continue;
                }
                // Before the first frame: show the first frame.
                return Ok(Pick::Ahead);
            }
            match self.decode_next()? {
                Some(d) => self.cursor.ahead = Some(d),
                None => break,
            }
        }
        // End of stream: the last frame covers its own duration.
        Ok(match &self.cursor.prev {
            Some(p) if (self.cursor.next_slot as f64) / rate < p.pts + p.duration - 1e-3 / rate => {
                Pick::Prev
            }
            _ => Pick::None,
        })
    }

    /// The next decoded picture of our stream, or `None` at the end.
    fn decode_next(&mut self) -> Result<Option<Decoded>> {
        loop {
            if self.deadline.passed() {
                return Err(self.timeout_error());
            }
            let mut frame = ff::frame::Video::empty();
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    self.at_start = false;
                    if frame.is_corrupt() || frame.has_decode_errors() {
                        self.note_error("decoder concealed errors in a frame".into());
                    }
                    let nominal = 1.0 / self.meta.fps;
                    let pts = match frame.timestamp().or(frame.pts()) {
                        Some(ts) => (ts - self.start_pts) as f64 * self.time_base,
                        None => self.last_pts.map_or(0.0, |p| p + nominal),
                    };
                    let dur = frame.packet().duration;
                    let duration = if dur > 0 {
                        dur as f64 * self.time_base
                    } else {
                        nominal
                    };
                    self.last_pts = Some(pts);
                    return Ok(Some(Decoded {
                        frame,
                        pts,
                        duration,
                    }));
                }
                Err(FfError::Eof) => return Ok(None),
                Err(FfError::Other { errno }) if errno == ff::error::EAGAIN => {}
                Err(e) => self.note_error(format!("decode: {e}")),
            }
            if self.eof_sent {
                // Drained after an error: nothing more will come.
                return Ok(None);
            }
            let mut packet = ff::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {
                    self.at_start = false;
                    if packet.stream() != self.stream {
                        continue;
                    }
                    let skip = match (self.preroll_until, packet.pts()) {
                        (Some(until), Some(pts)) => {
                            ((pts - self.start_pts) as f64 * self.time_base) < until
                        }
                        _ => false,
                    };
                    if skip != self.skipping {
                        self.decoder.skip_frame(if skip {
                            ff::Discard::NonReference
                        } else {
                            ff::Discard::Default
                        });
                        self.skipping = skip;
                    }
                    // Corrupt packets are skipped and counted.
                    if let Err(e) = self.decoder.send_packet(&packet) {
                        self.note_error(format!("decode: {e}"));
                    }
                }
                Err(FfError::Exit) => return Err(self.timeout_error()),
                Err(e) => {
                    if !matches!(e, FfError::Eof) {
                        // A truncated or damaged container: what was read decodes normally,
                        // so this only explains a short read.
                        self.last_error = Some(format!("read: {e}"));
                    }
                    let _ = self.decoder.send_eof();
                    self.eof_sent = true;
                }
            }
        }
    }
}

/// Iterator returned by [`VideoReader::frames`].
pub struct Frames<'a> {
    reader: &'a mut VideoReader,
    next: u64,
    end: Option<u64>,
    stride: u64,
    remaining: Option<usize>,
    size: (usize, usize),
    done: bool,
}

impl Iterator for Frames<'_> {
    type Item = Result<TimedFrame>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.remaining == Some(0) || self.end.is_some_and(|e| self.next >= e) {
            return None;
        }
        match self.reader.read_slot(self.next, self.size) {
            Ok(Some(f)) => {
                self.next += self.stride;
                if let Some(r) = &mut self.remaining {
                    *r -= 1;
                }
                Some(Ok(f))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// First slot at or after `t` seconds (a hair of tolerance so `k / rate` maps to `k`).
pub(crate) fn slot_at(t: f64, rate: f64) -> u64 {
    (t * rate - 1e-6).ceil().max(0.0) as u64
}

/// Filesystem checks that give better reasons than FFmpeg's open error.
fn check_file(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(VideoError::file(
            path,
            SkipReason::Unreadable,
            "is a directory",
        )),
        Ok(m) if m.is_file() && m.len() == 0 => {
            Err(VideoError::file(path, SkipReason::Empty, "0 bytes"))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(VideoError::file(path, SkipReason::Missing, "no such file"))
        }
        Err(e) => Err(VideoError::file(path, SkipReason::Io, e.to_string())),
    }
}

fn open_error(path: &Path, e: FfError, deadline: &Deadline) -> VideoError {
    let reason = match e {
        FfError::Exit if deadline.passed() => SkipReason::Timeout,
        FfError::Other { errno } if errno == ff::error::ENOENT => SkipReason::Missing,
        FfError::Other { errno } if errno == ff::error::EACCES || errno == ff::error::EIO => {
            SkipReason::Io
        }
        _ => SkipReason::Unreadable,
    };
    VideoError::file(path, reason, format!("FFmpeg cannot open it: {e}"))
}

/// The video stream to decode: FFmpeg's best, skipping cover art (attached pictures).
fn pick_stream(input: &ff::format::context::Input) -> Option<usize> {
    let usable = |s: &ff::format::stream::Stream| {
        s.parameters().medium() == ff::media::Type::Video
            && !s
                .disposition()
                .contains(ff::format::stream::Disposition::ATTACHED_PIC)
    };
    input
        .streams()
        .best(ff::media::Type::Video)
        .filter(|s| usable(s))
        .or_else(|| input.streams().find(|s| usable(s)))
        .map(|s| s.index())
}

/// Clockwise rotation from the stream's display matrix (the sign convention of the `ffmpeg`
/// CLI's autorotate: a matrix rotating −90° counter-clockwise displays turned 90° clockwise).
fn display_rotation(stream: &ff::format::stream::Stream) -> Rotation {
    for sd in stream.side_data() {
        if sd.kind() == ff::codec::packet::side_data::Type::DisplayMatrix && sd.data().len() >= 36 {
            let mut m = [0i32; 9];
            for (k, v) in m.iter_mut().enumerate() {
                let b = &sd.data()[k * 4..k * 4 + 4];
                *v = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            }
            // SAFETY: `m` is the 3×3 i32 matrix av_display_rotation_get reads.
            let ccw = unsafe { ffi::av_display_rotation_get(m.as_ptr()) };
            return Rotation::from_clockwise_degrees(-ccw);
        }
    }
    Rotation::R0
}
