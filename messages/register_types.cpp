#include <caf/actor_system_config.hpp>

#include "pgcm/messages/error.hpp"
#include "pgcm/messages/internal_protocol.hpp"

namespace pgcm {

void register_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<errc>("pgcm::errc");
  cfg.add_message_type<error_info>("pgcm::error_info");
  cfg.add_message_type<param>("pgcm::param");
  cfg.add_message_type<result_set>("pgcm::result_set");
  cfg.add_message_type<node_config>("pgcm::node_config");
  cfg.add_message_type<node_entry>("pgcm::node_entry");
  cfg.add_message_type<manager_options>("pgcm::manager_options");
  cfg.add_message_type<health_state>("pgcm::health_state");
  cfg.add_message_type<node_role>("pgcm::node_role");
  cfg.add_message_type<health_status>("pgcm::health_status");
  cfg.add_message_type<pool_stats>("pgcm::pool_stats");
  cfg.add_message_type<node_info>("pgcm::node_info");
  cfg.add_message_type<event>("pgcm::event");
  cfg.add_message_type<node_event>("pgcm::node_event");
  cfg.add_message_type<node_result_set>("pgcm::node_result_set");
  cfg.add_message_type<event_subscriber_actor>("pgcm::event_subscriber_actor");
  cfg.add_message_type<query_job>("pgcm::query_job");
  cfg.add_message_type<node_query_actor>("pgcm::node_query_actor");
  cfg.add_message_type<node_api_actor>("pgcm::node_api_actor");
  cfg.add_message_type<worker_state>("pgcm::worker_state");
  cfg.add_message_type<worker_report>("pgcm::worker_report");
  cfg.add_message_type<probe_result>("pgcm::probe_result");
  cfg.add_message_type<probe_report>("pgcm::probe_report");
  cfg.add_message_type<target>("pgcm::target");
  cfg.add_message_type<lsn>("pgcm::lsn");
  cfg.add_message_type<route>("pgcm::route");
  cfg.add_message_type<stream_request>("pgcm::stream_request");
  cfg.add_message_type<stream_sink_actor>("pgcm::stream_sink_actor");
  cfg.add_message_type<stream_control_actor>("pgcm::stream_control_actor");
  cfg.add_message_type<stream_job>("pgcm::stream_job");
  // transactions
  cfg.add_message_type<isolation>("pgcm::isolation");
  cfg.add_message_type<transaction_options>("pgcm::transaction_options");
  cfg.add_message_type<transaction_session_actor>("pgcm::transaction_session_actor");
  cfg.add_message_type<transaction_session>("pgcm::transaction_session");
  cfg.add_error_category(error_category(), render_error);
}

} // namespace pgcm
