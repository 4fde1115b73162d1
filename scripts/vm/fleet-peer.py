#!/usr/bin/env python3
"""Endpoints of the fleet's end-to-end test (scripts/vm/fleet-e2e.sh), run in the VMs' namespaces.

  fleet-peer.py serve NAME ADDRESS PORT   TCP and UDP on ADDRESS:PORT; each reply is "NAME:" and
                                          what came, so a client sees which endpoint answered
  fleet-peer.py hold PORT                 holds client connections, answers commands on
                                          127.0.0.1:PORT (one line in; lines out, the last one
                                          starting with "ok" or "fail")

The holder's commands:
  open CONN ADDRESS PORT   a TCP connection and a connected UDP socket to ADDRESS:PORT, one exchange each
  probe CONN               one send and one receive on each: "tcp=R udp=R", R being "ok:PEER" (PEER
                           answered), an errno name (ECONNABORTED: destroyed TCP; EDESTADDRREQ: a
                           destroyed UDP socket is no longer connected), "eof" or "timeout"
  dead CONN SECONDS [alive]
                           says "armed" (with "alive": fails instead if either socket has an error
                           already), then waits until both report an error (poll: a destroyed
                           socket does at once) and says how long that took
"""
import errno
import select
import socket
import sys
import threading
import time

TIMEOUT = 3.0


def serve(name, address, port):
    prefix = name.encode() + b":"
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((address, port))
    tcp.listen(16)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((address, port))

    def echo(conn):
        with conn:
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(prefix + data)

    def accept():
        while True:
            conn, _ = tcp.accept()
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print("ready", flush=True)
    while True:
        data, peer = udp.recvfrom(4096)
        udp.sendto(prefix + data, peer)


def outcome(sock, send):
    try:
        send()
        data = sock.recv(4096)
        if not data:
            return "eof"
        text = data.decode(errors="replace")
        return "ok:" + text.split(":", 1)[0] if ":" in text else "odd:" + text
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def hold(port):
    conns = {}
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(4)
    print("ready", flush=True)

    def handle(client):
        with client, client.makefile("rw") as f:
            words = f.readline().split()

            def say(line):
                f.write(line + "\n")
                f.flush()

            try:
                command(words, say)
            except Exception as e:  # one reply line per failure, the holder lives on
                say(f"fail {type(e).__name__}: {e}")

    def command(words, say):
        if words[:1] == ["open"] and len(words) == 4:
            name, address, port = words[1], words[2], int(words[3])
            tcp = socket.create_connection((address, port), timeout=TIMEOUT)
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.settimeout(TIMEOUT)
            udp.connect((address, port))
            conns[name] = (tcp, udp)
            say(f"ok {name}: tcp={outcome(tcp, lambda: tcp.send(b'x'))} udp={outcome(udp, lambda: udp.send(b'x'))}")
        elif words[:1] == ["probe"] and len(words) == 2:
            tcp, udp = conns[words[1]]
            say(f"ok tcp={outcome(tcp, lambda: tcp.send(b'x'))} udp={outcome(udp, lambda: udp.send(b'x'))}")
        elif words[:1] == ["dead"] and len(words) in (3, 4):
            tcp, udp = conns[words[1]]
            poller = select.poll()
            waiting = {tcp.fileno(): "tcp", udp.fileno(): "udp"}
            for fd in waiting:
                poller.register(fd, select.POLLERR | select.POLLHUP)
            already = [waiting[fd] for fd, _ in poller.poll(0) if fd in waiting]
            if already and words[3:] == ["alive"]:
                say(f"fail {' and '.join(already)} already reported an error before the wait")
                return
            started = time.monotonic()
            deadline = started + float(words[2])
            say("armed")
            while waiting and time.monotonic() < deadline:
                for fd, events in poller.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                    if events & (select.POLLERR | select.POLLHUP) and fd in waiting:
                        del waiting[fd]
                        poller.unregister(fd)
            took = time.monotonic() - started
            if waiting:
                say(f"fail alive after {took:.1f} s: {' and '.join(waiting.values())} reported no error")
            else:
                say(f"ok dead after {took:.1f} s")
        else:
            say(f"fail unknown command {' '.join(words)!r}")

    while True:
        client, _ = server.accept()
        threading.Thread(target=handle, args=(client,), daemon=True).start()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) == 3 and sys.argv[1] == "hold":
        hold(int(sys.argv[2]))
    else:
        sys.exit(__doc__)
