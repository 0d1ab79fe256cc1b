"""The job store: the one place that writes a job's status (DynamoDB).

- `transitions`: every status change, as the conditional request it sends and how its
  answer reads (the table of transitions is in its docstring);
- `reads`: get, list, the sweeper's stalled jobs, counts (Queries, never a Scan);
- `codec`: item <-> Job, events, listing cursors;
- `jobstore`: `JobStore`, the reads and transitions over a sync client.
"""

from taskq.store.codec import NewJob, decode_cursor, encode_cursor, to_job
from taskq.store.jobstore import JobStore
from taskq.store.reads import LIST_LIMIT_MAX
from taskq.store.transitions import Transitions, Write

__all__ = [
    "LIST_LIMIT_MAX",
    "JobStore",
    "NewJob",
    "Transitions",
    "Write",
    "decode_cursor",
    "encode_cursor",
    "to_job",
]
