"""AgentScheduling: schedule the LLM requests of concurrent LLM agents onto LLM cores (AIOS, VTC, FastSwitch)."""

from schedgym.envs.agent_scheduling.env import AgentSchedulingEnv
from schedgym.envs.agent_scheduling.workload import AGENT_TYPES, TENANTS, TOOLS, TYPE_NAMES, Workload, generate_workload

__all__ = ["AgentSchedulingEnv", "AGENT_TYPES", "TENANTS", "TOOLS", "TYPE_NAMES", "Workload", "generate_workload"]
