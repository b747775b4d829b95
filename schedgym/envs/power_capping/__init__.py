"""PowerCapping-v0: POLCA-style power oversubscription of an LLM inference row.

``env.py`` (dynamics), ``power_model.py`` (calibrated power/performance model), ``workload.py``
(arrivals), ``types.py`` (parameters and state), ``render.py``, ``oversubscription.py`` (servers-deployable sweep).
"""

from schedgym.envs.power_capping.env import PowerCappingEnv

__all__ = ["PowerCappingEnv"]
