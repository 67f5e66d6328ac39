#pragma once

// `--event-log FILE` of pgcm serve and pgcm watch: every manager event as one
// JSON line, appended to a file rotated by size. Events never wait for the
// disk: the event callback only queues the line (bounded queue); a writer
// thread of its own writes it. When the queue is full the line is dropped and
// counted; once the writer has caught up, a line
// {"time":...,"type":"event_log_dropped","count":N} records how many were lost.
//
// It lives in the CLI, not in the library, because the line format is the
// CLI's --json format (json_writer); an embedding application subscribes with
// connection_manager::on_any and writes what it likes.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <pgcm/connection_manager.hpp>
#include <pgcm/types.hpp>

#include "cli_options.hpp"

namespace pgcm::cli {

/// One event as a JSON line (with the final '\n'):
/// {"time":"2026-12-01T10:00:00.123Z","type":"node_health","node":"primary",
///  "health":{...}} -- "health", "stats" and "error" only when the event has them,
/// each in the shape of `pgcm health --json` / `pgcm query --json`.
std::string event_json_line(const node_event& e, std::chrono::system_clock::time_point at);

/// The line that records `count` dropped lines.
std::string dropped_json_line(std::uint64_t count, std::chrono::system_clock::time_point at);

/// Parses a size as --event-log-max takes it: an integer of bytes with an
/// optional unit B, K/KB/KiB, M/MB/MiB, G/GB/GiB (powers of 1024), e.g.
/// "10MB", "512K", "4096". nullopt when invalid, 0 or above 1 TiB.
std::optional<std::uint64_t> parse_size(std::string_view text);

/// Where the event log's lines go. Called from the writer thread only.
class event_sink {
public:
  virtual ~event_sink() = default;
  /// Writes one whole line; may block (a slow disk). Throws std::system_error
  /// when it cannot write.
  virtual void write(std::string_view line) = 0;
  /// How often the sink started a new file so far.
  virtual std::uint64_t rotations() const { return 0; }
  /// What the warnings call the sink (the file name).
  virtual std::string name() const = 0;
};

/// Appends to `path`; before a line would take the file past `max_bytes` the
/// file is renamed to PATH.1 (PATH.1 to PATH.2, ... up to PATH.`keep`, the
/// oldest is deleted) and a new one started. A line longer than `max_bytes`
/// gets a file of its own.
class rotating_file_sink : public event_sink {
public:
  /// Opens (creates) the file. Throws std::system_error naming it.
  rotating_file_sink(std::string path, std::uint64_t max_bytes, int keep = 3);
  ~rotating_file_sink() override;
  rotating_file_sink(const rotating_file_sink&) = delete;
  rotating_file_sink& operator=(const rotating_file_sink&) = delete;

  void write(std::string_view line) override;
  std::uint64_t rotations() const override { return rotations_; }
  std::string name() const override { return path_; }

private:
  void open();
  void rotate();

  std::string path_;
  std::uint64_t max_bytes_;
  int keep_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  std::uint64_t rotations_ = 0;
};

/// The queue and its writer thread.
class event_log {
public:
  /// Starts the writer thread. `capacity`: lines that may wait for the disk.
  explicit event_log(std::unique_ptr<event_sink> sink, std::size_t capacity = 10000);
  /// close() with a 2 s bound.
  ~event_log();
  event_log(const event_log&) = delete;
  event_log& operator=(const event_log&) = delete;

  /// Queues the event's line; never waits for the writer. False when the
  /// line was dropped (queue full, or closed).
  bool log(const node_event& e);
  /// Queues a ready line (with its '\n'); as log().
  bool push(std::string line);

  /// Writes what is queued and stops the writer, waiting at most `timeout`
  /// for it (a sink that blocks longer is left behind: its lines are lost
  /// and counted as dropped). Logs the dropped total at warn level if any.
  void close(std::chrono::milliseconds timeout);

  /// Blocks until every line queued so far is written (or dropped), at most
  /// `timeout`; false on timeout. For tests.
  bool wait_idle(std::chrono::milliseconds timeout);

  /// Lines written, lines dropped so far (a write error also drops a line).
  std::uint64_t written() const;
  std::uint64_t dropped() const;

private:
  struct state;
  std::shared_ptr<state> state_;
};

/// Feeds every event of a manager into an event log, from construction to
/// finish(). Not movable (the callback refers to it).
class event_log_feed {
public:
  event_log_feed(connection_manager& mgr, event_log& log);
  ~event_log_feed();
  event_log_feed(const event_log_feed&) = delete;
  event_log_feed& operator=(const event_log_feed&) = delete;

  /// Call after mgr.shutdown() (of a local manager): the node:removed events
  /// it caused reach the callbacks a moment later; waits until one came for
  /// every node:added, at most `timeout`, then stops feeding.
  void finish(std::chrono::milliseconds timeout);

private:
  event_log& log_;
  std::mutex mu_;
  std::condition_variable cv_;
  int live_nodes_ = 0;
  subscription sub_;
};

/// The event log `--event-log FILE [--event-log-max SIZE]` asks for, or null
/// without --event-log. Throws usage_error naming the flag when the file
/// cannot be opened.
std::unique_ptr<event_log> open_event_log(const cli_options& opts);

} // namespace pgcm::cli
