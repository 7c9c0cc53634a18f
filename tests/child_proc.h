/* child_proc.h -- what the unit tests that run a fake server as a child process share. */
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>

/* Stops the child *pid (SIGTERM, then waits for it) and forgets it; no-op when there is none. */
static inline void child_stop(pid_t *pid)
{
    int status;

    if (*pid <= 0)
        return;
    kill(*pid, SIGTERM);
    waitpid(*pid, &status, 0);
    *pid = -1;
}
