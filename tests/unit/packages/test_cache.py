"""The wheel cache: adoption checks what the helper wrote, links into kernels, LRU eviction, concurrent use."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import pytest

from gateway.packages.cache import CacheMiss, Wheel, WheelCache, resolution_key


def wheel_file(directory: Path, name: str, size: int = 100) -> Wheel:
    filename = f"{name}-1.0-py3-none-any.whl"
    data = name.encode() * (size // len(name) + 1)
    (directory / filename).write_bytes(data[:size])
    return Wheel(name, "1.0", filename, hashlib.sha256(data[:size]).hexdigest(), size)


@pytest.fixture
def cache(tmp_path: Path) -> WheelCache:
    return WheelCache(tmp_path, max_bytes=1000, owner_uid=os.getuid())


def test_adopted_wheels_are_linked_into_a_kernel_and_remembered(cache: WheelCache) -> None:
    incoming = cache.new_incoming()
    wheels = [wheel_file(incoming, "alpha"), wheel_file(incoming, "beta")]
    cache.adopt(incoming, wheels)
    cache.discard(incoming)
    key = resolution_key("sha256:image", "https://index", ["alpha"])
    cache.remember(key, wheels)
    assert cache.lookup(key, max_age=60) == wheels
    kernel = cache.kernel_dir("inst", 7)
    cache.link_into(kernel, wheels)
    cache.record_manifest(kernel, ["alpha"], wheels)
    assert sorted(p.name for p in kernel.glob("*.whl")) == sorted(w.filename for w in wheels)
    assert json.loads((kernel / "manifest.json").read_text()) == {"alpha": [w.filename for w in wheels]}
    assert cache.kernel_holds(kernel, wheels)


def test_a_wheel_that_does_not_match_its_sha256_is_refused(cache: WheelCache) -> None:
    incoming = cache.new_incoming()
    wheel = wheel_file(incoming, "alpha")
    (incoming / wheel.filename).write_bytes(b"x" * wheel.size)
    with pytest.raises(ValueError, match="sha256"):
        cache.adopt(incoming, [wheel])
    assert not (cache.wheels / wheel.filename).exists()


@pytest.mark.parametrize(
    "item",
    [
        {"filename": "../../etc/passwd.whl", "sha256": "0" * 64, "size": 1},
        {"filename": "not-a-wheel.tar.gz", "sha256": "0" * 64, "size": 1},
        {"filename": "alpha-1.0-py3-none-any.whl", "sha256": "nope", "size": 1},
        {"filename": "alpha-1.0-py3-none-any.whl", "sha256": "0" * 64, "size": "1"},
        "alpha",
    ],
)
def test_untrusted_wheel_descriptions_are_checked(item: object) -> None:
    with pytest.raises(ValueError):
        Wheel.from_json(item)


def test_lookup_misses_when_old_or_when_a_wheel_was_evicted(cache: WheelCache) -> None:
    incoming = cache.new_incoming()
    wheels = [wheel_file(incoming, "alpha")]
    cache.adopt(incoming, wheels)
    cache.remember("k", wheels)
    assert cache.lookup("k", max_age=0) is None
    (cache.wheels / wheels[0].filename).unlink()
    assert cache.lookup("k", max_age=60) is None
    with pytest.raises(CacheMiss):
        cache.link_into(cache.kernel_dir("inst", 1), wheels)


def test_eviction_removes_least_recently_used_first_and_kernels_keep_their_links(cache: WheelCache) -> None:
    incoming = cache.new_incoming()
    old, used, new = (wheel_file(incoming, name, size=400) for name in ("old", "used", "new"))
    cache.adopt(incoming, [old, used, new])
    now = time.time()
    os.utime(cache.wheels / old.filename, (now - 300, now - 300))
    os.utime(cache.wheels / used.filename, (now - 200, now - 200))
    os.utime(cache.wheels / new.filename, (now - 100, now - 100))
    kernel = cache.kernel_dir("inst", 1)
    cache.link_into(kernel, [used])  # using it makes it the most recent
    assert cache.evict() == 1
    assert sorted(p.name for p in cache.wheels.iterdir()) == sorted([used.filename, new.filename])
    assert cache.size() <= 1000
    assert (kernel / used.filename).exists()


def test_concurrent_adoption_of_the_same_wheel_keeps_one_good_copy(cache: WheelCache) -> None:
    errors: list[BaseException] = []

    def fetch(kernel_id: int) -> None:
        try:
            incoming = cache.new_incoming()
            wheel = wheel_file(incoming, "shared", size=300)
            cache.adopt(incoming, [wheel])
            cache.link_into(cache.kernel_dir("inst", kernel_id), [wheel])
            cache.evict()
            cache.discard(incoming)
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=fetch, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [p.name for p in cache.wheels.iterdir()] == ["shared-1.0-py3-none-any.whl"]
    assert len(list(cache.kernels.glob("inst/*/shared-1.0-py3-none-any.whl"))) == 8


def test_kernel_directories_of_gone_kernels_are_removed(cache: WheelCache) -> None:
    for kernel_id in (1, 2, 3):
        cache.kernel_dir("inst", kernel_id).mkdir(parents=True)
    cache.remove_kernels_except("inst", {2})
    assert [p.name for p in (cache.kernels / "inst").iterdir()] == ["2"]
