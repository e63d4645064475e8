// Zero-copy hand-over of tch tensors to Python's torch (src/dist/group.rs).
// tch's Tensor::as_ptr() is a `torch::Tensor*` (= at::Tensor*). at::toDLPack returns a
// DLManagedTensor that holds a reference to the tensor's storage; Python's
// torch.from_dlpack(capsule) wraps the very same memory (no copy, no autograd history).
// Only ATen headers: the shim does not depend on any Python version.
#include <ATen/ATen.h>
#include <ATen/DLConvertor.h>

#include <string>

static thread_local std::string last_error;

extern "C" {

const char* vqtok_dlpack_last_error() { return last_error.c_str(); }

// A DLManagedTensor* (legacy, unversioned; capsule name "dltensor"), or nullptr on error.
// Whoever ends up owning it calls its deleter, which drops the reference on the storage.
void* vqtok_to_dlpack(const at::Tensor* t) {
  try {
    return at::toDLPack(*t);
  } catch (const std::exception& e) {
    last_error = e.what();
    return nullptr;
  }
}

}  // extern "C"
