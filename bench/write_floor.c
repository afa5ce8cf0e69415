/*
 * bench/write_floor.c — the floor under any wake: how long this machine takes just to write one small
 * HTTP-sized answer (700 bytes) to each of N loopback TCP sockets from one process, with no HTTP, no event
 * loop and no database. On loopback the sender's write also runs the receiver's TCP stack, so this is
 * what every long-poll server pays per answer here. `make bench` prints it next to the wake latency.
 *
 *   build/write_floor N      (N sockets; keep 2N under the 20,000 descriptor cap)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 5000;
	struct rlimit rl;
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t al = sizeof a;
	char buf[700];

	if (n <= 0 || n > 9900) {
		fprintf(stderr, "usage: write_floor N (1..9900)\n");
		return 2;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	int l = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(0x7f000001);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 8192) != 0 ||
	    getsockname(l, (struct sockaddr *)&a, &al) != 0) {
		perror("listen");
		return 1;
	}
	int *s = calloc((size_t)n, sizeof *s);
	if (s == NULL) return 1;
	for (int i = 0; i < n; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a) != 0 || (s[i] = accept(l, NULL, NULL)) < 0) {
			perror("connect");
			return 1;
		}
	}
	memset(buf, 'x', sizeof buf);
	double t0 = now_ms();
	for (int i = 0; i < n; i++)
		if (write(s[i], buf, sizeof buf) != (ssize_t)sizeof buf) {
			perror("write");
			return 1;
		}
	double t1 = now_ms();
	printf("write floor: %d writes of 700 B on loopback TCP in %.1f ms (%.2f us each)\n", n, t1 - t0,
	       (t1 - t0) * 1000 / n);
	return 0;
}
