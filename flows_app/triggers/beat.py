"""The Celery Beat scheduler of `tern scheduler`: django-celery-beat's DatabaseScheduler, with Tern's
Schedule rows ticking on Tern's own cron arithmetic.

Celery's crontab knows neither seconds, `L` and `#`, nor the daylight-saving rules Tern promises
(flows_app.engine.cron), so a row whose task is `tern.schedule` is due when the cron its kwargs carry says
so. Beat only sends the message; the worker that runs it starts the due ticks from the database, at most
once each (flows_app.triggers.schedules), so a tick Beat sends twice, late or from two schedulers starts
one execution.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from celery.schedules import BaseSchedule, schedstate
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry

from flows_app.engine.cron import Cron, CronError, next_tick, parse_cron, zone_of

from .sync import SCHEDULE_TASK

logger = logging.getLogger("tern.triggers")
NEVER = 365 * 24 * 3600.0


class CronSchedule(BaseSchedule):
    """Due at each tick of a Kestra cron in its time zone."""

    def __init__(self, cron: Cron, timezone: str, app=None):
        super().__init__(app=app)
        self.cron, self.timezone, self.zone = cron, timezone, zone_of(timezone)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def remaining_estimate(self, last_run_at: datetime):
        upcoming = next_tick(self.cron, self.zone, self.maybe_make_aware(last_run_at))
        return None if upcoming is None else upcoming - self.now()

    def is_due(self, last_run_at: datetime) -> schedstate:
        """Due when a tick passed since the last run; then check again at the next tick."""
        now = self.now()
        upcoming = next_tick(self.cron, self.zone, self.maybe_make_aware(last_run_at))
        if upcoming is None:
            return schedstate(False, NEVER)
        if upcoming <= now:
            following = next_tick(self.cron, self.zone, now)
            return schedstate(True, NEVER if following is None else (following - now).total_seconds())
        return schedstate(False, (upcoming - now).total_seconds())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CronSchedule):
            return (self.cron, self.timezone) == (other.cron, other.timezone)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.cron, self.timezone))

    def __repr__(self) -> str:
        return f"<cron {self.cron.expression!r} in {self.timezone}>"


class TernEntry(ModelEntry):
    def __init__(self, model, app=None):
        super().__init__(model, app=app)
        if model.task == SCHEDULE_TASK:
            try:
                kwargs = json.loads(model.kwargs or "{}")
                cron = parse_cron(kwargs["cron"], bool(kwargs.get("withSeconds")))
                self.schedule = CronSchedule(cron, kwargs.get("timezone") or "UTC", app=self.app)
            except (CronError, KeyError, ValueError, TypeError) as exc:
                logger.error("schedule %s: cannot read its cron (%s); it does not tick", model.name, exc)
                self.schedule = _Never(app=self.app)
            self.kwargs = {}  # what the cron says is for this scheduler; the task takes the trigger's id


class _Never(BaseSchedule):
    def is_due(self, last_run_at: datetime) -> schedstate:
        return schedstate(False, NEVER)


class TernScheduler(DatabaseScheduler):
    """DatabaseScheduler, with Tern's Schedule rows always loaded and ticking on their own cron."""

    Entry = TernEntry

    def enabled_models_qs(self):
        # The base class leaves out crontab rows far from the current hour (it reads them again every 5
        # minutes); Tern's rows are timed exactly, so they are always read.
        return super().enabled_models_qs() | self.Model.objects.enabled().filter(task=SCHEDULE_TASK)
