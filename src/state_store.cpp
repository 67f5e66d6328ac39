#include "pgcm/state_store.hpp"

#include <condition_variable>
#include <mutex>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "log.hpp"
#include "pgcm/actors/remote_link.hpp"
#include "pgcm/actors/state_store_actor.hpp"
#include "pgcm/connection_manager.hpp"

namespace pgcm {

// -- cluster_snapshot -----------------------------------------------------------

const node_state* cluster_snapshot::find(const std::string& id) const {
  for (auto& n : nodes)
    if (n.info.id == id) return &n;
  return nullptr;
}

const node_state* cluster_snapshot::primary() const {
  for (auto& n : nodes)
    if (n.info.health.role == node_role::primary && n.info.health.status == health_state::healthy)
      return &n;
  return nullptr;
}

std::size_t cluster_snapshot::healthy_count() const {
  std::size_t k = 0;
  for (auto& n : nodes)
    if (n.info.health.status == health_state::healthy) ++k;
  return k;
}

// -- state_store ----------------------------------------------------------------

/// Shared with the actor's callback, so a store actor outliving its wrapper
/// stays harmless.
struct state_store::impl {
  mutable std::mutex mtx;
  mutable std::condition_variable changed;
  std::shared_ptr<const cluster_snapshot> current = std::make_shared<const cluster_snapshot>();

  std::mutex callback_mtx; // held while the callback runs
  std::function<void(std::uint64_t)> callback;

  state_store_actor actor;
  caf::actor_system* sys = nullptr;

  void publish(std::shared_ptr<const cluster_snapshot> snap) {
    auto version = snap->version;
    {
      std::lock_guard<std::mutex> guard{mtx};
      current = std::move(snap);
    }
    changed.notify_all();
    std::lock_guard<std::mutex> guard{callback_mtx};
    if (callback) callback(version);
  }
};

state_store::state_store(connection_manager& mgr, state_store_options opts)
    : impl_(std::make_shared<impl>()) {
  std::weak_ptr<impl> weak = impl_;
  impl_->sys = &mgr.system();
  impl_->actor = spawn_state_store(mgr.system(), manager_handle(mgr), opts,
                                   [weak](std::shared_ptr<const cluster_snapshot> snap) {
                                     if (auto self = weak.lock()) self->publish(std::move(snap));
                                   });
}

state_store::~state_store() {
  caf::anon_send_exit(impl_->actor, caf::exit_reason::user_shutdown);
  impl_->actor = nullptr;
  std::lock_guard<std::mutex> guard{impl_->callback_mtx};
  impl_->callback = nullptr;
}

cluster_snapshot state_store::snapshot() const {
  std::shared_ptr<const cluster_snapshot> snap;
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    snap = impl_->current;
  }
  return *snap;
}

std::uint64_t state_store::version() const {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  return impl_->current->version;
}

std::uint64_t state_store::wait_for_change(std::uint64_t since, milliseconds timeout) const {
  std::unique_lock<std::mutex> guard{impl_->mtx};
  impl_->changed.wait_for(guard, timeout, [&] { return impl_->current->version != since; });
  return impl_->current->version;
}

bool state_store::refresh(milliseconds timeout) {
  bool ok = false;
  {
    caf::scoped_actor self{*impl_->sys};
    self->request(impl_->actor, timeout, refresh_atom::value)
        .receive([&](ok_atom) { ok = true; }, [&](caf::error&) {});
  }
  log::release_caf_thread_logger();
  return ok;
}

void state_store::on_change(std::function<void(std::uint64_t)> callback) {
  std::lock_guard<std::mutex> guard{impl_->callback_mtx};
  impl_->callback = std::move(callback);
}

} // namespace pgcm
