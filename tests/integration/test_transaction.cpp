// Transactions: with_transaction (commit, rollback, exception, retries on
// serialization failure and deadlock, deadline inside pg_sleep, backend
// terminated mid-transaction and during COMMIT), the pinned connection in the
// pool stats, the actor API's session whose owner dies, shutdown with an
// open session.
#define BOOST_TEST_MODULE test_transaction
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include <pgcm/actors/remote_link.hpp>
#include <pgcm/messages/error.hpp>
#include <pgcm/messages/protocol.hpp>

#include "fixture.hpp"

using namespace std::chrono_literals;
using namespace pgcm;
using pgcm::test::cluster;

namespace {

/// A manager over node0 only.
std::string admin(const std::string& sql) {
  return cluster::get().admin_sql("node0", sql);
}

/// Lets `n` threads wait until all of them arrived (at most `timeout`).
class gate {
public:
  explicit gate(int n) : left_(n) {}
  void arrive_and_wait(std::chrono::milliseconds timeout = 5s) {
    std::unique_lock<std::mutex> lock{mtx_};
    if (--left_ <= 0) {
      cv_.notify_all();
      return;
    }
    cv_.wait_for(lock, timeout, [this] { return left_ <= 0; });
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  int left_;
};

struct table_fixture {
  std::unique_ptr<connection_manager> mgr = test::node0_manager(pool_config{2, 6});
  table_fixture() {
    mgr->query("node0", "DROP TABLE IF EXISTS tx_items");
    mgr->query("node0", "CREATE TABLE tx_items (id int PRIMARY KEY, v int NOT NULL)");
  }
  int count_where(const std::string& cond) {
    return std::stoi(admin("SELECT count(*) FROM tx_items WHERE " + cond));
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(transactions, table_fixture)

BOOST_AUTO_TEST_CASE(commit_is_visible_and_rollback_is_not) {
  std::int64_t xid1 = 0;
  std::int64_t xid2 = 0;
  auto at = mgr->with_transaction("node0", [&](transaction& tx) {
    BOOST_CHECK_EQUAL(tx.node_id(), "node0");
    xid1 = tx.query("SELECT txid_current()")[0].get<std::int64_t>(0);
    tx.query("INSERT INTO tx_items VALUES ($1, $2)", {1, 10});
    // Not visible from another connection before COMMIT.
    BOOST_CHECK_EQUAL(count_where("id = 1"), 0);
    xid2 = tx.query("SELECT txid_current()")[0].get<std::int64_t>(0);
  });
  BOOST_CHECK_EQUAL(xid1, xid2); // one transaction
  BOOST_CHECK_EQUAL(count_where("id = 1"), 1);
  BOOST_CHECK(at.value > 0);
  // The position is at or after the commit record.
  BOOST_CHECK_EQUAL(admin("SELECT pg_current_wal_insert_lsn() >= '" + at.to_string() + "'::pg_lsn"),
                    "t");

  // An exception in fn: rolled back, rethrown as is.
  BOOST_CHECK_THROW(mgr->with_transaction("node0",
                                          [&](transaction& tx) {
                                            tx.query("INSERT INTO tx_items VALUES (2, 20)");
                                            throw std::runtime_error{"changed my mind"};
                                          }),
                    std::runtime_error);
  BOOST_CHECK_EQUAL(count_where("id = 2"), 0);

  // A failing statement: its error (with SQLSTATE), nothing committed.
  try {
    mgr->with_transaction("node0", [&](transaction& tx) {
      tx.query("INSERT INTO tx_items VALUES (3, 30)");
      tx.query("INSERT INTO tx_items VALUES (1, 1)"); // duplicate key
    });
    BOOST_FAIL("no error");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::query_failed);
    BOOST_CHECK(e.sqlstate() == std::optional<std::string>{"23505"});
  }
  BOOST_CHECK_EQUAL(count_where("id = 3"), 0);

  // A failure swallowed inside fn: COMMIT rolls back, and says so.
  try {
    mgr->with_transaction("node0", [&](transaction& tx) {
      tx.query("INSERT INTO tx_items VALUES (4, 40)");
      try {
        tx.query("SELECT 1/0");
      } catch (const error&) {
      }
    });
    BOOST_FAIL("no error");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::query_failed);
    BOOST_CHECK_MESSAGE(std::string{e.what()}.find("rolled back") != std::string::npos, e.what());
  }
  BOOST_CHECK_EQUAL(count_where("id = 4"), 0);

  // Read only: lsn 0.
  transaction_options ro;
  ro.read_only = true;
  ro.level = isolation::repeatable_read;
  auto none = mgr->with_transaction(
      "node0",
      [&](transaction& tx) {
        BOOST_CHECK_EQUAL(tx.query("SHOW transaction_isolation")[0].get<std::string>(0),
                          "repeatable read");
        BOOST_CHECK_EQUAL(tx.query("SHOW transaction_read_only")[0].get<std::string>(0), "on");
      },
      ro);
  BOOST_CHECK_EQUAL(none.value, 0u);
  // Transaction control inside: use commit/rollback instead.
  BOOST_CHECK_THROW(mgr->with_transaction("node0", [](transaction& tx) { tx.query("COMMIT"); }),
                    error);
  // Through a route too; typed rows.
  mgr->with_transaction(route{target::any}, [&](transaction& tx) {
    BOOST_CHECK_EQUAL(tx.node_id(), "node0");
    auto n = tx.query<std::tuple<int>>("SELECT v FROM tx_items WHERE id = 1");
    BOOST_REQUIRE_EQUAL(n.size(), 1u);
    BOOST_CHECK_EQUAL(std::get<0>(n[0]), 10);
  });
  BOOST_CHECK_EQUAL(test::server_connections("node0", "idle in transaction"), 0);
}

BOOST_AUTO_TEST_CASE(bad_input_is_a_clear_error) {
  auto code_of = [](auto&& call) {
    try {
      call();
    } catch (const error& e) {
      return e.code();
    }
    return errc::internal;
  };
  auto noop = [](transaction&) {};
  transaction_options negative;
  negative.retries = -1;
  BOOST_CHECK(code_of([&] { mgr->with_transaction("node0", noop, negative); }) ==
              errc::invalid_argument);
  transaction_options zero;
  zero.timeout = 0ms;
  BOOST_CHECK(code_of([&] { mgr->with_transaction("node0", noop, zero); }) ==
              errc::invalid_argument);
  BOOST_CHECK(code_of([&] { mgr->with_transaction("nope", noop); }) == errc::node_not_found);
  BOOST_CHECK(code_of([&] { mgr->with_transaction("node0", nullptr); }) == errc::invalid_argument);
  // An empty transaction commits (nothing written: a WAL position all the same).
  BOOST_CHECK(mgr->with_transaction("node0", noop).value > 0);
}

BOOST_AUTO_TEST_CASE(serialization_failure_is_retried_to_success) {
  mgr->query("node0", "INSERT INTO tx_items VALUES (1, 0), (2, 0)");
  auto run = [&](int retries, int mine, std::atomic<int>& attempts, gate& g) {
    transaction_options o;
    o.level = isolation::serializable;
    o.retries = retries;
    mgr->with_transaction(
        "node0",
        [&](transaction& tx) {
          int attempt = ++attempts;
          // Write skew: both read what the other writes.
          tx.query("SELECT sum(v) FROM tx_items");
          if (attempt <= 2) g.arrive_and_wait();
          tx.query("UPDATE tx_items SET v = v + 1 WHERE id = $1", {mine});
        },
        o);
  };
  {
    // Without retries one of the two fails with 40001.
    std::atomic<int> attempts{0};
    gate g{2};
    std::atomic<int> failures{0};
    std::string state;
    auto one = [&](int id) {
      try {
        run(0, id, attempts, g);
      } catch (const error& e) {
        ++failures;
        state = e.sqlstate().value_or("");
      }
    };
    std::thread a{one, 1};
    std::thread b{one, 2};
    a.join();
    b.join();
    BOOST_CHECK_EQUAL(failures.load(), 1);
    BOOST_CHECK_EQUAL(state, "40001");
  }
  std::atomic<int> attempts{0};
  gate g{2};
  std::atomic<int> failures{0};
  auto one = [&](int id) {
    try {
      run(3, id, attempts, g);
    } catch (const error& e) {
      BOOST_TEST_MESSAGE("failed: " << e.what());
      ++failures;
    }
  };
  auto before = std::stoi(admin("SELECT sum(v) FROM tx_items"));
  std::thread a{one, 1};
  std::thread b{one, 2};
  a.join();
  b.join();
  BOOST_CHECK_EQUAL(failures.load(), 0);
  BOOST_CHECK_GE(attempts.load(), 3); // one of them ran again
  BOOST_CHECK_EQUAL(std::stoi(admin("SELECT sum(v) FROM tx_items")), before + 2);
}

BOOST_AUTO_TEST_CASE(deadlock_is_retried_to_success) {
  mgr->query("node0", "INSERT INTO tx_items VALUES (1, 0), (2, 0)");
  std::atomic<int> attempts{0};
  std::atomic<int> failures{0};
  gate g{2};
  auto one = [&](int first, int second) {
    transaction_options o;
    o.retries = 2;
    o.timeout = 20s;
    try {
      mgr->with_transaction(
          "node0",
          [&](transaction& tx) {
            int attempt = ++attempts;
            tx.query("UPDATE tx_items SET v = v + 1 WHERE id = $1", {first});
            if (attempt <= 2) g.arrive_and_wait();
            tx.query("UPDATE tx_items SET v = v + 1 WHERE id = $1", {second});
          },
          o);
    } catch (const error& e) {
      BOOST_TEST_MESSAGE("failed: " << e.what());
      ++failures;
    }
  };
  std::thread a{one, 1, 2};
  std::thread b{one, 2, 1};
  a.join();
  b.join();
  BOOST_CHECK_EQUAL(failures.load(), 0);
  BOOST_CHECK_GE(attempts.load(), 3);
  BOOST_CHECK_EQUAL(admin("SELECT string_agg(v::text, ',' ORDER BY id) FROM tx_items"), "2,2");
}

BOOST_AUTO_TEST_CASE(deadline_inside_pg_sleep_cancels_and_rolls_back) {
  auto pool_mgr = test::node0_manager(pool_config{1, 1});
  transaction_options o;
  o.timeout = 600ms;
  auto start = std::chrono::steady_clock::now();
  int pid = 0;
  try {
    pool_mgr->with_transaction(
        "node0",
        [&](transaction& tx) {
          pid = tx.query("SELECT pg_backend_pid()")[0].get<int>(0);
          tx.query("INSERT INTO tx_items VALUES (7, 70)");
          tx.query("SELECT pg_sleep(30)");
        },
        o);
    BOOST_FAIL("no timeout");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::query_timeout);
  }
  auto took = test::ms_since(start);
  BOOST_CHECK_GE(took, 500);
  BOOST_CHECK_LT(took, 4000);
  // Cancelled on the server, rolled back, and the connection kept (idle).
  BOOST_CHECK(test::eventually(
      [&] {
        return admin("SELECT state FROM pg_stat_activity WHERE pid = " + std::to_string(pid)) ==
               "idle";
      },
      3s));
  BOOST_CHECK_EQUAL(count_where("id = 7"), 0);
  BOOST_CHECK_EQUAL(pool_mgr->query("node0", "SELECT pg_backend_pid()")[0].get<int>(0), pid);
  BOOST_CHECK_EQUAL(pool_mgr->get_pool_stats("node0")->connections_discarded, 0);
  // An idle transaction past its deadline rolls back too.
  try {
    pool_mgr->with_transaction(
        "node0",
        [&](transaction& tx) {
          tx.query("INSERT INTO tx_items VALUES (8, 80)");
          std::this_thread::sleep_for(900ms);
          tx.query("SELECT 1");
        },
        o);
    BOOST_FAIL("no timeout");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::query_timeout);
  }
  BOOST_CHECK_EQUAL(count_where("id = 8"), 0);
  BOOST_CHECK_EQUAL(pool_mgr->query("node0", "SELECT 1")[0].get<int>(0), 1);
}

BOOST_AUTO_TEST_CASE(backend_terminated_mid_transaction_is_not_retried) {
  std::atomic<int> attempts{0};
  transaction_options o;
  o.retries = 3;
  try {
    mgr->with_transaction(
        "node0",
        [&](transaction& tx) {
          ++attempts;
          auto pid = tx.query("SELECT pg_backend_pid()")[0].get<int>(0);
          tx.query("INSERT INTO tx_items VALUES (9, 90)");
          admin("SELECT pg_terminate_backend(" + std::to_string(pid) + ")");
          tx.query("SELECT 1");
        },
        o);
    BOOST_FAIL("no error");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::connection_failed);
  }
  BOOST_CHECK_EQUAL(attempts.load(), 1);
  BOOST_CHECK_EQUAL(count_where("id = 9"), 0);
  BOOST_CHECK_EQUAL(mgr->query("node0", "SELECT 1")[0].get<int>(0), 1);
}

BOOST_AUTO_TEST_CASE(backend_terminated_during_commit_says_outcome_unknown) {
  // A deferred constraint trigger sleeps at COMMIT: terminate the backend then.
  mgr->query("node0", "CREATE OR REPLACE FUNCTION tx_sleep() RETURNS trigger LANGUAGE plpgsql "
                      "AS $$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$");
  mgr->query("node0", "CREATE CONSTRAINT TRIGGER tx_slow AFTER INSERT ON tx_items DEFERRABLE "
                      "INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tx_sleep()");
  std::atomic<int> pid{0};
  std::atomic<bool> terminated{false};
  std::thread killer{[&] {
    terminated = test::eventually(
        [&] {
          return pid != 0 && admin("SELECT count(*) FROM pg_stat_activity WHERE pid = " +
                                   std::to_string(pid.load()) +
                                   " AND state = 'active' AND query = 'COMMIT'") == "1";
        },
        5s);
    if (terminated) admin("SELECT pg_terminate_backend(" + std::to_string(pid.load()) + ")");
  }};
  transaction_options o;
  o.retries = 3;
  o.timeout = 20s;
  try {
    mgr->with_transaction(
        "node0",
        [&](transaction& tx) {
          pid = tx.query("SELECT pg_backend_pid()")[0].get<int>(0);
          tx.query("INSERT INTO tx_items VALUES (10, 100)");
        },
        o);
    BOOST_FAIL("no error");
  } catch (const error& e) {
    BOOST_CHECK(e.code() == errc::connection_failed);
    BOOST_CHECK_MESSAGE(std::string{e.what()}.find("outcome unknown") != std::string::npos,
                        e.what());
  }
  killer.join();
  BOOST_CHECK(terminated);
  mgr->query("node0", "DROP TRIGGER tx_slow ON tx_items");
  BOOST_CHECK_EQUAL(mgr->query("node0", "SELECT 1")[0].get<int>(0), 1);
}

BOOST_AUTO_TEST_CASE(pinned_connection_is_in_use_and_gets_nothing_else) {
  auto pool_mgr = test::node0_manager(pool_config{1, 1});
  BOOST_REQUIRE(test::eventually(
      [&] { return pool_mgr->get_pool_stats("node0")->idle_connections == 1; }, 5s));
  pool_mgr->with_transaction("node0", [&](transaction& tx) {
    tx.query("SELECT 1");
    auto s = *pool_mgr->get_pool_stats("node0");
    BOOST_CHECK_EQUAL(s.total_connections, 1);
    BOOST_CHECK_EQUAL(s.idle_connections, 0);
    // The only connection is pinned: a query waits for it (here: times out).
    BOOST_CHECK_THROW(pool_mgr->query("node0", "SELECT 2", {}, 300ms), error);
    tx.query("SELECT 3");
  });
  BOOST_CHECK(test::eventually(
      [&] { return pool_mgr->get_pool_stats("node0")->idle_connections == 1; }, 5s));
  BOOST_CHECK_EQUAL(pool_mgr->query("node0", "SELECT 4")[0].get<int>(0), 4);
}

BOOST_AUTO_TEST_CASE(session_whose_owner_dies_rolls_back_within_a_second) {
  auto manager = manager_handle(*mgr);
  auto pid = std::make_shared<std::promise<int>>();
  auto got = pid->get_future();
  auto owner = mgr->system().spawn([manager, pid](caf::event_based_actor* self) -> caf::behavior {
    self->request(manager, 5s, begin_atom::value, std::string{"node0"}, transaction_options{})
        .then(
            [=](transaction_session& s) {
              self->request(s.session, 5s, query_atom::value,
                            std::string{"INSERT INTO tx_items VALUES (11, 110)"},
                            std::vector<param>{})
                  .then(
                      [=](result_set&) {
                        self->request(s.session, 5s, query_atom::value,
                                      std::string{"SELECT pg_backend_pid()"}, std::vector<param>{})
                            .then([=](result_set& rs) { pid->set_value(rs[0].get<int>(0)); },
                                  [=](caf::error&) { pid->set_value(-1); });
                      },
                      [=](caf::error&) { pid->set_value(-1); });
            },
            [=](caf::error&) { pid->set_value(-1); });
    return caf::behavior{[](int) {}}; // waits to be killed
  });
  BOOST_REQUIRE(got.wait_for(10s) == std::future_status::ready);
  auto backend = got.get();
  BOOST_REQUIRE_GT(backend, 0);
  auto state = [&] {
    return admin("SELECT state FROM pg_stat_activity WHERE pid = " + std::to_string(backend));
  };
  BOOST_CHECK_EQUAL(state(), "idle in transaction");
  caf::anon_send_exit(owner, caf::exit_reason::kill);
  BOOST_CHECK(test::eventually([&] { return state() == "idle"; }, 1s));
  BOOST_CHECK_EQUAL(count_where("id = 11"), 0);
}

BOOST_AUTO_TEST_CASE(shutdown_with_an_open_session_is_bounded) {
  auto opts = test::fast_options();
  opts.shutdown_timeout = 1s;
  auto own = test::node0_manager(pool_config{1, 2}, opts);
  std::promise<int> pid;
  auto got = pid.get_future();
  std::atomic<bool> failed{false};
  std::thread user{[&] {
    transaction_options o;
    o.timeout = 60s;
    try {
      own->with_transaction(
          "node0",
          [&](transaction& tx) {
            pid.set_value(tx.query("SELECT pg_backend_pid()")[0].get<int>(0));
            tx.query("SELECT pg_sleep(30)");
          },
          o);
    } catch (const error& e) {
      BOOST_TEST_MESSAGE("transaction ended with: " << e.what());
      failed = true;
    }
  }};
  BOOST_REQUIRE(got.wait_for(10s) == std::future_status::ready);
  auto backend = got.get();
  std::this_thread::sleep_for(200ms);
  auto start = std::chrono::steady_clock::now();
  own->shutdown();
  BOOST_CHECK_LT(test::ms_since(start), 4000);
  user.join();
  BOOST_CHECK(failed);
  BOOST_CHECK(test::eventually(
      [&] {
        return admin("SELECT count(*) FROM pg_stat_activity WHERE pid = " +
                     std::to_string(backend)) == "0";
      },
      5s));
}

BOOST_AUTO_TEST_SUITE_END()
