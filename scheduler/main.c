/* cap-scheduler: turns due discovery sources into queued runs and publishes them to Redis. */
#include "common/daemon.h"
#include "scheduler/sched.h"

int main(int argc, char **argv)
{
    return cap_daemon_main(argc, argv, "cap-scheduler", "scheduler", "127.0.0.1:9101",
                           cap_sched_run);
}
