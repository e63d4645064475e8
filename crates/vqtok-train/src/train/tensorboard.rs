//! A TensorBoard event-file writer: scalars and PNG images.
//!
//! The event-file crates on crates.io are stale, and the format is small: `Event`
//! protobufs (written here with prost derives, no .proto needed) framed as TFRecords
//! `u64 len | masked_crc32c(len) | data | masked_crc32c(data)`. The real TensorBoard
//! reads these files (tested with the venv's `tensorboard` EventAccumulator).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use image::ImageEncoder;
use prost::Message;

#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(oneof = "EventKind", tags = "3, 5, 7")]
    what: Option<EventKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum EventKind {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
    /// Tag 7 (6 is the deprecated LogMessage).
    #[prost(message, tag = "7")]
    SessionLog(SessionLog),
}

/// tensorflow's SessionLog; only `status` is written.
#[derive(Clone, PartialEq, prost::Message)]
struct SessionLog {
    /// SessionStatus: 1 = START.
    #[prost(int32, tag = "1")]
    status: i32,
}

const SESSION_START: i32 = 1;

#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(oneof = "ValueKind", tags = "2, 4")]
    value: Option<ValueKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum ValueKind {
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    #[prost(message, tag = "4")]
    Image(SummaryImage),
}

#[derive(Clone, PartialEq, prost::Message)]
struct SummaryImage {
    #[prost(int32, tag = "1")]
    height: i32,
    #[prost(int32, tag = "2")]
    width: i32,
    #[prost(int32, tag = "3")]
    colorspace: i32,
    #[prost(bytes = "vec", tag = "4")]
    encoded_image_string: Vec<u8>,
}

/// Appends events to one `events.out.tfevents.<secs>.<host>` file.
pub struct EventWriter {
    out: BufWriter<File>,
    path: PathBuf,
}

impl EventWriter {
    /// Creates a new event file in `dir` (created if missing).
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        // A second writer of the same process in the same second gets its own file.
        let (path, file) = (0u32..)
            .map(|n| {
                let path = dir.join(format!(
                    "events.out.tfevents.{secs}.{host}.{}.{n}",
                    std::process::id()
                ));
                (vqtok_core::fs::create_new(&path), path)
            })
            .find_map(|(file, path)| match file {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                other => Some(other.map(|f| (path, f))),
            })
            .expect("an unused name")?;
        let mut w = EventWriter {
            out: BufWriter::new(file),
            path,
        };
        w.write_event(0, EventKind::FileVersion("brain.Event:2".into()))?;
        w.flush()?;
        Ok(w)
    }

    /// Marks a (re)start at `step`: TensorBoard drops every point of this run's earlier
    /// files at `step` or later, so the steps a crashed process logged after its last
    /// checkpoint are not shown twice once the resumed run logs them again.
    pub fn start_session(&mut self, step: u64) -> std::io::Result<()> {
        self.write_event(
            step,
            EventKind::SessionLog(SessionLog {
                status: SESSION_START,
            }),
        )?;
        self.flush()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Scalars for one step, in one event.
    pub fn scalars<'a>(
        &mut self,
        step: u64,
        values: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> std::io::Result<()> {
        let value = values
            .into_iter()
            .map(|(tag, v)| SummaryValue {
                tag: tag.to_string(),
                value: Some(ValueKind::SimpleValue(v as f32)),
            })
            .collect();
        self.write_event(step, EventKind::Summary(Summary { value }))
    }

    /// An RGB image `[height, width, 3]` (row-major u8), stored as PNG.
    pub fn image(
        &mut self,
        step: u64,
        tag: &str,
        rgb: &[u8],
        width: u32,
        height: u32,
    ) -> std::io::Result<()> {
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(rgb, width, height, image::ExtendedColorType::Rgb8)
            .map_err(std::io::Error::other)?;
        let image = SummaryImage {
            height: height as i32,
            width: width as i32,
            colorspace: 3,
            encoded_image_string: png,
        };
        let value = vec![SummaryValue {
            tag: tag.to_string(),
            value: Some(ValueKind::Image(image)),
        }];
        self.write_event(step, EventKind::Summary(Summary { value }))
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    fn write_event(&mut self, step: u64, what: EventKind) -> std::io::Result<()> {
        let wall_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let data = Event {
            wall_time,
            step: step as i64,
            what: Some(what),
        }
        .encode_to_vec();
        let len = (data.len() as u64).to_le_bytes();
        self.out.write_all(&len)?;
        self.out.write_all(&masked_crc(&len).to_le_bytes())?;
        self.out.write_all(&data)?;
        self.out.write_all(&masked_crc(&data).to_le_bytes())
    }
}

/// TFRecord's masked CRC-32C.
fn masked_crc(bytes: &[u8]) -> u32 {
    let c = crc32c::crc32c(bytes);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_is_castagnoli() {
        // The CRC-32C check value; a plain CRC-32 (0xcbf43926) would make every record unreadable.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_ne!(masked_crc(b"123456789"), 0xe306_9283);
    }
}
