// A work-alike of Huawei's msame for tests: folder mode only, built against csrc/engines/acl/acl_api.h and linked
// with pymfn's emulator libascendcl.so, so its outputs are computed for real and can be compared bit for bit
// with pymfn's ACL engine. Written from the behaviour documented in shared/docs/ascend.md and msame's public
// logs, not from msame's source:
//
//   * flags --model (must contain ".om"), --input (a folder), --output, --outfmt (BIN only here), --device,
//     --loop (ignored in folder mode);
//   * the first input folder is scanned (dot-files skipped), names sorted in plain byte order
//     ("10.bin" before "2.bin"); each file's size goes to the model unchecked;
//   * outputs go to <output>/<YYYYMD_H_M_S_usec>/<name up to its last dot>_output_<k>.bin, the whole output
//     buffer of each execute;
//   * ACL_HOST run mode: file -> aclrtMallocHost -> aclrtMemcpy HOST_TO_DEVICE; ACL_DEVICE: straight into
//     aclrtMalloc'd memory;
//   * gettimeofday around one synchronous aclmdlExecute (the "model execute success" line is printed inside
//     the timed region, as msame's Execute() does); per run "Inference time: <t>ms" (ostream default:
//     6 significant digits); "Inference average time : %.2f ms" and, with more than one success,
//     "Inference average time without first time: %.2f ms" (first = the execute of the first file in the
//     sorted order);
//   * a failed execute prints [ERROR] lines and moves on WITHOUT destroying its input dataset (msame's known
//     bug): the next file's buffer is appended to it, so every later execute fails too, and msame still
//     exits 0 - except when the failure is at the second file, where it gives up with exit code 1.
//   * an empty input file: "[ERROR] binfile is empty", exit 1.
//
// Test switches (not msame's), in the environment: PYMFN_MSAME_DOUBLE_FAULT=
//   leak            never releases the output dataset, its buffers and device memory (pymfn's emulator names
//                   them at aclFinalize);
//   teardown-error  destroys the stream twice at teardown: the second call fails and prints an [ERROR] line
//                   after the summary, outside the timed run.
#include <dirent.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "engines/acl/acl_api.h"

namespace {

// msame's INFO_LOG / ERROR_LOG: one tagged line on stdout.
__attribute__((format(printf, 2, 3))) void log_line(const char* tag, const char* fmt, ...) {
  std::fputs(tag, stdout);
  va_list args;
  va_start(args, fmt);
  std::vprintf(fmt, args);
  va_end(args);
  std::fputc('\n', stdout);
}

#define INFO_LOG(...) log_line("[INFO] ", __VA_ARGS__)
#define ERROR_LOG(...) log_line("[ERROR] ", __VA_ARGS__)

constexpr int kFailed = 1;

struct Options {
  std::string model, input, output, outfmt = "BIN";
  int device = 0;
};

bool parse_args(int argc, char** argv, Options* o) {
  std::map<std::string, std::string> kv;
  for (int i = 1; i + 1 < argc; i += 2) kv[argv[i]] = argv[i + 1];
  if (argc % 2 == 0) {
    ERROR_LOG("unknown paramenter");
    return false;
  }
  o->model = kv["--model"];
  o->input = kv["--input"];
  o->output = kv["--output"];
  if (kv.count("--outfmt")) o->outfmt = kv["--outfmt"];
  if (kv.count("--device")) o->device = std::atoi(kv["--device"].c_str());
  if (o->model.find(".om") == std::string::npos) {
    ERROR_LOG("input model file type is not .om , please check your model type!");
    return false;
  }
  if (o->input.empty() || o->input.find(".bin") != std::string::npos) {
    ERROR_LOG("this msame test double runs folder mode only (--input <folder>)");
    return false;
  }
  if (o->outfmt == "TXT") {
    ERROR_LOG("this msame test double writes BIN outputs only");
    return false;
  }
  return true;
}

std::string timestamp_folder_name() {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  std::tm t{};
  localtime_r(&tv.tv_sec, &t);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%d%d%d_%d_%d_%d_%ld", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour,
                t.tm_min, t.tm_sec, static_cast<long>(tv.tv_usec));
  return buf;
}

std::vector<std::string> scan_folder(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Reads a whole file into memory the model can take: device memory (ACL_DEVICE) or a host-to-device copy
// through pinned host memory (ACL_HOST). nullptr after an [ERROR] line.
void* device_buffer_of_file(const std::string& path, bool device_mode, size_t* size) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    ERROR_LOG("open file %s failed", path.c_str());
    return nullptr;
  }
  f.seekg(0, std::ios::end);
  const auto len = static_cast<size_t>(f.tellg());
  if (len == 0) {
    ERROR_LOG("binfile is empty, filename is %s", path.c_str());
    return nullptr;
  }
  f.seekg(0, std::ios::beg);
  void* dev = nullptr;
  if (aclrtMalloc(&dev, len, ACL_MEM_MALLOC_NORMAL_ONLY) != ACL_SUCCESS) {
    ERROR_LOG("malloc device buffer failed. size is %zu", len);
    return nullptr;
  }
  if (device_mode) {
    f.read(static_cast<char*>(dev), static_cast<std::streamsize>(len));
  } else {
    void* host = nullptr;
    if (aclrtMallocHost(&host, len) != ACL_SUCCESS) {
      ERROR_LOG("malloc binFileBufferData failed");
      aclrtFree(dev);
      return nullptr;
    }
    f.read(static_cast<char*>(host), static_cast<std::streamsize>(len));
    const aclError rc = aclrtMemcpy(dev, len, host, len, ACL_MEMCPY_HOST_TO_DEVICE);
    aclrtFreeHost(host);
    if (rc != ACL_SUCCESS) {
      ERROR_LOG("memcpy failed. device buffer size is %zu, input host buffer size is %zu", len, len);
      aclrtFree(dev);
      return nullptr;
    }
  }
  *size = len;
  return dev;
}

// The PYMFN_MSAME_DOUBLE_FAULT switch, checked against the known values.
bool fault(const char* name) {
  const char* v = std::getenv("PYMFN_MSAME_DOUBLE_FAULT");
  return v && std::strcmp(v, name) == 0;
}

class Model {
 public:
  ~Model() {
    destroy_input();
    if (fault("leak")) {  // forgotten: the emulator reports them at aclFinalize
      out_mem_.clear();
      output_ = nullptr;
    }
    for (void* p : out_mem_) aclrtFree(p);
    if (output_) {
      for (size_t i = 0; i < aclmdlGetDatasetNumBuffers(output_); ++i)
        aclDestroyDataBuffer(aclmdlGetDatasetBuffer(output_, i));
      aclmdlDestroyDataset(output_);
    }
    if (desc_) aclmdlDestroyDesc(desc_);
    if (loaded_) {
      aclmdlUnload(id_);
      INFO_LOG("unload model success, model Id is %u", id_);
    }
  }

  bool load(const std::string& path) {
    if (aclmdlLoadFromFile(path.c_str(), &id_) != ACL_SUCCESS) {
      ERROR_LOG("load model from file failed, model file is %s", path.c_str());
      return false;
    }
    loaded_ = true;
    INFO_LOG("load model %s success", path.c_str());
    desc_ = aclmdlCreateDesc();
    if (!desc_ || aclmdlGetDesc(desc_, id_) != ACL_SUCCESS) {
      ERROR_LOG("get model description failed");
      return false;
    }
    INFO_LOG("create model description success");
    INFO_LOG("get input dynamic gear count success");
    return true;
  }

  bool create_output() {
    output_ = aclmdlCreateDataset();
    for (size_t i = 0; i < aclmdlGetNumOutputs(desc_); ++i) {
      const size_t size = aclmdlGetOutputSizeByIndex(desc_, i);
      void* mem = nullptr;
      if (aclrtMalloc(&mem, size, ACL_MEM_MALLOC_NORMAL_ONLY) != ACL_SUCCESS) {
        ERROR_LOG("can't malloc buffer, size is %zu, create output failed", size);
        return false;
      }
      out_mem_.push_back(mem);
      aclmdlAddDatasetBuffer(output_, aclCreateDataBuffer(mem, size));
    }
    INFO_LOG("create model output success");
    return true;
  }

  // Appends one input buffer (msame's CreateInput: the dataset is created on first use).
  void add_input(void* mem, size_t size) {
    if (!input_) input_ = aclmdlCreateDataset();
    aclmdlAddDatasetBuffer(input_, aclCreateDataBuffer(mem, size));
  }

  bool execute() {
    if (aclmdlExecute(id_, input_, output_) != ACL_SUCCESS) {
      ERROR_LOG("execute model failed, modelId is %u", id_);
      return false;
    }
    INFO_LOG("model execute success");
    return true;
  }

  void write_outputs(const std::string& run_dir, const std::string& stem, bool device_mode) {
    for (size_t i = 0; i < aclmdlGetDatasetNumBuffers(output_); ++i) {
      aclDataBuffer* b = aclmdlGetDatasetBuffer(output_, i);
      const size_t len = aclGetDataBufferSizeV2(b);
      std::vector<char> host(len);
      if (device_mode) {
        std::memcpy(host.data(), aclGetDataBufferAddr(b), len);
      } else if (aclrtMemcpy(host.data(), len, aclGetDataBufferAddr(b), len, ACL_MEMCPY_DEVICE_TO_HOST) !=
                 ACL_SUCCESS) {
        ERROR_LOG("aclrtMemcpy failed");
        return;
      }
      std::ofstream out(run_dir + "/" + stem + "_output_" + std::to_string(i) + ".bin", std::ios::binary);
      out.write(host.data(), static_cast<std::streamsize>(len));
    }
    INFO_LOG("output data success");
  }

  void destroy_input() {
    if (!input_) return;
    for (size_t i = 0; i < aclmdlGetDatasetNumBuffers(input_); ++i) {
      aclDataBuffer* b = aclmdlGetDatasetBuffer(input_, i);
      aclrtFree(aclGetDataBufferAddr(b));
      aclDestroyDataBuffer(b);
    }
    aclmdlDestroyDataset(input_);
    input_ = nullptr;
  }

 private:
  uint32_t id_ = 0;
  bool loaded_ = false;
  aclmdlDesc* desc_ = nullptr;
  aclmdlDataset* input_ = nullptr;
  aclmdlDataset* output_ = nullptr;
  std::vector<void*> out_mem_;
};

int process(const Options& o, bool device_mode) {
  Model model;
  if (!model.load(o.model) || !model.create_output()) return kFailed;
  mkdir(o.output.c_str(), 0775);
  const std::string run_dir = o.output + "/" + timestamp_folder_name();
  std::cout << run_dir << std::endl;
  if (mkdir(run_dir.c_str(), 0775) != 0) {
    ERROR_LOG("current user does not have permission");
    return 0;  // msame exit(0)s here
  }
  const std::vector<std::string> names = scan_folder(o.input);
  if (names.empty()) std::printf("[ERROR] No file in the directory[%s]", o.input.c_str());
  int successes = 0;
  float first_time = 0, total_time = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    INFO_LOG("start to process file:%s/%s", o.input.c_str(), names[i].c_str());
    size_t size = 0;
    void* mem = device_buffer_of_file(o.input + "/" + names[i], device_mode, &size);
    if (!mem) {
      ERROR_LOG("get pic device buffer failed,index is 0");
      return kFailed;
    }
    model.add_input(mem, size);
    timeval begin{}, end{};
    gettimeofday(&begin, nullptr);
    const bool ok = model.execute();
    gettimeofday(&end, nullptr);
    if (!ok) {
      ERROR_LOG("model execute failed");
      if (i == 1) return kFailed;
      continue;  // the failed input stays in the dataset
    }
    const float cost = 1000 * (end.tv_sec - begin.tv_sec) + (end.tv_usec - begin.tv_usec) / 1000.000;
    if (i == 0) first_time = cost;
    std::cout << "Inference time: " << cost << "ms" << std::endl;
    ++successes;
    total_time += cost;
    const std::string stem = names[i].substr(0, names[i].find_last_of('.'));
    model.write_outputs(run_dir, stem, device_mode);
    model.destroy_input();
  }
  std::printf("Inference average time : %.2f ms\n", total_time / successes);
  if (successes > 1)
    std::printf("Inference average time without first time: %.2f ms\n", (total_time - first_time) / (successes - 1));
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const char* f = std::getenv("PYMFN_MSAME_DOUBLE_FAULT");
  if (f && *f && !fault("leak") && !fault("teardown-error")) {
    ERROR_LOG("PYMFN_MSAME_DOUBLE_FAULT=%s: expected leak or teardown-error", f);
    return kFailed;
  }
  Options o;
  if (!parse_args(argc, argv, &o)) return 0;  // msame exit(0)s on bad parameters
  if (aclInit(nullptr) != ACL_SUCCESS) {
    ERROR_LOG("acl init failed");
    ERROR_LOG("Sample init resource failed.");
    return kFailed;
  }
  INFO_LOG("acl init success");
  if (aclrtSetDevice(o.device) != ACL_SUCCESS) {
    std::cout << aclGetRecentErrMsg() << std::endl;
    ERROR_LOG("acl open device %d failed", o.device);
    ERROR_LOG("Sample init resource failed.");
    aclFinalize();
    return kFailed;
  }
  INFO_LOG("open device %d success", o.device);
  aclrtContext ctx = nullptr;
  aclrtStream stream = nullptr;
  aclrtCreateContext(&ctx, o.device);
  INFO_LOG("create context success");
  aclrtCreateStream(&stream);
  INFO_LOG("create stream success");
  aclrtRunMode mode = ACL_HOST;
  aclrtGetRunMode(&mode);
  INFO_LOG("get run mode success");
  const int rc = process(o, mode == ACL_DEVICE);
  if (rc != 0) {
    ERROR_LOG("Sample process failed.");
  } else {
    INFO_LOG("Execute sample success.");
  }
  aclrtDestroyStream(stream);
  if (fault("teardown-error") && aclrtDestroyStream(stream) != ACL_SUCCESS)
    ERROR_LOG("destroy stream failed: %s", aclGetRecentErrMsg());
  INFO_LOG("end to destroy stream");
  aclrtDestroyContext(ctx);
  INFO_LOG("end to destroy context");
  aclrtResetDevice(o.device);
  INFO_LOG("end to reset device is %d", o.device);
  aclFinalize();
  INFO_LOG("end to finalize acl");
  return rc;
}
