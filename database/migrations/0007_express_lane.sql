-- Fair scheduling (common/jobqueue): the queue takes turns between users, and a task's priority
-- orders only its own user's jobs. An operator may allow a user the express lane: that user's
-- tasks with a priority above PRIORITY_CEILING are taken before every user's turn. Whether a
-- task is in it is decided once, when the task is created, and kept with the task so every
-- re-enqueue (retry, reaper, reconciler) puts it back where it was.
ALTER TABLE users ADD COLUMN express_allowed boolean NOT NULL DEFAULT false;
ALTER TABLE tasks ADD COLUMN express boolean NOT NULL DEFAULT false;
