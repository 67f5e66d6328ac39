#include "fault_proxy.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace pgcm::test {

namespace {

using clock_type = std::chrono::steady_clock;

int listen_on(unsigned addr_be, std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = addr_be;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 128) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::uint16_t local_port(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

int connect_to(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

void close_with_reset(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  ::close(fd);
}

struct chunk {
  clock_type::time_point due;
  std::string data;
};

/// One proxied connection: client side `a`, server side `b` (-1 when blackholed
/// from the start).
struct link {
  int a = -1;
  int b = -1;
  std::deque<chunk> to_b; // pending for the server
  std::deque<chunk> to_a; // pending for the client
  bool severed = false;   // server side gone; the client's next send gets an RST
  bool dead = false;
};

bool flush(int fd, std::deque<chunk>& q, clock_type::time_point now) {
  while (!q.empty() && q.front().due <= now) {
    auto& c = q.front();
    auto n = ::send(fd, c.data.data(), c.data.size(), MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
    c.data.erase(0, static_cast<std::size_t>(n));
    if (!c.data.empty()) return true;
    q.pop_front();
  }
  return true;
}

} // namespace

fault_proxy::fault_proxy(std::uint16_t target_port, const char* listen_address)
    : target_(target_port) {
  in_addr a{};
  if (inet_pton(AF_INET, listen_address, &a) != 1)
    throw std::runtime_error("fault_proxy: bad listen address");
  listen_addr_ = a.s_addr;
  if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0)
    throw std::runtime_error("fault_proxy: pipe failed");
  int fd = listen_on(listen_addr_, 0);
  if (fd < 0) throw std::runtime_error("fault_proxy: cannot listen");
  port_ = local_port(fd);
  thread_ = std::thread{[this, fd] {
    listen_fd_ = fd;
    run();
  }};
}

fault_proxy::~fault_proxy() {
  stop_ = true;
  char c = 1;
  [[maybe_unused]] auto n = ::write(wake_[1], &c, 1);
  thread_.join();
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void fault_proxy::set(mode m, std::chrono::milliseconds delay) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    mode_ = m;
    delay_ = delay;
    changed_ = true;
  }
  char c = 1;
  [[maybe_unused]] auto n = ::write(wake_[1], &c, 1);
  // Let the proxy thread apply it before the caller goes on.
  std::this_thread::sleep_for(std::chrono::milliseconds{20});
}

void fault_proxy::run() {
  std::vector<std::unique_ptr<link>> links;
  mode current = mode::pass;
  std::chrono::milliseconds delay{0};
  char buf[65536];
  while (!stop_) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (changed_) {
        changed_ = false;
        current = mode_;
        delay = delay_;
        if (current == mode::reset) {
          for (auto& l : links) {
            if (l->a >= 0) close_with_reset(l->a);
            if (l->b >= 0) close_with_reset(l->b);
            l->a = l->b = -1;
            l->dead = true;
          }
        }
        if (current == mode::sever) {
          for (auto& l : links) {
            if (l->b >= 0) ::close(l->b);
            l->b = -1;
            l->to_a.clear();
            l->to_b.clear();
            l->severed = true;
          }
          current = mode::pass;
        }
        if (current == mode::refuse && listen_fd_ >= 0) {
          ::close(listen_fd_);
          listen_fd_ = -1;
        } else if (current != mode::refuse && listen_fd_ < 0) {
          listen_fd_ = listen_on(listen_addr_, port_);
        }
      }
    }
    links.erase(std::remove_if(links.begin(), links.end(), [](auto& l) { return l->dead; }),
                links.end());
    connections_ = static_cast<int>(links.size());
    // Poll set: wake pipe, listener, then each link's two sides (unless blackholed).
    std::vector<pollfd> fds;
    fds.push_back({wake_[0], POLLIN, 0});
    fds.push_back({listen_fd_, static_cast<short>(listen_fd_ >= 0 ? POLLIN : 0), 0});
    auto now = clock_type::now();
    int timeout = 200;
    for (auto& l : links) {
      short ea = 0;
      short eb = 0;
      if (l->severed) {
        ea = POLLIN;
      } else if (current != mode::blackhole && l->b >= 0) {
        ea = POLLIN;
        eb = POLLIN;
        if (!l->to_a.empty()) {
          if (l->to_a.front().due <= now)
            ea |= POLLOUT;
          else
            timeout = std::min<int>(
                timeout, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              l->to_a.front().due - now)
                                              .count()) +
                             1);
        }
        if (!l->to_b.empty()) {
          if (l->to_b.front().due <= now)
            eb |= POLLOUT;
          else
            timeout = std::min<int>(
                timeout, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              l->to_b.front().due - now)
                                              .count()) +
                             1);
        }
      }
      fds.push_back({l->a, ea, 0});
      fds.push_back({l->b, eb, 0});
    }
    ::poll(fds.data(), fds.size(), timeout);
    if (fds[0].revents & POLLIN)
      while (::read(wake_[0], buf, sizeof(buf)) > 0) {
      }
    now = clock_type::now();
    const auto polled = links.size(); // links accepted below were not polled yet
    if (listen_fd_ >= 0 && (fds[1].revents & POLLIN)) {
      for (;;) {
        int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (c < 0) break;
        if (current == mode::reset) {
          close_with_reset(c);
          continue;
        }
        auto l = std::make_unique<link>();
        l->a = c;
        if (current != mode::blackhole) {
          l->b = connect_to(target_);
          if (l->b < 0) {
            close_with_reset(c);
            continue;
          }
        }
        links.push_back(std::move(l));
      }
    }
    auto pump = [&](int from, int to, std::deque<chunk>& q, const pollfd& pf_from,
                    const pollfd& pf_to, link& l) {
      if (pf_to.revents & POLLOUT)
        if (!flush(to, q, now)) l.dead = true;
      if (pf_from.revents & (POLLIN | POLLHUP | POLLERR)) {
        auto n = ::recv(from, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {
          l.dead = true;
          return;
        }
        q.push_back(chunk{now + delay, std::string(buf, static_cast<std::size_t>(n))});
        if (delay.count() == 0 && !flush(to, q, now)) l.dead = true;
      }
    };
    for (std::size_t i = 0; i < polled; ++i) {
      auto& l = *links[i];
      auto& pa = fds[2 + 2 * i];
      auto& pb = fds[3 + 2 * i];
      if (l.severed && !l.dead && (pa.revents & (POLLIN | POLLHUP | POLLERR))) {
        close_with_reset(l.a);
        l.a = -1;
        l.dead = true;
        continue;
      }
      if (l.dead || l.b < 0 || current == mode::blackhole) continue;
      pump(l.a, l.b, l.to_b, pa, pb, l);
      if (!l.dead) pump(l.b, l.a, l.to_a, pb, pa, l);
      if (l.dead) {
        ::close(l.a);
        ::close(l.b);
        l.a = l.b = -1; // never closed twice (the numbers get reused)
      }
    }
  }
  for (auto& l : links) {
    if (l->a >= 0) ::close(l->a);
    if (l->b >= 0) ::close(l->b);
  }
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

} // namespace pgcm::test
