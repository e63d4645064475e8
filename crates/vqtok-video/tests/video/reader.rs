//! Decoding: formats, exact frames, seeking, selection, rotation, VFR, colour, bad files, and
//! the writer that made the inputs.

use std::path::Path;

use crate::common::*;
use vqtok_video::{
    FrameSelect, OpenOptions, Rotation, SkipReason, VideoCodec, VideoReader, VideoWriter,
    WriterOptions,
};

fn decode_all(path: &Path) -> Vec<vqtok_video::TimedFrame> {
    let mut r = VideoReader::open(path).unwrap();
    r.frames(&FrameSelect::default())
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[test]
fn writer_round_trip_keeps_every_frame_and_pixel() {
    let (_t, p) = pattern_in_tempdir("p.mp4", 20, 5);
    let mut r = VideoReader::open(&p).unwrap();
    let m = r.meta().clone();
    assert_eq!((m.width, m.height, m.rotation), (64, 48, Rotation::R0));
    assert_eq!(m.codec, "h264");
    assert!((m.fps - 25.0).abs() < 1e-9, "{}", m.fps);
    // The last frame is not lost (packet durations are set): 20 frames, 0.8 s.
    assert_eq!(m.frame_count, 20);
    assert!(
        (m.duration_s.unwrap() - 0.8).abs() < 1e-6,
        "{:?}",
        m.duration_s
    );
    let frames = r
        .frames(&FrameSelect::default())
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert_eq!(frames.len(), 20);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.index, i as u64);
        assert!((f.pts_s - i as f64 / 25.0).abs() < 1e-6);
        // crf 0 is lossless in YUV; what remains is the 4:2:0 + 8-bit RGB↔YUV round trip on
        // the gradients (the ffmpeg CLI decodes the same file with mean error 1.75): mean ≤ 2,
        // worst pixel ≤ 12.
        let want = pattern(i, W, H).data;
        assert!(
            mean_abs_diff(&f.frame.data, &want) < 2.0,
            "frame {i}: mean {}",
            mean_abs_diff(&f.frame.data, &want)
        );
        assert!(max_abs_diff(&f.frame.data, &want) <= 12, "frame {i}");
    }
}

#[test]
fn mpeg4_fallback_writes_a_decodable_file() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("m.mp4");
    let opts = WriterOptions {
        codec: VideoCodec::Mpeg4,
        ..WriterOptions::default()
    };
    let mut w = VideoWriter::create(&p, W, H, &opts).unwrap();
    assert_eq!(w.codec_name(), "mpeg4");
    for i in 0..10 {
        w.write(&pattern(i, W, H).data).unwrap();
    }
    assert!(w.write(&[0; 5]).is_err());
    w.finish().unwrap();
    let frames = decode_all(&p);
    assert_eq!(frames.len(), 10);
    assert_eq!(
        frames
            .iter()
            .map(|f| frame_number(&f.frame.data))
            .collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert!(
        VideoWriter::create(t.path().join("odd.mp4"), 63, 48, &WriterOptions::default()).is_err()
    );
}

#[test]
fn other_containers_and_codecs_decode_to_the_same_frames() {
    let (t, src) = pattern_in_tempdir("src.mp4", 12, 12);
    let cases: [(&str, &[&str]); 5] = [
        ("v.webm", &["-c:v", "libvpx-vp9", "-lossless", "1"]),
        ("v.avi", &["-c:v", "mpeg4", "-q:v", "2"]),
        ("v.mov", &["-c:v", "libx264", "-qp", "0"]),
        ("v.mkv", &["-c:v", "libx264", "-qp", "0"]),
        ("v.gif", &[]),
    ];
    for (name, args) in cases {
        let dst = t.path().join(name);
        transcode(&src, &dst, args);
        let frames = decode_all(&dst);
        assert_eq!(frames.len(), 12, "{name}");
        for (i, f) in frames.iter().enumerate() {
            assert_eq!((f.frame.width, f.frame.height), (W, H), "{name}");
            if name != "v.gif" {
                // The palette of GIF does not keep the blue levels; its frame count suffices.
                assert_eq!(frame_number(&f.frame.data), i, "{name} frame {i}");
            }
        }
    }
}

#[test]
fn seek_start_stride_fps_and_duration_select_exact_frames() {
    // Key frames every 4 frames: a start at 0.52 s seeks to the key frame at frame 12.
    let (_t, p) = pattern_in_tempdir("p.mp4", 24, 4);
    let mut r = VideoReader::open(&p).unwrap();
    let pick = |r: &mut VideoReader, sel: FrameSelect| -> Vec<(u64, usize)> {
        r.frames(&sel)
            .unwrap()
            .map(|f| f.unwrap())
            .map(|f| (f.index, frame_number(&f.frame.data)))
            .collect()
    };
    let got = pick(
        &mut r,
        FrameSelect {
            start_s: 0.52,
            stride: 3,
            max_frames: Some(3),
            ..FrameSelect::default()
        },
    );
    assert_eq!(got, vec![(13, 13), (16, 16), (19, 19)]);
    // Backwards after reading forwards (rewinds), and a duration window [0.2, 0.4) s.
    let got = pick(
        &mut r,
        FrameSelect {
            start_s: 0.2,
            duration_s: Some(0.2),
            ..FrameSelect::default()
        },
    );
    assert_eq!(
        got.iter().map(|g| g.1).collect::<Vec<_>>(),
        vec![5, 6, 7, 8, 9]
    );
    // Resampled to 12.5 fps: slot k shows frame 2k.
    let got = pick(
        &mut r,
        FrameSelect {
            fps: Some(12.5),
            ..FrameSelect::default()
        },
    );
    assert_eq!(
        got.iter().map(|g| g.1).collect::<Vec<_>>(),
        (0..12).map(|k| 2 * k).collect::<Vec<_>>()
    );
    // Past the end: nothing, no error.
    assert!(
        pick(
            &mut r,
            FrameSelect {
                start_s: 5.0,
                ..FrameSelect::default()
            }
        )
        .is_empty()
    );
    // Scaled output.
    let f = r
        .frames(&FrameSelect {
            size: Some((32, 24)),
            max_frames: Some(1),
            ..FrameSelect::default()
        })
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!((f.frame.width, f.frame.height), (32, 24));
    // Pixel (10, 5) of the half-size frame averages source x 20..21 → R ≈ 4·20.5 = 82.
    assert!(
        f.frame.pixel(10, 5)[0].abs_diff(82) <= 4,
        "{:?}",
        f.frame.pixel(10, 5)
    );
    assert!(
        r.frames(&FrameSelect {
            stride: 0,
            ..FrameSelect::default()
        })
        .is_err()
    );
    assert!(
        r.frames(&FrameSelect {
            fps: Some(0.0),
            ..FrameSelect::default()
        })
        .is_err()
    );
}

#[test]
fn variable_frame_rate_is_resampled_to_the_grid() {
    // Frames 10.. are shown 0.2 s (5 slots) later: a gap after frame 9.
    let (_t, vfr) = lossless_transcoded_pattern(
        20,
        25,
        "vfr.mp4",
        &[
            "-vf",
            "setpts=(N+5*gte(N\\,10))/(25*TB)",
            "-fps_mode",
            "passthrough",
        ],
    );
    let mut r = VideoReader::open(&vfr).unwrap();
    let frames: Vec<usize> = r
        .frames(&FrameSelect {
            fps: Some(25.0),
            ..FrameSelect::default()
        })
        .unwrap()
        .map(|f| frame_number(&f.unwrap().frame.data))
        .collect();
    let mut want: Vec<usize> = (0..10).collect();
    want.extend([9; 5]);
    want.extend(10..20);
    assert_eq!(frames, want);
}

#[test]
fn rotation_metadata_is_applied_like_the_cli() {
    let (t, src) = pattern_in_tempdir("src.mp4", 3, 3);
    for (deg, rot) in [
        ("90", Rotation::R270),
        ("180", Rotation::R180),
        ("270", Rotation::R90),
    ] {
        let dst = t.path().join(format!("r{deg}.mp4"));
        transcode(
            &src,
            &dst,
            &["-c", "copy", "-metadata:s:v:0", &format!("rotate={deg}")],
        );
        let mut r = VideoReader::open(&dst).unwrap();
        let m = r.meta().clone();
        let (w, h) = if rot.swaps_axes() { (H, W) } else { (W, H) };
        assert_eq!(
            (m.rotation, m.width as usize, m.height as usize),
            (rot, w, h),
            "rotate={deg}"
        );
        let ours = r
            .frames(&FrameSelect::default())
            .unwrap()
            .map(|f| f.unwrap().frame)
            .collect::<Vec<_>>();
        let cli = cli_frames(&dst, w, h);
        assert_eq!(ours.len(), cli.len());
        for (a, b) in ours.iter().zip(&cli) {
            // Same decoder, different YUV→RGB code (our scaler vs the CLI's): within 2 levels on
            // average, and the rotation is the same (a wrong one would differ by ~100).
            assert!(
                mean_abs_diff(&a.data, b) < 2.0,
                "rotate={deg}: {}",
                mean_abs_diff(&a.data, b)
            );
        }
    }
}

#[test]
fn bt709_video_is_converted_with_its_own_matrix() {
    let (t, hd) = lossless_transcoded_pattern(
        2,
        2,
        "hd.mp4",
        &[
            "-vf",
            "scale=out_color_matrix=bt709",
            "-colorspace",
            "bt709",
        ],
    );
    let ours = decode_all(&hd);
    // The CLI converts with the stream's BT.709 tag; forcing BT.601 shows what a decoder that
    // ignores the tag would produce.
    let cli = cli_frames(&hd, W, H);
    let forced_601 = t.path().join("as601.rgb");
    ffmpeg(&[
        "-i",
        hd.to_str().unwrap(),
        "-vf",
        "scale=in_color_matrix=bt601",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        forced_601.to_str().unwrap(),
    ]);
    let wrong = std::fs::read(&forced_601).unwrap();
    let near = mean_abs_diff(&ours[0].frame.data, &cli[0]);
    let far = mean_abs_diff(&ours[0].frame.data, &wrong[..W * H * 3]);
    assert!(
        near < 1.0 && far > 2.0 * near + 1.0,
        "vs BT.709 decode {near}, vs BT.601 decode {far}"
    );
}

fn open_err(path: &Path) -> (SkipReason, String) {
    match VideoReader::open(path) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => (e.skip_reason().unwrap(), e.to_string()),
    }
}

#[test]
fn bad_files_fail_with_a_reason_and_the_file_name() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::write(d.join("empty.mp4"), b"").unwrap();
    std::fs::write(
        d.join("text.mp4"),
        b"this is not a video at all, just some text\n".repeat(20),
    )
    .unwrap();
    write_audio_only(&d.join("audio.mp4"), "0.5");
    write_huge_y4m(&d.join("huge.y4m"), 1000);
    let good = d.join("good.mp4");
    write_pattern(&good, 10, 25.0, 5);
    let bytes = std::fs::read(&good).unwrap();
    // The writer puts the mp4 index at the end: a cut file has none.
    std::fs::write(d.join("cut.mp4"), &bytes[..bytes.len() / 2]).unwrap();

    for (name, reason) in [
        ("empty.mp4", SkipReason::Empty),
        ("text.mp4", SkipReason::Unreadable),
        ("audio.mp4", SkipReason::NoVideoStream),
        ("huge.y4m", SkipReason::AbsurdResolution),
        ("cut.mp4", SkipReason::Unreadable),
        ("missing.mp4", SkipReason::Missing),
    ] {
        let (got, msg) = open_err(&d.join(name));
        assert_eq!(got, reason, "{name}: {msg}");
        assert!(msg.contains(name), "{msg}");
    }
    assert_eq!(open_err(d).0, SkipReason::Unreadable);
}

/// Opens `path` with `timeout` for each blocking FFmpeg operation.
fn open_with_timeout(
    path: &Path,
    timeout: std::time::Duration,
) -> Result<VideoReader, vqtok_video::VideoError> {
    let opts = OpenOptions {
        timeout: Some(timeout),
        ..OpenOptions::default()
    };
    VideoReader::open_with(path, &opts)
}

#[test]
fn timeout_aborts_open_through_the_interrupt_callback() {
    let (_t, p) = pattern_in_tempdir("p.mp4", 5, 5);
    // A deadline already passed when FFmpeg first asks the callback: the open is aborted.
    let err = open_with_timeout(&p, std::time::Duration::from_nanos(1))
        .err()
        .expect("open must time out");
    assert_eq!(err.skip_reason(), Some(SkipReason::Timeout), "{err}");
}

#[test]
fn a_slow_consumer_does_not_trip_the_per_frame_timeout() {
    let (_t, p) = pattern_in_tempdir("p.mp4", 20, 5);
    let mut r = open_with_timeout(&p, std::time::Duration::from_millis(300)).unwrap();
    let mut n = 0;
    for f in r.frames(&FrameSelect::default()).unwrap() {
        f.unwrap();
        n += 1;
        if n == 3 {
            // The consumer stalls; the timeout is per frame, so only a stall inside the
            // decoder could trip it — reading on must still work.
            std::thread::sleep(std::time::Duration::from_millis(400));
        }
    }
    assert_eq!(n, 20);
}

#[test]
fn sample_videos_decode() {
    let dir = samples_dir();
    for (name, w, h) in [
        ("bigbuckbunny.mp4", 1280, 720),
        ("bikes.mp4", 640, 272),
        ("carphone_pristine.mp4", 176, 144),
        ("carphone_distorted.mp4", 176, 144),
    ] {
        let mut r = VideoReader::open(dir.join(name)).unwrap();
        let m = r.meta().clone();
        assert_eq!((m.width, m.height), (w, h), "{name}");
        assert!(m.frame_count > 50, "{name}: {}", m.frame_count);
        let mid = m.duration_s.unwrap() / 2.0;
        let frames: Vec<_> = r
            .frames(&FrameSelect {
                start_s: mid,
                max_frames: Some(2),
                size: Some((64, 64)),
                ..FrameSelect::default()
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(frames.len(), 2, "{name}");
        assert_eq!(frames[0].index, (mid * m.fps - 1e-6).ceil() as u64);
        // Real content, not a black or flat frame.
        let px = &frames[0].frame.data;
        let mean = px.iter().map(|&v| v as f64).sum::<f64>() / px.len() as f64;
        let var = px.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / px.len() as f64;
        assert!(var > 100.0, "{name}: variance {var}");
    }
}

#[test]
fn jpeg_exif_orientation_is_applied() {
    let t = tempfile::tempdir().unwrap();
    // 16×8: left half red, right half blue.
    let img = image::RgbImage::from_fn(16, 8, |x, _| {
        if x < 8 {
            image::Rgb([255, 0, 0])
        } else {
            image::Rgb([0, 0, 255])
        }
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
        .encode_image(&img)
        .unwrap();
    // APP1 Exif segment right after SOI: big-endian TIFF, IFD0 with Orientation (0x0112) = 6,
    // "rotate 90° clockwise to display".
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend([0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]);
    let mut app1 = vec![0xff, 0xe1];
    app1.extend(((2 + 6 + tiff.len()) as u16).to_be_bytes());
    app1.extend(b"Exif\0\0");
    app1.extend(&tiff);
    let mut with_exif = jpeg[..2].to_vec();
    with_exif.extend(&app1);
    with_exif.extend(&jpeg[2..]);
    // A wrong extension does not matter: stills are recognised by content.
    let p = t.path().join("photo.mp4");
    std::fs::write(&p, with_exif).unwrap();
    let f = vqtok_video::load_image(&p, 16384).unwrap();
    assert_eq!((f.width, f.height), (8, 16));
    // Turned clockwise, the left (red) half is on top.
    let (top, bottom) = (f.pixel(4, 3), f.pixel(4, 12));
    assert!(top[0] > 200 && top[2] < 60, "{top:?}");
    assert!(bottom[2] > 200 && bottom[0] < 60, "{bottom:?}");
}

#[test]
fn seeking_with_preroll_skipping_is_bit_exact() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("p.mp4");
    // One key frame for 24 frames: reaching frame 20 decodes from frame 0, skipping the
    // B-frames before 0.8 − 0.5 s. Lossy (crf 18), because lossless x264 uses no B-frames.
    let opts = WriterOptions {
        crf: 18,
        gop: Some(24),
        ..WriterOptions::default()
    };
    let mut w = VideoWriter::create(&p, W, H, &opts).unwrap();
    for i in 0..24 {
        w.write(&pattern(i, W, H).data).unwrap();
    }
    w.finish().unwrap();
    let types = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "frame=pict_type",
            "-of",
            "csv=p=0",
        ])
        .arg(&p)
        .output()
        .unwrap();
    let types = String::from_utf8_lossy(&types.stdout);
    assert!(
        types.matches('B').count() >= 3,
        "no B-frames to skip: {types}"
    );
    let all = decode_all(&p);
    let mut r = VideoReader::open(&p).unwrap();
    let late: Vec<_> = r
        .frames(&FrameSelect {
            start_s: 0.8,
            ..FrameSelect::default()
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(late.len(), 4);
    for f in &late {
        assert!(
            f.frame == all[f.index as usize].frame,
            "frame {} differs from sequential decoding",
            f.index
        );
    }
}
