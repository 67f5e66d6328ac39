#include "watch_view.hpp"

#include <algorithm>

#include "display_units.hpp"
#include "text_table.hpp"

namespace pgcm::cli {

namespace {

// SGR parameters.
constexpr const char* bold = "1";
constexpr const char* dim = "2";
constexpr const char* inverse = "7";
constexpr const char* red = "31";
constexpr const char* bold_red = "1;31";
constexpr const char* green = "32";
constexpr const char* yellow = "33";
constexpr const char* magenta = "35";
constexpr const char* cyan = "36";

/// One screen line: visible text plus SGR escapes, and its visible width.
class screen_line {
public:
  /// `base`: SGR parameters for the whole line (e.g. inverse for the title bar).
  explicit screen_line(const view_style& s, const char* base = nullptr) : style_(s), base_(base) {
    if (base_ != nullptr && style_.color) out_ = std::string{"\x1b["} + base_ + "m";
  }

  screen_line& add(std::string_view text, const char* sgr = nullptr) {
    // Never let data (ids, errors) carry newlines or escapes into the view.
    std::string clean = sanitize(text);
    std::replace(clean.begin(), clean.end(), '\n', ' ');
    bool styled = sgr != nullptr && style_.color;
    std::string base = base_ != nullptr ? std::string{base_} + ";" : std::string{};
    if (styled) out_ += "\x1b[0;" + base + sgr + "m";
    out_ += clean;
    if (styled)
      out_ += "\x1b[0" + (base_ != nullptr ? ";" + std::string{base_} : std::string{}) + "m";
    width_ += display_width(clean);
    return *this;
  }

  screen_line& pad_to(std::size_t col) {
    if (width_ < col) add(std::string(col - width_, ' '));
    return *this;
  }

  std::size_t width() const { return width_; }

  /// The line cut to the view's width.
  std::string str() const {
    auto max = static_cast<std::size_t>(std::max(style_.width, 1));
    if (width_ <= max) return style_.color && base_ != nullptr ? out_ + "\x1b[0m" : out_;
    std::string cut;
    std::size_t w = 0;
    for (std::size_t i = 0; i < out_.size();) {
      if (out_[i] == '\x1b') {
        auto end = out_.find('m', i);
        end = end == std::string::npos ? out_.size() : end + 1;
        cut.append(out_, i, end - i);
        i = end;
        continue;
      }
      bool starts_char = (static_cast<unsigned char>(out_[i]) & 0xc0) != 0x80;
      if (starts_char && w == max) break;
      if (starts_char) ++w;
      cut.push_back(out_[i++]);
    }
    if (style_.color) cut += "\x1b[0m";
    return cut;
  }

private:
  const view_style& style_;
  const char* base_;
  std::string out_;
  std::size_t width_ = 0;
};

const char* status_color(health_state s) {
  switch (s) {
  case health_state::healthy:
    return green;
  case health_state::unhealthy:
    return bold_red;
  case health_state::unknown:
    return yellow;
  }
  return yellow;
}

std::string pool_gauge(const pool_stats& p, int max, bool unicode, std::size_t cells) {
  auto scale = [&](std::int64_t n) {
    if (max <= 0) return std::size_t{0};
    auto c = (n * static_cast<std::int64_t>(cells) + max / 2) / max;
    return static_cast<std::size_t>(
        std::clamp<std::int64_t>(c, 0, static_cast<std::int64_t>(cells)));
  };
  auto busy = std::max<std::int64_t>(0, p.total_connections - p.idle_connections);
  auto busy_cells = scale(busy);
  auto open_cells = std::max(busy_cells, scale(p.total_connections));
  std::string out = "[";
  for (std::size_t i = 0; i < cells; ++i)
    out += i < busy_cells   ? (unicode ? "\u2588" : "#")
           : i < open_cells ? (unicode ? "\u2592" : "+")
                            : (unicode ? "\u00b7" : ".");
  return out + "]";
}

std::string last_error_of(const node_state& n) {
  if (n.info.health.conflict) return "conflict: " + *n.info.health.conflict;
  if (n.info.health.last_error) return *n.info.health.last_error;
  if (n.disconnect_error) return n.disconnect_error->message;
  return "-";
}

void node_block(std::vector<std::string>& out, const node_state& n, std::size_t id_width,
                const watch_model& m, const view_style& s) {
  auto& h = n.info.health;
  auto& c = n.info.config;
  auto& p = n.info.pool;
  {
    screen_line l{s};
    l.add(" ");
    l.add(s.unicode ? "\u25cf" : "*", status_color(h.status));
    l.add(" ");
    l.add(n.info.id, bold);
    l.pad_to(3 + id_width + 2);
    auto role = to_string(h.role);
    l.add(role, h.role == node_role::primary ? magenta : h.role == node_role::standby ? cyan : dim);
    l.pad_to(3 + id_width + 2 + 9);
    l.add(to_string(h.status), status_color(h.status));
    l.pad_to(3 + id_width + 2 + 9 + 11);
    if (!c.host.empty()) {
      bool ipv6 = c.host.find(':') != std::string::npos;
      l.add((ipv6 ? "[" + c.host + "]" : c.host) + ":" + std::to_string(c.port) + "/" + c.database);
      l.add(c.ssl.enabled ? (c.ssl.reject_unauthorized ? "  tls verify" : "  tls") : "", dim);
    }
    l.add("  checked " + format_age(h.last_check, m.now), dim);
    if (h.timeline) l.add("  timeline " + std::to_string(h.timeline), dim);
    if (h.role == node_role::standby && h.lag_bytes)
      l.add("  lag " + format_lag(h), *h.lag_bytes > 0 ? yellow : dim);
    if (h.conflict) l.add("  CONFLICT", bold_red);
    out.push_back(l.str());
  }
  {
    screen_line l{s};
    l.add("   latency  ");
    l.add(format_latency(h.latency));
    l.pad_to(24);
    auto spark_width = static_cast<std::size_t>(std::clamp(s.width - 56, 10, 60));
    l.add(sparkline(n.history, spark_width, s.unicode), cyan);
    l.pad_to(24 + spark_width + 2);
    l.add("failures ");
    l.add(std::to_string(h.consecutive_failures), h.consecutive_failures > 0 ? bold_red : nullptr);
    if (n.connected)
      l.add(*n.connected ? "   connected" : "   disconnected", *n.connected ? dim : bold_red);
    out.push_back(l.str());
  }
  {
    screen_line l{s};
    l.add("   pool     ");
    l.add(pool_gauge(p, c.pool.max, s.unicode, 10), green);
    l.add(" " + std::to_string(p.total_connections) + "/" + std::to_string(c.pool.max));
    l.pad_to(32);
    auto busy = std::max<std::int64_t>(0, p.total_connections - p.idle_connections);
    l.add("busy " + std::to_string(busy) + "  idle " + std::to_string(p.idle_connections) + "  ");
    l.add("waiting " + std::to_string(p.waiting_requests),
          p.waiting_requests > 0 ? yellow : nullptr);
    l.add("   ok " + std::to_string(p.queries_ok) + "  ", dim);
    l.add("failed " + std::to_string(p.queries_failed), p.queries_failed > 0 ? red : dim);
    l.add("  timed out " + std::to_string(p.queries_timed_out),
          p.queries_timed_out > 0 ? red : dim);
    out.push_back(l.str());
  }
  {
    screen_line l{s};
    l.add("   last error  ");
    auto err = last_error_of(n);
    l.add(err, err == "-" ? dim : red);
    out.push_back(l.str());
  }
}

void slots_block(std::vector<std::string>& out, const watch_model& m, const view_style& s) {
  const auto& sl = m.slots;
  {
    screen_line l{s};
    if (sl.node_id.empty()) {
      l.add(" Replication slots", bold);
      l.add(sl.fetched ? ": no healthy primary" : ": not read yet", dim);
    } else {
      l.add(" Replication slots on " + sl.node_id, bold);
      if (sl.error)
        l.add(": " + *sl.error, red);
      else if (sl.rows.empty())
        l.add(": none", dim);
    }
    out.push_back(l.str());
  }
  if (sl.rows.empty() || sl.error) return;
  std::vector<std::string> headers{"slot",  "type",        "active",   "client",
                                   "state", "restart_lsn", "retained", "replay lag"};
  std::vector<std::vector<std::string>> rows;
  for (auto& r : sl.rows)
    rows.push_back({r.name, r.type, r.active ? "yes" : "no", r.client.empty() ? "-" : r.client,
                    r.state.empty() ? "-" : r.state, r.restart_lsn.empty() ? "-" : r.restart_lsn,
                    r.retained.empty() ? "-" : r.retained,
                    r.replay_lag.empty() ? "-" : r.replay_lag});
  std::vector<std::size_t> widths;
  for (std::size_t c = 0; c < headers.size(); ++c) {
    std::size_t w = display_width(headers[c]);
    for (auto& r : rows)
      w = std::max(w, display_width(sanitize(r[c])));
    widths.push_back(w);
  }
  auto emit = [&](const std::vector<std::string>& cells, bool header) {
    screen_line l{s};
    l.add("   ");
    std::size_t col = 3;
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const char* sgr = header ? dim : nullptr;
      if (!header && c == 2) sgr = cells[c] == "yes" ? green : red;
      l.add(cells[c], sgr);
      col += widths[c] + 2;
      if (c + 1 < cells.size()) l.pad_to(col);
    }
    out.push_back(l.str());
  };
  emit(headers, true);
  for (auto& r : rows)
    emit(r, false);
}

} // namespace

std::string sparkline(const std::vector<latency_sample>& history, std::size_t width, bool unicode) {
  static const char* blocks[] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                 "\u2585", "\u2586", "\u2587", "\u2588"};
  static const char ascii[] = "_.,-=+*#";
  auto first = history.size() > width ? history.size() - width : 0;
  std::int64_t lo = -1;
  std::int64_t hi = -1;
  for (auto i = first; i < history.size(); ++i) {
    if (!history[i].ok) continue;
    auto v = history[i].latency.count();
    lo = lo < 0 ? v : std::min(lo, v);
    hi = hi < 0 ? v : std::max(hi, v);
  }
  std::string out;
  for (auto i = first; i < history.size(); ++i) {
    auto& smp = history[i];
    if (!smp.ok) {
      out += unicode ? "\u00d7" : "x";
      continue;
    }
    int level = 3;
    if (hi > lo) level = static_cast<int>((smp.latency.count() - lo) * 7 / (hi - lo));
    out += unicode ? blocks[level] : std::string(1, ascii[level]);
  }
  return out;
}

std::vector<std::string> render_watch(const watch_model& m, const view_style& s) {
  std::vector<std::string> out;
  const auto& snap = m.snapshot;
  {
    screen_line l{s, inverse};
    l.add(" " + m.title, bold);
    l.add(" \u00b7 " + std::to_string(snap.nodes.size()) +
          (snap.nodes.size() == 1 ? " node" : " nodes"));
    auto healthy = snap.healthy_count();
    l.add(" \u00b7 ");
    l.add(std::to_string(healthy) + " healthy", healthy == snap.nodes.size() ? green : yellow);
    if (auto* p = snap.primary()) l.add(" \u00b7 primary " + p->info.id);
    if (!snap.manager_alive) l.add("  manager stopped", bold_red);
    std::string right = format_clock(m.now) + (s.interactive ? "   q: quit " : " ");
    auto total = static_cast<std::size_t>(s.width);
    if (l.width() + display_width(right) + 1 <= total)
      l.pad_to(total - display_width(right));
    else
      l.add(" ");
    l.add(right, dim);
    std::string line = l.str();
    if (!s.unicode) {
      // The middle dot is not ASCII.
      for (std::string::size_type p; (p = line.find("\u00b7")) != std::string::npos;)
        line.replace(p, 2, "-");
    }
    out.push_back(line);
  }
  out.emplace_back();
  std::size_t id_width = 6;
  for (auto& n : snap.nodes)
    id_width = std::max(id_width, display_width(sanitize(n.info.id)));
  if (snap.nodes.empty()) {
    screen_line l{s};
    l.add(" (no nodes yet)", dim);
    out.push_back(l.str());
    out.emplace_back();
  }
  for (auto& n : snap.nodes) {
    node_block(out, n, id_width, m, s);
    out.emplace_back();
  }
  slots_block(out, m, s);
  if (!m.log_lines.empty()) {
    out.emplace_back();
    screen_line head{s};
    head.add(" Log", bold);
    out.push_back(head.str());
    for (auto& text : m.log_lines) {
      screen_line l{s};
      l.add("   " + text, dim);
      out.push_back(l.str());
    }
  }
  if (s.height > 0) {
    auto h = static_cast<std::size_t>(s.height);
    if (out.size() > h) {
      auto hidden = out.size() - h + 1;
      out.resize(h - 1);
      screen_line l{s};
      l.add(" ... " + std::to_string(hidden) + " more lines (enlarge the window)", dim);
      out.push_back(l.str());
    }
    out.resize(h);
  }
  return out;
}

} // namespace pgcm::cli
