"""Child processes that must not outlive viocli (a playbook, an SSH stream of a backup)."""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_viocli(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` for a child: the kernel sends it ``sig`` when the viocli thread that forked it
    dies (viocli killed with SIGKILL included). Fork such children from the main thread: the signal
    follows the forking thread, not the process."""
    parent = os.getpid()

    def arm() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # viocli died between the fork and the prctl
            os.kill(os.getpid(), sig)

    return arm
