//! Mixed-precision regions (`train_args.amp`). tch's own autocast is CUDA + fp16
//! only, so a small C++ shim (csrc/autocast_shim.cpp) drives libtorch's autocast
//! state for bf16. Regions nest; numerically sensitive parts (quantizer distances,
//! LPIPS, the adaptive weight) run inside [`Autocast::disabled`].

use std::os::raw::c_int;

use tch::{Device, Kind};

unsafe extern "C" {
    fn vqtok_autocast_enter(device: c_int, dtype: c_int, enabled: bool) -> c_int;
    fn vqtok_autocast_exit(device: c_int, previous: c_int);
}

/// c10::DeviceType values.
fn device_type(device: Device) -> c_int {
    match device {
        Device::Cpu => 0,
        _ => 1,
    }
}

/// c10::ScalarType values of the kinds autocast can target.
fn scalar_type(kind: Kind) -> c_int {
    match kind {
        Kind::Half => 5,
        Kind::BFloat16 => 15,
        _ => 6,
    }
}

/// An autocast region; leaving it (drop) restores the previous state.
#[must_use = "autocast ends when the guard is dropped"]
pub struct Autocast {
    device: c_int,
    previous: c_int,
}

impl Autocast {
    /// Ops on `device` run in `kind` (bf16/fp16) where autocast's policy allows.
    pub fn enabled(device: Device, kind: Kind) -> Autocast {
        Self::enter(device, kind, true)
    }

    /// Turns autocast off on `device` inside an enabled region (fp32 islands).
    pub fn disabled(device: Device) -> Autocast {
        Self::enter(device, Kind::Float, false)
    }

    fn enter(device: Device, kind: Kind, on: bool) -> Autocast {
        let device = device_type(device);
        // SAFETY: the shim only reads and sets libtorch's thread-local autocast state.
        let previous = unsafe { vqtok_autocast_enter(device, scalar_type(kind), on) };
        Autocast { device, previous }
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        // SAFETY: restores the state captured by `enter` on this thread.
        unsafe { vqtok_autocast_exit(self.device, self.previous) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Tensor;

    // CPU autocast exercises the same shim as CUDA (only the device id differs).
    #[test]
    fn bf16_region_casts_matmuls_and_restores_on_drop() {
        let a = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
        {
            let _amp = Autocast::enabled(Device::Cpu, Kind::BFloat16);
            assert_eq!(a.matmul(&a).kind(), Kind::BFloat16);
            {
                let _fp32 = Autocast::disabled(Device::Cpu);
                assert_eq!(a.matmul(&a).kind(), Kind::Float);
            }
            assert_eq!(
                a.matmul(&a).kind(),
                Kind::BFloat16,
                "inner region restored the outer one"
            );
        }
        assert_eq!(a.matmul(&a).kind(), Kind::Float);
    }
}
