/*
 * man/conf-reference.c — prints the config key table (gateway/config.c) as the reference that
 * man/mkman.sh turns into the KEYS section of pollgate.conf(5).
 *
 * A build tool, not part of the gateway: it links only the config room and writes conf_reference()'s
 * tab-separated lines to stdout. It exits 1 when a key has no description, so a key added to the table
 * without one fails `make man` (and the test that runs it) instead of reaching the man page blank.
 */
#include <stdio.h>

#include "gateway/config.h"

int main(void)
{
	int rc = conf_reference(stdout);
	if (fflush(stdout) != 0) return 1;
	if (rc != 0) {
		fprintf(stderr, "conf-reference: a key in gateway/config.c has no description (the last field is empty)\n");
		return 1;
	}
	return 0;
}
