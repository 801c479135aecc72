"""Customer: the gateway's key for one person's conversation with one business number."""

from __future__ import annotations

# (phone_number_id, the customer's phone number): a lane, a read receipt and a pair rate backoff
# each belong to one; the same person writing to two business numbers is two customers.
Customer = tuple[str, str]
