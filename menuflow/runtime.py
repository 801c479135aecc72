"""Process-wide tuning both services apply at startup, before they serve.

Python's cyclic garbage collector runs a young collection every 700 container allocations by
default. A service handling a thousand messages a second allocates that many (futures, dicts,
protobuf and request objects) in well under a millisecond, so objects still in flight are swept and
promoted over and over, and each promotion brings the next full collection, which walks every
object alive, the imported modules included, closer. Measured end to end (`make bench`), the
default thresholds cost the gateway about a tenth of its CPU and doubled the webhook answer p99.
Reference counting still frees almost everything at once; the collector is only for cycles.
"""

from __future__ import annotations

import gc

# A young collection every 50,000 allocations: in-flight objects die before it, instead of being
# promoted. Older generations: after 20 young collections, and 100 of those.
THRESHOLDS = (50_000, 20, 100)


def tune_garbage_collector() -> None:
    """Collect less often, and never walk what startup created (imported modules, descriptors)."""
    gc.set_threshold(*THRESHOLDS)
    gc.collect()
    gc.freeze()
