"""The kernel event hub: ids, replay after Last-Event-ID, snapshots when replay cannot, slow subscribers, closing."""

from __future__ import annotations

import asyncio

from gateway.kernels.events import EventHub


def run(coroutine):  # noqa: ANN001, ANN201
    return asyncio.run(coroutine)


def test_ids_increase_per_kernel_and_carry_the_hub_epoch() -> None:
    hub = EventHub()
    assert hub.publish(1, "unwatched", {}) is None  # nobody watches kernel 1 yet: nothing kept
    hub.subscribe(1)
    hub.subscribe(2)
    first = hub.publish(1, "a", {})
    second = hub.publish(1, "b", {})
    other = hub.publish(2, "c", {})
    assert [first.id, second.id, other.id] == [f"{hub.epoch}-1", f"{hub.epoch}-2", f"{hub.epoch}-1"]
    assert hub.last_id(1) == second.id


def test_subscriber_gets_events_published_after_it_subscribed() -> None:
    async def scenario() -> list[str]:
        hub = EventHub()
        hub.subscribe(2)
        hub.publish(1, "before", {})
        subscription, missed = hub.subscribe(1)
        assert missed is None  # no Last-Event-ID: the caller sends a snapshot
        hub.publish(1, "after", {"x": 1})
        hub.publish(2, "elsewhere", {})
        hub.close(1)
        return [event.kind async for event in subscription]

    assert run(scenario()) == ["after"]


def test_last_event_id_replays_what_was_missed() -> None:
    hub = EventHub()
    hub.subscribe(1)
    seen = hub.publish(1, "a", {})
    hub.publish(1, "b", {})
    hub.publish(1, "c", {})
    _, missed = hub.subscribe(1, seen.id)
    assert [e.kind for e in missed or []] == ["b", "c"]
    _, nothing = hub.subscribe(1, hub.last_id(1))
    assert nothing == []


def test_unknown_foreign_or_too_old_ids_ask_for_a_snapshot() -> None:
    hub = EventHub(replay=3)
    hub.subscribe(1)
    for n in range(10):
        hub.publish(1, str(n), {})
    assert hub.subscribe(1, f"{hub.epoch}-2")[1] is None  # fell out of the buffer
    assert hub.subscribe(1, f"{hub.epoch}-7")[1] is not None  # the last 3 are still there
    assert hub.subscribe(1, "deadbeef-9")[1] is None  # another gateway process
    assert hub.subscribe(1, f"{hub.epoch}-99")[1] is None  # from the future
    assert hub.subscribe(1, "garbage")[1] is None


def test_a_subscriber_that_falls_behind_is_cut_off_and_publishing_never_blocks() -> None:
    async def scenario() -> tuple[list[str], bool, int]:
        hub = EventHub(queue_size=3)
        subscription, _ = hub.subscribe(1)
        for n in range(10):
            hub.publish(1, str(n), {})
        received = [event.kind async for event in subscription]
        return received, subscription.lagged, hub.subscriber_count()

    received, lagged, remaining = run(scenario())
    assert lagged and received == [] and remaining == 0  # it reconnects and catches up from its last id


def test_close_ends_streams_and_forgets_the_kernel() -> None:
    async def scenario() -> bool:
        hub = EventHub()
        subscription, _ = hub.subscribe(1)
        waiter = asyncio.create_task(subscription.next())
        await asyncio.sleep(0)
        hub.close(1)
        return await waiter is None and hub.subscriber_count() == 0

    assert run(scenario())


def test_the_replay_buffer_is_bounded_in_bytes_too() -> None:
    hub = EventHub(replay_bytes=1000)
    hub.subscribe(1)
    hub.publish(1, "big", {}, size=600)
    second = hub.publish(1, "big", {}, size=600)  # pushes the first out
    assert hub.subscribe(1, f"{hub.epoch}-0")[1] is None  # the first is gone: a snapshot instead
    assert hub.subscribe(1, f"{hub.epoch}-1")[1] == [second]
    hub.publish(1, "huge", {}, size=10_000)  # the newest is always kept
    assert [e.kind for e in hub.subscribe(1, f"{hub.epoch}-2")[1] or []] == ["huge"]
