/* bench/peers_load.c — the load generator of `make bench-peers`: one process holding thousands of
 * long-polls against one HTTP server, and recording when each one's answer arrived.
 *
 *   build/peers_load HOST PORT SRC_ADDR FILE
 *
 * FILE has one line per waiter: `RES<TAB>PATH[<TAB>HEADER]...`. RES is the waiter's resource index
 * (only echoed back, so the orchestrator can match an answer with the change of its own resource);
 * the request is `GET PATH HTTP/1.1` with Host and each HEADER line. Every socket is bound to SRC_ADDR
 * (IP_BIND_ADDRESS_NO_PORT, so the ephemeral port is picked per 4-tuple at connect time), which lets
 * several generators share one destination port without running out of ports.
 *
 * It is driven over stdin/stdout, one command and one answer a line, by bench/peers.py:
 *   (start)  -> `ready N NOFILE`          the file is read and RLIMIT_NOFILE raised to the hard limit
 *   connect  -> `sent OK FAILED`          every socket connected and its request written (at most
 *                                         CONNECT_WINDOW connects in flight, so a listen backlog of 128
 *                                         is never overrun); answers are read from then on
 *   count    -> `count ANSWERED CLOSED`   answers complete so far, sockets closed without an answer
 *   dump     -> one `r IDX RES STATUS T_FIRST_NS T_DONE_NS` line per waiter, then `end`
 *   quit     -> `bye`; every socket is reset (SO_LINGER 0: no TIME_WAIT left behind) and it exits
 * STATUS is the HTTP status, 0 while unanswered, -1 for a failed connect, -2 for a socket the server
 * closed (or reset) before a complete answer. T_FIRST_NS is CLOCK_REALTIME when the answer's first
 * bytes were read, T_DONE_NS when the whole answer was (Content-Length, chunked end, or the end of
 * the headers for a bodiless answer); 0 when not yet. CLOCK_REALTIME is the clock Python's
 * time.time() reads, so the orchestrator subtracts its own change timestamps directly.
 *
 * One epoll loop, no threads; a buffer is allocated only when an answer starts to arrive, so an idle
 * held waiter costs this process a socket and ~64 bytes.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_WINDOW 100
#define RESP_MAX 16384
#define STDIN_TAG UINT64_MAX

enum { ST_IDLE, ST_CONNECTING, ST_WAITING, ST_DONE, ST_FAILED };

struct conn {
	int fd;
	int state;
	int status;
	int res;
	char *req; /* the request bytes (freed once written) */
	size_t req_len;
	char *buf; /* the answer so far (allocated on first read) */
	size_t got;
	int64_t t_first, t_done;
};

static struct conn *conns;
static size_t nconns;
static int ep;
static struct sockaddr_in dst, src;
static size_t next_connect, in_flight, n_sent, n_failed, n_answered, n_closed;
static int connecting_reported = 1;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "peers_load: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

static void reset_close(struct conn *c)
{
	if (c->fd < 0)
		return;
	struct linger lg = {1, 0};
	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(c->fd);
	c->fd = -1;
}

static void fail(struct conn *c, int status)
{
	if (c->state == ST_CONNECTING) {
		in_flight--;
		n_failed++;
	} else if (c->state == ST_WAITING) {
		n_closed++;
	}
	c->state = ST_FAILED;
	c->status = status;
	reset_close(c);
}

static void start_connects(void);

/* Parses what has arrived; returns 1 when the answer is complete. */
static int answer_complete(struct conn *c)
{
	char *hend = memmem(c->buf, c->got, "\r\n\r\n", 4);
	if (!hend)
		return 0;
	size_t hlen = (size_t)(hend - c->buf) + 4;
	if (c->status == 0) {
		int st = 0;
		if (c->got < 12 || sscanf(c->buf, "HTTP/1.%*d %d", &st) != 1)
			st = 999;
		c->status = st;
	}
	long clen = -1;
	int chunked = 0;
	for (char *p = c->buf; p < hend;) {
		char *eol = memmem(p, (size_t)(hend + 2 - p), "\r\n", 2);
		if (!eol)
			break;
		if ((size_t)(eol - p) > 15 && strncasecmp(p, "Content-Length:", 15) == 0)
			clen = strtol(p + 15, NULL, 10);
		else if ((size_t)(eol - p) > 18 && strncasecmp(p, "Transfer-Encoding:", 18) == 0 &&
			 memmem(p, (size_t)(eol - p), "chunked", 7))
			chunked = 1;
		p = eol + 2;
	}
	if (chunked)
		return c->got >= hlen + 5 && memcmp(c->buf + c->got - 5, "0\r\n\r\n", 5) == 0;
	if (clen >= 0)
		return c->got >= hlen + (size_t)clen;
	return c->status == 304 || c->status == 204 || (c->status >= 100 && c->status < 200);
}

static void on_readable(struct conn *c)
{
	for (;;) {
		if (!c->buf) {
			c->buf = malloc(RESP_MAX);
			if (!c->buf)
				die("malloc");
		}
		if (c->got >= RESP_MAX - 1) { /* an answer this big is not what we asked for: count it, stop */
			c->state = ST_DONE;
			c->t_done = now_ns();
			n_answered++;
			epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
			return;
		}
		ssize_t n = read(c->fd, c->buf + c->got, RESP_MAX - 1 - c->got);
		if (n > 0) {
			if (c->got == 0)
				c->t_first = now_ns();
			c->got += (size_t)n;
			if (c->state == ST_WAITING && answer_complete(c)) {
				c->t_done = now_ns();
				c->state = ST_DONE;
				n_answered++;
				free(c->buf);
				c->buf = NULL;
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				return;
			}
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			if (c->state == ST_WAITING)
				fail(c, -2);
			return;
		}
		if (errno == EAGAIN)
			return;
	}
}

static void on_writable(struct conn *c)
{
	if (c->state == ST_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof err;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
			fail(c, -1);
			start_connects();
			return;
		}
		ssize_t n = write(c->fd, c->req, c->req_len);
		if (n != (ssize_t)c->req_len) { /* a few hundred bytes into a fresh socket: all or nothing */
			fail(c, -1);
			start_connects();
			return;
		}
		free(c->req);
		c->req = NULL;
		in_flight--;
		n_sent++;
		c->state = ST_WAITING;
		struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = (uint64_t)(c - conns)};
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		start_connects();
	}
}

static void start_connects(void)
{
	while (in_flight < CONNECT_WINDOW && next_connect < nconns) {
		struct conn *c = &conns[next_connect++];
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			c->state = ST_FAILED;
			c->status = -1;
			n_failed++;
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
		if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
			close(fd);
			c->state = ST_FAILED;
			c->status = -1;
			n_failed++;
			continue;
		}
		c->fd = fd;
		c->state = ST_CONNECTING;
		in_flight++;
		struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)(c - conns)};
		if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
			fail(c, -1);
			continue;
		}
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			fail(c, -1);
	}
	if (!connecting_reported && in_flight == 0 && next_connect == nconns) {
		connecting_reported = 1;
		out("sent %zu %zu\n", n_sent, n_failed);
	}
}

static void load_file(const char *path, const char *host, const char *port)
{
	FILE *f = fopen(path, "r");
	if (!f)
		die(path);
	size_t cap = 1024;
	conns = calloc(cap, sizeof *conns);
	char *line = NULL;
	size_t lcap = 0;
	ssize_t len;
	while ((len = getline(&line, &lcap, f)) > 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0)
			continue;
		if (nconns == cap) {
			cap *= 2;
			conns = realloc(conns, cap * sizeof *conns);
			if (!conns)
				die("realloc");
		}
		struct conn *c = &conns[nconns++];
		memset(c, 0, sizeof *c);
		c->fd = -1;
		char *save = NULL;
		char *res = strtok_r(line, "\t", &save);
		char *rpath = strtok_r(NULL, "\t", &save);
		if (!res || !rpath) {
			fprintf(stderr, "peers_load: %s:%zu: expected RES<TAB>PATH\n", path, nconns);
			exit(2);
		}
		c->res = atoi(res);
		size_t rcap = 256 + (size_t)len;
		c->req = malloc(rcap);
		int n = snprintf(c->req, rcap, "GET %s HTTP/1.1\r\nHost: %s:%s\r\n", rpath, host, port);
		for (char *h; (h = strtok_r(NULL, "\t", &save));)
			n += snprintf(c->req + n, rcap - (size_t)n, "%s\r\n", h);
		n += snprintf(c->req + n, rcap - (size_t)n, "\r\n");
		c->req_len = (size_t)n;
	}
	free(line);
	fclose(f);
}

static void command(char *cmd)
{
	if (strcmp(cmd, "connect") == 0) {
		connecting_reported = 0;
		start_connects();
	} else if (strcmp(cmd, "count") == 0) {
		out("count %zu %zu\n", n_answered, n_closed);
	} else if (strcmp(cmd, "dump") == 0) {
		for (size_t i = 0; i < nconns; i++) {
			struct conn *c = &conns[i];
			printf("r %zu %d %d %lld %lld\n", i, c->res, c->status, (long long)c->t_first,
			       (long long)c->t_done);
		}
		out("end\n");
	} else if (strcmp(cmd, "quit") == 0) {
		for (size_t i = 0; i < nconns; i++)
			reset_close(&conns[i]);
		out("bye\n");
		exit(0);
	} else {
		out("error unknown command '%s'\n", cmd);
	}
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: peers_load HOST PORT SRC_ADDR FILE\n");
		return 2;
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	memset(&dst, 0, sizeof dst);
	dst.sin_family = AF_INET;
	dst.sin_port = htons((uint16_t)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
		fprintf(stderr, "peers_load: bad HOST '%s' (IPv4 address)\n", argv[1]);
		return 2;
	}
	memset(&src, 0, sizeof src);
	src.sin_family = AF_INET;
	if (inet_pton(AF_INET, argv[3], &src.sin_addr) != 1) {
		fprintf(stderr, "peers_load: bad SRC_ADDR '%s' (IPv4 address)\n", argv[3]);
		return 2;
	}
	load_file(argv[4], argv[1], argv[2]);
	if (nconns + 16 > rl.rlim_cur) {
		fprintf(stderr, "peers_load: %zu sockets do not fit RLIMIT_NOFILE %llu\n", nconns,
			(unsigned long long)rl.rlim_cur);
		return 2;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1");
	fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
	struct epoll_event sev = {.events = EPOLLIN, .data.u64 = STDIN_TAG};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev) < 0)
		die("epoll_ctl stdin");
	out("ready %zu %llu\n", nconns, (unsigned long long)rl.rlim_cur);

	char cmdbuf[256];
	size_t cmdlen = 0;
	struct epoll_event evs[512];
	for (;;) {
		int n = epoll_wait(ep, evs, 512, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u64 == STDIN_TAG) {
				ssize_t r = read(0, cmdbuf + cmdlen, sizeof cmdbuf - 1 - cmdlen);
				if (r == 0) { /* the orchestrator went away: leave nothing behind */
					command("quit");
				}
				if (r < 0)
					continue;
				cmdlen += (size_t)r;
				char *nl;
				while ((nl = memchr(cmdbuf, '\n', cmdlen))) {
					*nl = '\0';
					command(cmdbuf);
					size_t used = (size_t)(nl - cmdbuf) + 1;
					memmove(cmdbuf, nl + 1, cmdlen - used);
					cmdlen -= used;
				}
				if (cmdlen == sizeof cmdbuf - 1)
					cmdlen = 0;
				continue;
			}
			struct conn *c = &conns[evs[i].data.u64];
			if (c->fd < 0)
				continue;
			if (c->state == ST_CONNECTING) {
				if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
					on_writable(c);
			} else if (c->state == ST_WAITING) {
				on_readable(c);
			}
		}
	}
}
