// Which statements query() refuses (transaction control belongs to
// with_transaction), and the BEGIN a transaction session sends.
#define BOOST_TEST_MODULE test_transaction_statements
#include <boost/test/unit_test.hpp>

#include <string>

#include "pgcm/actors/transaction_session.hpp"
#include "pq_connection.hpp"

using pgcm::detail::transaction_statement_problem;

namespace {

bool refused(const std::string& sql) {
  return !transaction_statement_problem(sql).empty();
}

} // namespace

BOOST_AUTO_TEST_CASE(statements_that_open_or_end_a_transaction_are_refused) {
  for (const char* sql :
       {"BEGIN", "begin", "BeGiN;", "  BEGIN ISOLATION LEVEL SERIALIZABLE", "BEGIN WORK",
        "-- note\nBEGIN", "/* c */ begin", "/* a */ -- b\n START TRANSACTION",
        "start\ttransaction read only", "COMMIT", "commit;", "COMMIT AND CHAIN", "END", "end work",
        "ABORT", "ROLLBACK", "rollback work", "ROLLBACK TRANSACTION", "ROLLBACK AND NO CHAIN"})
    BOOST_CHECK_MESSAGE(refused(sql), sql);
  BOOST_CHECK(transaction_statement_problem("BEGIN").find("with_transaction") != std::string::npos);
  BOOST_CHECK(transaction_statement_problem("COMMIT").find("with_transaction") !=
              std::string::npos);
}

BOOST_AUTO_TEST_CASE(other_statements_are_not) {
  for (const char* sql :
       {"SELECT 1", "SELECT 'BEGIN'", "beginning", "BEGIN_x", "START_REPLICATION",
        "START", // not START TRANSACTION (a syntax error the server reports)
        "ROLLBACK TO SAVEPOINT a", "rollback to a", "ROLLBACK WORK TO SAVEPOINT a", "SAVEPOINT a",
        "RELEASE SAVEPOINT a", "ENDING", "committed", "", "   ", "-- only a comment",
        "UPDATE t SET x = 1 -- COMMIT"})
    BOOST_CHECK_MESSAGE(!refused(sql), sql);
}

BOOST_AUTO_TEST_CASE(begin_statement_carries_the_options) {
  pgcm::transaction_options o;
  BOOST_CHECK_EQUAL(pgcm::begin_statement(o), "BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE");
  o.level = pgcm::isolation::serializable;
  o.read_only = true;
  o.deferrable = true;
  BOOST_CHECK_EQUAL(pgcm::begin_statement(o),
                    "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE");
  o.level = pgcm::isolation::repeatable_read;
  o.read_only = false;
  o.deferrable = false;
  BOOST_CHECK_EQUAL(pgcm::begin_statement(o), "BEGIN ISOLATION LEVEL REPEATABLE READ READ WRITE");
  BOOST_CHECK_EQUAL(pgcm::to_string(pgcm::isolation::serializable), "serializable");
}
