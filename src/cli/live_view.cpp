#include "live_view.hpp"

#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include "shutdown_signals.hpp"
#include "terminal_screen.hpp"
#include "watch_view.hpp"

namespace pgcm::cli {

namespace {

using namespace std::chrono;

// The primary's slots with their walsenders (pg_monitor shows every column).
const std::string slots_sql =
    "SELECT s.slot_name, s.slot_type, s.active,"
    " COALESCE(r.application_name, '') AS client,"
    " COALESCE(r.state, '') AS state,"
    " COALESCE(s.restart_lsn::text, '') AS restart_lsn,"
    " COALESCE(pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)), '')"
    "   AS retained,"
    " COALESCE(round((extract(epoch FROM r.replay_lag) * 1000)::numeric, 2)::text || ' ms', '')"
    "   AS replay_lag"
    " FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid"
    " ORDER BY s.slot_name";

constexpr auto slots_timeout = milliseconds{2000};

/// Reads the slots of the current primary (one blocking round).
slots_info read_slots(connection_manager& mgr, const cluster_snapshot& snap) {
  slots_info out;
  out.fetched = true;
  auto* primary = snap.primary();
  if (primary == nullptr) return out;
  out.node_id = primary->info.id;
  try {
    auto rs = mgr.query(out.node_id, slots_sql, {}, slots_timeout);
    for (auto row : rs) {
      slot_row r;
      r.name = row.get<std::string>("slot_name");
      r.type = row.get<std::string>("slot_type");
      r.active = row.get<bool>("active");
      r.client = row.get<std::string>("client");
      r.state = row.get<std::string>("state");
      r.restart_lsn = row.get<std::string>("restart_lsn");
      r.retained = row.get<std::string>("retained");
      r.replay_lag = row.get<std::string>("replay_lag");
      out.rows.push_back(std::move(r));
    }
  } catch (const error& e) {
    out.error = e.what();
  }
  return out;
}

/// A pipe other threads write to to wake the drawing loop.
class wakeup_pipe {
public:
  wakeup_pipe() {
    if (::pipe(fds_) == 0)
      for (int fd : fds_)
        ::fcntl(fd, F_SETFL, O_NONBLOCK);
  }
  ~wakeup_pipe() {
    for (int fd : fds_)
      if (fd >= 0) ::close(fd);
  }
  void notify() {
    char c = 1;
    auto rc = ::write(fds_[1], &c, 1);
    (void)rc;
  }
  int fd() const { return fds_[0]; }
  void drain() {
    char buf[64];
    while (::read(fds_[0], buf, sizeof(buf)) > 0) {
    }
  }

private:
  int fds_[2] = {-1, -1};
};

/// Reads the slots every `interval` on a thread of its own.
class slot_poller {
public:
  slot_poller(connection_manager& mgr, state_store& store, milliseconds interval, wakeup_pipe& wake)
      : mgr_(mgr), store_(store), interval_(interval), wake_(wake), thread_([this] { run(); }) {}

  ~slot_poller() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  slots_info get() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return info_;
  }

private:
  void run() {
    std::unique_lock<std::mutex> guard{mtx_};
    while (!stopping_) {
      guard.unlock();
      auto info = read_slots(mgr_, store_.snapshot());
      guard.lock();
      info_ = std::move(info);
      wake_.notify();
      cv_.wait_for(guard, interval_, [this] { return stopping_; });
    }
  }

  connection_manager& mgr_;
  state_store& store_;
  milliseconds interval_;
  wakeup_pipe& wake_;
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  bool stopping_ = false;
  slots_info info_;
  std::thread thread_;
};

bool color_enabled(color_mode m) {
  switch (m) {
  case color_mode::always:
    return true;
  case color_mode::never:
    return false;
  case color_mode::automatic:
    break;
  }
  const char* term = std::getenv("TERM");
  return stdout_is_terminal() && std::getenv("NO_COLOR") == nullptr &&
         !(term != nullptr && std::string{term} == "dumb");
}

bool all_healthy(const cluster_snapshot& s) {
  return !s.nodes.empty() && s.healthy_count() == s.nodes.size();
}

int print_once(connection_manager& mgr, state_store& store, const live_view_options& opts) {
  // Every node was probed once; wait (bounded) for every node to be healthy
  // if asked to.
  store.refresh();
  auto deadline = steady_clock::now() + opts.once_wait;
  for (;;) {
    auto snap = store.snapshot();
    if (all_healthy(snap) || stop_requested() || steady_clock::now() >= deadline) break;
    store.wait_for_change(snap.version, milliseconds{100});
  }
  watch_model m;
  m.title = opts.title;
  m.snapshot = store.snapshot();
  m.slots = read_slots(mgr, m.snapshot);
  store.refresh(); // the pool numbers moved with that query
  m.snapshot = store.snapshot();
  m.now = system_clock::now();
  view_style style;
  style.width = terminal_columns();
  style.color = color_enabled(opts.color);
  style.unicode = locale_is_utf8();
  style.interactive = false;
  for (auto& line : render_watch(m, style))
    std::cout << line << '\n';
  std::cout.flush();
  return all_healthy(m.snapshot) ? 0 : 1;
}

} // namespace

int run_live_view(connection_manager& mgr, state_store& store, const live_view_options& opts) {
  if (opts.once) return print_once(mgr, store, opts);
  wakeup_pipe wake;
  store.on_change([&wake](std::uint64_t) { wake.notify(); });
  struct clear_callback {
    state_store& s;
    ~clear_callback() { s.on_change(nullptr); }
  } clear{store};
  slot_poller poller{mgr, store, opts.slots_interval, wake};
  terminal_screen screen;
  view_style style;
  style.color = color_enabled(opts.color);
  style.unicode = locale_is_utf8();
  style.interactive = screen.reads_keys();
  while (!stop_requested()) {
    watch_model m;
    m.title = opts.title;
    m.snapshot = store.snapshot();
    m.slots = poller.get();
    if (opts.log) m.log_lines = opts.log();
    m.now = system_clock::now();
    style.width = screen.width();
    style.height = screen.height();
    screen.draw(render_watch(m, style));

    // Sleep until something changes, a key, a signal, or the next second
    // (the clock and the "checked ... ago" ages move).
    pollfd fds[3] = {{wake_fd(), POLLIN, 0}, {wake.fd(), POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    auto ms_into_second = duration_cast<milliseconds>(m.now.time_since_epoch()).count() % 1000;
    int timeout = static_cast<int>(1000 - ms_into_second) + 5;
    ::poll(fds, screen.reads_keys() ? 3 : 2, timeout);
    auto keys = screen.read_keys();
    if (keys.find_first_of("qQ\x03") != std::string::npos) break;
    drain_wake_fd();
    wake.drain();
    take_resize();
    // Bursts of events (e.g. at start) draw at most ~30 frames per second.
    std::this_thread::sleep_for(milliseconds{30});
  }
  return 0;
}

} // namespace pgcm::cli
