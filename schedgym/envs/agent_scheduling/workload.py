"""LLM agents for AgentScheduling: agent types, tool latencies, request lengths and agent arrivals.

An agent is a sequence of ``n_steps`` LLM requests; after every request but the last it calls one tool
and waits for it. Its context grows: the prompt of step ``s`` is the agent's base prompt plus every
earlier output and tool observation (truncated like an agent framework truncating history, so that a
request never exceeds ``max_context_tokens``).

Request lengths are resampled from the Azure LLM Inference Trace 2023 (CC-BY 4.0, shipped in
``schedgym/data``; Patel et al., "Splitwise", ISCA 2024): base prompts from the conversation trace
(``coder`` from the code trace), output lengths from the conversation trace (mean 211 tokens, p50 129),
scaled per agent type and step as tabulated in :data:`AGENT_TYPES`.

Tool durations are lognormal, ``exp(N(log(median_s), sigma^2))``; the parameters in :data:`TOOLS` are
modelling assumptions chosen to span the latencies agent papers report for their tools (sub-second
calculators and vector look-ups, ~1 s web-search APIs, seconds for code execution and test suites;
AIOS, Mei et al. 2024; ReAct, Yao et al. 2023; Reflexion, Shinn et al. 2023), not measurements.

Agent arrivals: Poisson at ``agent_rate`` per second, or the arrival times of a trace (``azure-code``,
``azure-conv`` or ``trace:<path>``, each row one agent, thinned/replicated by ``rate_scale``); for a
trace, the row's prompt and output tokens are the agent's base prompt and first output.

Tenants (the fairness workload ``"tenants"``, VTC's setting of clients sharing a server): every agent
belongs to a tenant. In ``"tenants"`` the agents of one Poisson stream at ``agent_rate`` are split among
:data:`TENANTS` by their weights (independent Poisson streams, one per tenant); each tenant runs one agent
type, so tenants differ in rate, context size and output length: tenant 0 is the heavy one (half of
the agents, ``coder`` agents with code-sized contexts). In every other workload the tenant is the agent
type (four tenants).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schedgym.envs.core.traces import RequestTrace, load_azure_trace

__all__ = ["Tool", "AgentType", "TOOLS", "AGENT_TYPES", "TYPE_NAMES", "TENANTS", "Workload", "generate_workload"]


@dataclass(frozen=True)
class Tool:
    name: str
    median_s: float  # median duration of one call, seconds
    sigma: float  # standard deviation of log(duration)
    observation_tokens: int  # tokens the tool's result adds to the agent's context


#: Tools and their lognormal durations (modelling assumptions, see the module docstring).
TOOLS: tuple[Tool, ...] = (
    Tool("calculator", median_s=0.02, sigma=0.3, observation_tokens=20),
    Tool("retrieval", median_s=0.15, sigma=0.4, observation_tokens=600),
    Tool("search", median_s=0.8, sigma=0.5, observation_tokens=400),
    Tool("browser", median_s=2.5, sigma=0.6, observation_tokens=1200),
    Tool("python", median_s=1.5, sigma=0.8, observation_tokens=200),
    Tool("test_suite", median_s=6.0, sigma=0.7, observation_tokens=500),
)
_TOOL_INDEX = {t.name: i for i, t in enumerate(TOOLS)}


@dataclass(frozen=True)
class AgentType:
    name: str
    steps_low: int  # number of LLM requests, uniform in [steps_low, steps_high]
    steps_high: int
    prompt_trace: str  # Azure trace the base prompt is resampled from
    first_output_scale: float  # multiplies the resampled output length of step 0
    output_scale: float  # ... and of the later steps
    tool_mix: dict[str, float]  # tool name -> probability of calling it after a step


#: Agent types. Step counts and output scales follow the structure of each agent pattern: ReAct emits
#: short thought/action lines; Reflexion writes longer self-reflections; plan-and-execute writes one
#: long plan then short execution steps; a coding agent reads code-completion-sized contexts and
#: writes code.
AGENT_TYPES: tuple[AgentType, ...] = (
    AgentType("react", 3, 8, "azure-conv", 0.5, 0.5, {"search": 0.5, "calculator": 0.2, "retrieval": 0.3}),
    AgentType("reflexion", 4, 10, "azure-conv", 1.0, 1.0, {"python": 0.4, "test_suite": 0.3, "search": 0.3}),
    AgentType("plan_execute", 3, 7, "azure-conv", 2.0, 0.4, {"search": 0.4, "python": 0.3, "browser": 0.3}),
    AgentType("coder", 3, 8, "azure-code", 1.0, 1.0, {"python": 0.5, "test_suite": 0.5}),
)
TYPE_NAMES: tuple[str, ...] = tuple(t.name for t in AGENT_TYPES)

#: Tenants of the ``"tenants"`` workload: (agent type, share of the agents). Tenant 0 is the heavy one.
TENANTS: tuple[tuple[str, float], ...] = (("coder", 0.5), ("react", 1 / 6), ("reflexion", 1 / 6), ("plan_execute", 1 / 6))


@dataclass(frozen=True)
class Workload:
    """All agents of an episode and their requests (requests of one agent are contiguous, in step order).

    The true output lengths are here: the env hides them from observations; oracles may read them.
    """

    agent_arrival_s: np.ndarray  # (A,) float64, non-decreasing
    agent_type: np.ndarray  # (A,) int64, index into AGENT_TYPES
    agent_first_req: np.ndarray  # (A,) int64, index of the agent's first request
    agent_n_steps: np.ndarray  # (A,) int64 >= 1
    req_agent: np.ndarray  # (N,) int64
    req_step: np.ndarray  # (N,) int64, step index within the agent
    req_prompt_tokens: np.ndarray  # (N,) int64 >= 1, context at submission
    req_output_tokens: np.ndarray  # (N,) int64 >= 1, true output length
    req_tool: np.ndarray  # (N,) int64, tool called after the request, -1 for the agent's last step
    req_tool_s: np.ndarray  # (N,) float64, that tool's duration, 0 for the last step
    agent_tenant: np.ndarray  # (A,) int64, tenant of each agent (module docstring)
    n_tenants: int

    @property
    def n_agents(self) -> int:
        return int(self.agent_arrival_s.shape[0])

    @property
    def n_requests(self) -> int:
        return int(self.req_agent.shape[0])


def _mix_probabilities(agent_mix: dict[str, float] | None) -> np.ndarray:
    if agent_mix is None:
        return np.full(len(AGENT_TYPES), 1.0 / len(AGENT_TYPES))
    if not isinstance(agent_mix, dict) or not agent_mix:
        raise ValueError(f"agent_mix must be a non-empty dict {{type: weight}} over {list(TYPE_NAMES)}, got {agent_mix!r}")
    unknown = sorted(set(agent_mix) - set(TYPE_NAMES))
    if unknown:
        raise ValueError(f"agent_mix has unknown agent type(s) {unknown}; known types: {list(TYPE_NAMES)}")
    w = np.array([float(agent_mix.get(n, 0.0)) for n in TYPE_NAMES])
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"agent_mix weights must be finite, >= 0 and not all 0, got {agent_mix!r}")
    return w / w.sum()


def generate_workload(
    rng: np.random.Generator,
    n_agents: int,
    agent_rate: float,
    arrival_trace: RequestTrace | None = None,
    agent_mix: dict[str, float] | None = None,
    max_context_tokens: int = 8192,
    max_output_tokens: int = 2048,
    tenants: bool = False,
) -> Workload:
    """Draw one episode's agents (vectorised; all randomness from ``rng``)."""
    probs = _mix_probabilities(agent_mix)
    if arrival_trace is not None:
        n_agents = min(n_agents, len(arrival_trace))
        arrival = np.asarray(arrival_trace.arrival_s[:n_agents], dtype=np.float64).copy()
    else:
        arrival = np.cumsum(rng.exponential(1.0 / agent_rate, size=n_agents))
    if tenants:
        shares = np.array([w for _, w in TENANTS])
        tenant = rng.choice(len(TENANTS), size=n_agents, p=shares / shares.sum())
        a_type = np.array([TYPE_NAMES.index(t) for t, _ in TENANTS])[tenant]
        n_tenants = len(TENANTS)
    else:
        a_type = rng.choice(len(AGENT_TYPES), size=n_agents, p=probs)
        tenant = a_type
        n_tenants = len(AGENT_TYPES)
    lo = np.array([t.steps_low for t in AGENT_TYPES])[a_type]
    hi = np.array([t.steps_high for t in AGENT_TYPES])[a_type]
    n_steps = rng.integers(lo, hi + 1)
    first = np.concatenate([[0], np.cumsum(n_steps)[:-1]]).astype(np.int64)
    n_req = int(n_steps.sum())
    req_agent = np.repeat(np.arange(n_agents), n_steps)
    req_step = np.arange(n_req) - np.repeat(first, n_steps)
    req_type = a_type[req_agent]

    conv = load_azure_trace("azure-conv")
    code = load_azure_trace("azure-code")
    # Output lengths: resampled conversation-trace outputs, scaled per type and step.
    out = conv.output_tokens[rng.integers(0, len(conv), size=n_req)].astype(np.float64)
    first_scale = np.array([t.first_output_scale for t in AGENT_TYPES])[req_type]
    later_scale = np.array([t.output_scale for t in AGENT_TYPES])[req_type]
    out = out * np.where(req_step == 0, first_scale, later_scale)
    # Base prompts: from the type's trace.
    from_code = np.array([t.prompt_trace == "azure-code" for t in AGENT_TYPES])[a_type]
    base = np.where(
        from_code,
        code.prompt_tokens[rng.integers(0, len(code), size=n_agents)],
        conv.prompt_tokens[rng.integers(0, len(conv), size=n_agents)],
    ).astype(np.float64)
    if arrival_trace is not None:
        base = np.asarray(arrival_trace.prompt_tokens[:n_agents], dtype=np.float64)
        out[first] = arrival_trace.output_tokens[:n_agents]
    out = np.clip(np.rint(out), 1, max_output_tokens).astype(np.int64)

    # Tools: one categorical draw per request from the agent type's mix; none after the last step.
    tool_cdf = np.zeros((len(AGENT_TYPES), len(TOOLS)))
    for i, t in enumerate(AGENT_TYPES):
        for name, p in t.tool_mix.items():
            tool_cdf[i, _TOOL_INDEX[name]] = p
    tool_cdf = np.cumsum(tool_cdf / tool_cdf.sum(axis=1, keepdims=True), axis=1)
    u = rng.random(n_req)
    tool = np.minimum((u[:, None] > tool_cdf[req_type]).sum(axis=1), len(TOOLS) - 1)
    median = np.array([t.median_s for t in TOOLS])[tool]
    sigma = np.array([t.sigma for t in TOOLS])[tool]
    tool_s = median * np.exp(sigma * rng.standard_normal(n_req))
    obs_tokens = np.array([t.observation_tokens for t in TOOLS])[tool]
    last = req_step == np.repeat(n_steps, n_steps) - 1
    tool = np.where(last, -1, tool)
    tool_s = np.where(last, 0.0, tool_s)
    obs_tokens = np.where(last, 0, obs_tokens)

    # Context growth: prompt(s) = base + sum over earlier steps of (output + tool observation).
    grow = np.cumsum(out + obs_tokens)
    start_of_agent = np.repeat(first, n_steps)
    grown_before = grow - (out + obs_tokens) - np.where(start_of_agent > 0, grow[start_of_agent - 1], 0)
    prompt = np.repeat(base, n_steps) + grown_before
    # Truncate history so that prompt + output <= max_context_tokens.
    prompt = np.clip(np.minimum(prompt, max_context_tokens - out), 1, None).astype(np.int64)
    return Workload(
        agent_arrival_s=arrival,
        agent_type=a_type.astype(np.int64),
        agent_first_req=first,
        agent_n_steps=n_steps.astype(np.int64),
        req_agent=req_agent.astype(np.int64),
        req_step=req_step.astype(np.int64),
        req_prompt_tokens=prompt,
        req_output_tokens=out,
        req_tool=tool.astype(np.int64),
        req_tool_s=tool_s,
        agent_tenant=np.asarray(tenant, dtype=np.int64),
        n_tenants=n_tenants,
    )
