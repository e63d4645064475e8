//! The process group: joining it, and collectives on tch tensors in place. A tensor
//! reaches Python through DLPack (csrc/dlpack_shim.cpp) as a `torch.Tensor` sharing its
//! memory, so a collective writes straight into the trainer's tensors. Lists of tensors
//! are coalesced into one flat buffer per dtype (one collective instead of hundreds, as
//! DDP's buckets).

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use tch::{Kind, Tensor};

use super::DistError;
use super::env::Launch;
use super::python::{self, Api};

unsafe extern "C" {
    fn vqtok_dlpack_last_error() -> *const c_char;
    fn vqtok_to_dlpack(t: *const c_void) -> *mut c_void;
}

/// The reductions the trainer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    Mean,
    Sum,
    Max,
}

impl Reduce {
    fn code(self) -> c_int {
        match self {
            Reduce::Mean => 0,
            Reduce::Sum => 1,
            Reduce::Max => 2,
        }
    }
}

/// A torch.Tensor living in Python that aliases a tch tensor's memory.
struct PyTensor(*mut c_void);

impl Drop for PyTensor {
    fn drop(&mut self) {
        if let Some(api) = python::loaded() {
            unsafe { (api.free)(self.0) };
        }
    }
}

/// This process's membership of the job (one per process, see [`super::init`]).
pub struct Group {
    api: &'static Api,
    pub launch: Launch,
    /// `gloo` (CPU tensors) or `nccl` (CUDA tensors).
    pub backend: &'static str,
    /// Interpreter, torch and timings, for the log.
    pub describe: String,
}

impl Group {
    /// Starts Python, imports torch from `$VQTOK_PYTHON`'s venv, checks it is the torch
    /// this binary links, and joins the group (env:// rendezvous, `timeout` for it and
    /// for every later collective).
    pub(super) fn join(
        launch: Launch,
        backend: &'static str,
        timeout: Duration,
    ) -> Result<Group, DistError> {
        let t0 = Instant::now();
        let exe = python::python_executable()?;
        let api = python::load(&exe)?;
        let c_exe = CString::new(exe.as_os_str().as_bytes())
            .map_err(|_| DistError::Env("VQTOK_PYTHON holds a NUL byte".into()))?;
        let mut buf = vec![0u8; 1024];
        check(api, "import torch", unsafe {
            (api.start)(c_exe.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
        })?;
        let dirs = python::loaded_torch_lib_dirs();
        if dirs.len() != 1 {
            return Err(DistError::Env(format!(
                "torch libraries from more than one folder are loaded ({}): this binary links \
                 one torch and VQTOK_PYTHON's venv holds another; put that venv's torch/lib \
                 first on LD_LIBRARY_PATH",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let about = CStr::from_bytes_until_nul(&buf)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let loaded = t0.elapsed().as_secs_f64();
        let backend_c = CString::new(backend).expect("no NUL");
        let addr = CString::new(launch.master_addr.as_str())
            .map_err(|_| DistError::Env("MASTER_ADDR holds a NUL byte".into()))?;
        let mut init_s = 0.0;
        check(api, "init_process_group", unsafe {
            (api.init_process_group)(
                backend_c.as_ptr(),
                launch.rank as c_int,
                launch.world_size as c_int,
                launch.local_rank as c_int,
                addr.as_ptr(),
                c_int::from(launch.master_port),
                timeout.as_secs_f64(),
                &mut init_s,
            )
        })?;
        Ok(Group {
            api,
            describe: format!(
                "{about}; python + torch loaded in {loaded:.1} s, group joined in {init_s:.2} s"
            ),
            launch,
            backend,
        })
    }

    pub fn rank(&self) -> usize {
        self.launch.rank
    }

    pub fn world_size(&self) -> usize {
        self.launch.world_size
    }

    fn wrap(&self, t: &Tensor) -> PyTensor {
        let managed = unsafe { vqtok_to_dlpack(t.as_ptr().cast()) };
        if managed.is_null() {
            let msg = unsafe { CStr::from_ptr(vqtok_dlpack_last_error()) };
            self.fatal("DLPack export", &msg.to_string_lossy());
        }
        let mut handle = std::ptr::null_mut();
        // vqpd_wrap owns `managed` from here on, also when it fails.
        let rc = unsafe { (self.api.wrap)(managed, &mut handle) };
        self.ok("wrap", rc);
        PyTensor(handle)
    }

    /// After a failed collective the group is unusable and the job cannot go on: the rank
    /// says why and exits with 1 at once, without tearing anything down (a dead peer can
    /// make teardown hang). The launcher (torchrun; srun with --kill-on-bad-exit) then
    /// stops the others; ranks blocked in a collective fail by themselves at the timeout.
    /// The last checkpoint on disk is intact (they are written atomically).
    fn fatal(&self, what: &str, msg: &str) -> ! {
        eprintln!(
            "error: rank {}/{}: torch.distributed {what} failed, so this rank stops (exit 1):\n{}",
            self.rank(),
            self.world_size(),
            msg.trim_end()
        );
        std::process::exit(1)
    }

    fn ok(&self, what: &str, rc: c_int) {
        if let Err(DistError::Collective { msg, .. }) = check(self.api, what, rc) {
            self.fatal(what, &msg);
        }
    }

    /// `op` over every rank's `tensors`, in place (all on this rank's device).
    pub fn all_reduce_(&self, tensors: &[Tensor], op: Reduce) {
        self.coalesced(tensors, |flat| {
            let rc = unsafe { (self.api.all_reduce)(flat.0, op.code()) };
            self.ok("all_reduce", rc);
        });
    }

    /// Rank `src`'s `tensors` on every rank, in place.
    pub fn broadcast_(&self, tensors: &[Tensor], src: usize) {
        self.coalesced(tensors, |flat| {
            let rc = unsafe { (self.api.broadcast)(flat.0, src as c_int) };
            self.ok("broadcast", rc);
        });
    }

    /// Every rank's `text`, in rank order.
    pub fn all_gather_str(&self, text: &str) -> Vec<String> {
        let c = CString::new(text).expect("callers pass JSON or hex, never NUL");
        let mut out: *mut c_char = std::ptr::null_mut();
        let rc = unsafe { (self.api.all_gather_str)(c.as_ptr(), &mut out) };
        self.ok("all_gather", rc);
        let json = unsafe { CStr::from_ptr(out) }
            .to_string_lossy()
            .into_owned();
        unsafe { (self.api.free_str)(out) };
        serde_json::from_str(&json)
            .unwrap_or_else(|e| self.fatal("all_gather", &format!("bad reply {json:?}: {e}")))
    }

    /// Runs `collective` on one flat buffer per dtype holding `tensors`, then copies the
    /// result back; a single contiguous tensor of a dtype is used as is (no copy).
    fn coalesced(&self, tensors: &[Tensor], collective: impl Fn(&PyTensor)) {
        let mut kinds: Vec<Kind> = Vec::new();
        for t in tensors {
            if !kinds.contains(&t.kind()) {
                kinds.push(t.kind());
            }
        }
        tch::no_grad(|| {
            for kind in kinds {
                let group: Vec<&Tensor> = tensors.iter().filter(|t| t.kind() == kind).collect();
                if let [t] = group[..]
                    && t.is_contiguous()
                {
                    collective(&self.wrap(t));
                    continue;
                }
                let parts: Vec<Tensor> = group.iter().map(|t| t.detach().reshape([-1])).collect();
                let flat = Tensor::cat(&parts, 0);
                collective(&self.wrap(&flat));
                let mut offset = 0;
                for t in group {
                    let n = t.numel() as i64;
                    t.shallow_clone()
                        .copy_(&flat.narrow(0, offset, n).view(t.size().as_slice()));
                    offset += n;
                }
            }
        });
    }
}

fn check(api: &Api, what: &str, rc: c_int) -> Result<(), DistError> {
    if rc == 0 {
        return Ok(());
    }
    let msg = unsafe { CStr::from_ptr((api.last_error)()) }
        .to_string_lossy()
        .into_owned();
    Err(DistError::Collective {
        what: what.to_string(),
        msg,
    })
}
