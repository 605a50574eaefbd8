"""Triggers: what starts executions without a person pressing Run.

`sync` keeps each flow's trigger states and Beat rows in step with its latest revision (inside the
transaction that saves it); `schedules` starts the executions of a Schedule's due ticks, at most once each;
`beat` is the Celery Beat scheduler that sends those ticks on time.
"""
