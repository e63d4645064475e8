//! `data_args`: where clips come from and how they are shaped (the seed's video_pipe).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataArgs {
    /// Training sources: directories (recursive), globs, or `.txt` / `.jsonl` manifests.
    #[serde(
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub train: Vec<String>,
    /// Validation sources; when empty, `val_fraction` of the training files is held out
    /// by a stable hash of their path.
    #[serde(
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub val: Vec<String>,
    pub val_fraction: f64,
    /// Frames per clip (`d` in `b d h w c`).
    pub sequence_length: usize,
    /// Take every `frame_stride`-th frame.
    pub frame_stride: usize,
    /// Square crop size; defaults to the model's nominal resolution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<usize>,
    pub normalize: Normalize,
    pub num_workers: usize,
    /// Batches decoded ahead of the trainer (bounds memory).
    pub prefetch_batches: usize,
    pub short_videos: ShortVideos,
    pub random_flip: bool,
    /// Evenly spaced validation clips per validation video.
    pub val_clips_per_video: usize,
    /// Seconds after which one file's decode is abandoned (counted as bad).
    pub decode_timeout_s: f64,
    /// Lower-case extensions picked up when scanning directories.
    pub extensions: Vec<String>,
}

impl Default for DataArgs {
    fn default() -> Self {
        Self {
            train: Vec::new(),
            val: Vec::new(),
            val_fraction: 0.05,
            sequence_length: 4,
            frame_stride: 1,
            resolution: None,
            normalize: Normalize::MinusOneOne,
            num_workers: 2,
            prefetch_batches: 4,
            short_videos: ShortVideos::Skip,
            random_flip: false,
            val_clips_per_video: 2,
            decode_timeout_s: 30.0,
            extensions: [
                "mp4", "webm", "avi", "mov", "mkv", "m4v", "mpg", "mpeg", "gif", "png", "jpg",
                "jpeg",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// What to do with a video that has fewer frames than one clip needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShortVideos {
    Skip,
    Loop,
}

/// Pixel normalisation applied after scaling u8 to [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub enum Normalize {
    /// taming's x·2 − 1, to [-1, 1].
    MinusOneOne,
    /// (x − mean) / std per RGB channel.
    MeanStd { mean: [f64; 3], std: [f64; 3] },
}

/// The one definition of pixel normalisation, shared by the data pipeline, the
/// trainer and the exported ONNX graphs: `x[c] = (u8[c] / divisor[c] − offset[c]) /
/// std[c]`, evaluated in f32 in exactly this order. Every consumer computing the same
/// operations in the same order gets the same bits, so an argmin near-tie cannot flip
/// between training and deployment because of normalisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelAffine {
    pub divisor: [f64; 3],
    pub offset: [f64; 3],
    pub std: [f64; 3],
}

impl Normalize {
    /// minus_one_one: taming's `u8 / 127.5 − 1` (spec §7.3); mean/std: `(u8 / 255 − mean) / std`.
    pub fn pixel_affine(&self) -> PixelAffine {
        match self {
            Normalize::MinusOneOne => PixelAffine {
                divisor: [127.5; 3],
                offset: [1.0; 3],
                std: [1.0; 3],
            },
            Normalize::MeanStd { mean, std } => PixelAffine {
                divisor: [255.0; 3],
                offset: *mean,
                std: *std,
            },
        }
    }
}

impl Serialize for Normalize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Normalize::MinusOneOne => s.serialize_str("minus_one_one"),
            Normalize::MeanStd { mean, std } => {
                serde_json::json!({ "mean": mean, "std": std }).serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Normalize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct MeanStd {
            mean: [f64; 3],
            std: [f64; 3],
        }
        let expected = "expected \"minus_one_one\" or {\"mean\": [r, g, b], \"std\": [r, g, b]}";
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) if s == "minus_one_one" => Ok(Normalize::MinusOneOne),
            v @ serde_json::Value::Object(_) => serde_json::from_value::<MeanStd>(v)
                .map(|m| Normalize::MeanStd {
                    mean: m.mean,
                    std: m.std,
                })
                .map_err(|e| D::Error::custom(format!("{e}; {expected}"))),
            other => Err(D::Error::custom(format!("got {other}; {expected}"))),
        }
    }
}

/// A single string or a list of strings.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match OneOrMany::deserialize(d) {
        Ok(OneOrMany::One(s)) => Ok(vec![s]),
        Ok(OneOrMany::Many(v)) => Ok(v),
        Err(_) => Err(serde::de::Error::custom(
            "expected a path string or a list of path strings",
        )),
    }
}
