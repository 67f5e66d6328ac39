#include "reactor.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <caf/actor_registry.hpp>
#include <caf/actor_system.hpp>
#include <caf/message_id.hpp>
#include <libpq-fe.h>

#include "inline_unit.hpp"
#include "log.hpp"
#include "pgcm/messages/atoms.hpp"

namespace pgcm::detail {

namespace {

std::atomic<int> cancel_threads{0};

/// In an epoll event's data next to the target id: run it on the scheduler.
constexpr std::uint64_t not_inline_bit = std::uint64_t{1} << 63;

} // namespace

struct reactor::core {
  core(caf::actor_system& sys, bool run_inline) : sys(&sys), run_inline(run_inline) {
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0)
      throw std::runtime_error(std::string{"epoll_create1 failed: "} + std::strerror(errno));
    wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd < 0) {
      ::close(epoll_fd);
      throw std::runtime_error(std::string{"eventfd failed: "} + std::strerror(errno));
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 0;
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev);
  }

  ~core() {
    ::close(wake_fd);
    ::close(epoll_fd);
  }

  void run();

  caf::actor_system* sys;
  bool run_inline;
  int epoll_fd = -1;
  int wake_fd = -1;
  std::atomic<bool> stop{false};
  std::mutex mtx; // guards next_id and targets
  std::uint64_t next_id = 1;
  std::unordered_map<std::uint64_t, caf::actor> targets;
};

reactor::reactor(caf::actor_system& sys, bool run_inline)
    : core_(std::make_shared<core>(sys, run_inline)) {
  // The thread runs actors, and it may outlive this object (see the
  // destructor): it counts as a running actor, so that ~actor_system waits
  // for it like for any actor before it tears the system down.
  sys.registry().inc_running();
  try {
    thread_ = std::thread{[c = core_]() mutable {
      auto& sys = *c->sys;
      c->run();
      c.reset();                    // the last reference when detached: frees targets and fds here
      sys.registry().dec_running(); // the last touch of the system
    }};
  } catch (...) {
    sys.registry().dec_running();
    throw;
  }
}

reactor::~reactor() {
  core_->stop = true;
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(core_->wake_fd, &one, sizeof(one));
  if (thread_.get_id() == std::this_thread::get_id())
    thread_.detach(); // the last owner runs on the loop: it ends after this job
  else
    thread_.join();
}

std::uint64_t reactor::add(caf::actor target) {
  std::lock_guard<std::mutex> guard{core_->mtx};
  auto id = core_->next_id++;
  core_->targets.emplace(id, std::move(target));
  return id;
}

bool reactor::watch(std::uint64_t id, int fd, bool readable, bool writable, bool run_inline) {
  epoll_event ev{};
  ev.events = EPOLLONESHOT | (readable ? EPOLLIN : 0u) | (writable ? EPOLLOUT : 0u);
  ev.data.u64 = run_inline ? id : id | not_inline_bit;
  if (epoll_ctl(core_->epoll_fd, EPOLL_CTL_MOD, fd, &ev) == 0) return true;
  if (errno == ENOENT) return epoll_ctl(core_->epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0;
  return false;
}

void reactor::remove(std::uint64_t id, int fd) {
  if (fd >= 0) epoll_ctl(core_->epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
  std::lock_guard<std::mutex> guard{core_->mtx};
  core_->targets.erase(id);
}

void reactor::core::run() {
  {
    inline_unit unit{*sys};
    std::vector<epoll_event> events(256);
    while (!stop) {
      int n = epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      {
        std::lock_guard<std::mutex> guard{mtx};
        for (int i = 0; i < n; ++i) {
          auto data = events[i].data.u64;
          if (data == 0) {
            std::uint64_t buf;
            [[maybe_unused]] auto r = ::read(wake_fd, &buf, sizeof(buf));
            continue;
          }
          auto it = targets.find(data & ~not_inline_bit);
          if (it != targets.end()) // the actor becomes runnable on `unit` (or the scheduler)
            it->second->eq_impl(caf::make_message_id(), nullptr,
                                (data & not_inline_bit) || !run_inline ? nullptr : &unit,
                                io_atom::value, static_cast<std::uint32_t>(events[i].events));
        }
      }
      unit.run(inline_budget); // outside the lock: actors call add/watch/remove
    }
  }
  log::release_caf_thread_logger();
}

bool reactor::cancel_async(void* cancel) {
  auto* c = static_cast<PGcancel*>(cancel);
  if (c == nullptr) return false;
  if (cancel_threads.fetch_add(1) >= max_cancel_threads) {
    cancel_threads.fetch_sub(1);
    PQfreeCancel(c);
    return false;
  }
  try {
    std::thread{[c] {
      char buf[256];
      PQcancel(c, buf, sizeof(buf));
      PQfreeCancel(c);
      cancel_threads.fetch_sub(1);
    }}.detach();
  } catch (...) {
    cancel_threads.fetch_sub(1);
    PQfreeCancel(c);
    return false;
  }
  return true;
}

} // namespace pgcm::detail
