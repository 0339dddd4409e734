// An engine that keeps copies of some of its requests: a wrapper over any Engine that records the inputs
// and outputs of a deterministic sample of the requests it serves. An audit can then run the recorded
// inputs again (an accuracy run after a performance run, like MLPerf LoadGen's compliance TEST01) and
// compare the outputs. A request outside the sample costs an atomic increment and a hash; everything
// else (inputs, outputs, batches, request slots, stage times) is the wrapped engine's.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/wrapped_engine.h"

namespace pymfn {

struct RecordingPlan {
  double fraction = 0.01;   // share of the requests recorded, in (0, 1]
  size_t max_records = 64;  // never more records than this (1..1,000,000)
  uint64_t seed = 0;        // the same seed picks the same request numbers
  size_t skip = 0;          // the first `skip` requests (a warm-up) are never recorded
};

// Throws InvalidArgument naming the field for a value outside its range (or not finite).
void check_recording_plan(const RecordingPlan& plan);

// Whether request number `request` (0-based over every execute() and start(), in call order) is in the
// plan's sample: past `skip`, and a splitmix64 hash of (seed, request) mapped to [0, 1) below `fraction`.
// max_records is applied on top of it, by the engine.
bool in_recording_sample(const RecordingPlan& plan, size_t request);

class RecordingEngine : public WrappedEngine {
 public:
  struct Record {
    size_t request = 0;  // the request's number
    size_t rows = 0;     // its batch rows
    // One buffer per model input / output: rows * that tensor's sample_bytes.
    std::vector<std::vector<uint8_t>> inputs, outputs;
  };

  // Throws InvalidArgument for a null engine or a plan out of range.
  RecordingEngine(std::shared_ptr<Engine> inner, const RecordingPlan& plan);

  void prepare(size_t batch_rows) override;
  // execute: inputs are copied before the wrapped execute(), outputs after it. start/wait: the request is
  // numbered and its inputs copied in start(), its outputs copied after the wrapped wait(). A request
  // whose wrapped call throws is not recorded.
  StageTimes execute(const IoBinding& binding) override;
  void start(size_t slot, const IoBinding& binding) override;
  StageTimes wait(size_t slot) override;
  // The wrapped engine's, plus "recording" ("fraction 0.01, max 64 records, seed 0, skip 0").
  std::map<std::string, std::string> properties() const override;

  // A copy of the records so far, in the order the requests completed.
  std::vector<Record> records() const;
  size_t requests_seen() const { return requests_.load(); }
  // Forgets the records and numbers requests from 0 again, so the same plan records the same request
  // numbers anew. Meant for between runs, with no request in flight.
  void clear();

  const RecordingPlan& plan() const { return plan_; }

 private:
  // A request started and not yet waited for; only touched by its slot's start()/wait() calls.
  struct Pending {
    bool recording = false;
    Record record;
    std::vector<void*> outputs;
  };

  // Numbers the request. When it is to be recorded, takes one of max_records' places, fills `record`'s
  // number, rows and inputs, and returns true.
  bool begin_record(const IoBinding& binding, Record* record);
  // Copies the outputs into `record` and keeps it.
  void finish_record(Record&& record, const std::vector<void*>& outputs);
  // Returns the place of a request that failed.
  void give_back();
  void read_sample_bytes();

  RecordingPlan plan_;
  // Read during requests, written only by the constructor and prepare().
  std::vector<size_t> input_bytes_, output_bytes_;
  std::vector<Pending> pending_;
  std::atomic<size_t> requests_{0};
  mutable std::mutex mu_;  // guards records_ and taken_
  std::vector<Record> records_;
  size_t taken_ = 0;  // places of max_records taken: records kept plus requests being recorded
};

}  // namespace pymfn
