"""``selector_config``: the parser arguments a session or request may give the Response (Scrapling's)."""

from typing import Any

#: The keys shoal honours, with their types. ``storage`` and ``storage_args`` are shoal's to set: adaptive
#: selection data is kept in Redis, shared by every coordinator (shoal.coordinator.adaptive).
SELECTOR_CONFIG_KEYS = {"adaptive": bool, "adaptive_domain": str, "huge_tree": bool, "keep_comments": bool}


def check_selector_config(config: Any, name: str) -> None:
    """Raise TypeError starting with ``name`` unless ``config`` is a dict of parser arguments shoal honours."""
    if config is None:
        return
    if not isinstance(config, dict):
        raise TypeError(f"{name} must be a dict, got {type(config).__name__}")
    for key, value in config.items():
        if key in ("storage", "storage_args"):
            raise TypeError(
                f"{name} sets '{key}': shoal keeps adaptive selection data in Redis, shared by every "
                "coordinator; leave out storage and storage_args"
            )
        kind = SELECTOR_CONFIG_KEYS.get(key)
        if kind is None:
            raise TypeError(f"{name} has unknown key '{key}' (known: {', '.join(SELECTOR_CONFIG_KEYS)})")
        if not isinstance(value, kind):
            raise TypeError(f"{name} key '{key}' must be {kind.__name__}, got {value!r}")
