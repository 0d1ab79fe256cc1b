"""Delayed jobs and periodic schedules."""
