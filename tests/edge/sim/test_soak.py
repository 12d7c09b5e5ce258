"""The soak run (``make soak``): its bookkeeping, a short run with every fault kind, and (slow) 2 minutes."""

import pytest

from myoedge.edge.loop.estimate import Flags
from myoedge.edge.sim.soak import EstimateCounter, SoakConfig, growth_mb_per_h, reconnect_delays, run_soak
from myoedge.ground.errors import InputError


def test_the_plan_repeats_stalls_and_disconnects_over_the_run():
    plan = SoakConfig(seconds=300.0, stall_every_s=45.0, disconnect_every_s=60.0).plan()
    assert [a for a, _ in plan.stalls] == [22.5, 67.5, 112.5, 157.5, 202.5, 247.5, 292.5]
    assert [a for a, _ in plan.disconnects] == [45.0, 105.0, 165.0, 225.0, 285.0]
    assert plan.bitflip > 0 and plan.drop > 0 and plan.garbage > 0
    with pytest.raises(InputError, match="at least 5 s"):
        SoakConfig(seconds=1.0)
    with pytest.raises(InputError, match="stall_s"):
        SoakConfig(stall_s=0.0)


class E:
    def __init__(self, flags, t_us):
        self.flags, self.timestamp_us = Flags(flags), t_us


def test_counter_counts_by_flag_and_records_outages(monkeypatch):
    clock = iter([0.0, 0.01, 0.02, 1.52, 1.53])
    monkeypatch.setattr("myoedge.edge.sim.soak.time.monotonic", lambda: next(clock))
    c = EstimateCounter()
    for flags, t in ((0, 0), (0, 10_000), (Flags.STALE, 60_000), (0, 20_000), (Flags.WARMING_UP, 1_520_000),
                     (Flags.WARMING_UP | Flags.LOST_FRAMES, 1_530_000)):
        c(E(flags, t))
    r = c.reasons()
    assert r["total"] == 6 and r["valid"] == 3 and r["invalid"] == 3
    assert r["by_flag"]["stale"] == 1 and r["by_flag"]["warming_up"] == 2 and r["by_flag"]["lost_frames"] == 1
    assert c.outages == [(0.02, 1.5, 1.5)]
    # a disconnect of 1.2 s at device time 0.1 s: the loop resumed 0.3 s after the port came back
    assert reconnect_delays(c.outages, [(0.1, 1.2)]) == [0.3]
    assert reconnect_delays(c.outages, [(5.0, 0.5)]) == []


def test_memory_growth_is_fitted_to_the_second_half():
    warm = [(t, 100.0 + 0.1 * t) for t in range(0, 60)]  # touching buffers during warm-up
    flat = [(t, 106.0 + 0.001 * (t - 60)) for t in range(60, 180)]
    assert growth_mb_per_h(warm + flat) == pytest.approx(3.6, abs=1e-6)
    assert growth_mb_per_h([(0, 1.0)]) is None


def check(result, config):
    assert result["crashes"] == []
    frames = result["frames"]
    assert frames["lost"] == frames["injected_lost"] > 0 and frames["delivered"] > 0.9 * frames["sent"]
    assert frames["injected"]["drops"] > 0 and frames["injected"]["garbage_bursts"] > 0
    assert frames["injected"]["stalls"] == len(config.plan().stalls) > 0
    reconnects = result["reconnects"]
    assert reconnects["reconnects"] == reconnects["disconnects_injected"] == len(reconnects["delays_s"]) > 0
    assert reconnects["max_s"] <= 1.0
    estimates = result["estimates"]
    assert estimates["valid"] > 0 and estimates["by_flag"]["stale"] > 0
    assert estimates["by_flag"]["warming_up"] > 0
    assert result["targets"]["losses_equal_injected"]["met"] and result["targets"]["max_reconnect_s"]["met"]


def test_a_short_soak_with_every_fault_kind():
    config = SoakConfig(seconds=8.0, stall_every_s=4.0, disconnect_every_s=6.0, channels=4, fs_hz=1000.0,
                        drop=5e-3, garbage=5e-3, bitflip=1e-3, warmup_steps=50)
    check(run_soak(config, say=lambda text: None), config)


@pytest.mark.slow
def test_a_two_minute_soak():
    config = SoakConfig(seconds=120.0, stall_every_s=20.0, disconnect_every_s=30.0)
    result = run_soak(config, say=lambda text: None)
    check(result, config)
    # the latency ring buffers are touched during the first ~65 s; after that memory must stay flat
    assert result["rss_mb"]["growth_mb_per_h"] is not None and result["rss_mb"]["growth_mb_per_h"] < 50.0
