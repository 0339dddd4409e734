// Typed errors of the native core. The binding layer maps each class to its own Python exception
// (see csrc/bindings/module.cpp), so callers can tell a bad file from a failing engine.
#pragma once
#include <stdexcept>
#include <string>

namespace pymfn {

// Base of every error the core throws on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A caller-supplied value is out of range or inconsistent (batch size 0, unknown precision...).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// A file or folder given as input is unusable: missing, unreadable, empty, wrong size, bad header.
// `path()` names it; what() already contains it.
class InputError : public Error {
 public:
  // Tag for messages that already name the input in their own words ("dataset npy x.npy: ..."), where
  // the usual "<path>: " prefix would repeat it.
  struct WholeMessage {};

  InputError(const std::string& path, const std::string& what)
      : Error(path + ": " + what), path_(path) {}
  InputError(const std::string& path, const std::string& message, WholeMessage)
      : Error(message), path_(path) {}
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Data does not fit what the model expects (size, dtype or shape mismatch).
class ShapeMismatch : public InputError {
 public:
  using InputError::InputError;
};

// A packed file or om file whose header is malformed or whose length disagrees with the header.
class FormatError : public InputError {
 public:
  using InputError::InputError;
};

// A StopFlag ended a call whose partial result would be of no use (infer_all's half pass). Runs that
// can keep what they measured (run_benchmark, the scenarios) return it instead of throwing this.
class Interrupted : public Error {
 public:
  using Error::Error;
};

// An engine failed to load or execute a model.
class EngineError : public Error {
 public:
  using Error::Error;
};

// An AscendCL call failed: carries the numeric code, its symbolic name and aclGetRecentErrMsg().
class AclError : public EngineError {
 public:
  AclError(const std::string& call, int code, const std::string& code_name, const std::string& recent_msg)
      : EngineError(call + " failed with ACL error " + std::to_string(code) + " (" + code_name + ")" +
                    (recent_msg.empty() ? std::string() : ": " + recent_msg)),
        call_(call), code_(code), code_name_(code_name), recent_msg_(recent_msg) {}
  const std::string& call() const { return call_; }
  int code() const { return code_; }
  const std::string& code_name() const { return code_name_; }
  const std::string& recent_msg() const { return recent_msg_; }

 private:
  std::string call_;
  int code_;
  std::string code_name_;
  std::string recent_msg_;
};

}  // namespace pymfn
