"""PowerCapping-v2: POLCA-style power oversubscription of an LLM inference row on the serving core.

``env.py`` (the Gymnasium env), ``dynamics.py`` (the row, second by second, in numba), ``power_model.py``
(calibrated power/performance model), ``workload.py`` (per-server arrival streams), ``types.py``
(parameters and state), ``render.py``, ``oversubscription.py`` (servers-deployable sweep).
"""

__all__ = ["PowerCappingEnv"]


def __getattr__(name: str):
    if name == "PowerCappingEnv":
        from schedgym.envs.power_capping.env import PowerCappingEnv

        return PowerCappingEnv
    raise AttributeError(name)
