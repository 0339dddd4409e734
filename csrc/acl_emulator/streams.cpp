// ACL emulator, streams, events and exception callbacks: everything that happens "later" on the device.
//
// ================================================================ CONTRACT (streams, events, exceptions)
// * Every stream owns one worker thread that runs its queued work in order (aclmdlExecuteAsync,
//   aclrtMemcpyAsync, aclrtRecordEvent). Queuing validates the arguments at once (failing immediately,
//   like the real enqueue). Stream calls need a current context (107002); a stream used from another
//   context than its own -> 107003; an unknown stream handle -> 100000. A NULL stream is the current
//   context's default stream (created on first use, finished and released with its context, never a leak;
//   aclrtDestroyStream(NULL) -> 100000).
// * aclrtSynchronizeStream waits for the queue and returns the first error the worker hit since the last
//   synchronize (its message becomes the caller's aclGetRecentErrMsg). aclrtSynchronizeStreamWithTimeout:
//   timeout in ms, -1 = for ever, 0 = just check, < -1 -> 100000; work still running when it expires ->
//   507046 (the queue keeps its error for the next synchronize). aclrtSynchronizeDevice drains every stream
//   of the current context's device. pymfnEmuPauseStream holds a worker so tests can keep work queued.
// * Events belong to the context they were created in. aclrtRecordEvent queues a timestamp on the stream
//   (event and stream of different contexts -> 107003); the event is complete once its MOST RECENT record
//   was reached. aclrtQueryEventStatus: COMPLETE / NOT_READY (never recorded: NOT_READY).
//   aclrtSynchronizeEvent waits for that record (never recorded: returns at once); ...WithTimeout like the
//   stream's (-> 507047). aclrtEventElapsedTime(ms, start, end): milliseconds between the two records' host
//   timestamps (steady clock, taken when the stream's worker reached them: with work queued between them it
//   is the emulator's host execution time, not an NPU figure); an event never recorded -> 107006, a record
//   not yet reached -> 507006 (synchronize first), end before start -> 107007. Destroying an event another
//   thread waits on wakes it with 100000.
// * Exception callback (aclrtSetExceptionInfoCallback; NULL clears it; process-wide, cleared by aclFinalize):
//   called once per failed task (execute.cpp says which failures), on the thread that ran the task, before
//   the failure is returned. The aclrtExceptionInfo it gets carries the device, stream and task ids, the
//   launching thread's id and the error code; aclrtGet...FromExceptionInfo return 0xFFFFFFFF for anything
//   else than such a pointer. The emulator remembers the last 64 failures of the session:
//   aclmdlCreateAndGetOpDesc(device, stream, task, ...) describes one (unknown triple -> 100000; opNameLen not
//   larger than the name -> 100000) as the model's name and arrays of input / output tensor descriptions
//   (executed shapes, the buffer addresses launched), which the caller releases with aclDestroyTensorDesc.
// ================================================================
#include <algorithm>
#include <cstring>
#include <system_error>

#include "acl_emulator/state.h"

namespace pymfn_emu {

constexpr size_t kRememberedExceptions = 64;
constexpr uint32_t kNoValue = 0xFFFFFFFFu;

// ---------------------------------------------------------------- Stream
void Stream::loop() {
  std::unique_lock<std::mutex> lk(mu);
  for (;;) {
    cv.wait(lk, [&] { return stop || (!queue.empty() && !paused); });
    if (queue.empty() && stop) return;
    Task t = std::move(queue.front());
    queue.pop_front();
    busy = true;
    lk.unlock();
    std::string msg;
    aclError rc = t.run(&msg);
    lk.lock();
    busy = false;
    if (rc != ACL_SUCCESS && first_error == ACL_SUCCESS) {
      first_error = rc;
      first_message = msg;
    }
    if (queue.empty()) idle.notify_all();
  }
}

void Stream::push(Task t) {
  {
    std::lock_guard<std::mutex> lk(mu);
    queue.push_back(std::move(t));
  }
  cv.notify_one();
}

aclError Stream::drain(std::string* msg, int32_t timeout_ms, bool* timed_out) {
  std::unique_lock<std::mutex> lk(mu);
  auto done = [&] { return queue.empty() && !busy; };
  if (timeout_ms < 0) {
    idle.wait(lk, done);
  } else if (!idle.wait_for(lk, std::chrono::milliseconds(timeout_ms), done)) {
    if (timed_out) *timed_out = true;
    return ACL_SUCCESS;
  }
  aclError rc = first_error;
  *msg = first_message;
  first_error = ACL_SUCCESS;
  first_message.clear();
  return rc;
}

void Stream::set_paused(bool p) {
  {
    std::lock_guard<std::mutex> lk(mu);
    paused = p;
  }
  cv.notify_one();
}

void Stream::shutdown() {
  {
    std::lock_guard<std::mutex> lk(mu);
    stop = true;
    paused = false;
  }
  cv.notify_one();
  if (worker.joinable()) worker.join();
}

void retire_streams(const std::vector<Stream*>& streams) {
  for (Stream* s : streams) {
    s->shutdown();
    delete s;
  }
}

namespace {

// A stream with its worker running, or nullptr with the failure recorded (g_mu held).
Stream* start_stream(const char* fn, Context* ctx, uint32_t id) {
  auto* s = new Stream();
  s->ctx = ctx;
  s->id = id;
  try {
    s->worker = std::thread([s] { s->loop(); });
  } catch (const std::system_error& e) {
    delete s;
    fail(ACL_ERROR_RT_FAILURE, fn, std::string("cannot start the stream's worker thread: ") + e.what());
    return nullptr;
  }
  return s;
}

// A stream handle for synchronize/destroy: NULL is the current context's default stream; an explicit
// stream may be used from any thread (g_mu held).
aclError lookup_stream(const char* fn, aclrtStream handle, Stream** out) {
  if (handle) {
    auto* s = static_cast<Stream*>(handle);
    if (!g.streams.count(s)) return fail(ACL_ERROR_INVALID_PARAM, fn, "not a live stream");
    *out = s;
    return ACL_SUCCESS;
  }
  EMU_CHECK(need_ctx(fn));
  if (!t_ctx->default_stream) {
    t_ctx->default_stream = start_stream(fn, t_ctx, t_ctx->default_stream_id);
    if (!t_ctx->default_stream) return ACL_ERROR_RT_FAILURE;
  }
  *out = t_ctx->default_stream;
  return ACL_SUCCESS;
}

std::shared_ptr<Event> find_event(aclrtEvent event) {
  auto it = g.events.find(static_cast<Event*>(event));
  return it == g.events.end() ? nullptr : it->second;
}

aclError live_event(const char* fn, aclrtEvent event, std::shared_ptr<Event>* out) {
  EMU_CHECK(need_init(fn));
  *out = find_event(event);
  if (!*out) return fail(ACL_ERROR_INVALID_PARAM, fn, event ? "not a live event" : "event is NULL");
  return ACL_SUCCESS;
}

aclError check_timeout(const char* fn, int32_t timeout) {
  if (timeout < -1)
    return fail(ACL_ERROR_INVALID_PARAM, fn, "timeout " + std::to_string(timeout) + " ms: expected -1 (wait for ever), 0 or more");
  return ACL_SUCCESS;
}

// Waits until the event's most recent record (as of the call) was reached. unique_lock on g_mu held.
aclError wait_event(const char* fn, std::unique_lock<std::mutex>& lk, const std::shared_ptr<Event>& ev, int32_t timeout) {
  const uint64_t target = ev->recorded;
  Event* key = ev.get();
  auto done = [&] { return !g.initialised || !g.events.count(key) || ev->completed >= target; };
  if (timeout < 0) {
    g_event_cv.wait(lk, done);
  } else if (!g_event_cv.wait_for(lk, std::chrono::milliseconds(timeout), done)) {
    return fail(ACL_ERROR_RT_EVENT_SYNC_TIMEOUT, fn, "the event's record was not reached within " + std::to_string(timeout) + " ms");
  }
  if (!g.initialised || !g.events.count(key))
    return fail(ACL_ERROR_INVALID_PARAM, fn, "the event was destroyed (or ACL finalized) while waiting");
  return ACL_SUCCESS;
}

// A recorded-and-reached event's timestamp, or the reason there is none (g_mu held).
aclError event_stamp(const char* fn, const char* which, const Event& e, std::chrono::steady_clock::time_point* t) {
  if (e.recorded == 0)
    return fail(ACL_ERROR_RT_EVENT_TIMESTAMP_INVALID, fn, std::string("the ") + which + " event was never recorded (aclrtRecordEvent)");
  if (e.completed < e.recorded)
    return fail(ACL_ERROR_RT_EVENT_NOT_COMPLETE, fn,
                std::string("the ") + which + " event's record was not reached yet: aclrtSynchronizeEvent or aclrtSynchronizeStream first");
  *t = e.stamp;
  return ACL_SUCCESS;
}

const rtExceptionInfo* find_exception(const aclrtExceptionInfo* info) {
  for (const auto& e : g.exceptions)
    if (e.get() == info) return e.get();
  return nullptr;
}

template <typename F>
uint32_t exception_field(const aclrtExceptionInfo* info, F field) {
  std::lock_guard<std::mutex> lk(g_mu);
  const rtExceptionInfo* e = find_exception(info);
  return e ? field(*e) : kNoValue;
}

// A registered copy of descriptions as an array the client releases with aclDestroyTensorDesc (g_mu held).
aclTensorDesc* hand_out_descs(const std::vector<aclTensorDesc>& v) {
  auto* arr = new aclTensorDesc[v.size()];
  std::copy(v.begin(), v.end(), arr);
  register_tensor_descs(arr, v.size(), false);
  return arr;
}

}  // namespace

aclError resolve_stream(const char* fn, aclrtStream handle, Stream** out) {
  EMU_CHECK(need_ctx(fn));
  EMU_CHECK(lookup_stream(fn, handle, out));
  if ((*out)->ctx != t_ctx) return fail(ACL_ERROR_RT_STREAM_CONTEXT, fn, "the stream belongs to another context");
  return ACL_SUCCESS;
}

void next_sync_task(uint32_t* stream_id, uint32_t* task_id) {
  *stream_id = t_ctx->default_stream_id;
  *task_id = t_ctx->sync_tasks++;
}

std::unique_ptr<rtExceptionInfo> describe_failed_task(const Model& m, const std::vector<BufView>& in,
                                                      const std::vector<BufView>& out, uint64_t rows,
                                                      uint32_t stream_id, uint32_t task_id, aclError code) {
  auto info = std::make_unique<rtExceptionInfo>();
  info->task_id = task_id;
  info->stream_id = stream_id;
  info->device_id = m.ctx ? static_cast<uint32_t>(m.ctx->device) : 0;
  info->error_code = static_cast<uint32_t>(code);
  info->op_name = m.om_name.empty() ? "model_" + std::to_string(m.id) : m.om_name;
  auto describe = [&](const std::vector<IoInfo>& ios, const std::vector<BufView>& views, std::vector<aclTensorDesc>* to) {
    for (size_t i = 0; i < ios.size(); ++i) {
      aclTensorDesc d;
      d.dtype = ios[i].dtype;
      d.format = ios[i].format;
      d.dims = ios[i].dims;
      if (!d.dims.empty() && d.dims[0] == -1) d.dims[0] = static_cast<int64_t>(rows);
      d.name = ios[i].name;
      d.address = i < views.size() ? views[i].data : nullptr;
      to->push_back(std::move(d));
    }
  };
  describe(m.inputs, in, &info->inputs);
  describe(m.outputs, out, &info->outputs);
  return info;
}

void raise_exception(std::unique_ptr<rtExceptionInfo> info) {
  rtExceptionInfo* raw = info.get();
  aclrtExceptionInfoCallback cb = nullptr;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    if (!g.initialised) return;
    g.exceptions.push_back(std::move(info));
    if (g.exceptions.size() > kRememberedExceptions) g.exceptions.pop_front();
    cb = g.exception_callback;
  }
  if (!cb) return;
  const std::string saved = thread_error();  // the callback's own ACL calls must not eat the caller's message
  cb(raw);
  thread_error() = saved;
}

}  // namespace pymfn_emu

using namespace pymfn_emu;

extern "C" {

// ---------------------------------------------------------------- streams
aclError aclrtCreateStream(aclrtStream* stream) {
  const char* fn = "aclrtCreateStream";
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init(fn));
  if (!stream) return fail(ACL_ERROR_INVALID_PARAM, fn, "stream is NULL");
  EMU_CHECK(need_ctx(fn));
  Stream* s = start_stream(fn, t_ctx, new_stream_id());
  if (!s) return ACL_ERROR_RT_FAILURE;
  g.streams.insert(s);
  *stream = s;
  return ACL_SUCCESS;
}

aclError aclrtSynchronizeStreamWithTimeout(aclrtStream stream, int32_t timeout) {
  const char* fn = "aclrtSynchronizeStreamWithTimeout";
  Stream* s = nullptr;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init(fn));
    EMU_CHECK(check_timeout(fn, timeout));
    EMU_CHECK(lookup_stream(fn, stream, &s));
  }
  std::string msg;
  bool timed_out = false;
  const aclError rc = s->drain(&msg, timeout, &timed_out);
  if (timed_out)
    return fail(ACL_ERROR_RT_STREAM_SYNC_TIMEOUT, fn, "the stream's work did not finish within " + std::to_string(timeout) + " ms");
  if (rc != ACL_SUCCESS) return fail(rc, fn, "queued work failed: " + msg);
  return ACL_SUCCESS;
}

aclError aclrtSynchronizeStream(aclrtStream stream) {
  const char* fn = "aclrtSynchronizeStream";
  Stream* s = nullptr;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init(fn));
    EMU_CHECK(lookup_stream(fn, stream, &s));
  }
  std::string msg;
  const aclError rc = s->drain(&msg);
  if (rc != ACL_SUCCESS) return fail(rc, fn, "queued work failed: " + msg);
  return ACL_SUCCESS;
}

aclError aclrtDestroyStream(aclrtStream stream) {
  const char* fn = "aclrtDestroyStream";
  Stream* s = static_cast<Stream*>(stream);
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init(fn));
    if (!s) return fail(ACL_ERROR_INVALID_PARAM, fn, "the default stream (NULL) belongs to its context and cannot be destroyed");
    if (!g.streams.count(s)) return fail(ACL_ERROR_INVALID_PARAM, fn, "not a live stream");
    g.streams.erase(s);
  }
  retire_streams({s});
  return ACL_SUCCESS;
}

aclError aclrtSynchronizeDevice(void) {
  const char* fn = "aclrtSynchronizeDevice";
  std::vector<Stream*> streams;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init(fn));
    EMU_CHECK(need_ctx(fn));
    const int32_t dev = t_ctx->device;
    for (auto* s : g.streams)
      if (s->ctx && s->ctx->device == dev) streams.push_back(s);
    auto add_default = [&](Context* c) {
      if (c->device == dev && c->default_stream) streams.push_back(c->default_stream);
    };
    for (auto* c : g.contexts) add_default(c);
    for (auto& kv : g.default_ctx) add_default(kv.second);
  }
  aclError first = ACL_SUCCESS;
  std::string first_msg;
  for (Stream* s : streams) {
    std::string msg;
    const aclError rc = s->drain(&msg);
    if (rc != ACL_SUCCESS && first == ACL_SUCCESS) {
      first = rc;
      first_msg = msg;
    }
  }
  if (first != ACL_SUCCESS) return fail(first, fn, "queued work failed: " + first_msg);
  return ACL_SUCCESS;
}

// ---------------------------------------------------------------- events
aclError aclrtCreateEvent(aclrtEvent* event) {
  const char* fn = "aclrtCreateEvent";
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init(fn));
  if (!event) return fail(ACL_ERROR_INVALID_PARAM, fn, "event is NULL");
  EMU_CHECK(need_ctx(fn));
  auto e = std::make_shared<Event>();
  e->ctx = t_ctx;
  g.events[e.get()] = e;
  *event = e.get();
  return ACL_SUCCESS;
}

aclError aclrtDestroyEvent(aclrtEvent event) {
  const char* fn = "aclrtDestroyEvent";
  {
    std::lock_guard<std::mutex> lk(g_mu);
    std::shared_ptr<Event> e;
    EMU_CHECK(live_event(fn, event, &e));
    g.events.erase(e.get());  // a record still queued keeps the object alive until it runs
  }
  g_event_cv.notify_all();
  return ACL_SUCCESS;
}

aclError aclrtRecordEvent(aclrtEvent event, aclrtStream stream) {
  const char* fn = "aclrtRecordEvent";
  std::shared_ptr<Event> e;
  Stream* s = nullptr;
  uint64_t n = 0;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(live_event(fn, event, &e));
    EMU_CHECK(resolve_stream(fn, stream, &s));
    if (e->ctx != s->ctx)
      return fail(ACL_ERROR_RT_STREAM_CONTEXT, fn,
                  e->ctx ? "the event and the stream belong to different contexts" : "the event's context was destroyed");
    n = ++e->recorded;
    ++s->next_task;
  }
  s->push(Task{[e, n](std::string*) {
    const auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard<std::mutex> lk(g_mu);
      if (n > e->completed) {  // only the most recent record counts
        e->completed = n;
        e->stamp = now;
      }
    }
    g_event_cv.notify_all();
    return ACL_SUCCESS;
  }});
  return ACL_SUCCESS;
}

aclError aclrtQueryEventStatus(aclrtEvent event, aclrtEventRecordedStatus* status) {
  const char* fn = "aclrtQueryEventStatus";
  std::lock_guard<std::mutex> lk(g_mu);
  std::shared_ptr<Event> e;
  EMU_CHECK(live_event(fn, event, &e));
  if (!status) return fail(ACL_ERROR_INVALID_PARAM, fn, "status is NULL");
  *status = (e->recorded > 0 && e->completed >= e->recorded) ? ACL_EVENT_RECORDED_STATUS_COMPLETE
                                                             : ACL_EVENT_RECORDED_STATUS_NOT_READY;
  return ACL_SUCCESS;
}

aclError aclrtSynchronizeEventWithTimeout(aclrtEvent event, int32_t timeout) {
  const char* fn = "aclrtSynchronizeEventWithTimeout";
  std::unique_lock<std::mutex> lk(g_mu);
  std::shared_ptr<Event> e;
  EMU_CHECK(live_event(fn, event, &e));
  EMU_CHECK(check_timeout(fn, timeout));
  return wait_event(fn, lk, e, timeout);
}

aclError aclrtSynchronizeEvent(aclrtEvent event) {
  const char* fn = "aclrtSynchronizeEvent";
  std::unique_lock<std::mutex> lk(g_mu);
  std::shared_ptr<Event> e;
  EMU_CHECK(live_event(fn, event, &e));
  return wait_event(fn, lk, e, -1);
}

aclError aclrtEventElapsedTime(float* ms, aclrtEvent startEvent, aclrtEvent endEvent) {
  const char* fn = "aclrtEventElapsedTime";
  std::lock_guard<std::mutex> lk(g_mu);
  std::shared_ptr<Event> a, b;
  EMU_CHECK(live_event(fn, startEvent, &a));
  EMU_CHECK(live_event(fn, endEvent, &b));
  if (!ms) return fail(ACL_ERROR_INVALID_PARAM, fn, "ms is NULL");
  std::chrono::steady_clock::time_point t0, t1;
  EMU_CHECK(event_stamp(fn, "start", *a, &t0));
  EMU_CHECK(event_stamp(fn, "end", *b, &t1));
  if (t1 < t0) return fail(ACL_ERROR_RT_EVENT_TIMESTAMP_REVERSAL, fn, "the end event's record was reached before the start event's");
  *ms = static_cast<float>(std::chrono::duration<double, std::milli>(t1 - t0).count());
  return ACL_SUCCESS;
}

// ---------------------------------------------------------------- exception information
aclError aclrtSetExceptionInfoCallback(aclrtExceptionInfoCallback callback) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init("aclrtSetExceptionInfoCallback"));
  g.exception_callback = callback;
  return ACL_SUCCESS;
}

uint32_t aclrtGetTaskIdFromExceptionInfo(const aclrtExceptionInfo* info) {
  return exception_field(info, [](const rtExceptionInfo& e) { return e.task_id; });
}
uint32_t aclrtGetStreamIdFromExceptionInfo(const aclrtExceptionInfo* info) {
  return exception_field(info, [](const rtExceptionInfo& e) { return e.stream_id; });
}
uint32_t aclrtGetThreadIdFromExceptionInfo(const aclrtExceptionInfo* info) {
  return exception_field(info, [](const rtExceptionInfo& e) { return e.thread_id; });
}
uint32_t aclrtGetDeviceIdFromExceptionInfo(const aclrtExceptionInfo* info) {
  return exception_field(info, [](const rtExceptionInfo& e) { return e.device_id; });
}
uint32_t aclrtGetErrorCodeFromExceptionInfo(const aclrtExceptionInfo* info) {
  return exception_field(info, [](const rtExceptionInfo& e) { return e.error_code; });
}

aclError aclmdlCreateAndGetOpDesc(uint32_t deviceId, uint32_t streamId, uint32_t taskId, char* opName, size_t opNameLen,
                                  aclTensorDesc** inputDesc, size_t* numInputs, aclTensorDesc** outputDesc,
                                  size_t* numOutputs) {
  const char* fn = "aclmdlCreateAndGetOpDesc";
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init(fn));
  if (!opName || !inputDesc || !numInputs || !outputDesc || !numOutputs)
    return fail(ACL_ERROR_INVALID_PARAM, fn, "opName, inputDesc, numInputs, outputDesc or numOutputs is NULL");
  const rtExceptionInfo* found = nullptr;
  for (auto it = g.exceptions.rbegin(); it != g.exceptions.rend() && !found; ++it)
    if ((*it)->device_id == deviceId && (*it)->stream_id == streamId && (*it)->task_id == taskId) found = it->get();
  if (!found)
    return fail(ACL_ERROR_INVALID_PARAM, fn,
                "no failed task with device " + std::to_string(deviceId) + ", stream " + std::to_string(streamId) +
                    ", task " + std::to_string(taskId) + " (the emulator remembers the last " +
                    std::to_string(kRememberedExceptions) + " failures since aclInit)");
  if (opNameLen <= found->op_name.size())
    return fail(ACL_ERROR_INVALID_PARAM, fn,
                "opNameLen " + std::to_string(opNameLen) + " cannot hold '" + found->op_name + "' and its NUL");
  std::memcpy(opName, found->op_name.c_str(), found->op_name.size() + 1);
  *inputDesc = hand_out_descs(found->inputs);
  *numInputs = found->inputs.size();
  *outputDesc = hand_out_descs(found->outputs);
  *numOutputs = found->outputs.size();
  return ACL_SUCCESS;
}

// ---------------------------------------------------------------- emulator-only test hook (emulator_api.h)
int pymfnEmuPauseStream(void* stream, int paused) {
  Stream* s = static_cast<Stream*>(stream);
  {
    std::lock_guard<std::mutex> lk(g_mu);
    if (!g.streams.count(s)) return ACL_ERROR_INVALID_PARAM;
  }
  s->set_paused(paused != 0);
  return ACL_SUCCESS;
}

}  // extern "C"
