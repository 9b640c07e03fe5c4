"""The Hugging Face hub: off by default, on only when a run asks for it.

Importing this module turns the Hugging Face libraries offline and their telemetry off *before*
any of them is imported: huggingface_hub, transformers and datasets read these variables once,
at import. Only a run that asks for the hub explicitly (``data_dir='hub'`` or a ``model`` that is
a hub id such as ``meta-llama/Llama-3.2-3B``) turns it back on, with :func:`hub_access`;
telemetry stays off.
"""

from __future__ import annotations

import os
import sys

# read at import by huggingface_hub (constants), transformers and datasets (config)
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
TELEMETRY_OFF = {
    "HF_HUB_DISABLE_TELEMETRY": "1",  # huggingface_hub.send_telemetry: TRL's _send_telemetry,
    "DISABLE_TELEMETRY": "1",  # ... and the hub's agent-harness registry in the user agent
    "DO_NOT_TRACK": "1",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "HF_UPDATE_DOWNLOAD_COUNTS": "0",  # datasets: no download-count pings
}
_TRUE = ("1", "ON", "YES", "TRUE")
# The user asked for offline mode in the environment: hub_access(True) keeps it (cached models).
# Noted in RLNTP_USER_OFFLINE on first import, so that worker processes (which inherit the
# variables this module sets) know what the user asked for.
os.environ.setdefault("RLNTP_USER_OFFLINE", str(int(any(
    os.environ.get(v, "").upper() in _TRUE for v in OFFLINE_VARS))))
USER_OFFLINE = os.environ["RLNTP_USER_OFFLINE"] == "1"
def hub_access(allow: bool) -> None:
    """Turn the Hugging Face hub on (``allow``) or off, in the environment and in the HF
    libraries already imported (which read the variables once). Telemetry stays off."""
    online = allow and not USER_OFFLINE
    value = "0" if online else "1"
    for var in OFFLINE_VARS:
        os.environ[var] = value
    for var, off in TELEMETRY_OFF.items():
        os.environ[var] = off
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None:
        hub.HF_HUB_OFFLINE = not online
        hub.HF_HUB_DISABLE_TELEMETRY = True
    ds = sys.modules.get("datasets.config")
    if ds is not None:
        ds.HF_HUB_OFFLINE = ds.HF_DATASETS_OFFLINE = not online
        ds.HF_UPDATE_DOWNLOAD_COUNTS = False


hub_access(False)
