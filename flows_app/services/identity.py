"""Who this process is, as a worker: the names its claims and the directories it holds are recorded under."""

from __future__ import annotations

import os
import socket

PROCESS = f"{socket.gethostname()}:{os.getpid()}"  # recorded on each claim, for people reading a run

# A worker's own name among the running workers (its Celery node name, set as it starts; None elsewhere):
# a run pinned to it (the children of a WorkingDirectory it holds) is routed to it by that name.
node: str | None = None
