"""The one structured (JSON) logger every taskq module and function shares.

A single Powertools Logger instance: keys appended per record (job_id, attempt)
show on every line, whichever module logs it.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "taskq"))
