#include "event_log.hpp"
#include "node_json.hpp"

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "display_units.hpp"
#include "json_writer.hpp"
#include "log.hpp"

namespace pgcm::cli {

// -- lines ----------------------------------------------------------------------

namespace {

void begin_line(json_writer& j, std::string_view type, std::chrono::system_clock::time_point at) {
  j.begin_object();
  j.key("time").value(format_utc(at));
  j.key("type").value(type);
}

} // namespace

std::string event_json_line(const node_event& e, std::chrono::system_clock::time_point at) {
  return event_json(e, at) + '\n'; // the same object /api/events sends
}

std::string dropped_json_line(std::uint64_t count, std::chrono::system_clock::time_point at) {
  json_writer j;
  begin_line(j, "event_log_dropped", at);
  j.key("count").value(static_cast<std::int64_t>(count));
  j.end_object();
  return j.str() + '\n';
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  constexpr std::uint64_t limit = std::uint64_t{1} << 40;
  std::size_t i = 0;
  std::uint64_t n = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    n = n * 10 + static_cast<std::uint64_t>(text[i] - '0');
    if (n > limit) return std::nullopt;
    ++i;
  }
  if (i == 0) return std::nullopt;
  std::string unit;
  for (char c : text.substr(i))
    unit.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
  std::uint64_t factor;
  if (unit.empty() || unit == "b")
    factor = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib")
    factor = std::uint64_t{1} << 10;
  else if (unit == "m" || unit == "mb" || unit == "mib")
    factor = std::uint64_t{1} << 20;
  else if (unit == "g" || unit == "gb" || unit == "gib")
    factor = std::uint64_t{1} << 30;
  else
    return std::nullopt;
  if (n == 0 || n > limit / factor) return std::nullopt;
  return n * factor;
}

// -- rotating_file_sink -----------------------------------------------------------

rotating_file_sink::rotating_file_sink(std::string path, std::uint64_t max_bytes, int keep)
    : path_(std::move(path)), max_bytes_(max_bytes), keep_(keep) {
  open();
}

rotating_file_sink::~rotating_file_sink() {
  if (fd_ >= 0) ::close(fd_);
}

void rotating_file_sink::open() {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::system_error{errno, std::generic_category(), path_};
  struct stat st {};
  size_ = ::fstat(fd_, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

void rotating_file_sink::rotate() {
  ::close(fd_);
  fd_ = -1;
  // PATH.keep-1 -> PATH.keep (replacing the oldest), ..., PATH -> PATH.1
  for (int i = keep_ - 1; i >= 0; --i) {
    auto from = i == 0 ? path_ : path_ + "." + std::to_string(i);
    auto to = path_ + "." + std::to_string(i + 1);
    if (::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT && i == 0)
      throw std::system_error{errno, std::generic_category(), "rotating " + path_};
  }
  ++rotations_;
  open();
}

void rotating_file_sink::write(std::string_view line) {
  if (fd_ < 0) open(); // a failed rotation: try again
  if (size_ > 0 && size_ + line.size() > max_bytes_) rotate();
  while (!line.empty()) {
    auto n = ::write(fd_, line.data(), line.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::system_error{errno, std::generic_category(), path_};
    }
    line.remove_prefix(static_cast<std::size_t>(n));
    size_ += static_cast<std::uint64_t>(n);
  }
}

// -- event_log ------------------------------------------------------------------

struct event_log::state {
  std::unique_ptr<event_sink> sink;
  std::size_t capacity;
  std::mutex mu;
  std::condition_variable wake; // the writer waits for lines
  std::condition_variable idle; // wait_idle() and close() wait for the writer
  std::deque<std::string> queue;
  bool busy = false;     // the writer is writing a batch
  bool stop = false;     // close() was called
  bool finished = false; // the writer thread returned
  /// Dropped lines not yet recorded in the file.
  std::uint64_t unrecorded = 0;
  std::atomic<std::uint64_t> written{0};
  std::atomic<std::uint64_t> dropped{0};
  std::thread writer;

  /// The writer thread: takes the whole queue at once, writes it without the
  /// lock, and records drops once the queue is empty.
  static void run(std::shared_ptr<state> s) {
    std::uint64_t rotations_seen = 0;
    std::uint64_t dropped_reported = 0;
    bool failing = false;
    auto write = [&](const std::string& line, bool is_event) {
      try {
        s->sink->write(line);
        if (is_event) ++s->written;
        failing = false;
      } catch (const std::exception& e) {
        if (is_event) ++s->dropped;
        if (!failing)
          log::warn("event log {}: {}; lines are dropped until writing works again",
                    s->sink->name(), e.what());
        failing = true;
      }
    };
    std::unique_lock<std::mutex> lk{s->mu};
    for (;;) {
      s->wake.wait(lk, [&] { return s->stop || !s->queue.empty() || s->unrecorded > 0; });
      std::deque<std::string> batch;
      batch.swap(s->queue);
      std::uint64_t record = batch.empty() ? std::exchange(s->unrecorded, 0) : 0;
      if (batch.empty() && record == 0) break; // stopped, nothing left
      s->busy = true;
      lk.unlock();
      for (auto& line : batch)
        write(line, true);
      if (record > 0) write(dropped_json_line(record, std::chrono::system_clock::now()), false);
      if (auto r = s->sink->rotations(); r != rotations_seen) {
        rotations_seen = r;
        auto d = s->dropped.load();
        if (d > dropped_reported)
          log::warn("event log {}: {} lines dropped so far (the disk was slower than the events)",
                    s->sink->name(), d);
        dropped_reported = d;
      }
      lk.lock();
      s->busy = false;
      s->idle.notify_all();
    }
    s->finished = true;
    s->idle.notify_all();
  }
};

event_log::event_log(std::unique_ptr<event_sink> sink, std::size_t capacity)
    : state_(std::make_shared<state>()) {
  state_->sink = std::move(sink);
  state_->capacity = capacity == 0 ? 1 : capacity;
  state_->writer = std::thread{&state::run, state_};
}

event_log::~event_log() {
  close(std::chrono::milliseconds{2000});
}

bool event_log::log(const node_event& e) {
  return push(event_json_line(e, std::chrono::system_clock::now()));
}

bool event_log::push(std::string line) {
  auto& s = *state_;
  std::lock_guard<std::mutex> lk{s.mu};
  if (s.stop) return false;
  if (s.queue.size() >= s.capacity) {
    ++s.dropped;
    ++s.unrecorded;
    return false;
  }
  s.queue.push_back(std::move(line));
  s.wake.notify_one();
  return true;
}

void event_log::close(std::chrono::milliseconds timeout) {
  auto& s = *state_;
  std::unique_lock<std::mutex> lk{s.mu};
  if (s.stop) return;
  s.stop = true;
  s.wake.notify_one();
  if (s.idle.wait_for(lk, timeout, [&] { return s.finished; })) {
    lk.unlock();
    s.writer.join();
  } else {
    // The sink is stuck (a hung file system): leave the writer behind; it
    // holds its own reference to the state.
    auto lost = s.queue.size();
    s.queue.clear();
    s.dropped += lost;
    lk.unlock();
    s.writer.detach();
    log::warn("event log {}: the file does not accept writes; {} queued lines lost", s.sink->name(),
              lost);
  }
  if (auto d = s.dropped.load(); d > 0)
    log::warn("event log {}: {} lines dropped in total (the disk was slower than the events)",
              s.sink->name(), d);
}

bool event_log::wait_idle(std::chrono::milliseconds timeout) {
  auto& s = *state_;
  std::unique_lock<std::mutex> lk{s.mu};
  return s.idle.wait_for(
      lk, timeout, [&] { return s.finished || (s.queue.empty() && !s.busy && s.unrecorded == 0); });
}

std::uint64_t event_log::written() const {
  return state_->written.load();
}

std::uint64_t event_log::dropped() const {
  return state_->dropped.load();
}

event_log_feed::event_log_feed(connection_manager& mgr, event_log& log) : log_(log) {
  sub_ = mgr.on_any([this](const node_event& e) {
    log_.log(e);
    if (e.type != event::node_added && e.type != event::node_removed) return;
    std::lock_guard<std::mutex> lk{mu_};
    live_nodes_ += e.type == event::node_added ? 1 : -1;
    cv_.notify_all();
  });
}

event_log_feed::~event_log_feed() {
  sub_.unsubscribe();
}

void event_log_feed::finish(std::chrono::milliseconds timeout) {
  {
    std::unique_lock<std::mutex> lk{mu_};
    cv_.wait_for(lk, timeout, [&] { return live_nodes_ <= 0; });
  }
  sub_.unsubscribe();
}

std::unique_ptr<event_log> open_event_log(const cli_options& opts) {
  if (!opts.event_log) return nullptr;
  try {
    return std::make_unique<event_log>(
        std::make_unique<rotating_file_sink>(*opts.event_log, opts.event_log_max));
  } catch (const std::system_error& e) {
    throw usage_error{"--event-log " + *opts.event_log +
                      ": cannot open the file: " + e.code().message()};
  }
}

} // namespace pgcm::cli
