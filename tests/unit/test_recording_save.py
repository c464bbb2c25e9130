"""The store records every command's events through RecordingApplication._save_events, its own
copy of what eventsourcing's Application.save does with domain events (without save()'s runtime
Protocol check per event). The copy is held to the library: same steps, same result."""

from __future__ import annotations

import inspect
import textwrap
from uuid import uuid4

from eventsourcing.application import Application

from event_store.application import TodoStore
from event_store.domain.model import Task

# Application.save's steps after it collected the objects' events (eventsourcing 9.5). If an
# upgrade changes them, _save_events must change with them: this test says so.
LIBRARY_STEPS = """\
recordings = self._record(processing_event)
self._take_snapshots(processing_event)
self._notify(recordings)
self.notify(processing_event.events)  # Deprecated.
return recordings
"""


def test_the_library_save_still_takes_the_steps_the_store_s_copy_takes() -> None:
    body = textwrap.dedent(inspect.getsource(Application.save).split('"""')[-1])
    assert body.strip().endswith(LIBRARY_STEPS.strip()), (
        "eventsourcing's Application.save changed: update RecordingApplication._save_events"
    )
    assert "processing_event.collect_events(*objs, **kwargs)" in body


def test_events_saved_by_the_copy_are_stored_as_save_stores_them() -> None:
    by_copy, by_library = TodoStore(env={}), TodoStore(env={})
    user_id = uuid4()
    task = Task.create(user_id=user_id, title="one")
    task.rename(user_id=user_id, title="two")
    events = task.collect_events()

    copied = by_copy._save_events(*events)
    saved = by_library.save(*events)

    assert [r.notification.id for r in copied] == [r.notification.id for r in saved] == [1, 2]
    assert [r.domain_event for r in copied] == list(events)
    assert by_copy.repository.get(task.id).title == by_library.repository.get(task.id).title
    stored = [by.recorder.select_notifications(0, 10) for by in (by_copy, by_library)]
    assert [(n.originator_id, n.originator_version, n.topic) for n in stored[0]] == [
        (n.originator_id, n.originator_version, n.topic) for n in stored[1]
    ]
    by_copy.close()
    by_library.close()
