"""Shared by the training tests: a short synthetic wrist subject, split by time."""

from __future__ import annotations

from myoedge.body.subjects import make_subject, simulate_session, true_profile
from myoedge.train.data import load_sequences, split_time


def short_wrist(index: int = 1, seconds: float = 4.0) -> tuple[list, list]:
    """(train, test): two trials (slow, fast) of ``seconds`` of easy-family wrist ``index`` with its true
    profile, the last 20 % of each held out."""
    subject = make_subject("wrist", index)
    seqs = load_sequences(simulate_session(subject, duration_s=seconds, trial_paces=("slow", "fast")),
                          profiles={subject.name: true_profile(subject)})
    return split_time(seqs)[subject.name]
