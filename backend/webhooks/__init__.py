"""Webhooks: users' endpoints, told of every task that reaches a terminal status.

``targets`` (which URLs and addresses may be reached), ``signing`` (Standard Webhooks
signatures), ``store`` (the SQL), ``dispatcher`` (delivers the outbox the database fills).
The routes are in ``backend/handlers/webhooks.py``; the outbox trigger in migration 0006.
"""

from common.statuses import TERMINAL_STATUSES, TaskStatus

# The event of each terminal status, in the order of the statuses (one list for the routes, the
# OpenAPI document and the docs; migration 0006 repeats it in a CHECK).
WEBHOOK_EVENTS: tuple[str, ...] = tuple(f"task.{s.value}" for s in TaskStatus if s in TERMINAL_STATUSES)
# Where a delivery stands (webhook_deliveries.status; migration 0006 repeats them in a CHECK).
DELIVERY_STATUSES: tuple[str, ...] = ("pending", "delivered", "failed")
