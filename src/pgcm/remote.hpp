#pragma once

// Where a remote manager listens, and the TLS files to reach it.

#include <chrono>
#include <cstdint>
#include <string>

namespace pgcm {

/// Mutual TLS for remote access: all three set, or none.
struct tls_options {
  std::string certificate; ///< this side's certificate (PEM)
  std::string key;         ///< its private key (PEM)
  std::string ca;          ///< CA that signed the other side's certificate
  bool enabled() const { return !certificate.empty() || !key.empty() || !ca.empty(); }
};

struct remote_endpoint {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  tls_options tls;
};

/// Whether `host` is a loopback address or "localhost".
bool is_loopback(const std::string& host);

} // namespace pgcm
