"""The LLM-serving core: kernel == pure-Python reference, and the spec's tests (serving-core.md)."""

from __future__ import annotations

import numpy as np
import pytest

from schedgym.sim.serving import ServingFleet, ServingParams, build_profile, isolated_latency, request_latencies
from schedgym.sim.serving.profile import iteration_s
from schedgym.sim.serving.state import (
    EF_GONE_BILLED_S,
    EI_N_DONE,
    EI_PREEMPTIONS,
    EI_REJECTED,
    QF_ADMIT_T,
    QF_FINISH_T,
    QF_FIRST_T,
    QI_PREEMPT,
    QI_REPLICA,
    Q_DONE,
    QI_STATE,
    R_READY,
    RI_STATE,
)
from tests.serving_reference import READY, ReferenceFleet

N_RANDOM_CASES = 240


def _random_case(seed: int):
    rng = np.random.default_rng(seed)
    block = int(rng.choice([4, 16]))
    max_seqs = int(rng.integers(1, 9))
    params = ServingParams.make(
        max_num_seqs=max_seqs,
        max_num_batched_tokens=int(rng.integers(max(max_seqs, 8), 97)),
        block_tokens=block,
        kv_capacity_tokens=int(rng.integers(4, 60)) * block,
        preemption=str(rng.choice(["recompute", "swap"])),
        routing=str(rng.choice(["least_tokens", "round_robin"])),
        tensor_parallel=int(rng.choice([2, 4, 8])),
    )
    n = int(rng.integers(5, 45))
    arrival = np.sort(rng.uniform(0.0, 15.0, n))
    if rng.random() < 0.3:  # simultaneous arrivals
        arrival[n // 2 :] = arrival[n // 2]
    prompt = rng.integers(1, 200, n)
    output = rng.integers(1, 60, n)
    return rng, params, arrival, prompt, output


def _run_both(seed: int):
    rng, params, arrival, prompt, output = _random_case(seed)
    n_slots = 6
    profile = build_profile(params)
    fleet = ServingFleet(params, [(arrival, prompt, output)], n_slots=n_slots, profile=profile)
    ref = ReferenceFleet(params, profile, arrival, prompt, output, n_slots)
    for _ in range(int(rng.integers(1, 3))):
        assert fleet.launch(0, 0.0, 0.0) == ref.launch(0.0, 0.0)
    freqs = rng.random() < 0.3
    t = 0.0
    for _ in range(int(rng.integers(0, 12))):
        t += float(rng.exponential(2.0))
        fleet.advance(t)
        ref.advance(t)
        op = rng.integers(4)
        ready = [r for r, rep in enumerate(ref.slots) if rep is not None and rep.state == READY]
        if op == 0 and None in ref.slots:
            ready_t = t + float(rng.choice([0.0, rng.exponential(3.0)]))
            assert fleet.launch(0, t, ready_t) == ref.launch(t, ready_t)
        elif op == 1 and len(ready) >= 2:
            r = int(rng.choice(ready))
            fleet.drain(0, r, t)
            ref.drain(r, t)
        elif op == 2:
            prov = [r for r, rep in enumerate(ref.slots) if rep is not None and rep.state == "provisioning"]
            if prov:
                r = int(rng.choice(prov))
                fleet.cancel(0, r, t)
                ref.cancel(r, t)
        elif op == 3 and freqs and ready:
            r = int(rng.choice(ready))
            f = float(rng.uniform(0.5, 1.0))
            fleet.set_frequency(0, r, f)
            ref.slots[r].freq = f
    fleet.advance(1e7)
    ref.advance(1e7)
    return fleet, ref, params


@pytest.mark.parametrize("chunk", range(8))
def test_kernel_matches_reference_on_random_cases(chunk):
    """Exact equality (==, not approx) of every request's first-token and finish times, its replica and
    preemptions, the completion order, billing and energy, on N_RANDOM_CASES random small fleets."""
    per = N_RANDOM_CASES // 8
    preempting = 0
    for seed in range(chunk * per, (chunk + 1) * per):
        fleet, ref, params = _run_both(seed)
        st = fleet.state
        n = len(ref.reqs)
        assert st.ei[0, EI_N_DONE] == len(ref.done), seed
        assert list(st.done_ids[0, : len(ref.done)]) == ref.done, seed
        for q in ref.reqs:
            assert st.qf[0, q.id, QF_FIRST_T] == q.first_t, (seed, q.id)
            assert st.qf[0, q.id, QF_FINISH_T] == q.finish_t, (seed, q.id)
            assert st.qi[0, q.id, QI_PREEMPT] == q.preemptions, (seed, q.id)
            if not q.rejected:
                assert st.qi[0, q.id, QI_REPLICA] == q.replica, (seed, q.id)
                assert q.replica_ready_t <= q.arrival  # never routed to a provisioning replica
        assert st.ei[0, EI_REJECTED] == sum(q.rejected for q in ref.reqs)
        # every non-rejected request completes exactly once
        assert sorted(ref.done) == [q.id for q in ref.reqs if not q.rejected]
        assert np.all(st.qi[0, :n, QI_STATE][[not q.rejected for q in ref.reqs]] == Q_DONE)
        assert st.ef[0, EF_GONE_BILLED_S] == ref.billed_gone
        assert fleet.busy_energy_j(0) == pytest.approx(ref.energy_gone + sum(
            rep.energy_j for rep in ref.slots if rep is not None), rel=1e-12)
        assert fleet.billed_s(0) >= fleet.busy_s(0) - 1e-9
        preempting += st.ei[0, EI_PREEMPTIONS] > 0
    assert preempting >= per // 5, "the random cases must exercise preemption"


def _one_replica(params, arrival, prompt, output, until=1e7):
    fleet = ServingFleet(params, [(np.asarray(arrival, float), np.asarray(prompt), np.asarray(output))], n_slots=2)
    fleet.launch(0, 0.0, 0.0)
    fleet.advance(until)
    return fleet


def test_idle_replica_ttft_and_tpot_are_the_profile_times():
    params = ServingParams.make()
    prof = build_profile(params)
    lp, lpf, db, sc = prof.arrays
    prompt, output = 1000, 50
    fleet = _one_replica(params, [3.0], [prompt], [output])
    ttft, tpot, e2e = request_latencies(fleet.state, 0, np.array([0]), np.array([output]))
    assert ttft[0] == pytest.approx(iteration_s(prompt, 0.0, 0, 0.0, 1.0, lp, lpf, db, sc, 0.0), rel=1e-12)
    assert ttft[0] == pytest.approx(prof.prefill_s(prompt), rel=1e-12)
    steps = [db[1] + sc[3] * (prompt + k + 1) for k in range(output - 1)]
    assert tpot[0] == pytest.approx(np.mean(steps), rel=1e-9)
    iso_ttft, iso_tpot = isolated_latency(np.array([prompt]), np.array([output]), params, prof)
    assert iso_ttft[0] == pytest.approx(ttft[0], rel=1e-12) and iso_tpot[0] == pytest.approx(tpot[0], rel=1e-9)
    # a chunked prompt: isolated TTFT is the sum of its chunks, each attending to the earlier ones
    long_prompt = 5000
    fleet = _one_replica(params, [0.0], [long_prompt], [2])
    ttft, _, _ = request_latencies(fleet.state, 0, np.array([0]), np.array([2]))
    iso, _ = isolated_latency(np.array([long_prompt]), np.array([2]), params, prof)
    assert ttft[0] == pytest.approx(iso[0], rel=1e-12)


def _poisson(rng, rate, horizon, prompt_mean=600, output_mean=150):
    n = rng.poisson(rate * horizon)
    a = np.sort(rng.uniform(0, horizon, n))
    return a, rng.integers(50, 2 * prompt_mean, n), rng.integers(10, 2 * output_mean, n)


def test_littles_law_on_a_long_run():
    rng = np.random.default_rng(1)
    horizon = 4000.0
    a, p, o = _poisson(rng, 1.5, horizon)
    params = ServingParams.make()
    fleet = ServingFleet(params, [(a, p, o)], n_slots=4)
    fleet.launch(0, 0.0, 0.0)
    fleet.launch(0, 0.0, 0.0)
    fleet.advance(1e7)
    finish = fleet.state.qf[0, : a.size, QF_FINISH_T]
    latency = finish - a
    # time-average number in system, sampled at random instants of the steady part
    ts = np.sort(rng.uniform(500.0, horizon - 500.0, 4000))
    in_system = np.searchsorted(a, ts, side="right") - np.searchsorted(np.sort(finish), ts, side="right")
    steady = (a > 500.0) & (a < horizon - 500.0)
    lam = steady.sum() / (horizon - 1000.0)
    assert in_system.mean() == pytest.approx(lam * latency[steady].mean(), rel=0.08)


def test_throughput_saturates_at_the_max_batch_rate():
    params = ServingParams.make(max_num_seqs=64)
    prof = build_profile(params)
    n = 2000
    fleet = _one_replica(params, np.zeros(n), np.full(n, 512), np.full(n, 128))
    makespan = fleet.state.qf[0, :n, QF_FINISH_T].max()
    rate = n * 128 / makespan
    # decode-only bound at batch 64, context at least the prompt: no schedule can beat it
    bound = 64 / (prof.decode_base[64] + prof.scalars[3] * 64 * 512)
    assert 0.6 * bound <= rate <= bound
    # and far above what batch 1 gives: batching is where the throughput comes from
    assert rate > 10 / (prof.decode_base[1] + prof.scalars[3] * 600)


@pytest.mark.parametrize("preemption", ["recompute", "swap"])
def test_tiny_kv_pool_preempts_yet_every_request_completes_once(preemption):
    rng = np.random.default_rng(2)
    a, p, o = _poisson(rng, 2.0, 200.0, prompt_mean=300, output_mean=200)
    params = ServingParams.make(kv_capacity_tokens=2048, preemption=preemption)
    fleet = _one_replica(params, a, p, o)
    st = fleet.state
    assert st.ei[0, EI_PREEMPTIONS] > 0
    done = st.done_ids[0, : st.ei[0, EI_N_DONE]]
    assert sorted(done.tolist()) == list(range(a.size))
    assert np.all(st.qf[0, : a.size, QF_FINISH_T] >= st.qf[0, : a.size, QF_FIRST_T])
    assert np.all(st.qf[0, : a.size, QF_ADMIT_T] >= a)


def test_huge_kv_pool_never_preempts():
    rng = np.random.default_rng(2)
    a, p, o = _poisson(rng, 2.0, 200.0, prompt_mean=300, output_mean=200)
    fleet = _one_replica(ServingParams.make(tensor_parallel=8), a, p, o)
    assert fleet.state.ei[0, EI_PREEMPTIONS] == 0
    assert fleet.state.ei[0, EI_N_DONE] == a.size


def test_billing_covers_provisioning_and_draining():
    params = ServingParams.make()
    a = np.array([1.0, 50.0, 51.0])
    fleet = ServingFleet(params, [(a, np.array([500, 4000, 300]), np.array([400, 300, 20]))], n_slots=3)
    r0 = fleet.launch(0, 0.0, 0.0)
    r1 = fleet.launch(0, 10.0, 40.0)  # provisioning 10 s -> 40 s
    fleet.advance(20.0)
    assert fleet.state.ri[0, r1, RI_STATE] != R_READY
    fleet.advance(60.0)
    assert fleet.state.qi[0, 1, QI_REPLICA] in (r0, r1)
    fleet.drain(0, r1, 60.0)  # it holds work: released only when done
    fleet.advance(1e6)
    assert fleet.state.ei[0, EI_N_DONE] == 3
    released = fleet.state.ef[0, EF_GONE_BILLED_S]
    assert released >= 60.0 - 10.0
    assert fleet.billed_s(0) >= fleet.busy_s(0)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"block_tokens": 12}, "block_tokens"),
        ({"tensor_parallel": 3}, "tensor_parallel"),
        ({"max_num_seqs": 64, "max_num_batched_tokens": 32}, "max_num_batched_tokens"),
        ({"preemption": "drop"}, "preemption"),
        ({"routing": "random"}, "routing"),
        ({"tensor_parallel": 2, "gpu_memory_utilization": 0.5}, "tensor_parallel"),  # 70B weights leave no KV
        ({"kv_capacity_tokens": 8}, "kv_capacity_tokens"),
    ],
)
def test_bad_params_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ServingParams.make(**kwargs)


def _poisson_at_utilisation(seed, n, rho, params, prof, prompt_hi):
    """Poisson arrivals of n requests whose isolated service times keep one replica rho busy."""
    rng = np.random.default_rng(seed)
    prompt = rng.integers(50, prompt_hi, n)
    output = rng.integers(10, 300, n)
    ttft, tpot = isolated_latency(prompt, output, params, prof)
    service = ttft + tpot * (output - 1)
    lam = rho / service.mean()
    return np.cumsum(rng.exponential(1.0 / lam, n)), prompt, output, ttft, tpot, service, lam


def test_one_sequence_at_a_time_is_an_m_g_1_queue():
    """With ``max_num_seqs=1`` a replica serves requests one at a time, FCFS, each for exactly its isolated
    latency: an M/G/1 queue under Poisson arrivals. The mean wait before admission must match the
    Pollaczek-Khinchine formula W = lambda E[S^2] / (2 (1 - rho)) within sampling error."""
    params = ServingParams.make(max_num_seqs=1, max_num_batched_tokens=2048)
    prof = build_profile(params)
    n = 20_000
    arrival, prompt, output, _, _, service, lam = _poisson_at_utilisation(7, n, 0.5, params, prof, 1000)
    fleet = _one_replica(params, arrival, prompt, output)
    st = fleet.state
    assert st.ei[0, EI_N_DONE] == n
    admit = st.qf[0, :n, QF_ADMIT_T]
    # each request's time in service is its isolated latency (up to the closed-form TPOT's rounding)
    assert np.allclose(st.qf[0, :n, QF_FINISH_T] - admit, service, rtol=1e-6)
    wait = (admit - arrival)[n // 10 :]  # drop the warm-up from an empty system
    pk = lam * np.mean(service**2) / (2.0 * (1.0 - lam * service.mean()))
    assert wait.mean() == pytest.approx(pk, rel=0.1)


def test_low_load_ttft_is_the_isolated_prefill():
    """At ~2 % utilisation a request almost never meets another: mean TTFT is the isolated prefill time."""
    params = ServingParams.make()
    prof = build_profile(params)
    n = 3000
    arrival, prompt, output, ttft_iso, tpot_iso, _, _ = _poisson_at_utilisation(8, n, 0.02, params, prof, 4000)
    fleet = _one_replica(params, arrival, prompt, output)
    ttft, tpot, _ = request_latencies(fleet.state, 0, np.arange(n), output)
    assert ttft.mean() == pytest.approx(ttft_iso.mean(), rel=0.02)
    assert tpot[output > 1].mean() == pytest.approx(tpot_iso[output > 1].mean(), rel=0.02)
