/* common/fault.c - see fault.h */
#include "common/fault.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

#define MAX_POINTS 16

static struct point {
	char name[64];
	unsigned long at;   /* fire on this hit (1 = the first) */
	int kill;	    /* "=kill": SIGKILL the process there */
	unsigned stall;	    /* "=stallN": sleep N seconds there, then go on */
	unsigned long hits; /* atomic */
} points[MAX_POINTS];
static int npoints;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
	const char *env = getenv("STAGEFS_FAULTS");
	char *copy = env ? strdup(env) : NULL, *save = NULL;

	for (char *item = copy ? strtok_r(copy, ",", &save) : NULL; item && npoints < MAX_POINTS;
	     item = strtok_r(NULL, ",", &save)) {
		struct point *p = &points[npoints];
		char *eq = strchr(item, '='), *at = strchr(item, '@');
		if (eq) {
			*eq = '\0';
			p->kill = strcmp(eq + 1, "kill") == 0;
			if (strncmp(eq + 1, "stall", 5) == 0)
				p->stall = (unsigned)strtoul(eq + 6, NULL, 10);
		}
		p->at = 1;
		if (at) {
			*at = '\0';
			p->at = strtoul(at + 1, NULL, 10);
		}
		if (!item[0] || strlen(item) >= sizeof(p->name) || !p->at)
			continue;
		memcpy(p->name, item, strlen(item) + 1);
		npoints++;
	}
	free(copy);
}

int sfs_fault(const char *point)
{
	pthread_once(&once, load);
	for (int i = 0; i < npoints; i++) {
		struct point *p = &points[i];
		if (strcmp(p->name, point) != 0)
			continue;
		if (__atomic_add_fetch(&p->hits, 1, __ATOMIC_RELAXED) != p->at)
			return 0;
		sfs_log(LOG_WARNING, "fault point '%s' reached (hit %lu)%s", point, p->at,
			p->kill	   ? ": killing the daemon"
			: p->stall ? ": stalling"
				   : "");
		if (p->kill)
			kill(getpid(), SIGKILL);
		if (p->stall) {
			sleep(p->stall);
			return 0;
		}
		return 1;
	}
	return 0;
}
