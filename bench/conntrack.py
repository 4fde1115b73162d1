"""Driver of bench/conntrack.sh (run it through that script: it makes the namespaces and the daemon).

  conntrack.py fill NETNS COUNT BASE     COUNT non-NATed UDP entries in NETNS by ctnetlink CT_NEW, 1,000 a send
  conntrack.py run TAG OUT REAPER REPS   the measurement against the daemon bench/conntrack.sh started

Everything here talks ctnetlink (NETLINK_NETFILTER) itself, on a thread moved into the namespace
with setns(2) (per thread for network namespaces), so nothing of the host's is read or changed but
its conntrack hash, which the kernel shares between all namespaces.
"""
import ctypes
import errno
import os
import re
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
NETLINK_NETFILTER = 12
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP, NLM_F_EXCL, NLM_F_CREATE = 1, 4, 0x300, 0x200, 0x400
NLMSG_ERROR, NLMSG_DONE = 2, 3
CT_NEW, CT_GET, CT_DELETE = 0x100, 0x101, 0x102
NESTED = 0x8000
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS, CTA_TIMEOUT, CTA_ID, CTA_FILTER = 1, 2, 3, 7, 12, 25
IPS_DST_NAT = 0x20

VIP1, VIP2, B1, B2, PORT = "10.85.255.1", "10.85.255.2", "10.85.0.11", "10.85.0.12", 5353
NATED, SURVIVORS_B2, STRAIGHT = 10_000, 1_000, 100


def fail(text):
    print(text, file=sys.stderr)
    sys.exit(2)


def in_netns(name, work):
    """Runs work() on a fresh thread inside /run/netns/NAME; returns its result (or raises its error)."""
    box = {}

    def run():
        try:
            fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"setns into {name}: {os.strerror(e)}")
            finally:
                os.close(fd)
            box["value"] = work()
        except BaseException as e:  # handed to the caller
            box["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def attr(kind, payload):
    pad = (4 - len(payload) % 4) % 4
    return struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * pad


def tuple_attr(kind, src, dst, sport, dport):
    ip = attr(1, socket.inet_aton(src)) + attr(2, socket.inet_aton(dst))
    proto = attr(1, b"\x11") + attr(2, struct.pack(">H", sport)) + attr(3, struct.pack(">H", dport))
    return attr(kind | NESTED, attr(1 | NESTED, ip) + attr(2 | NESTED, proto))


def message(kind, flags, seq, body):
    return struct.pack("=IHHII", 16 + 4 + len(body), kind, flags, seq, 0) + struct.pack("=BBH", socket.AF_INET, 0, 0) + body


def open_ctnetlink():
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE: a dump of many entries comes fast
    s.bind((0, 0))
    return s


def fill(count, base):
    """COUNT UDP entries 198.18.x.y:p -> 198.19.0.1:80 (unique by BASE), unreplied, an hour's timeout."""
    s = open_ctnetlink()
    made = failed = 0
    seq = 0
    timeout = attr(CTA_TIMEOUT, struct.pack(">I", 3600))
    i = base
    end = base + count
    while i < end:
        batch = []
        for k in range(i, min(i + 1000, end)):
            src = socket.inet_ntoa(struct.pack(">I", (198 << 24) | (18 << 16) | (k // 50_000)))
            sport = 10_000 + k % 50_000
            body = tuple_attr(CTA_TUPLE_ORIG, src, "198.19.0.1", sport, 80) + tuple_attr(CTA_TUPLE_REPLY, "198.19.0.1", src, 80, sport) + timeout
            seq += 1
            batch.append(message(CT_NEW, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, body))
        s.send(b"".join(batch))
        acks = 0
        while acks < len(batch):
            data = s.recv(1 << 20)
            at = 0
            while at + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, at)
                if kind == NLMSG_ERROR:
                    acks += 1
                    (code,) = struct.unpack_from("=i", data, at + 16)
                    if code == 0:
                        made += 1
                    else:
                        failed += 1
                        if failed == 1:
                            print(f"bench: CT_NEW refused: {os.strerror(-code)}", file=sys.stderr)
                at += (length + 3) & ~3
        i += len(batch)
    s.close()
    return made, failed


def parse_tuple(data):
    out = {}
    for kind, value in attrs(data):
        if kind == 1:
            for k, v in attrs(value):
                out["src" if k == 1 else "dst"] = socket.inet_ntoa(v[:4])
        elif kind == 2:
            for k, v in attrs(value):
                if k == 2:
                    out["sport"] = struct.unpack(">H", v[:2])[0]
                elif k == 3:
                    out["dport"] = struct.unpack(">H", v[:2])[0]
    return out


def attrs(data):
    at = 0
    while at + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, at)
        if length < 4:
            return
        yield kind & 0x3FFF, data[at + 4:at + length]
        at += (length + 3) & ~3


def dump(reply_source=None):
    """The entries of the calling thread's namespace: (id, status, orig, reply); with reply_source, filtered by the kernel."""
    s = open_ctnetlink()
    body = b""
    if reply_source:
        body = attr(CTA_TUPLE_REPLY | NESTED, attr(1 | NESTED, attr(1, socket.inet_aton(reply_source)))) \
            + attr(CTA_FILTER | NESTED, attr(2, struct.pack("=I", 1)))
    s.send(message(CT_GET, NLM_F_REQUEST | NLM_F_DUMP, 1, body))
    entries = []
    while True:
        data = s.recv(1 << 20)
        at = 0
        while at + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, at)
            if kind == NLMSG_DONE:
                s.close()
                return entries
            if kind == NLMSG_ERROR:
                (code,) = struct.unpack_from("=i", data, at + 16)
                s.close()
                raise OSError(-code, f"conntrack dump: {os.strerror(-code)}")
            if kind == CT_NEW:
                e = {}
                for k, v in attrs(data[at + 20:at + length]):
                    if k == CTA_TUPLE_ORIG:
                        e["orig"] = parse_tuple(v)
                    elif k == CTA_TUPLE_REPLY:
                        e["reply"] = parse_tuple(v)
                    elif k == CTA_STATUS:
                        e["status"] = struct.unpack(">I", v[:4])[0]
                    elif k == CTA_ID:
                        e["id"] = struct.unpack(">I", v[:4])[0]
                entries.append(e)
            at += (length + 3) & ~3


def count_now():
    with open("/proc/sys/net/netfilter/nf_conntrack_count") as f:
        return int(f.read())


def send_from_ports(destination, first_port, count):
    """One datagram to DESTINATION:PORT from each of COUNT source ports: COUNT conntrack entries."""
    for p in range(first_port, first_port + count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", p))
        s.sendto(b"?", (destination, PORT))
        s.close()


def classify(entries):
    """The NAT namespace's entries by what they are: NATed to B1, NATed to B2, straight to B1."""
    b1 = {e["id"] for e in entries if e["status"] & IPS_DST_NAT and e["reply"]["src"] == B1}
    b2 = {e["id"] for e in entries if e["status"] & IPS_DST_NAT and e["reply"]["src"] == B2}
    straight = {e["id"] for e in entries if not e["status"] & IPS_DST_NAT and e["orig"]["dst"] == B1}
    return b1, b2, straight


def pct(values, q):
    v = sorted(values)
    if not v:
        return float("nan")
    return v[min(len(v) - 1, max(0, int(round(q * (len(v) - 1)))))]


class Endpoint:
    """An endpoint as a routing CNI makes it (netns, veth, host /32 route) and a host socket talking to it."""

    def __init__(self, tag, k):
        self.netns, self.device, self.address = f"{tag}p{k}", f"{tag}e{k}", f"10.84.0.{k + 1}"
        self.destroyed = None
        self.notice = None

    def make(self):
        ip(None, f"netns add {self.netns}")
        ip(None, f"link add {self.device} type veth peer name eth0 netns {self.netns}")
        ip(None, f"link set {self.device} up")
        ip(self.netns, f"addr add {self.address}/32 dev eth0")
        ip(self.netns, "link set eth0 up")
        ip(self.netns, "route add default dev eth0")

    def route(self):
        ip(None, f"route add {self.address}/32 dev {self.device}")
        self.ifindex = int(open(f"/sys/class/net/{self.device}/ifindex").read())

    def talk(self):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.connect((self.address, 9))
        threading.Thread(target=self._wait, daemon=True).start()

    def _wait(self):
        try:
            self.socket.recv(16)
        except OSError as e:
            if e.errno == errno.ECONNABORTED:
                self.destroyed = time.monotonic()


def ip(netns, command):
    args = ["ip"] + (["-n", netns] if netns else []) + command.split()
    subprocess.run(args, check=True)


class LinkNotices:
    """RTM_DELLINK notices (ifindex -> monotonic time), as the daemon hears them."""

    def __init__(self):
        self.s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.s.bind((0, 1))  # RTMGRP_LINK
        self.seen = {}
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            data = self.s.recv(1 << 16)
            now = time.monotonic()
            at = 0
            while at + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, at)
                if kind == 17:  # RTM_DELLINK
                    (index,) = struct.unpack_from("=i", data, at + 16 + 4)
                    self.seen.setdefault(index, now)
                at += (length + 3) & ~3


def run(tag, out, reaper, reps, bus):
    nat = f"{tag}nat"
    log_path = f"{out}/daemon.log"

    def set_service(*backends):
        r = subprocess.run(["busctl", f"--address={bus}", "call", "org.socketreaper.Reaper1", "/org/socketreaper/Reaper",
                            "org.socketreaper.Reaper1", "SetService", "ssqsas", "ctm", VIP1, str(PORT), "udp", str(len(backends)),
                            *[f"{b}:{PORT}" for b in backends]], capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"bench: SetService failed: {r.stderr.strip()}")

    def cleanups_logged():
        return sum(1 for line in open(log_path) if "Conntrack cleanup (" in line)

    def sweeps_logged():
        with open(log_path) as f:
            return sum(1 for line in f if "Automatic sweep (endpoint_gone) stages" in line)

    def quiet_lane():
        """Waits until the lane has made no cleanup for 5.5 s: its longest pause, so the next one starts at once."""
        last, since = cleanups_logged(), time.monotonic()
        while time.monotonic() - since < 5.5:
            time.sleep(0.25)
            now = cleanups_logged()
            if now != last:
                last, since = now, time.monotonic()

    # The endpoints: made and learned before the measurement.
    endpoints = [Endpoint(tag, k) for k in range(5 * reps + 2)]
    for e in endpoints:
        e.make()
    deadline = time.monotonic() + 60
    while not all(f"on {e.device} (ifindex" in open(log_path).read() for e in endpoints):
        if time.monotonic() > deadline:
            fail("bench: the daemon did not attach to the endpoint devices")
        time.sleep(0.1)
    for e in endpoints:
        e.route()
    deadline = time.monotonic() + 30
    while True:
        owners = subprocess.run([reaper, "datapath", "endpoints", "--pin-root", f"/sys/fs/bpf/{tag}"], capture_output=True, text=True).stdout
        if all(e.address in owners for e in endpoints):
            break
        if time.monotonic() > deadline:
            fail("bench: the daemon did not learn the endpoints' addresses")
        time.sleep(0.2)
    for e in endpoints:
        e.talk()
    notices = LinkNotices()
    spare = iter(endpoints)
    stamps = []

    def event():
        """Deletes the next endpoint's host veth; returns its reaction (ms from RTM_DELLINK to the socket destroyed)."""
        e = next(spare)
        swept = sweeps_logged()
        ip(None, f"link del {e.device}")
        deadline = time.monotonic() + 5
        while (e.destroyed is None or e.ifindex not in notices.seen) and time.monotonic() < deadline:
            time.sleep(0.001)
        # As bench/reap.sh: the next event once this one's sweep has ended, so no event waits for another's sweep.
        while sweeps_logged() == swept and time.monotonic() < deadline:
            time.sleep(0.002)
        if e.destroyed is None or e.ifindex not in notices.seen:
            return None
        stamps.append((notices.seen[e.ifindex], e.destroyed))
        return (e.destroyed - notices.seen[e.ifindex]) * 1000

    set_service(B1, B2)
    in_netns(nat, lambda: send_from_ports(VIP2, 40_000, SURVIVORS_B2))
    in_netns(nat, lambda: send_from_ports(B1, 45_000, STRAIGHT))

    # Idle reaction first: endpoint_gone with the lane idle (no cleanup running), the reference.
    idle = []
    for _ in range(reps):
        quiet_lane()
        idle.append(event())

    idle_stamps = list(stamps)
    stamps.clear()  # from here on: the events during the cleanups
    cleanup_ms, during = [], []
    kept_b2 = kept_straight = None
    for rep in range(reps):
        # The survivors' traffic again: the same entries (same ids), their 30 s timeout renewed.
        in_netns(nat, lambda: send_from_ports(VIP2, 40_000, SURVIVORS_B2))
        in_netns(nat, lambda: send_from_ports(B1, 45_000, STRAIGHT))
        in_netns(nat, lambda: send_from_ports(VIP1, 20_000, NATED))
        before = in_netns(nat, dump)
        b1, b2, straight = classify(before)
        if len(b1) != NATED:
            fail(f"bench: {len(b1)} entries NATed to {B1}, not {NATED}")
        kept_b2, kept_straight = kept_b2 or b2, kept_straight or straight
        floor = len(before) - NATED
        set_service(B1, B2)
        quiet_lane()

        box = {}

        def poll():
            while count_now() > floor:
                time.sleep(0.002)
            box["gone"] = time.monotonic()

        poller = threading.Thread(target=lambda: in_netns(nat, poll))
        poller.start()
        set_service(B2)
        t0 = time.monotonic()
        # endpoint_gone triggers while the cleanup runs: one after another until it is over.
        while "gone" not in box and len(during) < 2 * (rep + 1):
            during.append(event())
        poller.join()
        cleanup_ms.append((box["gone"] - t0) * 1000)
        after = in_netns(nat, dump)
        a1, a2, astraight = classify(after)
        if a1 or not kept_b2 <= a2 or not kept_straight <= astraight or len(after) != floor:
            fail(f"bench: after the cleanup {len(a1)} entries NATed to B1 are left, {len(kept_b2 - a2)} of B2's "
                             f"and {len(kept_straight - astraight)} straight ones are missing ({len(after)} entries, {floor} expected)")
        print(f"  rep {rep + 1}: {NATED:,} entries NATed to {B1} gone {cleanup_ms[-1]:.1f} ms after SetService returned; "
              f"{len(a2)} NATed to {B2} and {len(astraight)} straight to {B1} untouched")

    # Baselines in the same run: the kernel's walk (a dump the kernel filters, and a whole dump of the
    # namespace), and conntrack(8) deleting the same 10,000 entries.
    filtered = []
    whole = []
    for _ in range(reps):
        t = time.monotonic(); in_netns(nat, lambda: dump(B1)); filtered.append((time.monotonic() - t) * 1000)
        t = time.monotonic(); in_netns(nat, dump); whole.append((time.monotonic() - t) * 1000)
    tool = []
    for _ in range(3):
        in_netns(nat, lambda: send_from_ports(VIP1, 20_000, NATED))
        t = time.monotonic()
        subprocess.run(["ip", "netns", "exec", nat, "conntrack", "-D", "-p", "udp", "--reply-src", B1, "--reply-port-src", str(PORT)],
                       check=False, capture_output=True)
        tool.append((time.monotonic() - t) * 1000)

    log = open(log_path).read()
    dumps = log.count("Conntrack cleanup (")
    # Where an event's time went, from the daemon's stage stamps (event 505, CLOCK_MONOTONIC like ours):
    # the kernel's notice -> the daemon received it -> queued -> scope computed -> sweep started -> finished -> socket seen dead.
    stages = [tuple(int(x) / 1e9 for x in m.groups()) for m in re.finditer(
        r"Automatic sweep \(endpoint_gone\) stages \(monotonic ns\): received (\d+) queued (\d+) scoped (\d+) started (\d+) finished (\d+)", log)]
    names = ["notice>received", "received>queued", "queued>scoped", "scoped>started", "started>finished"]
    for what, events in (("lane idle", idle_stamps), ("during the cleanups", stamps)):
        steps = []
        for notice, dead in events:
            line = min((st for st in stages if notice - 0.001 <= st[0] <= dead), default=None, key=lambda st: st[0])
            if line:
                points = (notice,) + line
                steps.append([(b - a) * 1000 for a, b in zip(points, points[1:])])
        if steps:
            worst = max(steps, key=lambda v: sum(v[:3]))
            print(f"endpoint_gone {what}, the daemon's stages (ms; median / max over {len(steps)} events (the slowest event)): " + ", ".join(
                f"{n} {statistics.median(col):.1f} / {max(col):.1f} ({w:.1f})" for n, col, w in zip(names, zip(*steps), worst)))
    bulk = [in_netns(f"{tag}b{n}", count_now) for n in range(4)]
    med = statistics.median(cleanup_ms)
    ok_during = [x for x in during if x is not None]
    ok_idle = [x for x in idle if x is not None]
    print(f"\nbackend left, {NATED:,} entries NATed to it: median {med:.1f} ms (min {min(cleanup_ms):.1f}, max {max(cleanup_ms):.1f}) over {reps} runs")
    print(f"baseline, same run: conntrack -D --reply-src (dump + a delete each) median {statistics.median(tool):.1f} ms; "
          f"daemon/tool {med / statistics.median(tool):.2f}x")
    print(f"the kernel's walk of the 1M-entry hash from the NAT namespace: dump filtered by the kernel (CTA_FILTER) median "
          f"{statistics.median(filtered):.1f} ms, whole dump of the namespace {statistics.median(whole):.1f} ms")
    print(f"endpoint_gone reaction from RTM_DELLINK: during the cleanups n={len(ok_during)} p50 {pct(ok_during, 0.5):.2f} "
          f"p99 {pct(ok_during, 0.99):.2f} max {max(ok_during, default=float('nan')):.2f} ms; lane idle n={len(ok_idle)} p50 {pct(ok_idle, 0.5):.2f} "
          f"p99 {pct(ok_idle, 0.99):.2f} ms; lost {len(during) - len(ok_during) + len(idle) - len(ok_idle)}")
    print(f"({dumps} conntrack cleanups logged by the daemon)")
    p99 = pct(ok_during, 0.99)
    misses = 0
    for name, ok, text in (
            ("backend's entries gone <= 500 ms (median)", med <= 500, f"{med:.1f} ms"),
            ("others untouched", bulk == [247_500] * 4, f"{SURVIVORS_B2} NATed to B2 and {STRAIGHT} straight (same ids), "
             f"{len(before) - NATED - SURVIVORS_B2 - STRAIGHT} more in the NAT namespace; the bulk namespaces hold {sum(bulk):,}"),
            ("endpoint_gone p99 <= 20 ms during the cleanup (bench/reap.sh's target)", p99 <= 20 and len(ok_during) == len(during), f"{p99:.2f} ms"),
            ("endpoint_gone p99 <= 10 ms during the cleanup (issue 28's target)", p99 <= 10 and len(ok_during) == len(during), f"{p99:.2f} ms")):
        print(f"{'PASS' if ok else 'MISS'}: {name}: {text}")
        misses += not ok
    return 1 if misses else 0


if __name__ == "__main__":
    if sys.argv[1] == "fill":
        made, failed = in_netns(sys.argv[2], lambda: fill(int(sys.argv[3]), int(sys.argv[4])))
        print(f"{sys.argv[2]}: {made} entries made, {failed} refused")
        sys.exit(1 if failed else 0)
    if sys.argv[1] == "run":
        sys.exit(run(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]))
    sys.exit(f"usage: {sys.argv[0]} fill NETNS COUNT BASE | run TAG OUT REAPER REPS BUS")
