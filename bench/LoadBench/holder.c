// The sockets of bench/load.sh. Children hold the connections, each of as many namespaces as its
// RLIMIT_NOFILE allows (here the hard limit is 20,000 and CAP_SYS_RESOURCE is missing, so one process
// cannot hold 100,000 sockets); the parent forwards commands to them and sums their answers.
//
//   holder PREFIX COUNT CONNS PORTS ADDRESS [PARENT]
//
// For each namespace /run/netns/PREFIX0 .. PREFIX{COUNT-1} (made by `ip netns add`, or with PARENT,
// made here as children of the namespace /run/netns/PARENT, so that they take its
// net.ipv4.tcp_child_ehash_entries and get TCP hash tables of their own): brings lo up,
// puts ADDRESS/32 on it (label lo:1), listens on ADDRESS:7000 .. 7000+PORTS-1 and makes CONNS
// loopback TCP connections, connection c to port 7000 + c % PORTS — 2 * CONNS established sockets
// per namespace. Prints "ready ..." and then answers one command per line on stdin:
//   check STRIDE  every connection to port 7000 must be dead (its client's send fails, its server
//                 side reads EOF or an error); every STRIDE-th other connection must still carry a
//                 byte both ways. Prints "check killed K dead D sampled S alive A".
// Exits on EOF (children on their parent's). Not a test; a benchmark's load.
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
#include <sys/mount.h>
#include <sys/prctl.h>
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

// One child: namespaces FIRST..FIRST+COUNT-1; commands on IN, answers on OUT.
// Like `ip netns add`, but the new namespace is a child of PARENT's: /run/netns/NAME bind-mounts it.
static void make_netns(const char *parent, const char *path) {
    int p = open(parent, O_RDONLY | O_CLOEXEC);
    if (p < 0) die("open", parent);
    if (setns(p, CLONE_NEWNET) < 0) die("setns", parent);
    close(p);
    if (unshare(CLONE_NEWNET) < 0) die("unshare for", path);
    int f = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
    if (f < 0) die("create", path);
    close(f);
    if (mount("/proc/thread-self/ns/net", path, "none", MS_BIND, NULL) < 0) die("bind mount", path);
}

static int hold(const char *prefix, int first, int count, int conns, int ports, struct in_addr address, const char *parent, FILE *in, FILE *out) {
    struct conn *all = calloc((size_t)count * conns, sizeof *all);
    int *listeners = calloc((size_t)count * ports, sizeof *listeners);
    if (!all || !listeners) die("calloc", "");
    char path[4096];
    for (int i = 0; i < count; i++) {
        snprintf(path, sizeof path, "/run/netns/%s%d", prefix, first + i);
        if (parent) make_netns(parent, path);
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
    fprintf(out, "ready\n");
    fflush(out);

    char line[256];
    while (fgets(line, sizeof line, in)) {
        int stride;
        if (sscanf(line, "check %d", &stride) != 1 || stride <= 0) return 1;
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
        fprintf(out, "%ld %ld %ld %ld\n", killed, gone, sampled, alive);
        fflush(out);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: holder PREFIX COUNT CONNS PORTS ADDRESS [PARENT]\n");
        return 2;
    }
    const char *prefix = argv[1], *parent = argc == 7 ? argv[6] : NULL;
    int count = atoi(argv[2]), conns = atoi(argv[3]), ports = atoi(argv[4]);
    struct in_addr address;
    if (count <= 0 || conns <= 0 || ports <= 0 || inet_pton(AF_INET, argv[5], &address) != 1) {
        fprintf(stderr, "holder: bad arguments\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) < 0) die("getrlimit", "NOFILE");
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) < 0) die("setrlimit", "NOFILE");
    int per = (int)((limit.rlim_max - 64) / (rlim_t)(2 * conns + ports));
    if (per <= 0) {
        fprintf(stderr, "holder: RLIMIT_NOFILE %lu is too small for one namespace\n", (unsigned long)limit.rlim_max);
        return 1;
    }
    int children = (count + per - 1) / per;
    FILE **to = calloc(children, sizeof *to), **from = calloc(children, sizeof *from);
    for (int j = 0; j < children; j++) {
        int down[2], up[2];
        if (pipe2(down, O_CLOEXEC) < 0 || pipe2(up, O_CLOEXEC) < 0) die("pipe", "");
        pid_t pid = fork();
        if (pid < 0) die("fork", "");
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() == 1) _exit(1);
            int first = j * per, n = count - first < per ? count - first : per;
            _exit(hold(prefix, first, n, conns, ports, address, parent, fdopen(down[0], "r"), fdopen(up[1], "w")));
        }
        close(down[0]);
        close(up[1]);
        to[j] = fdopen(down[1], "w");
        from[j] = fdopen(up[0], "r");
    }
    char line[256];
    for (int j = 0; j < children; j++) {
        if (!fgets(line, sizeof line, from[j]) || strncmp(line, "ready", 5) != 0) {
            fprintf(stderr, "holder: child %d failed while making its connections\n", j);
            return 1;
        }
    }
    printf("ready %d namespaces, %d established sockets, %d listeners, in %d processes\n", count, 2 * count * conns, count * ports, children);
    fflush(stdout);

    while (fgets(line, sizeof line, stdin)) {
        int stride;
        if (sscanf(line, "check %d", &stride) != 1 || stride <= 0) {
            printf("error unknown command\n");
            fflush(stdout);
            continue;
        }
        for (int j = 0; j < children; j++) {
            fprintf(to[j], "check %d\n", stride);
            fflush(to[j]);
        }
        long sum[4] = {0}, part[4];
        for (int j = 0; j < children; j++) {
            if (!fgets(line, sizeof line, from[j]) || sscanf(line, "%ld %ld %ld %ld", &part[0], &part[1], &part[2], &part[3]) != 4) {
                fprintf(stderr, "holder: child %d did not answer\n", j);
                return 1;
            }
            for (int x = 0; x < 4; x++) sum[x] += part[x];
        }
        printf("check killed %ld dead %ld sampled %ld alive %ld\n", sum[0], sum[1], sum[2], sum[3]);
        fflush(stdout);
    }
    return 0;
}
