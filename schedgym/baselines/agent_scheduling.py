"""Baselines of AgentScheduling-v0: AIOS's FIFO and round robin, VTC fairness, Bayesian SJF and oracles.

Every policy answers the env's two decision kinds: which visible waiting request takes a free batch
slot (``ADMIT``), and, at the end of a running request's time slice, keep it (action ``K``) or preempt
it for a waiting request (``SLICE_END``). Heuristics read the env's public state (queue, service
counters, finished requests); the ``*_oracle`` policies also read the true output lengths and are
upper bounds, labelled as such.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from scipy.special import log_ndtr

from schedgym.baselines import register_policy
from schedgym.envs.agent_scheduling.types import ADMIT, SLICE_END, WAITING
from schedgym.envs.agent_scheduling.workload import TYPE_NAMES

__all__ = ["FIFO", "RoundRobin", "SJFOracle", "SRPTOracle", "VTC", "BayesianSJF", "LogNormalPosterior"]

FAMILY = "AgentScheduling"


class _AgentPolicy:
    """Shared plumbing: ``choose(candidates)`` at a free slot, ``at_slice_end(...)`` at a slice end."""

    name = "base"

    def reset(self, env: gym.Env) -> None:
        self.env = env.unwrapped

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        env = self.env
        st = env.state
        k = env.n_visible
        mask = np.asarray(info["action_mask"], dtype=bool)
        legal = np.flatnonzero(mask[:k])
        if st.decision_kind == ADMIT and legal.size:
            return int(legal[self.choose(st.visible[legal])])
        if st.decision_kind == SLICE_END and legal.size:
            return self.at_slice_end(st.decision_req, legal)
        return k

    def choose(self, candidates: np.ndarray) -> int:
        """Index into ``candidates`` (request ids in queue order) of the request to run."""
        return 0

    def at_slice_end(self, running: int, legal: np.ndarray) -> int:
        """Action at the end of ``running``'s slice: ``n_visible`` keeps it; a legal index preempts it."""
        return self.env.n_visible


@register_policy(FAMILY, "fifo", "heuristic", "AIOS FIFO: oldest waiting request first, never preempts")
class FIFO(_AgentPolicy):
    """First come first served and run to completion (AIOS's FIFO scheduler; its 1 s batching of the
    LLM queue is replaced by immediate dispatch to a free continuous-batching slot)."""

    name = "fifo"


@register_policy(FAMILY, "round_robin", "heuristic", "AIOS round robin: at each slice end preempt for the queue head")
class RoundRobin(_AgentPolicy):
    """AIOS round robin: at the end of a time slice, if a request waits, the running one is snapshotted
    (context switch) and goes to the back of the queue; the head of the queue runs."""

    name = "round_robin"

    def at_slice_end(self, running: int, legal: np.ndarray) -> int:
        return int(legal[0])


class _WorkPolicy(_AgentPolicy):
    """Shortest (expected) work first. ``remaining_decode_tokens`` is the estimate that differs."""

    preemptive = False

    def remaining_decode_tokens(self, reqs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def work_s(self, reqs: np.ndarray) -> np.ndarray:
        """Start cost (prefill, or context switch of a preempted request) + remaining decode time."""
        env = self.env
        st = env.state
        fresh = st.generated[reqs] == 0
        start = np.where(fresh, env.prefill_time_s(st.workload.req_prompt_tokens[reqs]), 0.0)
        if (~fresh).any():
            start[~fresh] = [env.switch_cost_s(int(r)) for r in reqs[~fresh]]
        return start + self.remaining_decode_tokens(reqs) * env._decode_step_s[1]

    def choose(self, candidates: np.ndarray) -> int:
        return int(np.argmin(self.work_s(candidates)))

    def at_slice_end(self, running: int, legal: np.ndarray) -> int:
        if not self.preemptive:
            return self.env.n_visible
        st = self.env.state
        cand = st.visible[legal]
        work = self.work_s(cand)
        best = int(np.argmin(work))
        running_left = float(self.remaining_decode_tokens(np.array([running]))[0]) * self.env._decode_step_s[1]
        # Preempting costs the running request a context switch when it resumes.
        if work[best] + self.env.switch_cost_s(running) < running_left:
            return int(legal[best])
        return self.env.n_visible


@register_policy(FAMILY, "sjf_oracle", "oracle", "ORACLE (bound): shortest true job first, non-preemptive")
class SJFOracle(_WorkPolicy):
    """Non-preemptive shortest job first with the true output lengths (an oracle: a bound, not a policy
    a real system can run)."""

    name = "sjf_oracle"

    def remaining_decode_tokens(self, reqs: np.ndarray) -> np.ndarray:
        st = self.env.state
        return np.maximum(st.workload.req_output_tokens[reqs] - st.generated[reqs], 0.0)


@register_policy(FAMILY, "srpt_oracle", "oracle", "ORACLE (bound): shortest true remaining work first, preemptive")
class SRPTOracle(SJFOracle):
    """Shortest remaining processing time with the true output lengths; at a slice end it preempts when
    a waiting request's remaining work plus the switch cost is below the running one's (oracle: a bound)."""

    name = "srpt_oracle"
    preemptive = True


@register_policy(FAMILY, "vtc", "heuristic", "VTC (OSDI'24): least-served agent first, cost = input + 2 x output tokens")
class VTC(_AgentPolicy):
    """Virtual Token Counter (Sheng et al., "Fairness in Serving Large Language Models", OSDI 2024).

    Each agent (client) has a counter of service received, weighted 1 per input token and 2 per output
    token (the env's ``agent_service``). A free slot goes to the waiting request of the agent with the
    smallest counter. When an agent becomes backlogged again its counter is lifted to the smallest
    counter among the agents already backlogged, so idle periods do not bank credit (VTC's counter
    lift). Like VTC it never preempts a running request.
    """

    name = "vtc"

    def reset(self, env: gym.Env) -> None:
        super().reset(env)
        n_agents = self.env.state.workload.n_agents
        self.lift = np.zeros(n_agents)
        self.backlogged = np.zeros(n_agents, dtype=bool)

    def _update_backlog(self) -> None:
        st = self.env.state
        now = np.zeros_like(self.backlogged)
        now[st.workload.req_agent[st.status == WAITING]] = True
        new = now & ~self.backlogged
        old = now & self.backlogged
        if new.any() and old.any():
            counters = st.agent_service + self.lift
            floor = counters[old].min()
            self.lift[new] += np.maximum(floor - counters[new], 0.0)
        self.backlogged = now

    def choose(self, candidates: np.ndarray) -> int:
        self._update_backlog()
        st = self.env.state
        agents = st.workload.req_agent[candidates]
        return int(np.argmin(st.agent_service[agents] + self.lift[agents]))


class LogNormalPosterior:
    """Conjugate Normal-Inverse-Gamma posterior of ``log(output_tokens)`` per (agent type, prompt bucket).

    Model: for a request of type ``t`` whose prompt falls in bucket ``b`` (edges ``bucket_edges``
    tokens), ``log(output) ~ N(mu, s2)`` with prior ``mu | s2 ~ N(m0, s2 / kappa0)``,
    ``s2 ~ InvGamma(alpha0, beta0)``. Updated online from finished requests (their output length is
    observed when they finish). The output-length estimate is the lognormal mean with posterior point
    estimates, ``exp(m_n + E[s2]/2)`` with ``E[s2] = beta_n / (alpha_n - 1)``, which converges to the
    true mean when the lengths are lognormal. The expected *remaining* output of a request that has
    already generated ``g`` tokens is the lognormal's mean residual life ``E[X - g | X > g]``, which
    eventually grows with ``g`` (a request that has run long is probably a long one).
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

    def expected_remaining(
        self, agent_type: np.ndarray, prompt_tokens: np.ndarray, generated: np.ndarray
    ) -> np.ndarray:
        """``E[X - g | X > g]`` for lognormal ``X`` with the posterior parameters."""
        m, s2 = self.params(agent_type, prompt_tokens)
        s = np.sqrt(s2)
        g = np.maximum(np.asarray(generated, dtype=np.float64), 1e-9)
        lg = np.log(g)
        # E[X | X > g] = exp(m + s2/2) * Phi((m + s2 - ln g)/s) / Phi((m - ln g)/s), in log space.
        cond = np.exp(m + s2 / 2.0 + log_ndtr((m + s2 - lg) / s) - log_ndtr((m - lg) / s))
        return np.maximum(cond - g, 0.0)


@register_policy(
    FAMILY,
    "bayesian_sjf",
    "bayesian",
    "shortest expected remaining work first; online lognormal posterior per agent type and prompt bucket",
)
class BayesianSJF(_WorkPolicy):
    """Shortest expected remaining work first under :class:`LogNormalPosterior`, learned online.

    The posterior persists across episodes of one policy object (it keeps learning) and is updated at
    every decision from the requests that finished since the last one. It preempts at a slice end when
    a waiting request's expected work plus the switch cost is below the running request's expected
    remaining work.
    """

    name = "bayesian_sjf"
    preemptive = True

    def __init__(self, preemptive: bool = True, **prior: Any) -> None:
        self.posterior = LogNormalPosterior(**prior)
        self.preemptive = bool(preemptive)

    def reset(self, env: gym.Env) -> None:
        super().reset(env)
        self.seen = 0

    def observe_finished(self) -> None:
        st = self.env.state
        if st.n_done > self.seen:
            done = st.done_order[self.seen : st.n_done]
            wl = st.workload
            self.posterior.observe(wl.agent_type[wl.req_agent[done]], wl.req_prompt_tokens[done], wl.req_output_tokens[done])
            self.seen = st.n_done

    def remaining_decode_tokens(self, reqs: np.ndarray) -> np.ndarray:
        st = self.env.state
        wl = st.workload
        return self.posterior.expected_remaining(
            wl.agent_type[wl.req_agent[reqs]], wl.req_prompt_tokens[reqs], st.generated[reqs]
        )

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        self.observe_finished()
        return super().act(obs, info)
