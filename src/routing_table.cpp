#include "routing_table.hpp"

#include <algorithm>
#include <map>

namespace pgcm::detail {

namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

milliseconds non_negative(std::chrono::system_clock::duration d) {
  return std::max(milliseconds{0}, duration_cast<milliseconds>(d));
}

} // namespace

routing_table::entry* routing_table::find(const std::string& id) {
  for (auto& e : nodes_)
    if (e.id == id) return &e;
  return nullptr;
}

const routing_table::entry* routing_table::find(const std::string& id) const {
  for (auto& e : nodes_)
    if (e.id == id) return &e;
  return nullptr;
}

const node_view* routing_table::view(const std::string& id) const {
  auto e = find(id);
  return e ? &e->view : nullptr;
}

const node_facts* routing_table::facts(const std::string& id) const {
  auto e = find(id);
  return e ? &e->facts : nullptr;
}

bool routing_table::same_routing(const routing_table& other) const {
  if (primary_ != other.primary_ || split_brain_ != other.split_brain_ ||
      nodes_.size() != other.nodes_.size())
    return false;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    const auto& a = nodes_[i];
    const auto& b = other.nodes_[i];
    if (a.id != b.id || a.facts.healthy != b.facts.healthy || a.facts.role != b.facts.role ||
        a.facts.timeline != b.facts.timeline ||
        a.facts.system_identifier != b.facts.system_identifier ||
        a.facts.wal_lsn != b.facts.wal_lsn || a.facts.receive_lsn != b.facts.receive_lsn ||
        a.facts.last_replay != b.facts.last_replay || a.view.lag_bytes != b.view.lag_bytes ||
        a.view.lag != b.view.lag || a.view.conflict != b.view.conflict ||
        a.behind_since.has_value() != b.behind_since.has_value())
      return false;
  }
  return true;
}

std::vector<std::string> routing_table::update(const std::string& id, const node_facts& facts) {
  std::vector<std::optional<std::string>> conflicts_before;
  for (auto& e : nodes_)
    conflicts_before.push_back(e.view.conflict);
  auto e = find(id);
  bool fact_changed = false;
  if (e == nullptr) {
    nodes_.push_back(entry{id, facts, {}, std::nullopt});
    conflicts_before.emplace_back();
    fact_changed = facts.role != node_role::unknown || facts.timeline != 0;
  } else {
    fact_changed = e->facts.role != facts.role || e->facts.timeline != facts.timeline;
    e->facts = facts;
  }
  recompute();
  std::vector<std::string> changed;
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].view.conflict != conflicts_before[i] || (nodes_[i].id == id && fact_changed))
      changed.push_back(nodes_[i].id);
  return changed;
}

std::vector<std::string> routing_table::remove(const std::string& id) {
  auto i = std::find_if(nodes_.begin(), nodes_.end(), [&](auto& e) { return e.id == id; });
  if (i == nodes_.end()) return {};
  nodes_.erase(i);
  std::vector<std::optional<std::string>> before;
  for (auto& e : nodes_)
    before.push_back(e.view.conflict);
  recompute();
  std::vector<std::string> changed;
  for (std::size_t k = 0; k < nodes_.size(); ++k)
    if (nodes_[k].view.conflict != before[k]) changed.push_back(nodes_[k].id);
  return changed;
}

void routing_table::recompute() {
  for (auto& e : nodes_)
    e.view.conflict.reset();
  // The cluster's system identifier: the most common known one; a tie goes
  // to the node added first.
  std::map<std::uint64_t, std::size_t> votes;
  for (auto& e : nodes_)
    if (e.facts.system_identifier != 0) ++votes[e.facts.system_identifier];
  std::uint64_t cluster_id = 0;
  std::size_t best = 0;
  for (auto& e : nodes_) {
    auto sid = e.facts.system_identifier;
    if (sid != 0 && votes[sid] > best) {
      best = votes[sid];
      cluster_id = sid;
    }
  }
  for (auto& e : nodes_) {
    auto sid = e.facts.system_identifier;
    if (sid != 0 && sid != cluster_id)
      e.view.conflict = "system identifier " + std::to_string(sid) +
                        " differs from the cluster's " + std::to_string(cluster_id) +
                        " (another cluster)";
  }
  // The primary: the healthy, non-conflicting primary on the highest timeline.
  std::vector<entry*> primaries;
  for (auto& e : nodes_)
    if (e.facts.healthy && e.facts.role == node_role::primary && !e.view.conflict)
      primaries.push_back(&e);
  primary_.reset();
  split_brain_ = false;
  if (!primaries.empty()) {
    std::uint32_t top = 0;
    for (auto p : primaries)
      top = std::max(top, p->facts.timeline);
    std::vector<entry*> on_top;
    for (auto p : primaries)
      if (p->facts.timeline == top) on_top.push_back(p);
    if (on_top.size() == 1) {
      primary_ = on_top.front()->id;
    } else {
      split_brain_ = true;
      std::string names;
      for (auto p : on_top)
        names += (names.empty() ? "" : ", ") + p->id;
      for (auto p : on_top)
        p->view.conflict =
            "split brain: " + names + " are all primary on timeline " + std::to_string(top);
    }
    for (auto p : primaries)
      if (p->facts.timeline != top)
        p->view.conflict = "split brain: primary on timeline " + std::to_string(p->facts.timeline) +
                           ", older than timeline " + std::to_string(top) +
                           (primary_ ? " of " + *primary_ : "");
  }
  // Lag of each standby against the routed primary.
  const entry* p = primary_ ? find(*primary_) : nullptr;
  for (auto& e : nodes_) {
    e.view.lag_bytes.reset();
    e.view.lag.reset();
    if (p != nullptr && &e == p) {
      e.view.lag_bytes = 0;
      e.view.lag = milliseconds{0};
      e.behind_since.reset();
      continue;
    }
    if (e.facts.role != node_role::standby || p == nullptr || !p->facts.wal_lsn ||
        !e.facts.wal_lsn) {
      e.behind_since.reset();
      continue;
    }
    auto primary_pos = p->facts.wal_lsn->value;
    auto replayed = e.facts.wal_lsn->value;
    std::int64_t bytes =
        primary_pos > replayed ? static_cast<std::int64_t>(primary_pos - replayed) : 0;
    e.view.lag_bytes = bytes;
    if (bytes == 0) {
      e.behind_since.reset();
      e.view.lag = milliseconds{0};
      continue;
    }
    auto now = std::max(p->facts.sampled_at, e.facts.sampled_at);
    if (!e.behind_since) e.behind_since = now;
    auto lag = non_negative(now - *e.behind_since);
    if (e.facts.last_replay)
      lag = std::min(lag, non_negative(e.facts.sampled_at - *e.facts.last_replay));
    e.view.lag = lag;
  }
}

std::optional<std::string> routing_table::ineligible(const std::string& id, const route& r) const {
  auto e = find(id);
  if (e == nullptr) return "unknown node";
  if (!e->facts.healthy) return "unhealthy";
  if (e->view.conflict) return "in conflict (" + *e->view.conflict + ")";
  if (e->facts.role == node_role::unknown) return "role unknown";
  bool is_primary = primary_ && *primary_ == id;
  if (r.to == target::primary) {
    if (e->facts.role == node_role::standby) return "standby";
    return is_primary ? std::nullopt : std::optional<std::string>{"not the primary"};
  }
  if (is_primary) return std::nullopt; // as fresh as it gets
  if (e->facts.role != node_role::standby) return "primary, but not the cluster's";
  if (r.max_lag_bytes) {
    if (!e->view.lag_bytes) return "lag unknown";
    if (*e->view.lag_bytes > *r.max_lag_bytes)
      return "lag " + std::to_string(*e->view.lag_bytes) + " bytes > " +
             std::to_string(*r.max_lag_bytes);
  }
  if (r.max_lag) {
    if (!e->view.lag) return "lag unknown";
    if (*e->view.lag > *r.max_lag)
      return "lag " + std::to_string(e->view.lag->count()) + " ms > " +
             std::to_string(r.max_lag->count()) + " ms";
  }
  if (r.after) {
    if (!e->facts.wal_lsn) return "replay position unknown";
    if (*e->facts.wal_lsn < *r.after)
      return "replayed " + e->facts.wal_lsn->to_string() + " < " + r.after->to_string();
  }
  return std::nullopt;
}

routing_table::pick_result
routing_table::pick(const route& r, const std::function<double(const std::string&)>& load) {
  return pick(r, load, round_robin_++);
}

routing_table::pick_result
routing_table::pick(const route& r, const std::function<double(const std::string&)>& load,
                    std::uint64_t turn) const {
  pick_result out;
  if (r.to == target::primary && split_brain_) {
    out.code = errc::split_brain;
    std::string names;
    for (auto& e : nodes_)
      if (e.view.conflict && e.facts.role == node_role::primary)
        names += (names.empty() ? "" : ", ") + e.id;
    out.message = "split brain: " + names + " are all primary on the same timeline; writes refused";
    return out;
  }
  // Every routed query passes here (the facade too): the reasons a node is
  // not eligible are spelled out only when no node is.
  std::vector<const entry*> candidates;
  candidates.reserve(nodes_.size());
  const entry* primary = nullptr;
  auto why_not = [&](const entry& e, bool is_primary) -> std::optional<std::string> {
    auto why = ineligible(e.id, r);
    if (!why && is_primary && r.to == target::standby) why = "primary";
    return why;
  };
  for (auto& e : nodes_) {
    bool is_primary = primary_ && *primary_ == e.id;
    if (why_not(e, is_primary)) continue;
    if (is_primary)
      primary = &e;
    else
      candidates.push_back(&e); // the standbys
  }
  switch (r.to) {
  case target::primary:
    candidates.clear();
    if (primary) candidates.push_back(primary);
    break;
  case target::standby:
    break;
  case target::prefer_standby:
    if (candidates.empty() && primary) candidates.push_back(primary);
    break;
  case target::any:
    if (primary) candidates.push_back(primary);
    break;
  }
  if (candidates.empty()) {
    std::string reasons;
    for (auto& e : nodes_)
      if (auto why = why_not(e, primary_ && *primary_ == e.id))
        reasons += (reasons.empty() ? "" : "; ") + e.id + ": " + *why;
    out.code = errc::no_eligible_node;
    out.message = "no eligible node for target " + to_string(r.to) +
                  (reasons.empty() ? std::string{": no nodes"} : ": " + reasons);
    return out;
  }
  if (candidates.size() == 1) {
    out.node = candidates.front()->id;
    return out;
  }
  // Least loaded; ties (within 1e-9) round-robin in the order nodes were added.
  double least = load(candidates.front()->id);
  std::vector<const entry*> tied{candidates.front()};
  for (std::size_t i = 1; i < candidates.size(); ++i) {
    auto l = load(candidates[i]->id);
    if (l < least - 1e-9) {
      least = l;
      tied.assign(1, candidates[i]);
    } else if (l <= least + 1e-9) {
      tied.push_back(candidates[i]);
    }
  }
  out.node = tied[turn % tied.size()]->id;
  return out;
}

} // namespace pgcm::detail
