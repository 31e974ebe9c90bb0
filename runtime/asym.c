/*
 * Asymmetric barriers; see asym.h. The private expedited membarrier (an
 * IPI to the CPUs running this process's threads, microseconds) needs a
 * registration, done once; kernels without it (before 4.14) get the
 * global one (an RCU grace period, milliseconds: still fine for a call
 * made once per stall); kernels without either, none.
 */
#include "asym.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int heavy_cmd = -1;

static long membarrier(int cmd)
{
#ifdef SYS_membarrier
	return syscall(SYS_membarrier, cmd, 0, 0);
#else
	(void)cmd;
	return -1;
#endif
}

static void choose_command(void)
{
	long supported = membarrier(MEMBARRIER_CMD_QUERY);
	if (supported < 0)
		return;
	if ((supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
	    membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0)
		heavy_cmd = MEMBARRIER_CMD_PRIVATE_EXPEDITED;
	else if (supported & MEMBARRIER_CMD_GLOBAL)
		heavy_cmd = MEMBARRIER_CMD_GLOBAL;
}

void weft__asym_prepare(void)
{
	pthread_once(&once, choose_command);
}

bool weft__asym_heavy_fence(void)
{
	weft__asym_prepare();
	return heavy_cmd >= 0 && membarrier(heavy_cmd) == 0;
}
