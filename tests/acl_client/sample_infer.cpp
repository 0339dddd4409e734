// sample_infer: a model-inference program written the way Ascend's AscendCL samples are written
// (a ModelProcess class, INFO_LOG/ERROR_LOG macros, init -> device/context/stream -> load -> describe ->
// datasets -> execute -> fetch -> teardown). It knows nothing about pymfn: it includes "acl/acl.h" and
// links -lascendcl (tests/test_acl_client.py builds it with `python -m pymfn acl-config` alone and runs it
// on pymfn's ACL emulator).
//
// usage: sample_infer <model.om> <input.bin> <count> <output prefix> [--batch N] [--inject-fault] [--keep-event]
//   input.bin   `count` samples back to back, each exactly the model's per-sample input size
//   writes      <prefix>.raw (the model's output bytes, valid rows only) and <prefix>.f32 (the same values
//               decoded to float32 with aclFloat16ToFloat when the output is float16)
//   --batch N   batch for a dynamic-batch model (default: the largest offered); a static model runs its own
//   --inject-fault  first runs one execute whose input is plain malloc memory (the device cannot read it)
//                   and checks that the exception callback reported it
//   --keep-event    "forgets" to destroy one event (to show the runtime's leak report)
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "acl/acl.h"

#define INFO_LOG(fmt, ...) fprintf(stdout, "[INFO]  " fmt "\n", ##__VA_ARGS__)
#define ERROR_LOG(fmt, ...) fprintf(stderr, "[ERROR] " fmt "\n", ##__VA_ARGS__)

typedef enum Result { SUCCESS = 0, FAILED = 1 } Result;

#define CHECK_ACL(call)                                                                     \
  do {                                                                                      \
    aclError ret_ = (call);                                                                 \
    if (ret_ != ACL_SUCCESS) {                                                              \
      ERROR_LOG("%s failed, errorCode is %d: %s", #call, static_cast<int>(ret_), aclGetRecentErrMsg()); \
      return FAILED;                                                                        \
    }                                                                                       \
  } while (0)

namespace {

std::atomic<int> g_exceptions{0};  // the callback may run on a runtime thread

void ExceptionCallback(aclrtExceptionInfo* info) {
  uint32_t deviceId = aclrtGetDeviceIdFromExceptionInfo(info);
  uint32_t streamId = aclrtGetStreamIdFromExceptionInfo(info);
  uint32_t taskId = aclrtGetTaskIdFromExceptionInfo(info);
  char opName[256] = {0};
  aclTensorDesc* inputDesc = nullptr;
  aclTensorDesc* outputDesc = nullptr;
  size_t inputCnt = 0;
  size_t outputCnt = 0;
  aclError ret = aclmdlCreateAndGetOpDesc(deviceId, streamId, taskId, opName, sizeof(opName), &inputDesc, &inputCnt,
                                          &outputDesc, &outputCnt);
  if (ret != ACL_SUCCESS) {
    ERROR_LOG("exception on device %u stream %u task %u, and its op description failed: %d", deviceId, streamId,
              taskId, static_cast<int>(ret));
    return;
  }
  ++g_exceptions;
  ERROR_LOG("exception: device %u stream %u task %u op %s, %zu inputs %zu outputs", deviceId, streamId, taskId, opName,
            inputCnt, outputCnt);
  for (size_t i = 0; i < inputCnt; ++i) {
    aclTensorDesc* d = aclGetTensorDescByIndex(inputDesc, i);
    ERROR_LOG("  input %zu: %s type %d, %zu dims, %zu bytes at %p", i, aclGetTensorDescName(d),
              static_cast<int>(aclGetTensorDescType(d)), aclGetTensorDescNumDims(d), aclGetTensorDescSize(d),
              aclGetTensorDescAddress(d));
  }
  aclDestroyTensorDesc(inputDesc);
  aclDestroyTensorDesc(outputDesc);
}

bool ReadFile(const std::string& path, std::vector<char>* data) {
  std::ifstream f(path.c_str(), std::ios::binary | std::ios::ate);
  if (!f) return false;
  std::streamsize n = f.tellg();
  f.seekg(0);
  data->resize(static_cast<size_t>(n));
  return n == 0 || static_cast<bool>(f.read(data->data(), n));
}

std::string DimsText(const aclmdlIODims& dims) {
  std::string s;
  for (size_t i = 0; i < dims.dimCount; ++i) s += (i ? "," : "") + std::to_string(dims.dims[i]);
  return s;
}

class ModelProcess {
 public:
  Result LoadModel(const char* path) {
    size_t workSize = 0;
    size_t weightSize = 0;
    CHECK_ACL(aclmdlQuerySize(path, &workSize, &weightSize));
    CHECK_ACL(aclrtMalloc(&workPtr_, workSize, ACL_MEM_MALLOC_HUGE_FIRST));
    CHECK_ACL(aclrtMalloc(&weightPtr_, weightSize, ACL_MEM_MALLOC_HUGE_FIRST));
    CHECK_ACL(aclmdlLoadFromFileWithMem(path, &modelId_, workPtr_, workSize, weightPtr_, weightSize));
    loaded_ = true;
    INFO_LOG("load model %s success, work %zu bytes, weight %zu bytes", path, workSize, weightSize);
    return SUCCESS;
  }

  Result CreateDesc() {
    modelDesc_ = aclmdlCreateDesc();
    if (modelDesc_ == nullptr) {
      ERROR_LOG("create model description failed");
      return FAILED;
    }
    CHECK_ACL(aclmdlGetDesc(modelDesc_, modelId_));
    size_t numInputs = aclmdlGetNumInputs(modelDesc_);
    size_t numOutputs = aclmdlGetNumOutputs(modelDesc_);
    for (size_t i = 0; i < numInputs; ++i) {
      aclmdlIODims dims;
      CHECK_ACL(aclmdlGetInputDims(modelDesc_, i, &dims));
      const char* name = aclmdlGetInputNameByIndex(modelDesc_, i);
      size_t byName = 0;
      CHECK_ACL(aclmdlGetInputIndexByName(modelDesc_, name, &byName));
      if (byName != i || std::strcmp(name, dims.name) != 0) {
        ERROR_LOG("input %zu: name lookup disagrees (%s -> %zu, dims name %s)", i, name, byName, dims.name);
        return FAILED;
      }
      INFO_LOG("input %zu %s: dims [%s] type %d format %d, %zu bytes", i, name, DimsText(dims).c_str(),
               static_cast<int>(aclmdlGetInputDataType(modelDesc_, i)), static_cast<int>(aclmdlGetInputFormat(modelDesc_, i)),
               aclmdlGetInputSizeByIndex(modelDesc_, i));
    }
    for (size_t i = 0; i < numOutputs; ++i) {
      aclmdlIODims dims;
      CHECK_ACL(aclmdlGetOutputDims(modelDesc_, i, &dims));
      const char* name = aclmdlGetOutputNameByIndex(modelDesc_, i);
      size_t byName = 0;
      CHECK_ACL(aclmdlGetOutputIndexByName(modelDesc_, name, &byName));
      if (byName != i) {
        ERROR_LOG("output %zu: name lookup gives %zu", i, byName);
        return FAILED;
      }
      INFO_LOG("output %zu %s: dims [%s] type %d format %d, %zu bytes", i, name, DimsText(dims).c_str(),
               static_cast<int>(aclmdlGetOutputDataType(modelDesc_, i)), static_cast<int>(aclmdlGetOutputFormat(modelDesc_, i)),
               aclmdlGetOutputSizeByIndex(modelDesc_, i));
    }
    return DescribeDynamic();
  }

  // Which kind of model this is: dynamic batch (an input named ACL_DYNAMIC_TENSOR_NAME and batch gears),
  // dynamic dims gears, dynamic image size, or static.
  Result DescribeDynamic() {
    aclmdlBatch batch;
    CHECK_ACL(aclmdlGetDynamicBatch(modelDesc_, &batch));
    size_t gearCount = 0;
    CHECK_ACL(aclmdlGetInputDynamicGearCount(modelDesc_, static_cast<size_t>(-1), &gearCount));
    aclmdlHW hw;
    CHECK_ACL(aclmdlGetDynamicHW(modelDesc_, static_cast<size_t>(-1), &hw));
    if (gearCount > 0 || hw.hwCount > 0) {
      ERROR_LOG("this sample handles static and dynamic-batch models only (%zu dims gears, %zu hw gears)", gearCount, hw.hwCount);
      return FAILED;
    }
    for (size_t i = 0; i < batch.batchCount; ++i) batches_.push_back(batch.batch[i]);
    if (!batches_.empty()) {
      CHECK_ACL(aclmdlGetInputIndexByName(modelDesc_, ACL_DYNAMIC_TENSOR_NAME, &dynamicIndex_));
      INFO_LOG("dynamic batch model: %zu gears, batch input at index %zu", batches_.size(), dynamicIndex_);
    } else {
      INFO_LOG("static model");
    }
    return SUCCESS;
  }

  // One device buffer per input/output (sizes from the description), wrapped in datasets, plus a tensor
  // description on every data input and output (the runtime reports executed output shapes there).
  Result CreateDatasets(bool deviceMode) {
    deviceMode_ = deviceMode;
    input_ = aclmdlCreateDataset();
    output_ = aclmdlCreateDataset();
    if (input_ == nullptr || output_ == nullptr) {
      ERROR_LOG("create dataset failed");
      return FAILED;
    }
    if (AddBuffers(input_, aclmdlGetNumInputs(modelDesc_), true) != SUCCESS) return FAILED;
    if (AddBuffers(output_, aclmdlGetNumOutputs(modelDesc_), false) != SUCCESS) return FAILED;
    for (size_t i = 0; i < aclmdlGetNumOutputs(modelDesc_); ++i) {
      int64_t placeholder = -1;
      aclTensorDesc* desc = aclCreateTensorDesc(aclmdlGetOutputDataType(modelDesc_, i), 1, &placeholder,
                                                aclmdlGetOutputFormat(modelDesc_, i));
      if (desc == nullptr) {
        ERROR_LOG("aclCreateTensorDesc failed: %s", aclGetRecentErrMsg());
        return FAILED;
      }
      aclError ret = aclmdlSetDatasetTensorDesc(output_, desc, i);
      aclDestroyTensorDesc(desc);  // the dataset keeps its own copy
      CHECK_ACL(ret);
    }
    return SUCCESS;
  }

  Result AddBuffers(aclmdlDataset* dataset, size_t count, bool isInput) {
    for (size_t i = 0; i < count; ++i) {
      size_t size = isInput ? aclmdlGetInputSizeByIndex(modelDesc_, i) : aclmdlGetOutputSizeByIndex(modelDesc_, i);
      void* dev = nullptr;
      CHECK_ACL(aclrtMalloc(&dev, size, ACL_MEM_MALLOC_NORMAL_ONLY));
      (isInput ? inputBufs_ : outputBufs_).push_back(dev);
      aclDataBuffer* buf = aclCreateDataBuffer(dev, size);
      if (buf == nullptr) {
        ERROR_LOG("aclCreateDataBuffer failed: %s", aclGetRecentErrMsg());
        return FAILED;
      }
      CHECK_ACL(aclmdlAddDatasetBuffer(dataset, buf));
    }
    return SUCCESS;
  }

  Result Execute(uint64_t batch, aclrtStream stream, aclrtEvent start, aclrtEvent end, float* ms) {
    if (!batches_.empty()) CHECK_ACL(aclmdlSetDynamicBatchSize(modelId_, input_, dynamicIndex_, batch));
    // The data input's actual shape, as a tensor description (checked by the runtime).
    aclmdlIODims dims;
    CHECK_ACL(aclmdlGetInputDims(modelDesc_, 0, &dims));
    if (dims.dims[0] == -1) dims.dims[0] = static_cast<int64_t>(batch);
    aclTensorDesc* inDesc = aclCreateTensorDesc(aclmdlGetInputDataType(modelDesc_, 0), static_cast<int>(dims.dimCount),
                                                dims.dims, aclmdlGetInputFormat(modelDesc_, 0));
    aclError ret = aclmdlSetDatasetTensorDesc(input_, inDesc, 0);
    aclDestroyTensorDesc(inDesc);
    CHECK_ACL(ret);
    CHECK_ACL(aclrtRecordEvent(start, stream));
    CHECK_ACL(aclmdlExecuteAsync(modelId_, input_, output_, stream));
    CHECK_ACL(aclrtRecordEvent(end, stream));
    CHECK_ACL(aclrtSynchronizeStreamWithTimeout(stream, 60000));
    CHECK_ACL(aclrtSynchronizeEvent(end));
    CHECK_ACL(aclrtEventElapsedTime(ms, start, end));
    aclTensorDesc* outDesc = aclmdlGetDatasetTensorDesc(output_, 0);
    int64_t rows = 0;
    CHECK_ACL(aclGetTensorDescDimV2(outDesc, 0, &rows));
    if (rows != static_cast<int64_t>(batch)) {
      ERROR_LOG("output shape says %lld rows, expected %llu", static_cast<long long>(rows), static_cast<unsigned long long>(batch));
      return FAILED;
    }
    return SUCCESS;
  }

  // Runs one execute whose input the device cannot read; the runtime must refuse it and report it to the
  // exception callback.
  Result InjectFault(aclrtStream stream) {
    size_t size = aclmdlGetInputSizeByIndex(modelDesc_, 0);
    std::vector<char> hostOnly(size);
    aclmdlDataset* bad = aclmdlCreateDataset();
    std::vector<aclDataBuffer*> bufs;
    for (size_t i = 0; i < aclmdlGetNumInputs(modelDesc_); ++i) {
      void* p = i == 0 ? static_cast<void*>(hostOnly.data()) : inputBufs_[i];
      bufs.push_back(aclCreateDataBuffer(p, aclmdlGetInputSizeByIndex(modelDesc_, i)));
      CHECK_ACL(aclmdlAddDatasetBuffer(bad, bufs.back()));
    }
    if (!batches_.empty()) CHECK_ACL(aclmdlSetDynamicBatchSize(modelId_, bad, dynamicIndex_, batches_[0]));
    const int before = g_exceptions.load();
    aclError ret = aclmdlExecuteAsync(modelId_, bad, output_, stream);
    if (ret == ACL_SUCCESS) ret = aclrtSynchronizeStream(stream);
    INFO_LOG("injected fault: execute returned %d (%s), %d exception report(s)", static_cast<int>(ret),
             aclGetRecentErrMsg(), g_exceptions.load() - before);
    for (aclDataBuffer* b : bufs) CHECK_ACL(aclDestroyDataBuffer(b));
    CHECK_ACL(aclmdlDestroyDataset(bad));
    return ret != ACL_SUCCESS && g_exceptions == before + 1 ? SUCCESS : FAILED;
  }

  void* InputBuffer() const { return inputBufs_[0]; }
  void* OutputBuffer() const { return outputBufs_[0]; }
  size_t InputSize() const { return aclmdlGetInputSizeByIndex(modelDesc_, 0); }
  size_t OutputSize() const { return aclmdlGetOutputSizeByIndex(modelDesc_, 0); }
  aclDataType OutputType() const { return aclmdlGetOutputDataType(modelDesc_, 0); }
  uint64_t MaxRows() const {
    if (batches_.empty()) {
      aclmdlIODims dims;
      return aclmdlGetInputDims(modelDesc_, 0, &dims) == ACL_SUCCESS ? static_cast<uint64_t>(dims.dims[0]) : 0;
    }
    uint64_t m = 0;
    for (uint64_t b : batches_) m = b > m ? b : m;
    return m;
  }
  const std::vector<uint64_t>& Batches() const { return batches_; }

  void Unload() {
    if (input_ != nullptr) DestroyDataset(input_);
    if (output_ != nullptr) DestroyDataset(output_);
    input_ = output_ = nullptr;
    for (void* p : inputBufs_) aclrtFree(p);
    for (void* p : outputBufs_) aclrtFree(p);
    inputBufs_.clear();
    outputBufs_.clear();
    if (modelDesc_ != nullptr) aclmdlDestroyDesc(modelDesc_);
    modelDesc_ = nullptr;
    if (loaded_) aclmdlUnload(modelId_);
    loaded_ = false;
    if (workPtr_ != nullptr) aclrtFree(workPtr_);
    if (weightPtr_ != nullptr) aclrtFree(weightPtr_);
    workPtr_ = weightPtr_ = nullptr;
  }

 private:
  static void DestroyDataset(aclmdlDataset* dataset) {
    for (size_t i = 0; i < aclmdlGetDatasetNumBuffers(dataset); ++i) aclDestroyDataBuffer(aclmdlGetDatasetBuffer(dataset, i));
    aclmdlDestroyDataset(dataset);
  }

  uint32_t modelId_ = 0;
  bool loaded_ = false;
  bool deviceMode_ = false;
  void* workPtr_ = nullptr;
  void* weightPtr_ = nullptr;
  aclmdlDesc* modelDesc_ = nullptr;
  aclmdlDataset* input_ = nullptr;
  aclmdlDataset* output_ = nullptr;
  std::vector<void*> inputBufs_;
  std::vector<void*> outputBufs_;
  std::vector<uint64_t> batches_;
  size_t dynamicIndex_ = 0;
};

struct Options {
  const char* model = nullptr;
  const char* input = nullptr;
  size_t count = 0;
  std::string prefix;
  uint64_t batch = 0;
  bool injectFault = false;
  bool keepEvent = false;
};

bool ParseArgs(int argc, char** argv, Options* o) {
  if (argc < 5) return false;
  o->model = argv[1];
  o->input = argv[2];
  o->count = static_cast<size_t>(std::strtoull(argv[3], nullptr, 10));
  o->prefix = argv[4];
  for (int i = 5; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--batch" && i + 1 < argc) o->batch = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--inject-fault") o->injectFault = true;
    else if (a == "--keep-event") o->keepEvent = true;
    else return false;
  }
  return o->count > 0;
}

// Smallest offered batch that holds `rows` (the tail of the input is padded up to it).
uint64_t GearFor(const std::vector<uint64_t>& gears, uint64_t rows) {
  uint64_t best = 0;
  for (uint64_t g : gears)
    if (g >= rows && (best == 0 || g < best)) best = g;
  return best;
}

class SampleApp {
 public:
  Result Init() {
    CHECK_ACL(aclInit(nullptr));
    initialised_ = true;
    int32_t major = 0, minor = 0, patch = 0;
    CHECK_ACL(aclrtGetVersion(&major, &minor, &patch));
    CHECK_ACL(aclrtSetDevice(deviceId_));
    deviceSet_ = true;
    CHECK_ACL(aclrtCreateContext(&context_, deviceId_));
    CHECK_ACL(aclrtCreateStream(&stream_));
    CHECK_ACL(aclrtGetRunMode(&runMode_));
    const char* soc = aclrtGetSocName();
    INFO_LOG("acl %d.%d.%d on %s, run mode %s", major, minor, patch, soc ? soc : "?",
             runMode_ == ACL_DEVICE ? "ACL_DEVICE" : "ACL_HOST");
    CHECK_ACL(aclrtSetExceptionInfoCallback(ExceptionCallback));
    CHECK_ACL(aclrtCreateEvent(&start_));
    CHECK_ACL(aclrtCreateEvent(&end_));
    return SUCCESS;
  }

  Result Run(const Options& o) {
    if (model_.LoadModel(o.model) != SUCCESS || model_.CreateDesc() != SUCCESS) return FAILED;
    if (model_.CreateDatasets(runMode_ == ACL_DEVICE) != SUCCESS) return FAILED;
    if (o.injectFault && model_.InjectFault(stream_) != SUCCESS) {
      ERROR_LOG("the injected fault was not reported as expected");
      return FAILED;
    }
    std::vector<char> input;
    if (!ReadFile(o.input, &input)) {
      ERROR_LOG("cannot read %s", o.input);
      return FAILED;
    }
    const uint64_t maxRows = model_.MaxRows();
    const size_t inRow = model_.InputSize() / maxRows;
    const size_t outRow = model_.OutputSize() / maxRows;
    if (input.size() != o.count * inRow) {
      ERROR_LOG("%s holds %zu bytes, %zu samples of %zu bytes need %zu", o.input, input.size(), o.count, inRow, o.count * inRow);
      return FAILED;
    }
    uint64_t batch = model_.Batches().empty() ? maxRows : (o.batch ? o.batch : maxRows);
    std::vector<char> raw(o.count * outRow);
    // ACL_HOST: stage through pinned host memory and copy; ACL_DEVICE: the CPU writes device memory directly.
    void* hostIn = nullptr;
    void* hostOut = nullptr;
    if (runMode_ == ACL_HOST) {
      CHECK_ACL(aclrtMallocHost(&hostIn, model_.InputSize()));
      CHECK_ACL(aclrtMallocHost(&hostOut, model_.OutputSize()));
    }
    double totalMs = 0;
    size_t runs = 0;
    for (size_t done = 0; done < o.count;) {
      uint64_t rows = o.count - done < batch ? o.count - done : batch;
      uint64_t gear = model_.Batches().empty() ? batch : GearFor(model_.Batches(), rows);
      if (gear == 0) {
        ERROR_LOG("no offered batch holds %llu rows", static_cast<unsigned long long>(rows));
        return FAILED;
      }
      void* stage = runMode_ == ACL_HOST ? hostIn : model_.InputBuffer();
      std::memset(stage, 0, gear * inRow);
      std::memcpy(stage, input.data() + done * inRow, rows * inRow);
      if (runMode_ == ACL_HOST)
        CHECK_ACL(aclrtMemcpy(model_.InputBuffer(), model_.InputSize(), hostIn, gear * inRow, ACL_MEMCPY_HOST_TO_DEVICE));
      float ms = 0;
      if (model_.Execute(gear, stream_, start_, end_, &ms) != SUCCESS) return FAILED;
      totalMs += ms;
      ++runs;
      const void* result = model_.OutputBuffer();
      if (runMode_ == ACL_HOST) {
        CHECK_ACL(aclrtMemcpyAsync(hostOut, model_.OutputSize(), model_.OutputBuffer(), gear * outRow,
                                   ACL_MEMCPY_DEVICE_TO_HOST, stream_));
        CHECK_ACL(aclrtSynchronizeStream(stream_));
        result = hostOut;
      }
      std::memcpy(raw.data() + done * outRow, result, rows * outRow);
      done += rows;
    }
    if (hostIn != nullptr) CHECK_ACL(aclrtFreeHost(hostIn));
    if (hostOut != nullptr) CHECK_ACL(aclrtFreeHost(hostOut));
    INFO_LOG("%zu executes, mean %.3f ms (event-timed)", runs, runs ? totalMs / runs : 0.0);
    return WriteOutputs(o.prefix, raw);
  }

  Result WriteOutputs(const std::string& prefix, const std::vector<char>& raw) {
    std::ofstream fr((prefix + ".raw").c_str(), std::ios::binary);
    fr.write(raw.data(), static_cast<std::streamsize>(raw.size()));
    std::vector<float> decoded;
    if (model_.OutputType() == ACL_FLOAT16) {
      const size_t n = raw.size() / sizeof(aclFloat16);
      for (size_t i = 0; i < n; ++i) {
        aclFloat16 h;
        std::memcpy(&h, raw.data() + i * sizeof h, sizeof h);
        decoded.push_back(aclFloat16ToFloat(h));
      }
    } else if (model_.OutputType() == ACL_FLOAT) {
      decoded.resize(raw.size() / sizeof(float));
      std::memcpy(decoded.data(), raw.data(), raw.size());
    }
    std::ofstream ff((prefix + ".f32").c_str(), std::ios::binary);
    ff.write(reinterpret_cast<const char*>(decoded.data()), static_cast<std::streamsize>(decoded.size() * sizeof(float)));
    if (!fr || !ff) {
      ERROR_LOG("cannot write %s.raw / .f32", prefix.c_str());
      return FAILED;
    }
    return SUCCESS;
  }

  void Destroy(bool keepEvent) {
    model_.Unload();
    if (start_ != nullptr) aclrtDestroyEvent(start_);
    if (end_ != nullptr && !keepEvent) aclrtDestroyEvent(end_);
    if (stream_ != nullptr) aclrtDestroyStream(stream_);
    if (context_ != nullptr) aclrtDestroyContext(context_);
    if (deviceSet_) aclrtResetDevice(deviceId_);
    if (initialised_) aclFinalize();
    INFO_LOG("end to finalize acl");
  }

 private:
  int32_t deviceId_ = 0;
  bool initialised_ = false;
  bool deviceSet_ = false;
  aclrtContext context_ = nullptr;
  aclrtStream stream_ = nullptr;
  aclrtRunMode runMode_ = ACL_HOST;
  aclrtEvent start_ = nullptr;
  aclrtEvent end_ = nullptr;
  ModelProcess model_;
};

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  if (!ParseArgs(argc, argv, &opts)) {
    ERROR_LOG("usage: %s <model.om> <input.bin> <count> <output prefix> [--batch N] [--inject-fault] [--keep-event]", argv[0]);
    return 2;
  }
  SampleApp app;
  Result ret = app.Init();
  if (ret == SUCCESS) ret = app.Run(opts);
  app.Destroy(opts.keepEvent);
  return ret == SUCCESS ? 0 : 1;
}
