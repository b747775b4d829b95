"""Baselines of AgentScheduling-v1: AIOS's FIFO and round robin, VTC fairness, Bayesian SJF, an agent-level
SRPT oracle (best-known, not a bound) and random.

Every policy answers the env's three decision kinds (see the env docstring): which offered waiting
request a core admits (or none), which running context to swap or drop when the KV cache is full, and
whether to keep or preempt a sequence whose time slice ended. Heuristics read the env's public state
(queue, service counters, finished requests; ``env.state``, ``env.wq``, ``env.params``);
``agent_srpt_oracle`` also reads the true output lengths and future steps of every agent and is the
best-known policy, labelled ``oracle``. The proven lower bound is the env's ``turnaround_lower_bound``
metric, not a policy.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from scipy.special import log_ndtr

from schedgym.baselines import register_policy
from schedgym.envs.agent_scheduling import dynamics as dyn
from schedgym.envs.agent_scheduling.types import (
    ADMIT,
    PREEMPT,
    QF_ENQ,
    QI_GENERATED,
    QI_PREFILLED,
    QI_STATE,
    QI_TARGET,
    SLICE_END,
)
from schedgym.envs.agent_scheduling.workload import TYPE_NAMES

__all__ = ["FIFO", "RoundRobin", "VTC", "BayesianSJF", "AgentSRPTOracle", "LogNormalPosterior"]

FAMILY = "AgentScheduling"


class _AgentPolicy:
    """Shared plumbing: ``admit(cands)``, ``kv_victim()`` and ``at_slice_end()`` per decision kind."""

    name = "base"

    def reset(self, env: gym.Env) -> None:
        self.env = env.unwrapped

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        env = self.env
        st = env.state
        k = env.n_visible
        mask = np.asarray(info["action_mask"], dtype=bool)
        kind = st.decision_kind
        if kind == ADMIT:
            legal = np.flatnonzero(mask[:k])
            if legal.size == 0:
                return 2 * k
            return int(legal[self.admit(st.visible[legal])])
        if kind == PREEMPT:
            n = int(np.count_nonzero(st.victims >= 0))
            j, swap = self.kv_victim(st.victims[:n])
            return int(j if swap else k + j)
        if kind == SLICE_END:
            return self.at_slice_end(st.decision_req)
        return 2 * k

    # -- defaults: FIFO admission, vLLM's victim (the newest, recomputed), keep at a slice end
    def admit(self, cands: np.ndarray) -> int:
        """Index into ``cands`` (legal offered request ids) of the request to admit: the oldest."""
        return int(np.lexsort((cands, self.env.state.qf[cands, QF_ENQ]))[0])

    def kv_victim(self, victims: np.ndarray) -> tuple[int, bool]:
        """``(index into victims (newest first), swap?)`` at a KV preemption."""
        return 0, False

    def at_slice_end(self, req: int) -> int:
        return 2 * self.env.n_visible

    # -- helpers
    def cheaper_is_swap(self, req: int) -> bool:
        """Swap (copy out and back over PCIe) when that costs less than recomputing the context."""
        return bool(self.env.swap_cost_s(req) < self.env.recompute_cost_s(req))


@register_policy(FAMILY, "fifo", "heuristic", "AIOS FIFO: oldest waiting request that fits; vLLM victim (newest, recompute); never slices")
class FIFO(_AgentPolicy):
    """First come first served (AIOS's FIFO scheduler; its 1 s batching of the LLM queue is replaced by
    admission at each continuous-batching iteration). The oldest offered request that fits is admitted;
    on KV exhaustion the newest sequence is dropped and recomputed (vLLM V1's default)."""

    name = "fifo"


@register_policy(FAMILY, "round_robin", "heuristic", "AIOS round robin: 1 s slices, snapshot (swap) the expiring context, admit the oldest")
class RoundRobin(_AgentPolicy):
    """AIOS round robin: when a sequence's slice ends while requests wait, its context is snapshotted (its
    KV swapped to host memory, AIOS's context manager) and it rejoins the back of the queue; the oldest
    waiting request is admitted. On KV exhaustion the newest sequence is snapshotted the same way."""

    name = "round_robin"

    def kv_victim(self, victims: np.ndarray) -> tuple[int, bool]:
        return 0, True

    def at_slice_end(self, req: int) -> int:
        return 0  # swap it out


@register_policy(FAMILY, "vtc", "heuristic", "VTC (OSDI'24): least-served backlogged tenant first, cost = input + 2 x output tokens")
class VTC(_AgentPolicy):
    """Virtual Token Counter (Sheng et al., "Fairness in Serving Large Language Models", OSDI'24, Alg. 2;
    its artifact's ``VTCReqQueue``, github.com/Ying1123/VTC-artifact).

    One counter per tenant (client): the service it received, weighted ``w_p = 1`` per input token and
    ``w_q = 2`` per output token (the paper's default prices), plus a lift. Here service is the env's
    ``tenant_service``, counted as tokens are processed (the artifact charges a prompt when it is
    admitted). Admission picks, among the offered requests that fit, the oldest of the backlogged tenant
    with the smallest counter (the artifact stops admitting when that tenant's head does not fit; here
    the next tenant gets the free memory, keeping the scheduler work-conserving). *Counter lift*: a tenant
    whose queue was empty and now holds a request (a returning client) has its counter raised to
    ``max(own, min over the other backlogged tenants)``, so idle time does not bank credit; with no other
    tenant backlogged it is left as is (as in the artifact). The lift is applied at the first decision
    after the tenant returns. VTC never preempts for fairness; on KV exhaustion it drops the newest (vLLM).
    """

    name = "vtc"

    def reset(self, env: gym.Env) -> None:
        super().reset(env)
        t = self.env.state.workload.n_tenants
        self.lift = np.zeros(t)
        self.backlogged = np.zeros(t, dtype=bool)

    def counters(self) -> np.ndarray:
        return self.env.state.tenant_service + self.lift

    def _update_backlog(self) -> None:
        now = self.env.state.tenant_waiting > 0
        new = now & ~self.backlogged
        stayed = now & self.backlogged
        if new.any() and stayed.any():
            c = self.counters()
            self.lift[new] += np.maximum(c[stayed].min() - c[new], 0.0)
        self.backlogged = now

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        self._update_backlog()
        return super().act(obs, info)

    def admit(self, cands: np.ndarray) -> int:
        env = self.env
        tenants = env.wq[cands, dyn.W_TENANT]
        c = self.counters()[tenants]
        return int(np.lexsort((cands, env.state.qf[cands, QF_ENQ], c))[0])


class LogNormalPosterior:
    """Conjugate Normal-Inverse-Gamma posterior of ``log(output_tokens)`` per (agent type, prompt bucket).

    Model: for a request of type ``t`` whose prompt falls in bucket ``b`` (edges ``bucket_edges``
    tokens), ``log(output) ~ N(mu, s2)`` with prior ``mu | s2 ~ N(m0, s2 / kappa0)``,
    ``s2 ~ InvGamma(alpha0, beta0)``. Updated online from finished requests. The output-length estimate
    is the lognormal mean with posterior point estimates, ``exp(m_n + E[s2]/2)``, ``E[s2] = beta_n /
    (alpha_n - 1)``; the expected *remaining* output after ``g`` tokens is the mean residual life
    ``E[X - g | X > g]``.
    """

    def __init__(
        self,
        n_types: int = len(TYPE_NAMES),
        bucket_edges: tuple[float, ...] = (1024.0, 2048.0, 4096.0),
        m0: float = float(np.log(100.0)),
        kappa0: float = 1.0,
        alpha0: float = 2.0,
        beta0: float = 1.0,
    ) -> None:
        self.edges = np.asarray(bucket_edges, dtype=np.float64)
        shape = (n_types, self.edges.size + 1)
        self.m0, self.kappa0, self.alpha0, self.beta0 = m0, kappa0, alpha0, beta0
        self.n = np.zeros(shape)
        self.sum_log = np.zeros(shape)
        self.sum_log_sq = np.zeros(shape)

    def bucket(self, prompt_tokens: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.edges, np.asarray(prompt_tokens, dtype=np.float64), side="right")

    def observe(self, agent_type: np.ndarray, prompt_tokens: np.ndarray, output_tokens: np.ndarray) -> None:
        t = np.asarray(agent_type, dtype=np.int64).ravel()
        b = self.bucket(prompt_tokens).ravel()
        x = np.log(np.maximum(np.asarray(output_tokens, dtype=np.float64).ravel(), 1.0))
        np.add.at(self.n, (t, b), 1.0)
        np.add.at(self.sum_log, (t, b), x)
        np.add.at(self.sum_log_sq, (t, b), x * x)

    def params(self, agent_type: np.ndarray, prompt_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior ``(m_n, E[s2])`` for each request."""
        t = np.asarray(agent_type, dtype=np.int64)
        b = self.bucket(prompt_tokens)
        n, s, ss = self.n[t, b], self.sum_log[t, b], self.sum_log_sq[t, b]
        mean = np.divide(s, n, out=np.zeros_like(s), where=n > 0)
        sq_dev = np.maximum(ss - n * mean * mean, 0.0)
        kappa_n = self.kappa0 + n
        m_n = (self.kappa0 * self.m0 + s) / kappa_n
        alpha_n = self.alpha0 + n / 2.0
        beta_n = self.beta0 + 0.5 * sq_dev + self.kappa0 * n * (mean - self.m0) ** 2 / (2.0 * kappa_n)
        return m_n, beta_n / (alpha_n - 1.0)

    def mean_output(self, agent_type: np.ndarray, prompt_tokens: np.ndarray) -> np.ndarray:
        m, s2 = self.params(agent_type, prompt_tokens)
        return np.exp(m + s2 / 2.0)

    def expected_remaining(self, agent_type: np.ndarray, prompt_tokens: np.ndarray, generated: np.ndarray) -> np.ndarray:
        """``E[X - g | X > g]`` for lognormal ``X`` with the posterior parameters."""
        m, s2 = self.params(agent_type, prompt_tokens)
        s = np.sqrt(s2)
        g = np.maximum(np.asarray(generated, dtype=np.float64), 1e-9)
        lg = np.log(g)
        cond = np.exp(m + s2 / 2.0 + log_ndtr((m + s2 - lg) / s) - log_ndtr((m - lg) / s))
        return np.maximum(cond - g, 0.0)


class _WorkPolicy(_AgentPolicy):
    """Least (estimated) remaining work first at admission; at a KV preemption the victim with the most
    remaining work, swapped or recomputed whichever is cheaper. ``remaining_s`` is what differs."""

    def remaining_s(self, reqs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def decode_s(self) -> float:
        return float(self.env.profile.decode_base[1])

    def request_work_s(self, reqs: np.ndarray, remaining_out: np.ndarray) -> np.ndarray:
        """Prefill still to do (profile) + remaining decode tokens at batch-1 decode time."""
        env = self.env
        qi = env.state.qi
        todo = qi[reqs, QI_TARGET] - qi[reqs, QI_PREFILLED]
        pre = np.array([env.profile.prefill_s(float(x)) if x > 0 else 0.0 for x in todo])
        return pre + remaining_out * self.decode_s()

    def admit(self, cands: np.ndarray) -> int:
        return int(np.lexsort((cands, self.remaining_s(cands)))[0])

    def kv_victim(self, victims: np.ndarray) -> tuple[int, bool]:
        j = int(np.argmax(self.remaining_s(victims)))
        return j, self.cheaper_is_swap(int(victims[j]))


@register_policy(FAMILY, "bayesian_sjf", "bayesian",
                 "shortest expected remaining request work first; online lognormal posterior per agent type and prompt bucket")  # fmt: skip
class BayesianSJF(_WorkPolicy):
    """Shortest expected remaining work first under :class:`LogNormalPosterior`, learned online.

    The posterior persists across episodes of one policy object (it keeps learning) and is updated at
    every decision from the requests finished since the last one. At a KV preemption it evicts the
    request with the most expected remaining work (swap or recompute, whichever is cheaper); it keeps
    sequences at a slice end.
    """

    name = "bayesian_sjf"

    def __init__(self, **prior: Any) -> None:
        self.posterior = LogNormalPosterior(**prior)

    def reset(self, env: gym.Env) -> None:
        super().reset(env)
        self.seen = np.zeros(self.env.state.workload.n_requests, dtype=bool)

    def observe_finished(self) -> None:
        st = self.env.state
        done = (st.qi[:, QI_STATE] == 3) & ~self.seen
        if done.any():
            wl = st.workload
            idx = np.flatnonzero(done)
            self.posterior.observe(wl.agent_type[wl.req_agent[idx]], wl.req_prompt_tokens[idx], wl.req_output_tokens[idx])
            self.seen |= done

    def remaining_s(self, reqs: np.ndarray) -> np.ndarray:
        st = self.env.state
        wl = st.workload
        rem = self.posterior.expected_remaining(wl.agent_type[wl.req_agent[reqs]], wl.req_prompt_tokens[reqs], st.qi[reqs, QI_GENERATED])
        return self.request_work_s(reqs, rem)

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        self.observe_finished()
        return super().act(obs, info)


@register_policy(FAMILY, "agent_srpt_oracle", "oracle",
                 "ORACLE (best-known, not a bound): least remaining agent work first, true lengths and future steps")  # fmt: skip
class AgentSRPTOracle(_WorkPolicy):
    """Agent-level shortest remaining processing time with perfect knowledge (an oracle; best-known, not a
    bound: the bound is the ``turnaround_lower_bound`` metric).

    An agent's remaining work = its current request's remaining prefill and decode plus every later
    request's prefill and decode (true lengths, batch-1 decode time). Admission: least remaining agent
    work first. KV preemption: the victim whose agent has the most remaining work, swapped or recomputed
    whichever is cheaper. Slice end: keep (preempting a batched sequence rarely frees a slot for a shorter
    agent sooner than its own completion would).
    """

    name = "agent_srpt_oracle"

    def reset(self, env: gym.Env) -> None:
        super().reset(env)
        wl = self.env.state.workload
        pre = np.array([self.env.profile.prefill_s(float(p)) for p in wl.req_prompt_tokens])
        self.full_work = pre + (wl.req_output_tokens - 1) * self.decode_s()
        # Work of the agent's later steps: reverse cumulative sum within each agent, minus its own.
        later = np.zeros(wl.n_requests)
        for a in range(wl.n_agents):
            f, n = int(wl.agent_first_req[a]), int(wl.agent_n_steps[a])
            w = self.full_work[f : f + n]
            later[f : f + n] = np.cumsum(w[::-1])[::-1] - w
        self.later_work = later

    def remaining_s(self, reqs: np.ndarray) -> np.ndarray:
        st = self.env.state
        rem_out = np.maximum(st.workload.req_output_tokens[reqs] - st.qi[reqs, QI_GENERATED], 0)
        return self.request_work_s(reqs, rem_out) + self.later_work[reqs]
