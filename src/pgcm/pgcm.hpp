#pragma once

// pgcm: PostgreSQL connection management across a replication cluster.
// The blocking API; actor-based applications also include
// <pgcm/actors/cluster_manager.hpp> and <pgcm/messages/protocol.hpp>.

#include "pgcm/connection_manager.hpp"
#include "pgcm/error.hpp"
#include "pgcm/logging.hpp"
#include "pgcm/metrics.hpp"
#include "pgcm/param.hpp"
#include "pgcm/result_set.hpp"
#include "pgcm/routing.hpp"
#include "pgcm/scheduler.hpp"
#include "pgcm/state_store.hpp"
#include "pgcm/transaction.hpp"
#include "pgcm/types.hpp"
