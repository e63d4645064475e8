//! C ABI around torch.distributed, for vqtok-train to dlopen (see Cargo.toml and
//! vqtok-train's `dist` module, which declares the same functions).
//!
//! Tensors come in as DLPack `DLManagedTensor*` (made by ATen's at::toDLPack in vqtok-train),
//! become a "dltensor" capsule and `torch.from_dlpack` turns that into a torch.Tensor aliasing
//! the same memory: collectives then work in place on the tch tensor. No torch headers here.
//!
//! Every function returns 0 on success and -1 on error (message: vqpd_last_error()).
//!
//! # Safety
//!
//! The caller (vqtok-train's `dist::python`) passes NUL-terminated strings, writable out
//! pointers, handles that came from `vqpd_wrap` and were not freed yet, and calls
//! `vqpd_start` before anything else; each function says what it owns.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_double, c_int, c_void};
use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3::{ffi, types::PyModule};

const HELPER_SRC: &CStr =
    match CStr::from_bytes_with_nul(concat!(include_str!("dist_helper.py"), "\0").as_bytes()) {
        Ok(s) => s,
        Err(_) => panic!("dist_helper.py contains a NUL byte"),
    };

static HELPER: OnceLock<Py<PyModule>> = OnceLock::new();

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn fail(msg: String) -> c_int {
    LAST_ERROR.with(|e| *e.borrow_mut() = CString::new(msg.replace('\0', " ")).unwrap_or_default());
    -1
}

fn py_msg(py: Python<'_>, e: PyErr) -> String {
    let tb = e
        .traceback(py)
        .and_then(|tb| tb.format().ok())
        .unwrap_or_default();
    format!("{tb}{e}")
}

/// Runs `f` attached to the interpreter, turning Python errors and panics into -1.
fn guarded(f: impl FnOnce(Python<'_>) -> PyResult<()>) -> c_int {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Python::attach(|py| f(py).map_err(|e| py_msg(py, e)))
    })) {
        Ok(Ok(())) => 0,
        Ok(Err(msg)) => fail(msg),
        Err(_) => fail("panic in vqtok_pydist".into()),
    }
}

fn helper(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    HELPER
        .get()
        .map(|h| h.bind(py))
        .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("vqpd_start was not called"))
}

unsafe fn cstr<'a>(p: *const c_char) -> &'a str {
    unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("")
}

#[unsafe(no_mangle)]
pub extern "C" fn vqpd_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Starts the interpreter as if `python_exe` (a venv's bin/python) had been run and imports the
/// helper (and so torch). `describe` gets a NUL-terminated summary.
/// # Safety
/// See the crate docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vqpd_start(
    python_exe: *const c_char,
    describe: *mut c_char,
    describe_len: usize,
) -> c_int {
    if unsafe { ffi::Py_IsInitialized() } == 0 {
        // getpath derives sys.prefix from the program name: <venv>/bin/python makes CPython read
        // <venv>/pyvenv.cfg, so the stdlib comes from the base install and site-packages from
        // the venv. (Deprecated since 3.11 for PyConfig, which is outside the stable ABI.)
        let wide = unsafe { ffi::Py_DecodeLocale(python_exe, std::ptr::null_mut()) };
        if wide.is_null() {
            return fail("Py_DecodeLocale failed".into());
        }
        #[allow(deprecated)]
        unsafe {
            ffi::Py_SetProgramName(wide) // must outlive the interpreter: leaked on purpose
        };
        Python::initialize(); // Py_InitializeEx(0): no Python signal handlers
    }
    guarded(|py| {
        let module = PyModule::from_code(py, HELPER_SRC, c"dist_helper.py", c"dist_helper")?;
        let text: String = module.call_method0("describe")?.extract()?;
        let _ = HELPER.set(module.unbind());
        if describe_len > 0 {
            let n = text.len().min(describe_len - 1);
            unsafe {
                std::ptr::copy_nonoverlapping(text.as_ptr(), describe as *mut u8, n);
                *describe.add(n) = 0;
            }
        }
        Ok(())
    })
}

/// torch.distributed.init_process_group (env:// rendezvous); `*init_s` gets its duration.
/// # Safety
/// See the crate docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vqpd_init_process_group(
    backend: *const c_char,
    rank: c_int,
    world_size: c_int,
    local_rank: c_int,
    master_addr: *const c_char,
    master_port: c_int,
    timeout_s: c_double,
    init_s: *mut c_double,
) -> c_int {
    let (backend, addr) = unsafe { (cstr(backend), cstr(master_addr)) };
    guarded(|py| {
        let secs: f64 = helper(py)?
            .call_method1(
                "init",
                (
                    backend,
                    rank,
                    world_size,
                    local_rank,
                    addr,
                    master_port,
                    timeout_s,
                ),
            )?
            .extract()?;
        unsafe { *init_s = secs };
        Ok(())
    })
}

// DLPack (dlpack.h, unversioned ABI, stable since v0.2).
#[repr(C)]
struct DLManagedTensor {
    dl_tensor: [u8; 48], // DLTensor: data, device, ndim, dtype, shape, strides, byte_offset
    manager_ctx: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut DLManagedTensor)>,
}

const DLTENSOR: &CStr = c"dltensor";

unsafe extern "C" fn capsule_destructor(capsule: *mut ffi::PyObject) {
    // torch.from_dlpack renames the capsule it consumed to "used_dltensor" and owns the tensor
    // from then on; only a capsule nobody consumed still has to release it.
    if unsafe { ffi::PyCapsule_IsValid(capsule, DLTENSOR.as_ptr()) } == 1 {
        let m = unsafe { ffi::PyCapsule_GetPointer(capsule, DLTENSOR.as_ptr()) }
            as *mut DLManagedTensor;
        if let Some(d) = unsafe { (*m).deleter } {
            unsafe { d(m) };
        }
    }
}

/// Takes ownership of `managed` (a DLManagedTensor*), also on failure; `*out` gets a handle to
/// the aliasing torch.Tensor, to be released with vqpd_free.
/// # Safety
/// See the crate docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vqpd_wrap(managed: *mut c_void, out: *mut *mut c_void) -> c_int {
    guarded(|py| {
        let cap =
            unsafe { ffi::PyCapsule_New(managed, DLTENSOR.as_ptr(), Some(capsule_destructor)) };
        if cap.is_null() {
            let m = managed as *mut DLManagedTensor;
            if let Some(d) = unsafe { (*m).deleter } {
                unsafe { d(m) };
            }
            return Err(PyErr::fetch(py));
        }
        let cap = unsafe { Bound::from_owned_ptr(py, cap) };
        let t = helper(py)?.call_method1("wrap", (cap,))?;
        unsafe { *out = Box::into_raw(Box::new(t.unbind())) as *mut c_void };
        Ok(())
    })
}

unsafe fn tensor<'py>(py: Python<'py>, h: *mut c_void) -> Bound<'py, PyAny> {
    unsafe { &*(h as *const Py<PyAny>) }.bind(py).clone()
}

/// # Safety
/// See the crate docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vqpd_free(h: *mut c_void) {
    if !h.is_null() {
        Python::attach(|_| drop(unsafe { Box::from_raw(h as *mut Py<PyAny>) }));
    }
}

/// # Safety
/// See the crate docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vqpd_broadcast(h: *mut c_void, src: c_int) -> c_int {
    guarded(|py| {
        helper(py)?
            .call_method1("broadcast_", (unsafe { tensor(py, h) }, src))
            .map(drop)
    })
}

/// op: 0 = mean, 1 = sum, 2 = max.
/// # Safety
/// See the crate docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vqpd_all_reduce(h: *mut c_void, op: c_int) -> c_int {
    let name = match op {
        0 => "all_reduce_mean_",
        1 => "all_reduce_sum_",
        2 => "all_reduce_max_",
        _ => return fail(format!("unknown reduce op {op}")),
    };
    guarded(|py| {
        helper(py)?
            .call_method1(name, (unsafe { tensor(py, h) },))
            .map(drop)
    })
}

/// Every rank's `text` (UTF-8, NUL-terminated) as a JSON array in rank order; `*out` gets
/// a NUL-terminated string to be released with vqpd_free_str.
/// # Safety
/// See the crate docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vqpd_all_gather_str(text: *const c_char, out: *mut *mut c_char) -> c_int {
    let text = unsafe { cstr(text) };
    guarded(|py| {
        let json: String = helper(py)?
            .call_method1("all_gather_str", (text,))?
            .extract()?;
        let json = CString::new(json)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
        unsafe { *out = json.into_raw() };
        Ok(())
    })
}

/// # Safety
/// See the crate docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vqpd_free_str(s: *mut c_char) {
    if !s.is_null() {
        drop(unsafe { CString::from_raw(s) });
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn vqpd_barrier() -> c_int {
    guarded(|py| helper(py)?.call_method0("barrier").map(drop))
}

#[unsafe(no_mangle)]
pub extern "C" fn vqpd_destroy() -> c_int {
    guarded(|py| helper(py)?.call_method0("destroy").map(drop))
}
