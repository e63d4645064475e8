//! One trainer per run folder: a second one started on a folder in use (here with
//! `--resume`, the likely mistake) is refused with exit status 2, naming the folder and
//! the holder, and leaves the first one's files alone, its checkpoint in progress
//! included.

use std::process::Stdio;
use std::time::Duration;

use crate::resume::{running_trainer, train};
use crate::support::{bytes, run};

#[test]
fn a_second_trainer_on_a_run_folder_is_refused_and_touches_nothing() {
    let (s, mut first) = running_trainer(Stdio::null());
    // What the first trainer's next checkpoint looks like while it is being written.
    let in_progress = s.dir.join("run/checkpoints/.tmp-step_9999999-in-progress");
    std::fs::create_dir(&in_progress).unwrap();

    let second = train(&s, "run", &["--resume"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Before the lock, the second one trained alongside (for ever, at 100000 steps).
    let (tx, rx) = std::sync::mpsc::channel();
    let second_pid = second.id();
    std::thread::spawn(move || {
        let _ = tx.send(second.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: signals our own child processes.
            unsafe {
                libc::kill(second_pid as i32, libc::SIGKILL);
                libc::kill(first.id() as i32, libc::SIGKILL);
            }
            panic!("the second trainer was not refused: it kept running");
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let still_running = first.try_wait().unwrap().is_none();
    let in_progress_kept = in_progress.is_dir();
    // SAFETY: signals our own child process.
    unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
    let first_status = first.wait().unwrap();

    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("in use by another trainer"), "{stderr}");
    assert!(
        stderr.contains(&s.dir.join("run").display().to_string())
            && stderr.contains(&format!("pid {}", first.id())),
        "names the folder and the holder: {stderr}"
    );
    assert!(still_running, "the first trainer was not disturbed");
    assert!(
        in_progress_kept,
        "the first trainer's temporary folder is kept"
    );
    assert!(first_status.success(), "the first trainer ends normally");
    // (It keeps only its last checkpoints, so the first one may be pruned by now.)
    assert!(
        s.dir
            .join("run/checkpoints/latest/model.safetensors")
            .is_file(),
        "its latest checkpoint is intact"
    );
    // Once the first is gone, the run is free again, and what it left half-written is
    // a crashed writer's leftover, cleaned up.
    let latest = s.dir.join("run/checkpoints/latest/train_state.json");
    let state: serde_json::Value = serde_json::from_slice(&bytes(&latest)).unwrap();
    let next = state["step"].as_u64().unwrap() + 1;
    let out = run(&mut train(
        &s,
        "run",
        &["--resume", "--steps", &next.to_string()],
    ));
    assert!(out.status.success());
    assert!(!in_progress.exists());
}
