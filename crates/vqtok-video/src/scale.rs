//! swscale behind a small safe API: YUV/RGB frames of any pixel format → tightly packed RGB24 at
//! any size, and RGB24 → RGB24 resizing. One cached context per reader keeps per-frame cost to the
//! conversion itself.

use std::ffi::c_int;
use std::ptr;

use ffmpeg_next::ffi;

use crate::error::{Result, VideoError};

/// Source colour description that changes swscale's YUV → RGB matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ColorInfo {
    /// An `SWS_CS_*` value.
    pub(crate) matrix: c_int,
    /// Full-range (JPEG) YUV rather than limited (MPEG) range.
    pub(crate) full_range: bool,
}

impl ColorInfo {
    pub(crate) const DEFAULT: ColorInfo = ColorInfo {
        matrix: ffi::SWS_CS_DEFAULT as c_int,
        full_range: false,
    };

    /// Reads the decoded frame's tags, like the `ffmpeg` CLI's scale filter does, so HD
    /// (BT.709) material is not converted with the SD matrix.
    pub(crate) fn of_frame(frame: &ffmpeg_next::frame::Video) -> ColorInfo {
        use ffi::AVColorSpace::*;
        // SAFETY: reading plain fields of a valid AVFrame.
        let (space, range) = unsafe {
            let f = frame.as_ptr();
            ((*f).colorspace, (*f).color_range)
        };
        let matrix = match space {
            AVCOL_SPC_BT709 => ffi::SWS_CS_ITU709,
            AVCOL_SPC_FCC => ffi::SWS_CS_FCC,
            AVCOL_SPC_SMPTE240M => ffi::SWS_CS_SMPTE240M,
            AVCOL_SPC_BT2020_NCL | AVCOL_SPC_BT2020_CL => ffi::SWS_CS_BT2020,
            _ => ffi::SWS_CS_DEFAULT,
        } as c_int;
        ColorInfo {
            matrix,
            full_range: range == ffi::AVColorRange::AVCOL_RANGE_JPEG,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    src_format: ffi::AVPixelFormat,
    src_w: c_int,
    src_h: c_int,
    dst_w: c_int,
    dst_h: c_int,
    color: ColorInfo,
}

/// An owned `SwsContext` producing RGB24.
pub(crate) struct Scaler {
    ctx: *mut ffi::SwsContext,
    key: Option<Key>,
}

// SAFETY: an SwsContext has no thread affinity; it is only used through &mut self.
unsafe impl Send for Scaler {}

impl Scaler {
    pub(crate) fn new() -> Scaler {
        Scaler {
            ctx: ptr::null_mut(),
            key: None,
        }
    }

    /// (Re)configures the context when the source or destination changed.
    fn prepare(&mut self, key: Key) -> Result<()> {
        if self.key == Some(key) && !self.ctx.is_null() {
            return Ok(());
        }
        // Area averaging when shrinking both axes (no aliasing), bilinear otherwise; full
        // chroma interpolation so 4:2:0 colour edges are not blocky.
        let shrinking = key.dst_w <= key.src_w && key.dst_h <= key.src_h;
        let filter = if shrinking {
            ffi::SWS_AREA
        } else {
            ffi::SWS_BILINEAR
        };
        let flags = (filter | ffi::SWS_FULL_CHR_H_INT) as c_int;
        // SAFETY: sws_getCachedContext frees or reuses the old context and returns a new one
        // (or null on invalid sizes/formats, handled below).
        unsafe {
            self.ctx = ffi::sws_getCachedContext(
                self.ctx,
                key.src_w,
                key.src_h,
                key.src_format,
                key.dst_w,
                key.dst_h,
                ffi::AVPixelFormat::AV_PIX_FMT_RGB24,
                flags,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null(),
            );
        }
        if self.ctx.is_null() {
            self.key = None;
            return Err(VideoError::invalid(
                "scale",
                format!(
                    "swscale cannot convert {:?} {}×{} to RGB24 {}×{}",
                    key.src_format, key.src_w, key.src_h, key.dst_w, key.dst_h
                ),
            ));
        }
        // SAFETY: valid context; the coefficient tables are static in libswscale. Fails
        // harmlessly (ignored) for RGB sources, where no matrix applies.
        unsafe {
            let src_table = ffi::sws_getCoefficients(key.color.matrix);
            let dst_table = ffi::sws_getCoefficients(ffi::SWS_CS_DEFAULT as c_int);
            ffi::sws_setColorspaceDetails(
                self.ctx,
                src_table,
                key.color.full_range as c_int,
                dst_table,
                1,
                0,
                1 << 16,
                1 << 16,
            );
        }
        self.key = Some(key);
        Ok(())
    }

    /// Converts a decoded frame to RGB24 of `dst_w × dst_h`.
    pub(crate) fn frame_to_rgb(
        &mut self,
        frame: &ffmpeg_next::frame::Video,
        dst_w: usize,
        dst_h: usize,
    ) -> Result<Vec<u8>> {
        // SAFETY: reading fields of a valid AVFrame.
        let (format, w, h, data, linesize) = unsafe {
            let f = frame.as_ptr();
            (
                std::mem::transmute::<c_int, ffi::AVPixelFormat>((*f).format),
                (*f).width,
                (*f).height,
                (*f).data,
                (*f).linesize,
            )
        };
        if w <= 0 || h <= 0 || data[0].is_null() {
            return Err(VideoError::invalid(
                "frame",
                "decoder returned an empty picture",
            ));
        }
        let key = Key {
            src_format: format,
            src_w: w,
            src_h: h,
            dst_w: dst_w as c_int,
            dst_h: dst_h as c_int,
            color: ColorInfo::of_frame(frame),
        };
        self.prepare(key)?;
        let mut out = vec![0u8; dst_w * dst_h * 3];
        // SAFETY: the source planes belong to a decoded frame of the size and format in `key`;
        // the destination is one packed plane of exactly dst_h rows of dst_w·3 bytes.
        unsafe { self.run(data.as_ptr() as _, linesize.as_ptr(), h, &mut out, dst_w) };
        Ok(out)
    }

    /// Resizes a packed RGB24 image.
    pub(crate) fn rgb_to_rgb(
        &mut self,
        src: &[u8],
        src_w: usize,
        src_h: usize,
        dst_w: usize,
        dst_h: usize,
    ) -> Result<Vec<u8>> {
        if src.len() != src_w * src_h * 3 || dst_w == 0 || dst_h == 0 {
            return Err(VideoError::invalid(
                "resize",
                format!("{src_w}×{src_h} RGB24 → {dst_w}×{dst_h}: bad sizes"),
            ));
        }
        let key = Key {
            src_format: ffi::AVPixelFormat::AV_PIX_FMT_RGB24,
            src_w: src_w as c_int,
            src_h: src_h as c_int,
            dst_w: dst_w as c_int,
            dst_h: dst_h as c_int,
            color: ColorInfo::DEFAULT,
        };
        self.prepare(key)?;
        let planes: [*const u8; 4] = [src.as_ptr(), ptr::null(), ptr::null(), ptr::null()];
        let strides: [c_int; 4] = [(src_w * 3) as c_int, 0, 0, 0];
        let mut out = vec![0u8; dst_w * dst_h * 3];
        // SAFETY: one packed source plane of src_h rows of src_w·3 bytes (length checked).
        unsafe {
            self.run(
                planes.as_ptr(),
                strides.as_ptr(),
                src_h as c_int,
                &mut out,
                dst_w,
            )
        };
        Ok(out)
    }

    unsafe fn run(
        &mut self,
        planes: *const *const u8,
        strides: *const c_int,
        src_h: c_int,
        out: &mut [u8],
        dst_w: usize,
    ) {
        let dst: [*mut u8; 4] = [
            out.as_mut_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
        ];
        let dst_stride: [c_int; 4] = [(dst_w * 3) as c_int, 0, 0, 0];
        // SAFETY: upheld by the callers (see there).
        unsafe {
            ffi::sws_scale(
                self.ctx,
                planes,
                strides,
                0,
                src_h,
                dst.as_ptr(),
                dst_stride.as_ptr(),
            );
        }
    }
}

impl Drop for Scaler {
    fn drop(&mut self) {
        if !self.ctx.is_null() {
            // SAFETY: we own the context.
            unsafe { ffi::sws_freeContext(self.ctx) };
        }
    }
}
