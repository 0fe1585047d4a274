"""The chaos tests' cluster: one private Redis (AOF, everysec) and sandbox per test module;
each scenario starts its own workers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ops.chaos.cluster import Cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = Cluster(tmp_path_factory.mktemp("chaos")).start()
    yield started
    started.close()
