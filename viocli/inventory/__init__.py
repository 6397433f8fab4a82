"""The inventory: one YAML file per deployment, the single source of configuration truth.

load (``source``) -> validate (``model``, ``checks``) -> resolve (``topology``) -> render (``render``).
"""
