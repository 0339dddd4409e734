// Reading OpenVINO's execution graph (CompiledModel::get_runtime_model()): what the OpenVINO engine and the
// ACL emulator both report about the precision that really ran. Header-only: the two link OpenVINO separately.
#pragma once
#include <exception>
#include <string>

#include <openvino/openvino.hpp>

namespace pymfn {
namespace exec_graph {

// Layers that hold the multiply-adds; their runtime precision is the precision that "ran".
inline bool is_compute_layer(const std::string& layer_type) {
  return layer_type == "Convolution" || layer_type == "GroupConvolution" || layer_type == "Deconvolution" ||
         layer_type == "FullyConnected" || layer_type == "MatMul";
}

// A runtime-info entry of an execution-graph node as text ("layerType", "runtimePrecision"); "" when absent.
inline std::string rt_string(const ov::Node& node, const char* key) {
  const auto& rt = node.get_rt_info();
  const auto it = rt.find(key);
  if (it == rt.end()) return "";
  try {
    return it->second.as<std::string>();
  } catch (const std::exception&) {
    return "";
  }
}

}  // namespace exec_graph
}  // namespace pymfn
