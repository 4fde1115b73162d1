// The sockets of bench/load.sh: one process holds every connection of every load namespace.
//
//   holder PREFIX COUNT CONNS PORTS ADDRESS
//
// For each namespace /run/netns/PREFIX0 .. PREFIX{COUNT-1} (made by `ip netns add`): brings lo up,
// puts ADDRESS/32 on it (label lo:1), listens on ADDRESS:7000 .. 7000+PORTS-1 and makes CONNS
// loopback TCP connections, connection c to port 7000 + c % PORTS — 2 * CONNS established sockets
// per namespace. Prints "ready ..." and then answers one command per line on stdin:
//   check STRIDE  every connection to port 7000 must be dead (its client's send fails, its server
//                 side reads EOF or an error); every STRIDE-th other connection must still carry a
//                 byte both ways. Prints "check killed K dead D sampled S alive A".
// Exits on EOF. Not a test; a benchmark's load.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BASE_PORT 7000

struct conn {
    int client;
    int server;
};

static void die(const char *what, const char *detail) {
    fprintf(stderr, "holder: %s %s: %s\n", what, detail, strerror(errno));
    exit(1);
}

static void lo_setup(const char *ns, struct in_addr address) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket for lo in", ns);
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) die("SIOCGIFFLAGS lo in", ns);
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) die("SIOCSIFFLAGS lo in", ns);
    struct ifreq addr = {0};
    strcpy(addr.ifr_name, "lo:1");
    struct sockaddr_in *sin = (struct sockaddr_in *)&addr.ifr_addr;
    sin->sin_family = AF_INET;
    sin->sin_addr = address;
    if (ioctl(fd, SIOCSIFADDR, &addr) < 0) die("SIOCSIFADDR lo:1 in", ns);
    sin->sin_addr.s_addr = htonl(0xffffffffu);
    if (ioctl(fd, SIOCSIFNETMASK, &addr) < 0) die("SIOCSIFNETMASK lo:1 in", ns);
    close(fd);
}

static unsigned short local_port(int fd, int peer) {
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    if ((peer ? getpeername(fd, (struct sockaddr *)&sin, &len) : getsockname(fd, (struct sockaddr *)&sin, &len)) < 0) return 0;
    return ntohs(sin.sin_port);
}

// A byte from one side to the other within a second.
static int carries(int from, int to) {
    char byte = 'x';
    if (send(from, &byte, 1, MSG_NOSIGNAL) != 1) return 0;
    struct pollfd p = {.fd = to, .events = POLLIN};
    if (poll(&p, 1, 1000) != 1) return 0;
    return recv(to, &byte, 1, MSG_DONTWAIT) == 1;
}

// Dead: the client's send fails and the server side reads EOF or an error.
static int dead(struct conn *c) {
    char byte = 'x';
    if (send(c->client, &byte, 1, MSG_NOSIGNAL) == 1) return 0;
    ssize_t n = recv(c->server, &byte, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: holder PREFIX COUNT CONNS PORTS ADDRESS\n");
        return 2;
    }
    const char *prefix = argv[1];
    int count = atoi(argv[2]), conns = atoi(argv[3]), ports = atoi(argv[4]);
    struct in_addr address;
    if (count <= 0 || conns <= 0 || ports <= 0 || inet_pton(AF_INET, argv[5], &address) != 1) {
        fprintf(stderr, "holder: bad arguments\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    rlim_t need = (rlim_t)count * (2 * conns + ports) + 1024;
    struct rlimit limit = {need, need};
    if (setrlimit(RLIMIT_NOFILE, &limit) < 0) die("setrlimit NOFILE", argv[2]);

    struct conn *all = calloc((size_t)count * conns, sizeof *all);
    int *listeners = calloc((size_t)count * ports, sizeof *listeners);
    if (!all || !listeners) die("calloc", "");
    char path[4096];
    for (int i = 0; i < count; i++) {
        snprintf(path, sizeof path, "/run/netns/%s%d", prefix, i);
        int ns = open(path, O_RDONLY | O_CLOEXEC);
        if (ns < 0) die("open", path);
        if (setns(ns, CLONE_NEWNET) < 0) die("setns", path);
        close(ns);
        lo_setup(path, address);
        for (int p = 0; p < ports; p++) {
            int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(BASE_PORT + p), .sin_addr = address};
            if (l < 0 || bind(l, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(l, conns) < 0) die("listen in", path);
            listeners[i * ports + p] = l;
        }
        for (int c = 0; c < conns; c++) {
            struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(BASE_PORT + c % ports), .sin_addr = address};
            int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (s < 0 || connect(s, (struct sockaddr *)&sin, sizeof sin) < 0) die("connect in", path);
            all[i * conns + c].client = s;
        }
        // Each port's queue holds its connections in the order they connected.
        for (int c = 0; c < conns; c++) {
            struct conn *k = &all[i * conns + c];
            k->server = accept4(listeners[i * ports + c % ports], NULL, NULL, SOCK_CLOEXEC);
            if (k->server < 0) die("accept in", path);
            if (local_port(k->client, 0) != local_port(k->server, 1)) {
                fprintf(stderr, "holder: accept order in %s differs from connect order\n", path);
                return 1;
            }
        }
    }
    printf("ready %d namespaces, %d established sockets, %d listeners\n", count, 2 * count * conns, count * ports);
    fflush(stdout);

    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        int stride;
        if (sscanf(line, "check %d", &stride) == 1 && stride > 0) {
            long killed = 0, gone = 0, sampled = 0, alive = 0, n = 0;
            for (int i = 0; i < count; i++) {
                for (int c = 0; c < conns; c++) {
                    struct conn *k = &all[i * conns + c];
                    if (c % ports == 0) {
                        killed++;
                        gone += dead(k);
                    } else if (n++ % stride == 0) {
                        sampled++;
                        alive += carries(k->client, k->server) && carries(k->server, k->client);
                    }
                }
            }
            printf("check killed %ld dead %ld sampled %ld alive %ld\n", killed, gone, sampled, alive);
        } else {
            printf("error unknown command\n");
        }
        fflush(stdout);
    }
    return 0;
}
