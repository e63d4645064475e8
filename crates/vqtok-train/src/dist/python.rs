//! The embedded interpreter, loaded at run time: the libpython of `$VQTOK_PYTHON`'s
//! installation (with `RTLD_GLOBAL`), then `libvqtok_pydist.so` (crates/vqtok-pydist),
//! whose C functions drive `torch.distributed`. vqtok-train itself does not link
//! libpython, so a run without a launcher never needs Python, and one build works with
//! any CPython ≥ 3.11 that has a shared libpython (pydist uses the stable ABI only).

use std::ffi::{c_char, c_double, c_int, c_void};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};

use super::DistError;

type InitFn = unsafe extern "C" fn(
    *const c_char,
    c_int,
    c_int,
    c_int,
    *const c_char,
    c_int,
    c_double,
    *mut c_double,
) -> c_int;

/// The C ABI of vqtok-pydist (its lib.rs documents each function); every function but
/// `free`/`free_str`/`last_error` returns 0 or -1 with the message in `last_error`.
pub struct Api {
    pub last_error: unsafe extern "C" fn() -> *const c_char,
    pub start: unsafe extern "C" fn(*const c_char, *mut c_char, usize) -> c_int,
    pub init_process_group: InitFn,
    pub wrap: unsafe extern "C" fn(*mut c_void, *mut *mut c_void) -> c_int,
    pub free: unsafe extern "C" fn(*mut c_void),
    pub broadcast: unsafe extern "C" fn(*mut c_void, c_int) -> c_int,
    pub all_reduce: unsafe extern "C" fn(*mut c_void, c_int) -> c_int,
    pub all_gather_str: unsafe extern "C" fn(*const c_char, *mut *mut c_char) -> c_int,
    pub free_str: unsafe extern "C" fn(*mut c_char),
}

static API: OnceLock<Api> = OnceLock::new();

/// The interpreter whose venv (and so whose torch) the embedded Python uses:
/// `$VQTOK_PYTHON`, else the build's (`.cargo/config.toml` points it at `.venv/`).
pub fn python_executable() -> Result<PathBuf, DistError> {
    let exe = std::env::var("VQTOK_PYTHON")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| option_env!("VQTOK_PYTHON").map(String::from))
        .ok_or_else(|| {
            DistError::Env("set VQTOK_PYTHON to the bin/python of the venv that holds torch".into())
        })?;
    let exe = PathBuf::from(exe);
    if !exe.exists() {
        return Err(DistError::Env(format!(
            "VQTOK_PYTHON={} does not exist: set it to the bin/python of the venv that holds torch",
            exe.display()
        )));
    }
    Ok(exe)
}

/// `$VQTOK_LIBPYTHON`, else what the interpreter's sysconfig says (LIBDIR/INSTSONAME, or
/// the bare soname for the loader's own search, e.g. Debian's multiarch folder).
fn libpython_path(python: &Path) -> Result<PathBuf, DistError> {
    if let Ok(p) = std::env::var("VQTOK_LIBPYTHON") {
        return Ok(PathBuf::from(p));
    }
    let script = "import sysconfig as s; v = s.get_config_var; \
                  print(v('Py_ENABLE_SHARED') or 0); print(v('LIBDIR') or ''); print(v('INSTSONAME') or '')";
    let out = Command::new(python)
        .args(["-I", "-S", "-c", script])
        .output()
        .map_err(|e| DistError::Python(format!("running {}: {e}", python.display())))?;
    if !out.status.success() {
        return Err(DistError::Python(format!(
            "{} failed: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines().map(str::trim);
    let (shared, libdir, soname) = (
        lines.next().unwrap_or("0"),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
    );
    if shared != "1" || soname.is_empty() {
        return Err(DistError::Env(format!(
            "{} has no shared libpython (built without --enable-shared), so it cannot be \
             embedded; use a shared build, or set VQTOK_LIBPYTHON to a libpython3.X.so of the \
             same version",
            python.display()
        )));
    }
    let full = Path::new(libdir).join(soname);
    Ok(if full.exists() {
        full
    } else {
        PathBuf::from(soname)
    })
}

/// `$VQTOK_PYDIST`, else `libvqtok_pydist.so` beside the executable (cargo puts it there).
fn pydist_path() -> Result<PathBuf, DistError> {
    if let Ok(p) = std::env::var("VQTOK_PYDIST") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()
        .map_err(|e| DistError::Python(format!("locating this executable: {e}")))?;
    Ok(exe.with_file_name("libvqtok_pydist.so"))
}

/// Loads libpython and pydist once per process; both stay loaded for its life.
pub fn load(python: &Path) -> Result<&'static Api, DistError> {
    if let Some(api) = API.get() {
        return Ok(api);
    }
    let libpython = libpython_path(python)?;
    // RTLD_GLOBAL: pydist and torch's own extension modules are not linked to libpython
    // and find the Py* symbols in the global scope.
    let py = unsafe { Library::open(Some(&libpython), RTLD_NOW | RTLD_GLOBAL) }
        .map_err(|e| DistError::Python(format!("loading {}: {e}", libpython.display())))?;
    let path = pydist_path()?;
    if !path.exists() {
        return Err(DistError::Python(format!(
            "{} is missing: build it with `cargo build -p vqtok-pydist` (same profile as \
             vqtok-train), or set VQTOK_PYDIST",
            path.display()
        )));
    }
    let lib = unsafe { Library::open(Some(&path), RTLD_NOW) }
        .map_err(|e| DistError::Python(format!("loading {}: {e}", path.display())))?;
    macro_rules! sym {
        ($name:literal) => {
            *unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                .map_err(|e| DistError::Python(format!("{} in {}: {e}", $name, path.display())))?
        };
    }
    let api = Api {
        last_error: sym!("vqpd_last_error"),
        start: sym!("vqpd_start"),
        init_process_group: sym!("vqpd_init_process_group"),
        wrap: sym!("vqpd_wrap"),
        free: sym!("vqpd_free"),
        broadcast: sym!("vqpd_broadcast"),
        all_reduce: sym!("vqpd_all_reduce"),
        all_gather_str: sym!("vqpd_all_gather_str"),
        free_str: sym!("vqpd_free_str"),
    };
    std::mem::forget(py);
    std::mem::forget(lib);
    Ok(API.get_or_init(|| api))
}

/// The API once [`load`] succeeded (used by handles' destructors).
pub fn loaded() -> Option<&'static Api> {
    API.get()
}

/// Folders of the torch libraries mapped into this process. After `import torch` this
/// must be one folder: the binary's libtorch_cpu.so and the Python package's
/// libtorch_python.so from two torch builds would be mixed in one process otherwise.
pub fn loaded_torch_lib_dirs() -> Vec<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| {
            let name = p.rsplit('/').next().unwrap_or("");
            name.starts_with("libtorch") || name.starts_with("libc10")
        })
        .filter_map(|p| {
            let p = std::fs::canonicalize(p).unwrap_or_else(|_| PathBuf::from(p));
            p.parent().map(Path::to_path_buf)
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}
