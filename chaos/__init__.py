"""The fault suite (`make chaos`): the real system on loopback, faulted, checked, one table."""
