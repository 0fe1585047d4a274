"""Jobs as values (worker/core/jobs.py): ids, states, options, counts and the pacing arithmetic."""

from __future__ import annotations

import pytest

from worker.core.jobs import (
    FAILURES_KEPT,
    SKIP_GONE,
    JobCounts,
    JobError,
    JobState,
    Pacer,
    ReplayOptions,
    blend_rate,
    chunk_size,
    eta_s,
    new_job_id,
    parse_job_id,
    replay_budget_per_s,
)
from worker.core.replay_plan import Action, ReplayMode


def test_job_ids_sort_by_creation_time_as_text() -> None:
    """An id made later sorts after one made earlier, whatever the random part."""
    earlier = new_job_id(1_800_000_000.000, nonce=0xFFFFF)
    later = new_job_id(1_800_000_000.001, nonce=0)
    assert earlier < later
    assert len(earlier) == len(later) == 16


def test_job_ids_are_url_safe_and_round_trip_through_the_check() -> None:
    """A new id passes `parse_job_id` unchanged; upper case and spaces around are forgiven."""
    job_id = new_job_id(1_800_000_000.5, nonce=12345)
    assert job_id.isalnum()
    assert parse_job_id(job_id) == job_id
    assert parse_job_id(f"  {job_id.upper()} ") == job_id


@pytest.mark.parametrize("bad", ["", "abc", "zz" * 8, "0" * 17, "../../etc/passwd", "0" * 15 + ":"])
def test_a_malformed_job_id_is_refused_with_the_expected_form(bad: str) -> None:
    """A bad id raises JobError that says what a job id looks like."""
    with pytest.raises(JobError, match="16 hex digits"):
        parse_job_id(bad)


def test_final_states_are_done_cancelled_and_failed() -> None:
    assert {s for s in JobState if s.is_final} == {
        JobState.DONE,
        JobState.CANCELLED,
        JobState.FAILED,
    }


def test_replay_options_default_to_retransform_without_line_changes() -> None:
    options = ReplayOptions.from_mapping({})
    assert options.mode is ReplayMode.RETRANSFORM
    assert not options.accept_line_changes
    assert ReplayOptions.from_mapping({"resend_stored": True}).mode is ReplayMode.RESEND_STORED


def test_replay_options_refuse_unknown_names_and_non_booleans() -> None:
    """A corrected raw order (one key's fix) or a typo is refused, naming the known options."""
    with pytest.raises(JobError, match=r"unknown raw_file.*known: accept_line_changes"):
        ReplayOptions.from_mapping({"raw_file": "x.json"})
    with pytest.raises(JobError, match="resend_stored must be true or false"):
        ReplayOptions.from_mapping({"resend_stored": "yes"})


def test_counts_sort_each_outcome_into_replayed_skipped_or_failed() -> None:
    counts = JobCounts()
    counts = counts.add("a", Action.REPLAY)
    counts = counts.add("b", Action.REPUBLISH)
    counts = counts.add("c", Action.IN_FLIGHT)
    counts = counts.add("d", None)
    counts = counts.add("e", Action.NOT_REPLAYABLE, "no stored payload")
    assert counts.replayed == 2
    assert counts.skipped == {"in_flight": 1, SKIP_GONE: 1}
    assert counts.failed == 1
    assert counts.failures == (("e", "no stored payload"),)
    assert counts.worked == 5
    assert JobCounts.from_mapping(counts.to_dict()) == counts


def test_counts_keep_only_the_first_failures() -> None:
    """Every failure is counted; only FAILURES_KEPT keys are kept, so the hash stays small."""
    counts = JobCounts()
    for i in range(FAILURES_KEPT + 5):
        counts = counts.add(f"k{i}", Action.NOT_REPLAYABLE, "erased")
    assert counts.failed == FAILURES_KEPT + 5
    assert len(counts.failures) == FAILURES_KEPT


def test_rate_is_a_moving_average_and_eta_follows_it() -> None:
    assert blend_rate(None, 0, 1.0) is None
    first = blend_rate(None, 10, 1.0)
    assert first == 10.0
    slower = blend_rate(first, 10, 10.0)
    assert slower is not None and 1.0 < slower < 10.0
    assert eta_s(100, 40, 20.0) == 3.0
    assert eta_s(100, 40, None) is None


def test_the_replay_budget_is_a_share_split_between_running_jobs() -> None:
    """Two jobs at once together still take one share of the fleet rate."""
    assert replay_budget_per_s(100.0, 0.2, 0) == pytest.approx(20.0)
    assert replay_budget_per_s(100.0, 0.2, 2) == pytest.approx(10.0)


def test_a_chunk_lasts_a_fraction_of_the_lease() -> None:
    """At the budget, a chunk takes about a fifth of the lease, so the lease is renewed in time."""
    assert chunk_size(10.0, 10.0, most=100) == 20
    assert chunk_size(1000.0, 10.0, most=100) == 100
    assert chunk_size(0.01, 1.0, most=100) == 1


def test_the_pacer_spaces_sends_by_the_rate() -> None:
    pacer = Pacer(4.0)
    assert pacer.delay_s(100.0) == 0.0
    pacer.sent(100.0)
    assert pacer.delay_s(100.1) == pytest.approx(0.15)
    assert pacer.delay_s(100.3) == 0.0
    with pytest.raises(ValueError, match="positive"):
        Pacer(0.0)
