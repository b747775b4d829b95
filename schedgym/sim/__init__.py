"""Simulators shared by several env families (see ``serving/`` for the LLM-serving core)."""
