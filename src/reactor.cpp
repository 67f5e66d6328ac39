#include "reactor.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <caf/send.hpp>
#include <libpq-fe.h>

#include "pgcm/messages/atoms.hpp"

namespace pgcm::detail {

namespace {

std::atomic<int> cancel_threads{0};

} // namespace

reactor::reactor() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0)
    throw std::runtime_error(std::string{"pgcm: epoll_create1 failed: "} + std::strerror(errno));
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    ::close(epoll_fd_);
    throw std::runtime_error(std::string{"pgcm: eventfd failed: "} + std::strerror(errno));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  thread_ = std::thread{[this] { run(); }};
}

reactor::~reactor() {
  stop_ = true;
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) {
    if (thread_.get_id() == std::this_thread::get_id())
      thread_.detach(); // cannot happen today; never join ourselves
    else
      thread_.join();
  }
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

std::uint64_t reactor::add(caf::actor target) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto id = next_id_++;
  targets_.emplace(id, std::move(target));
  return id;
}

bool reactor::watch(std::uint64_t id, int fd, bool readable, bool writable) {
  epoll_event ev{};
  ev.events = EPOLLONESHOT | (readable ? EPOLLIN : 0u) | (writable ? EPOLLOUT : 0u);
  ev.data.u64 = id;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) == 0)
    return true;
  if (errno == ENOENT)
    return epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0;
  return false;
}

void reactor::remove(std::uint64_t id, int fd) {
  if (fd >= 0)
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  std::lock_guard<std::mutex> guard{mtx_};
  targets_.erase(id);
}

void reactor::run() {
  std::vector<epoll_event> events(256);
  while (!stop_) {
    int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return;
    }
    std::lock_guard<std::mutex> guard{mtx_};
    for (int i = 0; i < n; ++i) {
      auto id = events[i].data.u64;
      if (id == 0) {
        std::uint64_t buf;
        [[maybe_unused]] auto r = ::read(wake_fd_, &buf, sizeof(buf));
        continue;
      }
      auto it = targets_.find(id);
      if (it != targets_.end())
        caf::anon_send(it->second, io_atom::value, static_cast<std::uint32_t>(events[i].events));
    }
  }
}

bool reactor::cancel_async(void* cancel) {
  auto* c = static_cast<PGcancel*>(cancel);
  if (c == nullptr)
    return false;
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
