// `param.grad = view` for tch tensors (src/optim/adam.rs): tch has no setter for `.grad`.
// Adam makes every parameter's gradient a view of one flat buffer; backward then adds into
// the buffer in place (AccumulateGrad accumulates into a defined `.grad` when it builds no
// graph), so the update and a data-parallel all-reduce use the buffer as is, with no
// per-step concatenation of hundreds of gradients (DDP's gradient_as_bucket_view).
#include <ATen/ATen.h>

#include <string>

static thread_local std::string last_error;

extern "C" {

const char* vqtok_grad_last_error() { return last_error.c_str(); }

// 0 on success, -1 on error (vqtok_grad_last_error says why).
int vqtok_set_grad(at::Tensor* param, const at::Tensor* grad) {
  try {
    param->mutable_grad() = *grad;
    return 0;
  } catch (const std::exception& e) {
    last_error = e.what();
    return -1;
  }
}

}  // extern "C"
