#!/usr/bin/env python3
"""A stand-in for a service manager's socket activation (sd_listen_fds(3)), for the restart
test: holds a listening socket on 127.0.0.1:PORT and runs COMMAND with it as descriptor 3
(LISTEN_FDS=1, LISTEN_PID=the command's pid). SIGUSR1 restarts the command the way systemd
restarts a service (SIGTERM, wait for it to exit, start it again) while the socket stays open;
SIGTERM stops the command and exits. Each start appends "started PID" to STATUS_FILE. Exits by
itself after 120 s, so a test that dies leaves nothing running for long.

usage: listen_fds.py PORT STATUS_FILE COMMAND [ARG...]
"""
import os
import signal
import socket
import sys
import time

port, status, command = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(1024)


def start():
    pid = os.fork()
    if pid == 0:
        try:
            if listener.fileno() != 3:
                os.dup2(listener.fileno(), 3)
            os.set_inheritable(3, True)  # kept across exec (dup2 onto itself would not clear CLOEXEC)
            os.environ["LISTEN_FDS"] = "1"
            os.environ["LISTEN_PID"] = str(os.getpid())
            os.execv(command[0], command)
        finally:
            os._exit(127)
    with open(status, "a") as f:
        f.write(f"started {pid}\n")
    return pid


def stop(pid):
    os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)


# A test runner may start this with signals blocked; the mask would pass on to the command too.
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGUSR1, signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
wanted = []
signal.signal(signal.SIGUSR1, lambda *_: wanted.append("restart"))
signal.signal(signal.SIGTERM, lambda *_: wanted.append("stop"))
child = start()
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    if not wanted:
        time.sleep(0.02)
        continue
    if wanted.pop(0) == "stop":
        break
    stop(child)
    child = start()
stop(child)
