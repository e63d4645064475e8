//! The event files we write are read back by the real TensorBoard (the venv's
//! `tensorboard` package, EventAccumulator, CRCs checked).

use std::process::Command;

use vqtok_train::train::tensorboard::EventWriter;

#[test]
fn tensorboard_reads_our_scalars_and_images() {
    let dir = std::env::temp_dir().join(format!("vqtok-tb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut w = EventWriter::create(&dir).unwrap();
    for step in 0..5u64 {
        w.scalars(
            step,
            [
                ("train/total_loss", 1.0 / (step + 1) as f64),
                ("train/lr", 1e-4),
            ],
        )
        .unwrap();
    }
    // A 4×2 image: a red and a blue column pattern.
    let rgb: Vec<u8> = (0..8)
        .flat_map(|i| if i % 2 == 0 { [255, 0, 0] } else { [0, 0, 255] })
        .collect();
    w.image(4, "val/reconstructions", &rgb, 4, 2).unwrap();
    w.flush().unwrap();

    let script = r#"
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "images": 0})
acc.Reload()
loss = acc.Scalars("train/total_loss")
print("steps", [e.step for e in loss])
print("values", ["%.6f" % e.value for e in loss])
img = acc.Images("val/reconstructions")[0]
print("image", img.step, img.width, img.height, img.encoded_image_string[:4] == b"\x89PNG")
"#;
    let stdout = read_back(script, &dir);
    assert!(stdout.contains("steps [0, 1, 2, 3, 4]"), "{stdout}");
    assert!(
        stdout.contains("'1.000000', '0.500000', '0.333333', '0.250000', '0.200000'"),
        "{stdout}"
    );
    assert!(stdout.contains("image 4 4 2 True"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A run that logged steps 1–6, crashed, and resumed from its checkpoint at step 4:
/// TensorBoard shows steps 1–8 once each (the resumed writer's session-start marker
/// purges the crashed process's points from step 4 on).
#[test]
fn a_resumed_run_shows_each_step_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut crashed = EventWriter::create(dir.path()).unwrap();
    for step in 1..=6u64 {
        crashed.scalars(step, [("train/total_loss", 1.0)]).unwrap();
    }
    crashed.flush().unwrap();
    let mut resumed = EventWriter::create(dir.path()).unwrap();
    resumed.start_session(4).unwrap();
    for step in 4..=8u64 {
        resumed.scalars(step, [("train/total_loss", 2.0)]).unwrap();
    }
    resumed.flush().unwrap();

    let script = r#"
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
print("points", [(e.step, e.value) for e in acc.Scalars("train/total_loss")])
"#;
    let stdout = read_back(script, dir.path());
    assert!(
        stdout.contains(
            "points [(1, 1.0), (2, 1.0), (3, 1.0), (4, 2.0), (5, 2.0), (6, 2.0), (7, 2.0), (8, 2.0)]"
        ),
        "{stdout}"
    );
}

/// Runs `script` (TensorBoard's EventAccumulator in the venv's Python) on the event
/// files in `dir`; returns what it printed.
fn read_back(script: &str, dir: &std::path::Path) -> String {
    let out = Command::new(env!("VQTOK_PYTHON"))
        .arg("-c")
        .arg(script)
        .arg(dir)
        .output()
        .expect("run the venv python");
    vqtok_testkit::process::assert_status(&out, 0);
    String::from_utf8_lossy(&out.stdout).into_owned()
}
