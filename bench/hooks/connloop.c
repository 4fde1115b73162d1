// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * bench/hooks.sh's load: N TCP connections on loopback, one after another, each connected,
 * accepted and closed by both ends (the client first, so each goes through FIN_WAIT and the
 * server's CLOSE_WAIT/LAST_ACK — every state change a socket hook may be called for). Prints the
 * connections per second. Run inside a namespace of the bench's own.
 *
 *   connloop N
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	long n = argc > 1 ? atol(argv[1]) : 10000;
	int one = 1, listener = socket(AF_INET, SOCK_STREAM, 0);
	double start;

	if (listener < 0 || setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(listener, (struct sockaddr *)&addr, sizeof(addr)) || listen(listener, 1024) ||
	    getsockname(listener, (struct sockaddr *)&addr, &len)) {
		perror("connloop: listener");
		return 1;
	}
	start = now();
	for (long i = 0; i < n; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0), s;

		if (c < 0 || connect(c, (struct sockaddr *)&addr, sizeof(addr))) {
			perror("connloop: connect");
			return 1;
		}
		s = accept(listener, NULL, NULL);
		if (s < 0) {
			perror("connloop: accept");
			return 1;
		}
		close(c);
		close(s);
	}
	printf("%.0f\n", n / (now() - start));
	return 0;
}
