"""The dashboard's pages, one module each: overview, jobs, dlq, schedules."""
