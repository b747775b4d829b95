"""A pure-Python reference of the serving core, one iteration at a time (no fast path, no arrays).

Written from the rules in ``schedgym/sim/serving/kernels.py``'s docstring, with Python objects, so that
``tests/test_serving_core.py`` can check the numba kernels against it exactly. Iteration durations come
from the same profile function (``iteration_s``), so any difference is a difference in the simulation
logic, not in floating-point arithmetic.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from schedgym.sim.serving.kernels import phase_power_w
from schedgym.sim.serving.params import ServingParams
from schedgym.sim.serving.profile import LatencyProfile, decode_run_end_s, iteration_s

PROVISIONING, READY, DRAINING = "provisioning", "ready", "draining"


@dataclass
class Req:
    id: int
    arrival: float
    prompt: int
    output: int
    target: int = 0
    prefilled: int = 0
    generated: int = 0
    kv: int = 0
    blocks: int = 0
    swapped: bool = False
    preemptions: int = 0
    replica: int = -1
    first_t: float = -1.0
    finish_t: float = -1.0
    rejected: bool = False
    replica_ready_t: float = -1.0


@dataclass
class Replica:
    state: str
    launch_t: float
    ready_t: float
    free: int
    running: list = field(default_factory=list)
    waiting: deque = field(default_factory=deque)
    busy: bool = False
    start: float = 0.0
    end: float = 0.0
    sched: dict = field(default_factory=dict)
    kind: str = "idle"
    outstanding: int = 0
    busy_s: float = 0.0
    energy_j: float = 0.0
    freq: float = 1.0
    run_j: int = -1  # decode run (kernels.py docstring): index of the in-flight iteration
    run_b: int = 0
    run_c0: int = 0
    run_anchor: float = 0.0
    run_freq: float = 0.0


class ReferenceFleet:
    def __init__(self, params: ServingParams, profile: LatencyProfile, arrivals, prompts, outputs, n_slots: int):
        self.p = params
        self.prof = profile.arrays
        self.pf = params.float_array()
        self.reqs = [Req(i, float(a), int(p), int(o), target=int(p)) for i, (a, p, o) in
                     enumerate(zip(arrivals, prompts, outputs))]
        self.slots: list[Replica | None] = [None] * n_slots
        self.next = 0
        self.rr = 0
        self.now = 0.0
        self.billed_gone = 0.0
        self.busy_gone = 0.0
        self.energy_gone = 0.0
        self.done: list[int] = []
        self.preemptions = 0

    # lifecycle (same slot choice as ServingFleet: the lowest empty slot)
    def launch(self, now, ready_t):
        r = self.slots.index(None)
        self.slots[r] = Replica(PROVISIONING if ready_t > now else READY, now, ready_t, self.p.kv_blocks)
        return r

    def drain(self, r, now):
        self.slots[r].state = DRAINING
        self._release_if_empty(r, now)

    cancel = drain

    def _release_if_empty(self, r, t):
        rep = self.slots[r]
        if rep.state == DRAINING and not rep.busy and not rep.running and not rep.waiting:
            self.billed_gone += t - rep.launch_t
            self.busy_gone += rep.busy_s
            self.energy_gone += rep.energy_j
            self.slots[r] = None

    # iterations
    def _blocks(self, tokens):
        return -(-tokens // self.p.block_tokens)

    def _preempt_newest(self, rep):
        v = rep.running.pop()
        rep.free += v.blocks
        v.preemptions += 1
        self.preemptions += 1
        swap_out = 0
        if self.p.preemption == "swap" and v.prefilled == v.target:
            v.swapped = True
            swap_out = v.blocks
        else:
            rep.outstanding += (v.prompt + v.generated) - (v.target - v.prefilled)
            v.target = v.prompt + v.generated
            v.prefilled = v.kv = v.blocks = 0
        rep.waiting.appendleft(v)
        return v, swap_out

    def _compose(self, rep, t):
        bt = self.p.block_tokens
        budget = self.p.max_num_batched_tokens
        rep.sched = {}
        b = ctx = 0
        preempted = swap = 0
        for q in list(rep.running):
            if q not in rep.running:
                break
            if q.prefilled < q.target or q.swapped:
                continue
            if q.kv % bt == 0:
                while rep.free == 0:
                    v, out = self._preempt_newest(rep)
                    preempted += 1
                    swap += out
                    if v is q:
                        break
                if q not in rep.running:
                    break
                rep.free -= 1
                q.blocks += 1
            rep.sched[q.id] = 1
            b += 1
            ctx += q.kv + 1
            budget -= 1
        p_tokens, cross = 0, 0.0
        for q in rep.running:
            rem = q.target - q.prefilled
            if rem > 0 and not q.swapped:
                c = min(rem, budget)
                rep.sched[q.id] = c
                p_tokens += c
                cross += float(c) * float(q.prefilled)
                budget -= c
        if preempted == 0:
            while rep.waiting and len(rep.running) < self.p.max_num_seqs:
                h = rep.waiting[0]
                need = h.blocks if h.swapped else self._blocks(h.target)
                if not h.swapped and budget == 0:
                    break
                if need > rep.free:
                    break
                rep.waiting.popleft()
                rep.free -= need
                h.blocks = need
                rep.running.append(h)
                if h.swapped:
                    h.swapped = False
                    swap += need
                    rep.sched[h.id] = 0
                else:
                    c = min(h.target, budget)
                    rep.sched[h.id] = c
                    p_tokens += c
                    budget -= c
        lp, lpf, db, sc = self.prof
        prev_kind = rep.kind
        if p_tokens > 0 or (b == 0 and swap > 0) or (b > 0 and swap > 0):
            rep.kind = "mixed"
        elif b > 0:
            rep.kind = "decode"
        else:
            rep.kind = "idle"
        rep.start = t
        rep.busy = rep.kind != "idle"
        if rep.kind == "decode":
            if prev_kind == "decode" and rep.run_b == b and not preempted and rep.run_freq == rep.freq:
                rep.run_j += 1
                assert ctx == rep.run_c0 + rep.run_j * b  # the same sequences, one token further each
            else:
                rep.run_j, rep.run_b, rep.run_c0, rep.run_anchor, rep.run_freq = 0, b, ctx, t, rep.freq
            rep.end = decode_run_end_s(rep.run_anchor, rep.run_j, b, rep.run_c0, rep.freq, db, sc,
                                       self.p.decode_freq_sensitivity)
        else:
            dt = iteration_s(p_tokens, cross, b, float(ctx), rep.freq, lp, lpf, db, sc, self.p.decode_freq_sensitivity)
            dt += swap * self.p.swap_s_per_block
            rep.end = t + dt if rep.busy else t
        return preempted

    def _finalize(self, rep):
        t = rep.end
        dt = t - rep.start
        rep.busy_s += dt
        kind = 1 if rep.kind == "mixed" else 2
        rep.energy_j += dt * self.p.tensor_parallel * phase_power_w(kind, rep.freq, self.pf)
        keep = []
        for q in rep.running:
            c = rep.sched.get(q.id, 0)
            if c > 0:
                if q.prefilled < q.target:
                    q.prefilled += c
                    q.kv += c
                    rep.outstanding -= c
                    if q.prefilled == q.target:
                        if q.first_t < 0:
                            q.first_t = t
                        q.generated += 1
                        rep.outstanding -= 1
                else:
                    q.kv += 1
                    q.generated += 1
                    rep.outstanding -= 1
            if q.generated >= q.output:
                q.finish_t = t
                rep.free += q.blocks
                q.blocks = 0
                self.done.append(q.id)
            else:
                keep.append(q)
        rep.running = keep

    def _advance_replica(self, r, until):
        rep = self.slots[r]
        while rep is not None and rep.busy and rep.end <= until:
            t = rep.end
            self._finalize(rep)
            self._compose(rep, t)
            if not rep.busy:
                self._release_if_empty(r, t)
                rep = self.slots[r]

    def _make_ready(self, t):
        for rep in self.slots:
            if rep is not None and rep.state == PROVISIONING and rep.ready_t <= t:
                rep.state = READY

    def advance(self, until):
        while self.next < len(self.reqs) and self.reqs[self.next].arrival < until:
            q = self.reqs[self.next]
            for r in range(len(self.slots)):
                if self.slots[r] is not None:
                    self._advance_replica(r, q.arrival)
            self._make_ready(q.arrival)
            self._route(q)
            self.next += 1
        for r in range(len(self.slots)):
            if self.slots[r] is not None:
                self._advance_replica(r, until)
        self._make_ready(until)
        self.now = until

    def _route(self, q):
        if self._blocks(q.prompt + q.output) > self.p.kv_blocks:
            q.rejected = True
            return
        ready = [r for r, rep in enumerate(self.slots) if rep is not None and rep.state == READY]
        if self.p.routing == "round_robin":
            r = ready[self.rr % len(ready)]
            self.rr += 1
        else:
            r = min(ready, key=lambda k: (self.slots[k].outstanding, k))
        rep = self.slots[r]
        q.replica = r
        q.replica_ready_t = rep.ready_t
        rep.waiting.append(q)
        rep.outstanding += q.prompt + q.output
        if not rep.busy:
            self._compose(rep, q.arrival)
