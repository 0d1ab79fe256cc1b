"""taskq: a serverless background-job queue."""
