"""The init (pid 1) of a lab node, run inside the node's namespaces and chroot by its system python.

It mounts /proc, /sys and /run, sets the hostname, starts sshd, reaps every orphan (services the
playbooks start are daemons), restarts sshd if it dies, and on SIGTERM stops every process of the
node before it exits. Standard library only: it runs with the template's python3.
"""

import os
import signal
import socket
import subprocess
import sys
import time

STOP_GRACE_SECONDS = 20
stopping = False


def mount(fstype: str, target: str) -> None:
    os.makedirs(target, exist_ok=True)
    subprocess.run(["mount", "-t", fstype, fstype, target], check=False)


def start_sshd() -> subprocess.Popen:
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    return subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-o", "HostKey=/etc/ssh/ssh_host_ed25519_key"])


def on_term(_signum: int, _frame: object) -> None:
    global stopping
    stopping = True


def reap_all() -> list[int]:
    reaped = []
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append(pid)


def main() -> None:
    hostname = sys.argv[1]
    mount("proc", "/proc")
    mount("sysfs", "/sys")
    mount("tmpfs", "/run")
    os.makedirs("/run/lock", exist_ok=True)
    socket.sethostname(hostname)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # so that signal.pause() wakes on a child's exit
    sshd = start_sshd()
    print(f"node {hostname}: sshd started (pid {sshd.pid})", flush=True)
    while not stopping:
        if sshd.pid in reap_all():
            print(f"node {hostname}: sshd exited; starting it again", flush=True)
            time.sleep(1)
            sshd = start_sshd()
        signal.pause()
    print(f"node {hostname}: stopping", flush=True)
    os.kill(-1, signal.SIGTERM)  # pid 1 of a pid namespace: every other process of the node
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline:
        reap_all()
        if not any(p.isdigit() and p != "1" for p in os.listdir("/proc")):
            break
        time.sleep(0.2)
    # Returning ends pid 1: the kernel kills whatever is left in the namespace.


if __name__ == "__main__":
    main()
