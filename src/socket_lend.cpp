#include "socket_lend.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>

#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <caf/message_id.hpp>

#include "assert.hpp"
#include "inline_unit.hpp"
#include "pgcm/messages/atoms.hpp"

namespace pgcm::detail {

socket_lend::socket_lend() : wake_fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  // nop
}

socket_lend::~socket_lend() {
  if (wake_fd >= 0) ::close(wake_fd);
}

void socket_lend::revoke() {
  if (!lent.exchange(false)) return;
  if (std::this_thread::get_id() == waiter)
    return; // the caller itself runs the worker: it is not waiting
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof(one));
}

void socket_lend::await(inline_unit& here, caf::actor_clock::time_point until, int budget) {
  PGCM_ASSERT(std::this_thread::get_id() == waiter.load(),
              "I8: a socket is lent only to the caller whose thread ran the worker");
  auto target = std::move(worker);
  auto run_worker = [&] {
    target->eq_impl(caf::make_message_id(), nullptr, &here, io_atom::value,
                    static_cast<std::uint32_t>(EPOLLIN));
    here.run(budget);
  };
  pollfd fds[2];
  fds[0] = pollfd{fd, POLLIN, 0};
  fds[1] = pollfd{wake_fd, POLLIN, 0};
  polling = true;
  while (lent.load()) {
    using std::chrono::milliseconds;
    auto left = std::chrono::ceil<milliseconds>(until - caf::actor_clock::clock_type::now());
    if (left.count() <= 0) break;
    auto timeout = static_cast<int>(std::min<std::int64_t>(left.count(), 1 << 30));
    int n = ::poll(fds, 2, timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    if (fds[1].revents != 0) {
      // Taken back (the loop ends), or left over from an earlier lend.
      std::uint64_t buf;
      [[maybe_unused]] auto r = ::read(wake_fd, &buf, sizeof(buf));
    }
    if (fds[0].revents != 0 && lent.load()) {
      auto before = reads_here;
      run_worker();
      if (reads_here == before)
        fds[0].fd = -1; // it reads on another thread, then takes the socket back
    }
  }
  polling = false;
  // Out of time (or poll failed) with the socket still lent: the worker
  // reads whatever there is and re-arms the reactor, which ends the lend.
  if (lent.load()) run_worker();
}

} // namespace pgcm::detail
