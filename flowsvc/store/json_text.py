"""The compact JSON text flowsvc writes (contexts, histories, replies, event payloads).

json.dumps with arguments builds an encoder per call, and a turn writes several texts per message:
these are built once and give the same text.
"""

from __future__ import annotations

import json

compact = json.JSONEncoder(separators=(",", ":")).encode
# Keeps non-ASCII characters as they are (replies and event payloads, read back as text).
compact_unicode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
