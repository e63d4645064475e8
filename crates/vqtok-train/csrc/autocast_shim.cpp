// bf16 autocast for tch: tch only exposes CUDA fp16 autocast, so this shim wraps
// libtorch's generic at::autocast state functions (see ../shared/toolchain.md).
// Only the two small c10 enum headers are included, to keep the build fast; the
// declarations below match ATen/autocast_mode.h of torch 2.11.
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

namespace at::autocast {
bool is_autocast_enabled(c10::DeviceType device_type);
void set_autocast_enabled(c10::DeviceType device_type, bool enabled);
c10::ScalarType get_autocast_dtype(c10::DeviceType device_type);
void set_autocast_dtype(c10::DeviceType device_type, c10::ScalarType dtype);
void clear_cache();
int increment_nesting();
int decrement_nesting();
}  // namespace at::autocast

extern "C" {

// Enables autocast to `dtype` on `device`; returns the previous (enabled, dtype) packed
// as enabled * 256 + dtype so the caller can restore it.
int vqtok_autocast_enter(int device, int dtype, bool enabled) {
  auto d = static_cast<c10::DeviceType>(device);
  int previous = (at::autocast::is_autocast_enabled(d) ? 256 : 0) +
                 static_cast<int>(at::autocast::get_autocast_dtype(d));
  at::autocast::set_autocast_dtype(d, static_cast<c10::ScalarType>(dtype));
  at::autocast::set_autocast_enabled(d, enabled);
  at::autocast::increment_nesting();
  return previous;
}

// Restores the state returned by vqtok_autocast_enter; drops the cast cache when
// the outermost region ends (as torch.autocast's __exit__ does).
void vqtok_autocast_exit(int device, int previous) {
  auto d = static_cast<c10::DeviceType>(device);
  if (at::autocast::decrement_nesting() == 0) {
    at::autocast::clear_cache();
  }
  at::autocast::set_autocast_enabled(d, previous >= 256);
  at::autocast::set_autocast_dtype(d, static_cast<c10::ScalarType>(previous % 256));
}
}
