/* cap-worker: consumes discovery_execute jobs from the Redis stream and runs them. */
#include "common/daemon.h"
#include "worker/worker.h"

int main(int argc, char **argv)
{
    return cap_daemon_main(argc, argv, "cap-worker", "worker", "127.0.0.1:9102", cap_worker_run);
}
