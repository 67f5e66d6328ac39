#pragma once

// A TCP fault proxy for the fault-injection tests: listens on 127.0.0.1 (a free
// port) and forwards to a target port on 127.0.0.1, with a switchable fault:
//   pass       forward both ways
//   delay      forward each chunk `delay` late (both directions)
//   blackhole  accept, forward nothing, keep every socket open (a silent host)
//   reset      reset (RST) every connection, and each new one right after accept
//   refuse     stop listening: connects are refused
//   sever      a middlebox forgets every open connection (a firewall's idle
//              timeout): the server side is closed, the client side stays
//              open and silent until the client sends, which gets an RST.
//              New connections pass; later set()s leave severed ones alone.
// One thread, poll(); stops in the destructor.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>

namespace pgcm::test {

class fault_proxy {
public:
  enum class mode { pass, delay, blackhole, reset, refuse, sever };

  /// Listens on `listen_address` (any 127.x.y.z works on Linux loopback).
  explicit fault_proxy(std::uint16_t target_port, const char* listen_address = "127.0.0.1");
  ~fault_proxy();
  fault_proxy(const fault_proxy&) = delete;
  fault_proxy& operator=(const fault_proxy&) = delete;

  std::uint16_t port() const { return port_; }

  /// Switches the fault; takes effect within a few milliseconds.
  void set(mode m, std::chrono::milliseconds delay = std::chrono::milliseconds{0});

  /// Connections currently proxied (or held, when blackholed).
  int connections() const { return connections_; }

private:
  void run();

  std::uint16_t target_;
  unsigned listen_addr_ = 0; // network byte order
  std::uint16_t port_ = 0;
  int wake_[2] = {-1, -1};
  int listen_fd_ = -1; // owned by the proxy thread
  std::mutex mtx_;
  mode mode_ = mode::pass;
  std::chrono::milliseconds delay_{0};
  bool changed_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread thread_;
};

} // namespace pgcm::test
