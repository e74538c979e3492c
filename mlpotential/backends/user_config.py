"""The user's mlpotential data directory and its small config file.

The installation wizard records things there (where the ANI parameters were
copied to); backends read them. Location: ``$MLPOTENTIAL_DATA_DIR`` if set,
else ``$XDG_DATA_HOME/mlpotential``, else ``~/.local/share/mlpotential``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CONFIG_NAME = "config.json"


def data_dir() -> Path:
    """The user's mlpotential data directory (not created here)."""
    explicit = os.environ.get("MLPOTENTIAL_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "mlpotential"


def config_path() -> Path:
    return data_dir() / CONFIG_NAME


def read_config() -> dict[str, Any]:
    """The recorded settings; an absent file is an empty config. A corrupt
    file raises ValueError naming it."""
    path = config_path()
    if not path.exists():
        return {}
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the mlpotential config file {path}: {exc}") from exc
    if not isinstance(config, dict):
        raise ValueError(f"the mlpotential config file {path} does not hold a JSON object")
    return config


def update_config(**entries: Any) -> Path:
    """Set ``entries`` in the config file (written atomically); returns its path."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    config = read_config()
    config.update(entries)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    temporary.replace(path)
    return path
