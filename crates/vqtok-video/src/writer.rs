//! RGB24 frames → a video file (mp4 by default): H.264 through libx264 when this FFmpeg has it,
//! else MPEG-4 part 2. Used for reconstructions, and by the tests to make their videos.

use std::path::{Path, PathBuf};

use ff::{Dictionary, Rational, codec, encoder, format, frame};
use ffmpeg_next as ff;

use crate::error::{Result, VideoError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// libx264 if available, else MPEG-4.
    Auto,
    H264,
    Mpeg4,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WriterOptions {
    pub fps: f64,
    pub codec: VideoCodec,
    /// libx264 constant rate factor (0 = lossless in YUV, 18 ≈ visually lossless).
    pub crf: u8,
    /// MPEG-4 quantiser scale, 1 (best) … 31.
    pub mpeg4_qscale: u8,
    /// Key-frame interval in frames; `None`: the encoder's default.
    pub gop: Option<u32>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            fps: 25.0,
            codec: VideoCodec::Auto,
            crf: 18,
            mpeg4_qscale: 2,
            gop: None,
        }
    }
}

/// An open output file; call [`VideoWriter::finish`] to flush the encoder and write the index.
/// (Dropping it unfinished finishes it too, ignoring errors.)
pub struct VideoWriter {
    path: PathBuf,
    output: format::context::Output,
    encoder: encoder::Video,
    stream_tb: Rational,
    encoder_tb: Rational,
    width: usize,
    height: usize,
    yuv: frame::Video,
    scaler: ff::software::scaling::Context,
    next_pts: i64,
    codec_name: String,
    finished: bool,
}

impl VideoWriter {
    /// Creates `path` (container from its extension) for `width × height` frames; both must
    /// be even (4:2:0 chroma).
    pub fn create(
        path: impl AsRef<Path>,
        width: usize,
        height: usize,
        opts: &WriterOptions,
    ) -> Result<VideoWriter> {
        let path = path.as_ref();
        crate::ensure_ffmpeg();
        let fail = |detail: String| VideoError::Encode {
            path: path.to_path_buf(),
            detail,
        };
        if width == 0
            || height == 0
            || !width.is_multiple_of(2)
            || !height.is_multiple_of(2)
            || width > 16384
            || height > 16384
        {
            return Err(fail(format!(
                "size {width}×{height}: width and height must be even, 2…16384"
            )));
        }
        if !(opts.fps.is_finite() && opts.fps > 0.0 && opts.fps <= 1000.0) {
            return Err(fail(format!("fps must be in (0, 1000], got {}", opts.fps)));
        }
        let x264 = encoder::find_by_name("libx264");
        let mpeg4 = encoder::find(codec::Id::MPEG4);
        let (codec, is_h264) = match opts.codec {
            VideoCodec::Auto => match (x264, mpeg4) {
                (Some(c), _) => (c, true),
                (None, Some(c)) => (c, false),
                (None, None) => {
                    return Err(fail(
                        "this FFmpeg has neither libx264 nor an MPEG-4 encoder".into(),
                    ));
                }
            },
            VideoCodec::H264 => (
                x264.ok_or_else(|| fail("libx264 is not available".into()))?,
                true,
            ),
            VideoCodec::Mpeg4 => (
                mpeg4.ok_or_else(|| fail("no MPEG-4 encoder".into()))?,
                false,
            ),
        };
        let mut output = format::output(path).map_err(|e| fail(format!("cannot create: {e}")))?;
        let global_header = output
            .format()
            .flags()
            .contains(format::Flags::GLOBAL_HEADER);
        let rate = fps_rational(opts.fps);
        let encoder_tb = Rational::new(rate.denominator(), rate.numerator());

        let mut enc = codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|e| fail(format!("encoder: {e}")))?;
        enc.set_width(width as u32);
        enc.set_height(height as u32);
        enc.set_format(format::Pixel::YUV420P);
        enc.set_time_base(encoder_tb);
        enc.set_frame_rate(Some(rate));
        // What swscale's RGB → YUV produces (BT.601, limited range); tagged so players agree.
        enc.set_colorspace(ff::color::Space::SMPTE170M);
        enc.set_color_range(ff::color::Range::MPEG);
        if let Some(g) = opts.gop {
            enc.set_gop(g.max(1));
        }
        let mut flags = codec::Flags::empty();
        if global_header {
            flags |= codec::Flags::GLOBAL_HEADER;
        }
        let mut dict = Dictionary::new();
        if is_h264 {
            dict.set("crf", &opts.crf.to_string());
            dict.set("preset", "veryfast");
        } else {
            flags |= codec::Flags::QSCALE;
            enc.set_global_quality(
                i32::from(opts.mpeg4_qscale.clamp(1, 31)) * ff::ffi::FF_QP2LAMBDA,
            );
        }
        enc.set_flags(flags);
        let encoder = enc
            .open_as_with(codec, dict)
            .map_err(|e| fail(format!("cannot open encoder: {e}")))?;

        let mut stream = output
            .add_stream(codec)
            .map_err(|e| fail(format!("stream: {e}")))?;
        stream.set_parameters(&encoder);
        stream.set_time_base(encoder_tb);
        stream.set_avg_frame_rate(rate);
        output
            .write_header()
            .map_err(|e| fail(format!("header: {e}")))?;
        let stream_tb = output
            .stream(0)
            .map(|s| s.time_base())
            .unwrap_or(encoder_tb);

        let scaler = ff::software::scaling::Context::get(
            format::Pixel::RGB24,
            width as u32,
            height as u32,
            format::Pixel::YUV420P,
            width as u32,
            height as u32,
            ff::software::scaling::Flags::BILINEAR | ff::software::scaling::Flags::ACCURATE_RND,
        )
        .map_err(|e| fail(format!("scaler: {e}")))?;
        Ok(VideoWriter {
            path: path.to_path_buf(),
            output,
            encoder,
            stream_tb,
            encoder_tb,
            width,
            height,
            yuv: frame::Video::new(format::Pixel::YUV420P, width as u32, height as u32),
            scaler,
            next_pts: 0,
            codec_name: codec.name().to_string(),
            finished: false,
        })
    }

    /// The encoder in use (`libx264` or `mpeg4`).
    pub fn codec_name(&self) -> &str {
        &self.codec_name
    }

    /// Appends one tightly packed RGB24 frame of the writer's size.
    pub fn write(&mut self, rgb: &[u8]) -> Result<()> {
        if rgb.len() != self.width * self.height * 3 {
            return Err(VideoError::invalid(
                "frame",
                format!(
                    "{}×{} RGB24 needs {} bytes, got {}",
                    self.width,
                    self.height,
                    self.width * self.height * 3,
                    rgb.len()
                ),
            ));
        }
        let mut src =
            frame::Video::new(format::Pixel::RGB24, self.width as u32, self.height as u32);
        let stride = src.stride(0);
        let row = self.width * 3;
        let plane = src.data_mut(0);
        for (y, line) in rgb.chunks_exact(row).enumerate() {
            plane[y * stride..y * stride + row].copy_from_slice(line);
        }
        self.scaler
            .run(&src, &mut self.yuv)
            .map_err(|e| self.fail(format!("colour conversion: {e}")))?;
        self.yuv.set_pts(Some(self.next_pts));
        self.next_pts += 1;
        self.encoder
            .send_frame(&self.yuv)
            .map_err(|e| self.fail(format!("encode: {e}")))?;
        self.drain()
    }

    /// Flushes the encoder and writes the container index.
    pub fn finish(mut self) -> Result<()> {
        self.finish_inner()
    }

    fn finish_inner(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        self.encoder
            .send_eof()
            .map_err(|e| self.fail(format!("flush: {e}")))?;
        self.drain()?;
        self.output
            .write_trailer()
            .map_err(|e| self.fail(format!("trailer: {e}")))
    }

    fn drain(&mut self) -> Result<()> {
        let mut packet = ff::Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(0);
            // Without a duration the mp4 muxer gives the last frame none, and players drop it.
            packet.set_duration(1);
            packet.rescale_ts(self.encoder_tb, self.stream_tb);
            packet
                .write_interleaved(&mut self.output)
                .map_err(|e| self.fail(format!("write: {e}")))?;
        }
        Ok(())
    }

    fn fail(&self, detail: String) -> VideoError {
        VideoError::Encode {
            path: self.path.clone(),
            detail,
        }
    }
}

impl Drop for VideoWriter {
    fn drop(&mut self) {
        let _ = self.finish_inner();
    }
}

/// `fps` as a rational: exact for integers and NTSC rates (x·1000/1001), else over 1000.
fn fps_rational(fps: f64) -> Rational {
    if (fps - fps.round()).abs() < 1e-9 {
        return Rational::new(fps.round() as i32, 1);
    }
    let ntsc = fps * 1001.0 / 1000.0;
    if (ntsc - ntsc.round()).abs() < 1e-6 {
        return Rational::new(ntsc.round() as i32 * 1000, 1001);
    }
    Rational::new((fps * 1000.0).round() as i32, 1000)
}
